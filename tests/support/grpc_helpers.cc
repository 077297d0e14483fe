#include "tests/support/grpc_helpers.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/delivery/payload.h"
#include "tests/support/eventually.h"
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

grpc::Status TryCreateEndpoint(webhook::v1::WebhookService::Stub& stub,
                               const webhook::v1::Endpoint& endpoint,
                               webhook::v1::Endpoint* created) {
  webhook::v1::CreateEndpointRequest request;
  *request.mutable_endpoint() = endpoint;
  webhook::v1::CreateEndpointResponse response;
  grpc::Status status =
      stub.CreateEndpoint(Context().get(), request, &response);
  if (status.ok() && created != nullptr) *created = response.endpoint();
  return status;
}

webhook::v1::Endpoint CreateEndpoint(webhook::v1::WebhookService::Stub& stub,
                                     const webhook::v1::Endpoint& endpoint) {
  webhook::v1::Endpoint created;
  grpc::Status status = TryCreateEndpoint(stub, endpoint, &created);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return created;
}

webhook::v1::Endpoint GetEndpoint(webhook::v1::WebhookService::Stub& stub,
                                  const std::string& id) {
  webhook::v1::GetEndpointRequest request;
  request.set_id(id);
  webhook::v1::GetEndpointResponse response;
  const grpc::Status status =
      stub.GetEndpoint(Context().get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.endpoint();
}

std::vector<webhook::v1::Endpoint> ListAllEndpoints(
    webhook::v1::WebhookService::Stub& stub) {
  webhook::v1::ListEndpointsResponse response;
  grpc::Status status = stub.ListEndpoints(Context().get(), {}, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return {response.endpoints().begin(), response.endpoints().end()};
}

webhook::v1::SubmitEventRequest ExampleEvent(const std::string& thread) {
  webhook::v1::SubmitEventRequest request =
      DocumentedExampleEvent("Sales were up 4%.");
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
    absl::Duration timeout, const ContextFactory& context) {
  webhook::v1::GetDeliveryRequest request;
  request.set_id(id);
  webhook::v1::GetDeliveryResponse response;
  if (!Eventually(
          [&] {
            const std::unique_ptr<grpc::ClientContext> call =
                context ? context() : Context();
            return stub.GetDelivery(call.get(), request, &response).ok() &&
                   done(response.delivery());
          },
          timeout)) {
    ADD_FAILURE() << "delivery " << id << " did not reach the expected state "
                  << "in time; last: " << response.delivery().DebugString();
  }
  return response.delivery();
}

bool IsFinished(const webhook::v1::Delivery& delivery) {
  return delivery.status() == webhook::v1::DELIVERY_STATUS_SUCCESS ||
         delivery.status() == webhook::v1::DELIVERY_STATUS_FAILED;
}

webhook::v1::Delivery WaitFinished(webhook::v1::WebhookService::Stub& stub,
                                   const std::string& id,
                                   const ContextFactory& context) {
  return WaitForDelivery(stub, id, IsFinished, kEventuallyTimeout, context);
}

size_t CountDeliveries(webhook::v1::WebhookService::Stub& stub,
                       const std::string& endpoint_id) {
  webhook::v1::ListDeliveriesRequest request;
  request.set_endpoint_id(endpoint_id);
  request.set_page_size(1000);
  webhook::v1::ListDeliveriesResponse response;
  const grpc::Status status =
      stub.ListDeliveries(Context().get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return static_cast<size_t>(response.deliveries_size());
}

size_t RequestsAfterBarrier(webhook::v1::WebhookService::Stub& stub,
                            const HttpReceiver& receiver,
                            const std::string& thread) {
  const webhook::v1::SubmitEventResponse barrier =
      Submit(stub, ExampleEvent(thread));
  if (barrier.delivery_ids_size() != 1) {
    ADD_FAILURE() << "the barrier event made no single delivery";
    return receiver.RequestCount();
  }
  WaitFinished(stub, barrier.delivery_ids(0));
  return receiver.RequestCount() - 1;
}

DeliveryWatch::DeliveryWatch(
    webhook::v1::WebhookService::Stub& stub,
    const webhook::v1::StreamDeliveriesRequest& request,
    absl::Duration deadline) {
  context_.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  reader_ = stub.StreamDeliveries(&context_, request);
}

DeliveryWatch::~DeliveryWatch() {
  if (finished_) return;
  context_.TryCancel();
  reader_->Finish();
}

bool DeliveryWatch::Next(webhook::v1::Delivery* delivery) {
  webhook::v1::StreamDeliveriesResponse response;
  if (!reader_->Read(&response)) return false;
  *delivery = response.delivery();
  return true;
}

std::vector<webhook::v1::Delivery> DeliveryWatch::ReadUntil(
    const std::function<bool(const webhook::v1::Delivery&)>& done) {
  std::vector<webhook::v1::Delivery> seen;
  webhook::v1::Delivery delivery;
  while (seen.size() < 10000 && Next(&delivery)) {
    seen.push_back(delivery);
    if (done(delivery)) break;
  }
  return seen;
}

grpc::Status DeliveryWatch::Drain(size_t* messages) {
  webhook::v1::Delivery delivery;
  size_t count = 0;
  while (count < 100000 && Next(&delivery)) ++count;
  if (messages != nullptr) *messages = count;
  finished_ = true;
  return reader_->Finish();
}

}  // namespace webhookd::testing
