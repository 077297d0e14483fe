// A real webhookd (storage in a temp dir, gRPC on a free loopback port) and a
// stub connected to it through a real channel.

#ifndef WEBHOOKD_TESTS_SUPPORT_TEST_SERVER_H_
#define WEBHOOKD_TESTS_SUPPORT_TEST_SERVER_H_

#include <memory>
#include <string>

#include "grpcpp/grpcpp.h"
#include "server/app/webhook_server.h"
#include "webhook/v1/webhook_service.grpc.pb.h"

namespace leveldb {
class Env;
}  // namespace leveldb

namespace webhookd::testing {

// Options for tests: insecure targets allowed, a fast retry schedule
// (50ms, 150ms, 600ms) and a 2 s attempt timeout.
ServerOptions TestServerOptions(const std::string& data_dir);

class TestServer {
 public:
  explicit TestServer(ServerOptions options);
  ~TestServer();

  // Starts (or restarts after Stop) the server; fails the test on error.
  void Start();
  void Stop(absl::Duration grace = absl::ZeroDuration());

  webhook::v1::WebhookService::Stub& stub() { return *stub_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  int port() const { return server_->port(); }
  WebhookServer& server() { return *server_; }
  ServerOptions& options() { return options_; }
  // The file system the server's LevelDB uses from the next Start() on
  // (nullptr: the real one). Not owned; must outlive the server.
  void set_storage_env(leveldb::Env* env) { storage_env_ = env; }

 private:
  ServerOptions options_;
  leveldb::Env* storage_env_ = nullptr;
  std::unique_ptr<WebhookServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<webhook::v1::WebhookService::Stub> stub_;
};

// A client context with a 10 s deadline.
std::unique_ptr<grpc::ClientContext> Context();

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_TEST_SERVER_H_
