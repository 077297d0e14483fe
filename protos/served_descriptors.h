// The schemas that server reflection serves, comments included.

#ifndef WEBHOOKD_PROTOS_SERVED_DESCRIPTORS_H_
#define WEBHOOKD_PROTOS_SERVED_DESCRIPTORS_H_

#include <string_view>

namespace webhookd {

// A serialized google.protobuf.FileDescriptorSet of every service webhookd
// offers (webhook.v1, grpc.health.v1, grpc.reflection.v1 and v1alpha) and
// the files they import, in dependency order, with source code info (the
// comments of the .proto files).
std::string_view ServedDescriptorSet();

}  // namespace webhookd

#endif  // WEBHOOKD_PROTOS_SERVED_DESCRIPTORS_H_
