#pragma once
// An AF_PACKET socket bound to one interface with a TPACKET_V3 receive ring
// mapped into our address space. The kernel fills blocks of frames; we walk a
// block once it is handed to user space and give it back. RAII owns the
// socket and the mapping.
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "classifier.h"
#include "ring_block.h"
#include "unique_fd.h"

namespace gateway {

struct RingSettings {
  uint32_t block_size = 1 << 20;  // bytes, power of two multiple of the page size
  uint32_t block_count = 64;
  uint32_t block_timeout_ms = 20;  // the kernel hands over a partly filled block after this
  uint32_t snaplen = 65535;        // longest frame kept; longer ones are truncated
};

struct RingCounters {
  uint64_t received = 0;  // cumulative tp_packets
  uint64_t dropped = 0;   // cumulative tp_drops
  // Our side of the walk (ring_block.h): frames whose copy never completed
  // while we waited, headers that broke the kernel's contract, and blocks
  // handed over out of sequence. All zero on a healthy ring.
  uint64_t incomplete = 0;
  uint64_t late_copies = 0;  // frames still being copied when reached (waited for: not an error)
  uint64_t malformed = 0;
  uint64_t sequence_gaps = 0;
};

class PacketRing {
 public:
  PacketRing(const std::string& interface, const RingSettings& settings);
  ~PacketRing();
  PacketRing(const PacketRing&) = delete;
  PacketRing& operator=(const PacketRing&) = delete;

  int fd() const { return socket_.get(); }
  const std::string& interface() const { return interface_; }
  uint32_t snaplen() const { return snaplen_; }
  // Calls `visit` for every frame in every block the kernel has handed over,
  // returning each block afterwards. Returns the number of frames visited.
  size_t drain(const std::function<void(const CapturedFrame&)>& visit);
  // Reads PACKET_STATISTICS (which the kernel resets on every read) and adds it
  // to the running totals.
  const RingCounters& refresh_counters();
  const RingCounters& counters() const { return counters_; }

 private:
  std::string interface_;
  UniqueFd socket_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  uint32_t block_size_ = 0;
  uint32_t block_count_ = 0;
  uint32_t next_block_ = 0;
  uint64_t expected_sequence_ = 0;  // seq_num of the next block; 0 = not known yet
  uint32_t snaplen_ = 0;
  RingCounters counters_;
};

}  // namespace gateway
