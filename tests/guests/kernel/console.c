/* COM1 16550: polled output, interrupt-driven input into a ring buffer. */
#include "kernel.h"

#define COM1 0x3f8
#define UART_DATA 0
#define UART_IER 1
#define UART_FCR 2
#define UART_IIR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LSR_DATA_READY 0x01
#define LSR_THR_EMPTY 0x20

static u8 rx_ring[1024];
static u32 rx_head, rx_tail; /* head: next write, tail: next read */

void serial_init(void) {
  outb(COM1 + UART_IER, 0);
  outb(COM1 + UART_LCR, 0x80); /* divisor latch */
  outb(COM1 + UART_DATA, 1);   /* 115200 baud */
  outb(COM1 + UART_IER, 0);
  outb(COM1 + UART_LCR, 0x03); /* 8N1 */
  /* Keep the FIFO in whatever state firmware left it: toggling FIFO-enable clears the
   * receive buffer and would lose input that arrived before boot. */
  outb(COM1 + UART_FCR, (inb(COM1 + UART_IIR) & 0xc0) == 0xc0 ? 0xc1 : 0x00);
  outb(COM1 + UART_MCR, 0x0b); /* DTR, RTS, OUT2 (routes the IRQ on PCs) */
}

/* Called after the PIC is initialised (its reset forgets an edge raised earlier). */
void serial_enable_receive_interrupt(void) { outb(COM1 + UART_IER, 0x01); }

void serial_write(const char* buf, u64 len) {
  for (u64 i = 0; i < len; i++) {
    while (!(inb(COM1 + UART_LSR) & LSR_THR_EMPTY)) {
    }
    outb(COM1 + UART_DATA, (u8)buf[i]);
  }
}

void kputs(const char* s) {
  u64 n = 0;
  while (s[n]) n++;
  serial_write(s, n);
}

void kput_hex(u64 value) {
  char text[18] = {'0', 'x'};
  for (int i = 0; i < 16; i++) text[2 + i] = "0123456789abcdef"[(value >> (60 - 4 * i)) & 0xf];
  serial_write(text, sizeof text);
}

void kput_dec(u64 value) {
  char text[20];
  int n = 0;
  do {
    text[sizeof text - 1 - n++] = (char)('0' + value % 10);
    value /= 10;
  } while (value);
  serial_write(text + sizeof text - n, (u64)n);
}

void serial_irq(void) {
  while (inb(COM1 + UART_LSR) & LSR_DATA_READY) {
    u8 byte = inb(COM1 + UART_DATA);
    u32 next = (rx_head + 1) % sizeof rx_ring;
    if (next != rx_tail) { /* drop on overflow rather than block the interrupt */
      rx_ring[rx_head] = byte;
      rx_head = next;
    }
  }
  wake_blocked(TASK_BLOCKED_READ);
}

u64 serial_read(u8* buf, u64 len) {
  u64 n = 0;
  while (n < len && rx_tail != rx_head) {
    buf[n++] = rx_ring[rx_tail];
    rx_tail = (rx_tail + 1) % sizeof rx_ring;
  }
  return n;
}
