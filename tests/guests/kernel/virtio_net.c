/* Minimal virtio-net driver over virtio-mmio version 2 (split virtqueues, VIRTIO_F_VERSION_1).
 * Devices come from `virtio_mmio.device=<size>@<base>:<irq>` on the command line; the first
 * one whose DeviceID is 1 (network) is used. Queue 0 receives, queue 1 transmits. */
#include "kernel.h"

#define VIRTIO_MAGIC 0x74726976u /* "virt" */
#define REG_MAGIC 0x000
#define REG_VERSION 0x004
#define REG_DEVICE_ID 0x008
#define REG_DEVICE_FEATURES 0x010
#define REG_DEVICE_FEATURES_SEL 0x014
#define REG_DRIVER_FEATURES 0x020
#define REG_DRIVER_FEATURES_SEL 0x024
#define REG_QUEUE_SEL 0x030
#define REG_QUEUE_NUM_MAX 0x034
#define REG_QUEUE_NUM 0x038
#define REG_QUEUE_READY 0x044
#define REG_QUEUE_NOTIFY 0x050
#define REG_INTERRUPT_STATUS 0x060
#define REG_INTERRUPT_ACK 0x064
#define REG_STATUS 0x070
#define REG_QUEUE_DESC 0x080
#define REG_QUEUE_DRIVER 0x090
#define REG_QUEUE_DEVICE 0x0a0

#define STATUS_ACKNOWLEDGE 1u
#define STATUS_DRIVER 2u
#define STATUS_DRIVER_OK 4u
#define STATUS_FEATURES_OK 8u
#define STATUS_FAILED 128u

#define FEATURE_NET_MAC 5u        /* bit in word 0 */
#define FEATURE_VERSION_1_HIGH 0u /* bit 32 = bit 0 of word 1 */

#define QUEUE_SIZE 8
#define BUFFER_SIZE 2048
#define NET_HDR_SIZE 12 /* struct virtio_net_hdr with num_buffers (VERSION_1) */
#define DESC_F_WRITE 2

struct virtq_desc {
  u64 addr;
  u32 len;
  u16 flags;
  u16 next;
};
struct virtq_avail {
  u16 flags;
  u16 idx;
  u16 ring[QUEUE_SIZE];
  u16 used_event;
};
struct virtq_used_elem {
  u32 id;
  u32 len;
};
struct virtq_used {
  u16 flags;
  u16 idx;
  struct virtq_used_elem ring[QUEUE_SIZE];
  u16 avail_event;
};

struct virtq {
  struct virtq_desc desc[QUEUE_SIZE] __attribute__((aligned(16)));
  struct virtq_avail avail __attribute__((aligned(2)));
  struct virtq_used used __attribute__((aligned(4)));
  u16 last_used; /* driver's copy of how far used has been consumed */
  u8 buffers[QUEUE_SIZE][BUFFER_SIZE] __attribute__((aligned(16)));
};

static struct virtq rx_queue, tx_queue;
static u64 net_base;
static u32 net_irq = 0xffffffffu;

u32 virtio_net_irq_line(void) { return net_irq; }

static u32 reg_read(u32 offset) { return mmio_read32(net_base + offset); }
static void reg_write(u32 offset, u32 value) { mmio_write32(net_base + offset, value); }

static const char* parse_hex(const char* p, u64* out) {
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) p += 2;
  u64 v = 0;
  for (;; p++) {
    u32 d = *p >= '0' && *p <= '9'                     ? (u32)(*p - '0')
            : (*p | 0x20) >= 'a' && (*p | 0x20) <= 'f' ? (u32)((*p | 0x20) - 'a' + 10)
                                                       : 16;
    if (d == 16) break;
    v = v * 16 + d;
  }
  *out = v;
  return p;
}

static const char* parse_dec(const char* p, u64* out) {
  u64 v = 0;
  while (*p >= '0' && *p <= '9') v = v * 10 + (u64)(*p++ - '0');
  *out = v;
  return p;
}

static int setup_queue(u32 index, struct virtq* q) {
  reg_write(REG_QUEUE_SEL, index);
  if (reg_read(REG_QUEUE_READY) != 0 || reg_read(REG_QUEUE_NUM_MAX) < QUEUE_SIZE) return -1;
  reg_write(REG_QUEUE_NUM, QUEUE_SIZE);
  reg_write(REG_QUEUE_DESC, (u32)(u64)q->desc);
  reg_write(REG_QUEUE_DESC + 4, (u32)((u64)q->desc >> 32));
  reg_write(REG_QUEUE_DRIVER, (u32)(u64)&q->avail);
  reg_write(REG_QUEUE_DRIVER + 4, (u32)((u64)&q->avail >> 32));
  reg_write(REG_QUEUE_DEVICE, (u32)(u64)&q->used);
  reg_write(REG_QUEUE_DEVICE + 4, (u32)((u64)&q->used >> 32));
  reg_write(REG_QUEUE_READY, 1);
  return 0;
}

