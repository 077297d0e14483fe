// The "host:port" syntax of webhookd's listen flags (--listen,
// --metrics_listen), checked before a server library sees it: gRPC takes
// "localhost:99999" and serves on a random port, and reports a missing port
// only as a failure to listen.

#ifndef WEBHOOKD_SERVER_COMMON_HOST_PORT_H_
#define WEBHOOKD_SERVER_COMMON_HOST_PORT_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace webhookd {

struct HostPort {
  std::string host;  // Without the brackets of an IPv6 address.
  int port = 0;
  bool ipv6 = false;  // The host was given in brackets.
};

// Parses "host:port" with a port from 0 to 65535, a host name or IPv4
// address ("127.0.0.1:50051", "localhost:50051"), or an IPv6 address in
// brackets ("[::1]:50051"). InvalidArgument "<flag>=<address>: <what is
// wrong><example>" otherwise.
absl::StatusOr<HostPort> ParseHostPort(std::string_view address,
                                       std::string_view flag,
                                       std::string_view example);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_COMMON_HOST_PORT_H_
