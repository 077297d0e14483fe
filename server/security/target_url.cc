#include "server/security/target_url.h"

#include <curl/curl.h>
#include <idn2.h>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/limits.h"
#include "server/common/status_macros.h"
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

int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Letters, digits, '-', '.' and '_': what a host decoded from percent
// escapes may hold in ASCII. Anything else ('@', '/', ':'...) would change
// how the rebuilt URL is read.
bool IsHostNameByte(unsigned char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_';
}

struct Idn2Deleter {
  void operator()(char* s) const { idn2_free(s); }
};

// The ASCII form of a host given with non-ASCII or percent-encoded bytes.
// libcurl would do the IDN conversion itself at every attempt, but only
// under a UTF-8 LC_CTYPE, which a daemon cannot count on: converting once,
// here, means an endpoint is either refused at creation or delivers.
absl::StatusOr<std::string> AsciiHost(std::string_view host) {
  const auto invalid = [](std::string_view reason) {
    return absl::InvalidArgumentError(AsAbsl(reason));
  };
  std::string decoded;
  decoded.reserve(host.size());
  bool ascii = true;
  for (size_t i = 0; i < host.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(host[i]);
    if (c == '%') {
      const int high = i + 2 < host.size() ? HexDigitValue(host[i + 1]) : -1;
      const int low = i + 2 < host.size() ? HexDigitValue(host[i + 2]) : -1;
      if (high < 0 || low < 0) {
        return invalid("host has an invalid percent-encoding");
      }
      c = static_cast<unsigned char>(high * 16 + low);
      i += 2;
    }
    if (c >= 0x80) {
      ascii = false;
    } else if (!IsHostNameByte(c)) {
      return invalid(
          "host must hold only letters, digits, '-', '.' and '_' once "
          "percent-decoded");
    }
    decoded.push_back(static_cast<char>(c));
  }
  if (ascii) return absl::AsciiStrToLower(decoded);
  char* raw = nullptr;
  const int rc = idn2_to_ascii_8z(decoded.c_str(), &raw, IDN2_NONTRANSITIONAL);
  const std::unique_ptr<char, Idn2Deleter> output(raw);
  if (rc != IDN2_OK || output == nullptr) {
    return invalid(
        absl::StrCat("host is not a valid internationalized domain name (",
                     idn2_strerror(rc), ")"));
  }
  std::string converted(output.get());
  for (char c : converted) {
    if (!IsHostNameByte(static_cast<unsigned char>(c))) {
      return invalid("host is not a valid internationalized domain name");
    }
  }
  return converted;
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

  // UTF-8 may appear in the host only (an IDN), and is replaced there, with
  // any percent-encoding of it, by the host's ASCII form. IPv6 literals are
  // left to libcurl.
  const size_t host_begin = scheme_end + 3;
  const size_t host_size =
      authority[0] == '[' ? authority.size()
                          : std::min(authority.find(':'), authority.size());
  const std::string_view host = url.substr(host_begin, host_size);
  for (size_t i = 0; i < url.size(); ++i) {
    const bool in_host = i >= host_begin && i < host_begin + host_size;
    if (static_cast<unsigned char>(url[i]) >= 0x80 && !in_host) {
      return invalid(
          "must contain only ASCII characters outside the host "
          "(percent-encode others)");
    }
  }
  std::string url_string(url);
  if (authority[0] != '[' && std::any_of(host.begin(), host.end(), [](char c) {
        return c == '%' || static_cast<unsigned char>(c) >= 0x80;
      })) {
    WEBHOOKD_ASSIGN_OR_RETURN(std::string ascii_host, AsciiHost(host));
    url_string = absl::StrCat(AsAbsl(url.substr(0, host_begin)), ascii_host,
                              AsAbsl(url.substr(host_begin + host_size)));
    if (url_string.size() > static_cast<size_t>(kMaxUrlBytes)) {
      return invalid(absl::StrCat("must be at most ", kMaxUrlBytes,
                                  " bytes with its host in ASCII form"));
    }
  }

  CurlUrlPtr handle(curl_url());
  if (handle == nullptr) return absl::ResourceExhaustedError("curl_url()");
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
  parsed.url = std::move(url_string);
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
