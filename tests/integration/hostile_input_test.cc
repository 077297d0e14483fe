// Limits on hostile input, hostile receivers, masking and secret hygiene,
// through a real server, real gRPC and real loopback receivers.

#include <signal.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/api/grpc_status.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/raw_server.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"
#include "tests/support/webhookd_process.h"

namespace webhookd {
namespace {

using testing::Context;
using testing::CreateEndpoint;
using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using ::testing::IsEmpty;
using ::testing::Le;
using testing::ListAllEndpoints;
using testing::MakeEndpoint;
using ::testing::Not;
using testing::RawServer;
using testing::RespondWith;
using ::testing::SizeIs;
using testing::SlowDrip;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::TryCreateEndpoint;
using webhook::v1::DELIVERY_STATUS_FAILED;
using webhook::v1::DELIVERY_STATUS_SUCCESS;

constexpr size_t kMiB = 1024 * 1024;

class HostileInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.options().engine.attempt_timeout = absl::Seconds(1);
    server_.Start();
  }

  webhook::v1::WebhookService::Stub& stub() { return server_.stub(); }

  grpc::Status CreateStatus(const Endpoint& endpoint) {
    return TryCreateEndpoint(stub(), endpoint);
  }

  std::vector<Endpoint> ListEndpoints() { return ListAllEndpoints(stub()); }

  std::vector<Delivery> ListDeliveries() {
    webhook::v1::ListDeliveriesResponse response;
    EXPECT_TRUE(stub().ListDeliveries(Context().get(), {}, &response).ok());
    return {response.deliveries().begin(), response.deliveries().end()};
  }

  // One test attempt against `url`; returns the finished delivery.
  Delivery TestAttempt(const std::string& url) {
    const Endpoint endpoint =
        CreateEndpoint(stub(), MakeEndpoint("thread-1", url));
    webhook::v1::SendTestDeliveryRequest request;
    request.set_endpoint_id(endpoint.id());
    webhook::v1::SendTestDeliveryResponse response;
    grpc::Status status =
        stub().SendTestDelivery(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.delivery();
  }

  TestDir dir_;
  HttpReceiver receiver_;
  TestServer server_{TestServerOptions(dir_.Sub("data"))};
};

// --- Endpoint limits
// ----------------------------------------------------------

TEST_F(HostileInputTest, EndpointLimitsHoldThroughGrpcWithNothingStored) {
  struct Case {
    std::string field;
    std::function<void(Endpoint&)> spoil;
  };
  const std::vector<Case> cases = {
      {"endpoint.headers",
       [](Endpoint& e) {
         e.clear_headers();
         for (int i = 0; i < 51; ++i) {
           auto* h = e.add_headers();
           h->set_name(absl::StrCat("X-H", i));
           h->set_value("v");
         }
       }},
      {"endpoint.headers[0].value",
       [](Endpoint& e) {
         e.mutable_headers(0)->set_value(std::string(4097, 'v'));
       }},
      {"endpoint.headers[0].name",
       [](Endpoint& e) {
         e.mutable_headers(0)->set_name(std::string(257, 'n'));
       }},
      {"endpoint.url",
       [](Endpoint& e) {
         e.set_url("https://example.com/" + std::string(2029, 'p'));
       }},
      {"endpoint.thread_id",
       [](Endpoint& e) { e.set_thread_id(std::string(257, 't')); }},
      {"endpoint.name", [](Endpoint& e) { e.set_name(std::string(201, 'n')); }},
      {"endpoint.secret",
       [](Endpoint& e) { e.set_secret(std::string(1025, 's')); }},
  };
  for (const Case& c : cases) {
    Endpoint endpoint = MakeEndpoint("thread-1", "https://example.com/hook");
    c.spoil(endpoint);
    grpc::Status status = CreateStatus(endpoint);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.field;
    EXPECT_THAT(status.error_message(), HasSubstr(c.field + ":"));
  }
  EXPECT_THAT(ListEndpoints(), IsEmpty());

  // Exactly at every limit is fine.
  Endpoint largest = MakeEndpoint("thread-1", "");
  largest.set_url("https://example.com/" + std::string(2028, 'p'));
  ASSERT_EQ(largest.url().size(), 2048u);
  largest.set_thread_id(std::string(256, 't'));
  largest.set_name(std::string(200, 'n'));
  largest.set_secret(std::string(1024, 's'));
  largest.clear_headers();
  for (int i = 0; i < 50; ++i) {
    auto* h = largest.add_headers();
    h->set_name(absl::StrCat("X-H", i, std::string(200, 'h')));
    h->set_value(std::string(4096, 'v'));
  }
  EXPECT_TRUE(CreateStatus(largest).ok());
}

TEST_F(HostileInputTest, HeaderInjectionIsRefusedOnCreateAndUpdate) {
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"X-Ok", "a\r\nInjected: yes"},
      {"X-Ok", "a\nInjected: yes"},
      {"X-Ok", "a\rInjected: yes"},
      {"X-Ok", std::string("a\0b", 3)},
      {"X-Ok", "a\x7f"},
      {"X-Ok", "caf\xc3\xa9"},
      {"X-Ok:", "v"},
      {"X Ok", "v"},
      {"X-Ok\r\nInjected", "v"},
      {"Host", "internal.example"},
      {"Content-Encoding", "gzip"},
      {"Content-Length", "0"},
      {"Transfer-Encoding", "chunked"},
      {"X-Hub-Signature", "sha1=forged"},
      {"X-Hub-Signature-256", "forged"},
      {"X-Webhook-Id", "dlv_forged"},
      {"Proxy-Authorization", "Basic x"},
      {"Connection", "close"},
  };
  const Endpoint created = CreateEndpoint(
      stub(), MakeEndpoint("thread-1", "https://example.com/hook"));
  for (const auto& [name, value] : headers) {
    Endpoint endpoint = MakeEndpoint("thread-1", "https://example.com/hook");
    endpoint.clear_headers();
    auto* header = endpoint.add_headers();
    header->set_name(name);
    header->set_value(value);
    grpc::Status status = CreateStatus(endpoint);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;
    EXPECT_THAT(status.error_message(), HasSubstr("endpoint.headers[0]"));

    webhook::v1::UpdateEndpointRequest update;
    *update.mutable_endpoint() = endpoint;
    update.mutable_endpoint()->set_id(created.id());
    update.mutable_update_mask()->add_paths("headers");
    webhook::v1::UpdateEndpointResponse updated;
    status = stub().UpdateEndpoint(Context().get(), update, &updated);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;
  }
  const std::vector<Endpoint> endpoints = ListEndpoints();
  ASSERT_THAT(endpoints, SizeIs(1));
  ASSERT_THAT(endpoints[0].headers(), SizeIs(1));
  EXPECT_EQ(endpoints[0].headers(0).name(), "X-Source");
}

