#include "server/http/curl_error.h"

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace webhookd {
namespace {

// The first words of the error: what went wrong, in the receiver owner's
// terms rather than libcurl's.
std::string WhatFailed(const CurlFailure& failure) {
  switch (failure.code) {
    case CURLE_COULDNT_CONNECT:
      if (failure.os_errno == ECONNREFUSED) return "connection refused";
      if (failure.os_errno == ENETUNREACH || failure.os_errno == EHOSTUNREACH) {
        return "host unreachable";
      }
      return "could not connect";
    case CURLE_OPERATION_TIMEDOUT:
      return absl::StrCat(failure.timed_out_connecting
                              ? "could not connect within "
                              : "timed out after ",
                          absl::ToInt64Milliseconds(failure.timeout), " ms");
    case CURLE_COULDNT_RESOLVE_HOST:
      return "could not resolve host";
    case CURLE_SSL_CONNECT_ERROR:
      return "TLS handshake failed";
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
      return "TLS certificate verification failed";
    case CURLE_UNSUPPORTED_PROTOCOL:
      return "unsupported protocol";
    case CURLE_URL_MALFORMAT:
      return "malformed URL";
    case CURLE_GOT_NOTHING:
      return "empty reply from server";
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return "invalid HTTP response";
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
      return "connection broken";
    default:
      return curl_easy_strerror(failure.code);
  }
}

}  // namespace

std::string DescribeCurlFailure(const CurlFailure& failure) {
  // libcurl's detail would be "operation aborted by pre-request callback":
  // say instead what happened to the request.
  if (failure.resend_refused) return std::string(kResendRefused);
  // The filter refused every address it was shown: nothing was sent, and
  // libcurl's "could not connect" would hide why.
  if (!failure.blocked.empty() && failure.code == CURLE_COULDNT_CONNECT) {
    return failure.blocked;
  }
  absl::string_view detail = absl::StripTrailingAsciiWhitespace(failure.detail);
  if (detail.empty()) detail = curl_easy_strerror(failure.code);
  std::string error = absl::StrCat(WhatFailed(failure), ": ", detail);
  if (failure.partial_status != 0) {
    absl::StrAppend(&error, " (after a partial HTTP ", failure.partial_status,
                    " response)");
  }
  return error;
}

}  // namespace webhookd
