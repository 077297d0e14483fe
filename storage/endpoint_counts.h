// What one write adds to its endpoints' counts (EndpointCounts) and failure
// streaks (FailureStreak): the net effect of its new deliveries and its
// delivery changes, summed per endpoint the same way for every backend.

#ifndef WEBHOOKD_STORAGE_ENDPOINT_COUNTS_H_
#define WEBHOOKD_STORAGE_ENDPOINT_COUNTS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "storage/store.h"

namespace webhookd {

// The net effect of endings, in order, on a failure streak.
struct StreakChange {
  // A delivery ended SUCCESS: the streak starts again from failures and
  // first_us below instead of adding to them.
  bool reset = false;
  int64_t failures = 0;             // Failures after the last success.
  std::optional<int64_t> first_us;  // When the first of those ended.

  void Add(const DeliveryChange& change) {
    switch (change.ending) {
      case Ending::kSucceeded:
        *this = StreakChange{true, 0, std::nullopt};
        break;
      case Ending::kFailed:
        if (failures == 0) first_us = absl::ToUnixMicros(change.end_time);
        ++failures;
        break;
      case Ending::kNone:
      case Ending::kCancelled:
        break;
    }
  }
};

// What a write adds to one endpoint: counts to add to its totals
// (deliveries_in_progress may go down) and the change of its streak.
struct CountsDelta {
  EndpointCounts counts;
  StreakChange streak;
};

// The deltas of one write, by endpoint id in id order (the order in which
// a backend that locks rows must take them).
class CountsDeltas {
 public:
  // A new delivery: in progress unless it is a test.
  void AddNew(const Delivery& delivery) {
    if (delivery.test()) return;
    ++deltas_[delivery.endpoint_id()].counts.deliveries_in_progress;
  }

  // A change: its counted attempt and its ending, if any.
  void Add(const DeliveryChange& change) {
    if (!change.counted_attempt.has_value() && change.ending == Ending::kNone) {
      return;
    }
    CountsDelta& delta = deltas_[change.delivery.endpoint_id()];
    EndpointCounts& counts = delta.counts;
    delta.streak.Add(change);
    switch (change.ending) {
      case Ending::kNone:
        break;
      case Ending::kSucceeded:
        ++counts.deliveries_succeeded;
        --counts.deliveries_in_progress;
        break;
      case Ending::kFailed:
      case Ending::kCancelled:
        ++counts.deliveries_failed;
        --counts.deliveries_in_progress;
        break;
    }
    if (!change.counted_attempt.has_value()) return;
    const CountedAttempt& attempt = *change.counted_attempt;
    ++counts.attempts;
    if (attempt.success) ++counts.successes;
    if (attempt.answered) {
      ++counts.answered;
      counts.response_time_ms_sum += attempt.response_time_ms;
    }
  }

  bool empty() const { return deltas_.empty(); }
  const std::map<std::string, CountsDelta>& by_endpoint() const {
    return deltas_;
  }

 private:
  std::map<std::string, CountsDelta> deltas_;
};

// The deltas of a write of new deliveries `created` and `changes`.
inline CountsDeltas DeltasOf(absl::Span<const Delivery> created,
                             absl::Span<const DeliveryChange> changes) {
  CountsDeltas deltas;
  for (const Delivery& delivery : created) deltas.AddNew(delivery);
  for (const DeliveryChange& change : changes) deltas.Add(change);
  return deltas;
}

}  // namespace webhookd

#endif  // WEBHOOKD_STORAGE_ENDPOINT_COUNTS_H_
