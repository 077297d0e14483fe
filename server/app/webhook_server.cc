#include "server/app/webhook_server.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/descriptor.h"
#include "grpc/grpc.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "protos/served_descriptors.h"
#include "server/api/access_log.h"
#include "server/api/auth.h"
#include "server/api/grpc_status.h"
#include "server/api/rpc_metrics.h"
#include "server/app/listen_address.h"
#include "server/common/host_port.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/common/string_view.h"
#include "server/delivery/sealed_secrets_store.h"
#include "server/http/curl_sender.h"
#include "server/security/address_policy.h"
#include "storage/leveldb/leveldb_store.h"
#include "storage/postgres/postgres_store.h"

namespace webhookd {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the ", what, " file ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Checks that `cert_pem` and `key_pem` hold a certificate and its private
// key, so that a mistake is reported clearly rather than as a failure to
// listen.
absl::Status CheckKeyPair(const std::string& cert_pem,
                          const std::string& key_pem) {
  BIO* cert_bio =
      BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* cert = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr);
  BIO_free(cert_bio);
  BIO* key_bio =
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
  BIO_free(key_bio);
  absl::Status status;
  if (cert == nullptr) {
    status = absl::InvalidArgumentError(
        "--tls_cert: no PEM certificate in the file");
  } else if (key == nullptr) {
    status = absl::InvalidArgumentError(
        "--tls_key: no PEM private key in the file (encrypted keys are not "
        "supported)");
  } else if (X509_check_private_key(cert, key) != 1) {
    status = absl::InvalidArgumentError(
        "--tls_key is not the private key of the --tls_cert certificate");
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  return status;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(
    const ServerOptions& options) {
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert and --tls_key must be given together");
  }
  if (options.tls_cert_file.empty()) {
    if (!options.tls_client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls_client_ca needs --tls_cert and --tls_key");
    }
    return grpc::InsecureServerCredentials();
  }
  WEBHOOKD_ASSIGN_OR_RETURN(std::string cert,
                            ReadFile(options.tls_cert_file, "--tls_cert"));
  WEBHOOKD_ASSIGN_OR_RETURN(std::string key,
                            ReadFile(options.tls_key_file, "--tls_key"));
  WEBHOOKD_RETURN_IF_ERROR(CheckKeyPair(cert, key));
  grpc::SslServerCredentialsOptions ssl(
      GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  if (!options.tls_client_ca_file.empty()) {
    WEBHOOKD_ASSIGN_OR_RETURN(
        ssl.pem_root_certs,
        ReadFile(options.tls_client_ca_file, "--tls_client_ca"));
    ssl.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  pair.private_key = std::move(key);
  pair.cert_chain = std::move(cert);
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  return grpc::SslServerCredentials(ssl);
}

// Warns when a file of secrets (`flag`) can be read by its group or others.
void WarnIfReadableByOthers(const std::string& path, std::string_view flag) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) return;  // Reading it reports why.
  if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    Log(LogLevel::kWarning,
        absl::StrCat(AsAbsl(flag), " ", path,
                     " is readable by group or others (mode ",
                     absl::Hex(info.st_mode & 07777, absl::kZeroPad4),
                     "): chmod 600 it"));
  }
}

// The keys of --secrets_key_file and --secrets_old_key_files.
absl::StatusOr<SecretsKeyring> LoadKeyring(const ServerOptions& options) {
  if (options.secrets_key_file.empty()) {
    if (!options.secrets_old_key_files.empty()) {
      return absl::InvalidArgumentError(
          "--secrets_old_key_files needs --secrets_key_file (the key new "
          "writes use)");
    }
    return SecretsKeyring();
  }
  WarnIfReadableByOthers(options.secrets_key_file, "--secrets_key_file");
  WEBHOOKD_ASSIGN_OR_RETURN(
      SecretsKey current,
      SecretsKey::Load(options.secrets_key_file, "--secrets_key_file"));
  std::vector<SecretsKey> old;
  for (const std::string& path : options.secrets_old_key_files) {
    WarnIfReadableByOthers(path, "--secrets_old_key_files");
    WEBHOOKD_ASSIGN_OR_RETURN(
        SecretsKey key, SecretsKey::Load(path, "--secrets_old_key_files"));
    old.push_back(std::move(key));
  }
  return SecretsKeyring(std::move(current), std::move(old));
}

