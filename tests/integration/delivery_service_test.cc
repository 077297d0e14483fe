// The delivery engine end to end: a real server on port 0, a real gRPC
// channel and a real HTTP receiver on loopback.

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using testing::Context;
using testing::CreateEndpoint;
using ::testing::ElementsAre;
using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using ::testing::IsEmpty;
using testing::MakeEndpoint;
using testing::ReceivedRequest;
using ::testing::SizeIs;
using testing::Submit;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::WaitFinished;
using testing::WaitForDelivery;

constexpr char kExpectedBody[] =
    R"({"event":"execution.completed",)"
    R"("triggerId":"550e8400-e29b-41d4-a716-446655440000",)"
    R"("triggerName":"Daily Report Schedule",)"
    R"("execution":{"jobId":"661f9511-b38a-42c5-9e2a-557766880000",)"
    R"("runId":"772a0622-c49b-53d6-af3b-668877990000",)"
    R"("prompt":"Generate today's sales summary",)"
    R"("run":{"totalCostUsd":0.0342,"totalTokens":4521,)"
    R"("startedAt":"2026-03-29T09:00:01.000Z",)"
    R"("completedAt":"2026-03-29T09:00:12.450Z","durationMs":11450,)"
    R"("messages":[{"content":"Sales were up 4%.","role":"assistant"}]},)"
    R"("queuedAt":"2026-03-29T09:00:00.000Z",)"
    R"("completedAt":"2026-03-29T09:00:12.450Z","durationMs":12450},)"
    R"("threadId":"thread-1","userId":42})";

// HMAC-SHA256 computed here with OpenSSL directly, independently of the
// server's signing code.
std::string OpenSslHmacHex(const std::string& key, const std::string& data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac,
       &len);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(mac), len));
}

class DeliveryServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { server_.Start(); }

  webhook::v1::WebhookService::Stub& stub() { return server_.stub(); }

  Endpoint NewEndpoint(const std::string& thread = "thread-1",
                       const std::string& secret = "s3cret") {
    return CreateEndpoint(stub(),
                          MakeEndpoint(thread, receiver_.Url(), secret));
  }

  webhook::v1::EndpointStats Stats(const std::string& endpoint_id) {
    webhook::v1::GetEndpointStatsRequest request;
    request.set_endpoint_id(endpoint_id);
    webhook::v1::GetEndpointStatsResponse response;
    EXPECT_TRUE(
        stub().GetEndpointStats(Context().get(), request, &response).ok());
    return response.stats();
  }

  grpc::Status Retry(const std::string& id, Delivery* out = nullptr) {
    webhook::v1::RetryDeliveryRequest request;
    request.set_id(id);
    webhook::v1::RetryDeliveryResponse response;
    grpc::Status status =
        stub().RetryDelivery(Context().get(), request, &response);
    if (out != nullptr) *out = response.delivery();
    return status;
  }

  void SetEnabled(const std::string& id, bool enabled) {
    if (enabled) {
      webhook::v1::EnableEndpointRequest request;
      request.set_id(id);
      webhook::v1::EnableEndpointResponse response;
      ASSERT_TRUE(
          stub().EnableEndpoint(Context().get(), request, &response).ok());
    } else {
      webhook::v1::DisableEndpointRequest request;
      request.set_id(id);
      webhook::v1::DisableEndpointResponse response;
      ASSERT_TRUE(
          stub().DisableEndpoint(Context().get(), request, &response).ok());
    }
  }

  HttpReceiver receiver_;
  TestDir dir_;
  TestServer server_{TestServerOptions(dir_.Sub("data"))};
};

TEST_F(DeliveryServiceTest, SubmitDeliversExactDocumentedBody) {
  NewEndpoint();
  webhook::v1::SubmitEventResponse submitted =
      Submit(stub(), ExampleEvent("thread-1"));
  ASSERT_THAT(submitted.delivery_ids(), SizeIs(1));
  EXPECT_THAT(submitted.event_id(), ::testing::StartsWith("evt_"));
  ASSERT_TRUE(receiver_.WaitForRequests(1, absl::Seconds(10)));
  const ReceivedRequest request = receiver_.Requests()[0];
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.path, "/hook");
  EXPECT_EQ(request.body, kExpectedBody);

  Delivery delivery = WaitFinished(stub(), submitted.delivery_ids(0));
  EXPECT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(delivery.payload(), kExpectedBody)
      << "the log keeps the exact body";
}

