#include "tests/support/store_test_util.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/time_util.h"

namespace webhookd::testing {

google::protobuf::Timestamp ProtoTime(int64_t unix_micros) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(unix_micros / 1'000'000);
  ts.set_nanos(static_cast<int32_t>(unix_micros % 1'000'000) * 1000);
  return ts;
}

Endpoint MakeEndpoint(std::string id, std::string thread_id, int64_t user_id) {
  Endpoint endpoint;
  endpoint.set_id(std::move(id));
  endpoint.set_thread_id(std::move(thread_id));
  endpoint.set_user_id(user_id);
  endpoint.set_name("receiver");
  endpoint.set_url("https://example.com/hook");
  endpoint.set_enabled(true);
  return endpoint;
}

Delivery MakeDelivery(std::string id, std::string event_id,
                      std::string endpoint_id, std::string thread_id,
                      int64_t create_micros, int64_t user_id) {
  Delivery delivery;
  delivery.set_id(std::move(id));
  delivery.set_event_id(std::move(event_id));
  delivery.set_endpoint_id(std::move(endpoint_id));
  delivery.set_thread_id(std::move(thread_id));
  delivery.set_user_id(user_id);
  delivery.set_event_type("execution.completed");
  delivery.set_status(webhook::v1::DELIVERY_STATUS_PENDING);
  delivery.set_max_attempts(4);
  *delivery.mutable_create_time() = ProtoTime(create_micros);
  *delivery.mutable_next_attempt_time() = ProtoTime(create_micros);
  return delivery;
}

EventRecord MakeEvent(std::string id, std::string thread_id,
                      const std::vector<Delivery>& deliveries,
                      std::string idempotency_key, int64_t user_id) {
  EventRecord event;
  event.set_id(std::move(id));
  event.set_thread_id(std::move(thread_id));
  event.set_user_id(user_id);
  event.set_event_type("execution.completed");
  event.set_payload(R"({"event":"execution.completed"})");
  event.set_create_time_unix_micros(kBaseMicros);
  event.set_idempotency_key(std::move(idempotency_key));
  for (const Delivery& delivery : deliveries) {
    event.add_delivery_ids(delivery.id());
  }
  return event;
}

EndpointFilter OfThread(std::string thread_id, int64_t user_id) {
  EndpointFilter filter;
  filter.thread_id = std::move(thread_id);
  filter.user_id = user_id;
  return filter;
}

EndpointFilter OfUser(int64_t user_id) {
  EndpointFilter filter;
  filter.user_id = user_id;
  return filter;
}

DeliveryFilter ForEndpoint(std::string endpoint_id, std::string thread_id) {
  DeliveryFilter filter;
  filter.endpoint_id = std::move(endpoint_id);
  filter.thread_id = std::move(thread_id);
  return filter;
}

DeliveryFilter ForThread(std::string thread_id, DeliveryStatus status) {
  DeliveryFilter filter;
  filter.thread_id = std::move(thread_id);
  filter.status = status;
  return filter;
}

DeliveryFilter ForStatus(DeliveryStatus status) {
  DeliveryFilter filter;
  filter.status = status;
  return filter;
}

DeliveryFilter ForUser(int64_t user_id) {
  DeliveryFilter filter;
  filter.user_id = user_id;
  return filter;
}

DeliveryChange Change(Delivery delivery) {
  DeliveryChange change;
  change.delivery = std::move(delivery);
  return change;
}

DeliveryChange Queued(Delivery delivery) {
  DeliveryChange change;
  change.next_due = FromProtoTime(delivery.next_attempt_time());
  change.delivery = std::move(delivery);
  return change;
}

DeliveryChange Finished(Delivery delivery, int response_code,
                        int64_t response_time_ms) {
  DeliveryAttempt attempt;
  attempt.set_attempt(delivery.attempts() + 1);
  attempt.set_response_code(response_code);
  attempt.set_response_time_ms(response_time_ms);
  delivery.set_attempts(attempt.attempt());
  delivery.set_response_code(response_code);
  delivery.set_response_time_ms(response_time_ms);
  *delivery.add_attempt_history() = attempt;
  const bool success = response_code >= 200 && response_code < 300;
  if (success) {
    delivery.set_status(webhook::v1::DELIVERY_STATUS_SUCCESS);
    delivery.clear_next_attempt_time();
  } else {
    delivery.set_status(webhook::v1::DELIVERY_STATUS_RETRYING);
  }
  DeliveryChange change =
      success ? Change(std::move(delivery)) : Queued(std::move(delivery));
  change.counted_attempt = CountedAttempt{.success = success,
                                          .answered = response_code != 0,
                                          .response_time_ms = response_time_ms};
  return change;
}

std::vector<std::string> Ids(const std::vector<Endpoint>& endpoints) {
  std::vector<std::string> ids;
  for (const Endpoint& endpoint : endpoints) ids.push_back(endpoint.id());
  return ids;
}

std::vector<std::string> Ids(const std::vector<Delivery>& deliveries) {
  std::vector<std::string> ids;
  for (const Delivery& delivery : deliveries) ids.push_back(delivery.id());
  return ids;
}

std::vector<Delivery> Submit(Store& store, const std::string& event_id,
                             const std::string& thread_id,
                             const std::vector<std::string>& endpoint_ids,
                             int64_t micros, int64_t user_id) {
  std::vector<Delivery> deliveries;
  for (const std::string& endpoint_id : endpoint_ids) {
    deliveries.push_back(
        MakeDelivery(absl::StrCat("dlv_", event_id, "_", endpoint_id), event_id,
                     endpoint_id, thread_id, micros, user_id));
  }
  absl::Status status = store.InsertEvent(
      MakeEvent(event_id, thread_id, deliveries, "", user_id), deliveries);
  EXPECT_TRUE(status.ok()) << status;
  return deliveries;
}

void SubmitDeliveriesToList(Store& store) {
  Submit(store, "e1", "thread-a", {"ep_1", "ep_2"}, kBaseMicros + 1);
  Submit(store, "e2", "thread-b", {"ep_3"}, kBaseMicros + 2);
  Submit(store, "e3", "thread-a", {"ep_1"}, kBaseMicros + 3, /*user_id=*/9);
  Submit(store, "e4", "thread-a", {"ep_2"}, kBaseMicros + 4);
}

std::vector<std::string> ListAllDeliveries(Store& store,
                                           const DeliveryFilter& filter,
                                           int page_size) {
  std::vector<std::string> ids;
  std::string token;
  for (int pages = 0; pages < 100; ++pages) {
    absl::StatusOr<DeliveryPage> page =
        store.ListDeliveries(filter, page_size, token);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) break;
    EXPECT_LE(page->deliveries.size(), static_cast<size_t>(page_size));
    for (const Delivery& delivery : page->deliveries) {
      ids.push_back(delivery.id());
    }
    token = page->next_page_token;
    if (token.empty()) break;
  }
  EXPECT_EQ(token, "") << "pagination did not end";
  return ids;
}

}  // namespace webhookd::testing
