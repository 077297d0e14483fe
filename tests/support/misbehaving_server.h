// A raw HTTP server on 127.0.0.1 that reads each request and then
// misbehaves in one chosen way, for tests of faulty receivers that a
// well-behaved HTTP library cannot imitate.

#ifndef WEBHOOKD_TESTS_SUPPORT_MISBEHAVING_SERVER_H_
#define WEBHOOKD_TESTS_SUPPORT_MISBEHAVING_SERVER_H_

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace webhookd::testing {

// Thread-safe. One request per connection; each connection has a thread.
class MisbehavingServer {
 public:
  enum class Behavior {
    // Sends "200 OK" with a Content-Length of 1000 and 10 bytes of body,
    // then resets the connection (RST).
    kResetMidResponse,
    // Sends "200 OK" with a Content-Length of 1000, then one byte every
    // drip interval.
    kSlowDrip,
    // Reads the request and never answers.
    kHang,
  };

  // Starts listening on an ephemeral port; fails the current test if it
  // cannot.
  explicit MisbehavingServer(Behavior behavior, absl::Duration drip_interval =
                                                    absl::Milliseconds(100));
  MisbehavingServer(const MisbehavingServer&) = delete;
  MisbehavingServer& operator=(const MisbehavingServer&) = delete;
  // Calls Stop().
  ~MisbehavingServer();

  int port() const { return port_; }
  // "http://127.0.0.1:<port><path>".
  std::string Url(absl::string_view path = "/hook") const;

  // Returns true once n whole requests have been read, false after timeout.
  bool WaitForRequests(int n, absl::Duration timeout);
  int RequestCount() const;

  // Closes every connection and joins the threads. Idempotent.
  void Stop();

 private:
  void AcceptLoop();
  void Serve(int fd);
  // Reads one request head and its Content-Length body; false if the peer
  // went away or Stop() was called first.
  bool ReadRequest(int fd);
  // Waits until fd is readable, Stop() is called or `timeout` passes.
  bool WaitReadable(int fd, absl::Duration timeout) const;
  bool stopping() const { return stopping_.load(); }

  const Behavior behavior_;
  const absl::Duration drip_interval_;
  int listener_ = -1;
  int port_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;

  mutable absl::Mutex mu_;
  int requests_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> connections_ ABSL_GUARDED_BY(mu_);
};

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_MISBEHAVING_SERVER_H_
