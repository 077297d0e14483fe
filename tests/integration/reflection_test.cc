// Server reflection through a real channel to a real server: every listed
// service has its schema, every method's messages resolve, and the schemas
// keep the .proto files' comments (what grpcurl and buf show).

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptorProto;
using grpc::reflection::v1::ServerReflection;
using grpc::reflection::v1::ServerReflectionRequest;
using grpc::reflection::v1::ServerReflectionResponse;
using ::testing::Contains;
using testing::Context;
using ::testing::HasSubstr;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;

class ReflectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Start();
    stub_ = ServerReflection::NewStub(server_.channel());
  }

  // Sends `requests` on one ServerReflectionInfo stream and returns the
  // answers.
  std::vector<ServerReflectionResponse> Ask(
      const std::vector<ServerReflectionRequest>& requests) {
    auto context = Context();
    auto stream = stub_->ServerReflectionInfo(context.get());
    std::vector<ServerReflectionResponse> responses;
    for (const ServerReflectionRequest& request : requests) {
      EXPECT_TRUE(stream->Write(request));
      ServerReflectionResponse response;
      EXPECT_TRUE(stream->Read(&response));
      responses.push_back(response);
    }
    stream->WritesDone();
    EXPECT_TRUE(stream->Finish().ok());
    return responses;
  }

  ServerReflectionResponse AskOne(const ServerReflectionRequest& request) {
    std::vector<ServerReflectionResponse> responses = Ask({request});
    return responses.empty() ? ServerReflectionResponse() : responses[0];
  }

  static ServerReflectionRequest SymbolRequest(const std::string& symbol) {
    ServerReflectionRequest request;
    request.set_file_containing_symbol(symbol);
    return request;
  }

  // The files of a file_descriptor_response.
  static std::vector<FileDescriptorProto> Files(
      const ServerReflectionResponse& response) {
    std::vector<FileDescriptorProto> files;
    for (const std::string& bytes :
         response.file_descriptor_response().file_descriptor_proto()) {
      files.emplace_back().ParseFromString(bytes);
    }
    return files;
  }

  // Builds the files of `response` into `pool`, imports first (they come
  // after the file that needs them); false if one does not build.
  static bool BuildInto(const ServerReflectionResponse& response,
                        DescriptorPool& pool) {
    std::vector<FileDescriptorProto> files = Files(response);
    for (auto it = files.rbegin(); it != files.rend(); ++it) {
      if (pool.FindFileByName(it->name()) == nullptr &&
          pool.BuildFile(*it) == nullptr) {
        return false;
      }
    }
    return true;
  }

  TestDir dir_;
  TestServer server_{TestServerOptions(dir_.path())};
  std::unique_ptr<ServerReflection::Stub> stub_;
};

TEST_F(ReflectionTest, ListsTheServicesWebhookdServes) {
  ServerReflectionRequest request;
  request.set_list_services("");
  ServerReflectionResponse response = AskOne(request);
  std::vector<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.push_back(service.name());
  }
  EXPECT_THAT(names, ::testing::UnorderedElementsAre(
                         "webhook.v1.WebhookService", "grpc.health.v1.Health",
                         "grpc.reflection.v1.ServerReflection",
                         "grpc.reflection.v1alpha.ServerReflection"));
}

TEST_F(ReflectionTest, EveryListedServiceHasASchemaWithEveryMethodsMessages) {
  ServerReflectionRequest list;
  list.set_list_services("");
  ServerReflectionResponse services = AskOne(list);
  ASSERT_GT(services.list_services_response().service_size(), 0);
  for (const auto& service : services.list_services_response().service()) {
    SCOPED_TRACE(service.name());
    ServerReflectionResponse response = AskOne(SymbolRequest(service.name()));
    ASSERT_FALSE(response.has_error_response())
        << response.error_response().error_message();
    DescriptorPool pool;
    ASSERT_TRUE(BuildInto(response, pool));
    const google::protobuf::ServiceDescriptor* descriptor =
        pool.FindServiceByName(service.name());
    ASSERT_NE(descriptor, nullptr);
    ASSERT_GT(descriptor->method_count(), 0);
    for (int i = 0; i < descriptor->method_count(); ++i) {
      // Building the pool resolved them; a client describes each.
      EXPECT_NE(descriptor->method(i)->input_type(), nullptr);
      EXPECT_NE(descriptor->method(i)->output_type(), nullptr);
    }
  }
}

