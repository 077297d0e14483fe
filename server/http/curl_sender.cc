#include "server/http/curl_sender.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <curl/header.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <deque>
#include <functional>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/common/status_macros.h"
#include "server/http/curl_error.h"
#include "server/http/retry_after.h"

namespace webhookd {
namespace {

// Bytes of an over-long response body read and thrown away past the capture
// limit. A body ending within this allowance leaves the connection reusable;
// a longer one is cut off, costing the connection but not the bandwidth.
constexpr size_t kDrainAllowance = 64 * 1024;
constexpr absl::Duration kMaxConnectTimeout = absl::Seconds(10);
// How long a worker sleeps at most when libcurl has no timer pending; Send()
// and Shutdown() wake it.
constexpr absl::Duration kMaxPoll = absl::Seconds(1);
// Ready sockets handled per epoll_wait().
constexpr int kMaxEvents = 256;

constexpr absl::string_view kShuttingDown = "sender is shutting down";
constexpr absl::string_view kAborted = "aborted: shutting down";

bool GlobalInit() {
  // A function-local static: initialised exactly once, thread-safely.
  static const bool ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  return ok;
}

std::string FormatAddress(const struct sockaddr* addr) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (addr->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr,
              text, sizeof(text));
  } else if (addr->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr,
              text, sizeof(text));
  }
  return text;
}

HttpResult ErrorResult(absl::string_view error) {
  HttpResult result;
  result.error = std::string(error);
  return result;
}

// A request cut short by Shutdown(): made again on the next run.
HttpResult AbortedResult(absl::string_view error) {
  HttpResult result = ErrorResult(error);
  result.aborted = true;
  return result;
}

// A header line for curl_slist. "Name:" would make libcurl drop the header,
// "Name;" sends it with an empty value.
std::string HeaderLine(const std::string& name, const std::string& value) {
  if (value.empty()) return absl::StrCat(name, ";");
  return absl::StrCat(name, ": ", value);
}

// "scheme://authority" of url, or as much of that as is there.
std::string_view Origin(std::string_view url) {
  size_t scheme_end = url.find("://");
  size_t start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  return url.substr(0, url.find_first_of("/?#", start));
}

bool HasHeader(const HttpRequest& request, absl::string_view name) {
  for (const auto& [key, value] : request.headers) {
    if (absl::EqualsIgnoreCase(key, name)) return true;
  }
  return false;
}

}  // namespace

// One thread, one multi handle, many transfers, driven by epoll and
// curl_multi_socket_action(): each turn of the loop costs in proportion to
// the sockets that are ready, not to every transfer. (curl_multi_perform()
// looks at every transfer each time: with thousands of attempts hanging on
// slow endpoints, that cost half the healthy throughput; BENCHMARKS.md.)
// Everything below mu_ is shared with Send()/Shutdown(); the rest belongs to
// the worker thread.
class CurlSender::Worker {
 public:
  Worker(const CurlSenderOptions& options, int index)
      : options_(options),
        index_(index),
        max_transfers_(static_cast<size_t>(
            std::max(1, options.max_transfers_per_worker))) {}

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  ~Worker() {
    CleanUpCurl();
    curl_slist_free_all(resolve_);
    if (wake_fd_ >= 0) close(wake_fd_);
    if (epoll_fd_ >= 0) close(epoll_fd_);
  }

