// The submit pipeline: checks and renders SubmitEvent requests, and writes
// the submits that wait together in one synced write (group commit), with
// their idempotency keys.

#ifndef WEBHOOKD_SERVER_DELIVERY_SUBMIT_PIPELINE_H_
#define WEBHOOKD_SERVER_DELIVERY_SUBMIT_PIPELINE_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/common/caller.h"
#include "server/common/clock.h"
#include "server/common/metrics.h"
#include "server/common/trace_context.h"
#include "server/delivery/change_bus.h"
#include "server/delivery/claimer.h"
#include "server/delivery/endpoint_manager.h"
#include "server/delivery/fresh_deliveries.h"
#include "server/delivery/scheduler.h"
#include "server/delivery/submit_batch.h"
#include "storage/store.h"

namespace webhookd {

// Admission control: when delivery falls behind ingest, new submits wait
// for it to catch up before they are written, and are refused after a
// while, so that sustained overload settles where events are acknowledged
// as fast as their deliveries go out, with a bounded queue.
struct AdmissionOptions {
  // Delivery is behind when a delivery due now would wait this long for
  // its attempt to start (Scheduler::Lag; on a shared store also
  // Claimer::Lag).
  // Deliveries held for a disabled endpoint, parked behind an endpoint's
  // in-flight cap or awaiting a later retry do not count. Zero: no
  // admission control.
  absl::Duration max_lag = absl::Seconds(1);
  // How long a submit waits for delivery to catch up before it is refused
  // with ResourceExhausted (nothing stored) and a retry hint.
  absl::Duration max_wait = absl::Seconds(2);
  // How often waiting submits look at the lag again.
  absl::Duration poll = absl::Milliseconds(5);
};

// The absl::Status payload of a submit refused by admission control: the
// milliseconds after which to try again, as decimal text (the edge sends it
// as gRPC's grpc-retry-pushback-ms trailer).
inline constexpr char kRetryAfterMsPayload[] =
    "type.webhookd.dev/retry-after-ms";

struct SubmitPipelineOptions {
  // Attempts each new delivery may make.
  int max_attempts = 4;
  // Largest rendered payload accepted.
  size_t max_payload_bytes = 256 * 1024;
  // Events submitted without a trace context get a new one
  // (--trace_new_events).
  bool trace_new_events = false;
  AdmissionOptions admission;
};

// SubmitPipeline is safe for concurrent use. Submit() runs on the caller's
// thread and never blocks on storage; CommitPending() is one thread's step
// (the engine's commit thread, or a test).
class SubmitPipeline {
 public:
  using SubmitCallback =
      std::function<void(absl::StatusOr<SubmitEventResponse>)>;

  // Every argument must outlive the pipeline. `claimer`: on a node sharing
  // its store with others, the node's claims; nullptr otherwise.
  SubmitPipeline(Store& store, EndpointManager& endpoints, Scheduler& scheduler,
                 Claimer* claimer, FreshDeliveries& fresh, ChangeBus& bus,
                 const Clock& clock, Metrics& metrics,
                 SubmitPipelineOptions options);
  SubmitPipeline(const SubmitPipeline&) = delete;
  SubmitPipeline& operator=(const SubmitPipeline&) = delete;

  // Checks and renders the request, reserves its deliveries against the
  // scheduler's limit and queues it for CommitPending(), at once, or once
  // delivery has caught up (AdmissionOptions) while other submits wait for
  // that. `done` runs once: here for a request refused before storage
  // (InvalidArgument, PermissionDenied, ResourceExhausted, Unavailable
  // after Close()), in CommitPending() for one refused after waiting
  // (ResourceExhausted with kRetryAfterMsPayload), otherwise in
  // CommitPending() after the write (it must not block). An
  // authenticated caller owns the event and reaches only its own endpoints.
  // `request` is read only during the call.
  // `trace`: the W3C trace context that came with the request (empty:
  // none), kept with the event and its deliveries.
  void Submit(const Caller& caller,
              const webhook::v1::SubmitEventRequest& request,
              SubmitCallback done, TraceContext trace = {});

