// MemoryShadow on real memory: the two kinds of asynchronous-position memory
// deltas install the recorded pages, also after the analyzer stepped into the
// skipped stretch (previous_position deltas then start from saved pre-images).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "librr/error.h"
#include "replay/memory_shadow.h"

namespace {

using vmm::MemoryShadow;
constexpr uint64_t kPage = MemoryShadow::kPageSize;
constexpr uint64_t kPages = 16;

// Guest RAM stand-in: page-aligned, its first pages non-zero.
struct FakeRam {
  std::vector<uint8_t> storage = std::vector<uint8_t>((kPages + 1) * kPage);
  uint8_t* base = storage.data() + (kPage - reinterpret_cast<uintptr_t>(storage.data()) % kPage);
  FakeRam() {
    for (uint64_t i = 0; i < 4 * kPage; ++i) base[i] = static_cast<uint8_t>(i * 7 + 1);
  }
  vmm::GuestMemory memory() const { return {base, kPages * kPage}; }
  std::vector<uint8_t> page(uint64_t gfn) const {
    return {base + gfn * kPage, base + (gfn + 1) * kPage};
  }
  void copy_from(const FakeRam& other) { std::copy_n(other.base, kPages * kPage, base); }
};

// Record: at landmark 5 the position copy holds memory; the skipped stretch
// then changes page 2 and writes page 3 back to its old value.
struct Recorded {
  FakeRam at_landmark, at_stop;
  librr::AsyncPosition async;
  Recorded() {
    at_stop.copy_from(at_landmark);
    MemoryShadow position_copy(at_stop.memory());
    at_stop.base[2 * kPage + 10] ^= 0x5a;
    at_stop.base[2 * kPage + 4000] = 0;
    async.pos = {5, 1, 0};
    async.memory = position_copy.capture_since_previous_position(5, {2, 3});
  }
  const librr::MemoryDelta& delta() const { return std::get<librr::MemoryDelta>(async.memory); }
};

TEST(MemoryShadow, PreviousPositionDeltaListsTheStretchsPagesOnly) {
  Recorded rec;
  const librr::MemoryDelta& delta = rec.delta();
  EXPECT_EQ(delta.base, librr::DeltaBase::previous_position);
  EXPECT_EQ(delta.reset_landmark, 5u);
  ASSERT_EQ(delta.pages.size(), 2u);
  EXPECT_EQ(delta.pages[0].gfn, 2u);
  EXPECT_LT(delta.pages[0].compressed_xor.size(), 16u) << "two changed bytes: a sparse delta";
  EXPECT_EQ(delta.pages[1].gfn, 3u);
  EXPECT_TRUE(delta.pages[1].compressed_xor.empty()) << "written back: listed, empty";
}

TEST(MemoryShadow, ReplayInstallsAPreviousPositionDeltaOnTheMemoryItHolds) {
  Recorded rec;
  FakeRam replay;
  replay.copy_from(rec.at_landmark);
  MemoryShadow shadow(replay.memory());
  shadow.apply(rec.delta(), rec.async.pos);
  for (uint64_t gfn = 0; gfn < 4; ++gfn) EXPECT_EQ(replay.page(gfn), rec.at_stop.page(gfn)) << gfn;
}

TEST(MemoryShadow, SteppingIntoTheStretchFirstKeepsPreImages) {
  Recorded rec;
  FakeRam replay;
  replay.copy_from(rec.at_landmark);
  MemoryShadow shadow(replay.memory());
  shadow.keep_preimages(rec.async, {5, 0, 0});
  // The analyzer steps a few instructions: intermediate values in both pages.
  replay.base[2 * kPage + 10] = 0x11;
  replay.base[3 * kPage + 99] ^= 0xff;
  shadow.apply(rec.delta(), rec.async.pos);
  EXPECT_EQ(replay.page(2), rec.at_stop.page(2));
  EXPECT_EQ(replay.page(3), rec.at_stop.page(3)) << "the written-back page is reset";
}

TEST(MemoryShadow, PreImagesOfAnotherPositionAreNotUsed) {
  Recorded rec;
  FakeRam replay;
  replay.copy_from(rec.at_landmark);
  MemoryShadow shadow(replay.memory());
  shadow.keep_preimages(rec.async, {4, 0, 0});  // not the position the delta is based on
  shadow.apply(rec.delta(), rec.async.pos);
  EXPECT_EQ(replay.page(2), rec.at_stop.page(2));
}

TEST(MemoryShadow, APreviousPositionDeltaOfAnotherLandmarkIsRefused) {
  Recorded rec;
  FakeRam replay;
  replay.copy_from(rec.at_landmark);
  MemoryShadow shadow(replay.memory());
  EXPECT_THROW(shadow.apply(rec.delta(), {6, 1, 0}), librr::FormatError);
}

// A delta based on the kernel's return to user mode (format 2.13): its base
// is memory at that return, which replay runs to before installing (guest
// memory then), or which an analyzer stepping on kept there; memory at the
// position itself (the landmark) is not it.
TEST(MemoryShadow, AReturnToUserDeltaIsInstalledOnTheMemoryAtTheReturn) {
  FakeRam at_return, at_stop;
  at_return.base[kPage + 7] = 0x42;  // the kernel wrote it on its way back to user mode
  at_stop.copy_from(at_return);
  at_stop.base[2 * kPage + 5] ^= 0x33;  // user code
  const std::vector<uint8_t> base_page = at_return.page(2), stop_page = at_stop.page(2);
  const librr::PageChange change{2, base_page, stop_page};
  librr::MemoryDelta delta = librr::make_memory_delta(5, {&change, 1}, librr::UnchangedPages::kOmit,
                                                      librr::DeltaBase::return_to_user);
  delta.return_rip = 0x1001f4;
  const librr::AsyncPosition async{{5, 1, 0}, 0, {}, delta};
  {
    FakeRam replay;  // ran to the return
    replay.copy_from(at_return);
    MemoryShadow shadow(replay.memory());
    EXPECT_FALSE(shadow.holds_preimages_for(async.pos));
    shadow.apply(delta, async.pos);
    for (uint64_t gfn = 0; gfn < 4; ++gfn) EXPECT_EQ(replay.page(gfn), at_stop.page(gfn)) << gfn;
  }
  {
    FakeRam replay;  // an analyzer that stood on the return, then stepped on
    replay.copy_from(at_return);
    MemoryShadow shadow(replay.memory());
    shadow.keep_preimages(async, {5, 0, 0});  // the previous_position rule: not this base
    EXPECT_FALSE(shadow.holds_preimages_for(async.pos));
    shadow.keep_return_to_user_preimages(async, {5, 0, 0});
    EXPECT_TRUE(shadow.holds_preimages_for(async.pos));
    replay.base[2 * kPage + 5] = 0x99;
    shadow.apply(delta, async.pos);
    EXPECT_EQ(replay.page(2), at_stop.page(2));
  }
  FakeRam replay;
  MemoryShadow shadow(replay.memory());
  EXPECT_THROW(shadow.apply(delta, {6, 1, 0}), librr::FormatError);
}

TEST(MemoryShadow, ShadowDeltasStillXorAgainstTheShadow) {
  FakeRam record, replay;
  replay.copy_from(record);
  MemoryShadow record_shadow(record.memory()), replay_shadow(replay.memory());
  record.base[kPage + 1] ^= 1;
  const librr::MemoryDelta delta = record_shadow.capture(3, {1, 2});
  EXPECT_EQ(delta.base, librr::DeltaBase::shadow);
  ASSERT_EQ(delta.pages.size(), 2u);
  replay.base[2 * kPage] ^= 9;  // an intermediate value the install must undo
  replay_shadow.apply(delta, {7, 2, 0});
  EXPECT_EQ(replay.page(1), record.page(1));
  EXPECT_EQ(replay.page(2), record.page(2));
}

// A page filled from indexed memory (the initrd) in the skipped stretch is
// logged as a copy, and replay, installing it (also after stepping into the
// stretch), reads the source from guest memory, which the stretch did not
// write there; a page copied from a page the stretch also wrote is not.
TEST(MemoryShadow, PagesCopiedFromIndexedMemoryAreInstalledFromGuestMemory) {
  FakeRam at_landmark, at_stop;
  std::mt19937 rng(7);
  for (uint64_t i = 4 * kPage; i < 8 * kPage; ++i)
    at_landmark.base[i] = static_cast<uint8_t>(rng());
  librr::PageCopyIndex initrd;  // pages 4-7
  initrd.add_region(4 * kPage, {at_landmark.base + 4 * kPage, 4 * kPage});
  at_stop.copy_from(at_landmark);
  MemoryShadow position_copy(at_stop.memory());
  std::copy_n(at_stop.base + 4 * kPage + 40, kPage, at_stop.base + 9 * kPage);  // a file
  std::copy_n(at_stop.base + 6 * kPage, kPage, at_stop.base + 2 * kPage);
  at_stop.base[6 * kPage] ^= 1;  // the source of page 2 is written too
  const librr::AsyncPosition async{
      {5, 1, 0}, 0, {}, position_copy.capture_since_previous_position(5, {2, 6, 9}, &initrd)};
  const auto& delta = std::get<librr::MemoryDelta>(async.memory);
  ASSERT_EQ(delta.pages.size(), 3u);
  EXPECT_FALSE((librr::page_form(delta.pages[0]) == librr::PageForm::copied_range))
      << "its source, page 6, is listed";
  EXPECT_TRUE((librr::page_form(delta.pages[2]) == librr::PageForm::copied_range));
  EXPECT_LT(delta.pages[2].compressed_xor.size(), 10u);
  for (bool step_first : {false, true}) {
    SCOPED_TRACE(step_first ? "after stepping into the stretch" : "installed");
    FakeRam replay;
    replay.copy_from(at_landmark);
    MemoryShadow shadow(replay.memory());
    if (step_first) {
      shadow.keep_preimages(async, {5, 0, 0});
      replay.base[9 * kPage + 7] = 0x77;
    }
    shadow.apply(delta, async.pos);
    for (uint64_t gfn = 0; gfn < kPages; ++gfn)
      EXPECT_EQ(replay.page(gfn), at_stop.page(gfn)) << gfn;
  }
}

}  // namespace
