// The key schema of the LevelDB store (storage/leveldb/keys.h): the exact
// bytes existing databases hold, the order of the index keys, and parsing.

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/leveldb/keys.h"

namespace webhookd::leveldb_keys {
namespace {

using ::testing::Optional;

constexpr int64_t kMicros = 1'700'000'000'000'000;

std::string Bytes(std::initializer_list<unsigned char> bytes) {
  return std::string(bytes.begin(), bytes.end());
}

// --- Bytes on disk: databases written by earlier releases must still read.

TEST(LevelDbKeysTest, PlainKeysArePrefixAndId) {
  EXPECT_EQ(EndpointKey("ep_1"), "ep/ep_1");
  EXPECT_EQ(EventKey("evt_1"), "ev/evt_1");
  EXPECT_EQ(DeliveryKey("dlv_1"), "d/dlv_1");
  EXPECT_EQ(QueueKey("dlv_1"), "q/dlv_1");
  EXPECT_EQ(StatsKey("ep_1"), "st/ep_1");
  EXPECT_EQ(kSchemaVersionKey, "meta/schema_version");
}

TEST(LevelDbKeysTest, ThreadComponentIsLengthPrefixedBigEndian) {
  EXPECT_EQ(EndpointThreadKey("ab", "ep_1"),
            "ept/" + Bytes({0, 0, 0, 2}) + "ab" + "ep_1");
  EXPECT_EQ(DeliveryEndpointPrefix("ep_1"),
            "dle/" + Bytes({0, 0, 0, 4}) + "ep_1");
  EXPECT_EQ(DeliveryThreadPrefix(""), "dlt/" + Bytes({0, 0, 0, 0}));
}

TEST(LevelDbKeysTest, IdempotencyKeyEncodesUserInOrderedBigEndian) {
  EXPECT_EQ(IdempotencyKey(1, "k"),
            "idem/" + Bytes({0x80, 0, 0, 0, 0, 0, 0, 1}) + "/k");
  EXPECT_EQ(
      IdempotencyKey(-1, "k"),
      "idem/" + Bytes({0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) + "/k");
}

TEST(LevelDbKeysTest, IndexTimeIsComplementOfOrderedMicros) {
  // 0 micros: ordered bits 0x8000..., complemented 0x7fff....
  EXPECT_EQ(
      DeliveryIndexKey("dl/", 0, "d"),
      "dl/" + Bytes({0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) + "d");
}

// --- Order.

TEST(LevelDbKeysTest, NewerDeliveriesSortFirst) {
  EXPECT_LT(DeliveryIndexKey("dl/", kMicros + 1, "a"),
            DeliveryIndexKey("dl/", kMicros, "a"));
  EXPECT_LT(DeliveryIndexKey("dl/", 1, "z"), DeliveryIndexKey("dl/", -1, "a"));
  EXPECT_LT(DeliveryIndexKey("dl/", std::numeric_limits<int64_t>::max(), "a"),
            DeliveryIndexKey("dl/", std::numeric_limits<int64_t>::min(), "a"));
}

TEST(LevelDbKeysTest, UsersSortInNumericOrder) {
  EXPECT_LT(IdempotencyKey(-5, "k"), IdempotencyKey(3, "k"));
  EXPECT_LT(IdempotencyKey(3, "k"), IdempotencyKey(300, "k"));
}

TEST(LevelDbKeysTest, ThreadIdsWithSeparatorsStayInTheirOwnRange) {
  // "a" and "a/b" or "a\0b": without the length, the first range would hold
  // the keys of the others.
  const std::string a = DeliveryThreadPrefix("a");
  EXPECT_FALSE(DeliveryIndexKey(DeliveryThreadPrefix("a/b"), kMicros, "d")
                   .starts_with(a));
  EXPECT_FALSE(DeliveryIndexKey(DeliveryThreadPrefix(std::string("a\0b", 3)),
                                kMicros, "d")
                   .starts_with(a));
  EXPECT_FALSE(
      EndpointThreadKey("a/b", "ep").starts_with(EndpointThreadPrefix("a")));
}

TEST(LevelDbKeysTest, PrefixEndFollowsEveryKeyOfTheFamily) {
  EXPECT_EQ(PrefixEnd("dl/"), "dl0");
  EXPECT_GT(
      PrefixEnd(kDeliveryListPrefix),
      DeliveryIndexKey("dl/", std::numeric_limits<int64_t>::min(), "\xff\xff"));
  EXPECT_LT(PrefixEnd(kDeliveryListPrefix),
            std::string(kDeliveryEndpointPrefix));
}

// --- Parsing.

TEST(LevelDbKeysTest, ParsesEachDeliveryIndexFamily) {
  for (const std::string& prefix :
       {std::string(kDeliveryListPrefix), DeliveryEndpointPrefix("ep/1"),
        DeliveryThreadPrefix(std::string("t\0/", 3))}) {
    for (int64_t micros : {kMicros, int64_t{0}, int64_t{-7}}) {
      const std::string key = DeliveryIndexKey(prefix, micros, "dlv_1");
      std::optional<DeliveryIndexEntry> entry = ParseDeliveryIndexKey(key);
      ASSERT_TRUE(entry.has_value()) << prefix;
      EXPECT_EQ(entry->create_micros, micros);
      EXPECT_EQ(entry->delivery_id, "dlv_1");
    }
  }
}

TEST(LevelDbKeysTest, MalformedDeliveryIndexKeysDoNotParse) {
  const std::string whole = DeliveryIndexKey("dl/", kMicros, "d");
  // No id, a short time, a truncated component, another family.
  EXPECT_EQ(ParseDeliveryIndexKey(whole.substr(0, whole.size() - 1)),
            std::nullopt);
  EXPECT_EQ(ParseDeliveryIndexKey("dl/1234"), std::nullopt);
  EXPECT_EQ(ParseDeliveryIndexKey("dle/" + Bytes({0, 0, 0, 9}) + "ep"),
            std::nullopt);
  EXPECT_EQ(ParseDeliveryIndexKey(DeliveryKey("dlv_1")), std::nullopt);
}

TEST(LevelDbKeysTest, ParsesEndpointOfThreadIndexKey) {
  EXPECT_THAT(ParseEndpointThreadKey(EndpointThreadKey("t/1", "ep_1")),
              Optional(std::string_view("ep_1")));
  EXPECT_EQ(ParseEndpointThreadKey(EndpointThreadPrefix("t")), std::nullopt);
  EXPECT_EQ(ParseEndpointThreadKey("ept/" + Bytes({0, 0, 1, 0}) + "t"),
            std::nullopt);
  EXPECT_EQ(ParseEndpointThreadKey(EndpointKey("ep_1")), std::nullopt);
}

TEST(LevelDbKeysTest, IdAfterPrefix) {
  EXPECT_EQ(IdAfter(kQueuePrefix, QueueKey("dlv/1")), "dlv/1");
  EXPECT_EQ(IdAfter(kQueuePrefix, DeliveryKey("dlv_1")), "");
}

TEST(LevelDbKeysTest, PageTokenRoundTripsWithinItsRange) {
  const std::string prefix = DeliveryEndpointPrefix("ep_1");
  const std::string key = DeliveryIndexKey(prefix, kMicros, "dlv_1");
  absl::StatusOr<std::string> decoded =
      DecodePageToken(EncodePageToken(key), prefix);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, key);
}

TEST(LevelDbKeysTest, PageTokenOfAnotherRangeIsInvalid) {
  const std::string key =
      DeliveryIndexKey(DeliveryEndpointPrefix("ep_1"), kMicros, "dlv_1");
  EXPECT_EQ(
      DecodePageToken(EncodePageToken(key), DeliveryEndpointPrefix("ep_2"))
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodePageToken("%%%", "dl/").status().code(),
            absl::StatusCode::kInvalidArgument);
  // The bare prefix names no key.
  EXPECT_EQ(DecodePageToken(EncodePageToken("dl/"), "dl/").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace webhookd::leveldb_keys
