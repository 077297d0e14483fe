#include "server/api/webhook_service_impl.h"

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "server/api/grpc_status.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/common/string_view.h"
#include "server/common/time_util.h"
#include "server/common/trace_context.h"
#include "server/delivery/submit_pipeline.h"
#include "server/delivery/validation.h"

namespace webhookd {
namespace {

using webhook::v1::DeliveryStatus_IsValid;

// Stores the value of `result` in `*out`, or returns its error.
template <typename T>
absl::Status Fill(absl::StatusOr<T> result, T* out) {
  if (!result.ok()) return result.status();
  *out = *std::move(result);
  return absl::OkStatus();
}

// A stream ended before it starts (the caller was not authenticated).
class RefusedStream final
    : public grpc::ServerWriteReactor<webhook::v1::StreamDeliveriesResponse> {
 public:
  explicit RefusedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

// Moves a page into a list response's repeated field and token.
template <typename Items, typename Field>
void FillPage(Items& items, std::string& token, Field* field,
              std::string* next_page_token) {
  field->Reserve(static_cast<int>(items.size()));
  for (auto& item : items) *field->Add() = std::move(item);
  *next_page_token = std::move(token);
}

// What a page token is bound to: the list, the caller and every filter
// field, each length-prefixed so that no two listings read alike.
template <typename... Fields>
std::string Listing(std::string_view list, const Caller& caller,
                    const Fields&... fields) {
  std::string listing =
      absl::StrCat(AsAbsl(list), ":", caller.user_id.value_or(0));
  ((absl::StrAppend(&listing, ":", std::string_view(fields).size(), ":",
                    AsAbsl(std::string_view(fields)))),
   ...);
  return listing;
}

// A submit refused by admission control says when to try again in gRPC's
// retry throttling trailer (A6), which clients whose retry policy covers
// RESOURCE_EXHAUSTED honour.
void AddRetryPushback(grpc::CallbackServerContext& context,
                      const absl::Status& status) {
  if (auto retry_after = status.GetPayload(kRetryAfterMsPayload)) {
    context.AddTrailingMetadata("grpc-retry-pushback-ms",
                                std::string(*retry_after));
  }
}

// The W3C trace context of a SubmitEvent(s) call, from its metadata.
TraceContext TraceContextOf(const grpc::ServerContextBase& context) {
  std::vector<std::string_view> traceparents;
  std::vector<std::string_view> tracestates;
  for (const auto& [key, value] : context.client_metadata()) {
    if (key == "traceparent") {
      traceparents.emplace_back(value.data(), value.size());
    } else if (key == "tracestate") {
      tracestates.emplace_back(value.data(), value.size());
    }
  }
  std::string ignored;
  TraceContext trace = ReadTraceContext(traceparents, tracestates, &ignored);
  // Invalid context is the caller's tracing problem, not a reason to refuse
  // the event (W3C: start a new trace).
  if (!ignored.empty()) {
    Log(LogLevel::kDebug, "SubmitEvent trace context ignored",
        {{"reason", ignored}, {"peer", context.peer()}});
  }
  return trace;
}

}  // namespace

std::optional<Caller> WebhookServiceImpl::AuthenticateOrFinish(
    grpc::CallbackServerContext& context, grpc::ServerUnaryReactor& reactor) {
  absl::StatusOr<Caller> caller = auth_.Authenticate(context);
  if (!caller.ok()) {
    reactor.Finish(ToGrpcStatus(caller.status()));
    return std::nullopt;
  }
  return *std::move(caller);
}

template <typename Work>
grpc::ServerUnaryReactor* WebhookServiceImpl::Run(
    grpc::CallbackServerContext* context, Work work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::optional<Caller> caller = AuthenticateOrFinish(*context, *reactor);
  if (!caller.has_value()) return reactor;
  blocking_.Schedule(
      [reactor, caller = *std::move(caller), work = std::move(work)]() mutable {
        reactor->Finish(ToGrpcStatus(work(caller)));
      });
  return reactor;
}

grpc::ServerUnaryReactor* WebhookServiceImpl::CreateEndpoint(
    grpc::CallbackServerContext* context,
    const webhook::v1::CreateEndpointRequest* request,
    webhook::v1::CreateEndpointResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) {
    return Fill(
        endpoints_.Create(caller, request->endpoint(), request->disabled()),
        response->mutable_endpoint());
  });
}

