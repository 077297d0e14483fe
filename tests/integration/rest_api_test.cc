// The HTTP/JSON API end to end: a real webhookd with --http_listen on a
// free loopback port, a real HTTP client (httplib::Client) and a real
// receiver. Every route, the error mapping, API keys and tenant isolation,
// bad input that stores nothing, and the live delivery log as Server-Sent
// Events.

#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "server/app/webhook_server.h"
#include "server/console/console_assets.h"
#include "server/security/signature.h"
#include "tests/support/eventually.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using nlohmann::json;
using testing::Eventually;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using testing::kEventuallyTimeout;
using ::testing::SizeIs;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;

constexpr char kKeyOne[] = "key-of-user-one-9f8e7d6c5b4a";
constexpr char kKeyTwo[] = "key-of-user-two-0a1b2c3d4e5f";

// An answer: status, headers and the body parsed as JSON (null if none).
struct Answer {
  int status = 0;
  httplib::Headers headers;
  std::string body;
  json body_json;

  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

class RestApiTest : public ::testing::Test {
 protected:
  // `retry_policy`: the test server's fast schedule unless given.
  void StartServer(std::string api_keys_file = "", int http_threads = 16,
                   std::optional<RetryPolicy> retry_policy = std::nullopt) {
    ServerOptions options = TestServerOptions(dir_.Sub("data"));
    if (retry_policy.has_value()) {
      options.engine.retry_policy = *std::move(retry_policy);
    }
    options.http_listen = "127.0.0.1:0";
    options.http_threads = http_threads;
    options.http_heartbeat = absl::Milliseconds(100);
    options.api_keys_file = std::move(api_keys_file);
    options.engine.max_payload_bytes = 16 * 1024;
    server_ = std::make_unique<TestServer>(options);
    server_->Start();
    ASSERT_GT(server_->server().http_port(), 0);
    client_ = NewClient();
  }

  std::unique_ptr<httplib::Client> NewClient() {
    auto client = std::make_unique<httplib::Client>(
        "127.0.0.1", server_->server().http_port());
    client->set_read_timeout(30, 0);
    return client;
  }

  Answer Send(const std::string& method, const std::string& path,
              const std::string& body = "", httplib::Headers headers = {},
              const std::string& content_type = "application/json") {
    httplib::Result result = [&] {
      if (method == "GET") return client_->Get(path.c_str(), headers);
      if (method == "DELETE") return client_->Delete(path.c_str(), headers);
      if (method == "POST") {
        return client_->Post(path.c_str(), headers, body, content_type.c_str());
      }
      if (method == "PATCH") {
        return client_->Patch(path.c_str(), headers, body,
                              content_type.c_str());
      }
      return client_->Put(path.c_str(), headers, body, content_type.c_str());
    }();
    Answer answer;
    EXPECT_TRUE(result) << method << " " << path << ": "
                        << httplib::to_string(result.error());
    if (!result) return answer;
    answer.status = result->status;
    answer.headers = result->headers;
    answer.body = result->body;
    answer.body_json = json::parse(result->body, nullptr, false);
    return answer;
  }

  // Sends and expects a 200 with a JSON object; returns the object.
  json Ok(const std::string& method, const std::string& path,
          const std::string& body = "", httplib::Headers headers = {}) {
    Answer answer = Send(method, path, body, std::move(headers));
    EXPECT_EQ(answer.status, 200)
        << method << " " << path << ": " << answer.body;
    EXPECT_EQ(answer.Header("Content-Type"), "application/json");
    return answer.body_json;
  }

  // Expects Google's JSON error form with `status` and the code name.
  void ExpectError(const Answer& answer, int status, const std::string& code,
                   const std::string& message_part = "") {
    EXPECT_EQ(answer.status, status) << answer.body;
    ASSERT_TRUE(answer.body_json.is_object()) << answer.body;
    const json& error = answer.body_json["error"];
    EXPECT_EQ(error["code"], status) << answer.body;
    EXPECT_EQ(error["status"], code) << answer.body;
    EXPECT_THAT(error["message"].get<std::string>(), HasSubstr(message_part));
  }

