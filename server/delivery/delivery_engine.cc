#include "server/delivery/delivery_engine.h"

#include <pthread.h>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/ids.h"
#include "server/common/limits.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/common/time_util.h"
#include "server/delivery/payload.h"
#include "server/delivery/validation.h"
#include "server/security/signature.h"

namespace webhookd {
namespace {

// Upper bound on one dispatcher sleep, so a jump of the wall clock is
// noticed even when nothing signals.
constexpr absl::Duration kMaxDispatchWait = absl::Seconds(1);

bool IsFinal(DeliveryStatus status) {
  return status == webhook::v1::DELIVERY_STATUS_SUCCESS ||
         status == webhook::v1::DELIVERY_STATUS_FAILED;
}

// Marks a delivery as failed for good without a further attempt.
DeliveryChange EndChange(Delivery delivery, const std::string& why) {
  delivery.clear_payload();
  delivery.set_status(webhook::v1::DELIVERY_STATUS_FAILED);
  delivery.set_last_error(std::string(why));
  delivery.clear_next_attempt_time();
  DeliveryChange change;
  change.delivery = std::move(delivery);
  return change;
}

QueuedDelivery QueueEntryOf(const Delivery& delivery, bool manual) {
  return QueuedDelivery{delivery.id(), delivery.endpoint_id(),
                        FromProtoTime(delivery.next_attempt_time()), manual,
                        delivery.test()};
}

}  // namespace

DeliveryEngine::DeliveryEngine(Store& store, EndpointManager& endpoints,
                               HttpSender& sender, const Clock& clock,
                               DeliveryEngineOptions options)
    : store_(store),
      endpoints_(endpoints),
      sender_(sender),
      clock_(clock),
      options_(std::move(options)),
      queue_(options_.max_in_flight_per_endpoint) {}

DeliveryEngine::~DeliveryEngine() { Stop(absl::ZeroDuration()); }

absl::Status DeliveryEngine::Start() {
  size_t resumed = 0;
  {
    // Straight into the queue, entry by entry: no second copy of a large
    // backlog in memory. Nothing is dispatched before the whole queue is
    // known, so a delivery is never resumed from an older state.
    absl::MutexLock lock(&mu_);
    if (started_) {
      return absl::FailedPreconditionError("engine already started");
    }
    WEBHOOKD_RETURN_IF_ERROR(
        store_.ScanQueue([this, &resumed](const QueuedDelivery& entry) {
          mu_.AssertHeld();
          queue_.Schedule(entry);
          ++resumed;
        }));
    started_ = true;
  }
  if (resumed > 0) {
    Log(LogLevel::kInfo,
        absl::StrCat("resuming ", resumed, " queued deliveries"));
  }
  committer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "engine-commit");
    CommitLoop();
  });
  dispatcher_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "engine-dispatch");
    DispatchLoop();
  });
  recorder_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "engine-record");
    RecordLoop();
  });
  return absl::OkStatus();
}

void DeliveryEngine::Stop(absl::Duration grace) {
  bool started;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    started = started_;
  }
  // Submits already taken are written and answered; later ones refused.
  std::vector<PendingSubmit> unstarted;
  {
    absl::MutexLock lock(&commit_mu_);
    commit_closed_ = true;
    commit_cv_.SignalAll();
    if (!started) unstarted.swap(commit_queue_);
  }
  if (started) committer_.join();
  for (PendingSubmit& submit : unstarted) {
    submit.done(absl::UnavailableError("the server is shutting down"));
  }
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    dispatch_cv_.SignalAll();
    if (!started) return;
  }
  dispatcher_.join();
  // Every callback of the sender has run once Shutdown returns.
  sender_.Shutdown(grace);
  {
    absl::MutexLock lock(&mu_);
    record_cv_.SignalAll();
  }
  recorder_.join();
  absl::flat_hash_map<std::string, DeliveryCallback> waiters;
  {
    absl::MutexLock lock(&mu_);
    waiters.swap(test_waiters_);
  }
  for (auto& [id, done] : waiters) {
    done(absl::UnavailableError("the server is shutting down"));
  }
}

