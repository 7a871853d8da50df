/* spin3: long CPL3 loops that never leave CPL3 while the timer fires, so a VMM has to stop
 * the vCPU to deliver interrupts. One loop progresses only in registers, one only in memory
 * (the registers stay constant; only the counter in memory moves). The printed hash depends
 * only on the computation, so it is the same on every run; a wrong value means an interrupt
 * delivery corrupted a register or memory. `iters=N` sets the loop lengths in units of
 * 2^20 iterations (default 128, ~3 s on this host). */
#include "ulib.h"

static u64 results[RR_MAX_TASKS];
static volatile u64 memory_counter;

static u64 iterations(void) { return (u64)sys_cmdline_int("iters", 128) << 20; }

/* xorshift64: all progress is in registers. */
static i64 register_loop(i64 arg) {
  u64 x = (u64)arg, n = iterations();
  for (u64 i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    __asm__ volatile("" : "+r"(x)); /* keep the loop from being folded */
  }
  results[sys_getpid()] = x;
  return 0;
}

/* incq/cmpq on memory: RIP cycles over three instructions, registers never change. */
static i64 memory_loop(i64 arg) {
  (void)arg;
  u64 n = iterations() / 2;
  __asm__ volatile(
      "1: incq (%0)\n"
      "   cmpq %1, (%0)\n"
      "   jb 1b\n"
      :
      : "r"(&memory_counter), "r"(n)
      : "memory", "cc");
  results[sys_getpid()] = memory_counter;
  return 0;
}

static i64 spin3_main(i64 arg) {
  (void)arg;
  u64 start = sys_ticks();
  i64 status = 0;
  u64 hash = HASH_INIT;
  for (i64 pid = 2; pid <= 4; pid++) {
    status |= sys_wait(pid) != 0;
    hash = hash_fold(hash, results[pid]);
  }
  if (memory_counter != iterations() / 2) status = 1;
  u64 cpl3 = sys_ticks_cpl3();
  uprintf("spin3: results=%lx,%lx,%lx ticks=%lu cpl3=%lu\n", results[2], results[3], results[4],
          sys_ticks() - start, cpl3);
  if (cpl3 == 0) {
    uprintf("spin3: no timer interrupt arrived at CPL3\n");
    status = 1;
  }
  finish_program("spin3", status, hash);
}

const struct rr_program rr_program = {
    .name = "spin3",
    .timer_hz = 100,
    .quantum_ticks = 1,
    .task_count = 4,
    .tasks = {{"main", spin3_main, 0},
              {"xorshift-a", register_loop, 88172645463325252l},
              {"memloop", memory_loop, 0},
              {"xorshift-b", register_loop, 2463534242l}},
};
