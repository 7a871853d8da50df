/* hello: the smallest program; one task prints a greeting and powers off with 0. */
#include "ulib.h"

static const char greeting[] = "Hello from the rr test guest\n";

static i64 hello_main(i64 arg) {
  (void)arg;
  sys_write(greeting, sizeof greeting - 1);
  finish_program("hello", 0, hash_bytes(HASH_INIT, greeting, sizeof greeting - 1));
}

const struct rr_program rr_program = {
    .name = "hello",
    .timer_hz = 100,
    .quantum_ticks = 1,
    .task_count = 1,
    .tasks = {{"hello", hello_main, 0}},
};
