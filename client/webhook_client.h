// WebhookClient: a small C++ client of webhookd's WebhookService, with
// absl::Status results and a deadline on every call.

#ifndef WEBHOOKD_CLIENT_WEBHOOK_CLIENT_H_
#define WEBHOOKD_CLIENT_WEBHOOK_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/field_mask.pb.h"
#include "grpcpp/grpcpp.h"
#include "webhook/v1/webhook_service.grpc.pb.h"

namespace webhookd {

struct WebhookClientOptions {
  // Deadline of each call (StreamDeliveries excepted).
  absl::Duration timeout = absl::Seconds(10);
  // Deadline of SendTestDelivery, which waits for its attempt (up to the
  // server's --attempt_timeout, 30 s by default).
  absl::Duration test_delivery_timeout = absl::Seconds(45);
  // Sent as "authorization: Bearer <api_key>" metadata when not empty.
  std::string api_key;
};

// The code and message of `status` as an absl::Status.
absl::Status FromGrpcStatus(const grpc::Status& status);

// One open StreamDeliveries call. Next() and Finish() are for one thread;
// Cancel() may be called from any thread, at any time before destruction.
class DeliveryWatch {
 public:
  DeliveryWatch(
      std::unique_ptr<grpc::ClientContext> context,
      std::unique_ptr<
          grpc::ClientReaderInterface<webhook::v1::StreamDeliveriesResponse>>
          reader);
  DeliveryWatch(const DeliveryWatch&) = delete;
  DeliveryWatch& operator=(const DeliveryWatch&) = delete;
  // Cancels the stream if it is still open.
  ~DeliveryWatch();

  // Blocks until the next update and stores it in `*delivery`; returns false
  // once the stream has ended (then call Finish()).
  bool Next(webhook::v1::Delivery* delivery);
  // After Next() returned false: how the stream ended. Cancelled after
  // Cancel(); RESOURCE_EXHAUSTED if the reader fell too far behind.
  absl::Status Finish();
  // Ends the stream; a blocked Next() returns false soon after.
  void Cancel();

 private:
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<
      grpc::ClientReaderInterface<webhook::v1::StreamDeliveriesResponse>>
      reader_;
  bool finished_ = false;
};

// WebhookClient is safe for concurrent use.
class WebhookClient {
 public:
  using Stub = webhook::v1::WebhookService::StubInterface;

  // A client of the server at `target` ("host:port"), e.g. with
  // grpc::InsecureChannelCredentials() or grpc::SslCredentials(...).
  static std::unique_ptr<WebhookClient> Connect(
      const std::string& target,
      std::shared_ptr<grpc::ChannelCredentials> credentials,
      WebhookClientOptions options = {});

  // A client calling through `stub` (a real stub, or a mock in tests).
  WebhookClient(std::unique_ptr<Stub> stub, WebhookClientOptions options);
  WebhookClient(const WebhookClient&) = delete;
  WebhookClient& operator=(const WebhookClient&) = delete;

  // Endpoints. Errors are the server's (NOT_FOUND, INVALID_ARGUMENT...), or
  // DEADLINE_EXCEEDED / UNAVAILABLE when it does not answer.
  // `disabled`: create it disabled (CreateEndpointRequest.disabled).
  absl::StatusOr<webhook::v1::Endpoint> CreateEndpoint(
      const webhook::v1::Endpoint& endpoint, bool disabled = false);
  absl::StatusOr<webhook::v1::Endpoint> GetEndpoint(const std::string& id);
  absl::StatusOr<webhook::v1::ListEndpointsResponse> ListEndpoints(
      const webhook::v1::ListEndpointsRequest& request);
  // Replaces the fields of `endpoint` named in `mask`; endpoint.id names it.
  absl::StatusOr<webhook::v1::Endpoint> UpdateEndpoint(
      const webhook::v1::Endpoint& endpoint,
      const google::protobuf::FieldMask& mask);
  absl::Status DeleteEndpoint(const std::string& id);
  absl::StatusOr<webhook::v1::Endpoint> EnableEndpoint(const std::string& id);
  absl::StatusOr<webhook::v1::Endpoint> DisableEndpoint(const std::string& id);
  absl::StatusOr<webhook::v1::EndpointStats> GetEndpointStats(
      const std::string& endpoint_id);

  // Events and deliveries.
  absl::StatusOr<webhook::v1::SubmitEventResponse> SubmitEvent(
      const webhook::v1::SubmitEventRequest& request);
  // One SubmitEvents call: a result per event, in order (see the proto).
  absl::StatusOr<webhook::v1::SubmitEventsResponse> SubmitEvents(
      const webhook::v1::SubmitEventsRequest& request);
  // `payload_json` empty: the documented sample payload.
  absl::StatusOr<webhook::v1::Delivery> SendTestDelivery(
      const std::string& endpoint_id, const std::string& payload_json);
  absl::StatusOr<webhook::v1::Delivery> GetDelivery(const std::string& id);
  absl::StatusOr<webhook::v1::ListDeliveriesResponse> ListDeliveries(
      const webhook::v1::ListDeliveriesRequest& request);
  absl::StatusOr<webhook::v1::Delivery> RetryDelivery(const std::string& id);
  absl::StatusOr<webhook::v1::RotateEndpointSecretResponse>
  RotateEndpointSecret(const webhook::v1::RotateEndpointSecretRequest& request);
  // The new delivery.
  absl::StatusOr<webhook::v1::Delivery> ResendDelivery(const std::string& id);
  // One call: at most 1000 deliveries; call again while `more`.
  absl::StatusOr<webhook::v1::RecoverDeliveriesResponse> RecoverDeliveries(
      const std::string& endpoint_id, absl::Time since);

  // Opens a StreamDeliveries call. It has no deadline: it runs until
  // cancelled or ended by the server.
  std::unique_ptr<DeliveryWatch> WatchDeliveries(
      const webhook::v1::StreamDeliveriesRequest& request);

 private:
  // A context with the API key and a deadline `timeout` from now.
  std::unique_ptr<grpc::ClientContext> NewContext(absl::Duration timeout) const;

  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(
      grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                   Response*),
      const Request& request, absl::Duration timeout);

  const std::unique_ptr<Stub> stub_;
  const WebhookClientOptions options_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_CLIENT_WEBHOOK_CLIENT_H_
