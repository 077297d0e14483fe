#include "server/delivery/change_bus.h"

#include <algorithm>

namespace webhookd {

void ChangeBus::AddListener(DeliveryListener* listener) {
  absl::MutexLock lock(&mu_);
  listeners_.push_back(listener);
}

void ChangeBus::RemoveListener(DeliveryListener* listener) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener),
                   listeners_.end());
}

Delivery ChangeBus::ListedView(const Delivery& delivery) {
  // Field by field rather than copy-and-clear: the history and the payload
  // can be most of the record.
  Delivery view;
  view.set_id(delivery.id());
  view.set_event_id(delivery.event_id());
  view.set_endpoint_id(delivery.endpoint_id());
  view.set_thread_id(delivery.thread_id());
  view.set_event_type(delivery.event_type());
  view.set_status(delivery.status());
  view.set_response_code(delivery.response_code());
  view.set_response_time_ms(delivery.response_time_ms());
  view.set_attempts(delivery.attempts());
  view.set_max_attempts(delivery.max_attempts());
  if (delivery.has_create_time()) {
    *view.mutable_create_time() = delivery.create_time();
  }
  if (delivery.has_next_attempt_time()) {
    *view.mutable_next_attempt_time() = delivery.next_attempt_time();
  }
  view.set_last_error(delivery.last_error());
  view.set_test(delivery.test());
  view.set_user_id(delivery.user_id());
  view.set_traceparent(delivery.traceparent());
  view.set_tracestate(delivery.tracestate());
  view.set_resent_from(delivery.resent_from());
  view.set_resent_by(delivery.resent_by());
  return view;
}

void ChangeBus::Publish(const Delivery& delivery) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<const Delivery> shared;
  for (DeliveryListener* listener : listeners_) {
    if (!listener->Listening()) continue;
    if (shared == nullptr) {
      shared = std::make_shared<const Delivery>(ListedView(delivery));
    }
    listener->OnDeliveryChanged(shared);
  }
}

}  // namespace webhookd
