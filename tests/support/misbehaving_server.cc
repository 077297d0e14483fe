#include "tests/support/misbehaving_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/support/http_receiver.h"

namespace webhookd::testing {
namespace {

// How often blocked threads look at the stop flag.
constexpr absl::Duration kPollSlice = absl::Milliseconds(20);
constexpr size_t kBodyLength = 1000;

bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

MisbehavingServer::MisbehavingServer(Behavior behavior,
                                     absl::Duration drip_interval)
    : behavior_(behavior), drip_interval_(drip_interval) {
  std::signal(SIGPIPE, SIG_IGN);
  listener_ = ListenOnLoopback(SOMAXCONN, &port_);
  if (listener_ < 0) {
    ADD_FAILURE() << "MisbehavingServer: cannot listen on 127.0.0.1";
    return;
  }
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

MisbehavingServer::~MisbehavingServer() { Stop(); }

std::string MisbehavingServer::Url(absl::string_view path) const {
  return absl::StrCat("http://127.0.0.1:", port_, path);
}

bool MisbehavingServer::WaitForRequests(int n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return requests_ >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

int MisbehavingServer::RequestCount() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

void MisbehavingServer::Stop() {
  if (stopping_.exchange(true)) return;
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> connections;
  {
    absl::MutexLock lock(&mu_);
    connections.swap(connections_);
  }
  for (std::thread& thread : connections) thread.join();
  if (listener_ >= 0) close(listener_);
}

bool MisbehavingServer::WaitReadable(int fd, absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (!stopping()) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    pollfd entry{fd, POLLIN, 0};
    const int ms = static_cast<int>(
        absl::ToInt64Milliseconds(std::min(left, kPollSlice)) + 1);
    if (poll(&entry, 1, ms) > 0) return true;
  }
  return false;
}

void MisbehavingServer::AcceptLoop() {
  while (!stopping()) {
    if (!WaitReadable(listener_, absl::InfiniteDuration())) continue;
    const int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    absl::MutexLock lock(&mu_);
    connections_.emplace_back([this, fd] {
      Serve(fd);
      close(fd);
    });
  }
}

bool MisbehavingServer::ReadRequest(int fd) {
  std::string data;
  size_t wanted = std::string::npos;
  while (data.size() < wanted) {
    if (!WaitReadable(fd, absl::Seconds(30))) return false;
    char buffer[16384];
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n <= 0) return false;
    data.append(buffer, static_cast<size_t>(n));
    const size_t end = data.find("\r\n\r\n");
    if (wanted == std::string::npos && end != std::string::npos) {
      size_t body_length = 0;
      const std::string head = absl::AsciiStrToLower(data.substr(0, end));
      const size_t at = head.find("\r\ncontent-length:");
      if (at != std::string::npos) {
        const size_t from = at + 17;
        absl::string_view value(head);
        value = value.substr(from, head.find("\r\n", from) - from);
        (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(value), &body_length);
      }
      wanted = end + 4 + body_length;
    }
  }
  absl::MutexLock lock(&mu_);
  ++requests_;
  return true;
}

void MisbehavingServer::Serve(int fd) {
  if (!ReadRequest(fd)) return;
  const std::string head = absl::StrCat(
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ",
      kBodyLength, "\r\n\r\n");
  switch (behavior_) {
    case Behavior::kResetMidResponse: {
      WriteAll(fd, absl::StrCat(head, "0123456789"));
      // Lingering with a zero timeout makes close() send RST, not FIN.
      linger reset{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
      return;
    }
    case Behavior::kSlowDrip: {
      if (!WriteAll(fd, head)) return;
      for (size_t sent = 0; sent < kBodyLength && !stopping(); ++sent) {
        // Wakes early only when the client closes (or sends something).
        if (WaitReadable(fd, drip_interval_)) {
          char byte;
          if (read(fd, &byte, 1) <= 0) return;
        }
        if (!WriteAll(fd, "x")) return;
      }
      return;
    }
    case Behavior::kHang: {
      // Until the client gives up (EOF or reset) or Stop().
      while (WaitReadable(fd, absl::InfiniteDuration())) {
        char buffer[1024];
        if (read(fd, buffer, sizeof(buffer)) <= 0) return;
      }
      return;
    }
  }
}

}  // namespace webhookd::testing
