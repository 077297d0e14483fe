// Fuzzes URL parsing and address classification: the SSRF checks made when
// endpoints are created, and the parsers behind --allow_cidr.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "server/delivery/validation.h"
#include "server/security/address_policy.h"

namespace {

using webhookd::AddressPolicy;
using webhookd::Cidr;
using webhookd::IpAddress;

void Check(bool invariant) {
  if (!invariant) std::abort();
}

void FuzzUrl(const std::string& text) {
  webhookd::TargetPolicy secure;
  webhookd::TargetPolicy insecure;
  insecure.allow_insecure_targets = true;
  const absl::StatusOr<webhookd::ParsedUrl> parsed =
      webhookd::ParseTargetUrl(text);
  const absl::Status strict = webhookd::ValidateUrl(text, secure, "url");
  const absl::Status lax = webhookd::ValidateUrl(text, insecure, "url");
  // Without the address policy, only the URL's shape matters.
  Check(parsed.ok() == lax.ok());
  // Whatever the strict policy accepts, the lax one does.
  Check(!strict.ok() || lax.ok());
  if (strict.ok()) {
    Check(parsed->scheme == "https");
    Check(parsed->port >= 1 && parsed->port <= 65535);
    // No host that spells a non-public address gets through.
    if (std::optional<IpAddress> ip = webhookd::ParseIpLiteral(parsed->host)) {
      Check(webhookd::NonPublicReason(*ip).empty());
    }
  }
}

void FuzzAddress(const std::string& text) {
  const std::optional<IpAddress> ip = webhookd::ParseIpLiteral(text);
  if (ip.has_value()) {
    // The canonical form reads back as the same address.
    const std::optional<IpAddress> again =
        webhookd::ParseIpLiteral(ip->ToString());
    Check(again.has_value() && *again == *ip);
    const std::string reason = webhookd::NonPublicReason(*ip);
    Check(AddressPolicy().Check(*ip).ok() == reason.empty());
    Check(AddressPolicy().CheckHost(text).ok() == reason.empty());
    if (!ip->v6) {
      // An IPv4-mapped address is judged as its IPv4 address.
      IpAddress mapped;
      mapped.v6 = true;
      mapped.bytes[10] = 0xff;
      mapped.bytes[11] = 0xff;
      std::memcpy(mapped.bytes.data() + 12, ip->bytes.data(), 4);
      Check(webhookd::NonPublicReason(mapped).empty() == reason.empty());
    }
  } else {
    (void)AddressPolicy().CheckHost(text);
  }

  const absl::StatusOr<Cidr> cidr = webhookd::ParseCidr(text);
  if (cidr.ok()) {
    Check(cidr->Contains(cidr->network));
    const absl::StatusOr<Cidr> again = webhookd::ParseCidr(cidr->ToString());
    Check(again.ok() && again->network == cidr->network &&
          again->prefix_length == cidr->prefix_length);
    // The allow-list admits its own range.
    Check(AddressPolicy({*cidr}).Check(cidr->network).ok());
  }
}

void FuzzRawAddress(const uint8_t* data, size_t size) {
  if (size != 4 && size != 16) return;
  IpAddress address;
  address.v6 = size == 16;
  std::memcpy(address.bytes.data(), data, size);
  (void)webhookd::NonPublicReason(address);
  const std::optional<IpAddress> again =
      webhookd::ParseIpLiteral(address.ToString());
  Check(again.has_value() && *again == address);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  FuzzUrl(text);
  FuzzAddress(text);
  FuzzRawAddress(data, size);
  return 0;
}