grpc::ServerUnaryReactor* WebhookServiceImpl::GetEndpoint(
    grpc::CallbackServerContext* context,
    const webhook::v1::GetEndpointRequest* request,
    webhook::v1::GetEndpointResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) {
    WEBHOOKD_RETURN_IF_ERROR(ValidateId(request->id(), "id"));
    return Fill(endpoints_.Get(caller, request->id()),
                response->mutable_endpoint());
  });
}

grpc::ServerUnaryReactor* WebhookServiceImpl::ListEndpoints(
    grpc::CallbackServerContext* context,
    const webhook::v1::ListEndpointsRequest* request,
    webhook::v1::ListEndpointsResponse* response) {
  return Run(
      context, [this, request, response](const Caller& caller) -> absl::Status {
        EndpointFilter filter;
        filter.thread_id = request->thread_id();
        const std::string listing =
            Listing("endpoints", caller, filter.thread_id);
        WEBHOOKD_ASSIGN_OR_RETURN(
            std::string cursor,
            page_tokens_.Open(request->page_token(), listing));
        absl::StatusOr<EndpointPage> page =
            endpoints_.List(caller, filter, request->page_size(), cursor);
        if (!page.ok()) return page.status();
        std::string token = page_tokens_.Seal(page->next_page_token, listing);
        FillPage(page->endpoints, token, response->mutable_endpoints(),
                 response->mutable_next_page_token());
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* WebhookServiceImpl::UpdateEndpoint(
    grpc::CallbackServerContext* context,
    const webhook::v1::UpdateEndpointRequest* request,
    webhook::v1::UpdateEndpointResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) {
    WEBHOOKD_RETURN_IF_ERROR(
        ValidateId(request->endpoint().id(), "endpoint.id"));
    return Fill(
        endpoints_.Update(caller, request->endpoint(), request->update_mask()),
        response->mutable_endpoint());
  });
}

grpc::ServerUnaryReactor* WebhookServiceImpl::DeleteEndpoint(
    grpc::CallbackServerContext* context,
    const webhook::v1::DeleteEndpointRequest* request,
    webhook::v1::DeleteEndpointResponse*) {
  return Run(context, [this, request](const Caller& caller) {
    WEBHOOKD_RETURN_IF_ERROR(ValidateId(request->id(), "id"));
    return endpoints_.Delete(caller, request->id());
  });
}

grpc::ServerUnaryReactor* WebhookServiceImpl::EnableEndpoint(
    grpc::CallbackServerContext* context,
    const webhook::v1::EnableEndpointRequest* request,
    webhook::v1::EnableEndpointResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) {
    WEBHOOKD_RETURN_IF_ERROR(ValidateId(request->id(), "id"));
    return Fill(endpoints_.SetEnabled(caller, request->id(), true),
                response->mutable_endpoint());
  });
}

grpc::ServerUnaryReactor* WebhookServiceImpl::DisableEndpoint(
    grpc::CallbackServerContext* context,
    const webhook::v1::DisableEndpointRequest* request,
    webhook::v1::DisableEndpointResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) {
    WEBHOOKD_RETURN_IF_ERROR(ValidateId(request->id(), "id"));
    return Fill(endpoints_.SetEnabled(caller, request->id(), false),
                response->mutable_endpoint());
  });
}

grpc::ServerUnaryReactor* WebhookServiceImpl::GetEndpointStats(
    grpc::CallbackServerContext* context,
    const webhook::v1::GetEndpointStatsRequest* request,
    webhook::v1::GetEndpointStatsResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) {
    WEBHOOKD_RETURN_IF_ERROR(ValidateId(request->endpoint_id(), "endpoint_id"));
    return Fill(log_.Stats(caller, request->endpoint_id()),
                response->mutable_stats());
  });
}

