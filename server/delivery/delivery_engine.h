// The delivery engine: turns submitted events into deliveries, sends them
// through an HttpSender, records every attempt and retries on schedule.

#ifndef WEBHOOKD_SERVER_DELIVERY_DELIVERY_ENGINE_H_
#define WEBHOOKD_SERVER_DELIVERY_DELIVERY_ENGINE_H_

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/caller.h"
#include "server/common/clock.h"
#include "server/common/limits.h"
#include "server/common/version.h"
#include "server/delivery/delivery_queue.h"
#include "server/delivery/endpoint_manager.h"
#include "server/delivery/retry_policy.h"
#include "server/http/http_sender.h"
#include "storage/store.h"

namespace webhookd {

struct DeliveryEngineOptions {
  RetryPolicy retry_policy =
      RetryPolicy({absl::Seconds(5), absl::Seconds(15), absl::Seconds(60)});
  absl::Duration attempt_timeout = absl::Seconds(30);
  // Attempts running at once; more wait in the queue.
  size_t max_in_flight = 4096;
  // Attempts to one endpoint running at once (test deliveries aside); the
  // endpoint's further due deliveries wait, parked, so that endpoints that
  // hang cannot take every slot from the healthy ones. 0: no limit.
  size_t max_in_flight_per_endpoint = 32;
  // Largest rendered payload accepted.
  size_t max_payload_bytes = kDefaultMaxPayloadBytes;
  // Deliveries queued, held or in flight past which Submit refuses new
  // events with ResourceExhausted (backpressure).
  size_t max_queued_deliveries = 10'000'000;
  // Sent as User-Agent.
  std::string user_agent = kUserAgent;
  // Whether Start() runs the engine's three threads (commit, dispatch,
  // record), which call the step functions below in loops. Without them
  // nothing moves until a caller steps the engine: for deterministic tests
  // driven by a fake clock and a fake sender.
  bool run_threads = true;
};

// Told about every delivery that is created or changes.
class DeliveryListener {
 public:
  virtual ~DeliveryListener() = default;
  // Runs on an engine thread with the delivery's new state (no payload);
  // must return quickly and must not call back into the engine.
  virtual void OnDeliveryChanged(const Delivery& delivery) = 0;
};

// DeliveryEngine is safe for concurrent use. Its methods block on storage
// (synced writes) but never on the network: call them off gRPC threads.
// Methods taking a Caller enforce ownership: another user's endpoints and
// deliveries are NotFound.
class DeliveryEngine {
 public:
  using DeliveryCallback = std::function<void(absl::StatusOr<Delivery>)>;

  // `store`, `endpoints`, `sender` and `clock` must outlive the engine.
  DeliveryEngine(Store& store, EndpointManager& endpoints, HttpSender& sender,
                 const Clock& clock, DeliveryEngineOptions options);
  DeliveryEngine(const DeliveryEngine&) = delete;
  DeliveryEngine& operator=(const DeliveryEngine&) = delete;
  // Stops with no grace if Stop() was not called.
  ~DeliveryEngine();

  // Loads the queue left by a previous run and starts delivering: overdue
  // deliveries, and attempts cut short by a crash, go out at once.
  absl::Status Start();

  // Stops taking deliveries, lets attempts in flight finish for up to
  // `grace` (aborted ones stay queued for the next run), records every
  // outcome and joins the engine's threads. Idempotent.
  void Stop(absl::Duration grace);

  using SubmitCallback =
      std::function<void(absl::StatusOr<SubmitEventResponse>)>;

  // Stores the event and one delivery per enabled endpoint of its thread in
  // one synced write, then queues the deliveries. The request is checked and
  // rendered on the calling thread, which never blocks on storage; the write
  // is made by the engine's commit thread, which groups the submits waiting
  // for it into one synced write (group commit). `done` runs once: on the
  // calling thread for a request refused before storage, otherwise on the
  // commit thread after the write (it must not block). An authenticated
  // caller owns the event (PermissionDenied if request.user_id names
  // another user) and reaches only its own endpoints. ResourceExhausted,
  // with nothing stored, if the deliveries would take the queue past
  // max_queued_deliveries. A repeated idempotency key is answered with the
  // first response, also when both arrive together. `request` is read only
  // during the call.
  void SubmitAsync(const Caller& caller,
                   const webhook::v1::SubmitEventRequest& request,
                   SubmitCallback done);

  // Sends one test attempt to the endpoint (also when disabled). On OK,
  // `done` runs once, on an engine thread, with the finished delivery; on
  // error (NotFound, InvalidArgument...) it does not run.
  absl::Status SendTest(const Caller& caller, const std::string& endpoint_id,
                        const std::string& payload_json, DeliveryCallback done);

