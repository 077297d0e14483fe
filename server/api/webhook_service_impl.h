// The gRPC edge of webhookd: converts requests, calls the domain classes and
// finishes the call. No business logic lives here.

#ifndef WEBHOOKD_SERVER_API_WEBHOOK_SERVICE_IMPL_H_
#define WEBHOOKD_SERVER_API_WEBHOOK_SERVICE_IMPL_H_

#include <optional>

#include "server/api/auth.h"
#include "server/api/delivery_stream.h"
#include "server/common/thread_pool.h"
#include "server/delivery/delivery_engine.h"
#include "server/delivery/delivery_log.h"
#include "server/delivery/endpoint_manager.h"
#include "server/security/page_tokens.h"
#include "webhook/v1/webhook_service.grpc.pb.h"

namespace webhookd {

class WebhookServiceImpl final
    : public webhook::v1::WebhookService::CallbackService {
 public:
  // Every argument must outlive the service. Handlers run their work on
  // `blocking`, never on gRPC's threads. Every call is authenticated by
  // `auth` first; the Caller it yields goes to the domain classes. List
  // calls hand out the domain's cursors sealed by `page_tokens`.
  WebhookServiceImpl(EndpointManager& endpoints, DeliveryEngine& engine,
                     DeliveryLog& log, ThreadPool& blocking, DeliveryHub& hub,
                     const Authenticator& auth, const PageTokens& page_tokens)
      : endpoints_(endpoints),
        engine_(engine),
        log_(log),
        blocking_(blocking),
        hub_(hub),
        auth_(auth),
        page_tokens_(page_tokens) {}

  // WebhookService
  grpc::ServerUnaryReactor* CreateEndpoint(
      grpc::CallbackServerContext* context,
      const webhook::v1::CreateEndpointRequest* request,
      webhook::v1::CreateEndpointResponse* response) override;
  grpc::ServerUnaryReactor* GetEndpoint(
      grpc::CallbackServerContext* context,
      const webhook::v1::GetEndpointRequest* request,
      webhook::v1::GetEndpointResponse* response) override;
  grpc::ServerUnaryReactor* ListEndpoints(
      grpc::CallbackServerContext* context,
      const webhook::v1::ListEndpointsRequest* request,
      webhook::v1::ListEndpointsResponse* response) override;
  grpc::ServerUnaryReactor* UpdateEndpoint(
      grpc::CallbackServerContext* context,
      const webhook::v1::UpdateEndpointRequest* request,
      webhook::v1::UpdateEndpointResponse* response) override;
  grpc::ServerUnaryReactor* DeleteEndpoint(
      grpc::CallbackServerContext* context,
      const webhook::v1::DeleteEndpointRequest* request,
      webhook::v1::DeleteEndpointResponse* response) override;
  grpc::ServerUnaryReactor* EnableEndpoint(
      grpc::CallbackServerContext* context,
      const webhook::v1::EnableEndpointRequest* request,
      webhook::v1::EnableEndpointResponse* response) override;
  grpc::ServerUnaryReactor* DisableEndpoint(
      grpc::CallbackServerContext* context,
      const webhook::v1::DisableEndpointRequest* request,
      webhook::v1::DisableEndpointResponse* response) override;
  grpc::ServerUnaryReactor* GetEndpointStats(
      grpc::CallbackServerContext* context,
      const webhook::v1::GetEndpointStatsRequest* request,
      webhook::v1::GetEndpointStatsResponse* response) override;
  grpc::ServerUnaryReactor* SubmitEvent(
      grpc::CallbackServerContext* context,
      const webhook::v1::SubmitEventRequest* request,
      webhook::v1::SubmitEventResponse* response) override;
  grpc::ServerUnaryReactor* SendTestDelivery(
      grpc::CallbackServerContext* context,
      const webhook::v1::SendTestDeliveryRequest* request,
      webhook::v1::SendTestDeliveryResponse* response) override;
  grpc::ServerUnaryReactor* GetDelivery(
      grpc::CallbackServerContext* context,
      const webhook::v1::GetDeliveryRequest* request,
      webhook::v1::GetDeliveryResponse* response) override;
  grpc::ServerUnaryReactor* ListDeliveries(
      grpc::CallbackServerContext* context,
      const webhook::v1::ListDeliveriesRequest* request,
      webhook::v1::ListDeliveriesResponse* response) override;
  grpc::ServerUnaryReactor* RetryDelivery(
      grpc::CallbackServerContext* context,
      const webhook::v1::RetryDeliveryRequest* request,
      webhook::v1::RetryDeliveryResponse* response) override;
  grpc::ServerWriteReactor<webhook::v1::StreamDeliveriesResponse>*
  StreamDeliveries(
      grpc::CallbackServerContext* context,
      const webhook::v1::StreamDeliveriesRequest* request) override;
  grpc::ServerUnaryReactor* RotateEndpointSecret(
      grpc::CallbackServerContext* context,
      const webhook::v1::RotateEndpointSecretRequest* request,
      webhook::v1::RotateEndpointSecretResponse* response) override;
  grpc::ServerUnaryReactor* ResendDelivery(
      grpc::CallbackServerContext* context,
      const webhook::v1::ResendDeliveryRequest* request,
      webhook::v1::ResendDeliveryResponse* response) override;
  grpc::ServerUnaryReactor* RecoverDeliveries(
      grpc::CallbackServerContext* context,
      const webhook::v1::RecoverDeliveriesRequest* request,
      webhook::v1::RecoverDeliveriesResponse* response) override;
  grpc::ServerUnaryReactor* SubmitEvents(
      grpc::CallbackServerContext* context,
      const webhook::v1::SubmitEventsRequest* request,
      webhook::v1::SubmitEventsResponse* response) override;

 private:
  // Authenticates the call, runs `work(caller)` on the blocking pool and
  // finishes the call with its status.
  // The caller of a call, or nullopt after finishing the call with the
  // authentication error.
  std::optional<Caller> AuthenticateOrFinish(
      grpc::CallbackServerContext& context, grpc::ServerUnaryReactor& reactor);
  template <typename Work>
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context,
                                Work work);

  EndpointManager& endpoints_;
  DeliveryEngine& engine_;
  DeliveryLog& log_;
  ThreadPool& blocking_;
  DeliveryHub& hub_;
  const Authenticator& auth_;
  const PageTokens& page_tokens_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_API_WEBHOOK_SERVICE_IMPL_H_
