// A running webhookd: storage, delivery engine and gRPC server wired
// together. main.cc builds one from flags; tests build one on port 0.

#ifndef WEBHOOKD_SERVER_WEBHOOK_SERVER_H_
#define WEBHOOKD_SERVER_WEBHOOK_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "server/clock.h"
#include "server/curl_sender.h"
#include "server/delivery_engine.h"
#include "server/delivery_log.h"
#include "server/endpoint_manager.h"
#include "server/thread_pool.h"
#include "server/version.h"
#include "server/webhook_service_impl.h"
#include "storage/store.h"

namespace webhookd {

struct ServerOptions {
  // host:port; port 0 picks a free port (see WebhookServer::port()).
  std::string listen = "127.0.0.1:50051";
  std::string data_dir = "./data";
  TargetPolicy target_policy;
  DeliveryEngineOptions engine;
  // Threads of the HTTP worker pool, each driving one curl multi handle.
  int http_workers = 2;
  // Threads that run RPC work which may block on storage.
  int rpc_threads = 16;
};

// WebhookServer is safe for concurrent use.
class WebhookServer {
 public:
  // Opens storage, resumes queued deliveries and starts serving.
  static absl::StatusOr<std::unique_ptr<WebhookServer>> Start(
      const ServerOptions& options);
  WebhookServer(const WebhookServer&) = delete;
  WebhookServer& operator=(const WebhookServer&) = delete;
  // Shuts down with no grace if Shutdown() was not called.
  ~WebhookServer();

  // The port the server listens on.
  int port() const { return port_; }

  // Stops accepting RPCs, lets attempts in flight finish for up to `grace`,
  // records their outcomes and closes storage. Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  WebhookServer() = default;

  SystemClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<EndpointManager> endpoints_;
  std::unique_ptr<CurlSender> sender_;
  std::unique_ptr<DeliveryEngine> engine_;
  std::unique_ptr<DeliveryLog> log_;
  std::unique_ptr<ThreadPool> blocking_;
  std::unique_ptr<WebhookServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_WEBHOOK_SERVER_H_
