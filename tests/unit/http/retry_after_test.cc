// ParseRetryAfter: the delay a receiver asks for in Retry-After.

#include "server/http/retry_after.h"

#include <optional>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace webhookd {
namespace {

using ::testing::Optional;

// Sun, 29 Mar 2026 09:00:00 GMT.
const absl::Time kNow = absl::FromUnixSeconds(1'774'774'800);

TEST(ParseRetryAfterTest, ReadsDelaySeconds) {
  EXPECT_THAT(ParseRetryAfter("120", kNow), Optional(absl::Seconds(120)));
  EXPECT_THAT(ParseRetryAfter("0", kNow), Optional(absl::ZeroDuration()));
}

TEST(ParseRetryAfterTest, IgnoresSurroundingWhitespace) {
  EXPECT_THAT(ParseRetryAfter(" 0 ", kNow), Optional(absl::ZeroDuration()));
  EXPECT_THAT(ParseRetryAfter("\t30\r\n", kNow), Optional(absl::Seconds(30)));
}

TEST(ParseRetryAfterTest, ReadsImfFixdateRelativeToNow) {
  EXPECT_THAT(ParseRetryAfter("Sun, 29 Mar 2026 09:00:30 GMT", kNow),
              Optional(absl::Seconds(30)));
}

TEST(ParseRetryAfterTest, ReadsObsoleteRfc850Date) {
  EXPECT_THAT(ParseRetryAfter("Sunday, 29-Mar-26 09:01:00 GMT", kNow),
              Optional(absl::Minutes(1)));
}

TEST(ParseRetryAfterTest, ReadsObsoleteAsctimeDate) {
  EXPECT_THAT(ParseRetryAfter("Sun Mar 29 10:00:00 2026", kNow),
              Optional(absl::Hours(1)));
}

TEST(ParseRetryAfterTest, HttpDateInThePastIsZero) {
  EXPECT_THAT(ParseRetryAfter("Sat, 28 Mar 2026 09:00:00 GMT", kNow),
              Optional(absl::ZeroDuration()));
}

TEST(ParseRetryAfterTest, HugeNumberIsForever) {
  EXPECT_THAT(ParseRetryAfter("99999999999999999999999", kNow),
              Optional(absl::InfiniteDuration()));
}

TEST(ParseRetryAfterTest, GarbageIsIgnored) {
  EXPECT_EQ(ParseRetryAfter("", kNow), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("   ", kNow), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("soon", kNow), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("-5", kNow), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("12abc", kNow), std::nullopt);
}

TEST(ParseRetryAfterTest, FractionalSecondsAreIgnored) {
  // delay-seconds is 1*DIGIT.
  EXPECT_EQ(ParseRetryAfter("1.5", kNow), std::nullopt);
}

}  // namespace
}  // namespace webhookd
