/* Tasks, the round-robin scheduler, trap dispatch and the ud2 system calls.
 * A trap pushes a struct rr_trap_frame on the current task's kernel stack; the handler
 * returns the frame to resume, so a task switch is just returning another task's frame. */
#include "kernel.h"

#define KERNEL_STACK_SIZE 8192
#define IDLE_SLOT 0

struct rr_task_table rr_task_table = {
    .magic = RR_TASK_TABLE_MAGIC,
    .version = RR_TASK_TABLE_VERSION,
    .task_size = sizeof(struct rr_task),
    .count = RR_MAX_TASKS,
};
_Static_assert(sizeof(struct rr_task) == 384,
               "task layout is documented in schemas/test-guest-abi.md");
_Static_assert(__builtin_offsetof(struct rr_task_table, tasks) == 64,
               "task table header is 64 bytes");
_Static_assert(__builtin_offsetof(struct rr_task, regs) == 56, "documented offset");
_Static_assert(__builtin_offsetof(struct rr_task, syscall_count) == 280, "documented offset");

static u8 kernel_stacks[RR_MAX_TASKS][KERNEL_STACK_SIZE] __attribute__((aligned(16)));
static u32 quantum_ticks, quantum_left;
static u32 live_user_tasks;

static struct rr_task* current_task(void) { return &rr_task_table.tasks[rr_task_table.current]; }

static void copy_name(char* dst, const char* src) {
  u32 i = 0;
  for (; i < 15 && src[i]; i++) dst[i] = src[i];
  for (; i < 16; i++) dst[i] = 0;
}

/* Builds the first frame of a task at the top of its kernel stack. */
static void create_task(u32 slot, const char* name, u64 rip, u64 cs, u64 rsp, u64 rdi, u64 rsi) {
  struct rr_task* task = &rr_task_table.tasks[slot];
  u64 kstack_top = (u64)kernel_stacks[slot] + KERNEL_STACK_SIZE;
  struct rr_trap_frame* frame = (struct rr_trap_frame*)(kstack_top - sizeof(struct rr_trap_frame));
  memset(frame, 0, sizeof *frame);
  frame->rip = rip;
  frame->cs = cs;
  frame->ss = cs == USER_CS ? USER_DS : KERNEL_DS;
  frame->rsp = rsp;
  frame->rflags = 0x202; /* IF */
  frame->rdi = rdi;
  frame->rsi = rsi;
  task->pid = slot;
  task->state = TASK_READY;
  copy_name(task->name, name);
  task->kernel_stack_top = kstack_top;
  task->frame_addr = (u64)frame;
  task->regs = *frame;
}

void sched_init(const struct rr_program* program, u64 cr3) {
  copy_name(rr_task_table.program, program->name);
  quantum_ticks = program->quantum_ticks ? program->quantum_ticks : 1;
  for (u32 slot = 0; slot < RR_MAX_TASKS; slot++) rr_task_table.tasks[slot].cr3 = cr3;
  u64 idle_top = (u64)kernel_stacks[IDLE_SLOT] + KERNEL_STACK_SIZE;
  create_task(IDLE_SLOT, "idle", (u64)idle_loop, KERNEL_CS,
              idle_top - sizeof(struct rr_trap_frame) - 8, 0, 0);
  u32 count = program->task_count < RR_MAX_TASKS - 1 ? program->task_count : RR_MAX_TASKS - 1;
  for (u32 i = 0; i < count; i++) {
    const struct rr_program_task* spec = &program->tasks[i];
    u32 slot = i + 1;
    /* rsp = top - 8 mimics a call, so the entry function sees the ABI stack alignment. */
    u64 ustack_top = (u64)rr_user_stacks[slot] + sizeof rr_user_stacks[slot];
    create_task(slot, spec->name, (u64)rr_user_start, USER_CS, ustack_top - 8, (u64)spec->entry,
                (u64)spec->arg);
    rr_task_table.tasks[slot].user_stack_top = ustack_top;
  }
  live_user_tasks = count;
}

static struct rr_trap_frame* switch_to(struct rr_trap_frame* frame, u32 next) {
  struct rr_task* prev = current_task();
  if (prev->state == TASK_RUNNING) prev->state = TASK_READY;
  prev->frame_addr = (u64)frame;
  prev->regs = *frame;
  struct rr_task* task = &rr_task_table.tasks[next];
  rr_task_table.current = next;
  task->state = TASK_RUNNING;
  task->switches_in++;
  quantum_left = quantum_ticks;
  set_kernel_stack(task->kernel_stack_top);
  return (struct rr_trap_frame*)task->frame_addr;
}

