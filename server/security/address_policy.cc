#include "server/security/address_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace webhookd {
namespace {

// A range that is not public unicast, and what it is.
struct Special {
  const char* cidr;
  const char* what;
};

// IANA's special-purpose registries (RFC 6890 and updates), plus multicast
// and the reserved 240/4. First match wins, so narrower ranges come first.
constexpr Special kSpecialV4[] = {
    {"0.0.0.0/32", "the unspecified address"},
    {"0.0.0.0/8", "a \"this network\" address"},
    {"10.0.0.0/8", "a private address"},
    {"100.64.0.0/10", "a carrier-grade NAT (shared) address"},
    {"127.0.0.0/8", "a loopback address"},
    {"169.254.169.254/32", "the link-local cloud metadata address"},
    {"169.254.0.0/16", "a link-local address"},
    {"172.16.0.0/12", "a private address"},
    {"192.0.0.0/24", "an IETF protocol assignment address"},
    {"192.0.2.0/24", "a documentation address (TEST-NET-1)"},
    {"192.88.99.0/24", "a deprecated 6to4 relay anycast address"},
    {"192.168.0.0/16", "a private address"},
    {"198.18.0.0/15", "a benchmarking address"},
    {"198.51.100.0/24", "a documentation address (TEST-NET-2)"},
    {"203.0.113.0/24", "a documentation address (TEST-NET-3)"},
    {"224.0.0.0/4", "a multicast address"},
    {"255.255.255.255/32", "the broadcast address"},
    {"240.0.0.0/4", "a reserved address"},
};

// IPv6 ranges judged as a whole. Those that embed an IPv4 address are
// handled before this table is consulted.
constexpr Special kSpecialV6[] = {
    {"::/128", "the unspecified address"},
    {"::1/128", "the loopback address"},
    {"64:ff9b:1::/48", "a local-use NAT64 address"},
    {"100::/64", "a discard-only address"},
    {"2001::/32", "a Teredo address"},
    {"2001:db8::/32", "a documentation address"},
    {"2001::/23", "an IETF protocol assignment address"},
    {"3fff::/20", "a documentation address"},
    {"fc00::/7", "a unique local (private) address"},
    {"fe80::/10", "a link-local address"},
    {"fec0::/10", "a deprecated site-local address"},
    {"ff00::/8", "a multicast address"},
};

// IPv6 forms that carry an IPv4 address, and where.
struct Embedding {
  const char* cidr;
  const char* what;
  int v4_offset;  // Byte offset of the IPv4 address.
};

constexpr Embedding kEmbeddingV6[] = {
    {"::ffff:0:0/96", "an IPv4-mapped address", 12},
    {"64:ff9b::/96", "a NAT64 address", 12},
    {"2002::/16", "a 6to4 address", 2},
    // Checked after :: and ::1, which are in this range too.
    {"::/96", "an IPv4-compatible address", 12},
};

Cidr MustParse(const char* text) {
  absl::StatusOr<Cidr> cidr = ParseCidr(text);
  // The tables above are constants; a typo would be a programming error.
  if (!cidr.ok()) std::abort();
  return *cidr;
}

struct ParsedSpecial {
  Cidr cidr;
  const char* what;
};

const std::vector<ParsedSpecial>& SpecialRanges() {
  static const std::vector<ParsedSpecial>* ranges = [] {
    auto* out = new std::vector<ParsedSpecial>();
    for (const Special& s : kSpecialV4)
      out->push_back({MustParse(s.cidr), s.what});
    for (const Special& s : kSpecialV6)
      out->push_back({MustParse(s.cidr), s.what});
    return out;
  }();
  return *ranges;
}

struct ParsedEmbedding {
  Cidr cidr;
  const char* what;
  int v4_offset;
};

const std::vector<ParsedEmbedding>& Embeddings() {
  static const std::vector<ParsedEmbedding>* embeddings = [] {
    auto* out = new std::vector<ParsedEmbedding>();
    for (const Embedding& e : kEmbeddingV6) {
      out->push_back({MustParse(e.cidr), e.what, e.v4_offset});
    }
    return out;
  }();
  return *embeddings;
}

// inet_pton and inet_aton read a C string, up to its first NUL: text with a
// NUL inside ("::1\0junk") must be refused, not read as its prefix.
bool HasNul(absl::string_view text) {
  return text.find('\0') != absl::string_view::npos;
}

std::optional<IpAddress> ParseCanonical(const std::string& text) {
  if (HasNul(text)) return std::nullopt;
  IpAddress address;
  if (text.find(':') != std::string::npos) {
    in6_addr v6;
    if (inet_pton(AF_INET6, text.c_str(), &v6) != 1) return std::nullopt;
    address.v6 = true;
    std::memcpy(address.bytes.data(), &v6, 16);
    return address;
  }
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) != 1) return std::nullopt;
  std::memcpy(address.bytes.data(), &v4, 4);
  return address;
}