grpc::ServerUnaryReactor* WebhookServiceImpl::SubmitEvent(
    grpc::CallbackServerContext* context,
    const webhook::v1::SubmitEventRequest* request,
    webhook::v1::SubmitEventResponse* response) {
  // Not on the blocking pool: the engine checks the request on this thread
  // without blocking and answers from its commit thread once the event is
  // on disk, grouped with the other submits waiting for the same sync.
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::optional<Caller> caller = AuthenticateOrFinish(*context, *reactor);
  if (!caller.has_value()) return reactor;
  engine_.SubmitAsync(
      *caller, *request,
      [context, reactor, response](absl::StatusOr<SubmitEventResponse> result) {
        if (result.ok() && result->replayed()) {
          // Like Stripe's Idempotent-Replayed header, for clients that
          // look at metadata rather than the response.
          context->AddTrailingMetadata("idempotent-replayed", "true");
        }
        AddRetryPushback(*context, result.status());
        reactor->Finish(ToGrpcStatus(Fill(std::move(result), response)));
      },
      TraceContextOf(*context));
  return reactor;
}

grpc::ServerUnaryReactor* WebhookServiceImpl::SendTestDelivery(
    grpc::CallbackServerContext* context,
    const webhook::v1::SendTestDeliveryRequest* request,
    webhook::v1::SendTestDeliveryResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::optional<Caller> caller = AuthenticateOrFinish(*context, *reactor);
  if (!caller.has_value()) return reactor;
  // The call finishes when the attempt does, from the engine's thread.
  blocking_.Schedule(
      [this, reactor, request, response, caller = *std::move(caller)] {
        if (absl::Status id = ValidateId(request->endpoint_id(), "endpoint_id");
            !id.ok()) {
          reactor->Finish(ToGrpcStatus(id));
          return;
        }
        absl::Status started = engine_.SendTest(
            caller, request->endpoint_id(), request->payload_json(),
            [reactor, response](absl::StatusOr<Delivery> delivery) {
              reactor->Finish(ToGrpcStatus(
                  Fill(std::move(delivery), response->mutable_delivery())));
            });
        if (!started.ok()) reactor->Finish(ToGrpcStatus(started));
      });
  return reactor;
}

grpc::ServerUnaryReactor* WebhookServiceImpl::GetDelivery(
    grpc::CallbackServerContext* context,
    const webhook::v1::GetDeliveryRequest* request,
    webhook::v1::GetDeliveryResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) {
    WEBHOOKD_RETURN_IF_ERROR(ValidateId(request->id(), "id"));
    return Fill(log_.Get(caller, request->id()), response->mutable_delivery());
  });
}

