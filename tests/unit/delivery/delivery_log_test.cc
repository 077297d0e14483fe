// Endpoint stats as the domain answers them: computed from the totals the
// store keeps.

#include "server/delivery/delivery_log.h"

#include <cmath>

#include "gtest/gtest.h"

namespace webhookd {
namespace {

TEST(StatsFromCountsTest, NoAttemptsGiveZerosNotNaN) {
  EndpointStats stats = StatsFromCounts("ep_1", EndpointCounts());

  EXPECT_EQ(stats.endpoint_id(), "ep_1");
  EXPECT_EQ(stats.total_deliveries(), 0);
  EXPECT_EQ(stats.successful_deliveries(), 0);
  EXPECT_EQ(stats.failed_deliveries(), 0);
  EXPECT_FALSE(std::isnan(stats.success_rate()));
  EXPECT_FALSE(std::isnan(stats.avg_response_time_ms()));
  EXPECT_EQ(stats.success_rate(), 0.0);
  EXPECT_EQ(stats.avg_response_time_ms(), 0.0);
}

TEST(StatsFromCountsTest, RateIsPercentOfAttemptsThatSucceeded) {
  EndpointCounts counts;
  counts.attempts = 8;
  counts.successes = 6;
  counts.answered = 8;
  counts.response_time_ms_sum = 200;

  EndpointStats stats = StatsFromCounts("ep_1", counts);

  EXPECT_EQ(stats.total_deliveries(), 8);
  EXPECT_EQ(stats.successful_deliveries(), 6);
  EXPECT_EQ(stats.failed_deliveries(), 2);
  EXPECT_DOUBLE_EQ(stats.success_rate(), 75.0);
  EXPECT_DOUBLE_EQ(stats.avg_response_time_ms(), 25.0);
}

TEST(StatsFromCountsTest, MeanKeepsFractions) {
  EndpointCounts counts;
  counts.attempts = 3;
  counts.successes = 1;
  counts.answered = 3;
  counts.response_time_ms_sum = 10;

  EndpointStats stats = StatsFromCounts("ep_1", counts);

  EXPECT_DOUBLE_EQ(stats.success_rate(), 100.0 / 3);
  EXPECT_DOUBLE_EQ(stats.avg_response_time_ms(), 10.0 / 3);
}

TEST(StatsFromCountsTest, AllFailedIsZeroPercent) {
  EndpointCounts counts;
  counts.attempts = 2;
  counts.answered = 2;
  counts.response_time_ms_sum = 3000;

  EndpointStats stats = StatsFromCounts("ep_1", counts);

  EXPECT_EQ(stats.failed_deliveries(), 2);
  EXPECT_EQ(stats.success_rate(), 0.0);
  EXPECT_DOUBLE_EQ(stats.avg_response_time_ms(), 1500.0);
}

TEST(StatsFromCountsTest, AttemptsWithoutResponseAreLeftOutOfTheMean) {
  EndpointCounts counts;
  counts.attempts = 4;
  counts.successes = 1;
  counts.answered = 2;  // Two were refused or timed out.
  counts.response_time_ms_sum = 90;

  EndpointStats stats = StatsFromCounts("ep_1", counts);

  EXPECT_EQ(stats.failed_deliveries(), 3);
  EXPECT_EQ(stats.attempts_without_response(), 2);
  EXPECT_DOUBLE_EQ(stats.avg_response_time_ms(), 45.0);
  EXPECT_DOUBLE_EQ(stats.success_rate(), 25.0);

  counts.answered = 0;
  counts.response_time_ms_sum = 0;
  stats = StatsFromCounts("ep_1", counts);
  EXPECT_EQ(stats.attempts_without_response(), 4);
  EXPECT_EQ(stats.avg_response_time_ms(), 0.0);
}

TEST(StatsFromCountsTest, DeliveriesAreCountedApartFromAttempts) {
  // 2 deliveries succeeded at once, 3 failed after 4 attempts, 1 goes on.
  EndpointCounts counts;
  counts.attempts = 15;
  counts.successes = 2;
  counts.answered = 15;
  counts.deliveries_succeeded = 2;
  counts.deliveries_failed = 3;
  counts.deliveries_in_progress = 1;

  EndpointStats stats = StatsFromCounts("ep_1", counts);

  EXPECT_EQ(stats.total_deliveries(), 15);
  EXPECT_DOUBLE_EQ(stats.success_rate(), 100.0 * 2 / 15);
  EXPECT_EQ(stats.deliveries_succeeded(), 2);
  EXPECT_EQ(stats.deliveries_failed(), 3);
  EXPECT_EQ(stats.deliveries_in_progress(), 1);
  EXPECT_DOUBLE_EQ(stats.delivery_success_rate(), 40.0);

  // None ended yet: 0, not NaN.
  stats = StatsFromCounts("ep_1", EndpointCounts{.deliveries_in_progress = 3});
  EXPECT_EQ(stats.delivery_success_rate(), 0.0);
}

}  // namespace
}  // namespace webhookd