Delivery DeliveryEngine::NewDelivery(const EventRecord& event,
                                     const std::string& endpoint_id,
                                     int max_attempts, bool test) const {
  Delivery delivery;
  delivery.set_id(NewId("dlv_"));
  delivery.set_event_id(event.id());
  delivery.set_endpoint_id(endpoint_id);
  delivery.set_thread_id(event.thread_id());
  delivery.set_event_type(event.event_type());
  delivery.set_user_id(event.user_id());
  delivery.set_status(webhook::v1::DELIVERY_STATUS_PENDING);
  delivery.set_max_attempts(max_attempts);
  delivery.set_test(test);
  *delivery.mutable_create_time() =
      ToProtoTime(absl::FromUnixMicros(event.create_time_unix_micros()));
  *delivery.mutable_next_attempt_time() = delivery.create_time();
  return delivery;
}

absl::StatusOr<DeliveryEngine::PendingSubmit> DeliveryEngine::PrepareSubmit(
    const Caller& caller, const webhook::v1::SubmitEventRequest& given) {
  WEBHOOKD_ASSIGN_OR_RETURN(const int64_t owner,
                            caller.OwnerFor(given.user_id(), "user_id"));
  // The payload names the owner, so render it from the owned request.
  webhook::v1::SubmitEventRequest owned_copy;
  if (owner != given.user_id()) {
    owned_copy = given;
    owned_copy.set_user_id(owner);
  }
  const webhook::v1::SubmitEventRequest& request =
      owner != given.user_id() ? owned_copy : given;
  WEBHOOKD_RETURN_IF_ERROR(ValidateThreadId(request.thread_id(), "thread_id"));
  if (request.idempotency_key().size() > kMaxIdempotencyKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "idempotency_key: at most ", kMaxIdempotencyKeyBytes, " bytes"));
  }
  if (request.event_type().size() > kMaxEventTypeBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("event_type: at most ", kMaxEventTypeBytes, " bytes"));
  }
  WEBHOOKD_ASSIGN_OR_RETURN(std::string payload, RenderEventPayload(request));
  if (payload.size() > options_.max_payload_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "execution: the payload is ", payload.size(), " bytes; the limit is ",
        options_.max_payload_bytes, " (--max_payload_bytes)"));
  }

  PendingSubmit submit;
  EventRecord& event = submit.event;
  event.set_id(NewId("evt_"));
  event.set_thread_id(request.thread_id());
  event.set_user_id(request.user_id());
  event.set_event_type(request.event_type().empty()
                           ? std::string(kDefaultEventType)
                           : request.event_type());
  event.set_payload(std::move(payload));
  event.set_create_time_unix_micros(absl::ToUnixMicros(clock_.Now()));
  event.set_idempotency_key(request.idempotency_key());

  const std::vector<EndpointManager::EndpointPtr> endpoints =
      endpoints_.EnabledOfThread(request.thread_id());
  submit.deliveries.reserve(endpoints.size());
  event.mutable_delivery_ids()->Reserve(static_cast<int>(endpoints.size()));
  for (const EndpointManager::EndpointPtr& endpoint : endpoints) {
    // Another user's endpoint on the same thread must not see this event.
    if (!caller.CanAccess(endpoint->user_id())) continue;
    submit.deliveries.push_back(NewDelivery(
        event, endpoint->id(), options_.retry_policy.max_attempts(), false));
    event.add_delivery_ids(submit.deliveries.back().id());
  }
  {
    // Backpressure: refuse before storing anything. Reserved until the
    // commit, so that concurrent submits cannot together overshoot.
    absl::MutexLock lock(&mu_);
    if (queue_.size() + reserved_ + submit.deliveries.size() >
        options_.max_queued_deliveries) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "too many deliveries waiting (", queue_.size() + reserved_,
          " queued, the limit is ", options_.max_queued_deliveries,
          ", --max_queued_deliveries): try again later"));
    }
    reserved_ += submit.deliveries.size();
  }
  return submit;
}

