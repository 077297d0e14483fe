#include "server/delivery/delivery_engine.h"

#include <pthread.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/ids.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/common/string_view.h"
#include "server/common/time_util.h"
#include "server/delivery/payload.h"
#include "server/delivery/validation.h"

namespace webhookd {
namespace {

// Upper bound on one wait of the engine's threads, so that a jump of the
// wall clock is noticed even when nothing signals.
constexpr absl::Duration kMaxWait = absl::Seconds(1);
// New deliveries kept in memory for their first attempt: about 16 MiB at
// most with the documented payload; older ones are read from the store.
constexpr size_t kFreshDeliveries = 16384;

// How much longer than an attempt a claim holds: time to record the
// outcome, and for renewals to land while the store is slow.
constexpr absl::Duration kLeaseMargin = absl::Seconds(15);

ClaimerOptions ClaimerOptionsOf(const DeliveryEngineOptions& options) {
  ClaimerOptions claimer;
  claimer.attempt_timeout = options.attempt_timeout;
  claimer.lease = options.attempt_timeout + kLeaseMargin;
  claimer.max_held = options.limits.max_in_flight;
  return claimer;
}

std::thread NamedThread(const char* name, std::function<void()> loop) {
  return std::thread([name, loop = std::move(loop)] {
    pthread_setname_np(pthread_self(), name);
    loop();
  });
}

// The state of `delivery` once a manual attempt was asked for at `now`,
// without payload.
Delivery ManualRetryOf(const Delivery& delivery, absl::Time now) {
  Delivery next = delivery;
  next.clear_payload();
  next.set_status(webhook::v1::DELIVERY_STATUS_RETRYING);
  *next.mutable_next_attempt_time() = ToProtoTime(now);
  return next;
}

DeliveryChange ManualRetryChange(const Delivery& next) {
  DeliveryChange change;
  change.delivery = next;
  change.next_due = NextAttemptDue(next);
  change.next_attempt_manual = true;
  return change;
}

}  // namespace

DeliveryEngine::DeliveryEngine(Store& store, EndpointManager& endpoints,
                               Scheduler& scheduler, ChangeBus& bus,
                               HttpSender& sender, const Clock& clock,
                               DeliveryEngineOptions options, Metrics& metrics)
    : store_(store),
      endpoints_(endpoints),
      scheduler_(scheduler),
      bus_(bus),
      sender_(sender),
      clock_(clock),
      options_(std::move(options)),
      shared_(store.shared_queue()),
      claimer_(shared_ == nullptr
                   ? nullptr
                   : std::make_unique<Claimer>(*shared_, scheduler,
                                               ClaimerOptionsOf(options_))),
      watcher_(*this),
      fresh_(kFreshDeliveries),
      disabler_(store, endpoints, options_.auto_disable),
      pipeline_(
          store, endpoints, scheduler, claimer_.get(), fresh_, bus, clock,
          metrics,
          SubmitPipelineOptions{options_.retry_policy.max_attempts(),
                                options_.max_payload_bytes,
                                options_.trace_new_events, options_.admission}),
      recorder_(store, endpoints, scheduler, claimer_.get(), bus, metrics,
                options_.retry_policy, &disabler_),
      dispatcher_(
          store, endpoints, scheduler, claimer_.get(), fresh_, sender,
          recorder_, bus, metrics,
          DispatcherOptions{options_.attempt_timeout, options_.user_agent}),
      resender_(store, endpoints, scheduler, claimer_.get(), bus, clock,
                options_.retry_policy.max_attempts()) {}

DeliveryEngine::~DeliveryEngine() { Stop(absl::ZeroDuration()); }

absl::Status DeliveryEngine::Start() {
  {
    absl::MutexLock lock(&mu_);
    if (started_) {
      return absl::FailedPreconditionError("engine already started");
    }
    started_ = true;
  }
  if (shared_ != nullptr) {
    // Its first Resync loads the endpoints again, after which no change
    // of another node's is missed.
    WEBHOOKD_RETURN_IF_ERROR(shared_->Watch(&watcher_));
    if (options_.run_threads) {
      claim_thread_ = NamedThread("engine-claim", [this] { ClaimLoop(); });
    }
  } else {
    WEBHOOKD_RETURN_IF_ERROR(LoadQueue());
  }
  if (!options_.run_threads) return absl::OkStatus();
  committer_ = NamedThread("engine-commit", [this] { CommitLoop(); });
  dispatch_thread_ = NamedThread("engine-dispatch", [this] { DispatchLoop(); });
  recorder_thread_ = NamedThread("engine-record", [this] { RecordLoop(); });
  return absl::OkStatus();
}

absl::Status DeliveryEngine::LoadQueue() {
  // Straight into the scheduler, entry by entry: no second copy of a large
  // backlog in memory. The threads start after the whole queue is known,
  // so a delivery is never resumed from an older state.
  size_t resumed = 0;
  WEBHOOKD_RETURN_IF_ERROR(
      store_.ScanQueue([this, &resumed](const QueuedDelivery& entry) {
        scheduler_.Schedule(entry);
        ++resumed;
      }));
  if (resumed > 0) {
    Log(LogLevel::kInfo,
        absl::StrCat("resuming ", resumed, " queued deliveries"));
  }
  return absl::OkStatus();
}

void DeliveryEngine::Stop(absl::Duration grace) {
  bool started;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
    started = started_;
  }
  const bool threads = started && options_.run_threads;
  // Submits already taken are written and answered; later ones refused.
  pipeline_.Close();
  if (threads) {
    committer_.join();
  } else {
    pipeline_.CommitPending();
  }
  scheduler_.Close();
  if (threads) dispatch_thread_.join();
  if (claimer_ != nullptr) {
    claimer_->Close();
    if (threads) claim_thread_.join();
  }
  if (started) {
    // Every callback of the sender has run once Shutdown returns.
    sender_.Shutdown(grace);
    recorder_.Close();
    if (threads) {
      recorder_thread_.join();
    } else {
      recorder_.RecordCompleted(clock_.Now());
    }
  }
  recorder_.FailWaiters(absl::UnavailableError("the server is shutting down"));
  if (started && shared_ != nullptr) {
    shared_->StopWatching();
    // What this node claimed and did not attempt goes to the other nodes
    // at once, rather than when the leases run out.
    if (absl::Status released = claimer_->ReleaseAll(); !released.ok()) {
      Log(LogLevel::kError,
          absl::StrCat("giving back claims at shutdown: ", released.ToString(),
                       "; other nodes take them when their leases run out"));
    }
  }
}