/* Round robin over the user slots after the current one; the idle task if none is ready. */
static struct rr_trap_frame* schedule(struct rr_trap_frame* frame) {
  u32 cur = rr_task_table.current;
  for (u32 step = 1; step <= RR_MAX_TASKS; step++) {
    u32 slot = (cur + step) % RR_MAX_TASKS;
    u32 state = rr_task_table.tasks[slot].state;
    if (slot == IDLE_SLOT || (state != TASK_READY && !(state == TASK_RUNNING && slot == cur)))
      continue;
    if (slot != cur) return switch_to(frame, slot);
    rr_task_table.tasks[cur].state = TASK_RUNNING; /* nobody else is ready: keep going */
    quantum_left = quantum_ticks;
    return frame;
  }
  return cur == IDLE_SLOT ? frame : switch_to(frame, IDLE_SLOT);
}

_Noreturn void sched_start(void) {
  struct rr_task* idle = &rr_task_table.tasks[IDLE_SLOT];
  rr_task_table.current = IDLE_SLOT;
  idle->state = TASK_RUNNING;
  set_kernel_stack(idle->kernel_stack_top);
  struct rr_trap_frame* frame = (struct rr_trap_frame*)idle->frame_addr;
  enter_frame(schedule(frame));
}

void wake_blocked(u32 state) {
  for (u32 slot = 1; slot < RR_MAX_TASKS; slot++)
    if (rr_task_table.tasks[slot].state == state) rr_task_table.tasks[slot].state = TASK_READY;
}

static void finish_task(struct rr_task* task, i64 code) {
  task->state = TASK_EXITED;
  task->exit_code = code;
  for (u32 slot = 1; slot < RR_MAX_TASKS; slot++) {
    struct rr_task* waiter = &rr_task_table.tasks[slot];
    if (waiter->state == TASK_BLOCKED_WAIT && waiter->wait_arg == task->pid)
      waiter->state = TASK_READY;
  }
  if (--live_user_tasks == 0) {
    /* Nobody called SYS_SHUTDOWN: the machine's status is the first task's. */
    i64 first = rr_task_table.tasks[1].exit_code;
    kputs("KERNEL all tasks exited\n");
    machine_exit(first >= 0 && first < 256 ? (u32)first : EXIT_TASK_KILLED);
  }
}

/* Folds who was interrupted, where, and with which registers into irq_hash, so that a
 * replay that delivers an interrupt at a different point yields a different hash. */
static void record_irq(const struct rr_trap_frame* frame) {
  u64 hash = rr_task_table.irq_hash;
  hash = hash_fold(hash, frame->vector | (frame->cs & 3) << 8 | (u64)rr_task_table.current << 16);
  const u64* gprs = &frame->r15;
  for (u32 i = 0; i < 15; i++) hash = hash_fold(hash, gprs[i]);
  hash = hash_fold(hash, frame->rip);
  rr_task_table.irq_hash = hash_fold(hash, frame->rsp);
}

static struct rr_trap_frame* on_timer(struct rr_trap_frame* frame) {
  struct rr_task* task = current_task();
  u64 now = ++rr_task_table.ticks;
  int from_user = (frame->cs & 3) == 3;
  if (from_user) {
    rr_task_table.ticks_cpl3++;
    task->ticks_cpl3++;
  } else {
    rr_task_table.ticks_cpl0++;
    task->ticks_cpl0++;
  }
  pic_eoi(IRQ_TIMER);
  int woke = 0;
  for (u32 slot = 1; slot < RR_MAX_TASKS; slot++) {
    struct rr_task* t = &rr_task_table.tasks[slot];
    if (t->state == TASK_SLEEPING && t->wake_tick <= now) t->state = TASK_READY, woke = 1;
    if (t->state == TASK_BLOCKED_NET) t->state = TASK_READY, woke = 1; /* polling fallback */
  }
  /* Kernel code (a system call) is not preempted; the idle task always is. */
  if (rr_task_table.current == IDLE_SLOT) return woke ? schedule(frame) : frame;
  if (!from_user) return frame;
  if (quantum_left > 1) {
    quantum_left--;
    return frame;
  }
  return schedule(frame);
}

static struct rr_trap_frame* on_irq(struct rr_trap_frame* frame) {
  u32 irq = (u32)frame->vector - IRQ_BASE;
  record_irq(frame);
  if (irq == IRQ_TIMER) return on_timer(frame);
  if (irq == 7 || irq == 15) { /* spurious unless the in-service bit is set */
    outb(irq == 7 ? 0x20 : 0xa0, 0x0b);
    if (!(inb(irq == 7 ? 0x20 : 0xa0) & 0x80)) {
      if (irq == 15) pic_eoi(0);
      return frame;
    }
  }
  if (irq == IRQ_COM1)
    serial_irq();
  else if (irq == virtio_net_irq_line())
    virtio_net_irq();
  pic_eoi(irq);
  return rr_task_table.current == IDLE_SLOT ? schedule(frame) : frame;
}

