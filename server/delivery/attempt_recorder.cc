#include "server/delivery/attempt_recorder.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "server/common/logging.h"
#include "server/common/time_util.h"
#include "server/delivery/attempt_log.h"

namespace webhookd {
namespace {

// How long after a failed write the attempts are made again.
constexpr absl::Duration kRetryAfterWriteFailure = absl::Seconds(1);

}  // namespace

AttemptRecorder::AttemptRecorder(Store& store, const EndpointManager& endpoints,
                                 Scheduler& scheduler, Claimer* claimer,
                                 ChangeBus& bus, Metrics& metrics,
                                 RetryPolicy policy, AutoDisabler* disabler)
    : store_(store),
      endpoints_(endpoints),
      scheduler_(scheduler),
      claimer_(claimer),
      bus_(bus),
      metrics_(metrics),
      policy_(std::move(policy)),
      disabler_(disabler) {}

void AttemptRecorder::Add(Completion completion) {
  absl::MutexLock lock(&mu_);
  completions_.push_back(std::move(completion));
  cv_.Signal();
}

bool AttemptRecorder::WaitForCompletions(absl::Duration max_wait) {
  absl::MutexLock lock(&mu_);
  while (completions_.empty()) {
    if (closed_ && scheduler_.running() == 0) {
      if (!unwritten_.empty()) {
        Log(LogLevel::kError,
            absl::StrCat("shutting down with ", unwritten_.size(),
                         " attempts not recorded: the store did not answer; "
                         "they are made again once their claims run out"));
        unwritten_.clear();
      }
      return false;
    }
    // Outcomes kept while the store failed are written again at this pace.
    if (cv_.WaitWithTimeout(&mu_, max_wait) && !unwritten_.empty()) {
      return true;
    }
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

absl::Status AttemptRecorder::Write(absl::Span<const DeliveryChange> changes,
                                    Durability durability,
                                    std::vector<bool>* applied) {
  if (applied != nullptr) applied->assign(changes.size(), true);
  if (claimer_ == nullptr) return store_.UpdateDeliveries(changes, durability);
  std::vector<DeliveryChange> claimed;
  std::vector<int64_t> tokens;
  std::vector<size_t> index;  // Of the change in `changes`.
  for (size_t i = 0; i < changes.size(); ++i) {
    std::optional<int64_t> token = claimer_->Take(changes[i].delivery.id());
    if (!token.has_value()) {
      // Given up by this node: another may have attempted it since.
      if (applied != nullptr) (*applied)[i] = false;
      continue;
    }
    claimed.push_back(changes[i]);
    tokens.push_back(*token);
    index.push_back(i);
  }
  // Outcomes that could not be written before go first, in their order.
  std::vector<ClaimedChange> earlier;
  {
    absl::MutexLock lock(&mu_);
    earlier.swap(unwritten_);
  }
  std::vector<DeliveryChange> all;
  std::vector<int64_t> all_tokens;
  all.reserve(earlier.size() + claimed.size());
  for (ClaimedChange& change : earlier) {
    all.push_back(std::move(change.change));
    all_tokens.push_back(change.token);
  }
  all.insert(all.end(), claimed.begin(), claimed.end());
  all_tokens.insert(all_tokens.end(), tokens.begin(), tokens.end());
  if (all.empty()) return absl::OkStatus();
  absl::StatusOr<std::vector<std::string>> lost =
      store_.shared_queue()->UpdateClaimed(all, all_tokens, durability);
  if (!lost.ok()) {
    // Kept, with their tokens, to be written when the store answers again:
    // a token still fences them then.
    absl::MutexLock lock(&mu_);
    for (size_t k = 0; k < all.size(); ++k) {
      unwritten_.push_back({std::move(all[k]), all_tokens[k]});
    }
    return lost.status();
  }
  const absl::flat_hash_set<std::string> fenced(lost->begin(), lost->end());
  for (size_t k = 0; k < earlier.size(); ++k) {
    if (!fenced.contains(all[k].delivery.id())) bus_.Publish(all[k].delivery);
  }
  if (!earlier.empty()) {
    Log(LogLevel::kInfo, absl::StrCat("recorded ", earlier.size(),
                                      " attempts kept while the store failed"));
  }
  if (applied != nullptr) {
    for (size_t k = 0; k < claimed.size(); ++k) {
      if (fenced.contains(claimed[k].delivery.id())) {
        (*applied)[index[k]] = false;
      }
    }
  }
  return absl::OkStatus();
}

void AttemptRecorder::CountOutcome(const DeliveryChange& change,
                                   absl::Time now) {
  const Delivery& delivery = change.delivery;
  if (delivery.test()) return;
  switch (delivery.status()) {
    case webhook::v1::DELIVERY_STATUS_SUCCESS:
      metrics_.DeliveryFinished(DeliveryOutcome::kDelivered,
                                now - FromProtoTime(delivery.create_time()));
      break;
    case webhook::v1::DELIVERY_STATUS_FAILED:
      metrics_.DeliveryFinished(DeliveryOutcome::kFailed,
                                now - FromProtoTime(delivery.create_time()));
      break;
    case webhook::v1::DELIVERY_STATUS_RETRYING:
      metrics_.RetryScheduled();
      break;
    default:
      break;
  }
}

size_t AttemptRecorder::RecordCompleted(absl::Time now) {
  std::vector<Completion> completions;
  bool unwritten;
  {
    absl::MutexLock lock(&mu_);
    completions.swap(completions_);
    unwritten = !unwritten_.empty();
  }
  if (completions.empty() && !unwritten) return 0;

  std::vector<DeliveryChange> changes;
  std::vector<const Completion*> recorded;
  std::vector<QueuedDelivery> again;
  std::vector<std::string> ended;
  changes.reserve(completions.size());
  recorded.reserve(completions.size());
  std::vector<AttemptEnd> attempt_ends;  // Of deliveries queued per endpoint.
  attempt_ends.reserve(completions.size());
  for (const Completion& completion : completions) {
    const Delivery& before = completion.attempt.delivery;
    if (!completion.result.aborted) {
      const HttpResult& result = completion.result;
      metrics_.AttemptFinished(
          ClassifyResponse(result.error.empty() ? result.status_code : 0,
                           result.timed_out),
          result.elapsed);
      if (!before.test()) {
        attempt_ends.push_back(AttemptEnd{before.endpoint_id(), now,
                                          result.elapsed, Delivered(result)});
      }
    }
    if (completion.result.aborted) {
      LogAbortedAttempt(before, completion.attempt.traceparent);
      // Cut short by shutdown: the attempt is made again by the next run,
      // or, on a shared store, by whichever node claims it once this one
      // gives its claims back.
      if (claimer_ == nullptr) {
        again.push_back(QueueEntryOf(before, completion.attempt.manual));
      } else {
        ended.push_back(before.id());
      }
      continue;
    }
    AttemptOutcome outcome;
    outcome.start_time = completion.attempt.start_time;
    outcome.result = completion.result;
    outcome.manual = completion.attempt.manual;
    outcome.endpoint_deleted =
        !before.test() && endpoints_.Find(before.endpoint_id()) == nullptr;
    outcome.finish_time = now;
    outcome.traceparent = completion.attempt.traceparent;
    changes.push_back(ApplyAttempt(before, outcome, policy_));
    recorded.push_back(&completion);
  }
  // Buffered: losing an outcome in a machine crash only causes a resend.
  std::vector<bool> applied;
  const absl::Time write_start = absl::Now();
  const absl::Status written = Write(changes, Durability::kBuffered, &applied);
  metrics_.StorageWriteFinished(StorageWrite::kAttemptRecord,
                                absl::Now() - write_start);
  if (!written.ok() && claimer_ != nullptr) {
    // Kept by Write (which tells when it writes them); the store's queue
    // still holds these deliveries.
    if (!changes.empty()) {
      Log(LogLevel::kError,
          absl::StrCat("recording ", changes.size(),
                       " attempts: ", written.ToString(),
                       "; their outcomes are written when the store answers "
                       "again, or they are made again"));
    }
  } else if (!written.ok()) {
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
  std::vector<std::pair<DeliveryCallback, Delivery>> finished_tests;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < changes.size(); ++i) {
      const DeliveryChange& change = changes[i];
      const Delivery& delivery = change.delivery;
      if (claimer_ != nullptr) {
        // The store's queue has the retries; this node claims them when
        // due, like any other node.
        ended.push_back(delivery.id());
        if (written.ok() && applied[i] && change.next_due.has_value()) {
          claimer_->WakeAt(*change.next_due);
        }
      } else if (!written.ok() && !delivery.test()) {
        continue;  // Queued again.
      } else if (change.next_due.has_value()) {
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
  // Before the retries are queued: those of an endpoint disabled here are
  // held, never attempted.
  if (written.ok() && disabler_ != nullptr) {
    disabler_->Check(changes, applied, now);
  }
  scheduler_.Settle(ended, again, completions.size(), attempt_ends);
  for (size_t i = 0; i < changes.size(); ++i) {
    // On a shared store a failed write is kept and written later.
    LogFinishedAttempt(changes[i].delivery,
                       written.ok() ? applied[i] : claimer_ != nullptr);
  }
  if (written.ok()) {
    for (size_t i = 0; i < changes.size(); ++i) {
      if (!applied[i]) continue;
      CountOutcome(changes[i], now);
      bus_.Publish(changes[i].delivery);
    }
  }
  for (auto& [done, delivery] : finished_tests) done(std::move(delivery));
  return completions.size();
}

}  // namespace webhookd
