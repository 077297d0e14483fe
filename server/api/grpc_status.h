// absl::Status is the error type inside webhookd; grpc::Status appears only
// at the RPC edge, converted here.

#ifndef WEBHOOKD_SERVER_API_GRPC_STATUS_H_
#define WEBHOOKD_SERVER_API_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace webhookd {

// The same code and message: absl::StatusCode and grpc::StatusCode share
// their numbering (google.rpc.Code).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_API_GRPC_STATUS_H_
