#include "server/delivery/attempt_recorder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace webhookd {
namespace {

// How long after a failed write the attempts are made again.
constexpr absl::Duration kRetryAfterWriteFailure = absl::Seconds(1);

}  // namespace

AttemptRecorder::AttemptRecorder(Store& store, const EndpointManager& endpoints,
                                 Scheduler& scheduler, ChangeBus& bus,
                                 RetryPolicy policy)
    : store_(store),
      endpoints_(endpoints),
      scheduler_(scheduler),
      bus_(bus),
      policy_(std::move(policy)) {}

void AttemptRecorder::Add(Completion completion) {
  absl::MutexLock lock(&mu_);
  completions_.push_back(std::move(completion));
  cv_.Signal();
}

bool AttemptRecorder::WaitForCompletions(absl::Duration max_wait) {
  absl::MutexLock lock(&mu_);
  while (completions_.empty()) {
    if (closed_ && scheduler_.running() == 0) return false;
    cv_.WaitWithTimeout(&mu_, max_wait);
  }
  return true;
}

void AttemptRecorder::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  cv_.SignalAll();
}

void AttemptRecorder::AddTestWaiter(const std::string& delivery_id,
                                    DeliveryCallback done) {
  absl::MutexLock lock(&mu_);
  test_waiters_.emplace(delivery_id, std::move(done));
}

void AttemptRecorder::FailWaiters(const absl::Status& status) {
  absl::flat_hash_map<std::string, DeliveryCallback> waiters;
  {
    absl::MutexLock lock(&mu_);
    waiters.swap(test_waiters_);
  }
  for (auto& [id, done] : waiters) done(status);
}

size_t AttemptRecorder::RecordCompleted(absl::Time now) {
  std::vector<Completion> completions;
  {
    absl::MutexLock lock(&mu_);
    completions.swap(completions_);
  }
  if (completions.empty()) return 0;

  std::vector<DeliveryChange> changes;
  std::vector<const Completion*> recorded;
  std::vector<QueuedDelivery> again;
  changes.reserve(completions.size());
  recorded.reserve(completions.size());
  for (const Completion& completion : completions) {
    const Delivery& before = completion.attempt.delivery;
    if (completion.result.aborted) {
      // Cut short by shutdown: the attempt is made again by the next run.
      again.push_back(QueueEntryOf(before, completion.attempt.manual));
      continue;
    }
    AttemptOutcome outcome;
    outcome.start_time = completion.attempt.start_time;
    outcome.result = completion.result;
    outcome.manual = completion.attempt.manual;
    outcome.endpoint_deleted =
        !before.test() && endpoints_.Find(before.endpoint_id()) == nullptr;
    outcome.finish_time = now;
    changes.push_back(ApplyAttempt(before, outcome, policy_));
    recorded.push_back(&completion);
  }
  // Buffered: losing an outcome in a machine crash only causes a resend.
  const absl::Status written =
      store_.UpdateDeliveries(changes, Durability::kBuffered);
  if (!written.ok()) {
    // The store still holds the state before these attempts. Make them
    // again a little later (at least once), rather than act on outcomes the
    // store does not know; test deliveries report their outcome anyway.
    Log(LogLevel::kError, absl::StrCat("recording ", changes.size(),
                                       " attempts: ", written.ToString(),
                                       "; they will be made again"));
    for (const Completion* completion : recorded) {
      const Attempt& attempt = completion->attempt;
      if (attempt.delivery.test()) continue;
      QueuedDelivery entry = QueueEntryOf(attempt.delivery, attempt.manual);
      entry.due = now + kRetryAfterWriteFailure;
      again.push_back(std::move(entry));
    }
  }
  std::vector<std::string> ended;
  std::vector<std::pair<DeliveryCallback, Delivery>> finished_tests;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < changes.size(); ++i) {
      const Delivery& delivery = changes[i].delivery;
      if (!written.ok() && !delivery.test()) continue;  // Queued again.
      if (changes[i].next_due.has_value()) {
        again.push_back(QueueEntryOf(delivery, false));
      } else {
        ended.push_back(delivery.id());
      }
      if (!delivery.test()) continue;
      auto waiter = test_waiters_.find(delivery.id());
      if (waiter == test_waiters_.end()) continue;
      Delivery full = delivery;
      full.set_payload(recorded[i]->attempt.delivery.payload());
      finished_tests.emplace_back(std::move(waiter->second), std::move(full));
      test_waiters_.erase(waiter);
    }
  }
  scheduler_.Settle(ended, again, completions.size());
  if (written.ok()) {
    for (const DeliveryChange& change : changes) bus_.Publish(change.delivery);
  }
  for (auto& [done, delivery] : finished_tests) done(std::move(delivery));
  return completions.size();
}

}  // namespace webhookd
