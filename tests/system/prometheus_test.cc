// The metrics as Prometheus sees them: Debian's promtool checks the real
// exposition, and a real Prometheus server, started here on loopback,
// scrapes a real webhookd and answers a query for a counter. Also the
// metrics flags of the webhookd binary.

#include <sys/wait.h>

#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/eventually.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"
#include "tests/support/webhookd_process.h"

namespace webhookd {
namespace {

using testing::CreateEndpoint;
using testing::Eventually;
using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::HttpGet;
using testing::HttpReceiver;
using testing::MakeEndpoint;
using testing::MetricValue;
using testing::ReadFile;
using testing::RunResult;
using testing::ScrapeMetrics;
using testing::Submit;
using testing::Subprocess;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::WaitFinished;
using testing::WebhookdProcess;

constexpr char kDelivered[] =
    R"(webhookd_deliveries_finished_total{outcome="delivered"})";

// Runs `promtool check metrics` on `exposition` (written to `path`).
RunResult Promtool(const std::string& exposition, const std::string& path) {
  std::ofstream(path) << exposition;
  return Subprocess::Run(
      {"/bin/sh", "-c", absl::StrCat("promtool check metrics < '", path, "'")},
      absl::Seconds(60));
}

// A webhookd with metrics on a free port that has made one delivery.
class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options = TestServerOptions(dir_.Sub("data"));
    options.metrics_listen = "127.0.0.1:0";
    server_ = std::make_unique<TestServer>(options);
    server_->Start();
    CreateEndpoint(server_->stub(),
                   MakeEndpoint("thread-p", receiver_.Url(), "s3cret"));
    const webhook::v1::SubmitEventResponse submitted =
        Submit(server_->stub(), ExampleEvent("thread-p"));
    ASSERT_EQ(submitted.delivery_ids_size(), 1);
    WaitFinished(server_->stub(), submitted.delivery_ids(0));
    ASSERT_TRUE(Eventually([&] {
      return testing::ScrapedValue(metrics_port(), kDelivered) == 1;
    }));
  }

  int metrics_port() { return server_->server().metrics_port(); }

  HttpReceiver receiver_;
  TestDir dir_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(PrometheusTest, PromtoolAcceptsTheExposition) {
  absl::StatusOr<std::string> exposition = ScrapeMetrics(metrics_port());
  ASSERT_TRUE(exposition.ok()) << exposition.status();
  const RunResult checked = Promtool(*exposition, dir_.Sub("metrics.txt"));
  EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err;
  EXPECT_EQ(checked.out + checked.err, "");
}

TEST_F(PrometheusTest, PromtoolRefusesABrokenExposition) {
  // The check above can fail: promtool finds faults in an exposition.
  absl::StatusOr<std::string> exposition = ScrapeMetrics(metrics_port());
  ASSERT_TRUE(exposition.ok()) << exposition.status();
  const std::string broken = absl::StrReplaceAll(
      *exposition, {{"webhookd_retries_scheduled_total 0",
                     "webhookd_retries_scheduled_total{ 0"}});
  ASSERT_NE(broken, *exposition);
  const RunResult checked = Promtool(broken, dir_.Sub("broken.txt"));
  EXPECT_NE(checked.exit_code, 0);
}

TEST_F(PrometheusTest, PrometheusScrapesTheServerAndAnswersAQuery) {
  absl::StatusOr<int> free_port = testing::FreeLoopbackPort();
  ASSERT_TRUE(free_port.ok()) << free_port.status();
  const int prometheus_port = *free_port;
  const std::string config = dir_.Sub("prometheus.yml");
  std::ofstream(config) << "global:\n"
                           "  scrape_interval: 1s\n"
                           "  scrape_timeout: 1s\n"
                           "  evaluation_interval: 1s\n"
                           "scrape_configs:\n"
                           "  - job_name: webhookd\n"
                           "    static_configs:\n"
                           "      - targets: ['127.0.0.1:"
                        << metrics_port() << "']\n";
  Subprocess::Options options;
  options.output_file = dir_.Sub("prometheus.log");
  options.kill_with_parent = true;
  absl::StatusOr<std::unique_ptr<Subprocess>> prometheus = Subprocess::Start(
      {"/usr/bin/prometheus", absl::StrCat("--config.file=", config),
       absl::StrCat("--storage.tsdb.path=", dir_.Sub("tsdb")),
       absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port)},
      options);
  ASSERT_TRUE(prometheus.ok()) << prometheus.status();

