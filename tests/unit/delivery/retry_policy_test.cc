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

TEST(ApplyAttemptTest, RecordsTheTraceparentSentWithTheAttempt) {
  RetryPolicy policy({absl::Seconds(5)});
  AttemptOutcome outcome;
  outcome.start_time = kNow;
  outcome.result = Response(500, std::nullopt);
  outcome.traceparent =
      "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01";

  DeliveryChange change = ApplyAttempt(Pending(), outcome, policy);

  ASSERT_EQ(change.delivery.attempt_history_size(), 1);
  EXPECT_EQ(change.delivery.attempt_history(0).traceparent(),
            outcome.traceparent);
}

TEST(ApplyAttemptTest, SuccessLeavesTheQueue) {
  RetryPolicy policy({absl::Seconds(5)});
  AttemptOutcome outcome;
  outcome.start_time = kNow;
  outcome.result = Response(204, std::nullopt);

  DeliveryChange change = ApplyAttempt(Pending(), outcome, policy);

  EXPECT_EQ(change.delivery.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(change.next_due, std::nullopt);
}

TEST(ApplyAttemptTest, RetryStaysQueuedUntilItsNextAttemptTime) {
  RetryPolicy policy({absl::Seconds(5)});
  AttemptOutcome outcome;
  outcome.start_time = kNow;
  outcome.result = Response(500, std::nullopt);

  DeliveryChange change = ApplyAttempt(Pending(), outcome, policy);

  EXPECT_EQ(change.delivery.status(), webhook::v1::DELIVERY_STATUS_RETRYING);
  EXPECT_THAT(
      change.next_due,
      ::testing::Optional(kNow + absl::Milliseconds(20) + absl::Seconds(5)));
}

TEST(ApplyAttemptTest, LastFailedAttemptLeavesTheQueue) {
  RetryPolicy policy({absl::Seconds(5)});
  Delivery delivery = Pending();
  delivery.set_max_attempts(1);
  AttemptOutcome outcome;
  outcome.start_time = kNow;
  outcome.result = Response(500, std::nullopt);

  DeliveryChange change = ApplyAttempt(delivery, outcome, policy);

  EXPECT_EQ(change.delivery.status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_EQ(change.next_due, std::nullopt);
}

TEST(ApplyAttemptTest, FailureAfterEndpointDeletionLeavesTheQueue) {
  RetryPolicy policy({absl::Seconds(5)});
  AttemptOutcome outcome;
  outcome.start_time = kNow;
  outcome.result = Response(500, std::nullopt);
  outcome.endpoint_deleted = true;

  DeliveryChange change = ApplyAttempt(Pending(), outcome, policy);

  EXPECT_EQ(change.delivery.status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_EQ(change.next_due, std::nullopt);
}

TEST(ApplyAttemptTest, TwoHundredsCountAsSuccess) {
  RetryPolicy policy({absl::Seconds(5)});
  for (int code : {200, 204, 299}) {
    AttemptOutcome outcome;
    outcome.start_time = kNow;
    outcome.result = Response(code, std::nullopt);

    DeliveryChange change = ApplyAttempt(Pending(), outcome, policy);

    ASSERT_TRUE(change.counted_attempt.has_value()) << code;
    EXPECT_TRUE(change.counted_attempt->success) << code;
    EXPECT_EQ(change.counted_attempt->response_time_ms, 20);
  }
}

TEST(ApplyAttemptTest, OtherResponsesCountAsFailures) {
  RetryPolicy policy({absl::Seconds(5)});
  for (int code : {199, 301, 404, 429, 500}) {
    AttemptOutcome outcome;
    outcome.start_time = kNow;
    outcome.result = Response(code, std::nullopt);

    DeliveryChange change = ApplyAttempt(Pending(), outcome, policy);

    ASSERT_TRUE(change.counted_attempt.has_value()) << code;
    EXPECT_FALSE(change.counted_attempt->success) << code;
  }
}

TEST(ApplyAttemptTest, NoResponseCountsAsFailure) {
  RetryPolicy policy({absl::Seconds(5)});
  AttemptOutcome outcome;
  outcome.start_time = kNow;
  outcome.result.error = "connection refused";
  outcome.result.elapsed = absl::Milliseconds(3);

  DeliveryChange change = ApplyAttempt(Pending(), outcome, policy);

  ASSERT_TRUE(change.counted_attempt.has_value());
  EXPECT_FALSE(change.counted_attempt->success);
  EXPECT_EQ(change.counted_attempt->response_time_ms, 3);
}

TEST(ApplyAttemptTest, TestDeliveriesDoNotCount) {
  RetryPolicy policy({absl::Seconds(5)});
  Delivery delivery = Pending();
  delivery.set_test(true);
  AttemptOutcome outcome;
  outcome.start_time = kNow;
  outcome.result = Response(200, std::nullopt);

  DeliveryChange change = ApplyAttempt(delivery, outcome, policy);

  EXPECT_EQ(change.delivery.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_FALSE(change.counted_attempt.has_value());
}

TEST(NextAttemptDueTest, PendingAndRetryingAreDueAtTheirNextAttemptTime) {
  for (DeliveryStatus status : {webhook::v1::DELIVERY_STATUS_PENDING,
                                webhook::v1::DELIVERY_STATUS_RETRYING}) {
    Delivery delivery = Pending();
    delivery.set_status(status);
    *delivery.mutable_next_attempt_time() = ToProtoTime(kNow);
    EXPECT_THAT(NextAttemptDue(delivery), ::testing::Optional(kNow)) << status;
  }
}

TEST(NextAttemptDueTest, WithoutNextAttemptTimeIsDueAtCreation) {
  Delivery delivery = Pending();
  *delivery.mutable_create_time() = ToProtoTime(kNow - absl::Seconds(3));
  EXPECT_THAT(NextAttemptDue(delivery),
              ::testing::Optional(kNow - absl::Seconds(3)));
}

TEST(NextAttemptDueTest, FinishedDeliveriesAwaitNoAttempt) {
  for (DeliveryStatus status : {webhook::v1::DELIVERY_STATUS_SUCCESS,
                                webhook::v1::DELIVERY_STATUS_FAILED,
                                webhook::v1::DELIVERY_STATUS_UNSPECIFIED}) {
    Delivery delivery = Pending();
    delivery.set_status(status);
    *delivery.mutable_next_attempt_time() = ToProtoTime(kNow);
    EXPECT_EQ(NextAttemptDue(delivery), std::nullopt) << status;
  }
}

TEST(EndedDeliveryTest, FailsForGoodWithTheReason) {
  Delivery delivery = Pending();
  delivery.set_payload("{}");
  *delivery.mutable_next_attempt_time() = ToProtoTime(kNow);

  Delivery ended = EndedDelivery(delivery, "endpoint was deleted");

  EXPECT_EQ(ended.status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_EQ(ended.last_error(), "endpoint was deleted");
  EXPECT_FALSE(ended.has_next_attempt_time());
  EXPECT_EQ(ended.payload(), "");
  EXPECT_EQ(NextAttemptDue(ended), std::nullopt);
}

}  // namespace
}  // namespace webhookd
