#include "server/app/listen_address.h"

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/common/string_view.h"

namespace webhookd {
namespace {

constexpr absl::string_view kExample =
    "; expected host:port, e.g. 127.0.0.1:50051, [::1]:50051 or "
    "unix:/path/to.sock (port 0 picks a free one)";

absl::Status Invalid(absl::string_view listen, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("--listen=", listen, ": ", why, kExample));
}

bool IsHostNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
         c == '-' || c == '_';
}

bool IsIpv6Char(char c) {
  return absl::ascii_isxdigit(static_cast<unsigned char>(c)) || c == ':' ||
         c == '.';
}

}  // namespace

absl::Status ValidateListenAddress(std::string_view listen_std) {
  const absl::string_view listen = AsAbsl(listen_std);
  if (listen.empty()) return Invalid(listen, "empty address");
  for (absl::string_view scheme : {"unix:", "unix-abstract:"}) {
    absl::string_view path = listen;
    if (absl::ConsumePrefix(&path, scheme)) {
      if (path.empty()) {
        return Invalid(listen, absl::StrCat("no socket path after ", scheme));
      }
      return absl::OkStatus();
    }
  }
  absl::string_view host;
  absl::string_view rest;
  if (listen.front() == '[') {
    const size_t close = listen.find(']');
    if (close == absl::string_view::npos) {
      return Invalid(listen, "no ']' closes the IPv6 address");
    }
    host = listen.substr(1, close - 1);
    rest = listen.substr(close + 1);
    if (host.empty() || host.find(':') == absl::string_view::npos ||
        !std::all_of(host.begin(), host.end(), IsIpv6Char)) {
      return Invalid(listen,
                     absl::StrCat("[", host, "] is not an IPv6 address"));
    }
    if (!absl::ConsumePrefix(&rest, ":")) {
      return Invalid(listen, "no port after the IPv6 address");
    }
  } else {
    const size_t colon = listen.rfind(':');
    if (colon == absl::string_view::npos) {
      return Invalid(listen, "no port");
    }
    host = listen.substr(0, colon);
    rest = listen.substr(colon + 1);
    if (host.find(':') != absl::string_view::npos) {
      return Invalid(listen, "an IPv6 address must be in brackets");
    }
    if (host.empty()) {
      return Invalid(listen,
                     "no host (0.0.0.0 listens on every IPv4 interface)");
    }
    if (!std::all_of(host.begin(), host.end(), IsHostNameChar)) {
      return Invalid(
          listen, absl::StrCat("\"", host, "\" is not a host name or address"));
    }
  }
  if (rest.empty()) return Invalid(listen, "no port");
  if (rest.size() > 5 || !std::all_of(rest.begin(), rest.end(), [](char c) {
        return absl::ascii_isdigit(static_cast<unsigned char>(c));
      })) {
    return Invalid(listen, absl::StrCat("port \"", rest,
                                        "\" is not a number from 0 to 65535"));
  }
  if (std::stoi(std::string(rest)) > 65535) {
    return Invalid(
        listen, absl::StrCat("port ", rest, " is out of range (0 to 65535)"));
  }
  return absl::OkStatus();
}

}  // namespace webhookd
