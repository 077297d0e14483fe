#include "server/http/retry_after.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"

namespace webhookd {

std::optional<absl::Duration> ParseRetryAfter(absl::string_view value,
                                              absl::Time now) {
  value = absl::StripAsciiWhitespace(value);
  if (value.empty()) return std::nullopt;
  if (absl::ascii_isdigit(value.front())) {
    int64_t seconds = 0;
    if (!absl::SimpleAtoi(value, &seconds) || seconds < 0) {
      // All digits but too large for int64: as good as forever.
      for (char c : value) {
        if (!absl::ascii_isdigit(c)) return std::nullopt;
      }
      return absl::InfiniteDuration();
    }
    return absl::Seconds(seconds);
  }
  // An HTTP-date: IMF-fixdate, or the obsolete RFC 850 and asctime forms,
  // all of which curl_getdate() reads.
  const std::string text(value);
  const time_t when = curl_getdate(text.c_str(), nullptr);
  if (when == -1) return std::nullopt;
  return std::max(absl::ZeroDuration(), absl::FromTimeT(when) - now);
}

}  // namespace webhookd
