// absl::Status is the error type inside webhookd; grpc::Status appears only
// at the RPC edge, converted here.

#ifndef WEBHOOKD_SERVER_API_GRPC_STATUS_H_
#define WEBHOOKD_SERVER_API_GRPC_STATUS_H_

#include <cstddef>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace webhookd {

// Longest error message sent to a client; longer ones are cut there.
inline constexpr size_t kMaxGrpcMessageBytes = 1024;

// The same code and message (cut to kMaxGrpcMessageBytes): absl::StatusCode
// and grpc::StatusCode share their numbering (google.rpc.Code).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_API_GRPC_STATUS_H_