void DeliveryEngine::CommitLoop() {
  while (pipeline_.WaitForSubmits()) pipeline_.CommitPending();
}

void DeliveryEngine::DispatchLoop() {
  while (scheduler_.WaitForDue(clock_, kMaxWait)) {
    dispatcher_.DispatchDue(clock_.Now());
  }
}

void DeliveryEngine::RecordLoop() {
  while (recorder_.WaitForCompletions(kMaxWait)) {
    recorder_.RecordCompleted(clock_.Now());
  }
}

void DeliveryEngine::ClaimLoop() {
  while (claimer_->Wait(clock_)) {
    ReloadEndpointsIfAsked();
    claimer_->Step(clock_.Now());
  }
}

size_t DeliveryEngine::CommitPending() { return pipeline_.CommitPending(); }

size_t DeliveryEngine::ClaimDue(absl::Time now) {
  if (claimer_ == nullptr) return 0;
  ReloadEndpointsIfAsked();
  return claimer_->Step(now);
}

void DeliveryEngine::Watcher::DeliveriesChanged(
    absl::Span<const Delivery> deliveries) {
  for (const Delivery& delivery : deliveries) engine_.bus_.Publish(delivery);
}

void DeliveryEngine::Watcher::EndpointChanged(std::string_view endpoint_id) {
  if (absl::Status refreshed =
          engine_.endpoints_.Refresh(std::string(endpoint_id));
      !refreshed.ok()) {
    // The cache may be stale until the next resync.
    Log(LogLevel::kError,
        absl::StrCat("reading endpoint ", AsAbsl(endpoint_id),
                     " changed by another node: ", refreshed.ToString()));
  }
  // Enabled, its deliveries may be claimed now.
  engine_.claimer_->Wake();
}

void DeliveryEngine::Watcher::WorkQueued() { engine_.claimer_->Wake(); }

void DeliveryEngine::Watcher::Resync() {
  engine_.reload_endpoints_ = true;
  engine_.claimer_->Wake();
}

void DeliveryEngine::ReloadEndpointsIfAsked() {
  if (!reload_endpoints_.exchange(false)) return;
  if (absl::Status loaded = endpoints_.Load(); !loaded.ok()) {
    // Asked again: the claim loop's next round (within a second) tries
    // again, so a stale cache does not outlive the outage.
    reload_endpoints_ = true;
    Log(LogLevel::kError,
        absl::StrCat("reloading endpoints: ", loaded.ToString()));
  }
}

