// A running webhookd: storage, delivery engine and gRPC server wired
// together. main.cc builds one from flags; tests build one on port 0.

#ifndef WEBHOOKD_SERVER_APP_WEBHOOK_SERVER_H_
#define WEBHOOKD_SERVER_APP_WEBHOOK_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "server/api/delivery_stream.h"
#include "server/api/inflight_calls.h"
#include "server/api/reflection_service.h"
#include "server/api/webhook_service_impl.h"
#include "server/common/clock.h"
#include "server/common/thread_pool.h"
#include "server/common/version.h"
#include "server/delivery/delivery_engine.h"
#include "server/delivery/delivery_log.h"
#include "server/delivery/endpoint_manager.h"
#include "server/delivery/log_retention.h"
#include "server/http/http_sender.h"
#include "server/metrics/prometheus_metrics.h"
#include "server/rest/rest_server.h"
#include "server/security/page_tokens.h"
#include "server/security/secrets_keyring.h"
#include "storage/leveldb/leveldb_store.h"
#include "storage/store.h"

namespace webhookd {

struct ServerOptions {
  // host:port; port 0 picks a free port (see WebhookServer::port()).
  std::string listen = "127.0.0.1:50051";
  std::string data_dir = "./data";
  // A libpq connection string: keep everything in that PostgreSQL database
  // instead of LevelDB under data_dir (README "Running on PostgreSQL").
  std::string postgres;
  TargetPolicy target_policy;
  DeliveryEngineOptions engine;
  // Threads of the HTTP worker pool, each driving one curl multi handle.
  int http_workers = 2;
  // Threads that run RPC work which may block on storage.
  int rpc_threads = 16;
  // StreamDeliveries: live updates a stream may fall behind before it is
  // ended with RESOURCE_EXHAUSTED.
  size_t stream_buffer = 1000;
  // Removal of old delivery records (--log_retention).
  LogRetentionOptions log_retention;
  // host:port to serve Prometheus metrics on, at /metrics; port 0 picks a
  // free one (see WebhookServer::metrics_port()). Empty: no metrics.
  std::string metrics_listen;
  // An info line per finished gRPC call (--access_log).
  bool access_log = false;
  // host:port to serve the HTTP/JSON API on (README "HTTP/JSON API"),
  // over TLS with the gRPC certificate flags; port 0 picks a free one (see
  // WebhookServer::http_port()). Empty: no HTTP/JSON API.
  std::string http_listen;
  // Threads of the HTTP/JSON API, each serving one connection at a time;
  // Server-Sent Events streams may hold at most half of them.
  int http_threads = 16;
  // How often an idle Server-Sent Events stream gets a heartbeat comment.
  absl::Duration http_heartbeat = absl::Seconds(15);

  // Limits that keep gRPC bounded under overload.
  // Concurrent calls (HTTP/2 streams) on one client connection.
  int grpc_max_concurrent_streams = 100;
  // Memory gRPC may use for calls and buffers (a grpc::ResourceQuota).
  size_t grpc_memory_limit_bytes = size_t{512} << 20;
  // Threads gRPC may start for its own work (the same ResourceQuota).
  int grpc_max_threads = 64;
  // Clients may ping without data at most this often; more pings count
  // as strikes, and grpc_max_ping_strikes of them close the connection.
  absl::Duration grpc_min_ping_interval = absl::Seconds(10);
  int grpc_max_ping_strikes = 2;

