#include "server/delivery/scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/time_util.h"

namespace webhookd {

QueuedDelivery QueueEntryOf(const Delivery& delivery, bool manual) {
  return QueuedDelivery{delivery.id(), delivery.endpoint_id(),
                        FromProtoTime(delivery.next_attempt_time()), manual,
                        delivery.test()};
}

Scheduler::Scheduler(SchedulerOptions options)
    : options_(options), queue_(options.max_in_flight_per_endpoint) {}

absl::Status Scheduler::Reserve(size_t count) {
  absl::MutexLock lock(&mu_);
  if (queue_.size() + reserved_ + count > options_.max_queued_deliveries) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many deliveries waiting (", queue_.size() + reserved_,
                     " queued, the limit is ", options_.max_queued_deliveries,
                     ", --max_queued_deliveries): try again later"));
  }
  reserved_ += count;
  return absl::OkStatus();
}

void Scheduler::Unreserve(size_t count) {
  absl::MutexLock lock(&mu_);
  reserved_ -= count;
}

void Scheduler::Schedule(absl::Span<const QueuedDelivery> entries,
                         size_t unreserve) {
  absl::MutexLock lock(&mu_);
  reserved_ -= unreserve;
  for (const QueuedDelivery& entry : entries) queue_.Schedule(entry);
  due_cv_.Signal();
}

void Scheduler::Release(const std::string& endpoint_id) {
  absl::MutexLock lock(&mu_);
  queue_.Release(endpoint_id);
  due_cv_.Signal();
}

std::vector<std::string> Scheduler::RemoveEndpoint(
    const std::string& endpoint_id) {
  absl::MutexLock lock(&mu_);
  return queue_.RemoveEndpoint(endpoint_id);
}

Scheduler::Withdrawal Scheduler::Withdraw(const std::string& delivery_id) {
  absl::MutexLock lock(&mu_);
  if (queue_.InFlight(delivery_id)) return Withdrawal::kInFlight;
  if (!queue_.Contains(delivery_id)) return Withdrawal::kNotQueued;
  queue_.Remove(delivery_id);
  return Withdrawal::kWithdrawn;
}

std::vector<QueuedDelivery> Scheduler::TakeDue(
    absl::Time now,
    const std::function<bool(const std::string& endpoint_id)>& is_held) {
  absl::MutexLock lock(&mu_);
  if (closed_ || running_ >= options_.max_in_flight) return {};
  std::vector<QueuedDelivery> due =
      queue_.TakeDue(now, options_.max_in_flight - running_, is_held);
  running_ += due.size();
  BucketLocked(now).started += due.size();
  return due;
}

void Scheduler::Settle(absl::Span<const std::string> ended,
                       absl::Span<const QueuedDelivery> again, size_t finished,
                       absl::Span<const AttemptEnd> attempts) {
  absl::MutexLock lock(&mu_);
  for (const AttemptEnd& attempt : attempts) {
    queue_.RecordAttempt(attempt.endpoint_id, attempt.end, attempt.elapsed,
                         attempt.succeeded);
    if (!attempt.succeeded) continue;
    RateBucket& bucket = BucketLocked(attempt.end);
    ++bucket.delivered;
    bucket.delivered_seconds += absl::ToDoubleSeconds(attempt.elapsed);
  }
  running_ -= finished;
  for (const std::string& id : ended) queue_.Remove(id);
  for (const QueuedDelivery& entry : again) {
    queue_.Remove(entry.delivery_id);
    queue_.Schedule(entry);
  }
  due_cv_.Signal();
}

bool Scheduler::HasDueLocked(absl::Time now) const {
  if (running_ >= options_.max_in_flight) return false;
  std::optional<absl::Time> next = queue_.NextDue();
  return next.has_value() && *next <= now;
}

bool Scheduler::WaitForDue(const Clock& clock, absl::Duration max_wait) {
  absl::MutexLock lock(&mu_);
  while (!closed_) {
    const absl::Time now = clock.Now();
    if (HasDueLocked(now)) return true;
    absl::Duration wait = max_wait;
    std::optional<absl::Time> next = queue_.NextDue();
    if (next.has_value() && running_ < options_.max_in_flight) {
      wait = std::clamp(*next - now, absl::ZeroDuration(), max_wait);
    }
    due_cv_.WaitWithTimeout(&mu_, wait);
  }
  return false;
}

void Scheduler::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  due_cv_.SignalAll();
}