  std::string EndpointBody(const std::string& thread, const std::string& url,
                           const std::string& secret = "s3cret") {
    return json{{"endpoint",
                 {{"threadId", thread},
                  {"name", "hook"},
                  {"url", url},
                  {"secret", secret}}}}
        .dump();
  }

  json CreateEndpoint(const std::string& thread, const std::string& url,
                      httplib::Headers headers = {}) {
    return Ok("POST", "/v1/endpoints", EndpointBody(thread, url),
              std::move(headers))["endpoint"];
  }

  std::string EventBody(const std::string& thread) {
    webhook::v1::SubmitEventRequest event = testing::ExampleEvent(thread);
    std::string body;
    EXPECT_TRUE(google::protobuf::util::MessageToJsonString(event, &body).ok());
    return body;
  }

  // Polls GET /v1/deliveries/{id} until `done` holds for it.
  json WaitForDelivery(const std::string& id,
                       const std::function<bool(const json&)>& done,
                       httplib::Headers headers = {}) {
    json delivery;
    EXPECT_TRUE(Eventually([&] {
      delivery = Ok("GET", "/v1/deliveries/" + id, "", headers)["delivery"];
      return done(delivery);
    })) << delivery.dump();
    return delivery;
  }

  size_t StoredEndpoints() {
    return testing::ListAllEndpoints(server_->stub()).size();
  }

