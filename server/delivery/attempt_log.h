// The log lines of finished attempts (README "Logging").

#ifndef WEBHOOKD_SERVER_DELIVERY_ATTEMPT_LOG_H_
#define WEBHOOKD_SERVER_DELIVERY_ATTEMPT_LOG_H_

#include <string_view>

#include "storage/store.h"

namespace webhookd {

// Logs, at debug level, the attempt last in `after`'s history: the ids, the
// attempt number, HTTP status or error, duration, the outcome ("delivered",
// "retry" with the time of the next attempt, "failed") and the trace and
// span ids. `recorded`: whether the store took the outcome (if not, the
// attempt is made again, and the outcome says so). When the attempt ended a
// delivery (other than a test) as FAILED, also logs a warning. Never logs
// payloads, headers, secrets or response bodies.
void LogFinishedAttempt(const Delivery& after, bool recorded);

// Logs, at debug level, an attempt of `delivery` cut short by shutdown
// (made again later); `traceparent` is the attempt's.
void LogAbortedAttempt(const Delivery& delivery, std::string_view traceparent);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_ATTEMPT_LOG_H_
