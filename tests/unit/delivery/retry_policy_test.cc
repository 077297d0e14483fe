// The retry policy: when a failed delivery is attempted again, including a
// receiver's Retry-After (parsed in server/http, tested in
// tests/unit/http/retry_after_test.cc).

#include "server/delivery/retry_policy.h"

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/time_util.h"

namespace webhookd {
namespace {

using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'774'774'800);  // 2026-03-29.

HttpResult Response(int status, std::optional<absl::Duration> retry_after) {
  HttpResult result;
  result.status_code = status;
  result.elapsed = absl::Milliseconds(20);
  result.retry_after = retry_after;
  return result;
}

Delivery Pending() {
  Delivery delivery;
  delivery.set_id("dlv_1");
  delivery.set_status(webhook::v1::DELIVERY_STATUS_PENDING);
  delivery.set_max_attempts(4);
  return delivery;
}

TEST(RetryDelayTest, RetryAfterOf429IsHonoured) {
  EXPECT_EQ(RetryDelay(absl::Seconds(5), Response(429, absl::Seconds(90))),
            absl::Seconds(90));
}

TEST(RetryDelayTest, RetryAfterOf503IsHonoured) {
  EXPECT_EQ(RetryDelay(absl::Seconds(5), Response(503, absl::Seconds(30))),
            absl::Seconds(30));
}

TEST(RetryDelayTest, RetryAfterShorterThanScheduleKeepsSchedule) {
  EXPECT_EQ(RetryDelay(absl::Seconds(15), Response(429, absl::Seconds(1))),
            absl::Seconds(15));
}

TEST(RetryDelayTest, RetryAfterIsClampedToTenMinutes) {
  EXPECT_EQ(RetryDelay(absl::Seconds(5), Response(503, absl::Hours(48))),
            absl::Minutes(10));
  EXPECT_EQ(
      RetryDelay(absl::Seconds(5), Response(503, absl::InfiniteDuration())),
      absl::Minutes(10));
}

TEST(RetryDelayTest, ScheduleLongerThanTenMinutesWins) {
  EXPECT_EQ(RetryDelay(absl::Minutes(30), Response(429, absl::Hours(2))),
            absl::Minutes(30));
}

TEST(RetryDelayTest, RetryAfterOfOtherStatusesIsIgnored) {
  EXPECT_EQ(RetryDelay(absl::Seconds(5), Response(500, absl::Seconds(90))),
            absl::Seconds(5));
  EXPECT_EQ(RetryDelay(absl::Seconds(5), Response(301, absl::Seconds(90))),
            absl::Seconds(5));
}

TEST(ApplyAttemptTest, TooManyRequestsSchedulesRetryAfterAndNamesIt) {
  RetryPolicy policy({absl::Seconds(5), absl::Seconds(15)});
  AttemptOutcome outcome;
  outcome.start_time = kNow;
  outcome.result = Response(429, absl::Seconds(120));

  DeliveryChange change = ApplyAttempt(Pending(), outcome, policy);

  EXPECT_EQ(change.delivery.status(), webhook::v1::DELIVERY_STATUS_RETRYING);
  EXPECT_EQ(FromProtoTime(change.delivery.next_attempt_time()),
            kNow + absl::Milliseconds(20) + absl::Seconds(120));
  EXPECT_THAT(change.delivery.last_error(), HasSubstr("HTTP 429"));
  EXPECT_THAT(change.delivery.last_error(), HasSubstr("Retry-After 2m"));
}

TEST(ApplyAttemptTest, ServerErrorUsesTheSchedule) {
  RetryPolicy policy({absl::Seconds(5), absl::Seconds(15)});
  AttemptOutcome outcome;
  outcome.start_time = kNow;
  outcome.result = Response(500, std::nullopt);

  DeliveryChange change = ApplyAttempt(Pending(), outcome, policy);

  EXPECT_EQ(FromProtoTime(change.delivery.next_attempt_time()),
            kNow + absl::Milliseconds(20) + absl::Seconds(5));
  EXPECT_EQ(change.delivery.last_error(), "HTTP 500");
}

}  // namespace
}  // namespace webhookd