  // SubmitEvents: each event is checked as Submit() checks it; those
  // refused on their own (IsEventError) get their error in their result,
  // and the others are queued together, so that one CommitPending() writes
  // them all in one synced write and answers them as it answers Submit().
  // `done` runs once (see BatchAnswers): here when the batch is refused as
  // a whole (InvalidArgument naming events for its size, ResourceExhausted
  // when its deliveries do not all fit, Unavailable after Close()) or none
  // of its events was queued, otherwise in CommitPending(). Admission
  // control takes the batch as one submit: its events wait, and are
  // admitted or refused, together. `trace` goes with every event.
  void SubmitBatch(const Caller& caller,
                   const webhook::v1::SubmitEventsRequest& request,
                   BatchAnswers::Callback done, TraceContext trace = {});

  // Admits the submits waiting for delivery to catch up if it has, and
  // refuses those that waited max_wait. Then writes the submits admitted
  // since the last call in one synced write,
  // hands their deliveries to the dispatcher (FreshDeliveries, Scheduler),
  // tells the bus, and answers each. A repeated
  // idempotency key is answered with the first response, also within one
  // batch. Returns how many submits were answered.
  size_t CommitPending();

  // Blocks until a submit is admitted, or AdmissionOptions::poll has
  // passed while submits wait for admission, or Close(). Returns false once
  // closed and drained.
  bool WaitForSubmits();
  // Refuses later submits with Unavailable; those already taken, also those
  // waiting for admission, are still written by CommitPending().
  void Close();

 private:
  // A checked submit waiting for CommitPending().
  struct PendingSubmit {
    EventRecord event;
    std::vector<Delivery> deliveries;
    SubmitCallback done;
    // While it waits for admission: when it is refused.
    absl::Time deadline;
    // False for the events of a SubmitEvents call but its last: a call is
    // admitted whole, never in part (its one answer covers all its events).
    bool last_of_call = true;
  };

  absl::StatusOr<PendingSubmit> Prepare(
      const Caller& caller, const webhook::v1::SubmitEventRequest& request,
      TraceContext trace);
  // Queues checked submits holding `deliveries` reserved deliveries for
  // CommitPending(), together: admitted now, or waiting for admission
  // (AdmissionOptions). False, leaving them, once Close()d.
  bool Enqueue(absl::Span<PendingSubmit> submits, size_t deliveries);
  void CommitBatch(std::vector<PendingSubmit>& batch);
  // How far delivery is behind (AdmissionOptions::max_lag).
  absl::Duration Lag(absl::Time now) const;
  // Whether submits must wait: admission control is on and `lag` (Lag())
  // is past max_lag.
  bool Lagging(absl::Duration lag) const;
  // Whether submits must wait at `now`; reads the lag only when admission
  // control is on.
  bool LaggingAt(absl::Time now) const;
  // If delivery has caught up (or the pipeline is closed), moves waiting
  // submits to `batch`, oldest first and whole calls at a time, while the
  // room (Scheduler::Room) is not used up: the last call may overshoot it;
  // then moves those still waiting past their deadline to `refused`.
  void AdmitWaitingLocked(absl::Time now, bool lagging, size_t room,
                          std::vector<PendingSubmit>& batch,
                          std::vector<PendingSubmit>& refused)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Answers a submit that waited max_wait in vain.
  void Refuse(PendingSubmit& submit, absl::Duration lag);
  // Writes the events; on a shared store, claims their first deliveries
  // too, as many as this node has room for. Returns how many deliveries
  // this node attempts, in order (all of them on a store of its own).
  absl::StatusOr<size_t> Insert(absl::Span<const NewEvent> inserts);

  Store& store_;
  EndpointManager& endpoints_;
  Scheduler& scheduler_;
  Claimer* const claimer_;
  FreshDeliveries& fresh_;
  ChangeBus& bus_;
  const Clock& clock_;
  Metrics& metrics_;
  const SubmitPipelineOptions options_;

  absl::Mutex mu_;
  absl::CondVar cv_;
  std::vector<PendingSubmit> pending_ ABSL_GUARDED_BY(mu_);
  // Waiting for admission, oldest first.
  std::deque<PendingSubmit> waiting_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

// A new delivery of `event` to `endpoint_id`, PENDING and due at the event's
// creation time, with the event's trace context.
Delivery NewDeliveryOf(const EventRecord& event, const std::string& endpoint_id,
                       int max_attempts, bool test);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_SUBMIT_PIPELINE_H_
