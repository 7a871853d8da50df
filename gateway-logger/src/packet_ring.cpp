#include "packet_ring.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "librr/error.h"

namespace gateway {
namespace {

[[noreturn]] void fail(const std::string& interface, const std::string& what) {
  librr::throw_errno(fmt::format("capture on {}: {}", interface, what));
}

// How long a ring walk waits, per block, for frames the kernel is still
// copying into a block it already handed over (ring_block.h). The copy takes
// microseconds unless the copying vCPU is preempted.
constexpr std::chrono::microseconds kCopyCompletionWait{20'000};

}  // namespace

PacketRing::PacketRing(const std::string& interface, const RingSettings& settings)
    : interface_(interface), block_size_(settings.block_size), block_count_(settings.block_count) {
  unsigned index = if_nametoindex(interface.c_str());
  if (index == 0) fail(interface, "no such interface");
  // Protocol 0: the socket receives nothing until bind() names the interface.
  // With ETH_P_ALL here it would capture every interface of the namespace from
  // this call on, and those frames would sit in the ring uncounted.
  socket_.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!socket_.valid()) fail(interface, "socket(AF_PACKET)");
  int version = TPACKET_V3;
  if (setsockopt(socket_.get(), SOL_PACKET, PACKET_VERSION, &version, sizeof version) != 0)
    fail(interface, "PACKET_VERSION TPACKET_V3");
  // Frames the gateway itself transmits on a LAN interface are the ones that
  // enter the LAN, so outgoing frames must be seen (no PACKET_IGNORE_OUTGOING).
  tpacket_req3 request{};
  request.tp_block_size = settings.block_size;
  request.tp_block_nr = settings.block_count;
  request.tp_frame_size = 2048;  // only used for sanity checks in V3
  request.tp_frame_nr = static_cast<unsigned>(
      (uint64_t{settings.block_size} * settings.block_count) / request.tp_frame_size);
  request.tp_retire_blk_tov = settings.block_timeout_ms;
  request.tp_feature_req_word = 0;
  if (setsockopt(socket_.get(), SOL_PACKET, PACKET_RX_RING, &request, sizeof request) != 0)
    fail(interface, fmt::format("PACKET_RX_RING ({} blocks of {} bytes)", settings.block_count,
                                settings.block_size));
  map_size_ = size_t{settings.block_size} * settings.block_count;
  map_ =
      ::mmap(nullptr, map_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, socket_.get(), 0);
  if (map_ == MAP_FAILED)  // MAP_LOCKED can fail under RLIMIT_MEMLOCK: try without
    map_ = ::mmap(nullptr, map_size_, PROT_READ | PROT_WRITE, MAP_SHARED, socket_.get(), 0);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail(interface, "mmap of the RX ring");
  }
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_protocol = htons(ETH_P_ALL);
  address.sll_ifindex = static_cast<int>(index);
  if (::bind(socket_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    fail(interface, "bind");
  snaplen_ = std::min<uint32_t>(settings.snaplen, settings.block_size - 256);
  // Everything the kernel counted since bind() is in the ring: keep it.
}

PacketRing::~PacketRing() {
  if (map_) ::munmap(map_, map_size_);
}

size_t PacketRing::drain(const std::function<void(const CapturedFrame&)>& visit) {
  size_t frames = 0;
  auto* base = static_cast<uint8_t*>(map_);
  for (uint32_t handed = 0; handed < block_count_; ++handed) {
    uint8_t* block = base + size_t{next_block_} * block_size_;
    std::atomic_ref<uint32_t> status(
        reinterpret_cast<tpacket_block_desc*>(block)->hdr.bh1.block_status);
    if ((status.load(std::memory_order_acquire) & TP_STATUS_USER) == 0) break;
    BlockWalk walk = walk_block({block, block_size_}, snaplen_, kCopyCompletionWait, visit);
    // The kernel numbers the blocks it opens consecutively and hands them over
    // in ring order: anything else means we are out of step with it.
    if (expected_sequence_ != 0 && walk.sequence != expected_sequence_) ++counters_.sequence_gaps;
    expected_sequence_ = walk.sequence + 1;
    counters_.incomplete += walk.incomplete;
    counters_.late_copies += walk.late_copies;
    counters_.malformed += walk.malformed;
    frames += walk.visited;
    status.store(TP_STATUS_KERNEL, std::memory_order_release);
    next_block_ = (next_block_ + 1) % block_count_;
  }
  return frames;
}

const RingCounters& PacketRing::refresh_counters() {
  tpacket_stats_v3 stats{};
  socklen_t length = sizeof stats;
  if (getsockopt(socket_.get(), SOL_PACKET, PACKET_STATISTICS, &stats, &length) != 0)
    fail(interface_, "PACKET_STATISTICS");
  counters_.received += stats.tp_packets;
  counters_.dropped += stats.tp_drops;
  return counters_;
}

}  // namespace gateway
