// The syntax of webhookd's --listen address, checked before gRPC sees it:
// gRPC takes "localhost:99999" and serves on a random port, and reports a
// missing port only as a failure to listen.

#ifndef WEBHOOKD_SERVER_APP_LISTEN_ADDRESS_H_
#define WEBHOOKD_SERVER_APP_LISTEN_ADDRESS_H_

#include <string_view>

#include "absl/status/status.h"

namespace webhookd {

// OK for "host:port" with a port from 0 to 65535 (0 picks a free one), a
// host name or IPv4 address ("127.0.0.1:50051", "localhost:50051",
// "0.0.0.0:50051"), an IPv6 address in brackets ("[::1]:50051"), or a Unix
// socket ("unix:/run/webhookd.sock", "unix-abstract:webhookd").
// InvalidArgument naming --listen and what is wrong otherwise.
absl::Status ValidateListenAddress(std::string_view listen);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_APP_LISTEN_ADDRESS_H_