TEST_F(HostileInputTest, EmptyHeaderValueIsSentAsAnEmptyHeader) {
  std::string raw;
  absl::Mutex mu;
  RawServer capture([&](RawServer::Connection& connection) {
    std::string request;
    if (!connection.ReadRequest(&request)) return;
    {
      absl::MutexLock lock(&mu);
      raw = request;
    }
    connection.Write("HTTP/1.1 204 No Content\r\n\r\n");
  });
  Endpoint endpoint = MakeEndpoint("thread-1", capture.Url());
  auto* header = endpoint.add_headers();
  header->set_name("X-Empty");
  header->set_value("");
  const Endpoint created = CreateEndpoint(stub(), endpoint);
  ASSERT_THAT(created.headers(), SizeIs(2));
  EXPECT_EQ(created.headers(1).value(), "");
  webhook::v1::SendTestDeliveryRequest request;
  request.set_endpoint_id(created.id());
  webhook::v1::SendTestDeliveryResponse response;
  ASSERT_TRUE(
      stub().SendTestDelivery(Context().get(), request, &response).ok());
  absl::MutexLock lock(&mu);
  EXPECT_THAT(raw, HasSubstr("\r\nX-Empty:\r\n"));
}

// --- Payload and message limits ---------------------------------------------

TEST_F(HostileInputTest, OversizedEventIsRefusedWithNothingStored) {
  CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url()));
  webhook::v1::SubmitEventRequest event = ExampleEvent("thread-1");
  event.mutable_execution()->set_prompt(std::string(300 * 1024, 'p'));
  webhook::v1::SubmitEventResponse response;
  grpc::Status status = stub().SubmitEvent(Context().get(), event, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("--max_payload_bytes"));
  EXPECT_THAT(ListDeliveries(), IsEmpty());

  // Just under the default 256 KiB is accepted.
  event.mutable_execution()->set_prompt(std::string(250 * 1024, 'p'));
  status = stub().SubmitEvent(Context().get(), event, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(response.delivery_ids(), SizeIs(1));
  ASSERT_TRUE(receiver_.WaitForRequests(1, absl::Seconds(10)));
  EXPECT_EQ(receiver_.RequestCount(), 1u);
}

