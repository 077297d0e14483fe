// Prometheus metrics of a real server (LevelDB, or PostgreSQL as one node of
// several would use it): deliveries to real loopback receivers, then the
// counters read from a real scrape of /metrics.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/eventually.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/postgres_server.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using testing::Context;
using testing::CreateEndpoint;
using testing::Eventually;
using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using testing::MakeEndpoint;
using testing::MetricValue;
using testing::ScrapedValue;
using testing::ScrapeMetrics;
using testing::Submit;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::WaitFinished;
using webhook::v1::Delivery;

enum class Backend { kLevelDb, kPostgres };

class MetricsTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    options_ = TestServerOptions(dir_.Sub("data"));
    options_.metrics_listen = "127.0.0.1:0";
    if (GetParam() == Backend::kPostgres) {
      absl::StatusOr<std::string> conninfo =
          testing::NewSharedDatabase("metrics");
      ASSERT_TRUE(conninfo.ok()) << conninfo.status();
      options_.postgres = *conninfo;
    }
  }

  void StartServer() {
    server_ = std::make_unique<TestServer>(options_);
    server_->Start();
  }

  webhook::v1::WebhookService::Stub& stub() { return server_->stub(); }
  int metrics_port() { return server_->server().metrics_port(); }

  // Whether `series` reaches `value` in the scrapes (counters only grow).
  bool Reaches(const std::string& series, double value) {
    std::optional<double> last;
    const bool reached = Eventually([&] {
      last = ScrapedValue(metrics_port(), series);
      return last.has_value() && *last >= value;
    });
    EXPECT_TRUE(reached) << series << " is "
                         << (last.has_value() ? absl::StrCat(*last) : "absent")
                         << ", not " << value;
    return reached;
  }

  void ExpectValue(const std::string& exposition, const std::string& series,
                   double value) {
    std::optional<double> found = MetricValue(exposition, series);
    ASSERT_TRUE(found.has_value()) << series << " missing in\n" << exposition;
    EXPECT_EQ(*found, value) << series;
  }

  void SetEnabled(const std::string& id, bool enabled) {
    grpc::Status status;
    if (enabled) {
      webhook::v1::EnableEndpointRequest request;
      request.set_id(id);
      webhook::v1::EnableEndpointResponse response;
      status = stub().EnableEndpoint(Context().get(), request, &response);
    } else {
      webhook::v1::DisableEndpointRequest request;
      request.set_id(id);
      webhook::v1::DisableEndpointResponse response;
      status = stub().DisableEndpoint(Context().get(), request, &response);
    }
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  TestDir dir_;
  ServerOptions options_;
  std::unique_ptr<TestServer> server_;
};

