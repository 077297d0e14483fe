// RawServer: a bare TCP (optionally TLS) server on 127.0.0.1 for tests of
// what reaches the network. It counts every connection it accepts, before
// any TLS or HTTP, so a test can assert that nothing connected at all; and
// its handlers write raw bytes, so they can misbehave as faulty or hostile
// receivers do in ways a well-behaved HTTP library cannot imitate (reset
// mid-response, drip, hang, send an endless body).

#ifndef WEBHOOKD_TESTS_SUPPORT_RAW_SERVER_H_
#define WEBHOOKD_TESTS_SUPPORT_RAW_SERVER_H_

#include <openssl/ssl.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace webhookd::testing {

class RawServer {
 public:
  struct Options {
    // PEM files; when set, every connection is TLS.
    std::string tls_cert_file;
    std::string tls_key_file;
  };

  // One accepted connection, handled on its own thread.
  class Connection {
   public:
    // Reads one HTTP/1.1 request (head and Content-Length body) into
    // `*request`. False on end of stream, error or Stop().
    bool ReadRequest(std::string* request);
    // Writes all of `data`. False once the peer has gone or on Stop().
    bool Write(absl::string_view data);
    // Waits up to `timeout` (absl::InfiniteDuration(): no limit) for the
    // peer to close the connection, reading and dropping what it sends.
    // True once it has closed or on Stop(); false after `timeout`.
    bool PeerClosed(absl::Duration timeout);
    // Makes the end of the handler reset the connection (RST) rather than
    // close it (FIN).
    void ResetOnClose();
    // Whether Stop() was called: long-running handlers should return.
    bool stopping() const;

   private:
    friend class RawServer;
    Connection(RawServer& server, int fd, SSL* ssl)
        : server_(server), fd_(fd), ssl_(ssl) {}
    int ReadSome(char* data, int size);

    RawServer& server_;
    const int fd_;
    SSL* const ssl_;  // nullptr for plain TCP.
    std::string buffered_;
  };

  using Handler = std::function<void(Connection&)>;

  // Starts listening on an ephemeral port; fails the current test (and
  // port() returns -1) if it cannot.
  explicit RawServer(Handler handler, Options options = {});
  RawServer(const RawServer&) = delete;
  RawServer& operator=(const RawServer&) = delete;
  ~RawServer();

  int port() const { return port_; }
  // "<scheme>://<host>:<port><path>", https when TLS is on.
  std::string Url(absl::string_view host = "127.0.0.1",
                  absl::string_view path = "/hook") const;

  // Connections accepted so far.
  size_t connections() const;
  // Requests read by Connection::ReadRequest so far.
  size_t requests() const;
  // Bytes written to all connections so far.
  size_t bytes_written() const { return bytes_written_.load(); }
  // True once at least n connections were accepted, false after `timeout`.
  bool WaitForConnections(size_t n, absl::Duration timeout);
  // True once at least n requests were read, false after `timeout`.
  bool WaitForRequests(size_t n, absl::Duration timeout);

  // Stops accepting, wakes every handler (reads and writes fail) and joins
  // the threads. Idempotent.
  void Stop();

 private:
  void AcceptLoop();
  void Serve(int fd);

  const Handler handler_;
  SSL_CTX* ssl_ctx_ = nullptr;
  int listen_fd_ = -1;
  int port_ = -1;
  std::thread accept_thread_;
  std::atomic<size_t> bytes_written_{0};
  std::atomic<bool> stopping_{false};

  mutable absl::Mutex mu_;
  size_t connections_ ABSL_GUARDED_BY(mu_) = 0;
  size_t requests_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int> open_fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

// Handlers for RawServer.

// Answers every request on the connection with `status` and `body`
// (HTTP/1.1, keep-alive) until the peer closes.
RawServer::Handler RespondWith(int status, std::string body = "",
                               std::string extra_headers = "");

// Reads a request, sends "200 OK" with a Content-Length of 1000 and 10
// bytes of the body, then resets the connection (RST).
RawServer::Handler ResetMidResponse();

// Reads a request, sends "200 OK" with a Content-Length of
// `content_length`, then one byte of the body every `interval` until the
// peer closes.
RawServer::Handler SlowDrip(absl::Duration interval,
                            size_t content_length = 1000);

// Reads a request and answers nothing until the peer closes; or, once
// `release` (if given, it must outlive the server) is notified, answers
// 503.
RawServer::Handler Hang(const absl::Notification* release = nullptr);

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_RAW_SERVER_H_
