#include "server/common/ids.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/eventually.h"

namespace webhookd {
namespace {

using ::testing::MatchesRegex;

TEST(NewIdTest, IsPrefixFollowedBy32LowercaseHexDigits) {
  EXPECT_THAT(NewId("ep_"), MatchesRegex("ep_[0-9a-f]{32}"));
  EXPECT_THAT(NewId("dlv_"), MatchesRegex("dlv_[0-9a-f]{32}"));
  EXPECT_THAT(NewId(""), MatchesRegex("[0-9a-f]{32}"));
}

TEST(NewIdTest, ThousandIdsAreUnique) {
  absl::flat_hash_set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = NewId("evt_");
    ASSERT_TRUE(absl::StartsWith(id, "evt_")) << id;
    EXPECT_TRUE(ids.insert(id).second) << "duplicate " << id;
  }
  EXPECT_EQ(ids.size(), 1000u);
}

TEST(NewIdTest, EveryRandomHexDigitPositionVaries) {
  // The last 80 bits are random: over 1000 ids each of those 20 positions
  // takes every value (a fixed position would show one; chance of a false
  // alarm is about 20 * 16 * (15/16)^1000, i.e. never).
  std::vector<absl::flat_hash_set<char>> seen(32);
  for (int i = 0; i < 1000; ++i) {
    const std::string id = NewId("");
    ASSERT_EQ(id.size(), 32u);
    for (int pos = 12; pos < 32; ++pos) seen[pos].insert(id[pos]);
  }
  for (int pos = 12; pos < 32; ++pos) {
    EXPECT_EQ(seen[pos].size(), 16u) << "position " << pos;
  }
}

TEST(NewIdTest, StartsWithTheCreationTimeSoIdsSortByIt) {
  const int64_t before = absl::ToUnixMillis(absl::Now());
  const std::string first = NewId("dlv_");
  const int64_t after = absl::ToUnixMillis(absl::Now());
  int64_t millis = 0;
  ASSERT_TRUE(absl::SimpleHexAtoi(first.substr(4, 12), &millis)) << first;
  EXPECT_GE(millis, before);
  EXPECT_LE(millis, after);
  // An id made in a later millisecond sorts after it: made until the clock
  // has moved on (bounded by Eventually).
  std::string second;
  testing::Eventually([&] {
    second = NewId("dlv_");
    return second.substr(4, 12) != first.substr(4, 12);
  });
  EXPECT_LT(first, second);
}

}  // namespace
}  // namespace webhookd
