// Small helpers for calling WebhookService in tests.

#ifndef WEBHOOKD_TESTS_SUPPORT_GRPC_HELPERS_H_
#define WEBHOOKD_TESTS_SUPPORT_GRPC_HELPERS_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tests/support/eventually.h"
#include "tests/support/http_receiver.h"
#include "webhook/v1/webhook_service.grpc.pb.h"

namespace webhookd::testing {

// An endpoint of `thread` posting to `url`, with a secret and one header.
webhook::v1::Endpoint MakeEndpoint(const std::string& thread,
                                   const std::string& url,
                                   const std::string& secret = "s3cret");

// Creates an endpoint and returns the call's status (the created endpoint
// in *created, when given and OK).
grpc::Status TryCreateEndpoint(webhook::v1::WebhookService::Stub& stub,
                               const webhook::v1::Endpoint& endpoint,
                               webhook::v1::Endpoint* created = nullptr);

// Creates an endpoint; fails the test on error.
webhook::v1::Endpoint CreateEndpoint(webhook::v1::WebhookService::Stub& stub,
                                     const webhook::v1::Endpoint& endpoint);

// GetEndpoint; fails the test on error.
webhook::v1::Endpoint GetEndpoint(webhook::v1::WebhookService::Stub& stub,
                                  const std::string& id);

// The first page of ListEndpoints without a filter; fails the test on error.
std::vector<webhook::v1::Endpoint> ListAllEndpoints(
    webhook::v1::WebhookService::Stub& stub);

// The documented example event for `thread`.
webhook::v1::SubmitEventRequest ExampleEvent(const std::string& thread);

// Submits; fails the test on error.
webhook::v1::SubmitEventResponse Submit(
    webhook::v1::WebhookService::Stub& stub,
    const webhook::v1::SubmitEventRequest& request);

// Makes the client context of each call; nullptr means Context() (a 10 s
// deadline). Tests with API keys pass one that adds the key.
using ContextFactory = std::function<std::unique_ptr<grpc::ClientContext>()>;

// Polls GetDelivery until `done` holds for it and returns the last state
// seen; fails the test if that takes longer than `timeout`.
webhook::v1::Delivery WaitForDelivery(
    webhook::v1::WebhookService::Stub& stub, const std::string& id,
    const std::function<bool(const webhook::v1::Delivery&)>& done,
    absl::Duration timeout = kEventuallyTimeout,
    const ContextFactory& context = nullptr);

// Whether the delivery has ended (SUCCESS or FAILED).
bool IsFinished(const webhook::v1::Delivery& delivery);

// WaitForDelivery until the delivery has ended: returns it SUCCESS or
// FAILED, or fails the test.
webhook::v1::Delivery WaitFinished(webhook::v1::WebhookService::Stub& stub,
                                   const std::string& id,
                                   const ContextFactory& context = nullptr);

// The deliveries of endpoint `endpoint_id` that ListDeliveries lists (at
// most 1000); fails the test if the call fails.
size_t CountDeliveries(webhook::v1::WebhookService::Stub& stub,
                       const std::string& endpoint_id);

// The requests `receiver` got before a barrier: submits a new event to
// `thread` (whose only endpoint posts to `receiver`) and waits until its
// delivery has ended, so that every earlier request has arrived.
size_t RequestsAfterBarrier(webhook::v1::WebhookService::Stub& stub,
                            const HttpReceiver& receiver,
                            const std::string& thread);

// One StreamDeliveries call read synchronously, bounded by a deadline.
class DeliveryWatch {
 public:
  DeliveryWatch(webhook::v1::WebhookService::Stub& stub,
                const webhook::v1::StreamDeliveriesRequest& request,
                absl::Duration deadline = absl::Seconds(30));
  DeliveryWatch(const DeliveryWatch&) = delete;
  DeliveryWatch& operator=(const DeliveryWatch&) = delete;
  ~DeliveryWatch();

  // Blocks until the server has sent its headers, i.e. has subscribed.
  void WaitSubscribed() { reader_->WaitForInitialMetadata(); }

  // The next message, or false once the stream has ended.
  bool Next(webhook::v1::Delivery* delivery);

  // Reads until a message satisfies `done` or the stream ends; returns
  // every message read.
  std::vector<webhook::v1::Delivery> ReadUntil(
      const std::function<bool(const webhook::v1::Delivery&)>& done);

  // Reads what is left and returns the final status.
  grpc::Status Drain(size_t* messages = nullptr);

  void Cancel() { context_.TryCancel(); }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<webhook::v1::StreamDeliveriesResponse>>
      reader_;
  bool finished_ = false;
};

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_GRPC_HELPERS_H_
