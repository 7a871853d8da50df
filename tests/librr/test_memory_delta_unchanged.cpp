// A page written after the reset point and written back before the stop must
// still appear in a VMM's delta (UnchangedPages::kKeep): replay may hold the
// intermediate value from the part it re-executed.
#include <gtest/gtest.h>

#include <vector>

#include "librr/events.h"
#include "librr/page_delta.h"

TEST(MemoryDeltaUnchanged, KeptPagesResetReplayToTheShadow) {
  std::vector<uint8_t> shadow(4096, 0xaa);
  std::vector<uint8_t> recorded = shadow;  // written, then written back: equal to the shadow
  const librr::PageChange change{7, shadow, recorded};

  EXPECT_TRUE(librr::make_memory_delta(0, {&change, 1}).pages.empty());
  const librr::MemoryDelta kept =
      librr::make_memory_delta(0, {&change, 1}, librr::UnchangedPages::kKeep);
  ASSERT_EQ(kept.pages.size(), 1u);
  EXPECT_EQ(kept.pages[0].gfn, 7u);
  EXPECT_TRUE(kept.pages[0].compressed_xor.empty());

  // Replay applies the delta to its shadow copy, then copies it over the
  // guest page that holds the intermediate value.
  std::vector<uint8_t> replay_shadow = shadow;
  librr::apply_page_delta(kept.pages[0], replay_shadow);
  EXPECT_EQ(replay_shadow, recorded);

  // The kept page survives the log encoding.
  librr::AsyncPosition async{{5, 1, 0}, 1, {1, 2, 3}, kept};
  const librr::Event decoded = librr::decode_event(librr::encode_event(async));
  EXPECT_EQ(std::get<librr::AsyncPosition>(decoded), async);
}
