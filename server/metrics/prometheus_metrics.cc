#include "server/metrics/prometheus_metrics.h"

#include <arpa/inet.h>

#include <exception>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "prometheus/collectable.h"
#include "prometheus/gauge.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"
#include "server/common/host_port.h"
#include "server/common/status_macros.h"

namespace webhookd {
namespace {

// Attempts take from milliseconds up to the attempt timeout (30 s).
const prometheus::Histogram::BucketBoundaries kAttemptBuckets = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
// From submit to delivered: milliseconds, or minutes through retries.
const prometheus::Histogram::BucketBoundaries kLatencyBuckets = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
    2.5,   5,    10,    30,   60,  120,  300, 900};
// Storage writes: a buffered LevelDB write takes microseconds, a synced one
// or a PostgreSQL round trip milliseconds.
const prometheus::Histogram::BucketBoundaries kStorageBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025,  0.05,    0.1,    0.25,  0.5,    1,     5};

constexpr const char* kResponseClassNames[] = {
    "2xx", "3xx", "4xx", "5xx", "other_status", "timeout", "connection_error"};
constexpr const char* kDeliveryOutcomeNames[] = {"delivered", "failed",
                                                 "cancelled"};
constexpr const char* kStorageWriteNames[] = {"submit", "attempt_record"};

double Seconds(absl::Duration duration) {
  return absl::ToDoubleSeconds(duration);
}

prometheus::MetricFamily GaugeFamily(std::string name, std::string help,
                                     double value) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = prometheus::MetricType::Gauge;
  prometheus::ClientMetric metric;
  metric.gauge.value = value;
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace

absl::StatusOr<MetricsAddress> ParseMetricsAddress(absl::string_view listen,
                                                   absl::string_view flag) {
  constexpr absl::string_view kExample =
      "; expected host:port, e.g. 127.0.0.1:9464";
  WEBHOOKD_ASSIGN_OR_RETURN(
      HostPort parsed,
      ParseHostPort(std::string_view(listen.data(), listen.size()),
                    std::string_view(flag.data(), flag.size()),
                    std::string_view(kExample.data(), kExample.size())));
  MetricsAddress address;
  address.port = parsed.port;
  if (absl::AsciiStrToLower(parsed.host) == "localhost") {
    address.host = "127.0.0.1";
    return address;
  }
  unsigned char bytes[16];
  if (inet_pton(parsed.ipv6 ? AF_INET6 : AF_INET, parsed.host.c_str(), bytes) ==
      1) {
    address.host =
        parsed.ipv6 ? absl::StrCat("[", parsed.host, "]") : parsed.host;
    return address;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      flag, "=", listen,
      ": the host must be an IP address (IPv6 in brackets) or localhost",
      kExample));
}

// The queue gauges, read from the source at each scrape rather than updated
// on every change of the queue.
class PrometheusMetrics::QueueCollectable final
    : public prometheus::Collectable {
 public:
  void Set(std::function<QueueGauges()> source) {
    absl::MutexLock lock(&mu_);
    source_ = std::move(source);
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    QueueGauges gauges;
    {
      absl::MutexLock lock(&mu_);
      if (source_) gauges = source_();
    }
    return {
        GaugeFamily("webhookd_queue_deliveries",
                    "Deliveries waiting for an attempt on this node: new ones "
                    "and retries not yet due, or due and waiting for a slot.",
                    static_cast<double>(gauges.waiting)),
        GaugeFamily("webhookd_held_deliveries",
                    "Due deliveries held because their endpoint is disabled.",
                    static_cast<double>(gauges.held)),
        GaugeFamily("webhookd_attempts_in_flight",
                    "Delivery attempts running on this node.",
                    static_cast<double>(gauges.in_flight)),
    };
  }

 private:
  mutable absl::Mutex mu_;
  std::function<QueueGauges()> source_ ABSL_GUARDED_BY(mu_);
};