  // Security (see README "Security").
  // "<key> <user_id>" lines (--api_keys_file). Empty: the API is
  // unauthenticated, and `listen` must then be a loopback address.
  std::string api_keys_file;
  // PEM certificate chain and private key: serve gRPC over TLS. Both or
  // neither.
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM CA certificates: clients must present a certificate they signed
  // (mutual TLS). Needs tls_cert_file.
  std::string tls_client_ca_file;
  // Secrets at rest (README "Operations"): key file whose key seals endpoint
  // secrets and sensitive header values when written, and older key files
  // that still open them. Empty: written in clear.
  std::string secrets_key_file;
  std::vector<std::string> secrets_old_key_files;
  // Largest gRPC request accepted; larger ones get RESOURCE_EXHAUSTED.
  int max_receive_message_bytes = 4 * 1024 * 1024;
  // For tests: PEM CA certificates that receivers' TLS certificates are
  // verified with instead of the system's.
  std::string target_ca_file;
  // For tests: fixed name resolutions for deliveries,
  // "host:port:address" (CURLOPT_RESOLVE syntax).
  std::vector<std::string> test_resolve_overrides;
};

// What a server runs on: its storage, how it sends HTTP and its time
// source. Start(options) uses the production ones (DefaultDependencies);
// tests pass their own, e.g. a store on a file system that injects faults.
struct ServerDependencies {
  std::unique_ptr<Store> store;
  std::unique_ptr<HttpSender> sender;
  // Not owned; must outlive the server. nullptr: the wall clock.
  const Clock* clock = nullptr;
};

// LevelDB under options.data_dir (FailedPrecondition when another process
// has it open), or the PostgreSQL database of options.postgres when set; a
// CurlSender configured from options; the wall clock.
// `store_options` are for tests (e.g. a file system that injects faults).
absl::StatusOr<ServerDependencies> DefaultDependencies(
    const ServerOptions& options,
    const LevelDbStoreOptions& store_options = {});

// webhookd --reencrypt_secrets: opens the storage of `options` and rewrites
// every endpoint whose secrets are not sealed under the key of
// options.secrets_key_file (in clear, or under one of the old keys), then
// closes it. Returns how many endpoints were rewritten.
absl::StatusOr<size_t> ReencryptSecrets(const ServerOptions& options);

// Whether a gRPC listen address is reachable only from this machine:
// "127.0.0.1:port" (any of 127/8), "[::1]:port", "localhost:port" or a Unix
// socket ("unix:path").
bool IsLoopbackListenAddress(const std::string& listen);

// WebhookServer is safe for concurrent use.
class WebhookServer {
 public:
  // Opens storage, resumes queued deliveries and starts serving.
  static absl::StatusOr<std::unique_ptr<WebhookServer>> Start(
      const ServerOptions& options);
  // The same on the given dependencies (store and sender required).
  static absl::StatusOr<std::unique_ptr<WebhookServer>> Start(
      const ServerOptions& options, ServerDependencies dependencies);
  WebhookServer(const WebhookServer&) = delete;
  WebhookServer& operator=(const WebhookServer&) = delete;
  // Shuts down with no grace if Shutdown() was not called.
  ~WebhookServer();

  // The port the server listens on.
  int port() const { return port_; }
  // The port metrics are served on; 0 without options.metrics_listen.
  int metrics_port() const {
    return metrics_ == nullptr ? 0 : metrics_->port();
  }

  // Where this node's queued deliveries are, read at once.
  Scheduler::Counts queue_counts() const { return scheduler_->counts(); }

  // The id of the key secrets are written under (--secrets_key_file); empty
  // without one.
  const std::string& secrets_key_id() const { return secrets_key_id_; }

  // The port of the HTTP/JSON API; 0 without options.http_listen.
  int http_port() const { return rest_ == nullptr ? 0 : rest_->port(); }

  // The StreamDeliveries fan-out (tests read its stream count).
  DeliveryHub& delivery_hub() { return *hub_; }
  // The HTTP/JSON API; nullptr without options.http_listen.
  RestServer* rest_server() { return rest_.get(); }

  // Stops accepting RPCs, lets attempts in flight finish for up to `grace`,
  // records their outcomes and closes storage. Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  WebhookServer() = default;

  // What `options` alone decide, read once: the API keys and the gRPC
  // credentials. Errors: a bad API keys file, an unauthenticated API on a
  // non-loopback address, bad TLS files.
  struct Configuration {
    std::unique_ptr<Authenticator> auth;
    std::shared_ptr<grpc::ServerCredentials> credentials;
    SecretsKeyring keyring;
  };
  static absl::StatusOr<Configuration> Configure(const ServerOptions& options);
  // Wires the server on checked configuration and dependencies and starts
  // it.
  static absl::StatusOr<std::unique_ptr<WebhookServer>> Launch(
      const ServerOptions& options, Configuration configuration,
      ServerDependencies dependencies);

  SystemClock system_clock_;
  const Clock* clock_ = &system_clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Scheduler> scheduler_;
  // Outlives everything that reports to it; stops serving before the
  // scheduler it reads goes.
  std::unique_ptr<PrometheusMetrics> metrics_;
  std::unique_ptr<ChangeBus> bus_;
  std::unique_ptr<EndpointManager> endpoints_;
  std::unique_ptr<HttpSender> sender_;
  std::unique_ptr<DeliveryEngine> engine_;
  std::unique_ptr<LogRetention> retention_;
  std::unique_ptr<DeliveryLog> log_;
  std::unique_ptr<ThreadPool> blocking_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<PageTokens> page_tokens_;
  // Destroyed before `blocking_`, after `server_` (its streams are done).
  std::unique_ptr<DeliveryHub> hub_;
  std::unique_ptr<WebhookServiceImpl> service_;
  std::unique_ptr<ReflectionSchemas> reflection_schemas_;
  std::unique_ptr<ReflectionV1Service> reflection_v1_;
  std::unique_ptr<ReflectionV1AlphaService> reflection_v1alpha_;
  // Outlives `server_`, whose calls it counts.
  InflightCalls calls_;
  std::unique_ptr<grpc::Server> server_;
  // Calls `server_` through an in-process channel: stopped before it.
  std::unique_ptr<RestServer> rest_;
  int port_ = 0;
  std::string secrets_key_id_;
  bool shut_down_ = false;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_APP_WEBHOOK_SERVER_H_
