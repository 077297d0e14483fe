// PrometheusMetrics on its own: the address it takes, an address in use,
// and what it serves.

#include "server/metrics/prometheus_metrics.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/metrics_scrape.h"

namespace webhookd {
namespace {

using ::testing::HasSubstr;
using testing::MetricValue;
using testing::ScrapeMetrics;

// A socket listening on 127.0.0.1 on a free port, as another program's
// would: without SO_REUSEADDR or SO_REUSEPORT.
class PlainListener {
 public:
  PlainListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
        listen(fd_, 8) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~PlainListener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

absl::StatusOr<std::unique_ptr<PrometheusMetrics>> StartOn(
    const std::string& listen) {
  PrometheusMetricsOptions options;
  options.listen = listen;
  options.version = "1.2.3";
  return PrometheusMetrics::Start(options);
}

TEST(ParseMetricsAddressTest, AcceptsIpLiteralsAndLocalhost) {
  absl::StatusOr<MetricsAddress> v4 =
      ParseMetricsAddress("127.0.0.1:9464", "--metrics_listen");
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 9464);
  absl::StatusOr<MetricsAddress> v6 =
      ParseMetricsAddress("[::1]:0", "--metrics_listen");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->host, "[::1]");
  EXPECT_EQ(v6->port, 0);
  absl::StatusOr<MetricsAddress> local =
      ParseMetricsAddress("localhost:65535", "--metrics_listen");
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_EQ(local->host, "127.0.0.1");
}

TEST(ParseMetricsAddressTest, RefusesAnAddressWithoutPort) {
  for (const char* listen : {"127.0.0.1", "127.0.0.1:", "[::1]"}) {
    absl::StatusOr<MetricsAddress> address =
        ParseMetricsAddress(listen, "--metrics_listen");
    ASSERT_FALSE(address.ok()) << listen;
    EXPECT_EQ(address.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(address.status().message(), HasSubstr("--metrics_listen"));
    EXPECT_THAT(address.status().message(), HasSubstr("no port"));
  }
}

TEST(ParseMetricsAddressTest, RefusesAPortOutOfRange) {
  for (const char* listen :
       {"127.0.0.1:65536", "127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:x",
        "127.0.0.1:0000009464"}) {
    absl::StatusOr<MetricsAddress> address =
        ParseMetricsAddress(listen, "--metrics_listen");
    ASSERT_FALSE(address.ok()) << listen;
    EXPECT_THAT(address.status().message(), HasSubstr("0 to 65535"));
  }
}

TEST(ParseMetricsAddressTest, RefusesAHostThatIsNoIpAddress) {
  for (const char* listen : {":9464", "example.com:9464", "1.2.3:9464"}) {
    absl::StatusOr<MetricsAddress> address =
        ParseMetricsAddress(listen, "--metrics_listen");
    ASSERT_FALSE(address.ok()) << listen;
    EXPECT_THAT(address.status().message(), HasSubstr("--metrics_listen"));
  }
}

TEST(PrometheusMetricsTest, ServesTheExpositionOnAFreePort) {
  absl::StatusOr<std::unique_ptr<PrometheusMetrics>> metrics =
      StartOn("127.0.0.1:0");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  ASSERT_GT((*metrics)->port(), 0);
  (*metrics)->EventsSubmitted(2, 5);
  (*metrics)->AttemptFinished(ResponseClass::k4xx, absl::Milliseconds(30));
  (*metrics)->DeliveryFinished(DeliveryOutcome::kDelivered, absl::Seconds(3));
  (*metrics)->RpcFinished("webhook.v1.WebhookService", "SubmitEvent", 8);
  (*metrics)->SetQueueSource([] { return QueueGauges{7, 2, 3}; });

  absl::StatusOr<std::string> text = ScrapeMetrics((*metrics)->port());
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(MetricValue(*text, "webhookd_events_submitted_total"), 2);
  EXPECT_EQ(MetricValue(*text, "webhookd_deliveries_created_total"), 5);
  EXPECT_EQ(
      MetricValue(
          *text,
          R"(webhookd_attempts_total{outcome="failure",response_class="4xx"})"),
      1);
  EXPECT_EQ(
      MetricValue(
          *text,
          R"(webhookd_attempt_duration_seconds_bucket{outcome="failure",le="0.05"})"),
      1);
  EXPECT_EQ(MetricValue(
                *text, R"(webhookd_delivery_latency_seconds_bucket{le="2.5"})"),
            0);
  EXPECT_EQ(
      MetricValue(*text, R"(webhookd_delivery_latency_seconds_bucket{le="5"})"),
      1);
  EXPECT_EQ(
      MetricValue(
          *text,
          R"(webhookd_grpc_server_handled_total{grpc_code="RESOURCE_EXHAUSTED",grpc_method="SubmitEvent",grpc_service="webhook.v1.WebhookService"})"),
      1);
  EXPECT_EQ(MetricValue(*text, "webhookd_queue_deliveries"), 7);
  EXPECT_EQ(MetricValue(*text, "webhookd_held_deliveries"), 2);
  EXPECT_EQ(MetricValue(*text, "webhookd_attempts_in_flight"), 3);
  EXPECT_EQ(MetricValue(*text, R"(webhookd_build_info{version="1.2.3"})"), 1);
  EXPECT_EQ(MetricValue(*text, "webhookd_endpoints_auto_disabled_total"), 0);
  EXPECT_EQ(MetricValue((*metrics)->Render(), "webhookd_queue_deliveries"), 7);
}

TEST(PrometheusMetricsTest, RefusesAnAddressAnotherProgramListensOn) {
  PlainListener other;
  ASSERT_GT(other.port(), 0);
  absl::StatusOr<std::unique_ptr<PrometheusMetrics>> metrics =
      StartOn(absl::StrCat("127.0.0.1:", other.port()));
  ASSERT_FALSE(metrics.ok());
  EXPECT_EQ(metrics.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(metrics.status().message(),
              HasSubstr(absl::StrCat("cannot listen on 127.0.0.1:",
                                     other.port(), " (--metrics_listen)")));
}

TEST(PrometheusMetricsTest, RefusesThePortOfAnotherMetricsServer) {
  absl::StatusOr<std::unique_ptr<PrometheusMetrics>> first =
      StartOn("127.0.0.1:0");
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<PrometheusMetrics>> second =
      StartOn(absl::StrCat("127.0.0.1:", (*first)->port()));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  // Every connection still reaches the first one.
  (*first)->RetryScheduled();
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<std::string> text = ScrapeMetrics((*first)->port());
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(MetricValue(*text, "webhookd_retries_scheduled_total"), 1);
  }
}

TEST(ClassifyResponseTest, ClassesByStatusAndFailure) {
  EXPECT_EQ(ClassifyResponse(204, false), ResponseClass::k2xx);
  EXPECT_EQ(ClassifyResponse(301, false), ResponseClass::k3xx);
  EXPECT_EQ(ClassifyResponse(429, false), ResponseClass::k4xx);
  EXPECT_EQ(ClassifyResponse(503, false), ResponseClass::k5xx);
  EXPECT_EQ(ClassifyResponse(199, false), ResponseClass::kOtherStatus);
  EXPECT_EQ(ClassifyResponse(0, true), ResponseClass::kTimeout);
  EXPECT_EQ(ClassifyResponse(0, false), ResponseClass::kConnectionError);
}

}  // namespace
}  // namespace webhookd