static int bring_up(void) {
  reg_write(REG_STATUS, 0); /* reset */
  reg_write(REG_STATUS, STATUS_ACKNOWLEDGE);
  reg_write(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  reg_write(REG_DEVICE_FEATURES_SEL, 1);
  u32 high = reg_read(REG_DEVICE_FEATURES);
  reg_write(REG_DEVICE_FEATURES_SEL, 0);
  u32 low = reg_read(REG_DEVICE_FEATURES);
  if (!(high & (1u << FEATURE_VERSION_1_HIGH))) return -1;
  reg_write(REG_DRIVER_FEATURES_SEL, 0);
  reg_write(REG_DRIVER_FEATURES, low & (1u << FEATURE_NET_MAC));
  reg_write(REG_DRIVER_FEATURES_SEL, 1);
  reg_write(REG_DRIVER_FEATURES, 1u << FEATURE_VERSION_1_HIGH);
  reg_write(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
  if (!(reg_read(REG_STATUS) & STATUS_FEATURES_OK)) return -2;
  if (setup_queue(0, &rx_queue) || setup_queue(1, &tx_queue)) return -3;
  /* Give every receive buffer to the device. */
  for (u16 i = 0; i < QUEUE_SIZE; i++) {
    rx_queue.desc[i] = (struct virtq_desc){(u64)rx_queue.buffers[i], BUFFER_SIZE, DESC_F_WRITE, 0};
    rx_queue.avail.ring[i] = i;
  }
  compiler_barrier();
  rx_queue.avail.idx = QUEUE_SIZE;
  reg_write(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  reg_write(REG_QUEUE_NOTIFY, 0);
  return 0;
}

int virtio_net_init(void) {
  for (const char* spec = cmdline_find("virtio_mmio.device", 0); spec;
       spec = cmdline_find("virtio_mmio.device", spec)) {
    u64 size, base, irq;
    const char* p = parse_dec(spec, &size);
    if (*p == 'K' || *p == 'k' || *p == 'M') p++;
    if (*p++ != '@') continue;
    p = parse_hex(p, &base);
    if (*p++ != ':') continue;
    parse_dec(p, &irq);
    net_base = base;
    if (reg_read(REG_MAGIC) != VIRTIO_MAGIC || reg_read(REG_DEVICE_ID) != 1) continue;
    kputs("KERNEL virtio-net at ");
    kput_hex(base);
    kputs(" irq ");
    kput_dec(irq);
    if (reg_read(REG_VERSION) != 2) {
      kputs(": not virtio-mmio version 2\n");
      continue;
    }
    int error = bring_up();
    if (error) {
      reg_write(REG_STATUS, STATUS_FAILED);
      kputs(": setup failed, step ");
      kput_dec((u64)-error);
      kputs("\n");
      continue;
    }
    kputs(": ready\n");
    net_irq = (u32)irq;
    return 0;
  }
  net_base = 0;
  kputs("KERNEL no virtio-net device\n");
  return -1;
}

void virtio_net_irq(void) {
  if (!net_base) return;
  reg_write(REG_INTERRUPT_ACK, reg_read(REG_INTERRUPT_STATUS));
  wake_blocked(TASK_BLOCKED_NET);
}

static void copy_qwords(u8* dst, const u8* src, u64 len) {
  /* Word-sized copy: every CPL0 instruction is emulated on the target host. */
  u64 words = len / 8;
  for (u64 i = 0; i < words; i++) ((u64*)dst)[i] = ((const u64*)src)[i];
  for (u64 i = words * 8; i < len; i++) dst[i] = src[i];
}

i64 virtio_net_recv(u8* buf, u64 cap) {
  if (!net_base) return -1;
  compiler_barrier();
  if (*(volatile u16*)&rx_queue.used.idx == rx_queue.last_used) return -2;
  struct virtq_used_elem elem = rx_queue.used.ring[rx_queue.last_used % QUEUE_SIZE];
  rx_queue.last_used++;
  u64 len = elem.len > NET_HDR_SIZE ? elem.len - NET_HDR_SIZE : 0;
  if (len > cap) len = cap;
  u32 id = elem.id % QUEUE_SIZE;
  copy_qwords(buf, rx_queue.buffers[id] + NET_HDR_SIZE, len);
  /* Recycle the buffer. */
  rx_queue.avail.ring[rx_queue.avail.idx % QUEUE_SIZE] = (u16)id;
  compiler_barrier();
  rx_queue.avail.idx++;
  reg_write(REG_QUEUE_NOTIFY, 0);
  return (i64)len;
}

i64 virtio_net_send(const u8* buf, u64 len) {
  if (!net_base) return -1;
  if (len > BUFFER_SIZE - NET_HDR_SIZE) len = BUFFER_SIZE - NET_HDR_SIZE;
  compiler_barrier();
  u16 used = *(volatile u16*)&tx_queue.used.idx;
  if ((u16)(tx_queue.avail.idx - used) >= QUEUE_SIZE) return -2;
  tx_queue.last_used = used;
  u16 slot = tx_queue.avail.idx % QUEUE_SIZE;
  u8* buffer = tx_queue.buffers[slot];
  for (u32 i = 0; i < NET_HDR_SIZE; i++) buffer[i] = 0; /* no offloads */
  copy_qwords(buffer + NET_HDR_SIZE, buf, len);
  tx_queue.desc[slot] = (struct virtq_desc){(u64)buffer, (u32)(NET_HDR_SIZE + len), 0, 0};
  tx_queue.avail.ring[slot] = slot;
  compiler_barrier();
  tx_queue.avail.idx++;
  reg_write(REG_QUEUE_NOTIFY, 1);
  return (i64)len;
}