  // Creates the multi handle and the descriptors; once, before Start().
  absl::Status Init() {
    multi_ = curl_multi_init();
    if (multi_ == nullptr) {
      return absl::InternalError("CurlSender: curl_multi_init failed");
    }
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) return absl::ErrnoToStatus(errno, "CurlSender: eventfd");
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      return absl::ErrnoToStatus(errno, "CurlSender: epoll_create1");
    }
    epoll_event wake{};
    wake.events = EPOLLIN;
    wake.data.fd = wake_fd_;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake) != 0) {
      return absl::ErrnoToStatus(errno, "CurlSender: epoll_ctl");
    }
    for (const std::string& entry : options_.resolve_overrides) {
      curl_slist* next = curl_slist_append(resolve_, entry.c_str());
      if (next == nullptr) {
        return absl::ResourceExhaustedError(
            "CurlSender: out of memory copying resolve_overrides");
      }
      resolve_ = next;
    }
    return absl::OkStatus();
  }

  void Start() {
    long max_connections = options_.max_connections_per_worker > 0
                               ? options_.max_connections_per_worker
                               : static_cast<long>(max_transfers_);
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, max_connections);
    curl_multi_setopt(
        multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
        static_cast<long>(std::max(0, options_.max_connections_per_host)));
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Worker::OnSocket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Worker::OnTimer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    thread_ = std::thread([this] { Run(); });
  }

  // Queues the request, or runs `done` at once if the worker is closed.
  void Submit(HttpRequest request, Callback done) {
    bool accepted = false;
    bool wake = false;
    {
      absl::MutexLock lock(&mu_);
      if (!closed_) {
        accepted = true;
        queue_.push_back(Pending{std::move(request), std::move(done)});
        in_flight_.fetch_add(1, std::memory_order_relaxed);
        // One wakeup per batch: the worker clears the flag when it takes
        // from the queue, so a burst of Sends costs one syscall.
        wake = !wake_pending_;
        wake_pending_ = true;
      }
    }
    if (!accepted) {
      done(AbortedResult(kShuttingDown));
      return;
    }
    if (wake) Wake();
  }

  // Stops accepting requests; those still unfinished at `deadline` are
  // aborted. A later call can only bring the deadline forward.
  void Close(absl::Time deadline) {
    {
      absl::MutexLock lock(&mu_);
      closed_ = true;
      deadline_ = std::min(deadline_, deadline);
    }
    Wake();
  }

  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  size_t InFlight() const { return in_flight_.load(std::memory_order_relaxed); }

 private:
  struct Pending {
    HttpRequest request;
    Callback done;
  };

  // The state of one transfer, reused with its easy handle (and so its DNS
  // and TLS session caches) for later transfers.
  struct Transfer {
    Worker* worker = nullptr;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    HttpRequest request;  // Owns the body libcurl sends from.
    Callback done;
    std::string body;
    size_t discarded = 0;
    bool cut_off = false;   // We ended the body early, on purpose.
    int requests_sent = 0;  // Calls of OnRequest.
    std::string blocked;    // Why address_filter refused an address.
    absl::Time start;
    size_t slot = 0;  // Index in running_.
    char error[CURL_ERROR_SIZE];
  };

  // Wakes the worker from epoll_wait(). Not curl_multi_wakeup(): the
  // worker frees its multi handle when it stops, maybe while a last Send()
  // or Shutdown() is still on its way out; the eventfd lives until ~Worker,
  // which cannot race with them.
  void Wake() {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }

  void Run();
  // Starts pending.request; on failure finishes it at once.
  void StartTransfer(Pending pending);
  // Finishes every transfer libcurl reports done; returns how many.
  int Reap();
  // Takes transfer out of the multi handle, recycles it and runs `done`.
  void Finish(Transfer* transfer, HttpResult result);
  void AbortEverything();
  // Frees the easy handles and the multi handle, closing its connections.
  void CleanUpCurl();
  std::unique_ptr<Transfer> TakeTransfer();
  // Sets the options every transfer shares, once per easy handle.
  bool SetUp(Transfer& transfer);
  // Sets the options of transfer.request.
  bool Configure(Transfer& transfer);
  HttpResult ResultOf(Transfer& transfer, CURLcode code);

  // libcurl's socket callback: keeps the epoll set in step with the
  // sockets libcurl wants to watch.
  static int OnSocket(CURL* easy, curl_socket_t socket, int what, void* user,
                      void* socket_user);
  // libcurl's timer callback: when to call it with CURL_SOCKET_TIMEOUT.
  static int OnTimer(CURLM* multi, long timeout_ms, void* user);
  // Lets libcurl act on its timeout if it is due.
  void RunTimerIfDue();

  static size_t OnBody(char* data, size_t size, size_t count, void* user);
  // libcurl's pre-request callback: lets the first request of the transfer
  // go out and refuses any repeat.
  static int OnRequest(void* user, char* remote_ip, char* local_ip,
                       int remote_port, int local_port);
  static curl_socket_t OnOpenSocket(void* user, curlsocktype purpose,
                                    struct curl_sockaddr* address);

  const CurlSenderOptions& options_;
  const int index_;
  const size_t max_transfers_;
  // Set by Init(), before the thread starts.
  CURLM* multi_ = nullptr;
  int wake_fd_ = -1;   // An eventfd.
  int epoll_fd_ = -1;  // The wake-up eventfd and libcurl's sockets.
  // options_.resolve_overrides for CURLOPT_RESOLVE; outlives the handles.
  curl_slist* resolve_ = nullptr;
  std::thread thread_;
  std::atomic<size_t> in_flight_{0};

  absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool wake_pending_ ABSL_GUARDED_BY(mu_) = false;

  // Worker thread only.
  // When libcurl wants CURL_SOCKET_TIMEOUT; InfiniteFuture() when never.
  absl::Time timer_due_ = absl::InfiniteFuture();
  std::vector<Transfer*> running_;  // Owned; Transfer::slot indexes this.
  std::vector<std::unique_ptr<Transfer>> free_;
  std::vector<Pending> admitted_;
};

