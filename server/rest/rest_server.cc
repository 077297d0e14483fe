#include "server/rest/rest_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/client_context.h"
#include "httplib.h"
#include "server/common/host_port.h"
#include "server/common/sockets.h"
#include "server/common/string_view.h"
#include "server/console/console_assets.h"
#include "server/rest/grpc_bytes.h"
#include "server/rest/http_error.h"
#include "server/rest/stream_call.h"

namespace webhookd {
namespace {

using Metadata = std::vector<std::pair<std::string, std::string>>;

constexpr char kJson[] = "application/json";

void Reply(httplib::Response& response, const HttpError& error) {
  response.status = error.http_status;
  response.set_content(error.ToJson(), kJson);
}

HttpError Error(int http_status, absl::StatusCode code, std::string message) {
  HttpError error;
  error.http_status = http_status;
  error.code = code;
  error.message = std::move(message);
  return error;
}

HttpError FromGrpc(const grpc::Status& status) {
  return HttpError::FromStatus(
      absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                   status.error_message()));
}

// The request headers passed on as gRPC metadata: the API key and the W3C
// trace context.
Metadata MetadataOf(const httplib::Request& request) {
  Metadata metadata;
  for (const char* name : {"authorization", "traceparent", "tracestate"}) {
    const size_t count = request.get_header_value_count(name);
    for (size_t i = 0; i < count; ++i) {
      metadata.emplace_back(name, request.get_header_value(name, i));
    }
  }
  return metadata;
}

// Whether a body's Content-Type is JSON ("application/json", any
// parameters such as "; charset=utf-8").
bool IsJson(const std::string& content_type) {
  const absl::string_view type = absl::StripAsciiWhitespace(
      absl::string_view(content_type).substr(0, content_type.find(';')));
  return absl::EqualsIgnoreCase(type, kJson);
}

// Why httplib answered with `status` before any handler ran.
HttpError TransportError(int status, size_t max_body_bytes) {
  switch (status) {
    case 404:
      return Error(404, absl::StatusCode::kNotFound, "no such route");
    case 413:
      return Error(
          413, absl::StatusCode::kResourceExhausted,
          absl::StrCat("request body larger than ", max_body_bytes, " bytes"));
    case 414:
      return Error(414, absl::StatusCode::kInvalidArgument,
                   "request URI too long");
    default:
      return Error(status, absl::StatusCode::kInvalidArgument,
                   "malformed HTTP request");
  }
}

// The web console's files, and "/" sending browsers to them; false for
// every other path. The files hold no data, so they need no API key: the
// page asks for one when an API call answers 401.
bool ServeConsole(const httplib::Request& request,
                  httplib::Response& response) {
  const bool read = request.method == "GET" || request.method == "HEAD";
  if (read && (request.path == "/" || request.path == "/console")) {
    response.status = 302;
    response.set_header("Location", kConsolePath);
    return true;
  }
  if (!absl::StartsWith(request.path, kConsolePath)) return false;
  if (!read) {
    response.set_header("Allow", "GET, HEAD");
    Reply(response, Error(405, absl::StatusCode::kUnimplemented,
                          absl::StrCat(request.path, " takes GET, HEAD, not ",
                                       request.method)));
    return true;
  }
  const std::optional<ConsoleAsset> asset = FindConsoleAsset(
      absl::string_view(request.path).substr(sizeof(kConsolePath) - 1));
  if (!asset.has_value()) {
    Reply(response, Error(404, absl::StatusCode::kNotFound,
                          absl::StrCat("no console file ", request.path)));
    return true;
  }
  response.status = 200;
  // The files change only with the binary: browsers check again each time.
  response.set_header("Cache-Control", "no-cache");
  // Scripts, styles and calls from webhookd only: no inline script, nothing
  // fetched from elsewhere, never framed.
  response.set_header("Content-Security-Policy",
                      "default-src 'none'; script-src 'self'; "
                      "style-src 'self'; img-src 'self'; connect-src 'self'; "
                      "base-uri 'none'; form-action 'self'; "
                      "frame-ancestors 'none'");
  response.set_header("X-Content-Type-Options", "nosniff");
  response.set_header("X-Frame-Options", "DENY");
  response.set_header("Referrer-Policy", "no-referrer");
  response.set_content(asset->bytes.data(), asset->bytes.size(),
                       std::string(asset->content_type));
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RestServer>> RestServer::Start(
    const RestServerOptions& options,
    const google::protobuf::ServiceDescriptor& service,
    std::shared_ptr<grpc::Channel> channel) {
  absl::StatusOr<HostPort> address =
      ParseHostPort(options.listen, options.flag, " (e.g. 127.0.0.1:8081)");
  if (!address.ok()) return address.status();
  absl::StatusOr<Transcoder> transcoder = Transcoder::Create(service);
  if (!transcoder.ok()) return transcoder.status();
  std::unique_ptr<RestServer> server(
      new RestServer(options, *std::move(transcoder), std::move(channel)));
  if (options.tls_cert_file.empty()) {
    server->http_ = std::make_unique<httplib::Server>();
  } else {
    server->http_ = std::make_unique<httplib::SSLServer>(
        options.tls_cert_file.c_str(), options.tls_key_file.c_str(),
        options.tls_client_ca_file.empty()
            ? nullptr
            : options.tls_client_ca_file.c_str());
  }
  httplib::Server& http = *server->http_;
  if (!http.is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat(
        options.flag, ": cannot load the TLS certificate, key or client CA"));
  }
  const int threads = std::max(2, options.threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_read_timeout(absl::ToChronoSeconds(options.read_timeout));
  http.set_write_timeout(absl::ToChronoSeconds(options.write_timeout));
  http.set_keep_alive_timeout(static_cast<time_t>(
      std::max<int64_t>(1, absl::ToInt64Seconds(options.keep_alive_timeout))));
  // Keep-alive connections serve many calls (httplib closes them after 5
  // by default).
  http.set_keep_alive_max_count(100);
  http.set_payload_max_length(options.max_body_bytes);
  http.set_tcp_nodelay(true);
  // SO_REUSEADDR only (httplib's default adds SO_REUSEPORT, which would let
  // a second server share the port): an address in use is refused.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  RestServer* self = server.get();
  auto handler = [self](const httplib::Request& request,
                        httplib::Response& response) {
    self->Handle(request, response);
  };
  for (auto add : {&httplib::Server::Get, &httplib::Server::Delete}) {
    (http.*add)(".*", handler);
  }
  http.Post(".*", httplib::Server::Handler(handler));
  http.Patch(".*", httplib::Server::Handler(handler));
  http.Put(".*", httplib::Server::Handler(handler));
  const size_t max_body_bytes = options.max_body_bytes;
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [max_body_bytes](const httplib::Request&, httplib::Response& response) {
        if (!response.body.empty()) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        Reply(response, TransportError(response.status, max_body_bytes));
        return httplib::Server::HandlerResponse::Handled;
      }));
  if (address->port == 0) {
    server->port_ = http.bind_to_any_port(address->host);
  } else if (http.bind_to_port(address->host, address->port)) {
    server->port_ = address->port;
  }
  if (server->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, " (", options.flag,
                     "): address in use or not available"));
  }
  auto ended = std::make_shared<std::atomic<bool>>(false);
  server->thread_ = std::thread([self, ended] {
    self->http_->listen_after_bind();
    ended->store(true);
  });
  // httplib's stop() does nothing before its loop runs: wait for it, so
  // that a shutdown right after start-up cannot be missed.
  while (!http.is_running() && !ended->load()) std::this_thread::yield();
  return server;
}