void DeliveryEngine::SubmitAsync(const Caller& caller,
                                 const webhook::v1::SubmitEventRequest& request,
                                 SubmitCallback done) {
  absl::StatusOr<PendingSubmit> submit = PrepareSubmit(caller, request);
  if (!submit.ok()) {
    done(submit.status());
    return;
  }
  submit->done = std::move(done);
  {
    absl::MutexLock lock(&commit_mu_);
    if (!commit_closed_) {
      commit_queue_.push_back(*std::move(submit));
      commit_cv_.Signal();
      return;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    reserved_ -= submit->deliveries.size();
  }
  submit->done(absl::UnavailableError("the server is shutting down"));
}

void DeliveryEngine::CommitLoop() {
  while (true) {
    std::vector<PendingSubmit> batch;
    {
      absl::MutexLock lock(&commit_mu_);
      while (commit_queue_.empty() && !commit_closed_)
        commit_cv_.Wait(&commit_mu_);
      if (commit_queue_.empty()) return;  // Closed and drained.
      batch.swap(commit_queue_);
    }
    CommitBatch(batch);
  }
}

void DeliveryEngine::CommitBatch(std::vector<PendingSubmit>& batch) {
  // What each submit is answered with; unset for those written below.
  std::vector<std::optional<absl::StatusOr<SubmitEventResponse>>> answers(
      batch.size());
  // A submit repeating the idempotency key of an earlier one in this batch
  // gets that one's answer: index of the first, or -1.
  std::vector<ptrdiff_t> same_as(batch.size(), -1);
  absl::flat_hash_map<std::string, size_t> first_with_key;
  std::vector<NewEvent> inserts;
  inserts.reserve(batch.size());
  size_t reserved = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const EventRecord& event = batch[i].event;
    reserved += batch[i].deliveries.size();
    if (!event.idempotency_key().empty()) {
      // Keys are checked here, on the one commit thread, so submits with
      // the same key are serialised without any lock.
      auto [first, inserted] = first_with_key.try_emplace(
          absl::StrCat(event.user_id(), "/", event.idempotency_key()), i);
      if (!inserted) {
        same_as[i] = static_cast<ptrdiff_t>(first->second);
        continue;
      }
      absl::StatusOr<SubmitEventResponse> stored =
          store_.FindSubmission(event.user_id(), event.idempotency_key());
      if (stored.ok() || !absl::IsNotFound(stored.status())) {
        answers[i] = std::move(stored);
        continue;
      }
    }
    inserts.push_back(NewEvent{&event, batch[i].deliveries});
  }
  const absl::Status written =
      inserts.empty() ? absl::OkStatus() : store_.InsertEvents(inserts);
  if (written.ok()) {
    // Published before queueing, so that listeners never see the outcome
    // of an attempt (from the recorder thread) before the creation.
    for (const NewEvent& insert : inserts) {
      for (const Delivery& delivery : insert.deliveries) Publish(delivery);
    }
  }
  {
    absl::MutexLock lock(&mu_);
    reserved_ -= reserved;
    if (written.ok()) {
      for (const NewEvent& insert : inserts) {
        for (const Delivery& delivery : insert.deliveries) {
          queue_.Schedule(QueueEntryOf(delivery, false));
        }
      }
      dispatch_cv_.Signal();
    }
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (answers[i].has_value() || same_as[i] >= 0) continue;
    if (!written.ok()) {
      answers[i] = written;
      continue;
    }
    SubmitEventResponse response;
    response.set_event_id(batch[i].event.id());
    *response.mutable_delivery_ids() = batch[i].event.delivery_ids();
    answers[i] = std::move(response);
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    const size_t from = same_as[i] >= 0 ? static_cast<size_t>(same_as[i]) : i;
    batch[i].done(*answers[from]);
  }
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
    payload = std::string(payload_json);
  }
  EventRecord event;
  event.set_id(NewId("evt_"));
  event.set_thread_id(endpoint->thread_id());
  event.set_user_id(endpoint->user_id());
  event.set_event_type(std::string(kTestEventType));
  event.set_payload(std::move(payload));
  event.set_create_time_unix_micros(absl::ToUnixMicros(clock_.Now()));
  Delivery delivery = NewDelivery(event, endpoint->id(), 1, /*test=*/true);
  event.add_delivery_ids(delivery.id());
  WEBHOOKD_RETURN_IF_ERROR(store_.InsertEvent(event, {delivery}));
  Publish(delivery);  // Before queueing, as in CommitBatch.
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return absl::UnavailableError("the server is shutting down");
    }
    test_waiters_.emplace(delivery.id(), std::move(done));
    queue_.Schedule(QueueEntryOf(delivery, false));
    dispatch_cv_.Signal();
  }
  return absl::OkStatus();
}