IpAddress EmbeddedV4(const IpAddress& address, int offset) {
  IpAddress v4;
  std::memcpy(v4.bytes.data(), address.bytes.data() + offset, 4);
  return v4;
}

bool IsLocalhostName(absl::string_view host) {
  absl::ConsumeSuffix(&host, ".");
  return host == "localhost" || absl::EndsWith(host, ".localhost");
}

}  // namespace

IpAddress IpAddress::V4(uint32_t host_order) {
  IpAddress address;
  address.bytes[0] = static_cast<uint8_t>(host_order >> 24);
  address.bytes[1] = static_cast<uint8_t>(host_order >> 16);
  address.bytes[2] = static_cast<uint8_t>(host_order >> 8);
  address.bytes[3] = static_cast<uint8_t>(host_order);
  return address;
}

IpAddress IpAddress::V6(const std::array<uint8_t, 16>& bytes) {
  IpAddress address;
  address.v6 = true;
  address.bytes = bytes;
  return address;
}

uint32_t IpAddress::v4_value() const {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) |
         (uint32_t{bytes[2]} << 8) | uint32_t{bytes[3]};
}

std::string IpAddress::ToString() const {
  char text[INET6_ADDRSTRLEN] = "";
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), text, sizeof(text));
  return text;
}

bool Cidr::Contains(const IpAddress& address) const {
  if (address.v6 != network.v6) return false;
  const int full_bytes = prefix_length / 8;
  if (std::memcmp(address.bytes.data(), network.bytes.data(), full_bytes) !=
      0) {
    return false;
  }
  const int rest = prefix_length % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (address.bytes[full_bytes] & mask) ==
         (network.bytes[full_bytes] & mask);
}

std::string Cidr::ToString() const {
  return absl::StrCat(network.ToString(), "/", prefix_length);
}

absl::StatusOr<Cidr> ParseCidr(absl::string_view text) {
  const auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a CIDR range: ", why));
  };
  const size_t slash = text.find('/');
  const std::string address_text(text.substr(0, slash));
  std::optional<IpAddress> address = ParseCanonical(address_text);
  if (!address.has_value()) {
    return invalid("expected an IPv4 (dotted-quad) or IPv6 address");
  }
  Cidr cidr;
  cidr.network = *address;
  cidr.prefix_length = address->bit_length();
  if (slash != absl::string_view::npos) {
    const absl::string_view prefix = text.substr(slash + 1);
    int length = -1;
    if (prefix.empty() || prefix.size() > 3 ||
        !std::all_of(prefix.begin(), prefix.end(),
                     [](char c) { return absl::ascii_isdigit(c); }) ||
        !absl::SimpleAtoi(prefix, &length) || length > address->bit_length()) {
      return invalid(absl::StrCat("the prefix length must be 0 to ",
                                  address->bit_length()));
    }
    cidr.prefix_length = length;
  }
  // Host bits must be zero: "10.1.2.3/8" is more likely a mistake than a
  // way of writing 10.0.0.0/8.
  Cidr masked = cidr;
  for (int bit = cidr.prefix_length; bit < address->bit_length(); ++bit) {
    masked.network.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
  }
  if (!(masked.network == cidr.network)) {
    return invalid(absl::StrCat("host bits are set (did you mean ",
                                masked.ToString(), "?)"));
  }
  return cidr;
}

std::optional<IpAddress> ParseIpLiteral(absl::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host.size() > 64 || HasNul(host)) return std::nullopt;
  if (host.find(':') != absl::string_view::npos) {
    in6_addr v6;
    if (inet_pton(AF_INET6, std::string(host).c_str(), &v6) != 1) {
      return std::nullopt;
    }
    IpAddress address;
    address.v6 = true;
    std::memcpy(address.bytes.data(), &v6, 16);
    return address;
  }
  // The resolver reads a numeric host with inet_aton, which takes decimal,
  // octal (leading 0) and hex (0x) parts and 1 to 4 of them. Only pass it
  // characters those can contain: inet_aton ignores what follows a space.
  absl::ConsumeSuffix(&host, ".");
  for (char c : host) {
    if (!absl::ascii_isxdigit(c) && c != '.' && c != 'x' && c != 'X') {
      return std::nullopt;
    }
  }
  in_addr v4;
  if (inet_aton(std::string(host).c_str(), &v4) == 0) return std::nullopt;
  IpAddress address;
  std::memcpy(address.bytes.data(), &v4, 4);
  return address;
}

