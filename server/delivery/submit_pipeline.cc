#include "server/delivery/submit_pipeline.h"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "server/common/ids.h"
#include "server/common/limits.h"
#include "server/common/status_macros.h"
#include "server/common/time_util.h"
#include "server/delivery/event_types.h"
#include "server/delivery/payload.h"
#include "server/delivery/request_fingerprint.h"
#include "server/delivery/validation.h"

namespace webhookd {

Delivery NewDeliveryOf(const EventRecord& event, const std::string& endpoint_id,
                       int max_attempts, bool test) {
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
  delivery.set_traceparent(event.traceparent());
  delivery.set_tracestate(event.tracestate());
  *delivery.mutable_create_time() =
      ToProtoTime(absl::FromUnixMicros(event.create_time_unix_micros()));
  *delivery.mutable_next_attempt_time() = delivery.create_time();
  return delivery;
}

SubmitPipeline::SubmitPipeline(Store& store, EndpointManager& endpoints,
                               Scheduler& scheduler, Claimer* claimer,
                               FreshDeliveries& fresh, ChangeBus& bus,
                               const Clock& clock, Metrics& metrics,
                               SubmitPipelineOptions options)
    : store_(store),
      endpoints_(endpoints),
      scheduler_(scheduler),
      claimer_(claimer),
      fresh_(fresh),
      bus_(bus),
      clock_(clock),
      metrics_(metrics),
      options_(options) {}

absl::StatusOr<SubmitPipeline::PendingSubmit> SubmitPipeline::Prepare(
    const Caller& caller, const webhook::v1::SubmitEventRequest& given,
    TraceContext trace) {
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
  if (!request.event_type().empty()) {
    WEBHOOKD_RETURN_IF_ERROR(
        ValidateEventType(request.event_type(), "event_type"));
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
  if (!request.idempotency_key().empty()) {
    event.set_request_fingerprint(RequestFingerprint(request));
  }
  if (trace.empty() && options_.trace_new_events) trace = NewTraceContext();
  event.set_traceparent(std::move(trace.traceparent));
  event.set_tracestate(std::move(trace.tracestate));

  const std::vector<EndpointManager::EndpointPtr> endpoints =
      endpoints_.EnabledOfThread(request.thread_id(), event.event_type());
  submit.deliveries.reserve(endpoints.size());
  event.mutable_delivery_ids()->Reserve(static_cast<int>(endpoints.size()));
  for (const EndpointManager::EndpointPtr& endpoint : endpoints) {
    // Another user's endpoint on the same thread must not see this event.
    if (!caller.CanAccess(endpoint->user_id())) continue;
    submit.deliveries.push_back(
        NewDeliveryOf(event, endpoint->id(), options_.max_attempts, false));
    event.add_delivery_ids(submit.deliveries.back().id());
  }
  // Backpressure: refuse before storing anything. Reserved until the
  // commit, so that concurrent submits cannot together overshoot.
  WEBHOOKD_RETURN_IF_ERROR(scheduler_.Reserve(submit.deliveries.size()));
  return submit;
}

void SubmitPipeline::Submit(const Caller& caller,
                            const webhook::v1::SubmitEventRequest& request,
                            SubmitCallback done, TraceContext trace) {
  absl::StatusOr<PendingSubmit> submit =
      Prepare(caller, request, std::move(trace));
  if (!submit.ok()) {
    done(submit.status());
    return;
  }
  submit->done = std::move(done);
  const size_t deliveries = submit->deliveries.size();
  if (Enqueue(absl::MakeSpan(&*submit, 1), deliveries)) return;
  scheduler_.Unreserve(deliveries);
  submit->done(absl::UnavailableError("the server is shutting down"));
}

bool SubmitPipeline::Enqueue(absl::Span<PendingSubmit> submits,
                             size_t deliveries) {
  const absl::Time now = clock_.Now();
  // Submits without deliveries add no work: they never wait.
  const bool lagging = deliveries > 0 && LaggingAt(now);
  // Queued under one lock: one CommitPending() takes them all.
  absl::MutexLock lock(&mu_);
  if (closed_) return false;
  // Behind those already waiting, first come first served.
  if (lagging || (!waiting_.empty() && deliveries > 0)) {
    for (PendingSubmit& submit : submits) {
      submit.deadline = now + options_.admission.max_wait;
      waiting_.push_back(std::move(submit));
    }
  } else {
    for (PendingSubmit& submit : submits) pending_.push_back(std::move(submit));
  }
  cv_.Signal();
  return true;
}

absl::Duration SubmitPipeline::Lag(absl::Time now) const {
  absl::Duration lag = scheduler_.Lag(now);
  if (claimer_ != nullptr) lag = std::max(lag, claimer_->Lag(now));
  return lag;
}

bool SubmitPipeline::Lagging(absl::Duration lag) const {
  return options_.admission.max_lag > absl::ZeroDuration() &&
         lag > options_.admission.max_lag;
}

bool SubmitPipeline::LaggingAt(absl::Time now) const {
  return options_.admission.max_lag > absl::ZeroDuration() && Lagging(Lag(now));
}

void SubmitPipeline::SubmitBatch(
    const Caller& caller, const webhook::v1::SubmitEventsRequest& request,
    BatchAnswers::Callback done, TraceContext trace) {
  if (absl::Status size = ValidateBatchSize(request.events_size());
      !size.ok()) {
    done(size);
    return;
  }
  auto answers = std::make_shared<BatchAnswers>(
      static_cast<size_t>(request.events_size()), std::move(done));
  std::vector<PendingSubmit> queued;
  queued.reserve(static_cast<size_t>(request.events_size()));
  size_t reserved = 0;
  absl::Status refused;  // The whole batch's.
  for (int i = 0; i < request.events_size(); ++i) {
    absl::StatusOr<PendingSubmit> submit =
        Prepare(caller, request.events(i), trace);
    if (!submit.ok()) {
      if (!IsEventError(submit.status())) {
        // Deliveries that do not all fit: the batch is refused whole, like
        // one SubmitEvent, rather than stored in part.
        refused = submit.status();
        break;
      }
      answers->Answer(static_cast<size_t>(i), submit.status());
      continue;
    }
    reserved += submit->deliveries.size();
    submit->last_of_call = false;
    submit->done = [answers, i](absl::StatusOr<SubmitEventResponse> answer) {
      answers->Answer(static_cast<size_t>(i), std::move(answer));
    };
    queued.push_back(*std::move(submit));
  }
  if (refused.ok() && queued.empty()) return;  // All answered above.
  if (refused.ok()) {
    queued.back().last_of_call = true;
    // Admission control takes the batch as one submit.
    if (Enqueue(absl::MakeSpan(queued), reserved)) return;
    refused = absl::UnavailableError("the server is shutting down");
  }
  scheduler_.Unreserve(reserved);
  answers->Fail(std::move(refused));
}

bool SubmitPipeline::WaitForSubmits() {
  absl::MutexLock lock(&mu_);
  while (pending_.empty() && !closed_) {
    if (waiting_.empty()) {
      cv_.Wait(&mu_);
    } else {
      // Time to look at the lag again: CommitPending admits or refuses.
      cv_.WaitWithTimeout(&mu_, options_.admission.poll);
      return true;
    }
  }
  return !pending_.empty() || !waiting_.empty();
}

void SubmitPipeline::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  cv_.SignalAll();
}

void SubmitPipeline::AdmitWaitingLocked(absl::Time now, bool lagging,
                                        size_t room,
                                        std::vector<PendingSubmit>& batch,
                                        std::vector<PendingSubmit>& refused) {
  if (waiting_.empty()) return;
  if (!lagging || closed_) {
    // Only as many as delivery can take without falling behind again: with
    // batches, those waiting can be many times what the queue can absorb.
    std::vector<PendingSubmit> admitted;
    size_t deliveries = 0;
    while (!waiting_.empty()) {
      const bool call_ended = admitted.empty() || admitted.back().last_of_call;
      // The last call admitted may overshoot the room: one that could
      // never fit must not wait until it is refused.
      if (!closed_ && call_ended && deliveries >= room) break;
      deliveries += waiting_.front().deliveries.size();
      admitted.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
    // Before those admitted directly since: they came first.
    for (PendingSubmit& submit : batch) admitted.push_back(std::move(submit));
    batch.swap(admitted);
  }
  while (!waiting_.empty() && waiting_.front().deadline <= now) {
    refused.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

void SubmitPipeline::Refuse(PendingSubmit& submit, absl::Duration lag) {
  scheduler_.Unreserve(submit.deliveries.size());
  // Try again once delivery may have caught up: about as long as it is
  // behind, at least a second.
  const absl::Duration retry_after = std::max(lag, absl::Seconds(1));
  absl::Status refused = absl::ResourceExhaustedError(absl::StrCat(
      "delivery is behind: deliveries due now wait about ",
      absl::FormatDuration(absl::Trunc(lag, absl::Milliseconds(1))),
      " for an attempt (--admission_max_lag=",
      absl::FormatDuration(options_.admission.max_lag),
      ") and this event waited ",
      absl::FormatDuration(options_.admission.max_wait),
      " (--admission_max_wait) without being stored; try again in ",
      absl::FormatDuration(absl::Trunc(retry_after, absl::Milliseconds(1)))));
  refused.SetPayload(
      kRetryAfterMsPayload,
      absl::Cord(absl::StrCat(absl::ToInt64Milliseconds(retry_after))));
  metrics_.SubmitAdmission(AdmissionOutcome::kRefused);
  submit.done(std::move(refused));
}

size_t SubmitPipeline::CommitPending() {
  const absl::Time now = clock_.Now();
  std::vector<PendingSubmit> batch;
  std::vector<PendingSubmit> refused;
  bool any_waiting = false;
  {
    absl::MutexLock lock(&mu_);
    batch.swap(pending_);
    any_waiting = !waiting_.empty();
  }
  if (any_waiting) {
    // Read without mu_ (the scheduler has its own lock); submits that came
    // in meanwhile wait for the next round.
    const absl::Duration lag = Lag(now);
    const bool lagging = Lagging(lag);
    const size_t room =
        lagging ? 0 : scheduler_.Room(now, options_.admission.max_lag);
    size_t admitted_after_wait = 0;
    {
      absl::MutexLock lock(&mu_);
      const size_t before = batch.size();
      AdmitWaitingLocked(now, lagging, room, batch, refused);
      admitted_after_wait = batch.size() - before;
    }
    for (size_t i = 0; i < admitted_after_wait; ++i) {
      metrics_.SubmitAdmission(AdmissionOutcome::kAdmittedAfterWait);
    }
    for (PendingSubmit& submit : refused) Refuse(submit, lag);
  }
  if (!batch.empty()) CommitBatch(batch);
  return batch.size() + refused.size();
}

absl::StatusOr<size_t> SubmitPipeline::Insert(
    absl::Span<const NewEvent> inserts) {
  if (inserts.empty()) return 0;
  const absl::Time start = absl::Now();
  absl::StatusOr<size_t> claimed;
  if (claimer_ == nullptr) {
    const absl::Status written = store_.InsertEvents(inserts);
    claimed = written.ok() ? absl::StatusOr<size_t>(SIZE_MAX) : written;
  } else {
    // On a shared store, claimed as they are written, so that this node,
    // which has the payloads in memory, makes their first attempts: as many
    // as it has room for.
    claimed = claimer_->Insert(inserts, clock_.Now());
  }
  metrics_.StorageWriteFinished(StorageWrite::kSubmit, absl::Now() - start);
  return claimed;
}

void SubmitPipeline::CommitBatch(std::vector<PendingSubmit>& batch) {
  // What each submit is answered with; unset for those written below.
  std::vector<std::optional<absl::StatusOr<SubmitEventResponse>>> answers(
      batch.size());
  // A submit repeating the idempotency key of an earlier one in this batch
  // is answered after it: index of the first, or -1.
  std::vector<ptrdiff_t> same_as(batch.size(), -1);
  // For the first submit of each key: the submission that holds the key,
  // found in the store or written here. Repeats are compared with it.
  std::vector<std::optional<Submission>> holder(batch.size());
  absl::flat_hash_map<std::string, size_t> first_with_key;
  std::vector<NewEvent> inserts;
  inserts.reserve(batch.size());
  std::vector<size_t> written_index;  // Of the batch entries in `inserts`.
  written_index.reserve(batch.size());
  size_t reserved = 0;
  // Whether batch[i]'s key is held by a stored submission: if so, answers
  // it (a replay, a conflict, or the store's error).
  const auto answer_from_store = [&](size_t i) {
    const EventRecord& event = batch[i].event;
    absl::StatusOr<Submission> stored =
        store_.FindSubmission(event.user_id(), event.idempotency_key());
    if (absl::IsNotFound(stored.status())) return false;
    if (!stored.ok()) {
      answers[i] = stored.status();
    } else {
      answers[i] = AnswerRepeatedKey(event, *stored);
      holder[i] = *std::move(stored);
    }
    return true;
  };
  for (size_t i = 0; i < batch.size(); ++i) {
    const EventRecord& event = batch[i].event;
    reserved += batch[i].deliveries.size();
    if (!event.idempotency_key().empty()) {
      // Keys are checked here, by the one committing thread, so submits
      // with the same key are serialised without any lock.
      auto [first, inserted] = first_with_key.try_emplace(
          absl::StrCat(event.user_id(), "/", event.idempotency_key()), i);
      if (!inserted) {
        same_as[i] = static_cast<ptrdiff_t>(first->second);
        continue;
      }
      if (answer_from_store(i)) continue;
    }
    inserts.push_back(NewEvent{&event, batch[i].deliveries});
    written_index.push_back(i);
  }
  absl::StatusOr<size_t> claimed = Insert(inserts);
  if (absl::IsAlreadyExists(claimed.status())) {
    // Another node sharing the store wrote an event with one of these
    // idempotency keys after they were looked up: those submits are
    // answered from it, and the others are written again.
    std::vector<NewEvent> rest;
    std::vector<size_t> rest_index;
    for (size_t k = 0; k < inserts.size(); ++k) {
      const size_t i = written_index[k];
      if (!batch[i].event.idempotency_key().empty() && answer_from_store(i)) {
        continue;
      }
      rest.push_back(inserts[k]);
      rest_index.push_back(i);
    }
    inserts.swap(rest);
    written_index.swap(rest_index);
    claimed = Insert(inserts);
  }
  const absl::Status written = claimed.status();
  if (written.ok()) {
    // Published before queueing, so that listeners never see the outcome
    // of an attempt (from the recorder) before the creation.
    // The written deliveries go to the dispatcher in memory, each event's
    // payload shared by its fan-out; the event records are not needed any
    // more, so the payload is moved, not copied.
    // On a shared store, only the first *claimed are this node's.
    std::vector<QueuedDelivery> entries;
    size_t mine = *claimed;
    size_t created = 0;
    for (size_t i : written_index) {
      PendingSubmit& submit = batch[i];
      created += submit.deliveries.size();
      auto payload = std::make_shared<const std::string>(
          std::move(*submit.event.mutable_payload()));
      for (Delivery& delivery : submit.deliveries) {
        bus_.Publish(delivery);
        if (mine == 0) continue;
        --mine;
        entries.push_back(QueueEntryOf(delivery, false));
        fresh_.Put(FreshDelivery{std::move(delivery), payload});
      }
    }
    scheduler_.Schedule(entries, reserved);
    metrics_.EventsSubmitted(written_index.size(), created);
  } else {
    scheduler_.Unreserve(reserved);
  }
  for (size_t i : written_index) {
    if (!written.ok()) {
      answers[i] = written;
      continue;
    }
    const EventRecord& event = batch[i].event;
    SubmitEventResponse response;
    response.set_event_id(event.id());
    *response.mutable_delivery_ids() = event.delivery_ids();
    holder[i] = Submission{response, event.request_fingerprint()};
    answers[i] = std::move(response);
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (same_as[i] < 0) continue;
    const size_t first = static_cast<size_t>(same_as[i]);
    // A repeat of a key whose first submit failed fails the same way.
    answers[i] = holder[first].has_value()
                     ? AnswerRepeatedKey(batch[i].event, *holder[first])
                     : *answers[first];
  }
  for (size_t i = 0; i < batch.size(); ++i) batch[i].done(*answers[i]);
}

}  // namespace webhookd
