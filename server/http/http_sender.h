// Sends HTTP POST requests asynchronously. The delivery engine talks to this
// interface; CurlSender is the production implementation.

#ifndef WEBHOOKD_SERVER_HTTP_HTTP_SENDER_H_
#define WEBHOOKD_SERVER_HTTP_HTTP_SENDER_H_

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace webhookd {

struct HttpRequest {
  std::string url;
  // Sent in this order, exactly as given: callers validate them first.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  absl::Duration timeout = absl::Seconds(30);
};

struct HttpResult {
  // HTTP status, 0 when no response was received.
  int status_code = 0;
  // Empty when a response was received; otherwise why not (connection
  // refused, timeout, TLS failure, blocked address...).
  std::string error;
  // No response because the request's (or the connect) timeout expired.
  bool timed_out = false;
  // At most the sender's capture limit (4 KiB), the rest discarded unread.
  std::string body;
  // From the start of the request to the end of the response.
  absl::Duration elapsed;
  // The response's Retry-After header (delay-seconds, or an HTTP-date made
  // relative to when the response arrived); unset when absent or malformed.
  std::optional<absl::Duration> retry_after;
  // The attempt was cut short by Shutdown(): it says nothing about the
  // receiver and should be made again later.
  bool aborted = false;
};

// HttpSender is safe for concurrent use.
class HttpSender {
 public:
  using Callback = std::function<void(HttpResult)>;

  virtual ~HttpSender() = default;

  // Starts a POST of request and returns at once. `done` runs exactly once,
  // on a sender thread, when the attempt has finished; it must not block.
  // After Shutdown() starts, `done` runs at once with an aborted result,
  // inline on the caller's thread: callers must not hold a lock in Send()
  // that `done` takes.
  virtual void Send(HttpRequest request, Callback done) = 0;

  // Finishes or aborts every request in flight (each `done` still runs once)
  // and stops the sender's threads. Requests still running after `grace` are
  // aborted: their result has `aborted` set.
  virtual void Shutdown(absl::Duration grace) = 0;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_HTTP_HTTP_SENDER_H_