  // Queues an immediate manual attempt of a failed delivery with attempts
  // left. FailedPrecondition otherwise.
  absl::StatusOr<Delivery> Retry(const Caller& caller,
                                 const std::string& delivery_id);

  // Removes an endpoint; its queued deliveries end as FAILED.
  absl::Status DeleteEndpoint(const Caller& caller,
                              const std::string& endpoint_id);

  // Enables or disables an endpoint; enabling resumes held deliveries.
  absl::StatusOr<Endpoint> SetEndpointEnabled(const Caller& caller,
                                              const std::string& endpoint_id,
                                              bool enabled);

  // `listener` must stay valid until removed.
  void AddListener(DeliveryListener* listener);
  void RemoveListener(DeliveryListener* listener);

  // Deliveries queued, held or in flight.
  size_t QueuedCount() const;

  // Step functions: the engine's threads call these in loops; with
  // run_threads false, the caller does. Each is safe to call concurrently
  // with the engine's other methods, but each must have one caller at a
  // time.
  //
  // Writes the submits waiting since the last call in one synced write and
  // answers each. Returns how many submits were answered.
  size_t CommitPending();
  // Starts the attempts due at `now`, within max_in_flight and the
  // per-endpoint cap (or ends deliveries whose endpoint is gone). Returns
  // how many deliveries were taken from the queue.
  size_t DispatchDue(absl::Time now);
  // Records the attempts that finished since the last call, learnt at
  // `now`: each outcome is stored (one buffered write), retries are
  // scheduled from `now`, test deliveries answered and listeners told.
  // Returns how many attempts were recorded.
  size_t RecordCompleted(absl::Time now);

 private:
  // An attempt being made.
  struct InFlight {
    Delivery delivery;  // State before the attempt, with payload.
    absl::Time start_time;
    bool manual = false;
  };
  struct Completion {
    InFlight attempt;
    HttpResult result;
  };

  // A checked submit waiting for the commit thread.
  struct PendingSubmit {
    EventRecord event;
    std::vector<Delivery> deliveries;
    SubmitCallback done;
  };

  // Checks and renders a submit and reserves its deliveries against
  // max_queued_deliveries.
  absl::StatusOr<PendingSubmit> PrepareSubmit(
      const Caller& caller, const webhook::v1::SubmitEventRequest& request);
  // The loops of the engine's threads: each waits for work, then steps.
  void CommitLoop();
  void DispatchLoop();
  void RecordLoop();
  // Whether DispatchDue(now) has anything to take.
  bool HasDueLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes a batch of submits in one synced write, queues their deliveries
  // and answers each.
  void CommitBatch(std::vector<PendingSubmit>& batch);
  // Starts an attempt of a delivery taken from the queue at `now`.
  void Dispatch(const QueuedDelivery& entry, absl::Time now);
  // Ends a queued delivery without an attempt (deleted endpoint, missing
  // record) and records why.
  void EndWithoutAttempt(Delivery delivery, const std::string& why);
  void RecordCompletions(std::vector<Completion> completions, absl::Time now);
  void Publish(const Delivery& delivery);
  // Builds the signed HTTP request of an attempt.
  HttpRequest BuildRequest(const Delivery& delivery,
                           const Endpoint& endpoint) const;
  Delivery NewDelivery(const EventRecord& event, const std::string& endpoint_id,
                       int max_attempts, bool test) const;

  Store& store_;
  EndpointManager& endpoints_;
  HttpSender& sender_;
  const Clock& clock_;
  const DeliveryEngineOptions options_;

  mutable absl::Mutex mu_;
  absl::CondVar dispatch_cv_;  // Queue changed, or stopping.
  absl::CondVar record_cv_;    // Completions arrived, or stopping.
  DeliveryQueue queue_ ABSL_GUARDED_BY(mu_);
  std::vector<Completion> completions_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, DeliveryCallback> test_waiters_
      ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  // Attempts handed to the sender whose completion was not yet recorded.
  size_t sending_ ABSL_GUARDED_BY(mu_) = 0;
  // Deliveries of submits under way, counted against max_queued_deliveries
  // until they are queued.
  size_t reserved_ ABSL_GUARDED_BY(mu_) = 0;

  // Submits waiting for the commit thread. Closed by Stop, after which
  // submits are refused.
  absl::Mutex commit_mu_;
  absl::CondVar commit_cv_;
  std::vector<PendingSubmit> commit_queue_ ABSL_GUARDED_BY(commit_mu_);
  bool commit_closed_ ABSL_GUARDED_BY(commit_mu_) = false;

  absl::Mutex listeners_mu_;
  std::vector<DeliveryListener*> listeners_ ABSL_GUARDED_BY(listeners_mu_);

  std::thread committer_;
  std::thread dispatcher_;
  std::thread recorder_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_DELIVERY_ENGINE_H_
