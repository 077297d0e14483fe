// CurlSender: the production HttpSender, a small pool of libcurl multi
// workers.

#ifndef WEBHOOKD_SERVER_HTTP_CURL_SENDER_H_
#define WEBHOOKD_SERVER_HTTP_CURL_SENDER_H_

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/http/http_sender.h"

namespace webhookd {

struct CurlSenderOptions {
  // Threads, each driving one libcurl multi handle.
  int workers = 2;
  // Transfers running at once on one worker; more wait in its queue.
  int max_transfers_per_worker = 512;
  // Connections one worker keeps open, busy or idle, before closing the
  // oldest idle one (CURLMOPT_MAXCONNECTS). 0 means max_transfers_per_worker.
  int max_connections_per_worker = 0;
  // Connections one worker opens to one host:port
  // (CURLMOPT_MAX_HOST_CONNECTIONS); more transfers wait inside libcurl.
  // 0 means unlimited.
  int max_connections_per_host = 0;
  // At most this much of each response body is kept in HttpResult::body.
  // Up to 64 KiB beyond it are read and discarded so that the connection
  // can be reused; a longer body ends the transfer early, which still counts
  // as a received response.
  size_t max_response_body_bytes = 4096;
  // Sent as User-Agent unless the request has its own. Empty: none.
  std::string user_agent;
  // TLS peer and host name verification.
  bool verify_tls = true;
  // CA bundle in PEM; empty means libcurl's default.
  std::string ca_file;
  // When set, called with every address before connecting to it; returning
  // false refuses the connection and `why` (may be left empty) ends up in
  // HttpResult::error as "blocked address <addr>: <why>". Once one address
  // of a transfer is refused, the transfer connects to none of the host's
  // other addresses either. Called on worker threads, concurrently: must be
  // thread-safe and must not block.
  std::function<bool(const struct sockaddr* addr, socklen_t len,
                     std::string* why)>
      address_filter;
  // For tests: fixed name resolutions in CURLOPT_RESOLVE syntax,
  // "host:port:address[,address...]", e.g. "rebind.test:8443:127.0.0.1".
  std::vector<std::string> resolve_overrides;
};

// Sends each request as one POST on one of `workers` threads; each thread
// runs many transfers at once on one libcurl multi handle, reusing
// connections (keep-alive) between them. A request goes to the worker with
// the fewest transfers in flight; on a tie, to its origin's home worker, so
// that a quiet origin keeps reusing one worker's connections while a busy
// one spreads over every worker (each then keeps its own connections).
// Redirects are not followed (a 3xx comes back as its status code), proxies
// from the environment are ignored and only http and https URLs are allowed.
//
// Thread-safe. `done` callbacks run on worker threads (after Shutdown()
// started: inline, on the thread calling Send()) and must not call
// Shutdown() or destroy the sender.
class CurlSender final : public HttpSender {
 public:
  // Starts the workers. Fails if libcurl cannot be initialised (Internal)
  // or the process has no file descriptor to spare (ResourceExhausted).
  static absl::StatusOr<std::unique_ptr<CurlSender>> Create(
      const CurlSenderOptions& options);

  CurlSender(const CurlSender&) = delete;
  CurlSender& operator=(const CurlSender&) = delete;

  // Calls Shutdown(absl::ZeroDuration()) if it has not run.
  ~CurlSender() override;

  // HttpSender
  void Send(HttpRequest request, Callback done) override;
  void Shutdown(absl::Duration grace) override;

  // Requests accepted whose `done` has not run yet: queued plus running.
  size_t InFlight() const;

 private:
  class Worker;

  explicit CurlSender(const CurlSenderOptions& options);

  const CurlSenderOptions options_;
  std::vector<std::unique_ptr<Worker>> workers_;

  // Serialises joining the worker threads.
  absl::Mutex join_mu_;
  bool joined_ ABSL_GUARDED_BY(join_mu_) = false;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_HTTP_CURL_SENDER_H_
