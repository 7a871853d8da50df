/* Interface shared by the test-guest kernel, its CPL3 programs and (by documentation,
 * schemas/test-guest-abi.md) the offline analyzer: system-call numbers, the program
 * descriptor and the task table layout. Freestanding C, no libc. */
#ifndef RR_GUEST_ABI_H
#define RR_GUEST_ABI_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef long i64;

/* System calls: `ud2` at CPL3, rax = number, args in rdi, rsi, rdx, r10, result in rax.
 * Blocking calls (READ, WAIT, NET_RECV, NET_SEND when the ring is full) are restarted:
 * the kernel leaves RIP on the ud2 and re-executes it when the task is woken. */
enum rr_syscall {
  SYS_EXIT = 0,         /* (code) -> does not return */
  SYS_WRITE = 1,        /* (buf, len) -> len; writes to COM1 */
  SYS_YIELD = 2,        /* () -> 0 */
  SYS_GETPID = 3,       /* () -> pid */
  SYS_SLEEP = 4,        /* (ticks) -> 0 */
  SYS_TICKS = 5,        /* (kind) -> timer ticks since boot: 0 all, 1 taken at CPL0, 2 at CPL3 */
  SYS_READ = 6,         /* (buf, len) -> bytes read from COM1 (>= 1), blocks */
  SYS_WAIT = 7,         /* (pid) -> exit code of pid, blocks; -1 if no such task */
  SYS_SHUTDOWN = 8,     /* (status) -> powers off via port 0xf4 with status */
  SYS_KSPIN = 9,        /* (ticks, in_memory) -> spins at CPL0 with IF=1 until ticks elapsed; loops */
  SYS_IRQHASH = 10,     /* () -> hash of interrupt arrivals so far (see schema) */
  SYS_CMDLINE_INT = 11, /* (key, default) -> value of `key=N` on the kernel command line */
  SYS_NET_RECV = 12,    /* (buf, cap) -> frame length, blocks; -1 if no NIC */
  SYS_NET_SEND = 13,    /* (buf, len) -> len; -1 if no NIC */
  SYS_COUNT = 14,
};

#define RR_MAX_TASKS 8 /* slot 0 is the CPL0 idle task */
#define RR_SYSCALL_SLOTS 16

/* Task states in rr_task.state. */
enum rr_task_state {
  TASK_UNUSED = 0,
  TASK_READY = 1,
  TASK_RUNNING = 2,
  TASK_SLEEPING = 3,
  TASK_BLOCKED_READ = 4,
  TASK_BLOCKED_WAIT = 5,
  TASK_BLOCKED_NET = 6,
  TASK_EXITED = 7,
};

/* Register image exactly as the interrupt stubs push it (lowest address first). */
struct rr_trap_frame {
  u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
  u64 vector, error_code;
  u64 rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

struct rr_task {
  u32 pid;                   /* 0 */
  u32 state;                 /* 4: enum rr_task_state */
  char name[16];             /* 8: NUL-padded */
  u64 cr3;                   /* 24: page-table root (all tasks share one) */
  u64 kernel_stack_top;      /* 32 */
  u64 user_stack_top;        /* 40: 0 for the idle task */
  u64 frame_addr;            /* 48: saved trap frame on the kernel stack (not running) */
  struct rr_trap_frame regs; /* 56: copy of that frame, taken when switched out */
  u64 ticks_cpl3;            /* 232: timer ticks that interrupted this task at CPL3 */
  u64 ticks_cpl0;            /* 240: timer ticks taken at CPL0 while this task was current */
  u64 switches_in;           /* 248 */
  u64 wake_tick;             /* 256: for SLEEPING */
  i64 exit_code;             /* 264: for EXITED */
  u64 syscalls_total;        /* 272: ud2 system calls handled (restarts included) */
  u32 syscall_count[RR_SYSCALL_SLOTS]; /* 280: per number */
  u64 wait_arg;                        /* 344: pid for BLOCKED_WAIT */
  u64 reserved[4];                     /* 352 .. 384 */
};

#define RR_TASK_TABLE_MAGIC 0x54545252u /* "RRTT" */
#define RR_TASK_TABLE_VERSION 1

struct rr_task_table {
  u32 magic;                          /* 0 */
  u16 version;                        /* 4 */
  u16 task_size;                      /* 6: sizeof(struct rr_task) = 384 */
  u32 count;                          /* 8: number of slots = RR_MAX_TASKS */
  u32 current;                        /* 12: slot index of the task on the CPU */
  u64 ticks;                          /* 16: timer interrupts since boot */
  u64 ticks_cpl0;                     /* 24 */
  u64 ticks_cpl3;                     /* 32 */
  u64 irq_hash;                       /* 40 */
  char program[16];                   /* 48 */
  struct rr_task tasks[RR_MAX_TASKS]; /* 64 */
};

/* Program descriptor: every program defines `const struct rr_program rr_program`. */
#define RR_PROGRAM_SERIAL_INPUT 1u /* enable the UART receive interrupt (IRQ 4) */
#define RR_PROGRAM_VIRTIO_NET 2u   /* probe virtio-mmio net devices from the command line */

struct rr_program_task {
  const char* name;
  i64 (*entry)(i64 arg);
  i64 arg;
};

struct rr_program {
  const char* name;
  u32 timer_hz;      /* default PIT rate; `hz=N` on the command line overrides */
  u32 quantum_ticks; /* round-robin time slice */
  u32 flags;
  u32 task_count; /* <= RR_MAX_TASKS - 1; task i gets pid i + 1 */
  struct rr_program_task tasks[RR_MAX_TASKS - 1];
};

#endif
