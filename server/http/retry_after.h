// Reading the Retry-After response header (RFC 9110, section 10.2.3).

#ifndef WEBHOOKD_SERVER_HTTP_RETRY_AFTER_H_
#define WEBHOOKD_SERVER_HTTP_RETRY_AFTER_H_

#include <optional>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace webhookd {

// The delay a Retry-After header value asks for, seen at `now`: a number of
// seconds, or an HTTP-date (a date in the past is zero). A number too large
// for the clock is InfiniteDuration(). nullopt when the value is neither.
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value,
                                              absl::Time now);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_HTTP_RETRY_AFTER_H_
