/* net: echoes Ethernet frames through the virtio-net driver (virtio-mmio v2). For every
 * received frame it hashes the bytes and replies with MACs swapped, ethertype 0x88b5 and
 * the payload "RRACK" <4-byte sequence copied from the request> <hash, 16 hex digits>.
 * A frame whose payload starts with "RRQUIT" (or `frames=N` frames, if given) ends the run;
 * the quit frame is answered with "RRBYE" <combined hash, 16 hex digits>.
 * Peer mode (`self=S`, for two guests talking to each other and to the outside): see below. */
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

/* ---- Peer mode (`self=S`; off by default) ----
 * The guest is 10.77.0.S / 02:00:00:77:00:S on the test LAN and answers every frame with an
 * IPv4/UDP datagram (so a router classifies its traffic by address): to the source address
 * and port of an IPv4/UDP frame, otherwise to the peer (10.77.0.P, port 9000). With
 * `peer=P kick=K` it first sends K datagrams "RRPNG" <4-byte number> to the peer, so two
 * guests have a conversation; "RRACK" answers are not answered. "RRQUIT" ends the run as
 * above, also as a UDP payload. */
#define ETHERTYPE_IPV4 0x0800
#define IP_HEADER 20
#define UDP_HEADER 8
#define PEER_PORT 9000
#define UDP_PAYLOAD (ETH_HEADER + IP_HEADER + UDP_HEADER)
static const u8 kLanMacPrefix[5] = {0x02, 0x00, 0x00, 0x77, 0x00};

static void put16(u8* p, u64 v) {
  p[0] = (u8)(v >> 8);
  p[1] = (u8)v;
}

/* Ethernet + IPv4 + UDP headers in `reply`; returns the payload offset. */
static u64 start_udp(const u8 dst_mac[6], const u8 src_mac[6], const u8 src_ip[4],
                     const u8 dst_ip[4], u64 src_port, u64 dst_port, u64 payload) {
  memset(reply, 0, sizeof reply);
  memcpy(reply, dst_mac, 6);
  memcpy(reply + 6, src_mac, 6);
  put16(reply + 12, ETHERTYPE_IPV4);
  u8* ip = reply + ETH_HEADER;
  ip[0] = 0x45;
  put16(ip + 2, IP_HEADER + UDP_HEADER + payload);
  ip[8] = 64;
  ip[9] = 17; /* UDP */
  memcpy(ip + 12, src_ip, 4);
  memcpy(ip + 16, dst_ip, 4);
  u64 sum = 0;
  for (int i = 0; i < IP_HEADER; i += 2) sum += (u64)ip[i] << 8 | ip[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  put16(ip + 10, ~sum & 0xffff);
  u8* udp = ip + IP_HEADER;
  put16(udp, src_port);
  put16(udp + 2, dst_port);
  put16(udp + 4, UDP_HEADER + payload); /* checksum 0: none (IPv4) */
  return ETH_HEADER + IP_HEADER + UDP_HEADER;
}

static void lan_ip(u8 out[4], i64 host) {
  out[0] = 10, out[1] = 77, out[2] = 0, out[3] = (u8)host;
}

static void kick_peer(i64 self, i64 peer) {
  i64 kicks = sys_cmdline_int("kick", 0);
  if (kicks <= 0 || peer < 0 || peer > 255) return;
  u8 self_mac[6], peer_mac[6], self_ip[4], peer_ip[4];
  memcpy(self_mac, kLanMacPrefix, 5), self_mac[5] = (u8)self;
  memcpy(peer_mac, kLanMacPrefix, 5), peer_mac[5] = (u8)peer;
  lan_ip(self_ip, self), lan_ip(peer_ip, peer);
  for (i64 i = 0; i < kicks; i++) {
    u64 at = start_udp(peer_mac, self_mac, self_ip, peer_ip, PEER_PORT, PEER_PORT, 32);
    memcpy(reply + at, "RRPNG", 5);
    memcpy(reply + at + 5, &i, 4);
    sys_net_send(reply, at + 32);
  }
  uprintf("net: sent %ld frames to peer %ld\n", kicks, peer);
}

/* The answer to `frame` in peer mode: a datagram back to where it came from. */
static u64 peer_reply(i64 self, i64 peer, i64 len, u64 hash) {
  u8 self_ip[4], to_ip[4];
  lan_ip(self_ip, self);
  u64 to_port = PEER_PORT, from_port = PEER_PORT;
  const u8* ip = frame + ETH_HEADER;
  int is_udp = len >= ETH_HEADER + IP_HEADER + UDP_HEADER && frame[12] == 0x08 &&
               frame[13] == 0x00 && (ip[0] >> 4) == 4 && ip[9] == 17;
  if (is_udp) {
    u64 ihl = (u64)(ip[0] & 0xf) * 4;
    const u8* udp = ip + ihl;
    memcpy(to_ip, ip + 12, 4);
    if (ETH_HEADER + ihl + UDP_HEADER <= (u64)len) {
      to_port = (u64)udp[0] << 8 | udp[1];
      from_port = (u64)udp[2] << 8 | udp[3];
    }
  } else {
    lan_ip(to_ip, peer < 0 ? 1 : peer);
  }
  u64 at = start_udp(frame + 6, frame, self_ip, to_ip, from_port, to_port, 32);
  memcpy(reply + at, "RRACK", 5);
  put_hex64(reply + at + 9, hash);
  return at + 32;
}

static i64 net_main(i64 arg) {
  (void)arg;
  i64 limit = sys_cmdline_int("frames", 0);
  u64 combined = HASH_INIT, count = 0;
  i64 self = sys_cmdline_int("self", -1), peer = sys_cmdline_int("peer", -1);
  uprintf("net: waiting for frames%s\n", limit ? " (limited by frames=)" : "");
  if (self >= 0) kick_peer(self, peer);
  for (;;) {
    i64 len = sys_net_recv(frame, sizeof frame);
    if (len < 0) {
      uprintf("net: no virtio-net device\n");
      finish_program("net", 2, 0);
    }
    /* In peer mode the payload may follow IPv4 and UDP headers (no options). */
    u64 payload = self >= 0 && len >= UDP_PAYLOAD + 6 && frame[12] == 0x08 ? UDP_PAYLOAD : ETH_HEADER;
    if (len >= (i64)payload + 6 && memcmp(frame + payload, "RRQUIT", 6) == 0) {
      u64 at = start_reply((u64)len, "RRBYE");
      put_hex64(reply + at, combined);
      sys_net_send(reply, MIN_FRAME);
      break;
    }
    u64 hash = hash_bytes(HASH_INIT, frame, (u64)len);
    combined = hash_fold(combined, hash);
    count++;
    if (self >= 0) {
      /* Acknowledgements are not answered: conversations end. */
      if (len < (i64)payload + 5 || memcmp(frame + payload, "RRACK", 5) != 0)
        sys_net_send(reply, peer_reply(self, peer, len, hash));
    } else {
      u64 at = start_reply((u64)len, "RRACK");
      if (len >= ETH_HEADER + 9) memcpy(reply + at, frame + ETH_HEADER + 5, 4); /* sequence */
      put_hex64(reply + at + 4, hash);
      sys_net_send(reply, MIN_FRAME);
    }
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