// Creates the LevelDB directory 0700, or narrows an existing one (and its
// files) to owner-only with a warning: the database holds endpoint secrets.
// Files LevelDB creates later get 0600 from the umask main() sets.
absl::Status PrepareDataDir(const std::string& dir) {
  std::error_code error;
  if (!std::filesystem::exists(dir, error)) {
    std::filesystem::create_directories(dir, error);
    if (error) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--data_dir: cannot create ", dir, ": ", error.message()));
    }
    chmod(dir.c_str(), 0700);
    return absl::OkStatus();
  }
  struct stat info {};
  if (stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("--data_dir: ", dir, " is not a directory"));
  }
  if ((info.st_mode & (S_IRWXG | S_IRWXO)) == 0) return absl::OkStatus();
  Log(LogLevel::kWarning,
      absl::StrCat("--data_dir ", dir, " was open to group or others (mode ",
                   absl::Hex(info.st_mode & 07777, absl::kZeroPad4),
                   "): narrowed to 0700 and its files to 0600"));
  chmod(dir.c_str(), 0700);
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.is_regular_file(error)) {
      std::filesystem::permissions(entry.path(),
                                   std::filesystem::perms::group_all |
                                       std::filesystem::perms::others_all,
                                   std::filesystem::perm_options::remove,
                                   error);
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsLoopbackListenAddress(const std::string& listen) {
  if (absl::StartsWith(listen, "unix:") ||
      absl::StartsWith(listen, "unix-abstract:")) {
    return true;
  }
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return false;  // An IPv6 address must be bracketed.
  }
  if (absl::AsciiStrToLower(host) == "localhost") return true;
  std::optional<IpAddress> address = ParseIpLiteral(host);
  if (!address.has_value()) return false;
  static const Cidr* const kLoopback[] = {
      new Cidr(*ParseCidr("127.0.0.0/8")), new Cidr(*ParseCidr("::1/128")),
      new Cidr(*ParseCidr("::ffff:127.0.0.0/104"))};
  for (const Cidr* cidr : kLoopback) {
    if (cidr->Contains(*address)) return true;
  }
  return false;
}

namespace {

// The HttpSender of DefaultDependencies: libcurl workers sized for
// options.engine.limits.max_in_flight, the address policy checked on connect.
absl::StatusOr<std::unique_ptr<HttpSender>> NewCurlSender(
    const ServerOptions& options) {
  CurlSenderOptions sender_options;
  sender_options.workers = options.http_workers;
  // Every attempt the engine starts runs at once: none waits in a worker's
  // queue behind attempts to an endpoint that hangs.
  const size_t workers = static_cast<size_t>(std::max(1, options.http_workers));
  sender_options.max_transfers_per_worker = static_cast<int>(
      (options.engine.limits.max_in_flight + workers - 1) / workers);
  sender_options.user_agent = options.engine.user_agent;
  sender_options.ca_file = options.target_ca_file;
  sender_options.resolve_overrides = options.test_resolve_overrides;
  if (!options.target_policy.allow_insecure_targets) {
    // The URL check at create time cannot see what a name resolves to when
    // a delivery is made (DNS rebinding): every address is checked again
    // just before connecting.
    sender_options.address_filter = [policy = options.target_policy.addresses](
                                        const struct sockaddr* addr,
                                        socklen_t len, std::string* why) {
      return policy.AllowsConnection(addr, len, why);
    };
  }
  WEBHOOKD_ASSIGN_OR_RETURN(std::unique_ptr<CurlSender> sender,
                            CurlSender::Create(sender_options));
  return sender;
}

// LevelDB under options.data_dir, or the PostgreSQL database of
// options.postgres.
absl::StatusOr<std::unique_ptr<Store>> OpenStore(
    const ServerOptions& options, const LevelDbStoreOptions& store_options) {
  if (!options.postgres.empty()) {
    PostgresStoreOptions postgres;
    postgres.conninfo = options.postgres;
    WEBHOOKD_ASSIGN_OR_RETURN(std::unique_ptr<PostgresStore> store,
                              PostgresStore::Open(postgres));
    return store;
  }
  WEBHOOKD_RETURN_IF_ERROR(PrepareDataDir(options.data_dir));
  WEBHOOKD_ASSIGN_OR_RETURN(
      std::unique_ptr<LevelDbStore> store,
      LevelDbStore::Open(options.data_dir, store_options));
  return store;
}

}  // namespace