TEST_F(HostileInputTest, OversizedTestPayloadIsRefusedWithNothingStored) {
  const Endpoint endpoint =
      CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url()));
  webhook::v1::SendTestDeliveryRequest request;
  request.set_endpoint_id(endpoint.id());
  request.set_payload_json(
      absl::StrCat("{\"a\":\"", std::string(300 * 1024, 'x'), "\"}"));
  webhook::v1::SendTestDeliveryResponse response;
  grpc::Status status =
      stub().SendTestDelivery(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("payload_json"));
  EXPECT_THAT(ListDeliveries(), IsEmpty());
  EXPECT_EQ(receiver_.RequestCount(), 0u);
}

TEST_F(HostileInputTest, ConfiguredPayloadLimitApplies) {
  server_.Stop();
  server_.options().engine.max_payload_bytes = 2048;
  server_.Start();
  CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url()));
  webhook::v1::SubmitEventRequest event = ExampleEvent("thread-1");
  webhook::v1::SubmitEventResponse response;
  ASSERT_TRUE(stub().SubmitEvent(Context().get(), event, &response).ok());
  event.mutable_execution()->set_prompt(std::string(3000, 'p'));
  EXPECT_EQ(stub().SubmitEvent(Context().get(), event, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ListDeliveries(), SizeIs(1));
}

TEST_F(HostileInputTest, RequestsOverFourMebibytesAreResourceExhausted) {
  CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url()));
  webhook::v1::SubmitEventRequest event = ExampleEvent("thread-1");
  event.mutable_execution()->set_prompt(std::string(5 * kMiB, 'p'));
  webhook::v1::SubmitEventResponse response;
  EXPECT_EQ(stub().SubmitEvent(Context().get(), event, &response).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);

  Endpoint endpoint = MakeEndpoint("thread-1", "https://example.com/");
  endpoint.set_name(std::string(5 * kMiB, 'n'));
  EXPECT_EQ(CreateStatus(endpoint).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(ListDeliveries(), IsEmpty());
  EXPECT_THAT(ListEndpoints(), SizeIs(1));
}

