// Metrics for Prometheus: webhookd's counters, histograms and gauges
// (README "Metrics") in a prometheus-cpp registry, served as the text
// exposition on http://<listen>/metrics by prometheus-cpp's exposer.

#ifndef WEBHOOKD_SERVER_METRICS_PROMETHEUS_METRICS_H_
#define WEBHOOKD_SERVER_METRICS_PROMETHEUS_METRICS_H_

#include <array>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/common/metrics.h"

namespace webhookd {

// A listen address checked for the metrics server: an IP literal (IPv6 in
// brackets) or "localhost", and a port in 0-65535.
struct MetricsAddress {
  std::string host;  // As civetweb takes it: "127.0.0.1", "[::1]".
  int port = 0;
};

// Parses "host:port" given to `flag` (named in errors). InvalidArgument for
// a missing host or port, a port out of range or a host that is not an IP
// address.
absl::StatusOr<MetricsAddress> ParseMetricsAddress(absl::string_view listen,
                                                   absl::string_view flag);

// The state of the delivery queue, read at each scrape.
struct QueueGauges {
  size_t waiting = 0;    // Waiting for their due time (new or retry).
  size_t held = 0;       // Held because their endpoint is disabled.
  size_t in_flight = 0;  // Attempts running.
};

struct PrometheusMetricsOptions {
  // host:port (see ParseMetricsAddress); port 0 picks a free one.
  std::string listen;
  // The flag `listen` came from, named in errors.
  std::string flag = "--metrics_listen";
  // webhookd_build_info's version label.
  std::string version;
};

// PrometheusMetrics is safe for concurrent use. Counters are atomics;
// histograms and the first use of a label set take prometheus-cpp's locks.
class PrometheusMetrics final : public Metrics {
 public:
  // Starts serving /metrics. InvalidArgument for a bad options.listen,
  // Unavailable when the address is in use (never shared) or cannot be
  // bound.
  static absl::StatusOr<std::unique_ptr<PrometheusMetrics>> Start(
      const PrometheusMetricsOptions& options);
  PrometheusMetrics(const PrometheusMetrics&) = delete;
  PrometheusMetrics& operator=(const PrometheusMetrics&) = delete;
  // Stops serving.
  ~PrometheusMetrics() override;

  // The port /metrics is served on.
  int port() const { return port_; }

  // Where the queue gauges are read from at each scrape (they read 0
  // without one). `source` must stay callable until it is replaced
  // (nullptr: none) or this object is destroyed.
  void SetQueueSource(std::function<QueueGauges()> source);

  // The exposition as served on /metrics.
  std::string Render() const;

  // Metrics
  void EventsSubmitted(size_t events, size_t deliveries) override;
  void AttemptFinished(ResponseClass response,
                       absl::Duration duration) override;
  void DeliveryFinished(DeliveryOutcome outcome,
                        absl::Duration since_submit) override;
  void RetryScheduled() override;
  void EndpointAutoDisabled() override;
  void SubmitAdmission(AdmissionOutcome outcome) override;
  void StorageWriteFinished(StorageWrite what,
                            absl::Duration duration) override;
  void RpcFinished(absl::string_view service, absl::string_view method,
                   int grpc_code) override;

 private:
  class QueueCollectable;

  explicit PrometheusMetrics(const std::string& version);

  static constexpr size_t kResponseClasses = 7;
  static constexpr size_t kDeliveryOutcomes = 3;
  static constexpr size_t kStorageWrites = 2;

  // Set at construction; the metrics themselves are thread-safe.
  const std::shared_ptr<prometheus::Registry> registry_;
  const std::shared_ptr<QueueCollectable> queue_;
  prometheus::Counter* events_submitted_;
  prometheus::Counter* deliveries_created_;
  std::array<prometheus::Counter*, kResponseClasses> attempts_;
  // Attempt durations of failed [0] and successful [1] attempts.
  std::array<prometheus::Histogram*, 2> attempt_duration_;
  std::array<prometheus::Counter*, kDeliveryOutcomes> deliveries_finished_;
  prometheus::Histogram* delivery_latency_;
  prometheus::Counter* retries_scheduled_;
  prometheus::Counter* endpoints_auto_disabled_;
  // Admitted after a wait [0], refused [1].
  std::array<prometheus::Counter*, 2> admission_;
  std::array<prometheus::Histogram*, kStorageWrites> storage_write_;
  prometheus::Family<prometheus::Counter>* rpcs_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;

  // The counter of each (service, method, code) seen, so that a call takes
  // prometheus-cpp's family lock only the first time.
  mutable absl::Mutex rpc_mu_;
  absl::flat_hash_map<std::string, prometheus::Counter*> rpc_counters_
      ABSL_GUARDED_BY(rpc_mu_);
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_METRICS_PROMETHEUS_METRICS_H_
