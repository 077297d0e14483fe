#include "server/api/grpc_status.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace webhookd {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // The message travels in a trailer (grpc-message): whatever request text
  // it may echo, it must stay far below gRPC's metadata limit (8 KiB).
  const absl::string_view message = status.message();
  std::string bounded;
  if (message.size() > kMaxGrpcMessageBytes) {
    size_t cut = kMaxGrpcMessageBytes;
    // Not inside a UTF-8 sequence.
    while (cut > 0 &&
           (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) {
      --cut;
    }
    bounded = absl::StrCat(message.substr(0, cut), "... (truncated)");
  } else {
    bounded = std::string(message);
  }
  // absl::StatusCode and grpc::StatusCode share their numbering (both follow
  // google.rpc.Code), so the cast is exact for every canonical code.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::move(bounded));
}

}  // namespace webhookd
