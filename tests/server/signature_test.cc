#include "server/signature.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace webhookd {
namespace {

using ::testing::MatchesRegex;

TEST(SignatureHexTest, MatchesRfc4231TestCase2) {
  EXPECT_EQ(SignatureHex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(SignatureHexTest, MatchesRfc4231TestCase6WithKeyLongerThanBlock) {
  // A 131-byte key is hashed first (longer than SHA-256's 64-byte block).
  EXPECT_EQ(SignatureHex(std::string(131, '\xaa'),
                         "Test Using Larger Than Block-Size Key - Hash Key "
                         "First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(SignatureHexTest, EmptySecretAndBodyStillSign) {
  // HMAC-SHA256 with an empty key over an empty message.
  EXPECT_EQ(SignatureHex("", ""),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
  EXPECT_EQ(SignatureHex(std::string_view(), std::string_view()),
            SignatureHex("", ""));
}

TEST(SignatureHexTest, IsLowercaseHexOf32Bytes) {
  EXPECT_THAT(SignatureHex("secret", R"({"event":"execution.completed"})"),
              MatchesRegex("[0-9a-f]{64}"));
}

TEST(SignatureHexTest, DependsOnSecretAndEveryBodyByte) {
  const std::string body = R"({"userId":42})";
  const std::string signature = SignatureHex("secret", body);
  EXPECT_NE(SignatureHex("secreT", body), signature);
  EXPECT_NE(SignatureHex("secret", R"({"userId":43})"), signature);
  EXPECT_NE(SignatureHex("secret", body + " "), signature);
  EXPECT_EQ(SignatureHex("secret", body), signature);
}

TEST(SignatureHexTest, HandlesBinaryBytes) {
  const std::string body("a\0b", 3);
  EXPECT_NE(SignatureHex("k", body), SignatureHex("k", "a"));
}

TEST(ConstantTimeEqualsTest, EqualStringsAreEqual) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  const std::string signature = SignatureHex("Jefe", "body");
  EXPECT_TRUE(ConstantTimeEquals(signature, std::string(signature)));
}

TEST(ConstantTimeEqualsTest, DifferentContentIsNotEqual) {
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "xbc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ABC"));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0c", 3), "abc"));
}

TEST(ConstantTimeEqualsTest, DifferentLengthsAreNotEqual) {
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEquals("ab", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_FALSE(ConstantTimeEquals("a", ""));
}

TEST(ConstantTimeEqualsTest, PrefixIsNotEqualEvenIfMemoryAfterItMatches) {
  // `shorter` is followed in memory by the byte that would make it equal, so
  // a comparison that read past its end would wrongly succeed.
  const std::string buffer = "abcabc";
  const std::string_view longer(buffer.data(), 3);
  const std::string_view shorter(buffer.data() + 3, 2);
  EXPECT_FALSE(ConstantTimeEquals(longer, shorter));
  EXPECT_FALSE(ConstantTimeEquals(shorter, longer));
}

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
  absl::SleepFor(absl::Milliseconds(2));
  const std::string second = NewId("dlv_");
  EXPECT_LT(first, second);
}

}  // namespace
}  // namespace webhookd
