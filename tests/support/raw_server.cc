#include "tests/support/raw_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/support/http_receiver.h"

namespace webhookd::testing {
namespace {

// Handlers wait at most this long in one read or write, so that they notice
// Stop() even when the peer neither reads nor closes.
constexpr int kPollMs = 50;

std::string ReasonOf(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 302:
      return "Found";
    case 500:
      return "Internal Server Error";
    default:
      return "Status";
  }
}

}  // namespace

RawServer::RawServer(Handler handler, Options options)
    : handler_(std::move(handler)) {
  // TLS writes to a peer that has gone raise SIGPIPE (OpenSSL writes with
  // write(2)); Write() reports the error instead.
  signal(SIGPIPE, SIG_IGN);
  if (!options.tls_cert_file.empty()) {
    ssl_ctx_ = SSL_CTX_new(TLS_server_method());
    if (ssl_ctx_ == nullptr ||
        SSL_CTX_use_certificate_chain_file(
            ssl_ctx_, options.tls_cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ssl_ctx_, options.tls_key_file.c_str(),
                                    SSL_FILETYPE_PEM) != 1) {
      ADD_FAILURE() << "RawServer: cannot load the TLS certificate";
      return;
    }
  }
  listen_fd_ = ListenOnLoopback(128, &port_);
  if (listen_fd_ < 0) {
    ADD_FAILURE() << "RawServer: cannot listen: " << strerror(errno);
    return;
  }
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

RawServer::~RawServer() {
  Stop();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (ssl_ctx_ != nullptr) SSL_CTX_free(ssl_ctx_);
}

std::string RawServer::Url(absl::string_view host,
                           absl::string_view path) const {
  return absl::StrCat(ssl_ctx_ != nullptr ? "https" : "http", "://", host, ":",
                      port_, path);
}

size_t RawServer::connections() const {
  absl::MutexLock lock(&mu_);
  return connections_;
}

size_t RawServer::requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

bool RawServer::WaitForConnections(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return connections_ >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

bool RawServer::WaitForRequests(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return requests_ >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

void RawServer::Stop() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
    for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
  }
  if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  {
    absl::MutexLock lock(&mu_);
    threads.swap(threads_);
  }
  for (std::thread& thread : threads) thread.join();
}

void RawServer::AcceptLoop() {
  while (!stopping_) {
    pollfd waiting{listen_fd_, POLLIN, 0};
    if (poll(&waiting, 1, kPollMs) <= 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    absl::MutexLock lock(&mu_);
    ++connections_;
    if (stopped_) {
      close(fd);
      return;
    }
    open_fds_.push_back(fd);
    threads_.emplace_back([this, fd] { Serve(fd); });
  }
}

void RawServer::Serve(int fd) {
  SSL* ssl = nullptr;
  bool ready = true;
  if (ssl_ctx_ != nullptr) {
    ssl = SSL_new(ssl_ctx_);
    SSL_set_fd(ssl, fd);
    // Blocking: Stop() shuts the socket down, which ends the handshake.
    ready = SSL_accept(ssl) == 1;
  }
  if (ready) {
    Connection connection(*this, fd, ssl);
    handler_(connection);
    if (ssl != nullptr) SSL_shutdown(ssl);
  }
  if (ssl != nullptr) SSL_free(ssl);
  {
    absl::MutexLock lock(&mu_);
    open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd),
                    open_fds_.end());
  }
  close(fd);
}

bool RawServer::Connection::stopping() const { return server_.stopping_; }

int RawServer::Connection::ReadSome(char* data, int size) {
  while (!stopping()) {
    if (ssl_ == nullptr || SSL_pending(ssl_) == 0) {
      pollfd waiting{fd_, POLLIN, 0};
      const int ready = poll(&waiting, 1, kPollMs);
      if (ready == 0) continue;
      if (ready < 0) return -1;
    }
    const int n = ssl_ != nullptr ? SSL_read(ssl_, data, size)
                                  : static_cast<int>(recv(fd_, data, size, 0));
    return n;
  }
  return -1;
}