TEST_P(MetricsTest, DeliveriesAndAttemptsAreCountedByOutcome) {
  StartServer();
  ASSERT_GT(metrics_port(), 0);
  HttpReceiver good;
  HttpReceiver bad;
  bad.SetDefaultStatus(500);
  CreateEndpoint(stub(), MakeEndpoint("thread-m", good.Url(), "s3cret"));
  CreateEndpoint(stub(), MakeEndpoint("thread-m", bad.Url(), "s3cret"));
  const webhook::v1::SubmitEventResponse submitted =
      Submit(stub(), ExampleEvent("thread-m"));
  ASSERT_EQ(submitted.delivery_ids_size(), 2);
  for (const std::string& id : submitted.delivery_ids()) {
    WaitFinished(stub(), id);
  }

  // Counted once the outcome is written, which GetDelivery may show first.
  ASSERT_TRUE(
      Reaches(R"(webhookd_deliveries_finished_total{outcome="delivered"})", 1));
  ASSERT_TRUE(
      Reaches(R"(webhookd_deliveries_finished_total{outcome="failed"})", 1));
  absl::StatusOr<std::string> exposition = ScrapeMetrics(metrics_port());
  ASSERT_TRUE(exposition.ok()) << exposition.status();
  const std::string& text = *exposition;
  ExpectValue(text, "webhookd_events_submitted_total", 1);
  ExpectValue(text, "webhookd_deliveries_created_total", 2);
  ExpectValue(text,
              R"(webhookd_deliveries_finished_total{outcome="delivered"})", 1);
  ExpectValue(text, R"(webhookd_deliveries_finished_total{outcome="failed"})",
              1);
  ExpectValue(text,
              R"(webhookd_deliveries_finished_total{outcome="cancelled"})", 0);
  // The schedule of TestServerOptions: 3 retries, so 4 attempts get 500.
  ExpectValue(
      text,
      R"(webhookd_attempts_total{outcome="success",response_class="2xx"})", 1);
  ExpectValue(
      text,
      R"(webhookd_attempts_total{outcome="failure",response_class="5xx"})", 4);
  ExpectValue(text, "webhookd_retries_scheduled_total", 3);
  ExpectValue(
      text, R"(webhookd_attempt_duration_seconds_count{outcome="success"})", 1);
  ExpectValue(
      text, R"(webhookd_attempt_duration_seconds_count{outcome="failure"})", 4);
  ExpectValue(text, "webhookd_delivery_latency_seconds_count", 1);
  ExpectValue(text, "webhookd_endpoints_auto_disabled_total", 0);
  ExpectValue(text, "webhookd_queue_deliveries", 0);
  ExpectValue(text, "webhookd_attempts_in_flight", 0);
  ExpectValue(text, "webhookd_held_deliveries", 0);
  ExpectValue(
      text, absl::StrCat(R"(webhookd_build_info{version=")", kVersion, R"("})"),
      1);
  EXPECT_GE(
      MetricValue(
          text,
          R"(webhookd_storage_write_duration_seconds_count{operation="submit"})")
          .value_or(0),
      1);
  EXPECT_GE(
      MetricValue(
          text,
          R"(webhookd_storage_write_duration_seconds_count{operation="attempt_record"})")
          .value_or(0),
      1);
  ExpectValue(
      text,
      R"(webhookd_grpc_server_handled_total{grpc_code="OK",grpc_method="SubmitEvent",grpc_service="webhook.v1.WebhookService"})",
      1);
  ExpectValue(
      text,
      R"(webhookd_grpc_server_handled_total{grpc_code="OK",grpc_method="CreateEndpoint",grpc_service="webhook.v1.WebhookService"})",
      2);
}

TEST_P(MetricsTest, ConnectionErrorsAndTimeoutsHaveTheirClass) {
  options_.engine.retry_policy = RetryPolicy({});
  options_.engine.attempt_timeout = absl::Milliseconds(500);
  StartServer();
  HttpReceiver hanging;
  hanging.SetDefaultResponse(200, "", {}, absl::Seconds(5));
  HttpReceiver closed;
  const std::string closed_url = closed.Url();
  closed.Stop();
  CreateEndpoint(stub(), MakeEndpoint("thread-e", hanging.Url(), "s3cret"));
  CreateEndpoint(stub(), MakeEndpoint("thread-e", closed_url, "s3cret"));
  const webhook::v1::SubmitEventResponse submitted =
      Submit(stub(), ExampleEvent("thread-e"));
  for (const std::string& id : submitted.delivery_ids()) {
    WaitFinished(stub(), id);
  }
  EXPECT_TRUE(Reaches(
      R"(webhookd_attempts_total{outcome="failure",response_class="timeout"})",
      1));
  EXPECT_TRUE(Reaches(
      R"(webhookd_attempts_total{outcome="failure",response_class="connection_error"})",
      1));
  hanging.Stop();
}

