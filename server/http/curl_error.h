// The wording of HttpResult::error: what a libcurl transfer that ended
// without a whole response left behind, turned into one line that says what
// went wrong first ("connection refused", "timed out after 200 ms", "TLS
// handshake failed", "blocked address 10.0.0.1: private address"...) and
// then libcurl's own detail.

#ifndef WEBHOOKD_SERVER_HTTP_CURL_ERROR_H_
#define WEBHOOKD_SERVER_HTTP_CURL_ERROR_H_

#include <curl/curl.h>

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace webhookd {

// What is known about a transfer that failed: copied out of the easy handle
// and the sender's own state, so that the wording is a pure function of it.
struct CurlFailure {
  // The transfer's result; not CURLE_OK.
  CURLcode code = CURLE_OK;
  // CURLINFO_OS_ERRNO: the errno of the failed connect, 0 when none.
  long os_errno = 0;
  // libcurl's error buffer (CURLOPT_ERRORBUFFER); may be empty.
  std::string detail;
  // The status of a response that broke off after its status line; 0 when
  // no status line arrived.
  int partial_status = 0;
  // Why the address filter refused an address ("blocked address ..."); empty
  // when it refused none.
  std::string blocked;
  // The timeout that expired, named when the transfer timed out: the
  // request's, or the connect timeout's when the request was never sent.
  absl::Duration timeout;
  // The transfer timed out before its request was sent: connecting (TCP or
  // TLS) took too long.
  bool timed_out_connecting = false;
  // The connection died before any response and the sender stopped libcurl
  // from sending the request again (CurlSender: one attempt, one request).
  bool resend_refused = false;
};

// The whole error when CurlFailure::resend_refused is set.
inline constexpr absl::string_view kResendRefused =
    "connection closed before a response; not re-sent (the next attempt "
    "follows the retry schedule)";

// The HttpResult::error for `failure`, never empty.
std::string DescribeCurlFailure(const CurlFailure& failure);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_HTTP_CURL_ERROR_H_