size_t DeliveryEngine::DispatchDue(absl::Time now) {
  return dispatcher_.DispatchDue(now);
}

size_t DeliveryEngine::RecordCompleted(absl::Time now) {
  return recorder_.RecordCompleted(now);
}

void DeliveryEngine::SubmitAsync(const Caller& caller,
                                 const webhook::v1::SubmitEventRequest& request,
                                 SubmitCallback done, TraceContext trace) {
  pipeline_.Submit(caller, request, std::move(done), std::move(trace));
}

void DeliveryEngine::SubmitBatchAsync(
    const Caller& caller, const webhook::v1::SubmitEventsRequest& request,
    BatchAnswers::Callback done, TraceContext trace) {
  pipeline_.SubmitBatch(caller, request, std::move(done), std::move(trace));
}

absl::Status DeliveryEngine::SendTest(const Caller& caller,
                                      const std::string& endpoint_id,
                                      const std::string& payload_json,
                                      DeliveryCallback done) {
  EndpointManager::EndpointPtr endpoint =
      endpoints_.FindFor(caller, endpoint_id);
  if (endpoint == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("endpoint \"", endpoint_id, "\" not found"));
  }
  std::string payload;
  if (payload_json.empty()) {
    payload = SamplePayload();
  } else {
    // The size first: no need to parse an oversized document.
    if (payload_json.size() > options_.max_payload_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "payload_json: ", payload_json.size(), " bytes; the limit is ",
          options_.max_payload_bytes, " (--max_payload_bytes)"));
    }
    WEBHOOKD_RETURN_IF_ERROR(ValidateJsonObject(payload_json, "payload_json"));
    payload = payload_json;
  }
  EventRecord event;
  event.set_id(NewId("evt_"));
  event.set_thread_id(endpoint->thread_id());
  event.set_user_id(endpoint->user_id());
  event.set_event_type(std::string(kTestEventType));
  event.set_payload(std::move(payload));
  event.set_create_time_unix_micros(absl::ToUnixMicros(clock_.Now()));
  Delivery delivery = NewDeliveryOf(event, endpoint->id(), 1, /*test=*/true);
  event.add_delivery_ids(delivery.id());
  const NewEvent insert{&event, {&delivery, 1}};
  // On a shared store claimed by this node, which answers the caller.
  if (claimer_ == nullptr) {
    WEBHOOKD_RETURN_IF_ERROR(store_.InsertEvents({&insert, 1}));
  } else {
    WEBHOOKD_RETURN_IF_ERROR(
        claimer_->Insert({&insert, 1}, clock_.Now(), /*claim_all=*/true)
            .status());
  }
  bus_.Publish(delivery);  // Before queueing, as the pipeline does.
  {
    // Under mu_, so that Stop (which sets stopping_ first) answers this
    // waiter if it was added.
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return absl::UnavailableError("the server is shutting down");
    }
    recorder_.AddTestWaiter(delivery.id(), std::move(done));
  }
  scheduler_.Schedule(QueueEntryOf(delivery, false));
  return absl::OkStatus();
}

absl::StatusOr<Delivery> DeliveryEngine::Retry(const Caller& caller,
                                               const std::string& delivery_id) {
  const std::string& id = delivery_id;
  if (caller.user_id.has_value()) {
    // Checked before anything else, so that no answer (not even "in
    // progress") reveals another user's delivery. The owner never changes.
    absl::StatusOr<Delivery> owned = store_.GetDelivery(id);
    if (absl::IsNotFound(owned.status()) ||
        (owned.ok() && !caller.CanAccess(owned->user_id()))) {
      return absl::NotFoundError(
          absl::StrCat("delivery \"", id, "\" not found"));
    }
    if (!owned.ok()) return owned.status();
  }
  if (claimer_ != nullptr) return RetryClaimed(id);
  // Take the delivery out of the queue so no attempt can start while its
  // state is checked and rewritten.
  const Scheduler::Withdrawal withdrawal = scheduler_.Withdraw(id);
  if (withdrawal == Scheduler::Withdrawal::kInFlight) {
    return absl::FailedPreconditionError(
        absl::StrCat("an attempt of delivery \"", id, "\" is in progress"));
  }
  const bool was_queued = withdrawal == Scheduler::Withdrawal::kWithdrawn;
  absl::StatusOr<Delivery> delivery = store_.GetDelivery(id);
  auto restore = [&](absl::Status status) {
    if (was_queued && delivery.ok()) {
      scheduler_.Schedule(QueueEntryOf(*delivery, false));
    }
    return status;
  };
  if (!delivery.ok()) return restore(delivery.status());
  if (absl::Status retryable = CheckRetryable(*delivery); !retryable.ok()) {
    return restore(retryable);
  }
  Delivery next = ManualRetryOf(*delivery, clock_.Now());
  DeliveryChange change = ManualRetryChange(next);
  if (absl::Status written =
          store_.UpdateDeliveries({change}, Durability::kSynced);
      !written.ok()) {
    return restore(written);
  }
  bus_.Publish(next);  // Before queueing, as the pipeline does.
  scheduler_.Schedule(QueueEntryOf(next, /*manual=*/true));
  next.set_payload(delivery->payload());
  return next;
}