TEST_F(HostileInputTest, LongEventFieldsAreRefused) {
  CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url()));
  webhook::v1::SubmitEventResponse response;
  webhook::v1::SubmitEventRequest event = ExampleEvent("thread-1");
  event.set_idempotency_key(std::string(256, 'k'));
  EXPECT_EQ(stub().SubmitEvent(Context().get(), event, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  event = ExampleEvent("thread-1");
  event.set_event_type(std::string(129, 'e'));
  EXPECT_EQ(stub().SubmitEvent(Context().get(), event, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  event = ExampleEvent(std::string(257, 't'));
  EXPECT_EQ(stub().SubmitEvent(Context().get(), event, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ListDeliveries(), IsEmpty());
}

TEST_F(HostileInputTest, MebibyteIdsAreRefusedWithAShortMessage) {
  const std::string huge(kMiB, 'x');
  auto expect_refused = [](const grpc::Status& status, const char* field) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << status.error_message().substr(0, 200);
    EXPECT_THAT(status.error_message(), HasSubstr(field));
    EXPECT_LE(status.error_message().size(), 1024u);
  };
  {
    webhook::v1::GetEndpointRequest request;
    request.set_id(huge);
    webhook::v1::GetEndpointResponse response;
    expect_refused(stub().GetEndpoint(Context().get(), request, &response),
                   "id");
  }
  {
    webhook::v1::DeleteEndpointRequest request;
    request.set_id(huge);
    webhook::v1::DeleteEndpointResponse response;
    expect_refused(stub().DeleteEndpoint(Context().get(), request, &response),
                   "id");
  }
  {
    webhook::v1::UpdateEndpointRequest request;
    request.mutable_endpoint()->set_id(huge);
    request.mutable_update_mask()->add_paths("name");
    webhook::v1::UpdateEndpointResponse response;
    expect_refused(stub().UpdateEndpoint(Context().get(), request, &response),
                   "endpoint.id");
  }
  {
    webhook::v1::GetEndpointStatsRequest request;
    request.set_endpoint_id(huge);
    webhook::v1::GetEndpointStatsResponse response;
    expect_refused(stub().GetEndpointStats(Context().get(), request, &response),
                   "endpoint_id");
  }
  {
    webhook::v1::SendTestDeliveryRequest request;
    request.set_endpoint_id(huge);
    webhook::v1::SendTestDeliveryResponse response;
    expect_refused(stub().SendTestDelivery(Context().get(), request, &response),
                   "endpoint_id");
  }
  {
    webhook::v1::GetDeliveryRequest request;
    request.set_id(huge);
    webhook::v1::GetDeliveryResponse response;
    expect_refused(stub().GetDelivery(Context().get(), request, &response),
                   "id");
  }
  {
    webhook::v1::RetryDeliveryRequest request;
    request.set_id(huge);
    webhook::v1::RetryDeliveryResponse response;
    expect_refused(stub().RetryDelivery(Context().get(), request, &response),
                   "id");
  }
  {
    webhook::v1::ListDeliveriesRequest request;
    request.set_endpoint_id(huge);
    webhook::v1::ListDeliveriesResponse response;
    expect_refused(stub().ListDeliveries(Context().get(), request, &response),
                   "endpoint_id");
  }
  {
    webhook::v1::StreamDeliveriesRequest request;
    request.set_endpoint_id(huge);
    auto context = Context();
    auto reader = stub().StreamDeliveries(context.get(), request);
    webhook::v1::StreamDeliveriesResponse message;
    EXPECT_FALSE(reader->Read(&message));
    expect_refused(reader->Finish(), "endpoint_id");
  }
}

TEST(ToGrpcStatusTest, LongMessagesAreCutAtOneKibibyte) {
  // "é" is two bytes: the cut must not split it.
  const std::string long_message = "x" + [] {
    std::string text;
    for (int i = 0; i < 1000; ++i) text += "\xc3\xa9";
    return text;
  }();
  const grpc::Status status = ToGrpcStatus(absl::NotFoundError(long_message));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_LE(status.error_message().size(), kMaxGrpcMessageBytes + 20);
  EXPECT_THAT(status.error_message(), ::testing::EndsWith("... (truncated)"));
  const std::string kept = status.error_message().substr(
      0, status.error_message().size() - std::string("... (truncated)").size());
  EXPECT_EQ(kept.size() % 2, 1u) << "a UTF-8 sequence was split";
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError("short")).error_message(),
            "short");
}

TEST_F(HostileInputTest, IdsOfTheRightLengthStillGetNotFound) {
  webhook::v1::GetEndpointRequest request;
  request.set_id("ep_" + std::string(32, '0'));
  webhook::v1::GetEndpointResponse response;
  EXPECT_EQ(
      stub().GetEndpoint(Context().get(), request, &response).error_code(),
      grpc::StatusCode::NOT_FOUND);
}

// --- Hostile receivers
// --------------------------------------------------------

TEST_F(HostileInputTest, SlowDripResponseEndsAtTheAttemptTimeout) {
  // One byte every 20 ms, until the client hangs up.
  RawServer drip(SlowDrip(absl::Milliseconds(20), 100000));
  // Were the timeout not enforced, the call would run into its own 10 s
  // deadline (TestAttempt expects OK) long before the drip ends.
  const Delivery delivery = TestAttempt(drip.Url());
  EXPECT_EQ(delivery.status(), DELIVERY_STATUS_FAILED);
  ASSERT_THAT(delivery.attempt_history(), SizeIs(1));
  const webhook::v1::DeliveryAttempt& attempt = delivery.attempt_history(0);
  EXPECT_THAT(attempt.error(), HasSubstr("timed out after 1000 ms"));
  EXPECT_GE(attempt.response_time_ms(), 900);
  EXPECT_THAT(attempt.response_body().size(), Le(4096u));
}

// Sends `head` then 64 KiB chunks (`chunk` framing each) until the client
// hangs up or `limit` bytes are out.
RawServer::Handler Flood(std::string head, bool chunked, size_t limit) {
  return [head = std::move(head), chunked,
          limit](RawServer::Connection& connection) {
    std::string request;
    if (!connection.ReadRequest(&request)) return;
    if (!connection.Write(head)) return;
    const std::string data(64 * 1024, 'z');
    const std::string chunk =
        chunked ? absl::StrCat("10000\r\n", data, "\r\n") : data;
    for (size_t sent = 0; sent < limit; sent += data.size()) {
      if (!connection.Write(chunk)) return;
    }
  };
}

TEST_F(HostileInputTest, HugeResponseBodyIsCutAtTheCaptureLimit) {
  constexpr size_t kBody = 50 * kMiB;
  RawServer huge(Flood(
      absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", kBody, "\r\n\r\n"),
      false, kBody));
  const Delivery delivery = TestAttempt(huge.Url());
  ASSERT_THAT(delivery.attempt_history(), SizeIs(1));
  EXPECT_EQ(delivery.status(), DELIVERY_STATUS_SUCCESS)
      << delivery.last_error();
  EXPECT_EQ(delivery.attempt_history(0).response_body(),
            std::string(4096, 'z'));
  // The rest was not read: the sender stopped at most a few socket buffers
  // past the capture limit.
  huge.Stop();
  EXPECT_LT(huge.bytes_written(), kBody / 2) << huge.bytes_written();
}

TEST_F(HostileInputTest, EndlessChunkedBodyIsCutAtTheCaptureLimit) {
  constexpr size_t kLimit = 1024 * kMiB;
  RawServer endless(
      Flood("HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: "
            "chunked\r\n\r\n",
            true, kLimit));
  const Delivery delivery = TestAttempt(endless.Url());
  ASSERT_THAT(delivery.attempt_history(), SizeIs(1));
  EXPECT_EQ(delivery.attempt_history(0).response_code(), 500);
  EXPECT_EQ(delivery.attempt_history(0).response_body().size(), 4096u);
  endless.Stop();
  EXPECT_LT(endless.bytes_written(), 64 * kMiB) << endless.bytes_written();
}

// --- Masking ----------------------------------------------------------------

TEST_F(HostileInputTest, SensitiveHeaderValuesAreMaskedInEveryResponse) {
  Endpoint input = MakeEndpoint("thread-1", receiver_.Url(), "hook-secret");
  input.clear_headers();
  const std::vector<std::string> sensitive = {
      "Authorization", "X-API-KEY", "x-auth-token", "Client-Secret", "Api_Key"};
  for (const std::string& name : sensitive) {
    auto* header = input.add_headers();
    header->set_name(name);
    header->set_value("sensitive-" + name);
  }
  auto* plain = input.add_headers();
  plain->set_name("X-Plain");
  plain->set_value("visible");

  const auto check = [&](const Endpoint& endpoint, const std::string& rpc) {
    EXPECT_TRUE(endpoint.secret().empty()) << rpc;
    EXPECT_TRUE(endpoint.has_secret()) << rpc;
    ASSERT_THAT(endpoint.headers(), SizeIs(sensitive.size() + 1)) << rpc;
    for (const webhook::v1::Header& header : endpoint.headers()) {
      if (header.name() == "X-Plain") {
        EXPECT_EQ(header.value(), "visible") << rpc;
      } else {
        EXPECT_THAT(header.value(), Not(HasSubstr("sensitive"))) << rpc;
        EXPECT_FALSE(header.value().empty()) << rpc;
      }
    }
  };
  const Endpoint created = CreateEndpoint(stub(), input);
  check(created, "CreateEndpoint");
  webhook::v1::GetEndpointRequest get;
  get.set_id(created.id());
  webhook::v1::GetEndpointResponse got;
  ASSERT_TRUE(stub().GetEndpoint(Context().get(), get, &got).ok());
  check(got.endpoint(), "GetEndpoint");
  const std::vector<Endpoint> listed = ListEndpoints();
  ASSERT_THAT(listed, SizeIs(1));
  check(listed[0], "ListEndpoints");
  webhook::v1::UpdateEndpointRequest update;
  update.mutable_endpoint()->set_id(created.id());
  update.mutable_endpoint()->set_name("renamed");
  update.mutable_update_mask()->add_paths("name");
  webhook::v1::UpdateEndpointResponse updated;
  ASSERT_TRUE(stub().UpdateEndpoint(Context().get(), update, &updated).ok());
  check(updated.endpoint(), "UpdateEndpoint");
  webhook::v1::DisableEndpointRequest disable;
  disable.set_id(created.id());
  webhook::v1::DisableEndpointResponse disabled;
  ASSERT_TRUE(stub().DisableEndpoint(Context().get(), disable, &disabled).ok());
  check(disabled.endpoint(), "DisableEndpoint");
  webhook::v1::EnableEndpointRequest enable;
  enable.set_id(created.id());
  webhook::v1::EnableEndpointResponse enabled;
  ASSERT_TRUE(stub().EnableEndpoint(Context().get(), enable, &enabled).ok());
  check(enabled.endpoint(), "EnableEndpoint");

  // The receiver still gets the real values.
  testing::Submit(stub(), ExampleEvent("thread-1"));
  ASSERT_TRUE(receiver_.WaitForRequests(1, absl::Seconds(10)));
  EXPECT_EQ(receiver_.Requests()[0].Header("Authorization"),
            "sensitive-Authorization");
}

// --- Secret hygiene ---------------------------------------------------------

TEST(SecretHygieneTest, SecretsAppearInNoResponseErrorOrLogLine) {
  const std::vector<std::string> secrets = {
      "SECRET-hygiene-7f3a9c2e", "SECRET2-hygiene-b81d4f07",
      "HEADERVAL-hygiene-55aa01", "APIKEY-hygiene-0123456789",
      "APIKEY-wrong-hygiene-9876"};
  TestDir dir;
  HttpReceiver receiver;
  std::ofstream(dir.Sub("keys.txt")) << secrets[3] << " 7\n";
  auto process = testing::WebhookdProcess::StartServer(
      dir.Sub("data"), dir.path(),
      {absl::StrCat("--api_keys_file=", dir.Sub("keys.txt")),
       "--retry_schedule=50ms"});
  ASSERT_TRUE(process->status().ok()) << process->status();
  webhook::v1::WebhookService::Stub& stub = process->stub();
  const auto ctx = [&](const std::string& key = "") {
    std::unique_ptr<grpc::ClientContext> context = Context();
    context->AddMetadata("authorization",
                         "Bearer " + (key.empty() ? secrets[3] : key));
    return context;
  };
  std::vector<std::string> seen;  // Every response and error text.
  const auto record = [&](const grpc::Status& status,
                          const google::protobuf::Message& response) {
    seen.push_back(status.error_message());
    seen.push_back(status.error_details());
    seen.push_back(response.DebugString());
    seen.push_back(response.SerializeAsString());
  };

  Endpoint endpoint = MakeEndpoint("thread-1", receiver.Url(), secrets[0]);
  endpoint.set_user_id(0);
  endpoint.clear_headers();
  auto* auth = endpoint.add_headers();
  auth->set_name("Authorization");
  auth->set_value("Bearer " + secrets[2]);
  auto* token = endpoint.add_headers();
  token->set_name("X-Token");
  token->set_value(secrets[2]);
  webhook::v1::CreateEndpointRequest create;
  *create.mutable_endpoint() = endpoint;
  webhook::v1::CreateEndpointResponse created;
  grpc::Status status = stub.CreateEndpoint(ctx().get(), create, &created);
  ASSERT_TRUE(status.ok()) << status.error_message();
  record(status, created);
  const std::string id = created.endpoint().id();

  // Errors on requests that carry the secrets.
  const std::vector<std::function<void(Endpoint&)>> spoilers = {
      [](Endpoint& e) { e.set_url("ftp://example.com/"); },
      [&](Endpoint& e) { e.set_secret(secrets[0] + std::string(1100, 'x')); },
      [&](Endpoint& e) {
        e.mutable_headers(1)->set_value(secrets[2] + "\r\n");
      },
      [&](Endpoint& e) {
        e.mutable_headers(1)->set_value(secrets[2] + std::string(5000, 'x'));
      },
      [](Endpoint& e) { e.set_user_id(8); },
  };
  for (const auto& spoil : spoilers) {
    *create.mutable_endpoint() = endpoint;
    spoil(*create.mutable_endpoint());
    webhook::v1::CreateEndpointResponse failed;
    status = stub.CreateEndpoint(ctx().get(), create, &failed);
    EXPECT_FALSE(status.ok());
    record(status, failed);
    webhook::v1::UpdateEndpointRequest update;
    *update.mutable_endpoint() = create.endpoint();
    update.mutable_endpoint()->set_id(id);
    for (const char* path : {"url", "secret", "headers"}) {
      update.mutable_update_mask()->add_paths(path);
    }
    webhook::v1::UpdateEndpointResponse not_updated;
    record(stub.UpdateEndpoint(ctx().get(), update, &not_updated), not_updated);
  }
  {
    webhook::v1::ListEndpointsResponse response;
    record(stub.ListEndpoints(ctx(secrets[4]).get(), {}, &response), response);
  }

  // Reads and changes that succeed.
  webhook::v1::UpdateEndpointRequest update;
  update.mutable_endpoint()->set_id(id);
  update.mutable_endpoint()->set_secret(secrets[1]);
  update.mutable_update_mask()->add_paths("secret");
  webhook::v1::UpdateEndpointResponse updated;
  status = stub.UpdateEndpoint(ctx().get(), update, &updated);
  EXPECT_TRUE(status.ok()) << status.error_message();
  record(status, updated);
  webhook::v1::GetEndpointRequest get;
  get.set_id(id);
  webhook::v1::GetEndpointResponse got;
  record(stub.GetEndpoint(ctx().get(), get, &got), got);
  webhook::v1::ListEndpointsResponse listed;
  record(stub.ListEndpoints(ctx().get(), {}, &listed), listed);
  webhook::v1::DisableEndpointRequest disable;
  disable.set_id(id);
  webhook::v1::DisableEndpointResponse disabled;
  record(stub.DisableEndpoint(ctx().get(), disable, &disabled), disabled);
  webhook::v1::EnableEndpointRequest enable;
  enable.set_id(id);
  webhook::v1::EnableEndpointResponse enabled;
  record(stub.EnableEndpoint(ctx().get(), enable, &enabled), enabled);
  webhook::v1::SendTestDeliveryRequest test;
  test.set_endpoint_id(id);
  webhook::v1::SendTestDeliveryResponse tested;
  status = stub.SendTestDelivery(ctx().get(), test, &tested);
  EXPECT_TRUE(status.ok()) << status.error_message();
  record(status, tested);
  receiver.SetDefaultStatus(500);  // Failed attempts and a retry too.
  webhook::v1::SubmitEventRequest event = ExampleEvent("thread-1");
  event.set_user_id(0);
  webhook::v1::SubmitEventResponse submitted;
  status = stub.SubmitEvent(ctx().get(), event, &submitted);
  ASSERT_TRUE(status.ok()) << status.error_message();
  record(status, submitted);
  ASSERT_TRUE(receiver.WaitForRequests(3, absl::Seconds(10)));
  webhook::v1::GetDeliveryRequest get_delivery;
  get_delivery.set_id(submitted.delivery_ids(0));
  webhook::v1::GetDeliveryResponse delivery;
  record(stub.GetDelivery(ctx().get(), get_delivery, &delivery), delivery);
  webhook::v1::ListDeliveriesResponse deliveries;
  record(stub.ListDeliveries(ctx().get(), {}, &deliveries), deliveries);
  webhook::v1::GetEndpointStatsRequest stats;
  stats.set_endpoint_id(id);
  webhook::v1::GetEndpointStatsResponse stats_response;
  record(stub.GetEndpointStats(ctx().get(), stats, &stats_response),
         stats_response);
  webhook::v1::RetryDeliveryRequest retry;
  retry.set_id(submitted.delivery_ids(0));
  webhook::v1::RetryDeliveryResponse retried;
  record(stub.RetryDelivery(ctx().get(), retry, &retried), retried);
  webhook::v1::DeleteEndpointRequest remove;
  remove.set_id(id);
  webhook::v1::DeleteEndpointResponse removed;
  record(stub.DeleteEndpoint(ctx().get(), remove, &removed), removed);

  // The receiver did get them: they were really in play.
  EXPECT_EQ(receiver.Requests()[0].Header("X-Token"), secrets[2]);

  process->Signal(SIGTERM);
  ASSERT_NE(process->Wait(absl::Seconds(20)), -1);
  const std::string log = process->Log();
  EXPECT_THAT(log, HasSubstr("serving on")) << "the log is where we think";
  ASSERT_GT(seen.size(), 40u);
  for (const std::string& secret : secrets) {
    for (const std::string& text : seen) {
      EXPECT_THAT(text, Not(HasSubstr(secret)));
    }
    EXPECT_THAT(log, Not(HasSubstr(secret)));
  }
}

}  // namespace
}  // namespace webhookd