absl::StatusOr<ServerDependencies> DefaultDependencies(
    const ServerOptions& options, const LevelDbStoreOptions& store_options) {
  ServerDependencies dependencies;
  WEBHOOKD_ASSIGN_OR_RETURN(dependencies.store,
                            OpenStore(options, store_options));
  WEBHOOKD_ASSIGN_OR_RETURN(dependencies.sender, NewCurlSender(options));
  return dependencies;
}

absl::StatusOr<std::unique_ptr<WebhookServer>> WebhookServer::Start(
    const ServerOptions& options) {
  // Configuration errors before the data directory is opened.
  WEBHOOKD_ASSIGN_OR_RETURN(Configuration configuration, Configure(options));
  WEBHOOKD_ASSIGN_OR_RETURN(ServerDependencies dependencies,
                            DefaultDependencies(options));
  return Launch(options, std::move(configuration), std::move(dependencies));
}

absl::StatusOr<std::unique_ptr<WebhookServer>> WebhookServer::Start(
    const ServerOptions& options, ServerDependencies dependencies) {
  if (dependencies.store == nullptr || dependencies.sender == nullptr) {
    return absl::InvalidArgumentError(
        "WebhookServer::Start: a store and a sender are required");
  }
  WEBHOOKD_ASSIGN_OR_RETURN(Configuration configuration, Configure(options));
  return Launch(options, std::move(configuration), std::move(dependencies));
}

absl::StatusOr<WebhookServer::Configuration> WebhookServer::Configure(
    const ServerOptions& options) {
  Configuration configuration;
  WEBHOOKD_RETURN_IF_ERROR(ValidateListenAddress(options.listen));
  WEBHOOKD_ASSIGN_OR_RETURN(configuration.keyring, LoadKeyring(options));
  if (!options.api_keys_file.empty()) {
    WarnIfReadableByOthers(options.api_keys_file, "--api_keys_file");
    WEBHOOKD_ASSIGN_OR_RETURN(ApiKeys keys,
                              ApiKeys::Load(options.api_keys_file));
    configuration.auth = std::make_unique<Authenticator>(std::move(keys));
  } else if (!IsLoopbackListenAddress(options.listen)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to serve an unauthenticated API on ", options.listen,
        ", which is not a loopback address: give --api_keys_file, or listen "
        "on 127.0.0.1"));
  } else {
    configuration.auth = std::make_unique<Authenticator>();
  }
  WEBHOOKD_ASSIGN_OR_RETURN(configuration.credentials, Credentials(options));
  if (!options.http_listen.empty()) {
    WEBHOOKD_RETURN_IF_ERROR(ParseHostPort(options.http_listen, "--http_listen",
                                           " (e.g. 127.0.0.1:8081)")
                                 .status());
    if (options.api_keys_file.empty() &&
        !IsLoopbackListenAddress(options.http_listen)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "refusing to serve an unauthenticated HTTP/JSON API on ",
          options.http_listen,
          ", which is not a loopback address: give --api_keys_file, or "
          "--http_listen on 127.0.0.1"));
    }
  }
  if (!options.metrics_listen.empty()) {
    WEBHOOKD_RETURN_IF_ERROR(
        ParseMetricsAddress(options.metrics_listen, "--metrics_listen")
            .status());
  }
  return configuration;
}

