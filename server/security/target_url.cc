#include "server/security/target_url.h"

#include <curl/curl.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/limits.h"
#include "server/common/string_view.h"

namespace webhookd {
namespace {

// RFC 3986 section 3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
bool IsScheme(std::string_view s) {
  if (s.empty() || !absl::ascii_isalpha(static_cast<unsigned char>(s[0]))) {
    return false;
  }
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '+' &&
        c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

struct CurlUrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
using CurlUrlPtr = std::unique_ptr<CURLU, CurlUrlDeleter>;

// Stores the part in *value; false when libcurl reports it absent.
bool GetUrlPart(CURLU* url, CURLUPart part, std::string* value) {
  char* raw = nullptr;
  if (curl_url_get(url, part, &raw, 0) != CURLUE_OK) return false;
  value->assign(raw == nullptr ? "" : raw);
  curl_free(raw);
  return true;
}

}  // namespace

absl::StatusOr<ParsedUrl> ParseTargetUrl(std::string_view url) {
  const auto invalid = [](std::string_view reason) {
    return absl::InvalidArgumentError(AsAbsl(reason));
  };
  if (url.empty()) return invalid("is required");
  if (url.size() > static_cast<size_t>(kMaxUrlBytes)) {
    return invalid(absl::StrCat("must be at most ", kMaxUrlBytes, " bytes"));
  }
  for (char c : url) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f) {
      return invalid("must not contain whitespace or control characters");
    }
    if (byte >= 0x80) {
      return invalid(
          "must contain only ASCII characters (percent-encode others)");
    }
  }
  // libcurl silently drops an empty fragment ("https://h/#"), so look at the
  // raw text: '#' can only start a fragment in a valid URL.
  if (url.find('#') != std::string_view::npos) {
    return invalid("must not contain a fragment");
  }

  // Check the shape libcurl is lenient about before handing it over: it reads
  // "https:///path" as host "path" and accepts "https://@host".
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos ||
      !IsScheme(url.substr(0, scheme_end))) {
    return invalid("must be an absolute URL (scheme://host/...)");
  }
  const std::string_view scheme = url.substr(0, scheme_end);
  if (!absl::EqualsIgnoreCase(AsAbsl(scheme), "https") &&
      !absl::EqualsIgnoreCase(AsAbsl(scheme), "http")) {
    return invalid("scheme must be http or https");
  }
  std::string_view authority = url.substr(scheme_end + 3);
  authority = authority.substr(0, authority.find_first_of("/?"));
  if (authority.find('@') != std::string_view::npos) {
    return invalid("must not contain user-info");
  }
  if (authority.empty() || authority[0] == ':') {
    return invalid("must have a host");
  }

  CurlUrlPtr handle(curl_url());
  if (handle == nullptr) return absl::ResourceExhaustedError("curl_url()");
  const std::string url_string(url);
  const CURLUcode rc =
      curl_url_set(handle.get(), CURLUPART_URL, url_string.c_str(),
                   CURLU_NON_SUPPORT_SCHEME);
  switch (rc) {
    case CURLUE_OK:
      break;
    case CURLUE_BAD_PORT_NUMBER:
      return invalid("port must be between 1 and 65535");
    case CURLUE_NO_HOST:
      return invalid("must have a host");
    default:
      return invalid(
          absl::StrCat("is not a valid URL (", curl_url_strerror(rc), ")"));
  }

  // Defence in depth: the raw checks above should already have caught these.
  std::string part;
  if (GetUrlPart(handle.get(), CURLUPART_USER, &part) ||
      GetUrlPart(handle.get(), CURLUPART_PASSWORD, &part) ||
      GetUrlPart(handle.get(), CURLUPART_OPTIONS, &part)) {
    return invalid("must not contain user-info");
  }
  if (GetUrlPart(handle.get(), CURLUPART_FRAGMENT, &part)) {
    return invalid("must not contain a fragment");
  }
  if (GetUrlPart(handle.get(), CURLUPART_ZONEID, &part)) {
    return invalid("must not contain an IPv6 zone id");
  }

  ParsedUrl parsed;
  if (!GetUrlPart(handle.get(), CURLUPART_SCHEME, &parsed.scheme)) {
    return invalid("must be an absolute URL (scheme://host/...)");
  }
  absl::AsciiStrToLower(&parsed.scheme);
  if (!GetUrlPart(handle.get(), CURLUPART_HOST, &parsed.host) ||
      parsed.host.empty()) {
    return invalid("must have a host");
  }
  absl::AsciiStrToLower(&parsed.host);
  if (parsed.host.size() >= 2 && parsed.host.front() == '[' &&
      parsed.host.back() == ']') {
    parsed.host = parsed.host.substr(1, parsed.host.size() - 2);
  }
  if (GetUrlPart(handle.get(), CURLUPART_PORT, &part)) {
    int port = 0;
    if (!absl::SimpleAtoi(part, &port) || port < 1 || port > 65535) {
      return invalid("port must be between 1 and 65535");
    }
    parsed.port = port;
  } else {
    parsed.port = parsed.scheme == "https" ? 443 : 80;
  }
  return parsed;
}

}  // namespace webhookd
