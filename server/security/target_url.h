// Where a delivery may go: the shape of a target URL and the policy on the
// addresses it names.

#ifndef WEBHOOKD_SERVER_SECURITY_TARGET_URL_H_
#define WEBHOOKD_SERVER_SECURITY_TARGET_URL_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/security/address_policy.h"

namespace webhookd {

// The parts of a delivery URL that decide where a request goes.
struct ParsedUrl {
  std::string scheme;  // "http" or "https", lowercase.
  // Lowercase; IPv4 literals in libcurl's normalised dotted form ("127.1"
  // becomes "127.0.0.1"); IPv6 literals without brackets ("::1").
  std::string host;
  int port = 0;  // The explicit port, else 80 for http and 443 for https.
  // The URL as given, but with an internationalized host name (raw UTF-8 or
  // percent-encoded) replaced by its ASCII form ("bücher.example" becomes
  // "xn--bcher-kva.example"): what is stored and delivered to. Equal to the
  // input when the host was plain ASCII.
  std::string url;
};

// Parses an absolute http(s) URL with libcurl's URL API and checks its shape:
// at most kMaxUrlBytes, ASCII without whitespace or control characters
// (except UTF-8 in the host), a host, no user-info, no fragment, no IPv6
// zone id, a port in 1..65535. A host with non-ASCII or percent-encoded
// bytes is decoded and converted with libidn2 (IDNA2008 with UTS #46
// non-transitional mapping); one that is not a valid IDN is refused.
// Returns InvalidArgument with a reason that names no field, e.g. "must not
// contain user-info". Does not apply TargetPolicy.
absl::StatusOr<ParsedUrl> ParseTargetUrl(std::string_view url);

// Which delivery targets are acceptable.
struct TargetPolicy {
  // Allows http:// and any address (local development, tests).
  bool allow_insecure_targets = false;
  // Otherwise, the addresses deliveries may go to: literal hosts in URLs
  // are checked when endpoints are created and updated, resolved addresses
  // when connecting.
  AddressPolicy addresses;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_SECURITY_TARGET_URL_H_