TEST_F(DeliveryServiceTest, MessagesJsonArriveByteForByte) {
  NewEndpoint();
  webhook::v1::SubmitEventRequest request = ExampleEvent("thread-1");
  webhook::v1::Run* run = request.mutable_execution()->mutable_run();
  run->clear_messages();
  const std::string message =
      R"({"role":"assistant","content":"Sales were up 4%.",)"
      R"("tokens":12345678901234567890,"ratio":1.50,"a":{"z":1,"b":2}})";
  run->add_messages_json(message);
  const webhook::v1::SubmitEventResponse submitted = Submit(stub(), request);
  ASSERT_TRUE(receiver_.WaitForRequests(1, absl::Seconds(10)));
  const std::string body = receiver_.Requests()[0].body;
  EXPECT_THAT(body, HasSubstr(absl::StrCat("\"messages\":[", message, "]")));
  EXPECT_THAT(body, HasSubstr("12345678901234567890"));
  EXPECT_EQ(WaitFinished(stub(), submitted.delivery_ids(0)).payload(), body);
}

TEST_F(DeliveryServiceTest,
       InvalidMessagesJsonIsRefusedNamingItAndStoresNothing) {
  Endpoint endpoint = NewEndpoint();
  webhook::v1::SubmitEventRequest request = ExampleEvent("thread-1");
  webhook::v1::Run* run = request.mutable_execution()->mutable_run();
  run->clear_messages();
  run->add_messages_json(R"({"ok":true})");
  run->add_messages_json(R"({"role":"assistant",)");
  webhook::v1::SubmitEventResponse response;
  grpc::Status status = stub().SubmitEvent(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              ::testing::StartsWith("execution.run.messages_json[1]: "));

  run->clear_messages_json();
  run->add_messages_json("{}");
  *run->add_messages() = ExampleEvent("t").execution().run().messages(0);
  status = stub().SubmitEvent(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              ::testing::StartsWith("execution.run.messages_json: "));

  webhook::v1::ListDeliveriesRequest list;
  list.set_endpoint_id(endpoint.id());
  webhook::v1::ListDeliveriesResponse listed;
  ASSERT_TRUE(stub().ListDeliveries(Context().get(), list, &listed).ok());
  EXPECT_EQ(listed.deliveries_size(), 0);
}

TEST_F(DeliveryServiceTest, PayloadNumbersAreJsonNumbers) {
  NewEndpoint();
  Submit(stub(), ExampleEvent("thread-1"));
  ASSERT_TRUE(receiver_.WaitForRequests(1, absl::Seconds(10)));
  nlohmann::json body = nlohmann::json::parse(receiver_.Requests()[0].body);
  EXPECT_TRUE(body["userId"].is_number_integer());
  EXPECT_TRUE(body["execution"]["durationMs"].is_number_integer());
  EXPECT_TRUE(body["execution"]["run"]["totalTokens"].is_number_integer());
  EXPECT_TRUE(body["execution"]["run"]["durationMs"].is_number_integer());
  EXPECT_TRUE(body["execution"]["run"]["totalCostUsd"].is_number_float());
  EXPECT_DOUBLE_EQ(body["execution"]["run"]["totalCostUsd"].get<double>(),
                   0.0342);
}

TEST_F(DeliveryServiceTest, SignatureMatchesIndependentHmac) {
  NewEndpoint("thread-1", "whsec_test_key");
  Submit(stub(), ExampleEvent("thread-1"));
  ASSERT_TRUE(receiver_.WaitForRequests(1, absl::Seconds(10)));
  const ReceivedRequest request = receiver_.Requests()[0];
  EXPECT_EQ(request.Header("X-Hub-Signature-256"),
            OpenSslHmacHex("whsec_test_key", request.body));
}

TEST_F(DeliveryServiceTest, EndpointWithoutSecretSendsNoSignature) {
  NewEndpoint("thread-1", "");
  Submit(stub(), ExampleEvent("thread-1"));
  ASSERT_TRUE(receiver_.WaitForRequests(1, absl::Seconds(10)));
  EXPECT_FALSE(receiver_.Requests()[0].HasHeader("X-Hub-Signature-256"));
}