void CurlSender::Worker::Run() {
  std::string name = absl::StrCat("curl-sender-", index_);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());

  for (;;) {
    bool closed;
    bool queue_empty;
    absl::Time deadline;
    {
      absl::MutexLock lock(&mu_);
      wake_pending_ = false;
      while (running_.size() + admitted_.size() < max_transfers_ &&
             !queue_.empty()) {
        admitted_.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      closed = closed_;
      deadline = deadline_;
      // Stays true once closed: nothing is queued after that.
      queue_empty = queue_.empty();
    }
    if (closed && absl::Now() >= deadline) {
      AbortEverything();
      break;
    }
    for (Pending& pending : admitted_) StartTransfer(std::move(pending));
    admitted_.clear();

    RunTimerIfDue();
    const int finished = Reap();
    if (closed && queue_empty && running_.empty()) break;
    // Finished transfers made room: take more from the queue before waiting.
    if (finished > 0 && !queue_empty) continue;

    absl::Time wake_at = std::min(timer_due_, absl::Now() + kMaxPoll);
    if (closed) wake_at = std::min(wake_at, deadline);
    const int timeout_ms = static_cast<int>(
        std::clamp<int64_t>(absl::ToInt64Milliseconds(absl::Ceil(
                                wake_at - absl::Now(), absl::Milliseconds(1))),
                            0, absl::ToInt64Milliseconds(kMaxPoll)));
    epoll_event events[kMaxEvents];
    const int ready = epoll_wait(epoll_fd_, events, kMaxEvents, timeout_ms);
    for (int i = 0; i < ready; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd_) {
        uint64_t count;
        (void)!read(wake_fd_, &count, sizeof(count));
        continue;
      }
      int action = 0;
      if (events[i].events & EPOLLIN) action |= CURL_CSELECT_IN;
      if (events[i].events & EPOLLOUT) action |= CURL_CSELECT_OUT;
      if (events[i].events & (EPOLLERR | EPOLLHUP)) action |= CURL_CSELECT_ERR;
      int still_running = 0;
      curl_multi_socket_action(multi_, fd, action, &still_running);
    }
  }
  // Close the connections now rather than when the sender is destroyed.
  CleanUpCurl();
}

