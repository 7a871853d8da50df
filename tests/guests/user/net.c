/* net: echoes Ethernet frames through the virtio-net driver (virtio-mmio v2). For every
 * received frame it hashes the bytes and replies with MACs swapped, ethertype 0x88b5 and
 * the payload "RRACK" <4-byte sequence copied from the request> <hash, 16 hex digits>.
 * A frame whose payload starts with "RRQUIT" (or `frames=N` frames, if given) ends the run;
 * the quit frame is answered with "RRBYE" <combined hash, 16 hex digits>. */
#include "ulib.h"

#define ETH_HEADER 14
#define ETHERTYPE_RR 0x88b5
#define MIN_FRAME 60

static u8 frame[2048], reply[128];

static void put_hex64(u8* out, u64 value) {
  for (int i = 0; i < 16; i++) out[i] = (u8) "0123456789abcdef"[(value >> (60 - 4 * i)) & 0xf];
}

/* Reply header: back to the sender, from the address it used for us. */
static u64 start_reply(u64 frame_len, const char* tag) {
  memcpy(reply, frame + 6, 6);
  memcpy(reply + 6, frame, 6);
  reply[12] = ETHERTYPE_RR >> 8;
  reply[13] = ETHERTYPE_RR & 0xff;
  memset(reply + ETH_HEADER, 0, sizeof reply - ETH_HEADER);
  memcpy(reply + ETH_HEADER, tag, 5);
  (void)frame_len;
  return ETH_HEADER + 5;
}

static i64 net_main(i64 arg) {
  (void)arg;
  i64 limit = sys_cmdline_int("frames", 0);
  u64 combined = HASH_INIT, count = 0;
  uprintf("net: waiting for frames%s\n", limit ? " (limited by frames=)" : "");
  for (;;) {
    i64 len = sys_net_recv(frame, sizeof frame);
    if (len < 0) {
      uprintf("net: no virtio-net device\n");
      finish_program("net", 2, 0);
    }
    if (len >= ETH_HEADER + 6 && memcmp(frame + ETH_HEADER, "RRQUIT", 6) == 0) {
      u64 at = start_reply((u64)len, "RRBYE");
      put_hex64(reply + at, combined);
      sys_net_send(reply, MIN_FRAME);
      break;
    }
    u64 hash = hash_bytes(HASH_INIT, frame, (u64)len);
    combined = hash_fold(combined, hash);
    count++;
    u64 at = start_reply((u64)len, "RRACK");
    if (len >= ETH_HEADER + 9) memcpy(reply + at, frame + ETH_HEADER + 5, 4); /* sequence */
    put_hex64(reply + at + 4, hash);
    sys_net_send(reply, MIN_FRAME);
    if (limit && (i64)count >= limit) break;
  }
  uprintf("net: frames=%lu hash=%lx\n", count, combined);
  finish_program("net", 0, combined);
}

const struct rr_program rr_program = {
    .name = "net",
    .timer_hz = 100,
    .quantum_ticks = 1,
    .flags = RR_PROGRAM_VIRTIO_NET,
    .task_count = 1,
    .tasks = {{"net", net_main, 0}},
};