static int user_range_ok(u64 addr, u64 len) {
  return addr >= USER_REGION_BEGIN && len <= USER_REGION_END - USER_REGION_BEGIN &&
         addr + len <= USER_REGION_END;
}

/* Blocks the current task and restarts its ud2 when it is woken. */
static struct rr_trap_frame* block(struct rr_trap_frame* frame, u32 state) {
  frame->rip -= 2;
  current_task()->state = state;
  return schedule(frame);
}

static struct rr_trap_frame* kill_current(struct rr_trap_frame* frame, const char* why) {
  struct rr_task* task = current_task();
  kputs("KERNEL killed pid=");
  kput_dec(task->pid);
  kputs(": ");
  kputs(why);
  kputs(" vector=");
  kput_dec(frame->vector);
  kputs(" rip=");
  kput_hex(frame->rip);
  kputs("\n");
  finish_task(task, -(i64)(128 + frame->vector));
  return schedule(frame);
}

/* One pass of kernel_spin_calling: a little work in a function of its own, so that the
 * pass ends with a return to the loop (a return site hit once per pass). */
__attribute__((noinline)) static u64 spin_step(u64 state) {
  for (int i = 0; i < 16; i++) state = state * 6364136223846793005ull + 1442695040888963407ull;
  __asm__ volatile("" : "+r"(state));
  return state;
}

/* Spins at CPL0 with interrupts on until `ticks` timer ticks passed, calling spin_step at
 * every pass; returns the pass count. A stop the recorder makes in here can be moved to
 * the return into this loop (docs/record-replay.md, "Return-site stops"). */
u64 kernel_spin_calling(u64 ticks) {
  u64 until = rr_task_table.ticks + ticks, passes = 0, state = 1;
  __asm__ volatile("sti");
  while (*(volatile u64*)&rr_task_table.ticks < until) {
    state = spin_step(state);
    passes++;
  }
  __asm__ volatile("cli");
  return passes + (state & 0);
}

/* Spins at CPL0 with interrupts on until `ticks` timer ticks passed, filling one page with
 * `rep stosb` at every pass; returns the pass count. The fill is most of each pass (~60 us
 * where kernel code is emulated), so stops cut it mid-way; the recorder moves them to the
 * instruction after it, reached once per fill (docs/record-replay.md, "Return-site stops"). */
u64 kernel_spin_rep_string(u64 ticks) {
  static u8 page[4096] __attribute__((aligned(4096)));
  u64 until = rr_task_table.ticks + ticks, passes = 0;
  __asm__ volatile("sti");
  while (*(volatile u64*)&rr_task_table.ticks < until) {
    void* to = page;
    u64 count = sizeof page;
    __asm__ volatile("rep stosb" : "+D"(to), "+c"(count) : "a"(passes) : "memory");
    passes++;
  }
  __asm__ volatile("cli");
  return passes;
}

/* Calls spin_step `passes` times with interrupts off; returns the last state. The timer
 * interrupt comes due meanwhile and waits: a long interrupts-off stretch, which the
 * recorder cuts with positions that deliver nothing (docs/record-replay.md, "Cutting
 * interrupts-off stretches"). */
u64 kernel_spin_interrupts_off(u64 passes) {
  u64 state = 1;
  __asm__ volatile("cli");
  for (u64 i = 0; i < passes; i++) state = spin_step(state);
  __asm__ volatile("sti");
  return state;
}

/* Spins at CPL0 with interrupts on until `ticks` timer ticks passed; returns the loop
 * count. Interrupts arrive here at CPL0; the timer does not preempt kernel code. */
u64 kernel_spin(u64 ticks, int in_memory) {
  u64 until = rr_task_table.ticks + ticks, loops = 0;
  static u64 memory_loops;
  __asm__ volatile("sti");
  if (!in_memory) {
    while (*(volatile u64*)&rr_task_table.ticks < until) loops++;
  } else {
    /* Progress only in memory: at every pass the registers are the same, so a VMM
     * that finds an interrupted pass again by its registers alone picks the wrong one
     * (docs/record-replay.md, "Searched positions"). */
    memory_loops = 0;
    __asm__ volatile(
        "1: incq (%0)\n"
        "   cmpq %1, (%2)\n"
        "   jb 1b\n"
        :
        : "r"(&memory_loops), "r"(until), "r"(&rr_task_table.ticks)
        : "memory", "cc");
    loops = memory_loops;
  }
  __asm__ volatile("cli");
  return loops;
}