int CurlSender::Worker::OnSocket(CURL*, curl_socket_t socket, int what,
                                 void* user, void* socket_user) {
  auto* worker = static_cast<Worker*>(user);
  if (what == CURL_POLL_REMOVE) {
    // The socket may be closed already; then it has left the set anyway.
    // libcurl forgets socket_user with it, so a kept-alive connection that
    // is used again is added anew.
    epoll_ctl(worker->epoll_fd_, EPOLL_CTL_DEL, socket, nullptr);
    return 0;
  }
  epoll_event event{};
  event.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) |
                 ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
  event.data.fd = socket;
  // A socket_user (the worker) marks the sockets in the set: one epoll_ctl
  // a change, where trying EPOLL_CTL_MOD first cost a failed call for every
  // request on a kept-alive connection.
  if (socket_user != nullptr) {
    epoll_ctl(worker->epoll_fd_, EPOLL_CTL_MOD, socket, &event);
  } else if (epoll_ctl(worker->epoll_fd_, EPOLL_CTL_ADD, socket, &event) == 0 ||
             (errno == EEXIST && epoll_ctl(worker->epoll_fd_, EPOLL_CTL_MOD,
                                           socket, &event) == 0)) {
    curl_multi_assign(worker->multi_, socket, worker);
  }
  return 0;
}

int CurlSender::Worker::OnTimer(CURLM*, long timeout_ms, void* user) {
  auto* worker = static_cast<Worker*>(user);
  worker->timer_due_ = timeout_ms < 0
                           ? absl::InfiniteFuture()
                           : absl::Now() + absl::Milliseconds(timeout_ms);
  return 0;
}

void CurlSender::Worker::RunTimerIfDue() {
  if (timer_due_ > absl::Now()) return;
  // libcurl sets a new timer (or none) from inside this call.
  timer_due_ = absl::InfiniteFuture();
  int still_running = 0;
  curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &still_running);
}

void CurlSender::Worker::CleanUpCurl() {
  // Run() returns only when no transfer is left; only recycled easy handles
  // remain.
  for (auto& transfer : free_) curl_easy_cleanup(transfer->easy);
  free_.clear();
  if (multi_ != nullptr) curl_multi_cleanup(multi_);
  multi_ = nullptr;
}

std::unique_ptr<CurlSender::Worker::Transfer>
CurlSender::Worker::TakeTransfer() {
  if (!free_.empty()) {
    std::unique_ptr<Transfer> transfer = std::move(free_.back());
    free_.pop_back();
    return transfer;
  }
  auto transfer = std::make_unique<Transfer>();
  transfer->worker = this;
  transfer->easy = curl_easy_init();
  if (transfer->easy == nullptr) return nullptr;
  if (!SetUp(*transfer)) {
    curl_easy_cleanup(transfer->easy);
    return nullptr;
  }
  return transfer;
}

void CurlSender::Worker::StartTransfer(Pending pending) {
  std::unique_ptr<Transfer> transfer = TakeTransfer();
  if (transfer == nullptr) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    pending.done(ErrorResult("internal error: cannot create a curl handle"));
    return;
  }
  transfer->request = std::move(pending.request);
  transfer->done = std::move(pending.done);
  transfer->start = absl::Now();
  if (!Configure(*transfer)) {
    transfer->slot = running_.size();
    running_.push_back(transfer.release());
    Finish(running_.back(),
           ErrorResult("internal error: could not set up the transfer"));
    return;
  }
  CURLMcode code = curl_multi_add_handle(multi_, transfer->easy);
  transfer->slot = running_.size();
  running_.push_back(transfer.release());
  if (code != CURLM_OK) {
    Finish(running_.back(),
           ErrorResult(absl::StrCat("internal error: curl_multi_add_handle: ",
                                    curl_multi_strerror(code))));
  }
}

