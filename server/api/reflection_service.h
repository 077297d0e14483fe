// gRPC server reflection (grpc.reflection.v1 and v1alpha) served from a
// FileDescriptorSet that keeps the .proto files' comments.
//
// gRPC's own reflection plugin serves the C++ generated descriptors, which
// carry no comments and do not include grpc.health.v1 (gRPC implements the
// health service without them), so grpcurl and buf could list the health
// service but not call it. These services serve exactly the schemas they
// are given, and refuse to list a service whose schema is missing.

#ifndef WEBHOOKD_SERVER_API_REFLECTION_SERVICE_H_
#define WEBHOOKD_SERVER_API_REFLECTION_SERVICE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace webhookd {

// The schemas reflection serves. Immutable after Create: safe for
// concurrent use.
class ReflectionSchemas {
 public:
  // `descriptor_set`: a serialized FileDescriptorSet holding every file in
  // dependency order (protoc --include_imports). `services`: the fully
  // qualified names to list. InvalidArgument if the set does not parse or
  // build, or a service has no schema in it.
  static absl::StatusOr<std::unique_ptr<ReflectionSchemas>> Create(
      std::string_view descriptor_set, std::vector<std::string> services);
  ReflectionSchemas(const ReflectionSchemas&) = delete;
  ReflectionSchemas& operator=(const ReflectionSchemas&) = delete;

  const std::vector<std::string>& services() const { return services_; }

  // The serialized FileDescriptorProtos (comments included) of a file and
  // of every file it imports, transitively; the file first. NotFound if no
  // such file, symbol, type or extension is known.
  absl::StatusOr<std::vector<std::string>> FileByName(
      std::string_view name) const;
  absl::StatusOr<std::vector<std::string>> FileContainingSymbol(
      std::string_view symbol) const;
  absl::StatusOr<std::vector<std::string>> FileContainingExtension(
      std::string_view type, int number) const;
  // The numbers of the known extensions of message `type`; NotFound for an
  // unknown type.
  absl::StatusOr<std::vector<int>> ExtensionNumbers(
      std::string_view type) const;

 private:
  ReflectionSchemas() = default;
  std::vector<std::string> FileWithImports(
      const google::protobuf::FileDescriptor* file) const;

  google::protobuf::DescriptorPool pool_;
  // File name -> its FileDescriptorProto as given, with source code info.
  absl::flat_hash_map<std::string, std::string> serialized_;
  std::vector<std::string> services_;
};

// grpc.reflection.v1.ServerReflection. `schemas` must outlive the service.
class ReflectionV1Service final
    : public grpc::reflection::v1::ServerReflection::CallbackService {
 public:
  explicit ReflectionV1Service(const ReflectionSchemas& schemas)
      : schemas_(schemas) {}

  grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                          grpc::reflection::v1::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* context) override;

 private:
  const ReflectionSchemas& schemas_;
};

// grpc.reflection.v1alpha.ServerReflection, for older clients.
// `schemas` must outlive the service.
class ReflectionV1AlphaService final
    : public grpc::reflection::v1alpha::ServerReflection::CallbackService {
 public:
  explicit ReflectionV1AlphaService(const ReflectionSchemas& schemas)
      : schemas_(schemas) {}

  grpc::ServerBidiReactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                          grpc::reflection::v1alpha::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* context) override;

 private:
  const ReflectionSchemas& schemas_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_API_REFLECTION_SERVICE_H_
