#include "server/delivery/resender.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/common/ids.h"
#include "server/common/limits.h"
#include "server/common/status_macros.h"
#include "server/common/time_util.h"
#include "server/delivery/retry_policy.h"

namespace webhookd {
namespace {

bool Ended(const Delivery& delivery) {
  return delivery.status() == webhook::v1::DELIVERY_STATUS_SUCCESS ||
         delivery.status() == webhook::v1::DELIVERY_STATUS_FAILED;
}

absl::Status PayloadLostError(const std::string& delivery_id) {
  return absl::FailedPreconditionError(
      absl::StrCat("the payload of delivery \"", delivery_id,
                   "\" was lost in a database repair; it cannot be sent "
                   "again"));
}

}  // namespace

Resender::Resender(Store& store, EndpointManager& endpoints,
                   Scheduler& scheduler, Claimer* claimer, ChangeBus& bus,
                   const Clock& clock, int max_attempts)
    : store_(store),
      endpoints_(endpoints),
      scheduler_(scheduler),
      claimer_(claimer),
      bus_(bus),
      clock_(clock),
      max_attempts_(max_attempts) {}

Delivery Resender::ResendOf(const Delivery& original) const {
  Delivery resend;
  resend.set_id(NewId("dlv_"));
  resend.set_event_id(original.event_id());
  resend.set_endpoint_id(original.endpoint_id());
  resend.set_thread_id(original.thread_id());
  resend.set_event_type(original.event_type());
  resend.set_user_id(original.user_id());
  resend.set_status(webhook::v1::DELIVERY_STATUS_PENDING);
  resend.set_max_attempts(max_attempts_);
  resend.set_traceparent(original.traceparent());
  resend.set_tracestate(original.tracestate());
  resend.set_resent_from(original.id());
  *resend.mutable_create_time() = ToProtoTime(clock_.Now());
  *resend.mutable_next_attempt_time() = resend.create_time();
  return resend;
}

absl::Status Resender::CheckEndpoint(const Caller& caller,
                                     const std::string& endpoint_id,
                                     const std::string& delivery_id) const {
  EndpointManager::EndpointPtr endpoint =
      endpoints_.FindFor(caller, endpoint_id);
  if (endpoint == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the endpoint of delivery \"", delivery_id, "\" was deleted"));
  }
  if (!endpoint->enabled()) {
    return absl::FailedPreconditionError(
        absl::StrCat("endpoint \"", endpoint_id,
                     "\" is disabled; enable it before resending"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Delivery> Resender::Resend(const Caller& caller,
                                          const std::string& delivery_id) {
  const std::string& id = delivery_id;
  absl::StatusOr<Delivery> original = store_.GetDelivery(id);
  if (absl::IsNotFound(original.status()) ||
      (original.ok() && !caller.CanAccess(original->user_id()))) {
    return absl::NotFoundError(absl::StrCat("delivery \"", id, "\" not found"));
  }
  if (!original.ok()) return original.status();
  if (!Ended(*original)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "delivery \"", id,
        "\" has not ended; it is still being attempted (RetryDelivery asks "
        "for an attempt now)"));
  }
  if (original->test()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "delivery \"", id,
        "\" is a test delivery; send a new one with SendTestDelivery"));
  }
  WEBHOOKD_ASSIGN_OR_RETURN(const bool payload_lost,
                            PayloadLost(store_, *original));
  if (payload_lost) return PayloadLostError(id);
  WEBHOOKD_RETURN_IF_ERROR(CheckEndpoint(caller, original->endpoint_id(), id));
  // The original is rewritten whole (its attempt history with it), but
  // for its payload, which lives once in the event.
  std::string payload = std::move(*original->mutable_payload());
  Delivery resend = ResendOf(*original);
  WEBHOOKD_RETURN_IF_ERROR(Write({resend}, {*original}));
  resend.set_payload(std::move(payload));
  return resend;
}