RestServer::RestServer(const RestServerOptions& options, Transcoder transcoder,
                       std::shared_ptr<grpc::Channel> channel)
    : options_(options),
      transcoder_(std::move(transcoder)),
      channel_(std::move(channel)),
      stub_(channel_) {}

RestServer::~RestServer() { Shutdown(); }

bool RestServer::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

size_t RestServer::open_streams() const {
  absl::MutexLock lock(&mu_);
  return streams_.size();
}

void RestServer::BeginShutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    for (StreamCall* stream : streams_) stream->Cancel();
  }
  if (http_ != nullptr) http_->stop();
}

void RestServer::Shutdown() {
  BeginShutdown();
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    for (grpc::ClientContext* call : calls_) call->TryCancel();
  }
  if (thread_.joinable()) {
    CloseConnections();
    thread_.join();
  }
}

void RestServer::CloseConnections() { ShutdownConnectionsOnPort(port_); }

void RestServer::Handle(const httplib::Request& request,
                        httplib::Response& response) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      response.set_header("Connection", "close");
      Reply(response, Error(503, absl::StatusCode::kUnavailable,
                            "the server is shutting down"));
      return;
    }
  }
  if (ServeConsole(request, response)) return;
  const Transcoder::Match match =
      transcoder_.Find(request.method, request.path);
  if (match.route == nullptr) {
    if (match.allowed_methods.empty()) {
      Reply(response,
            Error(404, absl::StatusCode::kNotFound,
                  absl::StrCat("no route ", request.method, " ", request.path,
                               " (README \"HTTP/JSON API\" lists them)")));
    } else {
      response.set_header("Allow", absl::StrJoin(match.allowed_methods, ", "));
      Reply(response,
            Error(405, absl::StatusCode::kUnimplemented,
                  absl::StrCat(request.path, " takes ",
                               absl::StrJoin(match.allowed_methods, ", "),
                               ", not ", request.method)));
    }
    return;
  }
  if (!request.body.empty() && !match.route->body.empty() &&
      !IsJson(request.get_header_value("Content-Type"))) {
    Reply(response,
          Error(415, absl::StatusCode::kInvalidArgument,
                absl::StrCat("the request body must be JSON (Content-Type: "
                             "application/json), not \"",
                             request.get_header_value("Content-Type"), "\"")));
    return;
  }
  QueryParams query(request.params.begin(), request.params.end());
  absl::StatusOr<std::unique_ptr<google::protobuf::Message>> message =
      transcoder_.BuildRequest(match, query, request.body);
  if (!message.ok()) {
    Reply(response, HttpError::FromStatus(message.status()));
    return;
  }
  if (match.route->method->server_streaming()) {
    Stream(match, **message, request, response);
  } else {
    Call(match, **message, request, response);
  }
}

