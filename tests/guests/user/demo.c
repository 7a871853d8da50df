/* demo: the built-in demo guest (`rr-vmm run` with no argument). Three CPL3 workers
 * compute under the preemptive round-robin scheduler, print progress and sleep between
 * rounds (so timer ticks arrive both at CPL3 and in the CPL0 idle loop); the main task
 * waits for them and prints a hash of their results, which does not depend on timing.
 * `work=N` on the command line scales the computation (percent, default 100). */
#include "ulib.h"

#define ROUNDS 8
#define SLEEP_TICKS 10

static u64 results[RR_MAX_TASKS];
static u8 sieve[1 << 16];

static u64 work_units(u64 per_round) { return per_round * (u64)sys_cmdline_int("work", 100) / 100; }

static void report(const char* name, int round, u64 value) {
  uprintf("demo: %s round %d/%d value=%lx tick=%lu\n", name, round + 1, ROUNDS, value, sys_ticks());
}

/* 64-bit LCG chain: pure register work. */
static i64 lcg_worker(i64 arg) {
  u64 x = (u64)arg, n = work_units(6000000);
  for (int round = 0; round < ROUNDS; round++) {
    for (u64 i = 0; i < n; i++) x = x * 6364136223846793005ul + 1442695040888963407ul;
    report("lcg", round, x);
    sys_sleep(SLEEP_TICKS);
  }
  results[sys_getpid()] = x;
  return 0;
}

/* Collatz step counts: branchy register work. */
static i64 collatz_worker(i64 arg) {
  u64 total = 0, next = (u64)arg, n = work_units(60000);
  for (int round = 0; round < ROUNDS; round++) {
    for (u64 i = 0; i < n; i++, next++) {
      for (u64 v = next; v != 1; total++) v = (v & 1) ? 3 * v + 1 : v / 2;
    }
    report("collatz", round, total);
    sys_sleep(SLEEP_TICKS);
  }
  results[sys_getpid()] = total;
  return 0;
}

/* Sieve of Eratosthenes over a 64 KiB table: memory writes. */
static i64 sieve_worker(i64 arg) {
  (void)arg;
  u64 hash = HASH_INIT, repeats = work_units(12);
  for (int round = 0; round < ROUNDS; round++) {
    u64 primes = 0;
    for (u64 r = 0; r < repeats; r++) {
      memset(sieve, 1, sizeof sieve);
      primes = 0;
      for (u64 i = 2; i < sizeof sieve; i++) {
        if (!sieve[i]) continue;
        primes++;
        for (u64 j = i * i; j < sizeof sieve; j += i) sieve[j] = 0;
      }
    }
    hash = hash_fold(hash, primes + (u64)round);
    report("sieve", round, primes);
    sys_sleep(SLEEP_TICKS);
  }
  results[sys_getpid()] = hash;
  return 0;
}

static i64 demo_main(i64 arg) {
  (void)arg;
  uprintf("demo: main pid %ld starting workers, work=%ld%%\n", sys_getpid(),
          sys_cmdline_int("work", 100));
  u64 hash = HASH_INIT;
  i64 status = 0;
  for (i64 pid = 2; pid <= 4; pid++) {
    i64 code = sys_wait(pid);
    if (code != 0) status = 1;
    hash = hash_fold(hash, results[pid]);
    uprintf("demo: worker %ld exited code=%ld result=%lx\n", pid, code, results[pid]);
  }
  uprintf("demo: ticks=%lu cpl0=%lu cpl3=%lu\n", sys_ticks(), sys_ticks_cpl0(), sys_ticks_cpl3());
  finish_program("demo", status, hash);
}

const struct rr_program rr_program = {
    .name = "demo",
    .timer_hz = 100,
    .quantum_ticks = 2,
    .task_count = 4,
    .tasks = {{"main", demo_main, 0},
              {"lcg", lcg_worker, 1},
              {"collatz", collatz_worker, 27},
              {"sieve", sieve_worker, 0}},
};
