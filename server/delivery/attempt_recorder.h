// The attempt recorder: turns finished attempts into delivery changes,
// stores them in one buffered write per batch, schedules retries and
// answers test deliveries.

#ifndef WEBHOOKD_SERVER_DELIVERY_ATTEMPT_RECORDER_H_
#define WEBHOOKD_SERVER_DELIVERY_ATTEMPT_RECORDER_H_

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/metrics.h"
#include "server/delivery/auto_disable.h"
#include "server/delivery/change_bus.h"
#include "server/delivery/claimer.h"
#include "server/delivery/endpoint_manager.h"
#include "server/delivery/retry_policy.h"
#include "server/delivery/scheduler.h"
#include "server/http/http_sender.h"
#include "storage/store.h"

namespace webhookd {

// An attempt handed to the sender.
struct Attempt {
  // The delivery's state before the attempt; with its payload only for
  // test deliveries (whose caller gets it back).
  Delivery delivery;
  absl::Time start_time;
  bool manual = false;
  // The traceparent header sent with the attempt; empty if none.
  std::string traceparent;
};

// An attempt and what the sender made of it.
struct Completion {
  Attempt attempt;
  HttpResult result;
};

// AttemptRecorder is safe for concurrent use. Add() is called from sender
// threads; RecordCompleted() is one thread's step (the engine's record
// thread, or a test).
class AttemptRecorder {
 public:
  using DeliveryCallback = std::function<void(absl::StatusOr<Delivery>)>;

  // Every reference must outlive the recorder. `claimer`: on a node
  // sharing its store with others, the node's claims; nullptr otherwise.
  // `disabler`: checks the recorded outcomes for auto-disable; nullptr:
  // none.
  AttemptRecorder(Store& store, const EndpointManager& endpoints,
                  Scheduler& scheduler, Claimer* claimer, ChangeBus& bus,
                  Metrics& metrics, RetryPolicy policy,
                  AutoDisabler* disabler = nullptr);
  AttemptRecorder(const AttemptRecorder&) = delete;
  AttemptRecorder& operator=(const AttemptRecorder&) = delete;

  // Takes a finished attempt for the next RecordCompleted().
  void Add(Completion completion);

  // Records the attempts added since the last call, learnt at `now`: each
  // outcome applied by the retry policy (retries due counted from `now`)
  // and stored in one buffered write, the scheduler settled, listeners
  // told and test deliveries answered. An attempt aborted by shutdown is
  // not recorded and stays queued. If the write fails, the attempts are made
  // again a second later (at least once). Returns how many were recorded.
  size_t RecordCompleted(absl::Time now);

  // Stores new states of deliveries this node attempted or ended. On a
  // shared store, each is written only if this node still holds the
  // delivery's claim (which it ends); (*applied)[i] tells whether
  // changes[i] was. If the write fails, those still claimed are kept and
  // written with the next call (RecordCompleted makes one every max_wait).
  absl::Status Write(absl::Span<const DeliveryChange> changes,
                     Durability durability, std::vector<bool>* applied);

  // Blocks until an attempt is added, or, after Close(), until no attempt
  // is running; wakes at least every `max_wait`, and returns then if
  // outcomes wait to be written again. Returns false in the latter case.
  bool WaitForCompletions(absl::Duration max_wait);
  // No attempt will start any more: WaitForCompletions returns false once
  // the running ones are recorded.
  void Close();

  // `done` runs once, from RecordCompleted, with the finished test delivery
  // `delivery_id` (payload included), or from FailWaiters.
  void AddTestWaiter(const std::string& delivery_id, DeliveryCallback done);
  // Answers every test delivery still waiting with `status`.
  void FailWaiters(const absl::Status& status);

 private:
  // Reports the recorded outcome of an attempt to the metrics.
  void CountOutcome(const DeliveryChange& change, absl::Time now);

  Store& store_;
  const EndpointManager& endpoints_;
  Scheduler& scheduler_;
  Claimer* const claimer_;
  ChangeBus& bus_;
  Metrics& metrics_;
  const RetryPolicy policy_;
  AutoDisabler* const disabler_;

  // An outcome not yet written, with the token of its claim.
  struct ClaimedChange {
    DeliveryChange change;
    int64_t token;
  };

  absl::Mutex mu_;
  absl::CondVar cv_;
  std::vector<Completion> completions_ ABSL_GUARDED_BY(mu_);
  // Outcomes the store failed to take (shared stores only).
  std::vector<ClaimedChange> unwritten_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, DeliveryCallback> test_waiters_
      ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_ATTEMPT_RECORDER_H_