void RestServer::Call(const Transcoder::Match& match,
                      const google::protobuf::Message& message,
                      const httplib::Request& request,
                      httplib::Response& response) {
  grpc::ClientContext context;
  for (const auto& [key, value] : MetadataOf(request)) {
    context.AddMetadata(key, value);
  }
  const grpc::ByteBuffer request_bytes =
      ToByteBuffer(message.SerializeAsString());
  grpc::ByteBuffer response_bytes;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) {
      Reply(response, Error(503, absl::StatusCode::kUnavailable,
                            "the server is shutting down"));
      return;
    }
    calls_.insert(&context);
  }
  absl::Notification done;
  grpc::Status status;
  stub_.UnaryCall(&context, match.route->grpc_method, grpc::StubOptions(),
                  &request_bytes, &response_bytes,
                  [&status, &done](grpc::Status result) {
                    status = std::move(result);
                    done.Notify();
                  });
  done.WaitForNotification();
  {
    absl::MutexLock lock(&mu_);
    calls_.erase(&context);
  }
  for (const auto& [key, value] : context.GetServerTrailingMetadata()) {
    if (key == "idempotent-replayed") {
      response.set_header("Idempotent-Replayed",
                          std::string(value.data(), value.size()));
    }
  }
  if (!status.ok()) {
    Reply(response, FromGrpc(status));
    return;
  }
  std::unique_ptr<google::protobuf::Message> reply =
      Transcoder::NewResponse(*match.route);
  if (!reply->ParseFromString(FromByteBuffer(response_bytes))) {
    Reply(response, Error(500, absl::StatusCode::kInternal,
                          "the service's response could not be read"));
    return;
  }
  response.status = 200;
  response.set_content(Transcoder::ToJson(*reply), kJson);
}

