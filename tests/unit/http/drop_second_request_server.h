// DropSecondRequestServer: a loopback HTTP/1.1 server for the one case
// where libcurl would send a request again by itself, a reused keep-alive
// connection that dies before any response.
//
// Here, beside its only test, rather than in tests/support: it can move
// there once the test-support rewrite has landed.

#ifndef WEBHOOKD_TESTS_UNIT_HTTP_DROP_SECOND_REQUEST_SERVER_H_
#define WEBHOOKD_TESTS_UNIT_HTTP_DROP_SECOND_REQUEST_SERVER_H_

#include <atomic>
#include <string>
#include <thread>

namespace webhookd::testing {

// Serves connections one at a time. On each, answers the first request with
// "200 OK" (keep-alive) and, after reading the second in full, drops the
// connection without a word. Counts every whole request it reads.
class DropSecondRequestServer {
 public:
  enum class Drop {
    kReset,  // RST: SO_LINGER 0, then close().
    kClose,  // FIN: an orderly close().
  };

  // Starts listening on an ephemeral port; fails the current test if it
  // cannot.
  explicit DropSecondRequestServer(Drop drop);
  DropSecondRequestServer(const DropSecondRequestServer&) = delete;
  DropSecondRequestServer& operator=(const DropSecondRequestServer&) = delete;
  // Calls Stop().
  ~DropSecondRequestServer();

  // "http://127.0.0.1:<port>/hook".
  std::string Url() const;

  // Whole requests read so far, on every connection.
  int requests() const { return requests_.load(); }

  // Closes the connection being served, stops accepting and joins the
  // thread. Idempotent.
  void Stop();

 private:
  void Serve();
  // Handles one connection until it is dropped, the peer closes or Stop().
  void ServeConnection(int fd);
  // Reads one request head and its Content-Length body; false once the
  // peer has closed or Stop() was called.
  bool ReadRequest(int fd, std::string& buffered);
  // Waits until fd is readable; false once Stop() was called.
  bool WaitReadable(int fd) const;

  const Drop drop_;
  int listener_ = -1;
  int port_ = -1;
  int stop_fd_ = -1;  // An eventfd, readable once Stop() was called.
  std::thread thread_;
  std::atomic<int> requests_{0};
};

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_UNIT_HTTP_DROP_SECOND_REQUEST_SERVER_H_