bool CurlSender::Worker::SetUp(Transfer& t) {
  CURL* easy = t.easy;
  bool ok = true;
  auto set = [&ok](CURLcode code) { ok = ok && code == CURLE_OK; };
  set(curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https"));
  set(curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"));
  set(curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L));
  set(curl_easy_setopt(easy, CURLOPT_PROXY, ""));
  set(curl_easy_setopt(easy, CURLOPT_POST, 1L));
  if (!options_.user_agent.empty()) {
    // A User-Agent in the request headers takes precedence over this.
    set(curl_easy_setopt(easy, CURLOPT_USERAGENT, options_.user_agent.c_str()));
  }
  set(curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, nullptr));
  set(curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L));
  set(curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L));
  set(curl_easy_setopt(easy, CURLOPT_TCP_KEEPIDLE, 30L));
  set(curl_easy_setopt(easy, CURLOPT_TCP_KEEPINTVL, 15L));
  // No CURLOPT_PIPEWAIT: it makes a transfer wait for an existing connection
  // to the same host to tell whether it can multiplex, so over HTTP/1.1 one
  // receiver that hangs would hold back every other request to that host.
  set(curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER,
                       options_.verify_tls ? 1L : 0L));
  set(curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST,
                       options_.verify_tls ? 2L : 0L));
  if (!options_.ca_file.empty()) {
    set(curl_easy_setopt(easy, CURLOPT_CAINFO, options_.ca_file.c_str()));
  }
  if (resolve_ != nullptr) {
    set(curl_easy_setopt(easy, CURLOPT_RESOLVE, resolve_));
  }
  set(curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Worker::OnBody));
  set(curl_easy_setopt(easy, CURLOPT_WRITEDATA, &t));
  set(curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION,
                       &Worker::OnOpenSocket));
  set(curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, &t));
  set(curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, &Worker::OnRequest));
  set(curl_easy_setopt(easy, CURLOPT_PREREQDATA, &t));
  set(curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t.error));
  set(curl_easy_setopt(easy, CURLOPT_PRIVATE, &t));
  return ok;
}

bool CurlSender::Worker::Configure(Transfer& t) {
  CURL* easy = t.easy;
  const HttpRequest& request = t.request;
  t.error[0] = '\0';

  for (const auto& [name, value] : request.headers) {
    curl_slist* next =
        curl_slist_append(t.headers, HeaderLine(name, value).c_str());
    if (next == nullptr) return false;
    t.headers = next;
  }
  // Without these libcurl adds "Expect: 100-continue" to large bodies (a
  // round trip wasted, and some receivers mishandle it) and a form
  // Content-Type to every POST.
  for (const char* removal : {"Expect:", "Content-Type:"}) {
    absl::string_view name(removal);
    name.remove_suffix(1);
    if (HasHeader(request, name)) continue;
    curl_slist* next = curl_slist_append(t.headers, removal);
    if (next == nullptr) return false;
    t.headers = next;
  }

  int64_t timeout_ms = 0;  // libcurl: none.
  if (request.timeout != absl::InfiniteDuration()) {
    timeout_ms =
        std::max<int64_t>(1, absl::ToInt64Milliseconds(absl::Ceil(
                                 request.timeout, absl::Milliseconds(1))));
  }
  int64_t connect_timeout_ms = absl::ToInt64Milliseconds(kMaxConnectTimeout);
  if (timeout_ms > 0) {
    connect_timeout_ms = std::min(connect_timeout_ms, timeout_ms);
  }

  bool ok = true;
  auto set = [&ok](CURLcode code) { ok = ok && code == CURLE_OK; };
  set(curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str()));
  set(curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size())));
  // Not COPYPOSTFIELDS: the Transfer keeps the request alive.
  set(curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data()));
  set(curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t.headers));
  set(curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                       static_cast<long>(timeout_ms)));
  set(curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                       static_cast<long>(connect_timeout_ms)));
  return ok;
}

size_t CurlSender::Worker::OnBody(char* data, size_t size, size_t count,
                                  void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  const size_t limit = t->worker->options_.max_response_body_bytes;
  size_t keep = 0;
  if (t->body.size() < limit) {
    keep = std::min(n, limit - t->body.size());
    t->body.append(data, keep);
  }
  t->discarded += n - keep;
  if (t->discarded > kDrainAllowance) {
    t->cut_off = true;
    return 0;  // Ends the transfer with CURLE_WRITE_ERROR.
  }
  return n;
}