void RestServer::Stream(const Transcoder::Match& match,
                        const google::protobuf::Message& message,
                        const httplib::Request& request,
                        httplib::Response& response) {
  std::shared_ptr<StreamCall> call;
  {
    absl::MutexLock lock(&mu_);
    if (streams_.size() >= static_cast<size_t>(options_.max_streams)) {
      Reply(response,
            Error(503, absl::StatusCode::kUnavailable,
                  absl::StrCat("too many event streams open (at most ",
                               options_.max_streams, "): try again later")));
      return;
    }
    call = std::make_shared<StreamCall>(
        stub_, match.route->grpc_method, message.SerializeAsString(),
        MetadataOf(request), options_.stream_buffer);
    streams_.insert(call.get());
    if (stopping_) call->Cancel();
  }
  // Unregisters the stream when the response is done with it, however it
  // ends; the call's destructor cancels it if it still runs.
  std::shared_ptr<StreamCall> registered(
      call.get(), [this, call](StreamCall* stream) mutable {
        {
          absl::MutexLock lock(&mu_);
          streams_.erase(stream);
        }
        call.reset();
      });
  call.reset();
  // Errors before the stream starts (a bad API key, bad arguments) are
  // answered like those of any other call.
  if (!registered->WaitStarted()) {
    Reply(response, FromGrpc(registered->status()));
    return;
  }
  response.status = 200;
  response.set_header("Cache-Control", "no-cache");
  // Tells nginx not to buffer the stream.
  response.set_header("X-Accel-Buffering", "no");
  const google::protobuf::Descriptor& output =
      *match.route->method->output_type();
  // "delivery" for a response message with one field named so.
  const std::string event =
      output.field_count() == 1 ? output.field(0)->name() : "message";
  const absl::Duration heartbeat = options_.heartbeat;
  response.set_chunked_content_provider(
      "text/event-stream",
      [this, registered, event, heartbeat, route = match.route](
          size_t /*offset*/, httplib::DataSink& sink) {
        std::optional<std::string> bytes = registered->Next(heartbeat);
        if (bytes.has_value()) {
          std::unique_ptr<google::protobuf::Message> update =
              Transcoder::NewResponse(*route);
          if (!update->ParseFromString(*bytes)) return false;
          const std::string text =
              absl::StrCat("event: ", event,
                           "\ndata: ", Transcoder::ToJson(*update), "\n\n");
          return sink.write(text.data(), text.size());
        }
        if (!registered->done()) {
          static constexpr char kHeartbeat[] = ": heartbeat\n\n";
          return sink.write(kHeartbeat, sizeof(kHeartbeat) - 1);
        }
        // The end: say why, unless the client's side ended it.
        std::optional<HttpError> error;
        if (registered->fell_behind()) {
          error = Error(429, absl::StatusCode::kResourceExhausted,
                        "the client fell too far behind the stream: "
                        "reconnect");
        } else if (registered->status().error_code() !=
                   grpc::StatusCode::CANCELLED) {
          error = FromGrpc(registered->status());
        } else if (stopping()) {
          error = Error(503, absl::StatusCode::kUnavailable,
                        "the server is shutting down");
        }
        if (error.has_value()) {
          const std::string text =
              absl::StrCat("event: error\ndata: ", error->ToJson(), "\n\n");
          sink.write(text.data(), text.size());
        }
        sink.done();
        return true;
      });
}

}  // namespace webhookd