TEST_F(DeliveryServiceTest, SendsCustomAndDeliveryHeaders) {
  NewEndpoint();
  webhook::v1::SubmitEventResponse submitted =
      Submit(stub(), ExampleEvent("thread-1"));
  ASSERT_TRUE(receiver_.WaitForRequests(1, absl::Seconds(10)));
  const ReceivedRequest request = receiver_.Requests()[0];
  EXPECT_EQ(request.Header("Content-Type"), "application/json");
  EXPECT_THAT(request.Header("User-Agent"), ::testing::StartsWith("webhookd/"));
  EXPECT_EQ(request.Header("X-Source"), "gpt-workbench");
  EXPECT_EQ(request.Header("X-Webhook-Id"), submitted.delivery_ids(0));
  EXPECT_EQ(request.Header("X-Webhook-Event"), "execution.completed");
  EXPECT_EQ(request.Header("X-Webhook-Attempt"), "1");
}

TEST_F(DeliveryServiceTest, FansOutToEnabledEndpointsOfTheThreadOnly) {
  Endpoint a = NewEndpoint();
  Endpoint b = NewEndpoint();
  Endpoint disabled = NewEndpoint();
  NewEndpoint("another-thread");
  SetEnabled(disabled.id(), false);

  webhook::v1::SubmitEventResponse submitted =
      Submit(stub(), ExampleEvent("thread-1"));
  ASSERT_THAT(submitted.delivery_ids(), SizeIs(2));
  std::set<std::string> endpoints;
  for (const std::string& id : submitted.delivery_ids()) {
    Delivery d = WaitFinished(stub(), id);
    EXPECT_EQ(d.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
    endpoints.insert(d.endpoint_id());
  }
  EXPECT_EQ(endpoints, (std::set<std::string>{a.id(), b.id()}));
  EXPECT_EQ(receiver_.RequestCount(), 2u);
}

TEST_F(DeliveryServiceTest, SubmitWithoutEndpointsCreatesNoDeliveries) {
  webhook::v1::SubmitEventResponse submitted =
      Submit(stub(), ExampleEvent("empty-thread"));
  EXPECT_FALSE(submitted.event_id().empty());
  EXPECT_THAT(submitted.delivery_ids(), IsEmpty());
}

TEST_F(DeliveryServiceTest, SubmitWithoutThreadIsInvalid) {
  webhook::v1::SubmitEventRequest request = ExampleEvent("");
  webhook::v1::SubmitEventResponse response;
  grpc::Status status = stub().SubmitEvent(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("thread_id"));
}

TEST_F(DeliveryServiceTest, FailingReceiverIsRetriedOnScheduleUntilFailed) {
  receiver_.SetDefaultStatus(500);
  Endpoint endpoint = NewEndpoint();
  webhook::v1::SubmitEventResponse submitted =
      Submit(stub(), ExampleEvent("thread-1"));
  Delivery d = WaitFinished(stub(), submitted.delivery_ids(0));
  EXPECT_EQ(d.status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_EQ(d.attempts(), 4);
  EXPECT_EQ(d.max_attempts(), 4);
  EXPECT_EQ(d.response_code(), 500);
  EXPECT_THAT(d.last_error(), HasSubstr("500"));
  EXPECT_FALSE(d.has_next_attempt_time());
  ASSERT_THAT(d.attempt_history(), SizeIs(4));

  std::vector<ReceivedRequest> requests = receiver_.Requests();
  ASSERT_THAT(requests, SizeIs(4));
  // Gaps follow the (scaled) schedule 50ms, 150ms, 600ms.
  const absl::Duration expected[] = {
      absl::Milliseconds(50), absl::Milliseconds(150), absl::Milliseconds(600)};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(requests[i].Header("X-Webhook-Attempt"), std::to_string(i + 1));
    EXPECT_EQ(requests[i].Header("X-Webhook-Id"), d.id());
    EXPECT_EQ(requests[i].body, requests[0].body) << "byte-identical";
    EXPECT_EQ(d.attempt_history(i).attempt(), i + 1);
    EXPECT_EQ(d.attempt_history(i).response_code(), 500);
    if (i > 0) {
      EXPECT_GE(requests[i].arrival - requests[i - 1].arrival, expected[i - 1]);
    }
  }
  EXPECT_EQ(Retry(d.id()).error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << "all attempts used";
}

TEST_F(DeliveryServiceTest, RecoversToSuccessWhenReceiverComesBack) {
  receiver_.PushResponse(503);
  receiver_.PushResponse(502);
  Endpoint endpoint = NewEndpoint();
  webhook::v1::SubmitEventResponse submitted =
      Submit(stub(), ExampleEvent("thread-1"));
  Delivery d = WaitFinished(stub(), submitted.delivery_ids(0));
  EXPECT_EQ(d.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(d.attempts(), 3);
  EXPECT_EQ(d.response_code(), 200);
  EXPECT_THAT(d.last_error(), IsEmpty());
  ASSERT_THAT(d.attempt_history(), SizeIs(3));
  EXPECT_EQ(d.attempt_history(0).response_code(), 503);
  EXPECT_EQ(d.attempt_history(1).response_code(), 502);
  EXPECT_EQ(d.attempt_history(2).response_code(), 200);
}

TEST_F(DeliveryServiceTest, ConnectionRefusedIsARetriedFailure) {
  Endpoint endpoint = CreateEndpoint(
      stub(), MakeEndpoint("thread-1", "http://127.0.0.1:1/hook"));
  webhook::v1::SubmitEventResponse submitted =
      Submit(stub(), ExampleEvent("thread-1"));
  Delivery d = WaitFinished(stub(), submitted.delivery_ids(0));
  EXPECT_EQ(d.status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_EQ(d.attempts(), 4);
  EXPECT_EQ(d.response_code(), 0);
  EXPECT_THAT(d.last_error(), HasSubstr("refused"));
}

TEST_F(DeliveryServiceTest, StatsCountDeliveriesApartAndSurviveARestart) {
  // One endpoint answers (500, then 200), one refuses every connection.
  receiver_.PushResponse(500, "", {}, absl::Milliseconds(60));
  const Endpoint answered = NewEndpoint();
  const Endpoint refused = CreateEndpoint(
      stub(), MakeEndpoint("thread-1", "http://127.0.0.1:1/hook"));
  webhook::v1::SubmitEventResponse first =
      Submit(stub(), ExampleEvent("thread-1"));
  ASSERT_EQ(first.delivery_ids_size(), 2);
  const Delivery d1 = WaitFinished(stub(), first.delivery_ids(0));
  const Delivery d2 = WaitFinished(stub(), first.delivery_ids(1));
  const Delivery& to_answered = d1.endpoint_id() == answered.id() ? d1 : d2;

  // A second delivery to the answering endpoint, held by the receiver:
  // in progress while it is.
  testing::ReceiverResponse held;
  held.held = true;
  receiver_.SetDefaultResponse(held);
  webhook::v1::SubmitEventResponse second =
      Submit(stub(), ExampleEvent("thread-1"));
  ASSERT_TRUE(receiver_.WaitForRequests(3, testing::kEventuallyTimeout));
  EXPECT_EQ(Stats(answered.id()).deliveries_in_progress(), 1);
  receiver_.SetDefaultStatus(200);
  receiver_.Release();
  for (const std::string& id : second.delivery_ids()) WaitFinished(stub(), id);

  const auto check = [&] {
    const webhook::v1::EndpointStats a = Stats(answered.id());
    EXPECT_EQ(a.total_deliveries(), 3);  // Attempts: 500, 200, 200.
    EXPECT_EQ(a.successful_deliveries(), 2);
    EXPECT_EQ(a.attempts_without_response(), 0);
    EXPECT_EQ(a.deliveries_succeeded(), 2);
    EXPECT_EQ(a.deliveries_failed(), 0);
    EXPECT_EQ(a.deliveries_in_progress(), 0);
    EXPECT_DOUBLE_EQ(a.delivery_success_rate(), 100.0);
    EXPECT_GE(to_answered.attempt_history(0).response_time_ms(), 60);
    const webhook::v1::EndpointStats r = Stats(refused.id());
    EXPECT_EQ(r.total_deliveries(), 8);  // 4 attempts each.
    EXPECT_EQ(r.attempts_without_response(), 8);
    // No attempt was answered: no mean of 0 ms attempts.
    EXPECT_EQ(r.avg_response_time_ms(), 0.0);
    EXPECT_EQ(r.deliveries_succeeded(), 0);
    EXPECT_EQ(r.deliveries_failed(), 2);
    EXPECT_EQ(r.deliveries_in_progress(), 0);
    EXPECT_EQ(r.delivery_success_rate(), 0.0);
  };
  check();
  server_.Stop();
  server_.Start();
  check();
}

TEST_F(DeliveryServiceTest, RedirectIsAFailureAndNotFollowed) {
  receiver_.SetDefaultResponse(
      {302, "", {{"Location", receiver_.Url("/elsewhere")}}});
  NewEndpoint();
  webhook::v1::SubmitEventResponse submitted =
      Submit(stub(), ExampleEvent("thread-1"));
  Delivery d = WaitFinished(stub(), submitted.delivery_ids(0));
  EXPECT_EQ(d.status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_EQ(d.response_code(), 302);
  for (const ReceivedRequest& r : receiver_.Requests()) {
    EXPECT_EQ(r.path, "/hook");
  }
}

TEST_F(DeliveryServiceTest, ManualRetryRules) {
  // A long schedule keeps the delivery RETRYING while we retry it by hand.
  server_.Stop();
  server_.options().engine.retry_policy =
      RetryPolicy({absl::Seconds(60), absl::Seconds(60), absl::Seconds(60)});
  server_.Start();
  receiver_.PushResponse(500);
  NewEndpoint();
  webhook::v1::SubmitEventResponse submitted =
      Submit(stub(), ExampleEvent("thread-1"));
  const std::string id = submitted.delivery_ids(0);
  Delivery d = WaitForDelivery(stub(), id, [](const Delivery& d) {
    return d.status() == webhook::v1::DELIVERY_STATUS_RETRYING;
  });
  EXPECT_EQ(d.attempts(), 1);

  Delivery queued;
  ASSERT_TRUE(Retry(id, &queued).ok());
  EXPECT_EQ(queued.payload(), d.payload());
  EXPECT_EQ(queued.status(), webhook::v1::DELIVERY_STATUS_RETRYING);
  d = WaitFinished(stub(), id);
  EXPECT_EQ(d.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  ASSERT_THAT(d.attempt_history(), SizeIs(2));
  EXPECT_FALSE(d.attempt_history(0).manual());
  EXPECT_TRUE(d.attempt_history(1).manual());
  ASSERT_TRUE(receiver_.WaitForRequests(2, absl::Seconds(5)));
  EXPECT_EQ(receiver_.Requests()[1].body, receiver_.Requests()[0].body);

  grpc::Status status = Retry(id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("succeeded"));
  EXPECT_EQ(Retry("dlv_00000000000000000000000000000000").error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(DeliveryServiceTest, DisabledEndpointHoldsQueuedDeliveriesUntilEnabled) {
  server_.Stop();
  server_.options().engine.retry_policy =
      RetryPolicy({absl::Milliseconds(300)});
  server_.Start();
  receiver_.PushResponse(500);
  Endpoint endpoint = NewEndpoint();
  webhook::v1::SubmitEventResponse submitted =
      Submit(stub(), ExampleEvent("thread-1"));
  const std::string id = submitted.delivery_ids(0);
  WaitForDelivery(stub(), id, [](const Delivery& d) {
    return d.status() == webhook::v1::DELIVERY_STATUS_RETRYING;
  });
  SetEnabled(endpoint.id(), false);
  // Well past the retry's due time, nothing more is sent.
  EXPECT_FALSE(receiver_.WaitForRequests(2, absl::Seconds(1)));
  Delivery held =
      WaitForDelivery(stub(), id, [](const Delivery&) { return true; });
  EXPECT_EQ(held.status(), webhook::v1::DELIVERY_STATUS_RETRYING);

  SetEnabled(endpoint.id(), true);
  Delivery d = WaitFinished(stub(), id);
  EXPECT_EQ(d.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(d.attempts(), 2);
}

TEST_F(DeliveryServiceTest, TestDeliveryReachesDisabledEndpoint) {
  Endpoint endpoint = NewEndpoint();
  SetEnabled(endpoint.id(), false);
  webhook::v1::SendTestDeliveryRequest request;
  request.set_endpoint_id(endpoint.id());
  request.set_payload_json(R"({"hello":"world","n":1})");
  webhook::v1::SendTestDeliveryResponse response;
  grpc::Status status =
      stub().SendTestDelivery(Context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const Delivery& d = response.delivery();
  EXPECT_TRUE(d.test());
  EXPECT_EQ(d.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(d.response_code(), 200);
  EXPECT_EQ(d.attempts(), 1);
  EXPECT_EQ(d.max_attempts(), 1);
  ASSERT_EQ(receiver_.RequestCount(), 1u);
  const ReceivedRequest received = receiver_.Requests()[0];
  EXPECT_EQ(received.body, R"({"hello":"world","n":1})");
  EXPECT_EQ(received.Header("X-Hub-Signature-256"),
            OpenSslHmacHex("s3cret", received.body));

  webhook::v1::EndpointStats stats = Stats(endpoint.id());
  EXPECT_EQ(stats.total_deliveries(), 0) << "tests are left out of stats";
}

TEST_F(DeliveryServiceTest, TestDeliveryWithoutPayloadSendsSample) {
  Endpoint endpoint = NewEndpoint();
  webhook::v1::SendTestDeliveryRequest request;
  request.set_endpoint_id(endpoint.id());
  webhook::v1::SendTestDeliveryResponse response;
  ASSERT_TRUE(
      stub().SendTestDelivery(Context().get(), request, &response).ok());
  nlohmann::json body = nlohmann::json::parse(response.delivery().payload());
  EXPECT_TRUE(body.contains("execution"));
  EXPECT_TRUE(body.contains("threadId"));
  EXPECT_EQ(body["test"], true);
  EXPECT_EQ(body["event"], "execution.completed");
  // What the receiver got, byte for byte, says it too.
  ASSERT_TRUE(receiver_.WaitForRequests(1, absl::Seconds(5)));
  const auto received = receiver_.Requests()[0];
  EXPECT_EQ(received.body, response.delivery().payload());
  EXPECT_EQ(received.Header("X-Webhook-Event"), "webhook.test");
  EXPECT_EQ(nlohmann::json::parse(received.body)["test"], true);
}

TEST_F(DeliveryServiceTest, TestDeliveryFailureIsNotRetried) {
  receiver_.SetDefaultStatus(500);
  Endpoint endpoint = NewEndpoint();
  webhook::v1::SendTestDeliveryRequest request;
  request.set_endpoint_id(endpoint.id());
  webhook::v1::SendTestDeliveryResponse response;
  ASSERT_TRUE(
      stub().SendTestDelivery(Context().get(), request, &response).ok());
  EXPECT_EQ(response.delivery().status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_EQ(response.delivery().response_code(), 500);
  EXPECT_FALSE(receiver_.WaitForRequests(2, absl::Milliseconds(800)));
}

TEST_F(DeliveryServiceTest, TestDeliveryRefusesBadInput) {
  Endpoint endpoint = NewEndpoint();
  webhook::v1::SendTestDeliveryRequest request;
  webhook::v1::SendTestDeliveryResponse response;
  request.set_endpoint_id(endpoint.id());
  request.set_payload_json("[1,2,3]");
  grpc::Status status =
      stub().SendTestDelivery(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("payload_json"));
  request.set_endpoint_id("ep_missing");
  request.clear_payload_json();
  EXPECT_EQ(
      stub().SendTestDelivery(Context().get(), request, &response).error_code(),
      grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(receiver_.RequestCount(), 0u);
}

TEST_F(DeliveryServiceTest, DeleteEndsQueuedDeliveriesAndKeepsLogs) {
  server_.Stop();
  server_.options().engine.retry_policy = RetryPolicy({absl::Seconds(60)});
  server_.Start();
  receiver_.SetDefaultStatus(500);
  Endpoint endpoint = NewEndpoint();
  webhook::v1::SubmitEventResponse submitted =
      Submit(stub(), ExampleEvent("thread-1"));
  const std::string id = submitted.delivery_ids(0);
  WaitForDelivery(stub(), id, [](const Delivery& d) {
    return d.status() == webhook::v1::DELIVERY_STATUS_RETRYING;
  });

  webhook::v1::DeleteEndpointRequest del;
  del.set_id(endpoint.id());
  webhook::v1::DeleteEndpointResponse deleted;
  ASSERT_TRUE(stub().DeleteEndpoint(Context().get(), del, &deleted).ok());

  webhook::v1::GetDeliveryRequest get;
  get.set_id(id);
  webhook::v1::GetDeliveryResponse got;
  ASSERT_TRUE(stub().GetDelivery(Context().get(), get, &got).ok());
  EXPECT_EQ(got.delivery().status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_THAT(got.delivery().last_error(), HasSubstr("deleted"));

  webhook::v1::ListDeliveriesRequest list;
  list.set_endpoint_id(endpoint.id());
  webhook::v1::ListDeliveriesResponse listed;
  ASSERT_TRUE(stub().ListDeliveries(Context().get(), list, &listed).ok());
  ASSERT_THAT(listed.deliveries(), SizeIs(1));
  EXPECT_EQ(listed.deliveries(0).id(), id);
  EXPECT_EQ(Retry(id).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

// The mean response time of every attempt in `deliveries`, as recorded.
double MeanResponseTimeMs(const std::vector<Delivery>& deliveries) {
  int64_t total_ms = 0;
  int attempts = 0;
  for (const Delivery& delivery : deliveries) {
    for (const webhook::v1::DeliveryAttempt& attempt :
         delivery.attempt_history()) {
      total_ms += attempt.response_time_ms();
      ++attempts;
    }
  }
  return attempts == 0 ? 0.0 : static_cast<double>(total_ms) / attempts;
}

TEST_F(DeliveryServiceTest, StatsCountAttempts) {
  // The 500 takes a while, so that the mean depends on counting it.
  receiver_.PushResponse(500, "", {}, absl::Milliseconds(60));
  Endpoint endpoint = NewEndpoint();
  webhook::v1::SubmitEventResponse first =
      Submit(stub(), ExampleEvent("thread-1"));
  const Delivery retried = WaitFinished(stub(), first.delivery_ids(0));
  webhook::v1::SubmitEventResponse second =
      Submit(stub(), ExampleEvent("thread-1"));
  const Delivery once = WaitFinished(stub(), second.delivery_ids(0));

  // Three attempts: 500 then 200 for the first, 200 for the second.
  ASSERT_EQ(retried.attempt_history_size() + once.attempt_history_size(), 3);
  webhook::v1::EndpointStats stats = Stats(endpoint.id());
  EXPECT_EQ(stats.endpoint_id(), endpoint.id());
  EXPECT_EQ(stats.total_deliveries(), 3);
  EXPECT_EQ(stats.successful_deliveries(), 2);
  EXPECT_EQ(stats.failed_deliveries(), 1);
  EXPECT_NEAR(stats.success_rate(), 200.0 / 3.0, 1e-9);
  // The mean of the three attempts' recorded times, the slow 500 included.
  EXPECT_GE(retried.attempt_history(0).response_time_ms(), 60);
  EXPECT_DOUBLE_EQ(stats.avg_response_time_ms(),
                   MeanResponseTimeMs({retried, once}));

  webhook::v1::GetEndpointStatsRequest missing;
  missing.set_endpoint_id("ep_missing");
  webhook::v1::GetEndpointStatsResponse response;
  EXPECT_EQ(
      stub().GetEndpointStats(Context().get(), missing, &response).error_code(),
      grpc::StatusCode::NOT_FOUND);
}

TEST_F(DeliveryServiceTest, StatsAverageResponseTime) {
  receiver_.PushResponse(200, "", {}, absl::Milliseconds(200));
  receiver_.PushResponse(200, "", {}, absl::Milliseconds(400));
  Endpoint endpoint = NewEndpoint();
  const Delivery first = WaitFinished(
      stub(), Submit(stub(), ExampleEvent("thread-1")).delivery_ids(0));
  const Delivery second = WaitFinished(
      stub(), Submit(stub(), ExampleEvent("thread-1")).delivery_ids(0));
  webhook::v1::EndpointStats stats = Stats(endpoint.id());
  EXPECT_EQ(stats.total_deliveries(), 2);
  EXPECT_DOUBLE_EQ(stats.success_rate(), 100.0);
  // No less than the receiver took, and exactly what was recorded.
  EXPECT_GE(stats.avg_response_time_ms(), 300.0);
  EXPECT_DOUBLE_EQ(stats.avg_response_time_ms(),
                   MeanResponseTimeMs({first, second}));
}

TEST_F(DeliveryServiceTest, IdempotentSubmitReturnsFirstResponse) {
  NewEndpoint();
  webhook::v1::SubmitEventRequest request = ExampleEvent("thread-1");
  request.set_idempotency_key("run-772a0622");
  webhook::v1::SubmitEventResponse first = Submit(stub(), request);
  webhook::v1::SubmitEventResponse again = Submit(stub(), request);
  EXPECT_FALSE(first.replayed());
  EXPECT_TRUE(again.replayed());
  again.clear_replayed();
  EXPECT_EQ(again.SerializeAsString(), first.SerializeAsString());
  // Let the attempt finish: one cut short by Stop() would be re-sent.
  WaitFinished(stub(), first.delivery_ids(0));

  server_.Stop();
  server_.Start();
  webhook::v1::SubmitEventResponse after_restart = Submit(stub(), request);
  EXPECT_TRUE(after_restart.replayed());
  after_restart.clear_replayed();
  EXPECT_EQ(after_restart.SerializeAsString(), first.SerializeAsString());

  // One attempt, recorded before the restart: nothing is queued to send it
  // again. A new event is a barrier: once its request has arrived, the
  // receiver has had exactly the two.
  const webhook::v1::Delivery done =
      WaitFinished(stub(), first.delivery_ids(0));
  EXPECT_EQ(done.attempt_history_size(), 1);
  request.set_idempotency_key("another-key");
  const webhook::v1::SubmitEventResponse other = Submit(stub(), request);
  EXPECT_NE(other.event_id(), first.event_id());
  WaitFinished(stub(), other.delivery_ids(0));
  ASSERT_TRUE(receiver_.WaitForRequests(2, absl::Seconds(30)));
  EXPECT_EQ(receiver_.RequestCount(), 2u);
}

TEST_F(DeliveryServiceTest, ListDeliveriesNewestFirstWithFilters) {
  receiver_.PushResponse(500);
  server_.Stop();
  server_.options().engine.retry_policy = RetryPolicy({});
  server_.Start();
  Endpoint a = NewEndpoint("thread-1");
  Endpoint b = NewEndpoint("thread-2");
  std::vector<std::string> ids;
  for (const char* thread : {"thread-1", "thread-2", "thread-1"}) {
    std::string id = Submit(stub(), ExampleEvent(thread)).delivery_ids(0);
    WaitFinished(stub(), id);
    ids.push_back(id);
  }
  webhook::v1::ListDeliveriesRequest request;
  webhook::v1::ListDeliveriesResponse response;
  ASSERT_TRUE(stub().ListDeliveries(Context().get(), request, &response).ok());
  ASSERT_THAT(response.deliveries(), SizeIs(3));
  EXPECT_EQ(response.deliveries(0).id(), ids[2]);
  EXPECT_EQ(response.deliveries(2).id(), ids[0]);
  EXPECT_THAT(response.deliveries(0).payload(), IsEmpty());

  request.set_thread_id("thread-1");
  ASSERT_TRUE(stub().ListDeliveries(Context().get(), request, &response).ok());
  ASSERT_THAT(response.deliveries(), SizeIs(2));
  request.set_status(webhook::v1::DELIVERY_STATUS_FAILED);
  ASSERT_TRUE(stub().ListDeliveries(Context().get(), request, &response).ok());
  ASSERT_THAT(response.deliveries(), SizeIs(1));
  EXPECT_EQ(response.deliveries(0).id(), ids[0]);

  request.Clear();
  request.set_endpoint_id(b.id());
  ASSERT_TRUE(stub().ListDeliveries(Context().get(), request, &response).ok());
  ASSERT_THAT(response.deliveries(), SizeIs(1));
  EXPECT_EQ(response.deliveries(0).id(), ids[1]);

  request.Clear();
  request.set_page_size(2);
  ASSERT_TRUE(stub().ListDeliveries(Context().get(), request, &response).ok());
  ASSERT_THAT(response.deliveries(), SizeIs(2));
  ASSERT_FALSE(response.next_page_token().empty());
  request.set_page_token(response.next_page_token());
  ASSERT_TRUE(stub().ListDeliveries(Context().get(), request, &response).ok());
  ASSERT_THAT(response.deliveries(), SizeIs(1));
  EXPECT_EQ(response.deliveries(0).id(), ids[0]);
  EXPECT_TRUE(response.next_page_token().empty());
}

TEST_F(DeliveryServiceTest, QueuedDeliveriesResumeAfterRestart) {
  server_.Stop();
  server_.options().engine.retry_policy = RetryPolicy({absl::Seconds(1)});
  server_.Start();
  receiver_.PushResponse(500);
  NewEndpoint();
  const std::string id =
      Submit(stub(), ExampleEvent("thread-1")).delivery_ids(0);
  WaitForDelivery(stub(), id, [](const Delivery& d) {
    return d.status() == webhook::v1::DELIVERY_STATUS_RETRYING;
  });
  server_.Stop();
  server_.Start();
  Delivery d = WaitFinished(stub(), id);
  EXPECT_EQ(d.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(d.attempts(), 2);
}

}  // namespace
}  // namespace webhookd
