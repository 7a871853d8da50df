/* serial-echo: reads COM1 input (interrupt driven, IRQ 4) line by line and echoes each line
 * upper-cased as "ECHO <LINE>". The line "quit" ends the program, which prints the number
 * of bytes received and their hash. A background task computes meanwhile, so input
 * interrupts land both in the idle loop and at CPL3. */
#include "ulib.h"

static volatile int input_done;
static u64 background_rounds;

static i64 background(i64 arg) {
  u64 x = (u64)arg;
  while (!input_done) {
    for (u32 i = 0; i < (1u << 16); i++) x = x * 6364136223846793005ul + 1;
    background_rounds++;
    sys_sleep(1);
  }
  return 0;
}

static i64 echo_main(i64 arg) {
  (void)arg;
  char line[256], chunk[64];
  u64 length = 0, count = 0, lines = 0, hash = HASH_INIT;
  uprintf("serial-echo: ready, type lines, \"quit\" ends\n");
  for (;;) {
    i64 n = sys_read(chunk, sizeof chunk);
    int quit = 0;
    for (i64 i = 0; i < n && !quit; i++) {
      char c = chunk[i];
      count++;
      hash = hash_fold(hash, (u8)c);
      if (c == '\r') continue;
      if (c != '\n') {
        if (length < sizeof line - 1) line[length++] = c;
        continue;
      }
      line[length] = 0;
      if (length == 4 && memcmp(line, "quit", 4) == 0) {
        quit = 1;
        break;
      }
      for (u64 j = 0; j < length; j++)
        if (line[j] >= 'a' && line[j] <= 'z') line[j] = (char)(line[j] - 'a' + 'A');
      uprintf("ECHO %s\n", line);
      lines++;
      length = 0;
    }
    if (quit) break;
  }
  input_done = 1;
  i64 status = sys_wait(2) != 0;
  uprintf("serial-echo: lines=%lu count=%lu hash=%lx\n", lines, count, hash);
  finish_program("serial-echo", status, hash);
}

const struct rr_program rr_program = {
    .name = "serial-echo",
    .timer_hz = 100,
    .quantum_ticks = 1,
    .flags = RR_PROGRAM_SERIAL_INPUT,
    .task_count = 2,
    .tasks = {{"echo", echo_main, 0}, {"background", background, 7}},
};
