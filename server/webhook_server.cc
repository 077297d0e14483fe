#include "server/webhook_server.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/logging.h"
#include "server/status_util.h"
#include "storage/leveldb_store.h"

namespace webhookd {

absl::StatusOr<std::unique_ptr<WebhookServer>> WebhookServer::Start(
    const ServerOptions& options) {
  std::unique_ptr<WebhookServer> server(new WebhookServer());
  WEBHOOKD_ASSIGN_OR_RETURN(server->store_,
                            LevelDbStore::Open(options.data_dir));
  server->endpoints_ = std::make_unique<EndpointManager>(
      *server->store_, server->clock_, options.target_policy);
  WEBHOOKD_RETURN_IF_ERROR(server->endpoints_->Load());

  CurlSenderOptions sender_options;
  sender_options.workers = options.http_workers;
  sender_options.user_agent = options.engine.user_agent;
  server->sender_ = CurlSender::Create(sender_options);
  server->engine_ = std::make_unique<DeliveryEngine>(
      *server->store_, *server->endpoints_, *server->sender_, server->clock_,
      options.engine);
  server->log_ =
      std::make_unique<DeliveryLog>(*server->store_, *server->endpoints_);
  server->blocking_ = std::make_unique<ThreadPool>(options.rpc_threads);
  server->service_ = std::make_unique<WebhookServiceImpl>(
      *server->endpoints_, *server->engine_, *server->log_, *server->blocking_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen,
                     " (address in use or not valid?)"));
  }
  WEBHOOKD_RETURN_IF_ERROR(server->engine_->Start());
  return server;
}

WebhookServer::~WebhookServer() { Shutdown(absl::ZeroDuration()); }

void WebhookServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_ != nullptr) {
    // Stop accepting calls while the engine finishes its attempts; calls
    // still running at the deadline are cancelled.
    std::thread rpc_stopper([this, grace] {
      server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
    });
    if (engine_ != nullptr) engine_->Stop(grace);
    rpc_stopper.join();
  } else if (engine_ != nullptr) {
    engine_->Stop(grace);
  }
  if (sender_ != nullptr) sender_->Shutdown(absl::ZeroDuration());
}

}  // namespace webhookd
