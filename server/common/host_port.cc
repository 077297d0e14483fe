#include "server/common/host_port.h"

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/common/string_view.h"

namespace webhookd {
namespace {

bool IsHostNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
         c == '-' || c == '_';
}

bool IsIpv6Char(char c) {
  return absl::ascii_isxdigit(static_cast<unsigned char>(c)) || c == ':' ||
         c == '.';
}

bool IsDigit(char c) {
  return absl::ascii_isdigit(static_cast<unsigned char>(c));
}

}  // namespace

absl::StatusOr<HostPort> ParseHostPort(std::string_view address_std,
                                       std::string_view flag,
                                       std::string_view example) {
  const absl::string_view address = AsAbsl(address_std);
  const auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(AsAbsl(flag), "=", address, ": ", why, AsAbsl(example)));
  };
  if (address.empty()) return invalid("empty address");
  HostPort parsed;
  absl::string_view host;
  absl::string_view rest;
  if (address.front() == '[') {
    const size_t close = address.find(']');
    if (close == absl::string_view::npos) {
      return invalid("no ']' closes the IPv6 address");
    }
    host = address.substr(1, close - 1);
    rest = address.substr(close + 1);
    if (host.empty() || host.find(':') == absl::string_view::npos ||
        !std::all_of(host.begin(), host.end(), IsIpv6Char)) {
      return invalid(absl::StrCat("[", host, "] is not an IPv6 address"));
    }
    if (!absl::ConsumePrefix(&rest, ":")) {
      return invalid("no port after the IPv6 address");
    }
    parsed.ipv6 = true;
  } else {
    const size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos) return invalid("no port");
    host = address.substr(0, colon);
    rest = address.substr(colon + 1);
    if (host.find(':') != absl::string_view::npos) {
      return invalid("an IPv6 address must be in brackets");
    }
    if (host.empty()) {
      return invalid("no host (0.0.0.0 listens on every IPv4 interface)");
    }
    if (!std::all_of(host.begin(), host.end(), IsHostNameChar)) {
      return invalid(
          absl::StrCat("\"", host, "\" is not a host name or address"));
    }
  }
  if (rest.empty()) return invalid("no port");
  if (rest.size() > 5 || !std::all_of(rest.begin(), rest.end(), IsDigit) ||
      !absl::SimpleAtoi(rest, &parsed.port)) {
    return invalid(
        absl::StrCat("port \"", rest, "\" is not a number from 0 to 65535"));
  }
  if (parsed.port > 65535) {
    return invalid(
        absl::StrCat("port ", rest, " is out of range (0 to 65535)"));
  }
  parsed.host = std::string(host);
  return parsed;
}

}  // namespace webhookd
