#include "client/webhook_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace webhookd {

using webhook::v1::Delivery;
using webhook::v1::Endpoint;

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  // gRPC and absl share the canonical codes.
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

DeliveryWatch::DeliveryWatch(
    std::unique_ptr<grpc::ClientContext> context,
    std::unique_ptr<
        grpc::ClientReaderInterface<webhook::v1::StreamDeliveriesResponse>>
        reader)
    : context_(std::move(context)), reader_(std::move(reader)) {}

DeliveryWatch::~DeliveryWatch() {
  if (finished_) return;
  // A call must be finished before its context goes away.
  context_->TryCancel();
  reader_->Finish();
}

bool DeliveryWatch::Next(Delivery* delivery) {
  webhook::v1::StreamDeliveriesResponse response;
  if (finished_ || !reader_->Read(&response)) return false;
  *delivery = std::move(*response.mutable_delivery());
  return true;
}

absl::Status DeliveryWatch::Finish() {
  if (finished_) {
    return absl::FailedPreconditionError("the watch is already finished");
  }
  finished_ = true;
  return FromGrpcStatus(reader_->Finish());
}

void DeliveryWatch::Cancel() { context_->TryCancel(); }

std::unique_ptr<WebhookClient> WebhookClient::Connect(
    const std::string& target,
    std::shared_ptr<grpc::ChannelCredentials> credentials,
    WebhookClientOptions options) {
  return std::make_unique<WebhookClient>(
      webhook::v1::WebhookService::NewStub(
          grpc::CreateChannel(target, std::move(credentials))),
      std::move(options));
}

WebhookClient::WebhookClient(std::unique_ptr<Stub> stub,
                             WebhookClientOptions options)
    : stub_(std::move(stub)), options_(std::move(options)) {}

std::unique_ptr<grpc::ClientContext> WebhookClient::NewContext(
    absl::Duration timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (timeout != absl::InfiniteDuration()) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
  if (!options_.api_key.empty()) {
    context->AddMetadata("authorization",
                         absl::StrCat("Bearer ", options_.api_key));
  }
  return context;
}

