/* CPL3 runtime. Linked into the user region (objects named *.user.o). */
#include "ulib.h"

/* One user stack per task slot; the kernel points each task's rsp at its slot. */
u8 rr_user_stacks[RR_MAX_TASKS][32768] __attribute__((aligned(16)));

/* Every task starts here (rdi = entry, rsi = arg); returning from entry exits the task. */
void rr_user_start(i64 (*entry)(i64), i64 arg) { sys_exit(entry(arg)); }

void* memcpy(void* dst, const void* src, u64 n) {
  u8* d = dst;
  const u8* s = src;
  while (n--) *d++ = *s++;
  return dst;
}

void* memset(void* dst, int c, u64 n) {
  u8* d = dst;
  while (n--) *d++ = (u8)c;
  return dst;
}

int memcmp(const void* a, const void* b, u64 n) {
  const u8 *x = a, *y = b;
  for (; n; n--, x++, y++)
    if (*x != *y) return *x < *y ? -1 : 1;
  return 0;
}

u64 ustrlen(const char* s) {
  u64 n = 0;
  while (s[n]) n++;
  return n;
}

u64 hash_bytes(u64 hash, const void* data, u64 len) {
  const u8* p = data;
  for (u64 i = 0; i < len; i++) hash = hash_fold(hash, p[i]);
  return hash;
}

struct out {
  char buf[512];
  u64 n;
};

static void put_char(struct out* o, char c) {
  if (o->n == sizeof o->buf) {
    sys_write(o->buf, o->n);
    o->n = 0;
  }
  o->buf[o->n++] = c;
}

static void put_unsigned(struct out* o, u64 value, u32 base) {
  char digits[20];
  int n = 0;
  do {
    digits[n++] = "0123456789abcdef"[value % base];
    value /= base;
  } while (value);
  while (n) put_char(o, digits[--n]);
}

void uprintf(const char* fmt, ...) {
  struct out o;
  o.n = 0;
  va_list args;
  va_start(args, fmt);
  for (const char* p = fmt; *p; p++) {
    if (*p != '%') {
      put_char(&o, *p);
      continue;
    }
    int is_long = 0;
    if (p[1] == 'l') is_long = 1, p++;
    switch (*++p) {
      case 's':
        for (const char* s = va_arg(args, const char*); *s; s++) put_char(&o, *s);
        break;
      case 'c':
        put_char(&o, (char)va_arg(args, int));
        break;
      case 'd': {
        i64 v = is_long ? va_arg(args, i64) : va_arg(args, int);
        if (v < 0) put_char(&o, '-'), v = -v;
        put_unsigned(&o, (u64)v, 10);
        break;
      }
      case 'u':
        put_unsigned(&o, is_long ? va_arg(args, u64) : va_arg(args, u32), 10);
        break;
      case 'x':
        put_unsigned(&o, is_long ? va_arg(args, u64) : va_arg(args, u32), 16);
        break;
      case '%':
        put_char(&o, '%');
        break;
      default:
        put_char(&o, '?');
        if (!*p) p--;
        break;
    }
  }
  va_end(args);
  if (o.n) sys_write(o.buf, o.n);
}

_Noreturn void finish_program(const char* program, i64 status, u64 hash) {
  uprintf("RESULT %s status=%ld hash=%lx\n", program, status, hash);
  sys_shutdown(status);
}