PrometheusMetrics::PrometheusMetrics(const std::string& version)
    : registry_(std::make_shared<prometheus::Registry>()),
      queue_(std::make_shared<QueueCollectable>()) {
  prometheus::Registry& registry = *registry_;
  prometheus::BuildGauge()
      .Name("webhookd_build_info")
      .Help("Always 1; the version of this webhookd in its label.")
      .Register(registry)
      .Add({{"version", version}})
      .Set(1);
  events_submitted_ = &prometheus::BuildCounter()
                           .Name("webhookd_events_submitted_total")
                           .Help(
                               "Events stored by SubmitEvent (idempotent "
                               "repeats excluded).")
                           .Register(registry)
                           .Add({});
  deliveries_created_ = &prometheus::BuildCounter()
                             .Name("webhookd_deliveries_created_total")
                             .Help("Deliveries created for submitted events.")
                             .Register(registry)
                             .Add({});
  auto& attempts = prometheus::BuildCounter()
                       .Name("webhookd_attempts_total")
                       .Help(
                           "Delivery attempts finished, test deliveries "
                           "included, by outcome and response class.")
                       .Register(registry);
  for (size_t i = 0; i < kResponseClasses; ++i) {
    attempts_[i] = &attempts.Add({{"outcome", i == 0 ? "success" : "failure"},
                                  {"response_class", kResponseClassNames[i]}});
  }
  auto& durations = prometheus::BuildHistogram()
                        .Name("webhookd_attempt_duration_seconds")
                        .Help(
                            "Duration of delivery attempts, from the start "
                            "of the request to the end of the response.")
                        .Register(registry);
  attempt_duration_[0] =
      &durations.Add({{"outcome", "failure"}}, kAttemptBuckets);
  attempt_duration_[1] =
      &durations.Add({{"outcome", "success"}}, kAttemptBuckets);
  auto& finished = prometheus::BuildCounter()
                       .Name("webhookd_deliveries_finished_total")
                       .Help(
                           "Deliveries ended for good, by outcome "
                           "(test deliveries excluded).")
                       .Register(registry);
  for (size_t i = 0; i < kDeliveryOutcomes; ++i) {
    deliveries_finished_[i] =
        &finished.Add({{"outcome", kDeliveryOutcomeNames[i]}});
  }
  delivery_latency_ =
      &prometheus::BuildHistogram()
           .Name("webhookd_delivery_latency_seconds")
           .Help(
               "Time from the submit of an event to the successful attempt "
               "of its delivery, retries included.")
           .Register(registry)
           .Add({}, kLatencyBuckets);
  retries_scheduled_ = &prometheus::BuildCounter()
                            .Name("webhookd_retries_scheduled_total")
                            .Help(
                                "Failed attempts followed by a scheduled "
                                "retry.")
                            .Register(registry)
                            .Add({});
  endpoints_auto_disabled_ =
      &prometheus::BuildCounter()
           .Name("webhookd_endpoints_auto_disabled_total")
           .Help("Endpoints disabled by webhookd itself (auto-disable).")
           .Register(registry)
           .Add({});
  auto& admission =
      prometheus::BuildCounter()
          .Name("webhookd_submits_throttled_total")
          .Help(
              "Submits that waited for delivery to catch up (admission "
              "control), by outcome: admitted after the wait, or refused "
              "with RESOURCE_EXHAUSTED.")
          .Register(registry);
  admission_[0] = &admission.Add({{"outcome", "admitted"}});
  admission_[1] = &admission.Add({{"outcome", "refused"}});
  auto& writes = prometheus::BuildHistogram()
                     .Name("webhookd_storage_write_duration_seconds")
                     .Help(
                         "Duration of storage writes: the submit "
                         "pipeline's group commit and the attempt "
                         "recorder's batches.")
                     .Register(registry);
  for (size_t i = 0; i < kStorageWrites; ++i) {
    storage_write_[i] =
        &writes.Add({{"operation", kStorageWriteNames[i]}}, kStorageBuckets);
  }
  rpcs_ = &prometheus::BuildCounter()
               .Name("webhookd_grpc_server_handled_total")
               .Help(
                   "gRPC calls finished, by service, method and status "
                   "code.")
               .Register(registry);
}

