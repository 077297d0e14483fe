// When deliveries are attempted again, and what an attempt's outcome does to
// a delivery.

#ifndef WEBHOOKD_SERVER_DELIVERY_RETRY_POLICY_H_
#define WEBHOOKD_SERVER_DELIVERY_RETRY_POLICY_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/http/http_sender.h"
#include "storage/store.h"

namespace webhookd {

class RetryPolicy {
 public:
  // The delays before each retry: "5s,15s,60s" (absl duration syntax). An
  // empty string means no retries. InvalidArgument for a malformed list.
  static absl::StatusOr<RetryPolicy> Parse(const std::string& schedule);

  explicit RetryPolicy(std::vector<absl::Duration> delays)
      : delays_(std::move(delays)) {}

  // Attempts a delivery may make: the first plus one per retry.
  int max_attempts() const { return static_cast<int>(delays_.size()) + 1; }
  // The delay after failed attempt number `attempt` (1-based).
  absl::Duration DelayAfter(int attempt) const;
  const std::vector<absl::Duration>& delays() const { return delays_; }

 private:
  std::vector<absl::Duration> delays_;
};

// The longest wait a receiver's Retry-After can impose before a retry.
inline constexpr absl::Duration kMaxRetryAfter = absl::Minutes(10);

// The delay before the retry after a failed attempt: the scheduled one, or,
// when a 429 or 503 response carried Retry-After, that delay clamped between
// the scheduled one and kMaxRetryAfter.
absl::Duration RetryDelay(absl::Duration scheduled, const HttpResult& result);

// Everything known about one finished attempt.
struct AttemptOutcome {
  absl::Time start_time;
  HttpResult result;
  bool manual = false;
  // The endpoint was deleted meanwhile: no further attempt is scheduled.
  bool endpoint_deleted = false;
  // When the engine learnt the outcome. The retry delay counts from here
  // (or from start_time + elapsed, whichever is later), so that a retry
  // never follows the previous attempt's end by less than the schedule.
  absl::Time finish_time = absl::InfinitePast();
  // The traceparent header sent with the attempt; empty if none.
  std::string traceparent;
};

// When a delivery in this state is due for an attempt: PENDING and RETRYING
// deliveries at their next_attempt_time (their create_time if it is unset);
// nullopt for the others, which await none. The one statement of which
// statuses are queued.
std::optional<absl::Time> NextAttemptDue(const Delivery& delivery);

// The state of a delivery ended for good without another attempt: FAILED,
// with `why` as its last error, no next attempt and no payload.
Delivery EndedDelivery(Delivery delivery, const std::string& why);
// The change that ends `delivery` so (EndedDelivery), counted as
// Ending::kCancelled unless it is a test.
DeliveryChange EndedChange(Delivery delivery, const std::string& why);

// The last error of a queued delivery ended because its payload was lost.
inline constexpr std::string_view kPayloadLostError =
    "its event (the payload) was lost in a database repair";

// Whether `delivery`, as read by Store::GetDelivery, can never be attempted
// again because its payload was lost: webhookd --repair keeps the surviving
// deliveries of a lost event readable, with an empty payload, behind a
// placeholder event marked payload_lost. Reads that event from `store` only
// when the payload is empty (no stored event has an empty payload).
absl::StatusOr<bool> PayloadLost(Store& store, const Delivery& delivery);

// Applies a finished attempt to `delivery` (the state before the attempt) and
// returns the change to store: the attempt appended to the history, the
// latest response figures, and the status: SUCCESS on a 2xx; RETRYING with
// next_attempt_time (see RetryDelay) when attempts remain; FAILED otherwise.
// The change's next_due follows the new status (NextAttemptDue); the attempt
// counts in the endpoint's stats, as a success exactly when it made the
// delivery SUCCESS, unless the delivery is a test.
DeliveryChange ApplyAttempt(const Delivery& delivery,
                            const AttemptOutcome& outcome,
                            const RetryPolicy& policy,
                            size_t max_response_body_bytes = 4096);

// Whether an HTTP status counts as a successful delivery.
inline bool IsSuccessStatus(int code) { return code >= 200 && code < 300; }
// Whether an attempt delivered: a response with a successful status.
inline bool Delivered(const HttpResult& result) {
  return result.error.empty() && IsSuccessStatus(result.status_code);
}

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_RETRY_POLICY_H_
