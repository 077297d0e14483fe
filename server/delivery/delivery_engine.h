// The delivery engine: the facade over the submit pipeline, the dispatcher
// and the attempt recorder, with the three threads that drive them.

#ifndef WEBHOOKD_SERVER_DELIVERY_DELIVERY_ENGINE_H_
#define WEBHOOKD_SERVER_DELIVERY_DELIVERY_ENGINE_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/caller.h"
#include "server/common/clock.h"
#include "server/common/limits.h"
#include "server/common/metrics.h"
#include "server/common/version.h"
#include "server/delivery/attempt_recorder.h"
#include "server/delivery/auto_disable.h"
#include "server/delivery/change_bus.h"
#include "server/delivery/claimer.h"
#include "server/delivery/dispatcher.h"
#include "server/delivery/endpoint_manager.h"
#include "server/delivery/fresh_deliveries.h"
#include "server/delivery/resender.h"
#include "server/delivery/retry_policy.h"
#include "server/delivery/scheduler.h"
#include "server/delivery/submit_pipeline.h"
#include "server/http/http_sender.h"
#include "storage/store.h"

namespace webhookd {

struct DeliveryEngineOptions {
  RetryPolicy retry_policy =
      RetryPolicy({absl::Seconds(5), absl::Seconds(15), absl::Seconds(60)});
  absl::Duration attempt_timeout = absl::Seconds(30);
  // Attempts in flight, in all and per endpoint, and the backpressure
  // bound: the Scheduler's.
  SchedulerOptions limits;
  // Largest rendered payload accepted.
  size_t max_payload_bytes = kDefaultMaxPayloadBytes;
  // Sent as User-Agent.
  std::string user_agent = kUserAgent;
  // Whether Start() runs the engine's threads (commit, dispatch, record,
  // and claim on a shared store), which call the step functions below in
  // loops. Without them
  // nothing moves until a caller steps the engine: for deterministic tests
  // driven by a fake clock and a fake sender.
  bool run_threads = true;
  // Events submitted without a trace context get a new one
  // (--trace_new_events).
  bool trace_new_events = false;
  // When webhookd disables failing endpoints itself.
  AutoDisableOptions auto_disable;
  // When submits wait for delivery to catch up.
  AdmissionOptions admission;
};

// DeliveryEngine is safe for concurrent use. Its methods block on storage
// (synced writes) but never on the network: call them off gRPC threads.
// Methods taking a Caller enforce ownership: another user's endpoints and
// deliveries are NotFound.
//
// Data path: SubmitAsync -> SubmitPipeline (checks, group commit) ->
// Scheduler -> Dispatcher (signed request) -> HttpSender -> AttemptRecorder
// (retry policy, buffered write) -> Scheduler (retries) and ChangeBus.
class DeliveryEngine {
 public:
  using SubmitCallback = SubmitPipeline::SubmitCallback;
  using DeliveryCallback = AttemptRecorder::DeliveryCallback;

  // Every reference must outlive the engine. `scheduler` is made with
  // options.limits. What the engine does is reported to `metrics`.
  DeliveryEngine(Store& store, EndpointManager& endpoints, Scheduler& scheduler,
                 ChangeBus& bus, HttpSender& sender, const Clock& clock,
                 DeliveryEngineOptions options, Metrics& metrics = NoMetrics());
  DeliveryEngine(const DeliveryEngine&) = delete;
  DeliveryEngine& operator=(const DeliveryEngine&) = delete;
  // Stops with no grace if Stop() was not called.
  ~DeliveryEngine();

  // Loads the queue left by a previous run and starts delivering: overdue
  // deliveries, and attempts cut short by a crash, go out at once. On a
  // store shared with other nodes, nothing is loaded: the engine claims
  // due deliveries as it has room, and watches the other nodes' writes
  // (endpoint changes, deliveries for the ChangeBus, new work).
  absl::Status Start();

  // Stops taking deliveries, lets attempts in flight finish for up to
  // `grace` (aborted ones stay queued for the next run), records every
  // outcome and joins the engine's threads. Idempotent.
  void Stop(absl::Duration grace);

