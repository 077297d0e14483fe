// Which network addresses deliveries may go to (SSRF defence). By default
// only public unicast addresses; an allow-list of CIDR ranges
// (--allow_cidr) admits specific others.

#ifndef WEBHOOKD_SERVER_SECURITY_ADDRESS_POLICY_H_
#define WEBHOOKD_SERVER_SECURITY_ADDRESS_POLICY_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace webhookd {

// An IPv4 or IPv6 address.
struct IpAddress {
  bool v6 = false;
  // Network byte order; an IPv4 address uses bytes[0..3], the rest are zero.
  std::array<uint8_t, 16> bytes = {};

  static IpAddress V4(uint32_t host_order);
  static IpAddress V6(const std::array<uint8_t, 16>& bytes);

  int bit_length() const { return v6 ? 128 : 32; }
  // The IPv4 address in host byte order; only for !v6.
  uint32_t v4_value() const;
  // "10.0.0.1", "::1" (RFC 5952 form, as inet_ntop writes it).
  std::string ToString() const;

  friend bool operator==(const IpAddress& a, const IpAddress& b) {
    return a.v6 == b.v6 && a.bytes == b.bytes;
  }
};

// A range of addresses, "10.0.0.0/8".
struct Cidr {
  IpAddress network;  // Host bits are zero.
  int prefix_length = 0;

  // False for an address of the other family.
  bool Contains(const IpAddress& address) const;
  std::string ToString() const;
};

// Parses "10.0.0.0/8", "fd00::/8" or one address (as a /32 or /128), in
// canonical notation: dotted-quad IPv4, IPv6 without brackets. Host bits
// must be zero. InvalidArgument otherwise; the message names no flag.
absl::StatusOr<Cidr> ParseCidr(absl::string_view text);

// Parses a URL host that is an IP literal: IPv6 with or without brackets,
// and IPv4 in every spelling the C library's resolver accepts as numeric
// ("127.0.0.1", "127.1", "2130706433", "0x7f.1", "0177.0.0.1"), with or
// without one trailing dot. nullopt for anything else (a host name).
std::optional<IpAddress> ParseIpLiteral(absl::string_view host);

// The address of an AF_INET or AF_INET6 socket address; nullopt for other
// families or a short `len`.
std::optional<IpAddress> IpFromSockaddr(const struct sockaddr* addr,
                                        socklen_t len);

// Why `address` is not a public unicast address, e.g. "a loopback address
// (127.0.0.0/8)", or "" when it is one. IPv6 addresses that embed an IPv4
// address (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96, 6to4) are
// judged by the IPv4 address they embed.
std::string NonPublicReason(const IpAddress& address);

// Decides whether deliveries may connect to an address. Immutable, so safe
// for concurrent use; cheap to copy.
class AddressPolicy {
 public:
  // Public unicast addresses only.
  AddressPolicy() = default;
  // Public unicast addresses, plus those in `allowed`.
  explicit AddressPolicy(std::vector<Cidr> allowed);

  // Parses each entry with ParseCidr; InvalidArgument naming the bad one.
  static absl::StatusOr<AddressPolicy> FromCidrs(
      const std::vector<std::string>& cidrs);

  // OK when `address` is public unicast or inside an allowed range (an
  // IPv4-mapped IPv6 address counts as its IPv4 address); otherwise
  // PermissionDenied saying why, e.g. "10.0.0.1 is a private address
  // (10.0.0.0/8)".
  absl::Status Check(const IpAddress& address) const;

  // Checks the host of a URL before anything is resolved: IP literals with
  // Check(), "localhost" and names under ".localhost" are refused, other
  // names pass (their addresses are checked when connecting). `host` is as
  // ParseTargetUrl returns it (lowercase, IPv6 without brackets).
  absl::Status CheckHost(absl::string_view host) const;

  // For CurlSenderOptions::address_filter: whether a connection to `addr`
  // is allowed; if not, `*why` says why. Non-IP families are refused.
  bool AllowsConnection(const struct sockaddr* addr, socklen_t len,
                        std::string* why) const;

  const std::vector<Cidr>& allowed() const { return allowed_; }

 private:
  std::vector<Cidr> allowed_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_SECURITY_ADDRESS_POLICY_H_
