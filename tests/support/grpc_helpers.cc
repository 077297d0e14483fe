#include "tests/support/grpc_helpers.h"

#include <chrono>
#include <thread>

#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/support/test_server.h"

namespace webhookd::testing {

webhook::v1::Endpoint MakeEndpoint(const std::string& thread,
                                   const std::string& url,
                                   const std::string& secret) {
  webhook::v1::Endpoint endpoint;
  endpoint.set_thread_id(thread);
  endpoint.set_user_id(42);
  endpoint.set_name("Receiver");
  endpoint.set_url(url);
  endpoint.set_secret(secret);
  webhook::v1::Header* header = endpoint.add_headers();
  header->set_name("X-Source");
  header->set_value("gpt-workbench");
  return endpoint;
}

webhook::v1::Endpoint CreateEndpoint(webhook::v1::WebhookService::Stub& stub,
                                     const webhook::v1::Endpoint& endpoint) {
  webhook::v1::CreateEndpointRequest request;
  *request.mutable_endpoint() = endpoint;
  webhook::v1::CreateEndpointResponse response;
  grpc::Status status =
      stub.CreateEndpoint(Context().get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.endpoint();
}

webhook::v1::SubmitEventRequest ExampleEvent(const std::string& thread) {
  // The example of the product documentation, as the workbench submits it.
  constexpr char kJson[] = R"json({
    "threadId": "",
    "userId": "42",
    "eventType": "execution.completed",
    "triggerId": "550e8400-e29b-41d4-a716-446655440000",
    "triggerName": "Daily Report Schedule",
    "execution": {
      "jobId": "661f9511-b38a-42c5-9e2a-557766880000",
      "runId": "772a0622-c49b-53d6-af3b-668877990000",
      "prompt": "Generate today's sales summary",
      "run": {
        "totalCostUsd": 0.0342,
        "totalTokens": "4521",
        "startedAt": "2026-03-29T09:00:01Z",
        "completedAt": "2026-03-29T09:00:12.450Z",
        "durationMs": "11450",
        "messages": [{"role": "assistant", "content": "Sales were up 4%."}]
      },
      "queuedAt": "2026-03-29T09:00:00Z",
      "completedAt": "2026-03-29T09:00:12.450Z",
      "durationMs": "12450"
    }
  })json";
  webhook::v1::SubmitEventRequest request;
  EXPECT_TRUE(
      google::protobuf::util::JsonStringToMessage(kJson, &request).ok());
  request.set_thread_id(thread);
  return request;
}

webhook::v1::SubmitEventResponse Submit(
    webhook::v1::WebhookService::Stub& stub,
    const webhook::v1::SubmitEventRequest& request) {
  webhook::v1::SubmitEventResponse response;
  grpc::Status status = stub.SubmitEvent(Context().get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response;
}

webhook::v1::Delivery WaitForDelivery(
    webhook::v1::WebhookService::Stub& stub, const std::string& id,
    const std::function<bool(const webhook::v1::Delivery&)>& done,
    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  webhook::v1::GetDeliveryRequest request;
  request.set_id(id);
  webhook::v1::GetDeliveryResponse response;
  while (true) {
    grpc::Status status = stub.GetDelivery(Context().get(), request, &response);
    if (status.ok() && done(response.delivery())) break;
    if (absl::Now() > deadline) {
      ADD_FAILURE() << "delivery " << id << " did not reach the expected state "
                    << "in time; last: " << response.delivery().DebugString();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return response.delivery();
}

bool IsFinished(const webhook::v1::Delivery& delivery) {
  return delivery.status() == webhook::v1::DELIVERY_STATUS_SUCCESS ||
         delivery.status() == webhook::v1::DELIVERY_STATUS_FAILED;
}

}  // namespace webhookd::testing
