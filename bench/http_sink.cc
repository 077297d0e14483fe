#include "bench/http_sink.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bench/proc_stats.h"
#include "tests/support/delivery_ledger.h"

namespace webhookd::bench {
namespace {

// *request_state after the first call of a request; a Held* instead while
// the request is (or was) held.
char kStarted;

std::atomic<uint64_t> next_instance{1};

bool StartsWith(const char* text, const char* prefix) {
  return std::strncmp(text, prefix, std::strlen(prefix)) == 0;
}

}  // namespace

// A held request, owned through *request_state; on a held list until it is
// released, then freed when answered or when its connection ends.
struct HttpSink::Held {
  MHD_Connection* connection = nullptr;
  Receipt receipt;
  int64_t due_ns = 0;  // For /hang: when to answer.
  std::atomic<int> answer{503};
};

struct HttpSink::Callbacks {
  static MHD_Result Handle(void* cls, MHD_Connection* connection,
                           const char* url, const char* /*method*/,
                           const char* /*version*/, const char* /*upload_data*/,
                           size_t* upload_data_size, void** request_state) {
    HttpSink& sink = *static_cast<HttpSink*>(cls);
    if (*request_state == nullptr) {
      *request_state = &kStarted;
      return MHD_YES;
    }
    if (*upload_data_size != 0) {  // Body bytes: read and dropped.
      *upload_data_size = 0;
      return MHD_YES;
    }
    if (*request_state != &kStarted) {  // A held request, now released.
      Held* held = static_cast<Held*>(*request_state);
      *request_state = &kStarted;
      Receipt receipt = held->receipt;
      receipt.status = static_cast<uint16_t>(held->answer.load());
      delete held;
      sink.suspended_.fetch_sub(1);
      return Answer(sink, connection, receipt);
    }

    Receipt receipt;
    receipt.kind = ReceiptKind::kDelivery;
    bool hang = false;
    bool flaky = false;
    if (StartsWith(url, "/ok")) {
    } else if (StartsWith(url, "/flaky")) {
      flaky = true;
    } else if (StartsWith(url, "/hang")) {
      hang = true;
    } else if (StartsWith(url, "/calib")) {
      receipt.kind = ReceiptKind::kCalibration;
    } else {
      return MHD_queue_response(connection, MHD_HTTP_NOT_FOUND,
                                sink.not_found_);
    }
    if (const char* id = MHD_lookup_connection_value(
            connection, MHD_HEADER_KIND, "X-Webhook-Id")) {
      receipt.id_ok = testing::ParseDeliveryId(id, &receipt.id);
    }
    if (const char* length = MHD_lookup_connection_value(
            connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
      absl::SimpleAtoi(length, &receipt.body_bytes);
    }
    // Fast path: no shared lock unless the request may be held.
    if (hang || (receipt.kind == ReceiptKind::kDelivery &&
                 sink.paused_hint_.load(std::memory_order_acquire))) {
      absl::MutexLock lock(&sink.held_mu_);
      if (sink.stopping_) {
        receipt.status = hang ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK;
        return Answer(sink, connection, receipt);
      }
      if (hang || sink.paused_) {
        auto* held = new Held;
        held->connection = connection;
        held->receipt = receipt;
        held->due_ns =
            NowNanos() + absl::ToInt64Nanoseconds(sink.options_.hang_time);
        *request_state = held;
        // Suspended before it is listed, so that whoever takes it off the
        // list may resume it.
        MHD_suspend_connection(connection);
        sink.suspended_.fetch_add(1);
        (hang ? sink.held_hang_ : sink.held_ok_).push_back(held);
        return MHD_YES;
      }
    }
    receipt.status = flaky && FailsFirstAttempt(connection, receipt)
                         ? MHD_HTTP_INTERNAL_SERVER_ERROR
                         : MHD_HTTP_OK;
    return Answer(sink, connection, receipt);
  }

  // /flaky: the first attempt of one delivery in four (by its id) fails, so
  // that a fifth of the answers are 500 and every delivery succeeds on its
  // first retry.
  static bool FailsFirstAttempt(MHD_Connection* connection,
                                const Receipt& receipt) {
    const char* attempt = MHD_lookup_connection_value(
        connection, MHD_HEADER_KIND, "X-Webhook-Attempt");
    return receipt.id_ok && attempt != nullptr &&
           std::strcmp(attempt, "1") == 0 &&
           absl::Uint128Low64(receipt.id) % 4 == 0;
  }

  static void Completed(void* cls, MHD_Connection* /*connection*/,
                        void** request_state,
                        MHD_RequestTerminationCode /*reason*/) {
    // A held request whose connection ended before it was answered.
    if (*request_state != nullptr && *request_state != &kStarted) {
      delete static_cast<Held*>(*request_state);
      static_cast<HttpSink*>(cls)->suspended_.fetch_sub(1);
    }
    *request_state = nullptr;
  }

  static MHD_Result Answer(HttpSink& sink, MHD_Connection* connection,
                           Receipt& receipt) {
    receipt.answer_ns = NowNanos();
    sink.Record(receipt);
    // Empty bodies: the status alone tells them apart.
    MHD_Response* response = receipt.status == MHD_HTTP_OK ? sink.ok_
                             : receipt.status == MHD_HTTP_NOT_FOUND
                                 ? sink.not_found_
                                 : sink.unavailable_;
    return MHD_queue_response(connection, receipt.status, response);
  }
};

HttpSink::HttpSink(const Options& options)
    : options_(options), instance_(next_instance.fetch_add(1)) {}

absl::StatusOr<std::unique_ptr<HttpSink>> HttpSink::Start(
    const Options& options) {
  std::unique_ptr<HttpSink> sink(new HttpSink(options));
  static char kEmpty[] = "";
  sink->ok_ =
      MHD_create_response_from_buffer(0, kEmpty, MHD_RESPMEM_PERSISTENT);
  sink->unavailable_ =
      MHD_create_response_from_buffer(0, kEmpty, MHD_RESPMEM_PERSISTENT);
  sink->not_found_ =
      MHD_create_response_from_buffer(0, kEmpty, MHD_RESPMEM_PERSISTENT);
  sockaddr_in address;
  std::memset(&address, 0, sizeof(address));
  address.sin_family = AF_INET;
  address.sin_port = 0;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD |
                             MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                             MHD_USE_ERROR_LOG;
  sink->daemon_ = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &Callbacks::Handle, sink.get(),
      MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&address),
      // Always a pool (at least 2): libmicrohttpd 0.9.75's single-thread
      // epoll mode stalls (stops reading) with a few hundred connections.
      MHD_OPTION_THREAD_POOL_SIZE,
      static_cast<unsigned int>(std::max(options.threads, 2)),
      MHD_OPTION_CONNECTION_LIMIT, 16000u, MHD_OPTION_CONNECTION_TIMEOUT, 0u,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u, MHD_OPTION_NOTIFY_COMPLETED,
      &Callbacks::Completed, sink.get(), MHD_OPTION_END);
  if (sink->daemon_ == nullptr) {
    return absl::UnavailableError("libmicrohttpd did not start");
  }
  const MHD_DaemonInfo* info =
      MHD_get_daemon_info(sink->daemon_, MHD_DAEMON_INFO_BIND_PORT);
  if (info == nullptr || info->port == 0) {
    return absl::UnavailableError("libmicrohttpd has no port");
  }
  sink->port_ = info->port;
  sink->timer_ = std::thread([s = sink.get()] { s->TimerLoop(); });
  return sink;
}