TEST_F(ReflectionTest, ServedSchemasKeepTheProtoComments) {
  ServerReflectionResponse response =
      AskOne(SymbolRequest("webhook.v1.WebhookService.CreateEndpoint"));
  std::vector<FileDescriptorProto> files = Files(response);
  ASSERT_FALSE(files.empty());
  EXPECT_EQ(files[0].name(), "webhook/v1/webhook_service.proto");
  std::vector<std::string> comments;
  for (const auto& location : files[0].source_code_info().location()) {
    comments.push_back(location.leading_comments());
  }
  EXPECT_THAT(comments,
              Contains(HasSubstr("Creates an endpoint. New endpoints are "
                                 "enabled unless the request asks")));
  EXPECT_THAT(comments, Contains(HasSubstr("WebhookService manages webhook "
                                           "endpoints")));
}

TEST_F(ReflectionTest, HealthSchemaIsServed) {
  ServerReflectionResponse response =
      AskOne(SymbolRequest("grpc.health.v1.Health"));
  std::vector<FileDescriptorProto> files = Files(response);
  ASSERT_FALSE(files.empty()) << response.error_response().error_message();
  EXPECT_EQ(files[0].name(), "grpc/health/v1/health.proto");
}

TEST_F(ReflectionTest, FileByNameIncludesItsImports) {
  ServerReflectionRequest request;
  request.set_file_by_filename("webhook/v1/webhook_service.proto");
  std::vector<std::string> names;
  for (const FileDescriptorProto& file : Files(AskOne(request))) {
    names.push_back(file.name());
  }
  EXPECT_THAT(names, Contains("google/protobuf/timestamp.proto"));
  DescriptorPool pool;
  EXPECT_TRUE(BuildInto(AskOne(request), pool));
}

TEST_F(ReflectionTest, UnknownSymbolAnswersNotFoundAndTheStreamGoesOn) {
  ServerReflectionRequest list;
  list.set_list_services("");
  std::vector<ServerReflectionResponse> responses =
      Ask({SymbolRequest("webhook.v1.NoSuchThing"), list});
  ASSERT_EQ(responses.size(), 2u);
  EXPECT_EQ(responses[0].error_response().error_code(),
            static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_THAT(responses[0].error_response().error_message(),
              HasSubstr("webhook.v1.NoSuchThing"));
  EXPECT_EQ(responses[0].original_request().file_containing_symbol(),
            "webhook.v1.NoSuchThing");
  EXPECT_EQ(responses[1].list_services_response().service_size(), 4);
}

TEST_F(ReflectionTest, OlderV1AlphaProtocolServesTheSameSchemas) {
  auto stub =
      grpc::reflection::v1alpha::ServerReflection::NewStub(server_.channel());
  auto context = Context();
  auto stream = stub->ServerReflectionInfo(context.get());
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_file_containing_symbol("webhook.v1.WebhookService");
  ASSERT_TRUE(stream->Write(request));
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_GT(response.file_descriptor_response().file_descriptor_proto_size(),
            0);
  FileDescriptorProto file;
  ASSERT_TRUE(file.ParseFromString(
      response.file_descriptor_response().file_descriptor_proto(0)));
  EXPECT_EQ(file.name(), "webhook/v1/webhook_service.proto");
  EXPECT_GT(file.source_code_info().location_size(), 0);
}

}  // namespace
}  // namespace webhookd
