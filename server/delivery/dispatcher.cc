#include "server/delivery/dispatcher.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/logging.h"
#include "server/common/trace_context.h"
#include "server/delivery/retry_policy.h"
#include "server/delivery/signing.h"

namespace webhookd {
namespace {

// How long after a failed read a delivery is tried again.
constexpr absl::Duration kRetryAfterReadFailure = absl::Seconds(1);

bool IsFinal(DeliveryStatus status) {
  return status == webhook::v1::DELIVERY_STATUS_SUCCESS ||
         status == webhook::v1::DELIVERY_STATUS_FAILED;
}

}  // namespace

Dispatcher::Dispatcher(Store& store, const EndpointManager& endpoints,
                       Scheduler& scheduler, Claimer* claimer,
                       FreshDeliveries& fresh, HttpSender& sender,
                       AttemptRecorder& recorder, ChangeBus& bus,
                       Metrics& metrics, DispatcherOptions options)
    : store_(store),
      endpoints_(endpoints),
      scheduler_(scheduler),
      claimer_(claimer),
      fresh_(fresh),
      sender_(sender),
      recorder_(recorder),
      bus_(bus),
      metrics_(metrics),
      options_(std::move(options)) {}

size_t Dispatcher::DispatchDue(absl::Time now) {
  const std::vector<QueuedDelivery> due =
      scheduler_.TakeDue(now, [this](const std::string& endpoint_id) {
        // A node sharing its store gives the deliveries of a disabled
        // endpoint back (Dispatch) rather than hold them.
        if (claimer_ != nullptr) return false;
        EndpointManager::EndpointPtr endpoint = endpoints_.Find(endpoint_id);
        return endpoint != nullptr && !endpoint->enabled();
      });
  for (const QueuedDelivery& entry : due) Dispatch(entry, now);
  return due.size();
}

bool Dispatcher::Claimed(const QueuedDelivery& entry, absl::Time now) {
  if (claimer_ == nullptr) return true;
  if (!entry.test) {
    EndpointManager::EndpointPtr endpoint = endpoints_.Find(entry.endpoint_id);
    if (endpoint != nullptr && !endpoint->enabled()) {
      // Disabled meanwhile: back to the store, where no node claims it
      // until the endpoint is enabled again.
      if (absl::Status released = claimer_->GiveBack(entry.delivery_id);
          !released.ok()) {
        // Its lease runs out instead.
        Log(LogLevel::kError,
            absl::StrCat("giving back delivery ", entry.delivery_id, ": ",
                         released.ToString()));
      }
      scheduler_.Settle({&entry.delivery_id, 1}, {}, 1);
      return false;
    }
  }
  if (!claimer_->CoversAttempt(entry.delivery_id, now)) {
    // The claim may run out before the attempt ends, and another node
    // attempt it meanwhile. Wait for a renewal; if none lands, the claimer
    // gives the claim up.
    QueuedDelivery later = entry;
    later.due = now + kRetryAfterReadFailure;
    scheduler_.Settle({}, {&later, 1}, 1);
    return false;
  }
  return true;
}

void Dispatcher::Dispatch(const QueuedDelivery& entry, absl::Time now) {
  if (!Claimed(entry, now)) return;
  // A first attempt of a delivery just submitted: its state is in memory.
  if (std::optional<FreshDelivery> fresh = fresh_.Take(entry.delivery_id);
      fresh.has_value()) {
    Start(std::move(fresh->delivery), *fresh->payload, entry, now);
    return;
  }
  absl::StatusOr<Delivery> delivery = store_.GetDelivery(entry.delivery_id);
  if (!delivery.ok() || IsFinal(delivery->status())) {
    if (!delivery.ok() && !absl::IsNotFound(delivery.status())) {
      RetryAfterReadFailure(entry, now, delivery.status());
    } else {
      if (claimer_ != nullptr) claimer_->Take(entry.delivery_id);
      scheduler_.Settle({&entry.delivery_id, 1}, {}, 1);
    }
    return;
  }
  // Never an attempt with an empty body in place of a payload lost in a
  // repair.
  absl::StatusOr<bool> payload_lost = PayloadLost(store_, *delivery);
  if (!payload_lost.ok()) {
    RetryAfterReadFailure(entry, now, payload_lost.status());
    return;
  }
  if (*payload_lost) {
    EndWithoutAttempt(*std::move(delivery), std::string(kPayloadLostError));
    return;
  }
  // The payload goes into the request; a test delivery keeps a copy for
  // its caller.
  std::string payload = delivery->test()
                            ? delivery->payload()
                            : std::move(*delivery->mutable_payload());
  Start(*std::move(delivery), std::move(payload), entry, now);
}

void Dispatcher::RetryAfterReadFailure(const QueuedDelivery& entry,
                                       absl::Time now,
                                       const absl::Status& error) {
  // A read error is transient as far as we know: try again shortly.
  Log(LogLevel::kError, absl::StrCat("reading delivery ", entry.delivery_id,
                                     ": ", error.ToString()));
  QueuedDelivery later = entry;
  later.due = now + kRetryAfterReadFailure;
  scheduler_.Settle({}, {&later, 1}, 1);
}

void Dispatcher::Start(Delivery delivery, std::string payload,
                       const QueuedDelivery& entry, absl::Time now) {
  EndpointManager::EndpointPtr endpoint =
      endpoints_.Find(delivery.endpoint_id());
  if (endpoint == nullptr) {
    EndWithoutAttempt(std::move(delivery), "endpoint was deleted");
    return;
  }
  // Each attempt is a span of its own within the event's trace.
  std::string traceparent = ChildTraceparent(delivery.traceparent());
  HttpRequest request =
      BuildRequest(delivery, std::move(payload), *endpoint, now, traceparent);
  Attempt attempt{std::move(delivery), now, entry.manual,
                  std::move(traceparent)};
  if (!attempt.delivery.test()) attempt.delivery.clear_payload();
  sender_.Send(std::move(request),
               [this, attempt = std::move(attempt)](HttpResult result) mutable {
                 recorder_.Add({std::move(attempt), std::move(result)});
               });
}

void Dispatcher::EndWithoutAttempt(Delivery delivery, const std::string& why) {
  DeliveryChange change = EndedChange(std::move(delivery), why);
  std::vector<bool> applied;
  const absl::Status written =
      recorder_.Write({&change, 1}, Durability::kSynced, &applied);
  if (!written.ok()) {
    Log(LogLevel::kError, absl::StrCat("ending delivery ", change.delivery.id(),
                                       ": ", written.ToString()));
  }
  scheduler_.Settle({&change.delivery.id(), 1}, {}, 1);
  // Listeners learn only what the store has.
  if (written.ok() && applied[0]) {
    if (!change.delivery.test()) {
      metrics_.DeliveryFinished(DeliveryOutcome::kCancelled,
                                absl::ZeroDuration());
    }
    bus_.Publish(change.delivery);
  }
}

HttpRequest Dispatcher::BuildRequest(const Delivery& delivery, std::string body,
                                     const Endpoint& endpoint, absl::Time now,
                                     const std::string& traceparent) const {
  HttpRequest request;
  request.url = endpoint.url();
  request.timeout = options_.attempt_timeout;
  request.body = std::move(body);
  request.headers = {
      {"Content-Type", "application/json"},
      {"User-Agent", options_.user_agent},
      {"X-Webhook-Id", delivery.id()},
      {"X-Webhook-Event", delivery.event_type()},
      {"X-Webhook-Attempt", absl::StrCat(delivery.attempts() + 1)},
  };
  for (auto& header :
       SignatureHeaders(endpoint, delivery.id(), request.body, now)) {
    request.headers.push_back(std::move(header));
  }
  const bool traced = !traceparent.empty();
  if (traced) {
    request.headers.emplace_back("traceparent", traceparent);
    if (!delivery.tracestate().empty()) {
      request.headers.emplace_back("tracestate", delivery.tracestate());
    }
  }
  for (const webhook::v1::Header& header : endpoint.headers()) {
    // The event's trace context is more specific than a fixed header.
    if (traced && (absl::EqualsIgnoreCase(header.name(), "traceparent") ||
                   absl::EqualsIgnoreCase(header.name(), "tracestate"))) {
      continue;
    }
    request.headers.emplace_back(header.name(), header.value());
  }
  return request;
}

}  // namespace webhookd