bool RawServer::Connection::ReadRequest(std::string* request) {
  size_t head_end;
  while ((head_end = buffered_.find("\r\n\r\n")) == std::string::npos) {
    char chunk[16384];
    const int n = ReadSome(chunk, sizeof(chunk));
    if (n <= 0) return false;
    buffered_.append(chunk, n);
  }
  size_t body_length = 0;
  for (absl::string_view line : absl::StrSplit(
           absl::string_view(buffered_).substr(0, head_end), "\r\n")) {
    absl::string_view value = line;
    if (absl::StartsWithIgnoreCase(line, "content-length:")) {
      value.remove_prefix(sizeof("content-length:") - 1);
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(value), &body_length)) {
        return false;
      }
    }
  }
  const size_t total = head_end + 4 + body_length;
  while (buffered_.size() < total) {
    char chunk[16384];
    const int n = ReadSome(chunk, sizeof(chunk));
    if (n <= 0) return false;
    buffered_.append(chunk, n);
  }
  *request = buffered_.substr(0, total);
  buffered_.erase(0, total);
  absl::MutexLock lock(&server_.mu_);
  ++server_.requests_;
  return true;
}

bool RawServer::Connection::Write(absl::string_view data) {
  while (!data.empty()) {
    if (stopping()) return false;
    pollfd waiting{fd_, POLLOUT, 0};
    const int ready = poll(&waiting, 1, kPollMs);
    if (ready == 0) continue;
    if (ready < 0 || (waiting.revents & (POLLERR | POLLHUP))) return false;
    const int n =
        ssl_ != nullptr
            ? SSL_write(ssl_, data.data(), static_cast<int>(data.size()))
            : static_cast<int>(send(fd_, data.data(), data.size(),
                                    MSG_NOSIGNAL | MSG_DONTWAIT));
    if (n <= 0) {
      if (ssl_ == nullptr && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        continue;
      }
      return false;
    }
    server_.bytes_written_ += static_cast<size_t>(n);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool RawServer::Connection::PeerClosed(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!stopping()) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    if (ssl_ == nullptr || SSL_pending(ssl_) == 0) {
      pollfd waiting{fd_, POLLIN, 0};
      const int ready = poll(&waiting, 1,
                             static_cast<int>(std::min<int64_t>(
                                 absl::ToInt64Milliseconds(
                                     absl::Ceil(left, absl::Milliseconds(1))),
                                 kPollMs)));
      if (ready == 0) continue;
      if (ready < 0) return true;
    }
    char dropped[4096];
    const int n =
        ssl_ != nullptr
            ? SSL_read(ssl_, dropped, sizeof(dropped))
            : static_cast<int>(recv(fd_, dropped, sizeof(dropped), 0));
    if (n <= 0) return true;
  }
  return true;
}

void RawServer::Connection::ResetOnClose() {
  // Lingering with a zero timeout makes close() send RST, not FIN.
  linger reset{1, 0};
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
}

RawServer::Handler RespondWith(int status, std::string body,
                               std::string extra_headers) {
  return [status, body = std::move(body),
          extra_headers =
              std::move(extra_headers)](RawServer::Connection& connection) {
    std::string request;
    while (connection.ReadRequest(&request)) {
      const std::string response =
          absl::StrCat("HTTP/1.1 ", status, " ", ReasonOf(status),
                       "\r\nContent-Length: ", body.size(), "\r\n",
                       extra_headers, "\r\n", body);
      if (!connection.Write(response)) return;
    }
  };
}

RawServer::Handler ResetMidResponse() {
  return [](RawServer::Connection& connection) {
    std::string request;
    if (!connection.ReadRequest(&request)) return;
    connection.Write(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        "Content-Length: 1000\r\n\r\n0123456789");
    connection.ResetOnClose();
  };
}

RawServer::Handler SlowDrip(absl::Duration interval, size_t content_length) {
  return [interval, content_length](RawServer::Connection& connection) {
    std::string request;
    if (!connection.ReadRequest(&request)) return;
    if (!connection.Write(
            absl::StrCat("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         "Content-Length: ",
                         content_length, "\r\n\r\n"))) {
      return;
    }
    // The pace of the drip is the behaviour under test: the wait ends
    // early when the client hangs up.
    for (size_t sent = 0; sent < content_length; ++sent) {
      if (connection.PeerClosed(interval) || !connection.Write("x")) return;
    }
  };
}

RawServer::Handler Hang(const absl::Notification* release) {
  return [release](RawServer::Connection& connection) {
    std::string request;
    if (!connection.ReadRequest(&request)) return;
    if (release == nullptr) {
      connection.PeerClosed(absl::InfiniteDuration());
      return;
    }
    // Looks at `release` between short waits on the connection.
    while (!release->HasBeenNotified()) {
      if (connection.PeerClosed(absl::Milliseconds(kPollMs))) return;
    }
    connection.Write(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
  };
}

}  // namespace webhookd::testing
