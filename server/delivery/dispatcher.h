// The dispatcher: takes the deliveries that are due from the scheduler,
// builds each signed request and hands it to the HttpSender.

#ifndef WEBHOOKD_SERVER_DELIVERY_DISPATCHER_H_
#define WEBHOOKD_SERVER_DELIVERY_DISPATCHER_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/common/metrics.h"
#include "server/delivery/attempt_recorder.h"
#include "server/delivery/change_bus.h"
#include "server/delivery/claimer.h"
#include "server/delivery/endpoint_manager.h"
#include "server/delivery/fresh_deliveries.h"
#include "server/delivery/scheduler.h"
#include "server/http/http_sender.h"
#include "storage/store.h"

namespace webhookd {

struct DispatcherOptions {
  absl::Duration attempt_timeout = absl::Seconds(30);
  // Sent as User-Agent.
  std::string user_agent;
};

// Dispatcher is safe for concurrent use; DispatchDue() is one thread's step
// (the engine's dispatch thread, or a test).
class Dispatcher {
 public:
  // Every reference must outlive the dispatcher. `claimer`: on a node
  // sharing its store with others, the node's claims; nullptr otherwise.
  Dispatcher(Store& store, const EndpointManager& endpoints,
             Scheduler& scheduler, Claimer* claimer, FreshDeliveries& fresh,
             HttpSender& sender, AttemptRecorder& recorder, ChangeBus& bus,
             Metrics& metrics, DispatcherOptions options);
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Starts an attempt of every delivery due at `now` that the scheduler's
  // limits allow, reading each from FreshDeliveries or else the store;
  // deliveries of a disabled endpoint are held, those whose endpoint is gone
  // or whose payload was lost in a repair (PayloadLost) end as FAILED
  // without an attempt. Each attempt's outcome goes to the recorder.
  // Returns how many deliveries were taken.
  size_t DispatchDue(absl::Time now);

  // The signed HTTP request of an attempt of `delivery` to `endpoint`, with
  // `body` (the payload), made at `now` (SignatureHeaders). With a
  // `traceparent` (the attempt's, see
  // ChildTraceparent), it is sent with the delivery's tracestate, and
  // takes the place of the endpoint's own traceparent and tracestate
  // headers; without one, those are sent as configured.
  HttpRequest BuildRequest(const Delivery& delivery, std::string body,
                           const Endpoint& endpoint, absl::Time now,
                           const std::string& traceparent = "") const;

 private:
  void Dispatch(const QueuedDelivery& entry, absl::Time now);
  // On a shared store: whether `entry` may be attempted at `now` by this
  // node (its endpoint is enabled and its claim outlasts an attempt); if
  // not, settles it.
  bool Claimed(const QueuedDelivery& entry, absl::Time now);
  // Queues `entry` again shortly after reading it failed with `error`.
  void RetryAfterReadFailure(const QueuedDelivery& entry, absl::Time now,
                             const absl::Status& error);
  // Starts the attempt of `delivery` (without payload unless a test) with
  // `payload` as the body, or ends it if its endpoint is gone.
  void Start(Delivery delivery, std::string payload,
             const QueuedDelivery& entry, absl::Time now);
  // Ends a queued delivery without an attempt and records why.
  void EndWithoutAttempt(Delivery delivery, const std::string& why);

  Store& store_;
  const EndpointManager& endpoints_;
  Scheduler& scheduler_;
  Claimer* const claimer_;
  FreshDeliveries& fresh_;
  HttpSender& sender_;
  AttemptRecorder& recorder_;
  ChangeBus& bus_;
  Metrics& metrics_;
  const DispatcherOptions options_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_DISPATCHER_H_
