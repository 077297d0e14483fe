// The benchmark's HTTP receiver: a libmicrohttpd server on 127.0.0.1 that
// answers webhook deliveries and records, per request, when it was answered
// and its X-Webhook-Id. Recording is per server thread (an uncontended
// mutex each), so the sink adds no shared lock to the delivery path.
//
// Paths:
//   /ok/...    answered 200 at once, or held while the sink is paused.
//   /hang/...  held for `hang_time`, then answered 503 (an endpoint that
//              hangs until the sender's attempt timeout).
//   /flaky/... answered 500 to the first attempt (X-Webhook-Attempt: 1) of
//              one delivery in four, chosen by its id; else as /ok.
//   /calib...  answered 200 and recorded as calibration traffic (wrk).
//   other      404.

#ifndef WEBHOOKD_BENCH_HTTP_SINK_H_
#define WEBHOOKD_BENCH_HTTP_SINK_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

struct MHD_Daemon;
struct MHD_Connection;
struct MHD_Response;

namespace webhookd::bench {

enum class ReceiptKind : uint8_t { kDelivery, kCalibration };

// One answered request.
struct Receipt {
  // NowNanos() when the answer was queued.
  int64_t answer_ns = 0;
  // "dlv_" + 32 hex digits, parsed (testing::ParseDeliveryId); valid only
  // if id_ok.
  absl::uint128 id = 0;
  uint32_t body_bytes = 0;
  uint16_t status = 0;
  ReceiptKind kind = ReceiptKind::kDelivery;
  bool id_ok = false;
};

// HttpSink is safe for concurrent use.
class HttpSink {
 public:
  struct Options {
    // Server threads (a thread pool, each with its own epoll set; at
    // least 2).
    int threads = 2;
    // How long /hang requests are held before the 503.
    absl::Duration hang_time = absl::Seconds(60);
  };

  static absl::StatusOr<std::unique_ptr<HttpSink>> Start(
      const Options& options);
  HttpSink(const HttpSink&) = delete;
  HttpSink& operator=(const HttpSink&) = delete;
  // Answers every held request (503) and stops the server.
  ~HttpSink();

  int port() const { return port_; }
  // "http://<host>:<port><path>"; `host` must reach 127.0.0.1.
  std::string Url(const std::string& path,
                  const std::string& host = "127.0.0.1") const;

  // While paused, /ok requests are held (not answered).
  void Pause();
  // Ends a pause: held /ok requests are answered with `status` (and
  // recorded with it), later ones with 200.
  void Resume(int status);
  // Answers every held /hang request with 503 now.
  void ReleaseHung();

  // Moves the receipts recorded since the last call to the end of `out`.
  void Collect(std::vector<Receipt>* out);

  // Delivery requests answered 2xx so far (duplicates included).
  int64_t answered_ok() const {
    return answered_ok_.load(std::memory_order_relaxed);
  }
  // Requests held right now.
  int64_t held() const;

 private:
  struct ThreadBuffer {
    absl::Mutex mu;
    std::vector<Receipt> receipts ABSL_GUARDED_BY(mu);
  };
  struct Held;

  explicit HttpSink(const Options& options);

  // The libmicrohttpd callbacks (defined in the .cc, which has its types).
  struct Callbacks;
  friend struct Callbacks;

  void Record(const Receipt& receipt);
  ThreadBuffer& LocalBuffer();
  void TimerLoop();
  // Resumes `held` connections, which were taken off the held lists.
  static void ResumeAll(std::vector<Held*> held, int status);

  const Options options_;
  const uint64_t instance_;
  MHD_Daemon* daemon_ = nullptr;
  MHD_Response* ok_ = nullptr;
  MHD_Response* unavailable_ = nullptr;
  MHD_Response* not_found_ = nullptr;
  int port_ = 0;
  std::atomic<int64_t> answered_ok_{0};
  // Held requests not yet answered or ended (suspended connections).
  std::atomic<int64_t> suspended_{0};

  absl::Mutex buffers_mu_;
  std::vector<std::unique_ptr<ThreadBuffer>> buffers_
      ABSL_GUARDED_BY(buffers_mu_);

  // paused_, readable without held_mu_ (checked again under it).
  std::atomic<bool> paused_hint_{false};
  mutable absl::Mutex held_mu_;
  bool paused_ ABSL_GUARDED_BY(held_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(held_mu_) = false;
  std::vector<Held*> held_ok_ ABSL_GUARDED_BY(held_mu_);
  std::vector<Held*> held_hang_ ABSL_GUARDED_BY(held_mu_);
  std::thread timer_;
};

}  // namespace webhookd::bench

#endif  // WEBHOOKD_BENCH_HTTP_SINK_H_
