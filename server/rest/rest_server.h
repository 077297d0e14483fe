// The HTTP/JSON API: an HTTP server (cpp-httplib) whose requests are
// transcoded (server/rest/transcoder.h) into calls of the gRPC service
// through a channel to the same process's gRPC server, so that API keys,
// validation, access log, metrics and tenant isolation are gRPC's own.

#ifndef WEBHOOKD_SERVER_REST_REST_SERVER_H_
#define WEBHOOKD_SERVER_REST_REST_SERVER_H_

#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "server/rest/transcoder.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace grpc {
class ClientContext;
}  // namespace grpc

namespace webhookd {

class StreamCall;

struct RestServerOptions {
  // host:port; port 0 picks a free one (see RestServer::port()).
  std::string listen;
  // The flag `listen` came from, named in errors.
  std::string flag = "--http_listen";
  // PEM files: serve HTTPS with this certificate chain and key; with
  // tls_client_ca_file, require client certificates that CA signed.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // Largest request body accepted; larger ones are answered 413 unread.
  size_t max_body_bytes = 1 << 20;
  // Threads serving connections, each one connection at a time; more wait.
  int threads = 16;
  // Server-Sent Events streams open at once (each holds a thread); more
  // are answered 503. At most threads - 1, so that calls are still served.
  int max_streams = 8;
  // Time limits of reading a request and writing a response, and of an
  // idle keep-alive connection.
  absl::Duration read_timeout = absl::Seconds(30);
  absl::Duration write_timeout = absl::Seconds(30);
  absl::Duration keep_alive_timeout = absl::Seconds(5);
  // How often an idle Server-Sent Events stream gets a comment line, so
  // that proxies keep it open and a client gone is noticed.
  absl::Duration heartbeat = absl::Seconds(15);
  // Messages a Server-Sent Events stream may fall behind before it ends.
  size_t stream_buffer = 1000;
};

// Safe for concurrent use.
class RestServer {
 public:
  // Starts serving the routes of `service`'s google.api.http options by
  // calling it on `channel`. FailedPrecondition or Unavailable naming the
  // flag if the address is bad or in use (the port is never shared).
  static absl::StatusOr<std::unique_ptr<RestServer>> Start(
      const RestServerOptions& options,
      const google::protobuf::ServiceDescriptor& service,
      std::shared_ptr<grpc::Channel> channel);
  RestServer(const RestServer&) = delete;
  RestServer& operator=(const RestServer&) = delete;
  // Calls Shutdown().
  ~RestServer();

  int port() const { return port_; }
  // Server-Sent Events streams open now.
  size_t open_streams() const;

  // Stops accepting connections and ends every Server-Sent Events stream;
  // calls in flight go on, and further requests on open connections are
  // answered 503. Idempotent; returns at once.
  void BeginShutdown();
  // BeginShutdown, then cancels the calls still in flight, closes the
  // connections and waits for the serving threads. Idempotent.
  void Shutdown();

 private:
  RestServer(const RestServerOptions& options, Transcoder transcoder,
             std::shared_ptr<grpc::Channel> channel);

  bool stopping() const;
  void Handle(const httplib::Request& request, httplib::Response& response);
  // A unary call of `match`'s route.
  void Call(const Transcoder::Match& match,
            const google::protobuf::Message& message,
            const httplib::Request& request, httplib::Response& response);
  // A server-streaming call of `match`'s route, relayed as Server-Sent
  // Events.
  void Stream(const Transcoder::Match& match,
              const google::protobuf::Message& message,
              const httplib::Request& request, httplib::Response& response);
  // Shuts down the server side of every accepted connection, so that
  // threads waiting on idle keep-alive connections return at once.
  void CloseConnections();

  const RestServerOptions options_;
  const Transcoder transcoder_;
  std::shared_ptr<grpc::Channel> channel_;
  grpc::GenericStub stub_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  // Unary calls and streams in flight, cancelled at shutdown.
  absl::flat_hash_set<grpc::ClientContext*> calls_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<StreamCall*> streams_ ABSL_GUARDED_BY(mu_);
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_REST_REST_SERVER_H_
