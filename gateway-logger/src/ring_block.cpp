#include "ring_block.h"

#include <linux/if_packet.h>
#include <sched.h>

#include <atomic>

namespace gateway {
namespace {

using Clock = std::chrono::steady_clock;

LinkDirection link_direction(uint8_t packet_type) {
  return packet_type == PACKET_OUTGOING ? LinkDirection::kSent : LinkDirection::kReceived;
}

// Waits until the kernel has finished copying the frame (TP_STATUS_USER in its
// own tp_status), or the deadline passes. Counts the frames it had to wait for.
bool wait_for_copy(tpacket3_hdr* header, Clock::time_point deadline, uint32_t& late_copies) {
  std::atomic_ref<uint32_t> status(header->tp_status);
  if ((status.load(std::memory_order_acquire) & TP_STATUS_USER) != 0) return true;
  ++late_copies;
  while ((status.load(std::memory_order_acquire) & TP_STATUS_USER) == 0) {
    if (Clock::now() >= deadline) return false;
    sched_yield();  // the copying CPU may be the one we would spin on
  }
  return true;
}

}  // namespace

BlockWalk walk_block(std::span<uint8_t> block, uint32_t snaplen,
                     std::chrono::microseconds completion_wait,
                     const std::function<void(const CapturedFrame&)>& visit) {
  BlockWalk walk;
  auto* descriptor = reinterpret_cast<tpacket_block_desc*>(block.data());
  const tpacket_hdr_v1& header_v1 = descriptor->hdr.bh1;
  walk.sequence = header_v1.seq_num;
  const uint32_t count = header_v1.num_pkts;
  // blk_len covers the block header and every frame the kernel placed.
  const uint64_t used = std::min<uint64_t>(header_v1.blk_len, block.size());
  uint64_t offset = header_v1.offset_to_first_pkt;
  const Clock::time_point deadline = Clock::now() + completion_wait;
  for (uint32_t i = 0; i < count; ++i) {
    if (offset < sizeof(tpacket_block_desc) || offset + sizeof(tpacket3_hdr) > used) {
      walk.malformed += count - i;
      break;
    }
    auto* header = reinterpret_cast<tpacket3_hdr*>(block.data() + offset);
    // tp_next_offset is written when the slot is reserved, before the copy.
    const uint32_t next = header->tp_next_offset;
    if (!wait_for_copy(header, deadline, walk.late_copies)) {
      ++walk.incomplete;
    } else if (header->tp_mac + uint64_t{header->tp_snaplen} > used - offset) {
      ++walk.malformed;
    } else {
      auto* link = reinterpret_cast<const sockaddr_ll*>(block.data() + offset +
                                                        TPACKET_ALIGN(sizeof(tpacket3_hdr)));
      CapturedFrame frame;
      frame.bytes = {block.data() + offset + header->tp_mac, header->tp_snaplen};
      if (frame.bytes.size() > snaplen) frame.bytes = frame.bytes.first(snaplen);
      frame.wire_length = header->tp_len;
      frame.timestamp_ns = uint64_t{header->tp_sec} * 1'000'000'000ull + header->tp_nsec;
      frame.packet_type = link->sll_pkttype;
      frame.link = link_direction(link->sll_pkttype);
      visit(frame);
      ++walk.visited;
    }
    if (i + 1 == count) break;
    if (next == 0) {  // the chain ends before num_pkts frames
      walk.malformed += count - i - 1;
      break;
    }
    offset += next;
  }
  return walk;
}

}  // namespace gateway