absl::StatusOr<Delivery> DeliveryEngine::Retry(const Caller& caller,
                                               const std::string& delivery_id) {
  const std::string id(delivery_id);
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
  bool was_queued;
  {
    // Take the delivery out of the queue so no attempt can start while its
    // state is checked and rewritten.
    absl::MutexLock lock(&mu_);
    if (queue_.InFlight(id)) {
      return absl::FailedPreconditionError(
          absl::StrCat("an attempt of delivery \"", id, "\" is in progress"));
    }
    was_queued = queue_.Contains(id);
    queue_.Remove(id);
  }
  absl::StatusOr<Delivery> delivery = store_.GetDelivery(id);
  auto restore = [&](absl::Status status) {
    if (was_queued && delivery.ok()) {
      absl::MutexLock lock(&mu_);
      queue_.Schedule(QueueEntryOf(*delivery, false));
      dispatch_cv_.Signal();
    }
    return status;
  };
  if (!delivery.ok()) return restore(delivery.status());
  switch (delivery->status()) {
    case webhook::v1::DELIVERY_STATUS_SUCCESS:
      return restore(absl::FailedPreconditionError(
          absl::StrCat("delivery \"", id, "\" already succeeded")));
    case webhook::v1::DELIVERY_STATUS_PENDING:
      return restore(absl::FailedPreconditionError(absl::StrCat(
          "delivery \"", id,
          "\" has not been attempted yet; its first attempt is queued")));
    default:
      break;
  }
  if (delivery->attempts() >= delivery->max_attempts()) {
    return restore(absl::FailedPreconditionError(
        absl::StrCat("delivery \"", id, "\" has used all its ",
                     delivery->max_attempts(), " attempts")));
  }
  if (endpoints_.Find(delivery->endpoint_id()) == nullptr) {
    return restore(absl::FailedPreconditionError(
        absl::StrCat("the endpoint of delivery \"", id, "\" was deleted")));
  }
  Delivery next = *delivery;
  next.clear_payload();
  next.set_status(webhook::v1::DELIVERY_STATUS_RETRYING);
  *next.mutable_next_attempt_time() = ToProtoTime(clock_.Now());
  DeliveryChange change;
  change.delivery = next;
  change.next_due = NextAttemptDue(next);
  change.next_attempt_manual = true;
  if (absl::Status written =
          store_.UpdateDeliveries({change}, Durability::kSynced);
      !written.ok()) {
    return restore(written);
  }
  Publish(next);  // Before queueing, as in CommitBatch.
  {
    absl::MutexLock lock(&mu_);
    queue_.Schedule(QueueEntryOf(next, /*manual=*/true));
    dispatch_cv_.Signal();
  }
  next.set_payload(delivery->payload());
  return next;
}

absl::Status DeliveryEngine::DeleteEndpoint(const Caller& caller,
                                            const std::string& endpoint_id) {
  if (endpoints_.FindFor(caller, endpoint_id) == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("endpoint \"", endpoint_id, "\" not found"));
  }
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    ids = queue_.RemoveEndpoint(endpoint_id);
  }
  std::vector<Delivery> queued;
  std::vector<DeliveryChange> changes;
  for (const std::string& id : ids) {
    absl::StatusOr<Delivery> delivery = store_.GetDelivery(id);
    if (!delivery.ok()) continue;
    queued.push_back(*delivery);
    changes.push_back(EndChange(*delivery, "endpoint was deleted"));
  }
  if (absl::Status deleted = endpoints_.Delete(caller, endpoint_id, changes);
      !deleted.ok()) {
    absl::MutexLock lock(&mu_);
    for (const Delivery& delivery : queued) {
      queue_.Schedule(QueueEntryOf(delivery, false));
    }
    dispatch_cv_.Signal();
    return deleted;
  }
  for (const DeliveryChange& change : changes) Publish(change.delivery);
  return absl::OkStatus();
}

absl::StatusOr<Endpoint> DeliveryEngine::SetEndpointEnabled(
    const Caller& caller, const std::string& endpoint_id, bool enabled) {
  WEBHOOKD_ASSIGN_OR_RETURN(
      Endpoint endpoint, endpoints_.SetEnabled(caller, endpoint_id, enabled));
  if (enabled) {
    absl::MutexLock lock(&mu_);
    queue_.Release(endpoint_id);
    dispatch_cv_.Signal();
  }
  return endpoint;
}