template <typename Request, typename Response>
absl::StatusOr<Response> WebhookClient::Call(
    grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                 Response*),
    const Request& request, absl::Duration timeout) {
  std::unique_ptr<grpc::ClientContext> context = NewContext(timeout);
  Response response;
  grpc::Status status =
      (stub_.get()->*method)(context.get(), request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<Endpoint> WebhookClient::CreateEndpoint(const Endpoint& endpoint,
                                                       bool disabled) {
  webhook::v1::CreateEndpointRequest request;
  *request.mutable_endpoint() = endpoint;
  request.set_disabled(disabled);
  auto response = Call(&Stub::CreateEndpoint, request, options_.timeout);
  if (!response.ok()) return response.status();
  return std::move(*response->mutable_endpoint());
}

absl::StatusOr<Endpoint> WebhookClient::GetEndpoint(const std::string& id) {
  webhook::v1::GetEndpointRequest request;
  request.set_id(id);
  auto response = Call(&Stub::GetEndpoint, request, options_.timeout);
  if (!response.ok()) return response.status();
  return std::move(*response->mutable_endpoint());
}

absl::StatusOr<webhook::v1::ListEndpointsResponse> WebhookClient::ListEndpoints(
    const webhook::v1::ListEndpointsRequest& request) {
  return Call(&Stub::ListEndpoints, request, options_.timeout);
}

absl::StatusOr<Endpoint> WebhookClient::UpdateEndpoint(
    const Endpoint& endpoint, const google::protobuf::FieldMask& mask) {
  webhook::v1::UpdateEndpointRequest request;
  *request.mutable_endpoint() = endpoint;
  *request.mutable_update_mask() = mask;
  auto response = Call(&Stub::UpdateEndpoint, request, options_.timeout);
  if (!response.ok()) return response.status();
  return std::move(*response->mutable_endpoint());
}

absl::Status WebhookClient::DeleteEndpoint(const std::string& id) {
  webhook::v1::DeleteEndpointRequest request;
  request.set_id(id);
  return Call(&Stub::DeleteEndpoint, request, options_.timeout).status();
}

absl::StatusOr<Endpoint> WebhookClient::EnableEndpoint(const std::string& id) {
  webhook::v1::EnableEndpointRequest request;
  request.set_id(id);
  auto response = Call(&Stub::EnableEndpoint, request, options_.timeout);
  if (!response.ok()) return response.status();
  return std::move(*response->mutable_endpoint());
}

absl::StatusOr<Endpoint> WebhookClient::DisableEndpoint(const std::string& id) {
  webhook::v1::DisableEndpointRequest request;
  request.set_id(id);
  auto response = Call(&Stub::DisableEndpoint, request, options_.timeout);
  if (!response.ok()) return response.status();
  return std::move(*response->mutable_endpoint());
}

absl::StatusOr<webhook::v1::EndpointStats> WebhookClient::GetEndpointStats(
    const std::string& endpoint_id) {
  webhook::v1::GetEndpointStatsRequest request;
  request.set_endpoint_id(endpoint_id);
  auto response = Call(&Stub::GetEndpointStats, request, options_.timeout);
  if (!response.ok()) return response.status();
  return std::move(*response->mutable_stats());
}

absl::StatusOr<webhook::v1::SubmitEventResponse> WebhookClient::SubmitEvent(
    const webhook::v1::SubmitEventRequest& request) {
  return Call(&Stub::SubmitEvent, request, options_.timeout);
}

absl::StatusOr<webhook::v1::SubmitEventsResponse> WebhookClient::SubmitEvents(
    const webhook::v1::SubmitEventsRequest& request) {
  return Call(&Stub::SubmitEvents, request, options_.timeout);
}

absl::StatusOr<Delivery> WebhookClient::SendTestDelivery(
    const std::string& endpoint_id, const std::string& payload_json) {
  webhook::v1::SendTestDeliveryRequest request;
  request.set_endpoint_id(endpoint_id);
  request.set_payload_json(payload_json);
  auto response =
      Call(&Stub::SendTestDelivery, request, options_.test_delivery_timeout);
  if (!response.ok()) return response.status();
  return std::move(*response->mutable_delivery());
}

absl::StatusOr<Delivery> WebhookClient::GetDelivery(const std::string& id) {
  webhook::v1::GetDeliveryRequest request;
  request.set_id(id);
  auto response = Call(&Stub::GetDelivery, request, options_.timeout);
  if (!response.ok()) return response.status();
  return std::move(*response->mutable_delivery());
}

absl::StatusOr<webhook::v1::ListDeliveriesResponse>
WebhookClient::ListDeliveries(
    const webhook::v1::ListDeliveriesRequest& request) {
  return Call(&Stub::ListDeliveries, request, options_.timeout);
}

absl::StatusOr<Delivery> WebhookClient::RetryDelivery(const std::string& id) {
  webhook::v1::RetryDeliveryRequest request;
  request.set_id(id);
  auto response = Call(&Stub::RetryDelivery, request, options_.timeout);
  if (!response.ok()) return response.status();
  return std::move(*response->mutable_delivery());
}

absl::StatusOr<webhook::v1::RotateEndpointSecretResponse>
WebhookClient::RotateEndpointSecret(
    const webhook::v1::RotateEndpointSecretRequest& request) {
  return Call(&Stub::RotateEndpointSecret, request, options_.timeout);
}

absl::StatusOr<Delivery> WebhookClient::ResendDelivery(const std::string& id) {
  webhook::v1::ResendDeliveryRequest request;
  request.set_id(id);
  auto response = Call(&Stub::ResendDelivery, request, options_.timeout);
  if (!response.ok()) return response.status();
  return std::move(*response->mutable_delivery());
}

absl::StatusOr<webhook::v1::RecoverDeliveriesResponse>
WebhookClient::RecoverDeliveries(const std::string& endpoint_id,
                                 absl::Time since) {
  webhook::v1::RecoverDeliveriesRequest request;
  request.set_endpoint_id(endpoint_id);
  *request.mutable_since() =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
          absl::ToUnixNanos(since));
  return Call(&Stub::RecoverDeliveries, request, options_.timeout);
}

std::unique_ptr<DeliveryWatch> WebhookClient::WatchDeliveries(
    const webhook::v1::StreamDeliveriesRequest& request) {
  std::unique_ptr<grpc::ClientContext> context =
      NewContext(absl::InfiniteDuration());
  auto reader = stub_->StreamDeliveries(context.get(), request);
  return std::make_unique<DeliveryWatch>(std::move(context), std::move(reader));
}

}  // namespace webhookd