  // What Prometheus answers for the counter, once it has scraped it.
  const std::string query = absl::StrCat(
      "/api/v1/query?query=webhookd_deliveries_finished_total%7Boutcome%3D%22"
      "delivered%22%7D");
  std::string last;
  const bool answered = Eventually(
      [&] {
        absl::StatusOr<std::string> body = HttpGet(prometheus_port, query);
        if (!body.ok()) {
          last = body.status().ToString();
          return false;
        }
        last = *body;
        const nlohmann::json answer =
            nlohmann::json::parse(*body, nullptr, false);
        if (answer.is_discarded() || answer.value("status", "") != "success") {
          return false;
        }
        const nlohmann::json& result = answer["data"]["result"];
        return result.is_array() && result.size() == 1 &&
               result[0]["metric"].value("job", "") == "webhookd" &&
               result[0]["value"][1] == "1";
      },
      absl::Minutes(3));
  EXPECT_TRUE(answered) << "last answer: " << last << "\nPrometheus log:\n"
                        << testing::LogTail(
                               ReadFile(dir_.Sub("prometheus.log")));
}

TEST(MetricsFlagsTest, MetricsPortFileNamesThePortServed) {
  TestDir dir;
  const std::string port_file = dir.Sub("metrics_port");
  std::unique_ptr<WebhookdProcess> server = WebhookdProcess::StartServer(
      dir.Sub("data"), dir.path(),
      {"--metrics_listen=127.0.0.1:0",
       absl::StrCat("--metrics_port_file=", port_file)});
  ASSERT_TRUE(server->status().ok()) << server->status();
  int port = 0;
  ASSERT_TRUE(
      absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(port_file)), &port));
  absl::StatusOr<std::string> exposition = ScrapeMetrics(port);
  ASSERT_TRUE(exposition.ok()) << exposition.status();
  EXPECT_EQ(MetricValue(*exposition, "webhookd_events_submitted_total"), 0);
  EXPECT_THAT(server->Log(),
              HasSubstr(absl::StrCat("metrics on 127.0.0.1:0 (port ", port,
                                     "), path /metrics")));
}

TEST(MetricsFlagsTest, BadMetricsListenStopsStartUp) {
  for (const auto& [listen, why] :
       {std::pair<std::string, std::string>{"127.0.0.1", "no port"},
        {"127.0.0.1:99999", "port 99999 is out of range"}}) {
    TestDir dir;
    WebhookdProcess process(
        {"--listen=127.0.0.1:0", absl::StrCat("--data_dir=", dir.Sub("data")),
         absl::StrCat("--metrics_listen=", listen)},
        dir.Sub("log"));
    const int status = process.Wait(absl::Seconds(60));
    ASSERT_NE(status, -1) << listen;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << listen;
    EXPECT_THAT(process.Log(), HasSubstr(absl::StrCat(
                                   "--metrics_listen=", listen, ": ", why)));
  }
}

TEST(MetricsFlagsTest, MetricsPortInUseStopsStartUp) {
  TestDir dir;
  const std::string port_file = dir.Sub("metrics_port");
  std::unique_ptr<WebhookdProcess> first = WebhookdProcess::StartServer(
      dir.Sub("data"), dir.path(),
      {"--metrics_listen=127.0.0.1:0",
       absl::StrCat("--metrics_port_file=", port_file)});
  ASSERT_TRUE(first->status().ok()) << first->status();
  const std::string port(absl::StripAsciiWhitespace(ReadFile(port_file)));
  WebhookdProcess second(
      {"--listen=127.0.0.1:0", absl::StrCat("--data_dir=", dir.Sub("data2")),
       absl::StrCat("--metrics_listen=127.0.0.1:", port)},
      dir.Sub("second.log"));
  const int status = second.Wait(absl::Seconds(60));
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1);
  EXPECT_THAT(second.Log(),
              HasSubstr(absl::StrCat("cannot listen on 127.0.0.1:", port,
                                     " (--metrics_listen)")));
}

}  // namespace
}  // namespace webhookd
