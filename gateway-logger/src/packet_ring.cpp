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
#include <cstring>

#include "librr/error.h"

namespace gateway {
namespace {

[[noreturn]] void fail(const std::string& interface, const std::string& what) {
  librr::throw_errno(fmt::format("capture on {}: {}", interface, what));
}

LinkDirection link_direction(uint8_t packet_type) {
  return packet_type == PACKET_OUTGOING ? LinkDirection::kSent : LinkDirection::kReceived;
}

}  // namespace

PacketRing::PacketRing(const std::string& interface, const RingSettings& settings)
    : interface_(interface), block_size_(settings.block_size), block_count_(settings.block_count) {
  unsigned index = if_nametoindex(interface.c_str());
  if (index == 0) fail(interface, "no such interface");
  socket_.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL)));
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
  refresh_counters();  // start the kernel's counters from zero
  counters_ = {};
}

PacketRing::~PacketRing() {
  if (map_) ::munmap(map_, map_size_);
}

size_t PacketRing::drain(const std::function<void(const CapturedFrame&)>& visit) {
  size_t frames = 0;
  auto* base = static_cast<uint8_t*>(map_);
  for (uint32_t handed = 0; handed < block_count_; ++handed) {
    auto* block = reinterpret_cast<tpacket_block_desc*>(base + size_t{next_block_} * block_size_);
    std::atomic_ref<uint32_t> status(block->hdr.bh1.block_status);
    if ((status.load(std::memory_order_acquire) & TP_STATUS_USER) == 0) break;
    const uint32_t count = block->hdr.bh1.num_pkts;
    uint32_t offset = block->hdr.bh1.offset_to_first_pkt;
    for (uint32_t i = 0; i < count; ++i) {
      // The kernel wrote these offsets; still refuse to follow one out of the block.
      if (offset + sizeof(tpacket3_hdr) > block_size_) break;
      auto* header = reinterpret_cast<tpacket3_hdr*>(reinterpret_cast<uint8_t*>(block) + offset);
      if (header->tp_mac + uint64_t{header->tp_snaplen} <= block_size_ - offset) {
        auto* link = reinterpret_cast<sockaddr_ll*>(reinterpret_cast<uint8_t*>(header) +
                                                    TPACKET_ALIGN(sizeof(tpacket3_hdr)));
        CapturedFrame frame;
        frame.bytes = {reinterpret_cast<uint8_t*>(header) + header->tp_mac, header->tp_snaplen};
        if (frame.bytes.size() > snaplen_) frame.bytes = frame.bytes.first(snaplen_);
        frame.wire_length = header->tp_len;
        frame.timestamp_ns = uint64_t{header->tp_sec} * 1'000'000'000ull + header->tp_nsec;
        frame.packet_type = link->sll_pkttype;
        frame.link = link_direction(link->sll_pkttype);
        visit(frame);
        ++frames;
      }
      if (header->tp_next_offset == 0) break;
      offset += header->tp_next_offset;
    }
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
