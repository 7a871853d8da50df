// The TPACKET_V3 block walk against the kernel's contract, on blocks laid out
// exactly as net/packet/af_packet.c lays them out. Regression test for the
// duplicate/missing frames under load: a block handed over while the kernel
// is still copying a frame must not be read at that frame until the frame's
// own tp_status says TP_STATUS_USER.
#include "ring_block.h"

#include <gtest/gtest.h>
#include <linux/if_packet.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace gateway {
namespace {

constexpr uint32_t kBlockSize = 1 << 16;
constexpr uint32_t kMacOffset =
    80;  // TPACKET_ALIGN(hdrlen + 16) + 2, as the kernel uses for Ethernet

// Builds a block the way the kernel fills one: reserve slot (next offset,
// tp_status without USER), then copy the frame, then set TP_STATUS_USER.
class FakeBlock {
 public:
  FakeBlock() : bytes_(kBlockSize, 0) {
    descriptor().hdr.bh1.seq_num = 7;
    descriptor().hdr.bh1.offset_to_first_pkt = first_offset();
    descriptor().hdr.bh1.blk_len = first_offset();
  }
  tpacket_block_desc& descriptor() { return *reinterpret_cast<tpacket_block_desc*>(bytes_.data()); }
  static uint32_t first_offset() { return TPACKET_ALIGN(sizeof(tpacket_block_desc)); }

