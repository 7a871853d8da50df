/* ticks: timer interrupts arriving at CPL3 (a register-counting loop), at CPL0 inside a
 * system call (SYS_KSPIN spins with interrupts on) and at CPL0 in the idle loop (all tasks
 * asleep). The kernel folds every interrupt arrival (vector, CPL, task, all GPRs, RIP, RSP)
 * into irq_hash; this program prints it as "ticks hash=...". The hash depends on where
 * each interrupt landed, so it differs between free runs and must match between a
 * recording and its replay. `ticks=N` sets the length of each phase (default 40). */
#include "ulib.h"

static volatile u64 loop_counts[RR_MAX_TASKS];

/* CPL3: count in a register, asking for the time only every 2^16 iterations. */
static i64 user_counter(i64 arg) {
  u64 until = sys_ticks() + (u64)arg, count = 0;
  for (;;) {
    for (u32 i = 0; i < (1u << 16); i++) __asm__ volatile("inc %0" : "+r"(count));
    if (sys_ticks() >= until) break;
  }
  loop_counts[sys_getpid()] = count;
  return 0;
}

/* CPL0: interrupts arrive while this task is inside SYS_KSPIN (every other call counting in
 * memory only), and while it sleeps. */
static i64 kernel_spinner(i64 arg) {
  u64 loops = 0;
  for (i64 i = 0; i < arg / 4; i++) {
    loops += i % 2 ? sys_kspin_in_memory(2) : sys_kspin(2);
    sys_sleep(2);
  }
  loop_counts[sys_getpid()] = loops;
  return 0;
}

static i64 ticks_main(i64 arg) {
  (void)arg;
  i64 phase = sys_cmdline_int("ticks", 40);
  i64 status = 0;
  for (i64 pid = 2; pid <= 4; pid++) status |= sys_wait(pid) != 0;
  sys_sleep((u64)phase / 4); /* everyone asleep: ticks land in the idle loop */
  u64 cpl0 = sys_ticks_cpl0(), cpl3 = sys_ticks_cpl3(), hash = sys_irqhash();
  uprintf("ticks: loops=%lu,%lu,%lu total=%lu cpl0=%lu cpl3=%lu\n", loop_counts[2], loop_counts[3],
          loop_counts[4], sys_ticks(), cpl0, cpl3);
  if (cpl0 == 0 || cpl3 == 0) {
    uprintf("ticks: expected timer interrupts at both CPL0 and CPL3\n");
    status = 1;
  }
  uprintf("ticks hash=%lx\n", hash);
  finish_program("ticks", status, hash);
}

/* The phase length is read by main; the workers get it as their argument. */
const struct rr_program rr_program = {
    .name = "ticks",
    .timer_hz = 100,
    .quantum_ticks = 1,
    .task_count = 4,
    .tasks = {{"main", ticks_main, 0},
              {"count-a", user_counter, 40},
              {"count-b", user_counter, 30},
              {"kspin", kernel_spinner, 40}},
};