TEST_P(MetricsTest, HeldDeliveriesShowAndDeletionCancelsThem) {
  // Time enough to disable the endpoint between the first attempt and the
  // retry, which then finds it disabled.
  options_.engine.retry_policy = RetryPolicy({absl::Seconds(2)});
  StartServer();
  HttpReceiver bad;
  bad.SetDefaultStatus(503);
  const webhook::v1::Endpoint endpoint =
      CreateEndpoint(stub(), MakeEndpoint("thread-h", bad.Url(), "s3cret"));
  Submit(stub(), ExampleEvent("thread-h"));
  ASSERT_TRUE(bad.WaitForRequests(1, testing::kEventuallyTimeout));
  SetEnabled(endpoint.id(), false);
  if (GetParam() == Backend::kLevelDb) {
    ASSERT_TRUE(Reaches("webhookd_held_deliveries", 1));
    EXPECT_EQ(ScrapedValue(metrics_port(), "webhookd_queue_deliveries"), 0);
  }
  // On a shared store, no node claims a delivery of a disabled endpoint:
  // it waits in the database, and no node's gauge holds it.

  webhook::v1::DeleteEndpointRequest request;
  request.set_id(endpoint.id());
  webhook::v1::DeleteEndpointResponse response;
  ASSERT_TRUE(stub().DeleteEndpoint(Context().get(), request, &response).ok());
  EXPECT_TRUE(
      Reaches(R"(webhookd_deliveries_finished_total{outcome="cancelled"})", 1));
  EXPECT_EQ(ScrapedValue(metrics_port(), "webhookd_held_deliveries"), 0);
  EXPECT_EQ(bad.RequestCount(), 1u);
}

TEST_P(MetricsTest, GrpcCallsAreCountedByCode) {
  StartServer();
  webhook::v1::GetEndpointRequest request;
  request.set_id("ep_missing");
  webhook::v1::GetEndpointResponse response;
  EXPECT_EQ(
      stub().GetEndpoint(Context().get(), request, &response).error_code(),
      grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Reaches(
      R"(webhookd_grpc_server_handled_total{grpc_code="NOT_FOUND",grpc_method="GetEndpoint",grpc_service="webhook.v1.WebhookService"})",
      1));
}

TEST_P(MetricsTest, BadMetricsListenIsRefusedBeforeStorageIsOpened) {
  for (const char* listen :
       {"127.0.0.1", "127.0.0.1:99999", ":9464", "metrics.example:9464"}) {
    options_.metrics_listen = listen;
    absl::StatusOr<std::unique_ptr<WebhookServer>> server =
        WebhookServer::Start(options_);
    ASSERT_FALSE(server.ok()) << listen;
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(server.status().message(), HasSubstr("--metrics_listen"));
  }
  if (GetParam() == Backend::kLevelDb) {
    EXPECT_FALSE(std::filesystem::exists(options_.data_dir));
  }
}

TEST_P(MetricsTest, MetricsPortInUseStopsStartUp) {
  StartServer();
  ServerOptions second = TestServerOptions(dir_.Sub("second"));
  second.metrics_listen = absl::StrCat("127.0.0.1:", metrics_port());
  absl::StatusOr<std::unique_ptr<WebhookServer>> server =
      WebhookServer::Start(second);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(server.status().message(),
              HasSubstr(absl::StrCat("cannot listen on 127.0.0.1:",
                                     metrics_port(), " (--metrics_listen)")));
  // The first server still answers every scrape.
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(ScrapeMetrics(metrics_port()).ok());
  }
}

TEST_P(MetricsTest, AutoDisabledEndpointsAreCounted) {
  StartServer();
  HttpReceiver gone;
  gone.SetDefaultStatus(410);
  CreateEndpoint(stub(), MakeEndpoint("thread-gone", gone.Url()));
  Submit(stub(), ExampleEvent("thread-gone"));

  EXPECT_TRUE(Reaches("webhookd_endpoints_auto_disabled_total", 1));
}

INSTANTIATE_TEST_SUITE_P(Backends, MetricsTest,
                         ::testing::Values(Backend::kLevelDb,
                                           Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param == Backend::kLevelDb ? "LevelDb"
                                                                  : "Postgres";
                         });

}  // namespace
}  // namespace webhookd