HttpSink::~HttpSink() {
  std::vector<Held*> ok;
  std::vector<Held*> hang;
  {
    absl::MutexLock lock(&held_mu_);
    stopping_ = true;
    paused_ = false;
    paused_hint_.store(false, std::memory_order_release);
    ok.swap(held_ok_);
    hang.swap(held_hang_);
  }
  if (timer_.joinable()) timer_.join();
  ResumeAll(std::move(ok), MHD_HTTP_SERVICE_UNAVAILABLE);
  ResumeAll(std::move(hang), MHD_HTTP_SERVICE_UNAVAILABLE);
  // A resumed connection leaves the suspended state only when its server
  // thread gets to it, and libmicrohttpd aborts if it is stopped before.
  const int64_t deadline = NowNanos() + 10000000000;
  while (suspended_.load() > 0 && NowNanos() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (daemon_ != nullptr && suspended_.load() == 0) {
    MHD_stop_daemon(daemon_);
  }  // Else leaked rather than aborted.
  for (MHD_Response* response : {ok_, unavailable_, not_found_}) {
    if (response != nullptr) MHD_destroy_response(response);
  }
}

std::string HttpSink::Url(const std::string& path,
                          const std::string& host) const {
  return absl::StrCat("http://", host, ":", port_, path);
}

void HttpSink::Pause() {
  absl::MutexLock lock(&held_mu_);
  paused_ = true;
  paused_hint_.store(true, std::memory_order_release);
}

void HttpSink::Resume(int status) {
  std::vector<Held*> ok;
  {
    absl::MutexLock lock(&held_mu_);
    paused_ = false;
    paused_hint_.store(false, std::memory_order_release);
    ok.swap(held_ok_);
  }
  ResumeAll(std::move(ok), status);
}

void HttpSink::ReleaseHung() {
  std::vector<Held*> hang;
  {
    absl::MutexLock lock(&held_mu_);
    hang.swap(held_hang_);
  }
  ResumeAll(std::move(hang), MHD_HTTP_SERVICE_UNAVAILABLE);
}

void HttpSink::ResumeAll(std::vector<Held*> held, int status) {
  for (Held* request : held) {
    request->answer.store(status);
    MHD_resume_connection(request->connection);
  }
}

int64_t HttpSink::held() const {
  absl::MutexLock lock(&held_mu_);
  return static_cast<int64_t>(held_ok_.size() + held_hang_.size());
}

void HttpSink::TimerLoop() {
  while (true) {
    std::vector<Held*> due;
    {
      absl::MutexLock lock(&held_mu_);
      if (stopping_) return;
      held_mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                                absl::Milliseconds(50));
      if (stopping_) return;
      const int64_t now = NowNanos();
      std::vector<Held*> waiting;
      for (Held* request : held_hang_) {
        (request->due_ns <= now ? due : waiting).push_back(request);
      }
      held_hang_.swap(waiting);
    }
    ResumeAll(std::move(due), MHD_HTTP_SERVICE_UNAVAILABLE);
  }
}