void DeliveryEngine::AddListener(DeliveryListener* listener) {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.push_back(listener);
}

void DeliveryEngine::RemoveListener(DeliveryListener* listener) {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener),
                   listeners_.end());
}

size_t DeliveryEngine::QueuedCount() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void DeliveryEngine::Publish(const Delivery& delivery) {
  absl::MutexLock lock(&listeners_mu_);
  if (listeners_.empty()) return;
  Delivery view = delivery;
  view.clear_payload();
  for (DeliveryListener* listener : listeners_) {
    listener->OnDeliveryChanged(view);
  }
}

void DeliveryEngine::DispatchLoop() {
  auto is_held = [this](const std::string& endpoint_id) {
    EndpointManager::EndpointPtr endpoint = endpoints_.Find(endpoint_id);
    return endpoint != nullptr && !endpoint->enabled();
  };
  while (true) {
    std::vector<QueuedDelivery> due;
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        if (stopping_) return;
        const absl::Time now = clock_.Now();
        if (sending_ < options_.max_in_flight) {
          due = queue_.TakeDue(now, options_.max_in_flight - sending_, is_held);
          if (!due.empty()) break;
        }
        absl::Duration wait = kMaxDispatchWait;
        std::optional<absl::Time> next = queue_.NextDue();
        if (next.has_value() && sending_ < options_.max_in_flight) {
          wait =
              std::clamp(*next - now, absl::ZeroDuration(), kMaxDispatchWait);
        }
        dispatch_cv_.WaitWithTimeout(&mu_, wait);
      }
      sending_ += due.size();
    }
    for (const QueuedDelivery& entry : due) Dispatch(entry);
  }
}

void DeliveryEngine::Dispatch(const QueuedDelivery& entry) {
  absl::StatusOr<Delivery> delivery = store_.GetDelivery(entry.delivery_id);
  if (!delivery.ok() || IsFinal(delivery->status())) {
    absl::MutexLock lock(&mu_);
    --sending_;
    if (!delivery.ok() && !absl::IsNotFound(delivery.status())) {
      // A read error is transient as far as we know: try again shortly.
      Log(LogLevel::kError, absl::StrCat("reading delivery ", entry.delivery_id,
                                         ": ", delivery.status().ToString()));
      queue_.Remove(entry.delivery_id);
      QueuedDelivery later = entry;
      later.due = clock_.Now() + absl::Seconds(1);
      queue_.Schedule(later);
    } else {
      queue_.Remove(entry.delivery_id);
    }
    return;
  }
  EndpointManager::EndpointPtr endpoint =
      endpoints_.Find(delivery->endpoint_id());
  if (endpoint == nullptr) {
    EndWithoutAttempt(*std::move(delivery), "endpoint was deleted");
    return;
  }
  HttpRequest request = BuildRequest(*delivery, *endpoint);
  InFlight attempt{*std::move(delivery), clock_.Now(), entry.manual};
  if (!attempt.delivery.test()) attempt.delivery.clear_payload();
  sender_.Send(std::move(request), [this, attempt = std::move(attempt)](
                                       HttpResult result) mutable {
    absl::MutexLock lock(&mu_);
    completions_.push_back({std::move(attempt), std::move(result)});
    record_cv_.Signal();
  });
}

void DeliveryEngine::EndWithoutAttempt(Delivery delivery,
                                       const std::string& why) {
  DeliveryChange change = EndChange(std::move(delivery), why);
  if (absl::Status written =
          store_.UpdateDeliveries({change}, Durability::kSynced);
      !written.ok()) {
    Log(LogLevel::kError, absl::StrCat("ending delivery ", change.delivery.id(),
                                       ": ", written.ToString()));
  }
  {
    absl::MutexLock lock(&mu_);
    --sending_;
    queue_.Remove(change.delivery.id());
  }
  Publish(change.delivery);
}