int CurlSender::Worker::OnRequest(void* user, char*, char*, int, int) {
  // One attempt is one request on the wire. libcurl sends a request again,
  // on a fresh connection, when a reused keep-alive connection dies before
  // any byte of a response (Curl_retry_request: "Connection died, retrying
  // a fresh connect"). The receiver may well have read the first one (a
  // receiver that resets connections saw 7 requests for 4 recorded
  // attempts), so the repeat is refused here, just before it would be
  // sent: the transfer fails, and the next attempt is the retry policy's,
  // recorded like any other. libcurl's check before reusing a connection
  // (one the peer has closed is not reused) still applies, so this costs an
  // attempt only when the peer drops the connection as the request goes
  // out or after reading it.
  auto* t = static_cast<Transfer*>(user);
  return ++t->requests_sent == 1 ? CURL_PREREQFUNC_OK : CURL_PREREQFUNC_ABORT;
}

curl_socket_t CurlSender::Worker::OnOpenSocket(void* user, curlsocktype purpose,
                                               struct curl_sockaddr* address) {
  auto* t = static_cast<Transfer*>(user);
  const auto& filter = t->worker->options_.address_filter;
  if (filter && purpose == CURLSOCKTYPE_IPCXN) {
    // A host with one blocked address is suspect (DNS rebinding tries to
    // mix them): do not go on to its other addresses.
    if (!t->blocked.empty()) return CURL_SOCKET_BAD;
    std::string why;
    if (!filter(&address->addr, address->addrlen, &why)) {
      t->blocked =
          absl::StrCat("blocked address ", FormatAddress(&address->addr),
                       why.empty() ? "" : ": ", why);
      return CURL_SOCKET_BAD;
    }
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC,
                address->protocol);
}

int CurlSender::Worker::Reap() {
  int finished = 0;
  int left = 0;
  while (CURLMsg* message = curl_multi_info_read(multi_, &left)) {
    if (message->msg != CURLMSG_DONE) continue;
    // `message` dies with curl_multi_remove_handle(): copy what we need.
    CURL* easy = message->easy_handle;
    CURLcode code = message->data.result;
    Transfer* transfer = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &transfer);
    Finish(transfer, ResultOf(*transfer, code));
    ++finished;
  }
  return finished;
}

HttpResult CurlSender::Worker::ResultOf(Transfer& t, CURLcode code) {
  HttpResult result;
  long status = 0;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
  result.status_code = static_cast<int>(status);
  curl_off_t total_us = 0;
  curl_easy_getinfo(t.easy, CURLINFO_TOTAL_TIME_T, &total_us);
  result.elapsed = absl::Microseconds(total_us);
  result.body = std::move(t.body);
  if (code == CURLE_OK || (code == CURLE_WRITE_ERROR && t.cut_off)) {
    struct curl_header* header = nullptr;
    if (curl_easy_header(t.easy, "Retry-After", 0, CURLH_HEADER, -1, &header) ==
        CURLHE_OK) {
      result.retry_after = ParseRetryAfter(header->value, absl::Now());
    }
    return result;
  }
  // A transport error after the status line: the response was not received
  // whole, so it must not count as one (a reset after "200 OK" is no
  // success).
  CurlFailure failure;
  failure.code = code;
  curl_easy_getinfo(t.easy, CURLINFO_OS_ERRNO, &failure.os_errno);
  failure.detail = t.error;
  failure.partial_status = result.status_code;
  failure.blocked = t.blocked;
  failure.timeout = t.request.timeout;
  // libcurl's connect timeout is shorter than the request's: name the one
  // that expired.
  failure.timed_out_connecting =
      code == CURLE_OPERATION_TIMEDOUT && t.requests_sent == 0;
  if (failure.timed_out_connecting) {
    failure.timeout = std::min(kMaxConnectTimeout, t.request.timeout);
  }
  failure.resend_refused =
      code == CURLE_ABORTED_BY_CALLBACK && t.requests_sent > 1;
  result.status_code = 0;
  result.timed_out = code == CURLE_OPERATION_TIMEDOUT;
  result.error = DescribeCurlFailure(failure);
  return result;
}