HttpSink::ThreadBuffer& HttpSink::LocalBuffer() {
  // Keyed by instance number, not address: a later sink may reuse one.
  thread_local uint64_t owner = 0;
  thread_local ThreadBuffer* buffer = nullptr;
  if (owner != instance_) {
    auto fresh = std::make_unique<ThreadBuffer>();
    buffer = fresh.get();
    owner = instance_;
    absl::MutexLock lock(&buffers_mu_);
    buffers_.push_back(std::move(fresh));
  }
  return *buffer;
}

void HttpSink::Record(const Receipt& receipt) {
  ThreadBuffer& buffer = LocalBuffer();
  {
    absl::MutexLock lock(&buffer.mu);
    buffer.receipts.push_back(receipt);
  }
  if (receipt.kind == ReceiptKind::kDelivery && receipt.status >= 200 &&
      receipt.status < 300) {
    answered_ok_.fetch_add(1, std::memory_order_relaxed);
  }
}

void HttpSink::Collect(std::vector<Receipt>* out) {
  absl::MutexLock lock(&buffers_mu_);
  std::vector<Receipt> taken;
  for (const std::unique_ptr<ThreadBuffer>& buffer : buffers_) {
    {
      absl::MutexLock buffer_lock(&buffer->mu);
      taken.swap(buffer->receipts);
    }
    out->insert(out->end(), taken.begin(), taken.end());
    taken.clear();
  }
}

}  // namespace webhookd::bench