HttpRequest DeliveryEngine::BuildRequest(const Delivery& delivery,
                                         const Endpoint& endpoint) const {
  HttpRequest request;
  request.url = endpoint.url();
  request.timeout = options_.attempt_timeout;
  request.body = delivery.payload();
  request.headers = {
      {"Content-Type", "application/json"},
      {"User-Agent", options_.user_agent},
      {"X-Webhook-Id", delivery.id()},
      {"X-Webhook-Event", delivery.event_type()},
      {"X-Webhook-Attempt", absl::StrCat(delivery.attempts() + 1)},
  };
  if (!endpoint.secret().empty()) {
    request.headers.emplace_back("X-Hub-Signature-256",
                                 SignatureHex(endpoint.secret(), request.body));
  }
  for (const webhook::v1::Header& header : endpoint.headers()) {
    request.headers.emplace_back(header.name(), header.value());
  }
  return request;
}

void DeliveryEngine::RecordLoop() {
  while (true) {
    std::vector<Completion> batch;
    {
      absl::MutexLock lock(&mu_);
      while (completions_.empty()) {
        if (stopping_ && sending_ == 0) return;
        record_cv_.WaitWithTimeout(&mu_, kMaxDispatchWait);
      }
      batch.swap(completions_);
    }
    RecordCompletions(std::move(batch));
  }
}

void DeliveryEngine::RecordCompletions(std::vector<Completion> completions) {
  const absl::Time now = clock_.Now();
  std::vector<DeliveryChange> changes;
  std::vector<const Completion*> recorded;
  std::vector<QueuedDelivery> aborted;
  changes.reserve(completions.size());
  for (const Completion& completion : completions) {
    const Delivery& before = completion.attempt.delivery;
    if (completion.result.aborted) {
      // Cut short by shutdown: the attempt is made again by the next run.
      aborted.push_back(QueueEntryOf(before, completion.attempt.manual));
      continue;
    }
    AttemptOutcome outcome;
    outcome.start_time = completion.attempt.start_time;
    outcome.result = completion.result;
    outcome.manual = completion.attempt.manual;
    outcome.endpoint_deleted =
        !before.test() && endpoints_.Find(before.endpoint_id()) == nullptr;
    outcome.finish_time = now;
    changes.push_back(ApplyAttempt(before, outcome, options_.retry_policy));
    recorded.push_back(&completion);
  }
  // Buffered: losing an outcome in a machine crash only causes a resend.
  absl::Status written =
      store_.UpdateDeliveries(changes, Durability::kBuffered);
  if (!written.ok()) {
    // The store still holds the state before these attempts. Make them
    // again a little later (at least once), rather than act on outcomes the
    // store does not know; test deliveries report their outcome anyway.
    Log(LogLevel::kError, absl::StrCat("recording ", changes.size(),
                                       " attempts: ", written.ToString(),
                                       "; they will be made again"));
    for (size_t i = 0; i < changes.size(); ++i) {
      const InFlight& attempt = recorded[i]->attempt;
      if (attempt.delivery.test()) continue;
      QueuedDelivery again = QueueEntryOf(attempt.delivery, attempt.manual);
      again.due = clock_.Now() + kMaxDispatchWait;
      aborted.push_back(again);
    }
  }
  std::vector<std::pair<DeliveryCallback, Delivery>> finished_tests;
  {
    absl::MutexLock lock(&mu_);
    sending_ -= completions.size();
    for (const QueuedDelivery& entry : aborted) {
      queue_.Remove(entry.delivery_id);
      queue_.Schedule(entry);
    }
    for (size_t i = 0; i < changes.size(); ++i) {
      const Delivery& delivery = changes[i].delivery;
      if (!written.ok() && !delivery.test()) continue;  // Queued again above.
      queue_.Remove(delivery.id());
      if (delivery.status() == webhook::v1::DELIVERY_STATUS_RETRYING) {
        queue_.Schedule(QueueEntryOf(delivery, false));
      }
      if (delivery.test()) {
        auto waiter = test_waiters_.find(delivery.id());
        if (waiter != test_waiters_.end()) {
          Delivery full = delivery;
          full.set_payload(recorded[i]->attempt.delivery.payload());
          finished_tests.emplace_back(std::move(waiter->second),
                                      std::move(full));
          test_waiters_.erase(waiter);
        }
      }
    }
    dispatch_cv_.Signal();
  }
  if (written.ok()) {
    for (const DeliveryChange& change : changes) Publish(change.delivery);
  }
  for (auto& [done, delivery] : finished_tests) done(std::move(delivery));
}

}  // namespace webhookd
