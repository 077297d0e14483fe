// HttpReceiver: a real HTTP/1.1 server on 127.0.0.1 for tests, recording
// what it receives and answering as programmed.

#ifndef WEBHOOKD_TESTS_SUPPORT_HTTP_RECEIVER_H_
#define WEBHOOKD_TESTS_SUPPORT_HTTP_RECEIVER_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace webhookd::testing {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct ReceivedRequest {
  std::string method;
  std::string path;
  // Sorted by name, case-insensitively; repeated names keep their order.
  HeaderList headers;
  std::string body;
  std::string remote_addr;
  int remote_port = 0;
  absl::Time arrival;

  // Looks names up case-insensitively.
  bool HasHeader(absl::string_view name) const;
  // The first value of header `name`, "" if absent.
  std::string Header(absl::string_view name) const;
  // Every value of header `name`, in the order received.
  std::vector<std::string> HeaderValues(absl::string_view name) const;
};

struct ReceiverResponse {
  int status = 200;
  std::string body;
  HeaderList headers;
  // Waited before answering; Stop() cuts it short. absl::InfiniteDuration()
  // hangs until Stop().
  absl::Duration delay = absl::ZeroDuration();
  // Answered only once Release() (or Stop()) is called: the test decides
  // when an attempt in flight ends.
  bool held = false;
};

// Thread-safe. Serves any method on any path.
class HttpReceiver {
 public:
  using Handler = std::function<ReceiverResponse(const ReceivedRequest&)>;

  struct Options {
    // Connections served at once (one thread each); more wait their turn.
    int threads = 128;
    // How long an idle keep-alive connection is kept open.
    absl::Duration keep_alive_timeout = absl::Seconds(1);
  };

  // Starts listening on an ephemeral port. Fails the current test (and
  // port() returns -1) if it cannot.
  HttpReceiver();
  explicit HttpReceiver(const Options& options);
  HttpReceiver(const HttpReceiver&) = delete;
  HttpReceiver& operator=(const HttpReceiver&) = delete;
  // Calls Stop().
  ~HttpReceiver();

  int port() const { return port_; }
  // "http://127.0.0.1:<port><path>".
  std::string Url(absl::string_view path = "/hook") const;

  // The answer when no handler is set and no pushed response is left
  // (initially 200 with an empty body).
  void SetDefaultResponse(ReceiverResponse response);
  void SetDefaultResponse(int status, std::string body = "",
                          HeaderList headers = {},
                          absl::Duration delay = absl::ZeroDuration());
  void SetDefaultStatus(int status) { SetDefaultResponse(status); }
  // Queues an answer for one request, in order, ahead of the default.
  void PushResponse(ReceiverResponse response);
  void PushResponse(int status, std::string body = "", HeaderList headers = {},
                    absl::Duration delay = absl::ZeroDuration());
  // Answers the held responses (ReceiverResponse::held), those waiting and
  // those to come. Idempotent.
  void Release();
  // Answers every later request; called on server threads, concurrently.
  // Takes precedence over pushed and default responses. `delay` applies.
  void SetHandler(Handler handler);

  // Returns true once at least n requests have arrived (counted before their
  // delay), false after `timeout`.
  bool WaitForRequests(size_t n, absl::Duration timeout);
  std::vector<ReceivedRequest> Requests() const;
  size_t RequestCount() const;

  // Stops serving: cuts delays short, closes connections and joins the
  // server threads. Idempotent.
  void Stop();

 private:
  class Server;

  void Handle(ReceivedRequest request, ReceiverResponse& response);
  // Shuts down the server side of our accepted connections, so that threads
  // waiting on idle keep-alive connections return at once.
  void CloseConnections();

  std::unique_ptr<Server> server_;
  std::thread thread_;
  int port_ = -1;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<ReceivedRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::deque<ReceiverResponse> pushed_ ABSL_GUARDED_BY(mu_);
  ReceiverResponse default_response_ ABSL_GUARDED_BY(mu_);
  Handler handler_ ABSL_GUARDED_BY(mu_);

  absl::Mutex stop_mu_;
  bool stopped_ ABSL_GUARDED_BY(stop_mu_) = false;
};

// A listening TCP socket (close-on-exec) on 127.0.0.1 and a free port:
// returns its descriptor and sets *port, or returns -1 with errno set.
int ListenOnLoopback(int backlog, int* port);

// A loopback port nothing listens on: bound once, then released.
int UnusedPort();

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_HTTP_RECEIVER_H_