PrometheusMetrics::~PrometheusMetrics() {
  // Scrapes stop before the metrics go.
  exposer_.reset();
}

absl::StatusOr<std::unique_ptr<PrometheusMetrics>> PrometheusMetrics::Start(
    const PrometheusMetricsOptions& options) {
  absl::StatusOr<MetricsAddress> address =
      ParseMetricsAddress(options.listen, options.flag);
  if (!address.ok()) return address.status();
  std::unique_ptr<PrometheusMetrics> metrics(
      new PrometheusMetrics(options.version));
  // prometheus-cpp reports a failure to listen by an exception; civetweb
  // binds with SO_REUSEADDR only, so an address in use is refused, not
  // shared.
  try {
    metrics->exposer_ =
        std::make_unique<prometheus::Exposer>(std::vector<std::string>{
            "listening_ports", absl::StrCat(address->host, ":", address->port),
            "num_threads", "2"});
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, " (", options.flag,
                     "): address in use or not available"));
  }
  const std::vector<int> ports = metrics->exposer_->GetListeningPorts();
  if (ports.empty() || ports[0] <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.listen, " (", options.flag, ")"));
  }
  metrics->port_ = ports[0];
  metrics->exposer_->RegisterCollectable(metrics->registry_);
  metrics->exposer_->RegisterCollectable(metrics->queue_);
  return metrics;
}

void PrometheusMetrics::SetQueueSource(std::function<QueueGauges()> source) {
  queue_->Set(std::move(source));
}

std::string PrometheusMetrics::Render() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (prometheus::MetricFamily& family : queue_->Collect()) {
    families.push_back(std::move(family));
  }
  return prometheus::TextSerializer().Serialize(families);
}

void PrometheusMetrics::EventsSubmitted(size_t events, size_t deliveries) {
  events_submitted_->Increment(static_cast<double>(events));
  deliveries_created_->Increment(static_cast<double>(deliveries));
}

void PrometheusMetrics::AttemptFinished(ResponseClass response,
                                        absl::Duration duration) {
  attempts_[static_cast<size_t>(response)]->Increment();
  attempt_duration_[response == ResponseClass::k2xx ? 1 : 0]->Observe(
      Seconds(duration));
}

void PrometheusMetrics::DeliveryFinished(DeliveryOutcome outcome,
                                         absl::Duration since_submit) {
  deliveries_finished_[static_cast<size_t>(outcome)]->Increment();
  if (outcome == DeliveryOutcome::kDelivered) {
    delivery_latency_->Observe(Seconds(since_submit));
  }
}

void PrometheusMetrics::RetryScheduled() { retries_scheduled_->Increment(); }

void PrometheusMetrics::EndpointAutoDisabled() {
  endpoints_auto_disabled_->Increment();
}

void PrometheusMetrics::SubmitAdmission(AdmissionOutcome outcome) {
  admission_[outcome == AdmissionOutcome::kRefused ? 1 : 0]->Increment();
}

void PrometheusMetrics::StorageWriteFinished(StorageWrite what,
                                             absl::Duration duration) {
  storage_write_[static_cast<size_t>(what)]->Observe(Seconds(duration));
}

void PrometheusMetrics::RpcFinished(absl::string_view service,
                                    absl::string_view method, int grpc_code) {
  const std::string key = absl::StrCat(service, "/", method, "/", grpc_code);
  {
    absl::ReaderMutexLock lock(&rpc_mu_);
    auto found = rpc_counters_.find(key);
    if (found != rpc_counters_.end()) {
      found->second->Increment();
      return;
    }
  }
  prometheus::Counter* counter = &rpcs_->Add(
      {{"grpc_service", std::string(service)},
       {"grpc_method", std::string(method)},
       {"grpc_code",
        absl::StatusCodeToString(static_cast<absl::StatusCode>(grpc_code))}});
  {
    absl::MutexLock lock(&rpc_mu_);
    rpc_counters_.emplace(key, counter);
  }
  counter->Increment();
}

}  // namespace webhookd