size_t Scheduler::size() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

Scheduler::Counts Scheduler::counts() const {
  absl::MutexLock lock(&mu_);
  Counts counts;
  counts.in_flight = queue_.in_flight();
  counts.held = queue_.held();
  counts.waiting = queue_.size() - counts.in_flight - counts.held;
  return counts;
}

namespace {

// Due entries that never count as a backlog: what one dispatch round takes
// anyway (a fan-out to many endpoints comes in at once).
constexpr size_t kReadySlack = 64;

// An endpoint keeps up while its attempts take at most this many times the
// mean successful attempt of the rate window, or kQuickAttemptFloor (see
// Lag). Failed attempts are left out of the mean: a hanging endpoint's
// timeouts would make every slow receiver look quick.
constexpr int kQuickAttemptFactor = 4;
constexpr absl::Duration kQuickAttemptFloor = absl::Milliseconds(100);
// How often Lag counts the parked entries of endpoints that keep up again.
constexpr absl::Duration kQuickParkedRecount = absl::Milliseconds(10);

int64_t PeriodOf(absl::Time now, absl::Duration period) {
  return absl::ToUnixMicros(now) / absl::ToInt64Microseconds(period);
}

}  // namespace

Scheduler::RateBucket& Scheduler::BucketLocked(absl::Time now) {
  const int64_t period = PeriodOf(now, kRateBucket);
  RateBucket& bucket = buckets_[static_cast<size_t>(period % kRateBuckets)];
  if (bucket.period != period) bucket = RateBucket{.period = period};
  return bucket;
}

Scheduler::RateBucket Scheduler::WindowLocked(absl::Time now) const {
  const int64_t period = PeriodOf(now, kRateBucket);
  const int64_t first = period - (kRateBuckets - 1);
  RateBucket sum{.period = first};
  for (const RateBucket& bucket : buckets_) {
    if (bucket.period >= first && bucket.period <= period) {
      sum.started += bucket.started;
      sum.delivered += bucket.delivered;
      sum.delivered_seconds += bucket.delivered_seconds;
    }
  }
  return sum;
}

double Scheduler::StartRateLocked(absl::Time now) const {
  const RateBucket window = WindowLocked(now);
  const absl::Duration covered =
      now - absl::FromUnixMicros(window.period *
                                 absl::ToInt64Microseconds(kRateBucket));
  return static_cast<double>(window.started) / absl::ToDoubleSeconds(covered);
}

absl::Duration Scheduler::QuickAttemptLocked(absl::Time now) const {
  const RateBucket window = WindowLocked(now);
  const absl::Duration mean =
      window.delivered == 0
          ? absl::ZeroDuration()
          : absl::Seconds(window.delivered_seconds /
                          static_cast<double>(window.delivered));
  return std::max(kQuickAttemptFactor * mean, kQuickAttemptFloor);
}

size_t Scheduler::QuickParkedLocked(absl::Time now) {
  if (now < quick_parked_at_ || now - quick_parked_at_ >= kQuickParkedRecount) {
    quick_parked_ =
        queue_.ParkedBehindQuickEndpoints(now, QuickAttemptLocked(now));
    quick_parked_at_ = now;
  }
  return quick_parked_;
}

size_t Scheduler::AheadLocked(absl::Time now) {
  return queue_.Ready(now) + QuickParkedLocked(now);
}

absl::Duration Scheduler::Lag(absl::Time now) {
  absl::MutexLock lock(&mu_);
  absl::Duration lag = absl::ZeroDuration();
  const std::optional<absl::Time> next = queue_.NextDue();
  if (next.has_value() && *next < now) lag = now - *next;
  const size_t ahead = AheadLocked(now);
  const double rate = StartRateLocked(now);
  if (ahead > kReadySlack && rate > 0) {
    lag = std::max(
        lag, absl::Seconds(static_cast<double>(ahead - kReadySlack) / rate));
  }
  return lag;
}

size_t Scheduler::Room(absl::Time now, absl::Duration max_lag) {
  absl::MutexLock lock(&mu_);
  const double capacity = static_cast<double>(kReadySlack) +
                          absl::ToDoubleSeconds(max_lag) * StartRateLocked(now);
  const double room = capacity - static_cast<double>(AheadLocked(now));
  return room > 0 ? static_cast<size_t>(room) : 0;
}

size_t Scheduler::running() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

}  // namespace webhookd