void CurlSender::Worker::Finish(Transfer* transfer, HttpResult result) {
  curl_multi_remove_handle(multi_, transfer->easy);
  Callback done = std::move(transfer->done);

  // Unlink from running_ (swap with the last one).
  Transfer* last = running_.back();
  last->slot = transfer->slot;
  running_[transfer->slot] = last;
  running_.pop_back();

  // Recycle: forget this request, keep the easy handle with its shared
  // options (no curl_easy_reset: setting them again costs more than the
  // request). The multi handle, not the easy handle, owns the connection,
  // which stays in its cache.
  curl_easy_setopt(transfer->easy, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(transfer->headers);
  transfer->headers = nullptr;
  transfer->request = HttpRequest();
  transfer->body.clear();
  transfer->discarded = 0;
  transfer->cut_off = false;
  transfer->requests_sent = 0;
  transfer->blocked.clear();
  free_.emplace_back(transfer);

  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  done(std::move(result));
}

void CurlSender::Worker::AbortEverything() {
  while (!running_.empty()) {
    Transfer* transfer = running_.back();
    HttpResult result = AbortedResult(kAborted);
    result.elapsed = absl::Now() - transfer->start;
    Finish(transfer, std::move(result));
  }
  std::deque<Pending> queue;
  {
    absl::MutexLock lock(&mu_);
    queue.swap(queue_);
  }
  for (Pending& pending : admitted_) queue.push_back(std::move(pending));
  admitted_.clear();
  for (Pending& pending : queue) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    pending.done(AbortedResult(kAborted));
  }
}

absl::StatusOr<std::unique_ptr<CurlSender>> CurlSender::Create(
    const CurlSenderOptions& options) {
  if (!GlobalInit()) {
    return absl::InternalError("CurlSender: curl_global_init failed");
  }
  std::unique_ptr<CurlSender> sender(new CurlSender(options));
  for (const auto& worker : sender->workers_) {
    WEBHOOKD_RETURN_IF_ERROR(worker->Init());
  }
  for (const auto& worker : sender->workers_) worker->Start();
  return sender;
}

CurlSender::CurlSender(const CurlSenderOptions& options) : options_(options) {
  int workers = std::max(1, options_.workers);
  workers_.reserve(workers);
  for (int i = 0; i < workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(options_, i));
  }
}

CurlSender::~CurlSender() { Shutdown(absl::ZeroDuration()); }

void CurlSender::Send(HttpRequest request, Callback done) {
  // The origin's home worker unless another has fewer transfers in flight.
  Worker* chosen = workers_[std::hash<std::string_view>()(Origin(request.url)) %
                            workers_.size()]
                       .get();
  size_t least_load = chosen->InFlight();
  for (const auto& worker : workers_) {
    if (size_t load = worker->InFlight(); load < least_load) {
      chosen = worker.get();
      least_load = load;
    }
  }
  chosen->Submit(std::move(request), std::move(done));
}

void CurlSender::Shutdown(absl::Duration grace) {
  const absl::Time deadline = absl::Now() + grace;
  // Outside join_mu_, so that a second call can shorten a running one.
  for (const auto& worker : workers_) worker->Close(deadline);
  absl::MutexLock lock(&join_mu_);
  if (joined_) return;
  for (const auto& worker : workers_) worker->Join();
  joined_ = true;
}

size_t CurlSender::InFlight() const {
  size_t total = 0;
  for (const auto& worker : workers_) total += worker->InFlight();
  return total;
}

}  // namespace webhookd