  TestDir dir_;
  HttpReceiver receiver_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

bool Ended(const json& delivery) {
  return delivery["status"] == "DELIVERY_STATUS_SUCCESS" ||
         delivery["status"] == "DELIVERY_STATUS_FAILED";
}

TEST_F(RestApiTest, EndpointRoutesCreateReadUpdateAndDelete) {
  StartServer();
  json created = CreateEndpoint("thread-1", receiver_.Url());
  const std::string id = created["id"];
  EXPECT_TRUE(absl::StartsWith(id, "ep_"));
  EXPECT_EQ(created["threadId"], "thread-1");
  EXPECT_EQ(created["hasSecret"], true);
  EXPECT_FALSE(created.contains("secret")) << "input only";
  EXPECT_EQ(created["enabled"], true);
  EXPECT_FALSE(created.contains("disabledReason")) << "defaults left out";

  EXPECT_EQ(Ok("GET", "/v1/endpoints/" + id)["endpoint"]["id"], id);
  json listed = Ok("GET", "/v1/endpoints?thread_id=thread-1&pageSize=10");
  ASSERT_THAT(listed["endpoints"], SizeIs(1));
  EXPECT_EQ(listed["endpoints"][0]["id"], id);
  EXPECT_FALSE(listed.contains("nextPageToken"));
  EXPECT_THAT(Ok("GET", "/v1/endpoints?threadId=other")["endpoints"],
              SizeIs(0));

  json updated =
      Ok("PATCH", "/v1/endpoints/" + id,
         R"({"endpoint": {"name": "renamed"}, "updateMask": "name"})");
  EXPECT_EQ(updated["endpoint"]["name"], "renamed");
  EXPECT_EQ(updated["endpoint"]["id"], id);

  json disabled = Ok("POST", "/v1/endpoints/" + id + ":disable")["endpoint"];
  EXPECT_FALSE(disabled.contains("enabled")) << "false: left out";
  EXPECT_EQ(disabled["disabledReason"], "DISABLED_REASON_MANUAL");
  json enabled = Ok("POST", "/v1/endpoints/" + id + ":enable", "{}");
  EXPECT_EQ(enabled["endpoint"]["enabled"], true);

  json rotated = Ok("POST", "/v1/endpoints/" + id + ":rotateSecret",
                    R"({"gracePeriodSeconds": "60"})");
  EXPECT_FALSE(rotated["newSecret"].get<std::string>().empty());
  EXPECT_EQ(rotated["endpoint"]["hasPreviousSecret"], true);

  json stats = Ok("GET", "/v1/endpoints/" + id + "/stats")["stats"];
  EXPECT_EQ(stats["endpointId"], id);
  EXPECT_FALSE(stats.contains("totalDeliveries"));

  EXPECT_EQ(Ok("DELETE", "/v1/endpoints/" + id), json::object());
  ExpectError(Send("GET", "/v1/endpoints/" + id), 404, "NOT_FOUND");
  EXPECT_EQ(StoredEndpoints(), 0u);
}

TEST_F(RestApiTest, SubmittedEventIsDeliveredSignedAndListed) {
  StartServer();
  const std::string endpoint_id =
      CreateEndpoint("thread-1", receiver_.Url())["id"];
  json submitted = Ok("POST", "/v1/events", EventBody("thread-1"));
  ASSERT_THAT(submitted["deliveryIds"], SizeIs(1));
  const std::string delivery_id = submitted["deliveryIds"][0];

  ASSERT_TRUE(receiver_.WaitForRequests(1, kEventuallyTimeout));
  const testing::ReceivedRequest request = receiver_.Requests()[0];
  EXPECT_EQ(request.Header("X-Hub-Signature-256"),
            SignatureHex("s3cret", request.body));
  EXPECT_EQ(request.Header("X-Webhook-Id"), delivery_id);

  json delivery = WaitForDelivery(delivery_id, Ended);
  EXPECT_EQ(delivery["status"], "DELIVERY_STATUS_SUCCESS");
  EXPECT_EQ(delivery["payload"], request.body);
  EXPECT_EQ(delivery["endpointId"], endpoint_id);
  json listed = Ok("GET", "/v1/deliveries?thread_id=thread-1");
  ASSERT_THAT(listed["deliveries"], SizeIs(1));
  EXPECT_EQ(listed["deliveries"][0]["id"], delivery_id);
  EXPECT_THAT(Ok("GET", "/v1/deliveries?endpointId=" + endpoint_id +
                            "&status=DELIVERY_STATUS_FAILED")["deliveries"],
              SizeIs(0));
  json stats = Ok("GET", "/v1/endpoints/" + endpoint_id + "/stats")["stats"];
  EXPECT_EQ(stats["totalDeliveries"], "1");
}

TEST_F(RestApiTest, TestDeliveryRetryResendAndRecover) {
  StartServer();
  const std::string id = CreateEndpoint("thread-1", receiver_.Url())["id"];

  // :test sends one signed attempt with the edited payload.
  json tested = Ok("POST", "/v1/endpoints/" + id + ":test",
                   R"({"payloadJson": "{\"hello\": \"there\"}"})");
  EXPECT_EQ(tested["delivery"]["status"], "DELIVERY_STATUS_SUCCESS");
  EXPECT_EQ(tested["delivery"]["test"], true);
  ASSERT_TRUE(receiver_.WaitForRequests(1, kEventuallyTimeout));
  EXPECT_EQ(receiver_.Requests()[0].body, R"({"hello": "there"})");

  // A delivery whose every attempt fails...
  for (int i = 0; i < 4; ++i) receiver_.PushResponse(500);
  const std::string failed_id =
      Ok("POST", "/v1/events", EventBody("thread-1"))["deliveryIds"][0];
  json failed = WaitForDelivery(failed_id, Ended);
  ASSERT_EQ(failed["status"], "DELIVERY_STATUS_FAILED");
  // ...can be resent as a new delivery, which succeeds...
  json resent =
      Ok("POST", "/v1/deliveries/" + failed_id + ":resend")["delivery"];
  EXPECT_EQ(resent["resentFrom"], failed_id);
  EXPECT_EQ(WaitForDelivery(resent["id"], Ended)["status"],
            "DELIVERY_STATUS_SUCCESS");
  // ...and a failed one is recovered once (it was resent already: none).
  json recovered = Ok("POST", "/v1/endpoints/" + id + ":recover",
                      R"({"since": "2000-01-01T00:00:00Z"})");
  EXPECT_FALSE(recovered.contains("deliveryIds"));
  EXPECT_FALSE(recovered.contains("more"));
  // A delivery that ended SUCCESS has no attempts left to retry.
  ExpectError(Send("POST", "/v1/deliveries/" + failed_id + ":retry"), 400,
              "FAILED_PRECONDITION");
}

TEST_F(RestApiTest, RetryQueuesAManualAttemptOfAFailedDelivery) {
  // Retries a minute apart: the only second attempt is the manual one.
  // (With the fast test schedule the scheduled retry could succeed first,
  // and RetryDelivery then rightly refuses.)
  StartServer("", 16, RetryPolicy({absl::Seconds(60), absl::Seconds(60)}));
  CreateEndpoint("thread-1", receiver_.Url());
  // The first attempt fails: the delivery is RETRYING with attempts left.
  receiver_.PushResponse(500);
  const std::string id =
      Ok("POST", "/v1/events", EventBody("thread-1"))["deliveryIds"][0];
  WaitForDelivery(id, [](const json& delivery) {
    // attempts is left out of the JSON while it is 0 (proto3 JSON).
    return delivery.value("attempts", 0) == 1 &&
           delivery["status"] == "DELIVERY_STATUS_RETRYING";
  });
  json retried = Ok("POST", "/v1/deliveries/" + id + ":retry");
  EXPECT_EQ(retried["delivery"]["id"], id);
  EXPECT_EQ(WaitForDelivery(id, Ended)["status"], "DELIVERY_STATUS_SUCCESS");
}

TEST_F(RestApiTest, ReplayedIdempotentSubmitSaysSoInAHeader) {
  StartServer();
  CreateEndpoint("thread-1", receiver_.Url());
  json event = json::parse(EventBody("thread-1"));
  event["idempotencyKey"] = "order-42";
  Answer first = Send("POST", "/v1/events", event.dump());
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.Header("Idempotent-Replayed"), "");
  Answer second = Send("POST", "/v1/events", event.dump());
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(second.Header("Idempotent-Replayed"), "true");
  EXPECT_EQ(second.body_json["replayed"], true);
  EXPECT_EQ(second.body_json["eventId"], first.body_json["eventId"]);
  event["threadId"] = "thread-2";
  ExpectError(Send("POST", "/v1/events", event.dump()), 409, "ALREADY_EXISTS",
              "order-42");
}

TEST_F(RestApiTest, TraceparentHeaderReachesTheReceiver) {
  StartServer();
  CreateEndpoint("thread-1", receiver_.Url());
  const std::string trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  Ok("POST", "/v1/events", EventBody("thread-1"),
     {{"traceparent", absl::StrCat("00-", trace_id, "-00f067aa0ba902b7-01")}});
  ASSERT_TRUE(receiver_.WaitForRequests(1, kEventuallyTimeout));
  EXPECT_THAT(receiver_.Requests()[0].Header("traceparent"),
              HasSubstr(trace_id));
}

TEST_F(RestApiTest, ServiceErrorsMapToHttpStatuses) {
  StartServer();
  ExpectError(Send("GET", "/v1/endpoints/ep_0123"), 404, "NOT_FOUND");
  ExpectError(Send("GET", "/v1/deliveries/dlv_0123"), 404, "NOT_FOUND");
  ExpectError(Send("POST", "/v1/endpoints",
                   R"({"endpoint": {"threadId": "t", "name": "n"}})"),
              400, "INVALID_ARGUMENT", "url");
  ExpectError(Send("GET", "/v1/endpoints?pageSize=-1"), 400, "INVALID_ARGUMENT",
              "page_size");
}

TEST_F(RestApiTest, UnknownRoutesAndWrongMethodsAreRefused) {
  StartServer();
  ExpectError(Send("GET", "/v1/nothing"), 404, "NOT_FOUND", "no route");
  ExpectError(Send("GET", "/favicon.ico"), 404, "NOT_FOUND");
  Answer wrong = Send("PUT", "/v1/endpoints", "{}");
  ExpectError(wrong, 405, "UNIMPLEMENTED");
  EXPECT_EQ(wrong.Header("Allow"), "POST, GET");
  Answer verb = Send("GET", "/v1/deliveries/dlv_1:retry");
  ExpectError(verb, 405, "UNIMPLEMENTED");
  EXPECT_EQ(verb.Header("Allow"), "POST");
}

TEST_F(RestApiTest, BadInputIsRefusedClearlyAndStoresNothing) {
  StartServer();
  const std::string good = EndpointBody("thread-1", receiver_.Url());
  ExpectError(Send("POST", "/v1/endpoints", "{\"endpoint\": "), 400,
              "INVALID_ARGUMENT", "request body");
  ExpectError(Send("POST", "/v1/endpoints",
                   R"({"endpoint": {"threadId": "t", "colour": "red"}})"),
              400, "INVALID_ARGUMENT", "colour");
  ExpectError(Send("POST", "/v1/endpoints?dryRun=true", good), 400,
              "INVALID_ARGUMENT", "unknown query parameter \"dryRun\"");
  ExpectError(Send("GET", "/v1/deliveries?colour=red"), 400, "INVALID_ARGUMENT",
              "unknown query parameter \"colour\"");
  ExpectError(Send("POST", "/v1/endpoints", good, {}, "text/plain"), 415,
              "INVALID_ARGUMENT", "application/json");
  json big = json::parse(good);
  big["endpoint"]["name"] = std::string(200 * 1024, 'x');
  ExpectError(Send("POST", "/v1/endpoints", big.dump()), 413,
              "RESOURCE_EXHAUSTED", "larger than");
  EXPECT_EQ(StoredEndpoints(), 0u);
  // The server still serves after all that, on the same connection.
  CreateEndpoint("thread-1", receiver_.Url());
  EXPECT_EQ(StoredEndpoints(), 1u);
}

TEST_F(RestApiTest, RootRedirectsToTheConsole) {
  StartServer();
  for (const char* path : {"/", "/console"}) {
    Answer answer = Send("GET", path);
    EXPECT_EQ(answer.status, 302) << path;
    EXPECT_EQ(answer.Header("Location"), "/console/") << path;
  }
}

TEST_F(RestApiTest, ConsoleFilesAreServedWithStrictHeaders) {
  StartServer();
  for (const auto& [path, type] :
       std::vector<std::pair<std::string, std::string>>{
           {"", "text/html; charset=utf-8"},
           {"index.html", "text/html; charset=utf-8"},
           {"console.js", "text/javascript; charset=utf-8"},
           {"console.css", "text/css; charset=utf-8"}}) {
    Answer answer = Send("GET", "/console/" + path);
    EXPECT_EQ(answer.status, 200) << path;
    EXPECT_EQ(answer.Header("Content-Type"), type) << path;
    EXPECT_EQ(answer.body, FindConsoleAsset(path)->bytes) << path;
    EXPECT_EQ(answer.Header("Cache-Control"), "no-cache");
    EXPECT_EQ(answer.Header("X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(answer.Header("X-Frame-Options"), "DENY");
    const std::string policy = answer.Header("Content-Security-Policy");
    EXPECT_THAT(policy, HasSubstr("default-src 'none'"));
    EXPECT_THAT(policy, HasSubstr("script-src 'self';"));
    EXPECT_THAT(policy, HasSubstr("connect-src 'self';"));
    EXPECT_THAT(policy, HasSubstr("frame-ancestors 'none'"));
    EXPECT_THAT(policy, ::testing::Not(HasSubstr("unsafe")));
  }
}

TEST_F(RestApiTest, UnknownConsoleFilesAndWritesAreRefused) {
  StartServer();
  ExpectError(Send("GET", "/console/missing.js"), 404, "NOT_FOUND",
              "no console file /console/missing.js");
  ExpectError(Send("GET", "/console/sub/index.html"), 404, "NOT_FOUND");
  Answer write = Send("POST", "/console/", "{}");
  ExpectError(write, 405, "UNIMPLEMENTED");
  EXPECT_EQ(write.Header("Allow"), "GET, HEAD");
  // The API's routes are unchanged beside them.
  EXPECT_EQ(Send("GET", "/v1/endpoints").status, 200);
}

class RestApiAuthTest : public RestApiTest {
 protected:
  void SetUp() override {
    const std::string keys = dir_.Sub("api_keys");
    std::ofstream(keys) << kKeyOne << " 1\n" << kKeyTwo << " 2\n";
    StartServer(keys);
  }

  static httplib::Headers Key(const std::string& key) {
    return {{"Authorization", "Bearer " + key}};
  }
};

TEST_F(RestApiAuthTest, CallsNeedARightKey) {
  ExpectError(Send("GET", "/v1/endpoints"), 401, "UNAUTHENTICATED");
  ExpectError(Send("GET", "/v1/endpoints", "", Key("key-of-nobody-at-all-123")),
              401, "UNAUTHENTICATED");
  ExpectError(
      Send("POST", "/v1/endpoints", EndpointBody("thread-1", receiver_.Url())),
      401, "UNAUTHENTICATED");
  EXPECT_EQ(Send("GET", "/v1/endpoints", "", Key(kKeyOne)).status, 200);
  Answer stream = Send("GET", "/v1/deliveries:stream", "", {});
  ExpectError(stream, 401, "UNAUTHENTICATED");
}

TEST_F(RestApiAuthTest, ConsoleNeedsNoKeyButItsCallsDo) {
  // The files hold no data; the page asks for a key when a call answers 401.
  EXPECT_EQ(Send("GET", "/").status, 302);
  for (const char* path : {"/console/", "/console/console.js"}) {
    EXPECT_EQ(Send("GET", path).status, 200) << path;
  }
  ExpectError(Send("GET", "/v1/endpoints?threadId=thread-1"), 401,
              "UNAUTHENTICATED");
  ExpectError(Send("GET", "/v1/deliveries:stream?threadId=thread-1"), 401,
              "UNAUTHENTICATED");
}

TEST_F(RestApiAuthTest, UsersSeeOnlyTheirOwnEndpoints) {
  const std::string id =
      CreateEndpoint("thread-1", receiver_.Url(), Key(kKeyOne))["id"];
  EXPECT_EQ(
      Ok("GET", "/v1/endpoints/" + id, "", Key(kKeyOne))["endpoint"]["userId"],
      "1");
  ExpectError(Send("GET", "/v1/endpoints/" + id, "", Key(kKeyTwo)), 404,
              "NOT_FOUND");
  ExpectError(Send("DELETE", "/v1/endpoints/" + id, "", Key(kKeyTwo)), 404,
              "NOT_FOUND");
  EXPECT_THAT(Ok("GET", "/v1/endpoints", "", Key(kKeyTwo))["endpoints"],
              SizeIs(0));
  EXPECT_THAT(Ok("GET", "/v1/endpoints", "", Key(kKeyOne))["endpoints"],
              SizeIs(1));
}

// GET /v1/deliveries:stream read on its own thread: its events, as they
// come.
class EventStream {
 public:
  EventStream(int port, std::string path, httplib::Headers headers = {})
      : client_("127.0.0.1", port) {
    client_.set_read_timeout(60, 0);
    thread_ = std::thread([this, path = std::move(path), headers] {
      httplib::Result result = client_.Get(
          path.c_str(), headers,
          [this](const httplib::Response& response) {
            absl::MutexLock lock(&mu_);
            status_ = response.status;
            content_type_ = response.get_header_value("Content-Type");
            return true;
          },
          [this](const char* data, size_t length) {
            absl::MutexLock lock(&mu_);
            text_.append(data, length);
            return !closing_;
          });
      absl::MutexLock lock(&mu_);
      ended_ = true;
    });
  }
  ~EventStream() {
    Close();
    thread_.join();
  }

  // Stops reading: the next chunk received closes the connection.
  void Close() {
    absl::MutexLock lock(&mu_);
    closing_ = true;
  }

  // Waits until the text received contains `part`.
  bool WaitFor(const std::string& part) {
    absl::MutexLock lock(&mu_);
    auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return absl::StrContains(text_, part) || ended_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&seen), kEventuallyTimeout);
    return absl::StrContains(text_, part);
  }
  bool WaitEnded() {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&ended_), kEventuallyTimeout);
  }
  std::string text() {
    absl::MutexLock lock(&mu_);
    return text_;
  }
  int status() {
    absl::MutexLock lock(&mu_);
    return status_;
  }
  std::string content_type() {
    absl::MutexLock lock(&mu_);
    return content_type_;
  }

 private:
  httplib::Client client_;
  std::thread thread_;
  absl::Mutex mu_;
  std::string text_ ABSL_GUARDED_BY(mu_);
  int status_ ABSL_GUARDED_BY(mu_) = 0;
  std::string content_type_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

