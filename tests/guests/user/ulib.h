/* CPL3 runtime for the test programs: system-call wrappers, formatting, hashing. */
#ifndef RR_GUEST_ULIB_H
#define RR_GUEST_ULIB_H

#include <stdarg.h>

#include "guest_abi.h"

static inline i64 syscall4(i64 number, i64 a0, i64 a1, i64 a2, i64 a3) {
  i64 result;
  register i64 r10 __asm__("r10") = a3;
  __asm__ volatile("ud2"
                   : "=a"(result)
                   : "a"(number), "D"(a0), "S"(a1), "d"(a2), "r"(r10)
                   : "memory");
  return result;
}
static inline i64 syscall0(i64 n) { return syscall4(n, 0, 0, 0, 0); }
static inline i64 syscall1(i64 n, i64 a0) { return syscall4(n, a0, 0, 0, 0); }
static inline i64 syscall2(i64 n, i64 a0, i64 a1) { return syscall4(n, a0, a1, 0, 0); }

static inline i64 sys_write(const void* buf, u64 len) {
  return syscall2(SYS_WRITE, (i64)buf, (i64)len);
}
static inline i64 sys_read(void* buf, u64 len) { return syscall2(SYS_READ, (i64)buf, (i64)len); }
static inline _Noreturn void sys_exit(i64 code) {
  syscall1(SYS_EXIT, code);
  __builtin_unreachable();
}
static inline _Noreturn void sys_shutdown(i64 status) {
  syscall1(SYS_SHUTDOWN, status);
  __builtin_unreachable();
}
static inline i64 sys_yield(void) { return syscall0(SYS_YIELD); }
static inline i64 sys_getpid(void) { return syscall0(SYS_GETPID); }
static inline i64 sys_sleep(u64 ticks) { return syscall1(SYS_SLEEP, (i64)ticks); }
static inline u64 sys_ticks(void) { return (u64)syscall1(SYS_TICKS, 0); }
static inline u64 sys_ticks_cpl0(void) { return (u64)syscall1(SYS_TICKS, 1); }
static inline u64 sys_ticks_cpl3(void) { return (u64)syscall1(SYS_TICKS, 2); }
static inline i64 sys_wait(i64 pid) { return syscall1(SYS_WAIT, pid); }
static inline u64 sys_kspin(u64 ticks) { return (u64)syscall2(SYS_KSPIN, (i64)ticks, 0); }
/* The same spin counting in memory only: every pass has the same registers. */
static inline u64 sys_kspin_in_memory(u64 ticks) {
  return (u64)syscall2(SYS_KSPIN, (i64)ticks, 1);
}
static inline u64 sys_irqhash(void) { return (u64)syscall0(SYS_IRQHASH); }
static inline i64 sys_cmdline_int(const char* key, i64 fallback) {
  return syscall2(SYS_CMDLINE_INT, (i64)key, fallback);
}
static inline i64 sys_net_recv(void* buf, u64 cap) {
  return syscall2(SYS_NET_RECV, (i64)buf, (i64)cap);
}
static inline i64 sys_net_send(const void* buf, u64 len) {
  return syscall2(SYS_NET_SEND, (i64)buf, (i64)len);
}

#define HASH_INIT 0xcbf29ce484222325ul
static inline u64 hash_fold(u64 hash, u64 value) { return (hash ^ value) * 0x100000001b3ul; }
u64 hash_bytes(u64 hash, const void* data, u64 len);

/* printf subset: %s %c %d %u %x with optional l, and %%. One SYS_WRITE per call. */
void uprintf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
u64 ustrlen(const char* s);

/* Prints the final "RESULT <program> status=<s> hash=<hex>" line and powers off. */
_Noreturn void finish_program(const char* program, i64 status, u64 hash);

void* memcpy(void* dst, const void* src, u64 n);
void* memset(void* dst, int c, u64 n);
int memcmp(const void* a, const void* b, u64 n);

#endif