  // Reserves a slot for `length` bytes and returns its header.
  tpacket3_hdr* reserve(uint32_t length) {
    uint32_t offset = descriptor().hdr.bh1.blk_len;
    uint32_t total = TPACKET_ALIGN(kMacOffset + length);
    auto* header = reinterpret_cast<tpacket3_hdr*>(bytes_.data() + offset);
    header->tp_next_offset = total;
    header->tp_status = TP_STATUS_AVAILABLE;
    descriptor().hdr.bh1.blk_len += total;
    descriptor().hdr.bh1.num_pkts += 1;
    last_ = header;
    return header;
  }
  // Writes the frame into a reserved slot without publishing it.
  static void copy(tpacket3_hdr* header, const std::vector<uint8_t>& frame, uint8_t pkttype) {
    auto* raw = reinterpret_cast<uint8_t*>(header);
    std::memcpy(raw + kMacOffset, frame.data(), frame.size());
    header->tp_len = header->tp_snaplen = static_cast<uint32_t>(frame.size());
    header->tp_mac = kMacOffset;
    auto* link = reinterpret_cast<sockaddr_ll*>(raw + TPACKET_ALIGN(sizeof(tpacket3_hdr)));
    link->sll_pkttype = pkttype;
  }
  static void publish(tpacket3_hdr* header) {
    std::atomic_ref<uint32_t>(header->tp_status).fetch_or(TP_STATUS_USER);
  }
  void add_complete(const std::vector<uint8_t>& frame, uint8_t pkttype = PACKET_OUTGOING) {
    auto* header = reserve(static_cast<uint32_t>(frame.size()));
    copy(header, frame, pkttype);
    publish(header);
  }
  // What prb_close_block does.
  void close() {
    if (last_) last_->tp_next_offset = 0;
    descriptor().hdr.bh1.block_status = TP_STATUS_USER | TP_STATUS_BLK_TMO;
  }
  std::span<uint8_t> span() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
  tpacket3_hdr* last_ = nullptr;
};

std::vector<uint8_t> frame_with(uint8_t marker, size_t size = 106) {
  return std::vector<uint8_t>(size, marker);
}

struct Seen {
  std::vector<std::vector<uint8_t>> frames;
  std::vector<uint8_t> types;
  std::function<void(const CapturedFrame&)> visitor() {
    return [this](const CapturedFrame& frame) {
      frames.emplace_back(frame.bytes.begin(), frame.bytes.end());
      types.push_back(frame.packet_type);
    };
  }
};

TEST(RingBlock, VisitsEveryPublishedFrameInOrder) {
  FakeBlock block;
  for (uint8_t i = 1; i <= 5; ++i) block.add_complete(frame_with(i, 60 + i));
  block.close();
  Seen seen;
  auto walk = walk_block(block.span(), 65535, std::chrono::milliseconds(1), seen.visitor());
  EXPECT_EQ(walk.visited, 5u);
  EXPECT_EQ(walk.late_copies, 0u);
  EXPECT_EQ(walk.incomplete, 0u);
  EXPECT_EQ(walk.malformed, 0u);
  EXPECT_EQ(walk.sequence, 7u);
  ASSERT_EQ(seen.frames.size(), 5u);
  for (uint8_t i = 1; i <= 5; ++i) EXPECT_EQ(seen.frames[i - 1], frame_with(i, 60 + i));
}

// The bug: the block is handed over while the last frame's copy is still in
// progress. Its slot holds the previous lap's frame (same size, same offset).
// The walk must wait for the copy and deliver the new frame, not the stale one.
TEST(RingBlock, WaitsForAFrameTheKernelIsStillCopying) {
  FakeBlock block;
  block.add_complete(frame_with(1));
  tpacket3_hdr* late = block.reserve(106);
  FakeBlock::copy(late, frame_with(0xee), PACKET_HOST);  // previous lap's leftovers
  late->tp_status = TP_STATUS_AVAILABLE;                 // reserved again, not yet copied
  block.close();
  std::thread copier([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    FakeBlock::copy(late, frame_with(2), PACKET_OUTGOING);
    FakeBlock::publish(late);
  });
  Seen seen;
  auto walk = walk_block(block.span(), 65535, std::chrono::seconds(5), seen.visitor());
  copier.join();
  EXPECT_EQ(walk.visited, 2u);
  EXPECT_EQ(walk.late_copies, 1u);
  EXPECT_EQ(walk.incomplete, 0u);
  ASSERT_EQ(seen.frames.size(), 2u);
  EXPECT_EQ(seen.frames[1], frame_with(2)) << "read the stale frame of the previous lap";
  EXPECT_EQ(seen.types[1], PACKET_OUTGOING);
}

// A slot the kernel reserved and then abandoned (it counts those as drops)
// never completes: it is skipped and counted, and the frames after it are read.
TEST(RingBlock, SkipsAFrameThatNeverCompletes) {
  FakeBlock block;
  block.add_complete(frame_with(1));
  tpacket3_hdr* abandoned = block.reserve(106);
  FakeBlock::copy(abandoned, frame_with(0xee), PACKET_HOST);
  abandoned->tp_status = TP_STATUS_AVAILABLE;
  block.add_complete(frame_with(3));
  block.close();
  Seen seen;
  auto started = std::chrono::steady_clock::now();
  auto walk = walk_block(block.span(), 65535, std::chrono::milliseconds(20), seen.visitor());
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
  EXPECT_EQ(walk.visited, 2u);
  EXPECT_EQ(walk.incomplete, 1u);
  ASSERT_EQ(seen.frames.size(), 2u);
  EXPECT_EQ(seen.frames[0], frame_with(1));
  EXPECT_EQ(seen.frames[1], frame_with(3));
}

// num_pkts larger than the frames within blk_len, or a chain that leaves the
// used part of the block: nothing outside blk_len is ever read as a frame.
TEST(RingBlock, NeverReadsHeadersBeyondBlockLength) {
  FakeBlock block;
  block.add_complete(frame_with(1));
  block.add_complete(frame_with(2));
  block.close();
  block.descriptor().hdr.bh1.num_pkts = 4;  // claims two more than it holds
  Seen seen;
  auto walk = walk_block(block.span(), 65535, std::chrono::milliseconds(1), seen.visitor());
  EXPECT_EQ(walk.visited, 2u);
  EXPECT_EQ(walk.malformed, 2u);

  FakeBlock shrunk;
  shrunk.add_complete(frame_with(1));
  shrunk.add_complete(frame_with(2));
  shrunk.close();
  shrunk.descriptor().hdr.bh1.blk_len -= 50;  // the second frame now ends past blk_len
  Seen seen2;
  walk = walk_block(shrunk.span(), 65535, std::chrono::milliseconds(1), seen2.visitor());
  EXPECT_EQ(walk.visited, 1u);
  EXPECT_EQ(walk.malformed, 1u);
}

TEST(RingBlock, TruncatesToSnaplen) {
  FakeBlock block;
  block.add_complete(frame_with(9, 200));
  block.close();
  Seen seen;
  walk_block(block.span(), 100, std::chrono::milliseconds(1), seen.visitor());
  ASSERT_EQ(seen.frames.size(), 1u);
  EXPECT_EQ(seen.frames[0].size(), 100u);
}

}  // namespace
}  // namespace gateway
