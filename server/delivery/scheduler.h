// The scheduler: the queue of deliveries waiting for an attempt, shared by
// the submit pipeline, the dispatcher, the attempt recorder and the endpoint
// lifecycle, with the limits that bound it.

#ifndef WEBHOOKD_SERVER_DELIVERY_SCHEDULER_H_
#define WEBHOOKD_SERVER_DELIVERY_SCHEDULER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/common/clock.h"
#include "server/delivery/delivery_queue.h"
#include "storage/store.h"

namespace webhookd {

struct SchedulerOptions {
  // Attempts running at once; more wait in the queue.
  size_t max_in_flight = 4096;
  // Attempts to one endpoint running at once (test deliveries aside); the
  // endpoint's further due deliveries wait, parked, so that endpoints that
  // hang cannot take every slot from the healthy ones. 0: no limit.
  size_t max_in_flight_per_endpoint = 32;
  // Deliveries queued, held or in flight past which Reserve refuses new
  // submits with ResourceExhausted (backpressure).
  size_t max_queued_deliveries = 10'000'000;
};

// How an attempt ended, as the scheduler's lag needs it.
struct AttemptEnd {
  std::string_view endpoint_id;
  absl::Time end;  // When it was learnt.
  absl::Duration elapsed;
  bool succeeded = false;  // The receiver answered with success.
};

// Scheduler is safe for concurrent use. It is a DeliveryQueue behind a
// mutex, plus the count of attempts in flight, reservations for submits not
// yet written (backpressure) and the dispatcher's wake-up.
class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options);
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Reserves room for `count` deliveries of a submit under way, or returns
  // ResourceExhausted (naming --max_queued_deliveries) without reserving.
  absl::Status Reserve(size_t count);
  // Gives a reservation back (the submit was written or refused).
  void Unreserve(size_t count);

  // Queues entries (see DeliveryQueue::Schedule), gives back `unreserve`
  // of the reservation they were made under, and wakes the dispatcher.
  void Schedule(absl::Span<const QueuedDelivery> entries, size_t unreserve = 0);
  void Schedule(const QueuedDelivery& entry) { Schedule({&entry, 1}); }
  // Moves an endpoint's held entries back to the schedule.
  void Release(const std::string& endpoint_id);
  // Removes the entries of an endpoint that are not in flight; returns ids.
  std::vector<std::string> RemoveEndpoint(const std::string& endpoint_id);
  enum class Withdrawal { kNotQueued, kInFlight, kWithdrawn };
  // Takes a delivery out of the queue unless an attempt of it is running
  // (then kInFlight, and nothing changes), atomically.
  Withdrawal Withdraw(const std::string& delivery_id);

  // Takes the entries due at `now`, at most max_in_flight less the attempts
  // running, and counts them as running. `is_held` as in
  // DeliveryQueue::TakeDue. Nothing after Close().
  std::vector<QueuedDelivery> TakeDue(
      absl::Time now,
      const std::function<bool(const std::string& endpoint_id)>& is_held);
  // What the recorder does with one batch, under one lock: learns how the
  // `attempts` went, ends the `ended` entries, queues `again` (replacing
  // their entries, in flight or not) and counts `finished` attempts as
  // ended.
  void Settle(absl::Span<const std::string> ended,
              absl::Span<const QueuedDelivery> again, size_t finished,
              absl::Span<const AttemptEnd> attempts = {});

  // Blocks until an entry is due by `clock` and an attempt may start, or
  // Close(). Wakes at least every `max_wait`, so that a jump of the wall
  // clock is noticed. Returns false once closed.
  bool WaitForDue(const Clock& clock, absl::Duration max_wait);
  // Stops TakeDue and WaitForDue.
  void Close();

  // Deliveries queued, held or in flight.
  size_t size() const;
  // Where the deliveries of size() are, read at once.
  struct Counts {
    size_t waiting = 0;    // Waiting for their due time or a free slot.
    size_t held = 0;       // Due, but their endpoint is disabled.
    size_t in_flight = 0;  // An attempt is running.
  };
  Counts counts() const;
  // Attempts taken by TakeDue and not yet Finished.
  size_t running() const;
  // How far delivery is behind at `now`: how long a delivery due now would
  // wait for its attempt to start. The longer of how long the earliest due
  // entry has waited, and how long the due entries ahead of it take at the
  // rate attempts started over the last second.
  //
  // Ahead of it are the scheduled entries due by now and the parked entries
  // of endpoints that keep up (DeliveryQueue::ParkedBehindQuickEndpoints,
  // "quick" meaning at most 4 times the mean successful attempt of the last
  // second, and at least 100 ms): when every endpoint answers quickly but the
  // service cannot make attempts as fast as they come, the backlog is parked
  // behind the per-endpoint caps and is the service's own. Held entries wait
  // for their endpoint to be enabled, parked entries of a slow, hanging or
  // failing endpoint for that endpoint, and entries due later for their
  // time: none of them counts.
  absl::Duration Lag(absl::Time now);
  // How many more due deliveries may be added at `now` before Lag() passes
  // `max_lag` at the current attempt start rate: max_lag's worth of
  // attempts (and some slack), less the deliveries already ahead (see
  // Lag).
  size_t Room(absl::Time now, absl::Duration max_lag);

 private:
  bool HasDueLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The rate window: attempts started, and attempts that delivered, in
  // each of the last kRateBuckets periods of kRateBucket, by period number
  // (time / kRateBucket).
  static constexpr int kRateBuckets = 4;
  static constexpr absl::Duration kRateBucket = absl::Milliseconds(250);
  struct RateBucket {
    int64_t period = 0;
    size_t started = 0;
    size_t delivered = 0;
    double delivered_seconds = 0;  // How long those attempts took.
  };
  // The bucket of `now`, emptied first if it held an earlier period.
  RateBucket& BucketLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The buckets of the window at `now` added up; `period` is the first's.
  RateBucket WindowLocked(absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Attempts started per second over the last second or so.
  double StartRateLocked(absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How long an attempt of an endpoint that keeps up may take (see Lag).
  absl::Duration QuickAttemptLocked(absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ParkedBehindQuickEndpoints, counted again at most every few
  // milliseconds: Lag is read on every submit.
  size_t QuickParkedLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The deliveries ahead of one due now (see Lag).
  size_t AheadLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SchedulerOptions options_;

  mutable absl::Mutex mu_;
  absl::CondVar due_cv_;  // The queue changed, an attempt ended, or closed.
  DeliveryQueue queue_ ABSL_GUARDED_BY(mu_);
  size_t running_ ABSL_GUARDED_BY(mu_) = 0;
  size_t reserved_ ABSL_GUARDED_BY(mu_) = 0;
  std::array<RateBucket, kRateBuckets> buckets_ ABSL_GUARDED_BY(mu_) = {};
  size_t quick_parked_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time quick_parked_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

// The queue entry of a delivery in `delivery`'s state.
QueuedDelivery QueueEntryOf(const Delivery& delivery, bool manual);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_SCHEDULER_H_
