// Endpoint stats as the domain answers them: computed from the totals the
// store keeps.

#include "server/delivery/delivery_log.h"

#include <cmath>

#include "gtest/gtest.h"

namespace webhookd {
namespace {

TEST(StatsFromCountsTest, NoAttemptsGiveZerosNotNaN) {
  EndpointStats stats = StatsFromCounts("ep_1", AttemptCounts());

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
  AttemptCounts counts;
  counts.attempts = 8;
  counts.successes = 6;
  counts.response_time_ms_sum = 200;

  EndpointStats stats = StatsFromCounts("ep_1", counts);

  EXPECT_EQ(stats.total_deliveries(), 8);
  EXPECT_EQ(stats.successful_deliveries(), 6);
  EXPECT_EQ(stats.failed_deliveries(), 2);
  EXPECT_DOUBLE_EQ(stats.success_rate(), 75.0);
  EXPECT_DOUBLE_EQ(stats.avg_response_time_ms(), 25.0);
}

TEST(StatsFromCountsTest, MeanKeepsFractions) {
  AttemptCounts counts;
  counts.attempts = 3;
  counts.successes = 1;
  counts.response_time_ms_sum = 10;

  EndpointStats stats = StatsFromCounts("ep_1", counts);

  EXPECT_DOUBLE_EQ(stats.success_rate(), 100.0 / 3);
  EXPECT_DOUBLE_EQ(stats.avg_response_time_ms(), 10.0 / 3);
}

TEST(StatsFromCountsTest, AllFailedIsZeroPercent) {
  AttemptCounts counts;
  counts.attempts = 2;
  counts.response_time_ms_sum = 3000;

  EndpointStats stats = StatsFromCounts("ep_1", counts);

  EXPECT_EQ(stats.failed_deliveries(), 2);
  EXPECT_EQ(stats.success_rate(), 0.0);
  EXPECT_DOUBLE_EQ(stats.avg_response_time_ms(), 1500.0);
}

}  // namespace
}  // namespace webhookd