absl::StatusOr<std::unique_ptr<WebhookServer>> WebhookServer::Launch(
    const ServerOptions& options, Configuration configuration,
    ServerDependencies dependencies) {
  std::shared_ptr<grpc::ServerCredentials> creds =
      std::move(configuration.credentials);
  std::unique_ptr<WebhookServer> server(new WebhookServer());
  server->auth_ = std::move(configuration.auth);
  if (dependencies.clock != nullptr) server->clock_ = dependencies.clock;
  server->secrets_key_id_ = configuration.keyring.current_id();
  // Page tokens are sealed under a key derived from the secrets key, or
  // without one under a key made once and kept in the store: either way
  // valid on every node and across restarts.
  std::optional<std::string> token_key =
      configuration.keyring.DeriveKey("webhookd page tokens");
  // Always wrapped, key or not: a value sealed under a key not configured
  // must stop start-up, not read as empty.
  server->store_ = std::make_unique<SealedSecretsStore>(
      std::move(dependencies.store), std::move(configuration.keyring));
  if (!token_key.has_value()) {
    WEBHOOKD_ASSIGN_OR_RETURN(
        token_key, server->store_->SettingOrInsert("page_token_key",
                                                   PageTokens::NewKey()));
    if (token_key->size() != PageTokens::kKeyBytes) {
      return absl::DataLossError(
          "the stored page token key (setting page_token_key) is damaged");
    }
  }
  server->page_tokens_ = std::make_unique<PageTokens>(*std::move(token_key));
  server->sender_ = std::move(dependencies.sender);
  server->scheduler_ = std::make_unique<Scheduler>(options.engine.limits);
  Metrics* metrics = &NoMetrics();
  if (!options.metrics_listen.empty()) {
    PrometheusMetricsOptions metrics_options;
    metrics_options.listen = options.metrics_listen;
    metrics_options.version = kVersion;
    WEBHOOKD_ASSIGN_OR_RETURN(server->metrics_,
                              PrometheusMetrics::Start(metrics_options));
    server->metrics_->SetQueueSource([scheduler = server->scheduler_.get()] {
      const Scheduler::Counts counts = scheduler->counts();
      return QueueGauges{counts.waiting, counts.held, counts.in_flight};
    });
    metrics = server->metrics_.get();
  }
  server->bus_ = std::make_unique<ChangeBus>();
  server->endpoints_ = std::make_unique<EndpointManager>(
      *server->store_, *server->clock_, options.target_policy,
      *server->scheduler_, *server->bus_, *metrics);
  WEBHOOKD_RETURN_IF_ERROR(server->endpoints_->Load());
  server->engine_ = std::make_unique<DeliveryEngine>(
      *server->store_, *server->endpoints_, *server->scheduler_, *server->bus_,
      *server->sender_, *server->clock_, options.engine, *metrics);
  server->log_ =
      std::make_unique<DeliveryLog>(*server->store_, *server->endpoints_);
  server->blocking_ = std::make_unique<ThreadPool>(options.rpc_threads);
  DeliveryStreamOptions stream_options;
  stream_options.buffer = options.stream_buffer;
  server->hub_ = std::make_unique<DeliveryHub>(
      *server->log_, *server->blocking_, stream_options);
  server->bus_->AddListener(server->hub_.get());
  server->service_ = std::make_unique<WebhookServiceImpl>(
      *server->endpoints_, *server->engine_, *server->log_, *server->blocking_,
      *server->hub_, *server->auth_, *server->page_tokens_);

  // Reflection lists every service with its schema, comments included;
  // gRPC serves the health service without a schema of its own.
  WEBHOOKD_ASSIGN_OR_RETURN(
      server->reflection_schemas_,
      ReflectionSchemas::Create(
          ServedDescriptorSet(),
          {webhook::v1::WebhookService::service_full_name(),
           "grpc.health.v1.Health",
           grpc::reflection::v1::ServerReflection::service_full_name(),
           grpc::reflection::v1alpha::ServerReflection::service_full_name()}));
  server->reflection_v1_ =
      std::make_unique<ReflectionV1Service>(*server->reflection_schemas_);
  server->reflection_v1alpha_ =
      std::make_unique<ReflectionV1AlphaService>(*server->reflection_schemas_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, creds, &server->port_);
  // gRPC sets SO_REUSEPORT by default, so a second server on a port in use
  // would start without error and silently take part of the calls.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  // Bounded under overload: streams per connection, memory and threads,
  // and clients that ping too often are cut off (keepalive enforcement).
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             options.grpc_max_concurrent_streams);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      static_cast<int>(
          absl::ToInt64Milliseconds(options.grpc_min_ping_interval)));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES,
                             options.grpc_max_ping_strikes);
  grpc::ResourceQuota quota("webhookd");
  quota.Resize(options.grpc_memory_limit_bytes);
  quota.SetMaxThreads(options.grpc_max_threads);
  builder.SetResourceQuota(quota);
  builder.RegisterService(server->service_.get());
  builder.RegisterService(server->reflection_v1_.get());
  builder.RegisterService(server->reflection_v1alpha_.get());
  // Interceptors, in the order they see each call: the count of calls
  // running (for shutdown), the access log, the metrics.
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(server->calls_.NewInterceptorFactory());
  if (options.access_log) {
    interceptors.push_back(
        std::make_unique<AccessLogInterceptorFactory>(*server->auth_));
  }
  if (server->metrics_ != nullptr) {
    interceptors.push_back(
        std::make_unique<RpcMetricsInterceptorFactory>(*metrics));
  }
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen,
                     " (address in use or not valid?)"));
  }
  if (!options.http_listen.empty()) {
    RestServerOptions rest;
    rest.listen = options.http_listen;
    rest.tls_cert_file = options.tls_cert_file;
    rest.tls_key_file = options.tls_key_file;
    rest.tls_client_ca_file = options.tls_client_ca_file;
    // Room for the JSON around the largest payload accepted, whose
    // messages_json strings may double in size once escaped.
    rest.max_body_bytes =
        2 * static_cast<size_t>(options.engine.max_payload_bytes) + (64 << 10);
    rest.threads = options.http_threads;
    rest.max_streams = std::max(1, options.http_threads / 2);
    rest.heartbeat = options.http_heartbeat;
    rest.stream_buffer = options.stream_buffer;
    // The routes come from the service's descriptor, google.api.http
    // options included.
    const google::protobuf::ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            webhook::v1::WebhookService::service_full_name());
    if (service == nullptr) {
      return absl::InternalError("no descriptor of the WebhookService");
    }
    grpc::ChannelArguments arguments;
    arguments.SetMaxReceiveMessageSize(-1);
    WEBHOOKD_ASSIGN_OR_RETURN(
        server->rest_,
        RestServer::Start(rest, *service,
                          server->server_->InProcessChannel(arguments)));
  }
  WEBHOOKD_RETURN_IF_ERROR(server->engine_->Start());
  server->retention_ = std::make_unique<LogRetention>(
      *server->store_, *server->clock_, options.log_retention);
  server->retention_->Start();
  return server;
}

