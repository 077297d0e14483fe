#include "tests/support/test_server.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/leveldb/leveldb_store.h"

namespace webhookd::testing {

ServerOptions TestServerOptions(const std::string& data_dir) {
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.data_dir = data_dir;
  options.target_policy.allow_insecure_targets = true;
  options.engine.retry_policy =
      RetryPolicy({absl::Milliseconds(50), absl::Milliseconds(150),
                   absl::Milliseconds(600)});
  options.engine.attempt_timeout = absl::Seconds(2);
  options.rpc_threads = 4;
  return options;
}

TestServer::TestServer(ServerOptions options) : options_(std::move(options)) {}

TestServer::~TestServer() { Stop(); }

void TestServer::Start() {
  // The production dependencies, but LevelDB on storage_env_.
  LevelDbStoreOptions store_options;
  store_options.env = storage_env_;
  absl::StatusOr<ServerDependencies> dependencies =
      DefaultDependencies(options_, store_options);
  ASSERT_TRUE(dependencies.ok()) << dependencies.status();
  absl::StatusOr<std::unique_ptr<WebhookServer>> server =
      WebhookServer::Start(options_, *std::move(dependencies));
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                 grpc::InsecureChannelCredentials());
  stub_ = webhook::v1::WebhookService::NewStub(channel_);
}

void TestServer::Stop(absl::Duration grace) {
  stub_.reset();
  channel_.reset();
  if (server_ != nullptr) server_->Shutdown(grace);
  server_.reset();
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(10));
  return context;
}

}  // namespace webhookd::testing
