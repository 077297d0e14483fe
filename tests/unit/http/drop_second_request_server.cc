#include "tests/unit/http/drop_second_request_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "tests/support/http_receiver.h"

namespace webhookd::testing {

DropSecondRequestServer::DropSecondRequestServer(Drop drop) : drop_(drop) {
  stop_fd_ = eventfd(0, EFD_CLOEXEC);
  listener_ = ListenOnLoopback(8, &port_);
  if (stop_fd_ < 0 || listener_ < 0) {
    ADD_FAILURE() << "DropSecondRequestServer: " << strerror(errno);
    return;
  }
  thread_ = std::thread([this] { Serve(); });
}

DropSecondRequestServer::~DropSecondRequestServer() {
  Stop();
  if (listener_ >= 0) close(listener_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

std::string DropSecondRequestServer::Url() const {
  return absl::StrCat("http://127.0.0.1:", port_, "/hook");
}

void DropSecondRequestServer::Stop() {
  if (stop_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
}

void DropSecondRequestServer::Serve() {
  while (WaitReadable(listener_)) {
    const int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) ServeConnection(fd);
  }
}

void DropSecondRequestServer::ServeConnection(int fd) {
  std::string buffered;
  if (ReadRequest(fd, buffered)) {
    ++requests_;
    constexpr absl::string_view kOk =
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    // Loopback, a few bytes: one send() takes them all.
    (void)!send(fd, kOk.data(), kOk.size(), MSG_NOSIGNAL);
    if (ReadRequest(fd, buffered)) {
      ++requests_;
      if (drop_ == Drop::kReset) {
        const linger reset{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
      }
    }
  }
  close(fd);
}

bool DropSecondRequestServer::ReadRequest(int fd, std::string& buffered) {
  size_t head_end;
  while ((head_end = buffered.find("\r\n\r\n")) == std::string::npos) {
    char chunk[4096];
    if (!WaitReadable(fd)) return false;
    const ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffered.append(chunk, static_cast<size_t>(n));
  }
  size_t body_length = 0;
  for (absl::string_view line : absl::StrSplit(
           absl::string_view(buffered).substr(0, head_end), "\r\n")) {
    if (absl::StartsWithIgnoreCase(line, "content-length:")) {
      line.remove_prefix(sizeof("content-length:") - 1);
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &body_length)) {
        return false;
      }
    }
  }
  const size_t total = head_end + 4 + body_length;
  while (buffered.size() < total) {
    char chunk[4096];
    if (!WaitReadable(fd)) return false;
    const ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffered.append(chunk, static_cast<size_t>(n));
  }
  buffered.erase(0, total);
  return true;
}

bool DropSecondRequestServer::WaitReadable(int fd) const {
  pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  for (;;) {
    const int ready = poll(fds, 2, -1);
    if (ready < 0 && errno == EINTR) continue;
    return ready > 0 && fds[1].revents == 0;
  }
}

}  // namespace webhookd::testing