grpc::ServerUnaryReactor* WebhookServiceImpl::ListDeliveries(
    grpc::CallbackServerContext* context,
    const webhook::v1::ListDeliveriesRequest* request,
    webhook::v1::ListDeliveriesResponse* response) {
  return Run(
      context, [this, request, response](const Caller& caller) -> absl::Status {
        if (!DeliveryStatus_IsValid(request->status())) {
          return absl::InvalidArgumentError("status: unknown delivery status");
        }
        WEBHOOKD_RETURN_IF_ERROR(
            ValidateId(request->endpoint_id(), "endpoint_id"));
        DeliveryFilter filter;
        filter.endpoint_id = request->endpoint_id();
        filter.thread_id = request->thread_id();
        filter.status = request->status();
        const std::string listing =
            Listing("deliveries", caller, filter.endpoint_id, filter.thread_id,
                    absl::StrCat(filter.status));
        WEBHOOKD_ASSIGN_OR_RETURN(
            std::string cursor,
            page_tokens_.Open(request->page_token(), listing));
        absl::StatusOr<DeliveryPage> page =
            log_.List(caller, filter, request->page_size(), cursor);
        if (!page.ok()) return page.status();
        std::string token = page_tokens_.Seal(page->next_page_token, listing);
        FillPage(page->deliveries, token, response->mutable_deliveries(),
                 response->mutable_next_page_token());
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* WebhookServiceImpl::RetryDelivery(
    grpc::CallbackServerContext* context,
    const webhook::v1::RetryDeliveryRequest* request,
    webhook::v1::RetryDeliveryResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) {
    WEBHOOKD_RETURN_IF_ERROR(ValidateId(request->id(), "id"));
    return Fill(engine_.Retry(caller, request->id()),
                response->mutable_delivery());
  });
}

grpc::ServerWriteReactor<webhook::v1::StreamDeliveriesResponse>*
WebhookServiceImpl::StreamDeliveries(
    grpc::CallbackServerContext* context,
    const webhook::v1::StreamDeliveriesRequest* request) {
  absl::StatusOr<Caller> caller = auth_.Authenticate(*context);
  if (!caller.ok()) return new RefusedStream(ToGrpcStatus(caller.status()));
  if (absl::Status id = ValidateId(request->endpoint_id(), "endpoint_id");
      !id.ok()) {
    return new RefusedStream(ToGrpcStatus(id));
  }
  return hub_.Open(context, request, *caller);
}

grpc::ServerUnaryReactor* WebhookServiceImpl::RotateEndpointSecret(
    grpc::CallbackServerContext* context,
    const webhook::v1::RotateEndpointSecretRequest* request,
    webhook::v1::RotateEndpointSecretResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) {
    WEBHOOKD_RETURN_IF_ERROR(ValidateId(request->id(), "id"));
    WEBHOOKD_ASSIGN_OR_RETURN(
        RotatedSecret rotated,
        endpoints_.RotateSecret(
            caller, request->id(), request->new_secret(),
            absl::Seconds(request->grace_period_seconds())));
    *response->mutable_endpoint() = std::move(rotated.endpoint);
    response->set_new_secret(std::move(rotated.generated_secret));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* WebhookServiceImpl::ResendDelivery(
    grpc::CallbackServerContext* context,
    const webhook::v1::ResendDeliveryRequest* request,
    webhook::v1::ResendDeliveryResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) {
    WEBHOOKD_RETURN_IF_ERROR(ValidateId(request->id(), "id"));
    return Fill(engine_.Resend(caller, request->id()),
                response->mutable_delivery());
  });
}

grpc::ServerUnaryReactor* WebhookServiceImpl::RecoverDeliveries(
    grpc::CallbackServerContext* context,
    const webhook::v1::RecoverDeliveriesRequest* request,
    webhook::v1::RecoverDeliveriesResponse* response) {
  return Run(
      context, [this, request, response](const Caller& caller) -> absl::Status {
        WEBHOOKD_RETURN_IF_ERROR(
            ValidateId(request->endpoint_id(), "endpoint_id"));
        if (request->endpoint_id().empty()) {
          return absl::InvalidArgumentError("endpoint_id: required");
        }
        if (!request->has_since()) {
          return absl::InvalidArgumentError("since: required");
        }
        WEBHOOKD_RETURN_IF_ERROR(ValidateTimestamp(request->since(), "since"));
        WEBHOOKD_ASSIGN_OR_RETURN(
            RecoverResult result,
            engine_.Recover(caller, request->endpoint_id(),
                            FromProtoTime(request->since())));
        for (std::string& id : result.delivery_ids) {
          response->add_delivery_ids(std::move(id));
        }
        response->set_more(result.more);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* WebhookServiceImpl::SubmitEvents(
    grpc::CallbackServerContext* context,
    const webhook::v1::SubmitEventsRequest* request,
    webhook::v1::SubmitEventsResponse* response) {
  // As SubmitEvent: checked on this thread without blocking, answered from
  // the commit thread once the batch is on disk.
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::optional<Caller> caller = AuthenticateOrFinish(*context, *reactor);
  if (!caller.has_value()) return reactor;
  engine_.SubmitBatchAsync(
      *caller, *request,
      [context, reactor,
       response](absl::StatusOr<webhook::v1::SubmitEventsResponse> result) {
        AddRetryPushback(*context, result.status());
        reactor->Finish(ToGrpcStatus(Fill(std::move(result), response)));
      },
      TraceContextOf(*context));
  return reactor;
}

}  // namespace webhookd