absl::StatusOr<RecoverResult> Resender::Recover(const Caller& caller,
                                                const std::string& endpoint_id,
                                                absl::Time since) {
  EndpointManager::EndpointPtr endpoint =
      endpoints_.FindFor(caller, endpoint_id);
  if (endpoint == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("endpoint \"", endpoint_id, "\" not found"));
  }
  if (!endpoint->enabled()) {
    return absl::FailedPreconditionError(
        absl::StrCat("endpoint \"", endpoint_id,
                     "\" is disabled; enable it before recovering"));
  }
  absl::MutexLock lock(&recover_mu_);
  DeliveryFilter filter;
  filter.endpoint_id = endpoint_id;
  filter.status = webhook::v1::DELIVERY_STATUS_FAILED;
  // Whether each event's payload was lost, read once per event.
  absl::flat_hash_map<std::string, bool> lost;
  std::vector<Delivery> originals;
  RecoverResult result;
  std::string token;
  bool done = false;
  while (!done) {
    WEBHOOKD_ASSIGN_OR_RETURN(
        DeliveryPage page, store_.ListDeliveries(filter, kMaxPageSize, token));
    for (Delivery& delivery : page.deliveries) {
      // Newest first: the rest are older still.
      if (FromProtoTime(delivery.create_time()) < since) {
        done = true;
        break;
      }
      if (delivery.test() || !delivery.resent_by().empty()) continue;
      if (originals.size() == kMaxRecoveredPerCall) {
        result.more = true;
        done = true;
        break;
      }
      // Listed deliveries lack their attempt history, which the rewrite
      // of the original must keep: read whole.
      WEBHOOKD_ASSIGN_OR_RETURN(Delivery whole,
                                store_.GetDelivery(delivery.id()));
      auto [known, inserted] = lost.try_emplace(whole.event_id(), false);
      if (inserted) {
        WEBHOOKD_ASSIGN_OR_RETURN(known->second, PayloadLost(store_, whole));
      }
      if (known->second) continue;
      whole.clear_payload();
      originals.push_back(std::move(whole));
    }
    token = std::move(page.next_page_token);
    if (token.empty()) done = true;
  }
  std::vector<Delivery> resends;
  resends.reserve(originals.size());
  for (const Delivery& original : originals) {
    resends.push_back(ResendOf(original));
    result.delivery_ids.push_back(resends.back().id());
  }
  WEBHOOKD_RETURN_IF_ERROR(Write(resends, originals));
  return result;
}

absl::Status Resender::Write(const std::vector<Delivery>& resends,
                             const std::vector<Delivery>& originals) {
  if (resends.empty()) return absl::OkStatus();
  // Backpressure as for submits: refused before anything is stored.
  WEBHOOKD_RETURN_IF_ERROR(scheduler_.Reserve(resends.size()));
  std::vector<DeliveryChange> changes(originals.size());
  for (size_t i = 0; i < originals.size(); ++i) {
    changes[i].delivery = originals[i];
    changes[i].delivery.set_resent_by(resends[i].id());
  }
  if (absl::Status written = store_.AddDeliveries(resends, changes);
      !written.ok()) {
    scheduler_.Unreserve(resends.size());
    return written;
  }
  // Published before queueing, as the submit pipeline does.
  for (const Delivery& resend : resends) bus_.Publish(resend);
  for (const DeliveryChange& change : changes) bus_.Publish(change.delivery);
  if (claimer_ != nullptr) {
    // Queued in the store for any node to claim, this one included.
    scheduler_.Unreserve(resends.size());
    claimer_->Wake();
    return absl::OkStatus();
  }
  std::vector<QueuedDelivery> entries;
  entries.reserve(resends.size());
  for (const Delivery& resend : resends) {
    entries.push_back(QueueEntryOf(resend, /*manual=*/false));
  }
  scheduler_.Schedule(entries, resends.size());
  return absl::OkStatus();
}

}  // namespace webhookd
