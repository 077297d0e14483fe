// What webhookd counts and times for operators (README "Metrics"). The
// delivery and API layers report through this interface; server/metrics
// implements it for Prometheus, and NoMetrics() discards everything (the
// default, so that unit tests need nothing).

#ifndef WEBHOOKD_SERVER_COMMON_METRICS_H_
#define WEBHOOKD_SERVER_COMMON_METRICS_H_

#include <cstddef>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace webhookd {

// How a delivery ended for good.
enum class DeliveryOutcome {
  kDelivered,  // A 2xx answer.
  kFailed,     // Attempts used up, or its endpoint deleted after an attempt.
  kCancelled,  // Ended without an attempt: endpoint deleted, payload lost.
};

// What an attempt got back.
enum class ResponseClass {
  k2xx,
  k3xx,
  k4xx,
  k5xx,
  kOtherStatus,      // A status outside 200-599.
  kTimeout,          // The attempt timeout expired (connecting or waiting).
  kConnectionError,  // No whole response: refused, DNS, TLS, reset, blocked.
};

// Which storage write was timed.
enum class StorageWrite {
  kSubmit,         // The submit pipeline's group commit (synced).
  kAttemptRecord,  // The attempt recorder's batch of outcomes (buffered).
};

// What admission control (AdmissionOptions) did with a submit that had to
// wait for delivery to catch up.
enum class AdmissionOutcome {
  kAdmittedAfterWait,  // Delivery caught up: it was written.
  kRefused,            // It waited --admission_max_wait: ResourceExhausted.
};

// Implementations are safe for concurrent use, and cheap: methods are
// called on the delivery path.
class Metrics {
 public:
  virtual ~Metrics() = default;

  // New events stored, with their deliveries (idempotent repeats and refused
  // submits excluded).
  virtual void EventsSubmitted(size_t events, size_t deliveries) = 0;
  // An attempt finished (test deliveries included), after `duration`.
  virtual void AttemptFinished(ResponseClass response,
                               absl::Duration duration) = 0;
  // A delivery (not a test one) ended for good, `since_submit` after its
  // event was submitted.
  virtual void DeliveryFinished(DeliveryOutcome outcome,
                                absl::Duration since_submit) = 0;
  // A failed attempt was followed by a scheduled retry.
  virtual void RetryScheduled() = 0;
  // An endpoint was disabled by webhookd itself (auto-disable).
  virtual void EndpointAutoDisabled() = 0;
  // A submit that waited for admission was admitted or refused.
  virtual void SubmitAdmission(AdmissionOutcome outcome) = 0;
  // A storage write of kind `what` took `duration`.
  virtual void StorageWriteFinished(StorageWrite what,
                                    absl::Duration duration) = 0;
  // A gRPC call finished. `service` and `method` must come from a bounded
  // set (the server's registered methods).
  virtual void RpcFinished(absl::string_view service, absl::string_view method,
                           int grpc_code) = 0;
};

// A Metrics that records nothing; lives forever.
Metrics& NoMetrics();

// The class of an attempt's result: `status_code` (0 when no response was
// received) and whether the attempt timed out.
ResponseClass ClassifyResponse(int status_code, bool timed_out);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_COMMON_METRICS_H_
