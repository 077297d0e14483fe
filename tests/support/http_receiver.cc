#include "tests/support/http_receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "server/common/sockets.h"
#include "tests/support/eventually.h"

namespace webhookd::testing {
namespace {

// Pseudo headers httplib adds to every request; not on the wire.
bool IsPseudoHeader(const std::string& name) {
  return name == "REMOTE_ADDR" || name == "REMOTE_PORT" ||
         name == "LOCAL_ADDR" || name == "LOCAL_PORT";
}

}  // namespace

// Exposes the listening socket, which httplib keeps protected.
class HttpReceiver::Server : public httplib::Server {
 public:
  int listening_socket() const { return svr_sock_.load(); }
};

bool ReceivedRequest::HasHeader(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return true;
  }
  return false;
}

std::string ReceivedRequest::Header(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

std::vector<std::string> ReceivedRequest::HeaderValues(
    absl::string_view name) const {
  std::vector<std::string> values;
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) values.push_back(value);
  }
  return values;
}

HttpReceiver::HttpReceiver() : HttpReceiver(Options()) {}

HttpReceiver::HttpReceiver(const Options& options)
    : server_(std::make_unique<Server>()) {
  // A client that hangs up mid-response must not kill the test process.
  std::signal(SIGPIPE, SIG_IGN);

  const size_t threads = static_cast<size_t>(std::max(1, options.threads));
  server_->new_task_queue = [threads] {
    return new httplib::ThreadPool(threads);
  };
  server_->set_tcp_nodelay(true);
  // Many requests per connection, so tests can observe connection reuse.
  server_->set_keep_alive_max_count(1000000);
  server_->set_keep_alive_timeout(absl::ToInt64Seconds(
      absl::Ceil(options.keep_alive_timeout, absl::Seconds(1))));
  server_->set_read_timeout(5, 0);
  server_->set_write_timeout(5, 0);

  auto serve = [this](const httplib::Request& req, httplib::Response& res) {
    ReceivedRequest request;
    request.method = req.method;
    request.path = req.path;
    for (const auto& [name, value] : req.headers) {
      if (!IsPseudoHeader(name)) request.headers.emplace_back(name, value);
    }
    request.body = req.body;
    request.remote_addr = req.remote_addr;
    request.remote_port = req.remote_port;
    request.arrival = absl::Now();

    ReceiverResponse response;
    Handle(std::move(request), response);

    res.status = response.status;
    bool has_content_type = false;
    for (const auto& [name, value] : response.headers) {
      if (absl::EqualsIgnoreCase(name, "Content-Type")) {
        has_content_type = true;
      }
      res.set_header(name.c_str(), value);
    }
    if (has_content_type) {
      res.body = std::move(response.body);
    } else if (!response.body.empty()) {
      res.set_content(std::move(response.body), "text/plain");
    }
  };
  const std::string any = ".*";
  server_->Get(any, serve);
  server_->Post(any, serve);
  server_->Put(any, serve);
  server_->Patch(any, serve);
  server_->Delete(any, serve);
  server_->Options(any, serve);

  port_ = server_->bind_to_any_port("127.0.0.1");
  if (port_ <= 0) {
    ADD_FAILURE() << "HttpReceiver: cannot listen on 127.0.0.1";
    port_ = -1;
    return;
  }
  // httplib listens with a backlog of 5; bursts of connections from a
  // client pool would see SYNs dropped and retried a second later.
  ::listen(server_->listening_socket(), SOMAXCONN);

  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // httplib's stop() does nothing before the server thread has marked
  // itself running; wait for that so that Stop() cannot be lost.
  if (!Eventually([this] { return server_->is_running(); })) {
    ADD_FAILURE() << "HttpReceiver did not start";
  }
}

HttpReceiver::~HttpReceiver() { Stop(); }

std::string HttpReceiver::Url(absl::string_view path) const {
  return absl::StrCat("http://127.0.0.1:", port_, path);
}

void HttpReceiver::SetDefaultResponse(ReceiverResponse response) {
  absl::MutexLock lock(&mu_);
  default_response_ = std::move(response);
}

void HttpReceiver::SetDefaultResponse(int status, std::string body,
                                      HeaderList headers,
                                      absl::Duration delay) {
  SetDefaultResponse(ReceiverResponse{status, std::move(body),
                                      std::move(headers), delay,
                                      /*held=*/false});
}

void HttpReceiver::PushResponse(ReceiverResponse response) {
  absl::MutexLock lock(&mu_);
  pushed_.push_back(std::move(response));
}

void HttpReceiver::PushResponse(int status, std::string body,
                                HeaderList headers, absl::Duration delay) {
  PushResponse(ReceiverResponse{status, std::move(body), std::move(headers),
                                delay, /*held=*/false});
}

void HttpReceiver::Release() {
  absl::MutexLock lock(&mu_);
  released_ = true;
}

void HttpReceiver::SetHandler(Handler handler) {
  absl::MutexLock lock(&mu_);
  handler_ = std::move(handler);
}

bool HttpReceiver::WaitForRequests(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return requests_.size() >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

std::vector<ReceivedRequest> HttpReceiver::Requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

size_t HttpReceiver::RequestCount() const {
  absl::MutexLock lock(&mu_);
  return requests_.size();
}

void HttpReceiver::Handle(ReceivedRequest request, ReceiverResponse& response) {
  Handler handler;
  {
    absl::MutexLock lock(&mu_);
    requests_.push_back(request);
    if (handler_) {
      handler = handler_;
    } else if (!pushed_.empty()) {
      response = std::move(pushed_.front());
      pushed_.pop_front();
    } else {
      response = default_response_;
    }
  }
  if (handler) response = handler(request);
  absl::MutexLock lock(&mu_);
  if (response.delay > absl::ZeroDuration()) {
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), response.delay);
  }
  if (response.held) {
    auto answer = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return released_ || stopping_;
    };
    mu_.Await(absl::Condition(&answer));
  }
}

void HttpReceiver::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (!thread_.joinable()) return;
  server_->stop();
  CloseConnections();
  thread_.join();
}

void HttpReceiver::CloseConnections() {
  // httplib keeps no list of its connections; a thread waiting on an idle
  // keep-alive connection only notices stop() after keep_alive_timeout.
  ShutdownConnectionsOnPort(port_);
}

int ListenOnLoopback(int backlog, int* port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      listen(fd, backlog) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const int error = errno;
    close(fd);
    errno = error;
    return -1;
  }
  *port = ntohs(address.sin_port);
  return fd;
}

int UnusedPort() {
  int port = 0;
  const int fd = ListenOnLoopback(1, &port);
  if (fd >= 0) close(fd);
  return port;
}

}  // namespace webhookd::testing