/* syscallwork=N: every system call first calls spin_step N times with interrupts on, kernel
 * work entered from user mode that a timer tick can outlast (a Linux page fault reading a
 * file): the recorder waits it out and delivers the tick at the kernel's return
 * (docs/record-replay.md, "Kernel-return stops"). */
static void syscall_work(void) {
  static i64 passes = -1;
  if (passes < 0) passes = cmdline_int("syscallwork", 0);
  if (passes == 0) return;
  u64 state = 1;
  __asm__ volatile("sti");
  for (i64 i = 0; i < passes; i++) state = spin_step(state);
  __asm__ volatile("cli");
}

static struct rr_trap_frame* on_syscall(struct rr_trap_frame* frame) {
  struct rr_task* task = current_task();
  u64 number = frame->rax, a0 = frame->rdi, a1 = frame->rsi;
  syscall_work();
  task->syscalls_total++;
  if (number < RR_SYSCALL_SLOTS) task->syscall_count[number]++;
  frame->rip += 2; /* past the ud2 */
  i64 result = 0;
  switch (number) {
    case SYS_EXIT:
      finish_task(task, (i64)a0);
      return schedule(frame);
    case SYS_WRITE:
      if (!user_range_ok(a0, a1)) return kill_current(frame, "bad write buffer");
      serial_write((const char*)a0, a1);
      result = (i64)a1;
      break;
    case SYS_YIELD:
      frame->rax = 0;
      task->state = TASK_READY;
      return schedule(frame);
    case SYS_GETPID:
      result = task->pid;
      break;
    case SYS_SLEEP:
      frame->rax = 0;
      if (a0 == 0) break;
      task->wake_tick = rr_task_table.ticks + a0;
      task->state = TASK_SLEEPING;
      return schedule(frame);
    case SYS_TICKS:
      result = (i64)(a0 == 1   ? rr_task_table.ticks_cpl0
                     : a0 == 2 ? rr_task_table.ticks_cpl3
                               : rr_task_table.ticks);
      break;
    case SYS_READ:
      if (!user_range_ok(a0, a1)) return kill_current(frame, "bad read buffer");
      serial_irq(); /* drain the UART in case an interrupt edge was lost before it was armed */
      result = (i64)serial_read((u8*)a0, a1);
      if (result == 0 && a1 != 0) return block(frame, TASK_BLOCKED_READ);
      break;
    case SYS_WAIT:
      if (a0 == 0 || a0 >= RR_MAX_TASKS || rr_task_table.tasks[a0].state == TASK_UNUSED) {
        result = -1;
      } else if (rr_task_table.tasks[a0].state == TASK_EXITED) {
        result = rr_task_table.tasks[a0].exit_code;
      } else {
        task->wait_arg = a0;
        return block(frame, TASK_BLOCKED_WAIT);
      }
      break;
    case SYS_SHUTDOWN:
      machine_exit((u32)a0 & 0xff);
    case SYS_KSPIN:
      result = (i64)kernel_spin(a0, a1 != 0);
      break;
    case SYS_IRQHASH:
      result = (i64)rr_task_table.irq_hash;
      break;
    case SYS_CMDLINE_INT: {
      if (!user_range_ok(a0, 1)) return kill_current(frame, "bad key");
      char key[32];
      u32 i = 0;
      for (; i + 1 < sizeof key && user_range_ok(a0 + i, 1) && ((const char*)a0)[i]; i++)
        key[i] = ((const char*)a0)[i];
      key[i] = 0;
      result = cmdline_int(key, (i64)a1);
      break;
    }
    case SYS_NET_RECV:
      if (!user_range_ok(a0, a1)) return kill_current(frame, "bad net buffer");
      result = virtio_net_recv((u8*)a0, a1);
      if (result == -2) return block(frame, TASK_BLOCKED_NET);
      break;
    case SYS_NET_SEND:
      if (!user_range_ok(a0, a1)) return kill_current(frame, "bad net buffer");
      result = virtio_net_send((const u8*)a0, a1);
      if (result == -2) return block(frame, TASK_BLOCKED_NET);
      break;
    default:
      result = -1;
      break;
  }
  frame->rax = (u64)result;
  return frame;
}

struct rr_trap_frame* trap_dispatch(struct rr_trap_frame* frame) {
  u64 vector = frame->vector;
  if (vector >= IRQ_BASE) return on_irq(frame);
  if ((frame->cs & 3) != 3) panic("exception at CPL0", frame);
  if (vector == 6) {
    const u8* rip = (const u8*)frame->rip;
    if (user_range_ok(frame->rip, 2) && rip[0] == 0x0f && rip[1] == 0x0b) return on_syscall(frame);
    return kill_current(frame, "invalid opcode");
  }
  return kill_current(frame, vector == 14 ? "page fault" : "exception");
}