TEST_F(RestApiTest, EventStreamShowsALiveDeliveryAsItHappens) {
  StartServer();
  CreateEndpoint("thread-1", receiver_.Url());
  EventStream stream(server_->server().http_port(),
                     "/v1/deliveries:stream?thread_id=thread-1");
  // Subscribed once the server answers with its headers and a heartbeat.
  ASSERT_TRUE(stream.WaitFor(": heartbeat"));
  EXPECT_EQ(stream.status(), 200);
  EXPECT_EQ(stream.content_type(), "text/event-stream");
  const std::string id =
      Ok("POST", "/v1/events", EventBody("thread-1"))["deliveryIds"][0];
  ASSERT_TRUE(stream.WaitFor("DELIVERY_STATUS_SUCCESS")) << stream.text();
  // Each message is one "delivery" event whose data is its JSON.
  bool seen = false;
  for (absl::string_view block : absl::StrSplit(stream.text(), "\n\n")) {
    if (!absl::StartsWith(block, "event: delivery\ndata: ")) continue;
    json update = json::parse(block.substr(22), nullptr, false);
    ASSERT_TRUE(update.is_object()) << block;
    EXPECT_EQ(update["delivery"]["id"], id);
    seen = seen || update["delivery"]["status"] == "DELIVERY_STATUS_SUCCESS";
  }
  EXPECT_TRUE(seen) << stream.text();
}

