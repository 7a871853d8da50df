#pragma once
// Walking one TPACKET_V3 block that the kernel handed to user space.
//
// The kernel's contract (net/packet/af_packet.c, Documentation/networking/packet_mmap.rst):
// - the block belongs to user space while block_status has TP_STATUS_USER; we
//   give it back by storing TP_STATUS_KERNEL after the last read;
// - num_pkts frame headers follow offset_to_first_pkt, chained by
//   tp_next_offset, all within blk_len bytes;
// - a frame's slot (and tp_next_offset) is reserved under the queue lock, but
//   its bytes, length fields and sockaddr_ll are written afterwards, outside
//   the lock, and the frame's own tp_status gets TP_STATUS_USER only when that
//   copy is complete. A block can be retired (timeout, or the next frame not
//   fitting) while such a copy is still running on another CPU, which is
//   likely on a busy virtual machine whose vCPU is preempted mid-copy. A frame
//   without TP_STATUS_USER must therefore not be read yet: its header still
//   holds the previous lap's frame at that offset (same sizes, same offsets),
//   which showed up as duplicated frames with the wrong sll_pkttype.
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>

#include "classifier.h"

namespace gateway {

struct CapturedFrame {
  std::span<const uint8_t> bytes;  // captured bytes (at most snaplen)
  uint32_t wire_length = 0;
  uint64_t timestamp_ns = 0;
  uint8_t packet_type = 0;  // sll_pkttype: PACKET_HOST, PACKET_OUTGOING, ...
  LinkDirection link = LinkDirection::kReceived;
};

struct BlockWalk {
  uint32_t visited = 0;
  // Frames whose copy was still running when the walk reached them (it waited).
  uint32_t late_copies = 0;
  // Frames whose copy had not completed within the wait: skipped (lost, counted).
  uint32_t incomplete = 0;
  // Headers that break the contract (outside blk_len, bad chain): the rest of
  // the block is skipped and counted.
  uint32_t malformed = 0;
  uint64_t sequence = 0;  // the block's seq_num
};

// Visits every complete frame of `block` (block_size bytes, owned by user
// space). Waits up to `completion_wait` in total for frames whose copy is still
// in progress. Does not give the block back.
BlockWalk walk_block(std::span<uint8_t> block, uint32_t snaplen,
                     std::chrono::microseconds completion_wait,
                     const std::function<void(const CapturedFrame&)>& visit);

}  // namespace gateway
