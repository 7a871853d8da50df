#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "librr/error.h"
#include "librr/position.h"

using librr::Position;

TEST(Position, FormatsOmittingZeroParts) {
  EXPECT_EQ(Position({1234, 0, 0}).to_string(), "L1234");
  EXPECT_EQ(Position({1234, 2, 0}).to_string(), "L1234+a2");
  EXPECT_EQ(Position({1234, 2, 17}).to_string(), "L1234+a2+s17");
  EXPECT_EQ(Position({0, 0, 5}).to_string(), "L0+s5");
}

TEST(Position, ParseAndFormatRoundTrip) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    Position p{rng() >> (rng() % 64), (rng() % 3) ? 0 : rng() % 100, (rng() % 2) ? 0 : rng()};
    auto parsed = Position::try_parse(p.to_string());
    ASSERT_TRUE(parsed) << p.to_string();
    EXPECT_EQ(*parsed, p);
  }
  EXPECT_EQ(Position::parse("L18446744073709551615").landmark, UINT64_MAX);
}

TEST(Position, RejectsMalformedText) {
  for (const char* bad :
       {"", "L", "1234", "l12", "L12+", "L12+a", "L12+s", "L12+x3", "L-1", "L+1", "L12 ", " L12",
        "L012", "L12+a01", "L12+s2+a1", "L12+a1+a2", "L18446744073709551616", "L12+a2+s17x"}) {
    EXPECT_FALSE(Position::try_parse(bad)) << bad;
  }
  EXPECT_THROW(Position::parse("L12+q"), librr::FormatError);
}

TEST(Position, OrderIsLexicographicLandmarkAsyncSteps) {
  std::vector<Position> expected = {{0, 0, 0}, {0, 0, 9}, {0, 1, 0}, {0, 1, 1}, {0, 2, 0},
                                    {1, 0, 0}, {1, 0, 1}, {1, 3, 0}, {2, 0, 0}, {UINT64_MAX, 0, 0}};
  auto shuffled = expected;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(3));
  std::sort(shuffled.begin(), shuffled.end());
  EXPECT_EQ(shuffled, expected);
  EXPECT_LT(Position({5, 9, 9}), Position({6, 0, 0}));
  EXPECT_LT(Position({5, 1, 100}), Position({5, 2, 0}));
  EXPECT_EQ(Position({5, 1, 2}) <=> Position({5, 1, 2}), std::strong_ordering::equal);
}
