// W3C trace context and the per-attempt and access logs, end to end: a real
// server on port 0, a real gRPC channel and a real HTTP receiver on
// loopback.

#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/trace_context.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/log_capture.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using testing::Context;
using testing::CreateEndpoint;
using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using ::testing::IsEmpty;
using testing::LogCapture;
using testing::MakeEndpoint;
using ::testing::MatchesRegex;
using ::testing::Not;
using testing::ReceivedRequest;
using ::testing::SizeIs;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::WaitFinished;

constexpr char kTraceparent[] =
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr char kTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kTracestate[] = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

class TracePropagationTest : public ::testing::Test {
 protected:
  void StartServer(bool trace_new_events = false, bool access_log = false) {
    ServerOptions options = TestServerOptions(dir_.Sub("data"));
    options.engine.trace_new_events = trace_new_events;
    options.access_log = access_log;
    server_ = std::make_unique<TestServer>(options);
    server_->Start();
  }

  // Submits the example event with `metadata` and returns its only
  // delivery's id.
  std::string SubmitWith(
      const std::vector<std::pair<std::string, std::string>>& metadata) {
    std::unique_ptr<grpc::ClientContext> context = Context();
    for (const auto& [key, value] : metadata) context->AddMetadata(key, value);
    webhook::v1::SubmitEventResponse response;
    const grpc::Status status = server_->stub().SubmitEvent(
        context.get(), ExampleEvent("thread-1"), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_THAT(response.delivery_ids(), SizeIs(1));
    return response.delivery_ids_size() == 1 ? response.delivery_ids(0) : "";
  }

  TestDir dir_;
  HttpReceiver receiver_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(TracePropagationTest, EveryAttemptCarriesTheTraceIdWithAFreshSpanId) {
  StartServer();
  CreateEndpoint(server_->stub(), MakeEndpoint("thread-1", receiver_.Url()));
  receiver_.PushResponse(500);
  receiver_.PushResponse(503);
  const std::string id =
      SubmitWith({{"traceparent", kTraceparent}, {"tracestate", kTracestate}});
  const webhook::v1::Delivery delivery = WaitFinished(server_->stub(), id);
  ASSERT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(delivery.traceparent(), kTraceparent);
  EXPECT_EQ(delivery.tracestate(), kTracestate);

  const std::vector<ReceivedRequest> requests = receiver_.Requests();
  ASSERT_THAT(requests, SizeIs(3));
  ASSERT_EQ(delivery.attempt_history_size(), 3);
  std::set<std::string> spans;
  for (int i = 0; i < 3; ++i) {
    const std::string sent = requests[i].Header("traceparent");
    EXPECT_THAT(requests[i].HeaderValues("traceparent"), SizeIs(1));
    EXPECT_THAT(
        sent, MatchesRegex(absl::StrCat("00-", kTraceId, "-[0-9a-f]{16}-01")));
    EXPECT_NE(SpanIdOf(sent), "00f067aa0ba902b7");
    EXPECT_EQ(requests[i].Header("tracestate"), kTracestate);
    // The attempt record shows what was sent.
    EXPECT_EQ(delivery.attempt_history(i).traceparent(), sent);
    spans.insert(std::string(SpanIdOf(sent)));
  }
  EXPECT_THAT(spans, SizeIs(3)) << "a new span id per attempt";
}

TEST_F(TracePropagationTest, WithoutTraceparentNoneIsSent) {
  StartServer();
  CreateEndpoint(server_->stub(), MakeEndpoint("thread-1", receiver_.Url()));
  // A tracestate alone means nothing.
  const std::string id = SubmitWith({{"tracestate", kTracestate}});
  const webhook::v1::Delivery delivery = WaitFinished(server_->stub(), id);
  ASSERT_THAT(receiver_.Requests(), SizeIs(1));
  EXPECT_FALSE(receiver_.Requests()[0].HasHeader("traceparent"));
  EXPECT_FALSE(receiver_.Requests()[0].HasHeader("tracestate"));
  EXPECT_EQ(delivery.traceparent(), "");
  EXPECT_EQ(delivery.attempt_history(0).traceparent(), "");
}

TEST_F(TracePropagationTest, AnInvalidTraceparentIsIgnoredNotRefused) {
  StartServer();
  CreateEndpoint(server_->stub(), MakeEndpoint("thread-1", receiver_.Url()));
  LogCapture log(LogLevel::kDebug);
  const std::string id =
      SubmitWith({{"traceparent",
                   "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"},
                  {"tracestate", kTracestate}});
  ASSERT_FALSE(id.empty());
  WaitFinished(server_->stub(), id);
  ASSERT_THAT(receiver_.Requests(), SizeIs(1));
  EXPECT_FALSE(receiver_.Requests()[0].HasHeader("traceparent"));
  EXPECT_THAT(log.Text(), HasSubstr("SubmitEvent trace context ignored"));
  EXPECT_THAT(log.Text(), HasSubstr("only lowercase hex digits"));
}

TEST_F(TracePropagationTest, TraceNewEventsGivesEachEventItsOwnTrace) {
  StartServer(/*trace_new_events=*/true);
  CreateEndpoint(server_->stub(), MakeEndpoint("thread-1", receiver_.Url()));
  const webhook::v1::Delivery first =
      WaitFinished(server_->stub(), SubmitWith({}));
  const webhook::v1::Delivery second =
      WaitFinished(server_->stub(), SubmitWith({}));
  ASSERT_TRUE(ParseTraceparent(first.traceparent()).ok())
      << first.traceparent();
  EXPECT_NE(TraceIdOf(first.traceparent()), TraceIdOf(second.traceparent()));
  ASSERT_THAT(receiver_.Requests(), SizeIs(2));
  EXPECT_EQ(TraceIdOf(receiver_.Requests()[0].Header("traceparent")),
            TraceIdOf(first.traceparent()));
  // A received one still wins.
  const webhook::v1::Delivery third = WaitFinished(
      server_->stub(), SubmitWith({{"traceparent", kTraceparent}}));
  EXPECT_EQ(third.traceparent(), kTraceparent);
}

TEST_F(TracePropagationTest, EventTraceContextReplacesAnEndpointsOwnHeader) {
  StartServer();
  webhook::v1::Endpoint endpoint = MakeEndpoint("thread-1", receiver_.Url());
  webhook::v1::Header* fixed = endpoint.add_headers();
  fixed->set_name("Traceparent");
  fixed->set_value("00-11111111111111111111111111111111-2222222222222222-00");
  CreateEndpoint(server_->stub(), endpoint);

  WaitFinished(server_->stub(), SubmitWith({{"traceparent", kTraceparent}}));
  WaitFinished(server_->stub(), SubmitWith({}));
  const std::vector<ReceivedRequest> requests = receiver_.Requests();
  ASSERT_THAT(requests, SizeIs(2));
  ASSERT_THAT(requests[0].HeaderValues("traceparent"), SizeIs(1));
  EXPECT_EQ(TraceIdOf(requests[0].Header("traceparent")), kTraceId);
  // Without one, the endpoint's header goes out as configured.
  EXPECT_EQ(requests[1].Header("traceparent"),
            "00-11111111111111111111111111111111-2222222222222222-00");
}

// The access log is its own switch: debug lines alone do not log calls,
// and --access_log logs them at info.
TEST_F(TracePropagationTest, AccessLogIsOffUnlessAskedAndThenAtInfo) {
  StartServer();
  {
    LogCapture log(LogLevel::kDebug, LogFormat::kJson);
    CreateEndpoint(server_->stub(), MakeEndpoint("thread-1", receiver_.Url()));
    EXPECT_THAT(log.JsonLines("grpc call"), IsEmpty()) << log.Text();
  }
  server_.reset();
  StartServer(/*trace_new_events=*/false, /*access_log=*/true);
  LogCapture log(LogLevel::kInfo, LogFormat::kJson);
  CreateEndpoint(server_->stub(), MakeEndpoint("thread-1", receiver_.Url()));
  const std::vector<nlohmann::json> calls = log.JsonLines("grpc call");
  ASSERT_THAT(calls, SizeIs(1)) << log.Text();
  EXPECT_EQ(calls[0]["level"], "info");
  EXPECT_EQ(calls[0]["method"], "/webhook.v1.WebhookService/CreateEndpoint");
  EXPECT_EQ(calls[0]["code"], "OK");
}

TEST_F(TracePropagationTest, DebugLogsEachAttemptWithoutSecrets) {
  StartServer(/*trace_new_events=*/false, /*access_log=*/true);
  LogCapture log(LogLevel::kDebug, LogFormat::kJson);
  webhook::v1::Endpoint endpoint =
      MakeEndpoint("thread-1", receiver_.Url(), "endpoint-secret-never-logged");
  webhook::v1::Header* auth = endpoint.add_headers();
  auth->set_name("Authorization");
  auth->set_value("Bearer header-value-never-logged");
  const webhook::v1::Endpoint created =
      CreateEndpoint(server_->stub(), endpoint);
  receiver_.PushResponse(500, "receiver body never logged");
  const std::string id = SubmitWith({{"traceparent", kTraceparent}});
  const webhook::v1::Delivery delivery = WaitFinished(server_->stub(), id);
  ASSERT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);

  const std::vector<nlohmann::json> attempts =
      log.JsonLines("attempt finished");
  ASSERT_THAT(attempts, SizeIs(2)) << log.Text();
  const nlohmann::json& first = attempts[0];
  EXPECT_EQ(first["level"], "debug");
  EXPECT_EQ(first["delivery_id"], id);
  EXPECT_EQ(first["endpoint_id"], created.id());
  EXPECT_EQ(first["event_id"], delivery.event_id());
  EXPECT_EQ(first["attempt"], 1);
  EXPECT_EQ(first["status"], 500);
  EXPECT_EQ(first["error"], "HTTP 500");
  EXPECT_TRUE(first["duration_ms"].is_number_integer());
  EXPECT_EQ(first["outcome"], "retry");
  EXPECT_TRUE(first.contains("next_attempt"));
  EXPECT_EQ(first["trace_id"], kTraceId);
  EXPECT_EQ(first["span_id"],
            SpanIdOf(delivery.attempt_history(0).traceparent()));
  const nlohmann::json& second = attempts[1];
  EXPECT_EQ(second["attempt"], 2);
  EXPECT_EQ(second["status"], 200);
  EXPECT_EQ(second["outcome"], "delivered");
  EXPECT_FALSE(second.contains("error"));

  // The access log has the calls.
  bool submit_logged = false;
  for (const nlohmann::json& call : log.JsonLines("grpc call")) {
    if (call["method"] == "/webhook.v1.WebhookService/SubmitEvent") {
      submit_logged = call["code"] == "OK" && call.contains("peer") &&
                      call["duration_us"].is_number_integer();
    }
  }
  EXPECT_TRUE(submit_logged) << log.Text();

  const std::string text = log.Text();
  const std::string signature =
      receiver_.Requests()[0].Header("X-Hub-Signature-256");
  ASSERT_FALSE(signature.empty());
  for (const std::string& never :
       {std::string("endpoint-secret-never-logged"),
        std::string("header-value-never-logged"), signature,
        std::string("receiver body never logged"),
        std::string("Sales were up")}) {
    EXPECT_THAT(text, Not(HasSubstr(never)));
  }
}

TEST_F(TracePropagationTest, ADeliveryThatFailsForGoodIsAWarning) {
  StartServer();
  LogCapture log(LogLevel::kWarning, LogFormat::kJson);
  receiver_.SetDefaultStatus(500);
  CreateEndpoint(server_->stub(), MakeEndpoint("thread-1", receiver_.Url()));
  const std::string id = SubmitWith({});
  ASSERT_EQ(WaitFinished(server_->stub(), id).status(),
            webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_THAT(log.JsonLines("attempt finished"), IsEmpty())
      << "attempts are debug";
  const std::vector<nlohmann::json> failed =
      log.JsonLines("delivery failed for good");
  ASSERT_THAT(failed, SizeIs(1)) << log.Text();
  EXPECT_EQ(failed[0]["level"], "warning");
  EXPECT_EQ(failed[0]["delivery_id"], id);
  EXPECT_EQ(failed[0]["attempts"], 4);
  EXPECT_EQ(failed[0]["last_error"], "HTTP 500");
}

TEST_F(TracePropagationTest, DisablingAnEndpointIsAWarning) {
  StartServer();
  LogCapture log(LogLevel::kWarning);
  const webhook::v1::Endpoint endpoint = CreateEndpoint(
      server_->stub(), MakeEndpoint("thread-1", receiver_.Url()));
  webhook::v1::DisableEndpointRequest request;
  request.set_id(endpoint.id());
  webhook::v1::DisableEndpointResponse response;
  ASSERT_TRUE(server_->stub()
                  .DisableEndpoint(Context().get(), request, &response)
                  .ok());
  EXPECT_THAT(log.Text(),
              HasSubstr(absl::StrCat(" W endpoint disabled; its deliveries are "
                                     "held until it is enabled endpoint_id=",
                                     endpoint.id(), "\n")));
}

}  // namespace
}  // namespace webhookd
