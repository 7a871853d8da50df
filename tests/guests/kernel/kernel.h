/* Internal interface of the test-guest kernel (CPL0). Keep CPL0 work small: the
 * target host emulates every CPL0 instruction. */
#ifndef RR_GUEST_KERNEL_H
#define RR_GUEST_KERNEL_H

#include "guest_abi.h"

#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_DS 0x1b
#define USER_CS 0x23
#define TSS_SELECTOR 0x28

#define IRQ_BASE 0x20
#define IRQ_TIMER 0
#define IRQ_COM1 4

#define USER_REGION_BEGIN 0x200000ul
#define USER_REGION_END 0x600000ul

/* Exit statuses chosen by the kernel itself (programs use 0 for success). */
#define EXIT_KERNEL_PANIC 0x7e
#define EXIT_TASK_KILLED 0x7d

static inline void outb(u16 port, u8 value) {
  __asm__ volatile("outb %0, %1" ::"a"(value), "Nd"(port));
}
static inline u8 inb(u16 port) {
  u8 value;
  __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}
static inline u32 mmio_read32(u64 addr) { return *(volatile u32*)addr; }
static inline void mmio_write32(u64 addr, u32 value) { *(volatile u32*)addr = value; }
static inline void compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }

/* FNV-1a style folding, also used by the programs. */
#define HASH_INIT 0xcbf29ce484222325ul
static inline u64 hash_fold(u64 hash, u64 value) { return (hash ^ value) * 0x100000001b3ul; }

/* console.c */
void serial_init(void);
void serial_enable_receive_interrupt(void);
void serial_write(const char* buf, u64 len);
void kputs(const char* s);
void kput_hex(u64 value);
void kput_dec(u64 value);
u64 serial_read(u8* buf, u64 len); /* from the receive ring, 0 if empty */
void serial_irq(void);

/* main.c */
extern char kernel_cmdline[1024];
i64 cmdline_int(const char* key, i64 fallback);
const char* cmdline_find(const char* key, const char* from);
void pic_eoi(u32 irq);
void pic_unmask(u32 irq);
void set_kernel_stack(u64 rsp0);
_Noreturn void machine_exit(u32 status);
_Noreturn void panic(const char* what, const struct rr_trap_frame* frame);

/* sched.c */
extern struct rr_task_table rr_task_table;
void sched_init(const struct rr_program* program, u64 cr3);
_Noreturn void sched_start(void);
struct rr_trap_frame* trap_dispatch(struct rr_trap_frame* frame);
void wake_blocked(u32 state);
_Noreturn void enter_frame(struct rr_trap_frame* frame);
void idle_loop(void);

/* virtio_net.c */
int virtio_net_init(void);                   /* 0 if a device was found and brought up */
i64 virtio_net_recv(u8* buf, u64 cap);       /* -2: nothing yet, -1: no device */
i64 virtio_net_send(const u8* buf, u64 len); /* -2: ring full */
u32 virtio_net_irq_line(void);               /* 0xffffffff if none */
void virtio_net_irq(void);

/* From the user library (mapped user, executable at CPL0 since SMEP is off). */
void* memcpy(void* dst, const void* src, u64 n);
void* memset(void* dst, int c, u64 n);
void rr_user_start(i64 (*entry)(i64), i64 arg);
extern u8 rr_user_stacks[RR_MAX_TASKS][32768];

u64 kernel_spin(u64 ticks, int in_memory);
u64 kernel_spin_calling(u64 ticks);
u64 kernel_spin_interrupts_off(u64 passes);
u64 kernel_spin_rep_string(u64 ticks);

#endif