  // See SubmitPipeline::Submit: stored in one synced write with every
  // waiting submit, `done` runs after the write (on the commit thread) or
  // at once for a refused request.
  void SubmitAsync(const Caller& caller,
                   const webhook::v1::SubmitEventRequest& request,
                   SubmitCallback done, TraceContext trace = {});
  // SubmitPipeline::SubmitBatch (SubmitEvents): the batch's accepted
  // events in one synced write; `done` runs once, after the write (on the
  // commit thread) or at once for a batch refused before storage.
  void SubmitBatchAsync(const Caller& caller,
                        const webhook::v1::SubmitEventsRequest& request,
                        BatchAnswers::Callback done, TraceContext trace = {});

  // Sends one test attempt to the endpoint (also when disabled). On OK,
  // `done` runs once, on an engine thread, with the finished delivery; on
  // error (NotFound, InvalidArgument...) it does not run.
  absl::Status SendTest(const Caller& caller, const std::string& endpoint_id,
                        const std::string& payload_json, DeliveryCallback done);

  // Queues an immediate manual attempt of a failed delivery with attempts
  // left. FailedPrecondition otherwise, and for a delivery whose payload
  // was lost in a repair (PayloadLost).
  absl::StatusOr<Delivery> Retry(const Caller& caller,
                                 const std::string& delivery_id);

  // Resender::Resend: sends an ended delivery again as a new delivery.
  absl::StatusOr<Delivery> Resend(const Caller& caller,
                                  const std::string& delivery_id);
  // Resender::Recover: resends the FAILED deliveries of an endpoint since
  // `since`, at most kMaxRecoveredPerCall per call.
  absl::StatusOr<RecoverResult> Recover(const Caller& caller,
                                        const std::string& endpoint_id,
                                        absl::Time since);

  // Deliveries queued, held or in flight.
  size_t QueuedCount() const;

  // Step functions: the engine's threads call these in loops; with
  // run_threads false, the caller does. Each must have one caller at a
  // time.
  //
  // SubmitPipeline::CommitPending: writes the waiting submits in one synced
  // write and answers each. Returns how many were answered.
  size_t CommitPending();
  // Dispatcher::DispatchDue: starts the attempts due at `now`. Returns how
  // many deliveries were taken from the queue.
  size_t DispatchDue(absl::Time now);
  // AttemptRecorder::RecordCompleted: records the attempts that finished,
  // learnt at `now`. Returns how many were recorded.
  size_t RecordCompleted(absl::Time now);
  // Claimer::Step on a shared store (0 otherwise): claims the deliveries
  // due at `now` that this node has room for. Returns how many.
  size_t ClaimDue(absl::Time now);

 private:
  // What the other nodes sharing the store write, applied to this node.
  class Watcher : public ClusterWatcher {
   public:
    explicit Watcher(DeliveryEngine& engine) : engine_(engine) {}
    void DeliveriesChanged(absl::Span<const Delivery> deliveries) override;
    void EndpointChanged(std::string_view endpoint_id) override;
    void WorkQueued() override;
    void Resync() override;

   private:
    DeliveryEngine& engine_;
  };

  // Start() on a store of one node: schedules its whole queue.
  absl::Status LoadQueue();
  // Retry() on a shared store, whose caller may access the delivery: the
  // delivery is claimed while its state is checked and rewritten.
  absl::StatusOr<Delivery> RetryClaimed(const std::string& delivery_id);
  // Why `delivery` cannot be retried, or OK.
  absl::Status CheckRetryable(const Delivery& delivery) const;

  void CommitLoop();
  void DispatchLoop();
  void RecordLoop();
  void ClaimLoop();
  // Reloads every endpoint if the watch asked for it (Resync), on the claim
  // thread: not on the store's watch thread, which must not block on it.
  void ReloadEndpointsIfAsked();

  Store& store_;
  EndpointManager& endpoints_;
  Scheduler& scheduler_;
  ChangeBus& bus_;
  HttpSender& sender_;
  const Clock& clock_;
  const DeliveryEngineOptions options_;
  // Set on a store shared with other nodes.
  SharedQueue* const shared_;
  std::unique_ptr<Claimer> claimer_;
  Watcher watcher_;
  // Set by Watcher::Resync, and again while reloading fails.
  std::atomic<bool> reload_endpoints_{false};
  FreshDeliveries fresh_;
  AutoDisabler disabler_;
  SubmitPipeline pipeline_;
  AttemptRecorder recorder_;
  Dispatcher dispatcher_;
  Resender resender_;

  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;

  std::thread committer_;
  std::thread dispatch_thread_;
  std::thread recorder_thread_;
  std::thread claim_thread_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_DELIVERY_ENGINE_H_