TEST_F(RestApiTest, ClientGoneCancelsTheStreamCall) {
  StartServer();
  {
    EventStream stream(server_->server().http_port(),
                       "/v1/deliveries:stream?threadId=thread-1");
    ASSERT_TRUE(stream.WaitFor(": heartbeat"));
    EXPECT_EQ(server_->server().rest_server()->open_streams(), 1u);
    EXPECT_TRUE(Eventually(
        [&] { return server_->server().delivery_hub().StreamCount() == 1; }));
    stream.Close();
    ASSERT_TRUE(stream.WaitEnded());
  }
  // The next heartbeat finds the client gone: the gRPC stream is cancelled.
  EXPECT_TRUE(Eventually(
      [&] { return server_->server().rest_server()->open_streams() == 0; }));
  EXPECT_TRUE(Eventually(
      [&] { return server_->server().delivery_hub().StreamCount() == 0; }));
}

TEST_F(RestApiTest, StreamsBeyondHalfTheThreadsAreRefusedAndCallsGoOn) {
  StartServer("", /*http_threads=*/4);
  EventStream first(server_->server().http_port(), "/v1/deliveries:stream");
  EventStream second(server_->server().http_port(), "/v1/deliveries:stream");
  ASSERT_TRUE(first.WaitFor(": heartbeat"));
  ASSERT_TRUE(second.WaitFor(": heartbeat"));
  ExpectError(Send("GET", "/v1/deliveries:stream"), 503, "UNAVAILABLE",
              "too many event streams");
  // Calls still have threads.
  EXPECT_EQ(Send("GET", "/v1/endpoints").status, 200);
}

TEST_F(RestApiTest, ShutdownEndsOpenStreamsPromptly) {
  StartServer();
  EventStream stream(server_->server().http_port(), "/v1/deliveries:stream");
  ASSERT_TRUE(stream.WaitFor(": heartbeat"));
  // An idle keep-alive connection too.
  Ok("GET", "/v1/endpoints");
  const absl::Time start = absl::Now();
  server_->Stop(absl::Minutes(10));
  EXPECT_TRUE(stream.WaitEnded());
  // A grace far longer than this bound: nothing waited for it.
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

}  // namespace
}  // namespace webhookd