absl::StatusOr<size_t> ReencryptSecrets(const ServerOptions& options) {
  WEBHOOKD_ASSIGN_OR_RETURN(SecretsKeyring keyring, LoadKeyring(options));
  if (!keyring.has_current()) {
    return absl::InvalidArgumentError(
        "--reencrypt_secrets needs --secrets_key_file (the key to write "
        "with)");
  }
  WEBHOOKD_ASSIGN_OR_RETURN(std::unique_ptr<Store> inner,
                            OpenStore(options, {}));
  SealedSecretsStore store(std::move(inner), std::move(keyring));
  return store.ResealEndpoints();
}

WebhookServer::~WebhookServer() { Shutdown(absl::ZeroDuration()); }

void WebhookServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (retention_ != nullptr) retention_->Stop();
  // The HTTP/JSON API takes no more connections and ends its event
  // streams; its calls in flight finish as gRPC calls.
  if (rest_ != nullptr) rest_->BeginShutdown();
  // Open streams would hold the gRPC shutdown until its deadline: end them.
  if (hub_ != nullptr) hub_->Shutdown();
  if (server_ != nullptr) {
    // Stop accepting calls while the engine finishes its attempts; calls
    // still running at the deadline are cancelled.
    const absl::Time deadline = absl::Now() + grace;
    absl::Notification rpcs_stopped;
    std::thread rpc_stopper([this, deadline, &rpcs_stopped] {
      server_->Shutdown(absl::ToChronoTime(deadline));
      rpcs_stopped.Notify();
    });
    // gRPC's shutdown also waits until every client has closed its
    // connection, which a client with an idle channel may not do before the
    // deadline: once no call runs, close the connections from this side.
    // Again while the shutdown lasts, for a connection made meanwhile.
    std::thread connection_closer([this, deadline, &rpcs_stopped] {
      while (!rpcs_stopped.HasBeenNotified() &&
             calls_.WaitUntilIdle(deadline)) {
        grpc_server_cancel_all_calls(server_->c_server());
        rpcs_stopped.WaitForNotificationWithTimeout(absl::Milliseconds(100));
      }
    });
    if (engine_ != nullptr) engine_->Stop(grace);
    rpc_stopper.join();
    connection_closer.join();
    if (rest_ != nullptr) rest_->Shutdown();
  } else if (engine_ != nullptr) {
    engine_->Stop(grace);
  }
  if (sender_ != nullptr) sender_->Shutdown(absl::ZeroDuration());
  if (bus_ != nullptr && hub_ != nullptr) {
    bus_->RemoveListener(hub_.get());
  }
}

}  // namespace webhookd
