#include "server/api/reflection_service.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.pb.h"
#include "server/api/grpc_status.h"
#include "server/common/string_view.h"

namespace webhookd {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::FileDescriptor;

// Answers one request of either protocol version (same messages, two
// packages) from `schemas`: pure and in memory, so fit for a gRPC thread.
template <typename Request, typename Response>
void Answer(const ReflectionSchemas& schemas, const Request& request,
            Response& response) {
  response.Clear();
  response.set_valid_host(request.host());
  *response.mutable_original_request() = request;
  absl::StatusOr<std::vector<std::string>> files;
  switch (request.message_request_case()) {
    case Request::kFileByFilename:
      files = schemas.FileByName(request.file_by_filename());
      break;
    case Request::kFileContainingSymbol:
      files = schemas.FileContainingSymbol(request.file_containing_symbol());
      break;
    case Request::kFileContainingExtension:
      files = schemas.FileContainingExtension(
          request.file_containing_extension().containing_type(),
          request.file_containing_extension().extension_number());
      break;
    case Request::kAllExtensionNumbersOfType: {
      absl::StatusOr<std::vector<int>> numbers =
          schemas.ExtensionNumbers(request.all_extension_numbers_of_type());
      if (!numbers.ok()) {
        files = numbers.status();
        break;
      }
      auto* answer = response.mutable_all_extension_numbers_response();
      answer->set_base_type_name(request.all_extension_numbers_of_type());
      for (int number : *numbers) answer->add_extension_number(number);
      return;
    }
    case Request::kListServices:
      for (const std::string& name : schemas.services()) {
        response.mutable_list_services_response()->add_service()->set_name(
            name);
      }
      return;
    default:
      files = absl::UnimplementedError("unknown reflection request");
  }
  if (!files.ok()) {
    const grpc::Status status = ToGrpcStatus(files.status());
    response.mutable_error_response()->set_error_code(status.error_code());
    response.mutable_error_response()->set_error_message(
        status.error_message());
    return;
  }
  for (std::string& file : *files) {
    response.mutable_file_descriptor_response()->add_file_descriptor_proto(
        std::move(file));
  }
}

// One ServerReflectionInfo stream: reads a request, writes its answer,
// reads the next, until the client closes its side.
template <typename Request, typename Response>
class ReflectionReactor final
    : public grpc::ServerBidiReactor<Request, Response> {
 public:
  explicit ReflectionReactor(const ReflectionSchemas& schemas)
      : schemas_(schemas) {
    this->StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      this->Finish(grpc::Status::OK);
      return;
    }
    Answer(schemas_, request_, response_);
    this->StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    this->StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  const ReflectionSchemas& schemas_;
  Request request_;
  Response response_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ReflectionSchemas>> ReflectionSchemas::Create(
    std::string_view descriptor_set, std::vector<std::string> services) {
  google::protobuf::FileDescriptorSet set;
  if (!set.ParseFromArray(descriptor_set.data(),
                          static_cast<int>(descriptor_set.size()))) {
    return absl::InvalidArgumentError(
        "reflection: the descriptor set does not parse");
  }
  std::unique_ptr<ReflectionSchemas> schemas(new ReflectionSchemas());
  for (const google::protobuf::FileDescriptorProto& file : set.file()) {
    if (schemas->pool_.BuildFile(file) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "reflection: ", file.name(),
          " does not build (are its imports before it in the set?)"));
    }
    schemas->serialized_[file.name()] = file.SerializeAsString();
  }
  for (const std::string& service : services) {
    if (schemas->pool_.FindServiceByName(service) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("reflection: no schema for the service ", service));
    }
  }
  schemas->services_ = std::move(services);
  return schemas;
}

std::vector<std::string> ReflectionSchemas::FileWithImports(
    const FileDescriptor* file) const {
  std::vector<std::string> files;
  absl::flat_hash_set<const FileDescriptor*> seen = {file};
  std::vector<const FileDescriptor*> pending = {file};
  while (!pending.empty()) {
    const FileDescriptor* next = pending.back();
    pending.pop_back();
    files.push_back(serialized_.at(next->name()));
    for (int i = 0; i < next->dependency_count(); ++i) {
      if (seen.insert(next->dependency(i)).second) {
        pending.push_back(next->dependency(i));
      }
    }
  }
  return files;
}

absl::StatusOr<std::vector<std::string>> ReflectionSchemas::FileByName(
    std::string_view name) const {
  const FileDescriptor* file = pool_.FindFileByName(std::string(name));
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat("no file named ", AsAbsl(name)));
  }
  return FileWithImports(file);
}

absl::StatusOr<std::vector<std::string>>
ReflectionSchemas::FileContainingSymbol(std::string_view symbol) const {
  const FileDescriptor* file =
      pool_.FindFileContainingSymbol(std::string(symbol));
  if (file == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no symbol named ", AsAbsl(symbol)));
  }
  return FileWithImports(file);
}

absl::StatusOr<std::vector<std::string>>
ReflectionSchemas::FileContainingExtension(std::string_view type,
                                           int number) const {
  const Descriptor* message = pool_.FindMessageTypeByName(std::string(type));
  const FieldDescriptor* extension =
      message == nullptr ? nullptr
                         : pool_.FindExtensionByNumber(message, number);
  if (extension == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no extension ", number, " of ", AsAbsl(type)));
  }
  return FileWithImports(extension->file());
}

absl::StatusOr<std::vector<int>> ReflectionSchemas::ExtensionNumbers(
    std::string_view type) const {
  const Descriptor* message = pool_.FindMessageTypeByName(std::string(type));
  if (message == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no message type named ", AsAbsl(type)));
  }
  std::vector<const FieldDescriptor*> extensions;
  pool_.FindAllExtensions(message, &extensions);
  std::vector<int> numbers;
  for (const FieldDescriptor* extension : extensions) {
    numbers.push_back(extension->number());
  }
  return numbers;
}

grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                        grpc::reflection::v1::ServerReflectionResponse>*
ReflectionV1Service::ServerReflectionInfo(
    grpc::CallbackServerContext* /*context*/) {
  return new ReflectionReactor<grpc::reflection::v1::ServerReflectionRequest,
                               grpc::reflection::v1::ServerReflectionResponse>(
      schemas_);
}

grpc::ServerBidiReactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                        grpc::reflection::v1alpha::ServerReflectionResponse>*
ReflectionV1AlphaService::ServerReflectionInfo(
    grpc::CallbackServerContext* /*context*/) {
  return new ReflectionReactor<
      grpc::reflection::v1alpha::ServerReflectionRequest,
      grpc::reflection::v1alpha::ServerReflectionResponse>(schemas_);
}

}  // namespace webhookd