std::optional<IpAddress> IpFromSockaddr(const struct sockaddr* addr,
                                        socklen_t len) {
  if (addr == nullptr) return std::nullopt;
  IpAddress address;
  if (addr->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    sockaddr_in in;
    std::memcpy(&in, addr, sizeof(in));
    std::memcpy(address.bytes.data(), &in.sin_addr, 4);
    return address;
  }
  if (addr->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    sockaddr_in6 in6;
    std::memcpy(&in6, addr, sizeof(in6));
    address.v6 = true;
    std::memcpy(address.bytes.data(), &in6.sin6_addr, 16);
    return address;
  }
  return std::nullopt;
}

std::string NonPublicReason(const IpAddress& address) {
  for (const ParsedSpecial& special : SpecialRanges()) {
    if (special.cidr.Contains(address)) {
      return absl::StrCat(special.what, " (", special.cidr.ToString(), ")");
    }
  }
  if (!address.v6) return "";
  for (const ParsedEmbedding& embedding : Embeddings()) {
    if (embedding.cidr.Contains(address)) {
      const IpAddress v4 = EmbeddedV4(address, embedding.v4_offset);
      const std::string inner = NonPublicReason(v4);
      if (inner.empty()) return "";
      return absl::StrCat(embedding.what, " (", embedding.cidr.ToString(),
                          ") of ", v4.ToString(), ", ", inner);
    }
  }
  // Everything outside 2000::/3 is unassigned or reserved by IANA.
  if ((address.bytes[0] & 0xe0) != 0x20) {
    return "a reserved address (outside global unicast 2000::/3)";
  }
  return "";
}

AddressPolicy::AddressPolicy(std::vector<Cidr> allowed)
    : allowed_(std::move(allowed)) {}

absl::StatusOr<AddressPolicy> AddressPolicy::FromCidrs(
    const std::vector<std::string>& cidrs) {
  std::vector<Cidr> allowed;
  for (const std::string& text : cidrs) {
    absl::StatusOr<Cidr> cidr = ParseCidr(text);
    if (!cidr.ok()) return cidr.status();
    allowed.push_back(*cidr);
  }
  return AddressPolicy(std::move(allowed));
}

absl::Status AddressPolicy::Check(const IpAddress& address) const {
  // An IPv4-mapped IPv6 address connects to its IPv4 address.
  IpAddress target = address;
  if (address.v6 && Embeddings()[0].cidr.Contains(address)) {
    target = EmbeddedV4(address, 12);
  }
  // The allow-list may name the range either way (--allow_cidr=10.0.0.0/8
  // or ::ffff:10.0.0.0/104).
  for (const Cidr& cidr : allowed_) {
    if (cidr.Contains(target) || cidr.Contains(address)) {
      return absl::OkStatus();
    }
  }
  const std::string reason = NonPublicReason(address);
  if (reason.empty()) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat(address.ToString(), " is ", reason));
}

absl::Status AddressPolicy::CheckHost(absl::string_view host) const {
  if (std::optional<IpAddress> literal = ParseIpLiteral(host)) {
    return Check(*literal);
  }
  if (IsLocalhostName(absl::AsciiStrToLower(host))) {
    // Such names always mean the loopback addresses (RFC 6761), allowed
    // only when the allow-list admits them.
    IpAddress v6_loopback;
    v6_loopback.v6 = true;
    v6_loopback.bytes[15] = 1;
    if (Check(IpAddress::V4(0x7f000001)).ok() || Check(v6_loopback).ok()) {
      return absl::OkStatus();
    }
    return absl::PermissionDeniedError(
        absl::StrCat("\"", host, "\" names this machine's loopback addresses"));
  }
  return absl::OkStatus();
}

bool AddressPolicy::AllowsConnection(const struct sockaddr* addr, socklen_t len,
                                     std::string* why) const {
  std::optional<IpAddress> address = IpFromSockaddr(addr, len);
  if (!address.has_value()) {
    *why = "not an IPv4 or IPv6 address";
    return false;
  }
  absl::Status status = Check(*address);
  if (status.ok()) return true;
  *why = absl::StrCat(NonPublicReason(*address),
                      "; deliveries go only to public addresses unless "
                      "--allow_cidr admits them");
  return false;
}

}  // namespace webhookd