absl::StatusOr<Delivery> DeliveryEngine::RetryClaimed(const std::string& id) {
  // The claim keeps every node from attempting the delivery meanwhile;
  // one held by another node means an attempt is under way there.
  // The claim is held only for this call: written (or given back) here,
  // and never kept for a later write, so an error answered means no retry.
  WEBHOOKD_ASSIGN_OR_RETURN(Claim claim,
                            shared_->ClaimOne(id, claimer_->lease()));
  absl::StatusOr<Delivery> delivery = store_.GetDelivery(id);
  absl::Status retryable =
      delivery.ok() ? CheckRetryable(*delivery) : delivery.status();
  if (!retryable.ok()) {
    // Its lease runs out otherwise; then any node may claim it again.
    shared_->ReleaseClaims({&claim, 1}).IgnoreError();
    return retryable;
  }
  Delivery next = ManualRetryOf(*delivery, clock_.Now());
  const DeliveryChange change = ManualRetryChange(next);
  WEBHOOKD_ASSIGN_OR_RETURN(
      std::vector<std::string> lost,
      shared_->UpdateClaimed({&change, 1}, {&claim.token, 1},
                             Durability::kSynced));
  if (!lost.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("an attempt of delivery \"", id, "\" is in progress"));
  }
  bus_.Publish(next);
  // Queued in the store and claimable at once, by this node or another.
  claimer_->Wake();
  next.set_payload(delivery->payload());
  return next;
}

absl::Status DeliveryEngine::CheckRetryable(const Delivery& delivery) const {
  const std::string& id = delivery.id();
  switch (delivery.status()) {
    case webhook::v1::DELIVERY_STATUS_SUCCESS:
      return absl::FailedPreconditionError(
          absl::StrCat("delivery \"", id, "\" already succeeded"));
    case webhook::v1::DELIVERY_STATUS_PENDING:
      return absl::FailedPreconditionError(absl::StrCat(
          "delivery \"", id,
          "\" has not been attempted yet; its first attempt is queued"));
    default:
      break;
  }
  WEBHOOKD_ASSIGN_OR_RETURN(const bool payload_lost,
                            PayloadLost(store_, delivery));
  if (payload_lost) {
    return absl::FailedPreconditionError(
        absl::StrCat("the payload of delivery \"", id,
                     "\" was lost in a database repair; it cannot be sent "
                     "again"));
  }
  if (delivery.attempts() >= delivery.max_attempts()) {
    return absl::FailedPreconditionError(
        absl::StrCat("delivery \"", id, "\" has used all its ",
                     delivery.max_attempts(), " attempts"));
  }
  const EndpointManager::EndpointPtr endpoint =
      endpoints_.Find(delivery.endpoint_id());
  if (endpoint == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("the endpoint of delivery \"", id, "\" was deleted"));
  }
  // Its deliveries are held, so no attempt would start.
  if (!endpoint->enabled()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the endpoint of delivery \"", id,
        "\" is disabled; enable it first (its held deliveries then resume)"));
  }
  // Ended for good (and counted so in its endpoint's stats): only a resend
  // sends it again, as a new delivery.
  if (delivery.status() == webhook::v1::DELIVERY_STATUS_FAILED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "delivery \"", id, "\" has ended FAILED (", delivery.last_error(),
        "); ResendDelivery sends it again as a new delivery"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Delivery> DeliveryEngine::Resend(
    const Caller& caller, const std::string& delivery_id) {
  return resender_.Resend(caller, delivery_id);
}

absl::StatusOr<RecoverResult> DeliveryEngine::Recover(
    const Caller& caller, const std::string& endpoint_id, absl::Time since) {
  return resender_.Recover(caller, endpoint_id, since);
}

size_t DeliveryEngine::QueuedCount() const { return scheduler_.size(); }

}  // namespace webhookd
