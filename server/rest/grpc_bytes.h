// Serialized messages in and out of grpc::ByteBuffer, for generic calls.

#ifndef WEBHOOKD_SERVER_REST_GRPC_BYTES_H_
#define WEBHOOKD_SERVER_REST_GRPC_BYTES_H_

#include <string>

#include "grpcpp/support/byte_buffer.h"

namespace webhookd {

// A buffer holding a copy of `bytes`.
grpc::ByteBuffer ToByteBuffer(const std::string& bytes);

// The bytes of `buffer`, joined.
std::string FromByteBuffer(const grpc::ByteBuffer& buffer);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_REST_GRPC_BYTES_H_
