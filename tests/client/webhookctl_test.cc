// The real webhookctl binary, run as a subprocess against a real in-process
// server on port 0; --output json is parsed and checked.

#include <signal.h>

#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "server/common/version.h"
#include "server/security/signature.h"
#include "tests/support/eventually.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using ::nlohmann::json;
using testing::CreateEndpoint;
using testing::Eventually;
using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using testing::MakeEndpoint;
using ::testing::Not;
using testing::RunResult;
using ::testing::SizeIs;
using testing::Submit;
using testing::Subprocess;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::WaitFinished;
using testing::WaitForDelivery;

class WebhookctlTest : public ::testing::Test {
 protected:
  void SetUp() override { server_.Start(); }

  webhook::v1::WebhookService::Stub& stub() { return server_.stub(); }
  std::string Server() const {
    return absl::StrCat("127.0.0.1:", server_.port());
  }

  // webhookctl --server <test server> args...
  std::vector<std::string> Argv(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {WEBHOOKCTL_BINARY, "--server", Server()};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  RunResult Ctl(const std::vector<std::string>& args) {
    return Subprocess::Run(Argv(args));
  }

  // Runs with --output json; expects success and returns the parsed output.
  json Json(std::vector<std::string> args) {
    args.push_back("--output");
    args.push_back("json");
    RunResult result = Ctl(args);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    json parsed = json::parse(result.out, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << result.out;
    return parsed;
  }

  webhook::v1::Endpoint NewEndpoint(const std::string& thread = "thread-1") {
    return CreateEndpoint(stub(), MakeEndpoint(thread, receiver_.Url()));
  }

  HttpReceiver receiver_;
  TestDir dir_;
  TestServer server_{TestServerOptions(dir_.Sub("data"))};
};

TEST_F(WebhookctlTest, ListenRefusesAPortInUse) {
  // The test server's gRPC port: sharing it would split its calls.
  RunResult result =
      Subprocess::Run({WEBHOOKCTL_BINARY, "listen", "--host", "127.0.0.1",
                       "--port", absl::StrCat(server_.port())});
  EXPECT_NE(result.exit_code, 0) << result.out;
  EXPECT_THAT(result.err, ::testing::HasSubstr("cannot listen on"));

  // Another listener's port: two receivers would each get half the
  // requests.
  absl::StatusOr<std::unique_ptr<Subprocess>> started = Subprocess::Start(
      {WEBHOOKCTL_BINARY, "listen", "--port", "0", "-o", "json"});
  ASSERT_TRUE(started.ok()) << started.status();
  Subprocess& first = **started;
  std::optional<std::string> line = first.ReadLine(absl::Seconds(10));
  ASSERT_TRUE(line.has_value());
  const std::string url = json::parse(*line)["listening"];
  const std::string port =
      url.substr(url.rfind(':') + 1, url.size() - url.rfind(':') - 2);
  result = Subprocess::Run(
      {WEBHOOKCTL_BINARY, "listen", "--host", "127.0.0.1", "--port", port});
  EXPECT_NE(result.exit_code, 0) << result.out;
  EXPECT_THAT(result.err, ::testing::HasSubstr("cannot listen on"));
  first.Signal(SIGINT);
  EXPECT_EQ(first.Finish(absl::Seconds(10)).exit_code, 0);
}

TEST_F(WebhookctlTest, ASecondServerOnAPortInUseDoesNotStart) {
  ServerOptions options = TestServerOptions(dir_.Sub("second"));
  options.listen = Server();
  absl::StatusOr<std::unique_ptr<WebhookServer>> second =
      WebhookServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(),
              ::testing::HasSubstr("cannot listen on"));
  // The first still answers every call.
  for (int i = 0; i < 8; ++i) {
    webhook::v1::ListEndpointsResponse list;
    EXPECT_TRUE(stub().ListEndpoints(testing::Context().get(), {}, &list).ok());
  }
}

TEST_F(WebhookctlTest, EndpointsCreatePrintsTheCreatedEndpoint) {
  json endpoint = Json({"endpoints", "create", "--thread", "thread-1", "--name",
                        "Local", "--url", receiver_.Url(), "--secret", "s3cret",
                        "--header", "X-Source: gpt-workbench", "--header",
                        "X-Team: ops", "--user", "42"});
  EXPECT_THAT(endpoint["id"].get<std::string>(), ::testing::StartsWith("ep_"));
  EXPECT_EQ(endpoint["threadId"], "thread-1");
  EXPECT_EQ(endpoint["name"], "Local");
  EXPECT_EQ(endpoint["url"], receiver_.Url());
  EXPECT_EQ(endpoint["userId"], "42");
  EXPECT_EQ(endpoint["hasSecret"], true);
  EXPECT_EQ(endpoint["enabled"], true);
  EXPECT_FALSE(endpoint.contains("secret") && endpoint["secret"] != "")
      << "the secret is never returned";
  ASSERT_EQ(endpoint["headers"].size(), 2u);
  EXPECT_EQ(endpoint["headers"][0]["name"], "X-Source");
  EXPECT_EQ(endpoint["headers"][0]["value"], "gpt-workbench");
  EXPECT_EQ(endpoint["headers"][1]["name"], "X-Team");
}

TEST_F(WebhookctlTest, EndpointsGetAndListShowEndpoints) {
  webhook::v1::Endpoint a = NewEndpoint("thread-1");
  webhook::v1::Endpoint b = NewEndpoint("thread-2");

  json got = Json({"endpoints", "get", a.id()});
  EXPECT_EQ(got["id"], a.id());
  EXPECT_EQ(got["threadId"], "thread-1");

  json all = Json({"endpoints", "list"});
  EXPECT_EQ(all["endpoints"].size(), 2u);
  json only = Json({"endpoints", "list", "--thread", "thread-2"});
  ASSERT_EQ(only["endpoints"].size(), 1u);
  EXPECT_EQ(only["endpoints"][0]["id"], b.id());

  json page = Json({"endpoints", "list", "--page-size", "1"});
  EXPECT_EQ(page["endpoints"].size(), 1u);
  EXPECT_NE(page["nextPageToken"], "");
}

TEST_F(WebhookctlTest, EndpointsUpdateChangesOnlyTheFieldsGiven) {
  webhook::v1::Endpoint endpoint = NewEndpoint();
  json updated = Json({"endpoints", "update", endpoint.id(), "--name",
                       "Renamed", "--header", "X-New: 1", "--clear-secret"});
  EXPECT_EQ(updated["name"], "Renamed");
  EXPECT_EQ(updated["url"], endpoint.url()) << "not in the mask";
  EXPECT_EQ(updated["hasSecret"], false);
  ASSERT_EQ(updated["headers"].size(), 1u);
  EXPECT_EQ(updated["headers"][0]["name"], "X-New");

  RunResult nothing = Ctl({"endpoints", "update", endpoint.id()});
  EXPECT_NE(nothing.exit_code, 0);
  EXPECT_THAT(nothing.err, HasSubstr("nothing to change"));
}

TEST_F(WebhookctlTest, EndpointsEventTypesAndCreatedDisabled) {
  json created =
      Json({"endpoints", "create", "--thread", "thread-1", "--name", "Reports",
            "--url", receiver_.Url(), "--event-type", "report.*",
            "--event-type", "execution.completed", "--disabled"});
  EXPECT_EQ(created["enabled"], false);
  ASSERT_EQ(created["eventTypes"].size(), 2u);
  EXPECT_EQ(created["eventTypes"][0], "report.*");
  EXPECT_EQ(created["eventTypes"][1], "execution.completed");
  const std::string id = created["id"];

  RunResult table = Ctl({"endpoints", "get", id});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("report.*, execution.completed"));
  RunResult list = Ctl({"endpoints", "list"});
  EXPECT_THAT(list.out, HasSubstr("EVENT TYPES"));
  EXPECT_THAT(list.out, HasSubstr("report.*, execution.completed"));

  json updated =
      Json({"endpoints", "update", id, "--event-type", "billing.invoice.paid"});
  ASSERT_EQ(updated["eventTypes"].size(), 1u);
  EXPECT_EQ(updated["eventTypes"][0], "billing.invoice.paid");
  json cleared = Json({"endpoints", "update", id, "--clear-event-types"});
  EXPECT_TRUE(cleared["eventTypes"].empty());
  EXPECT_THAT(Ctl({"endpoints", "get", id}).out, HasSubstr("all"));

  RunResult bad = Ctl({"endpoints", "update", id, "--event-type", "a*"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(bad.err, HasSubstr("endpoint.event_types[0]"));
}

TEST_F(WebhookctlTest, EndpointsDeleteThenGetFailsWithTheGrpcError) {
  webhook::v1::Endpoint endpoint = NewEndpoint();
  json deleted = Json({"endpoints", "delete", endpoint.id()});
  EXPECT_TRUE(deleted.is_object());

  RunResult get = Ctl({"endpoints", "get", endpoint.id()});
  EXPECT_EQ(get.exit_code, 1);
  EXPECT_THAT(get.err, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(get.err, HasSubstr(endpoint.id()));
  EXPECT_EQ(get.out, "");
}

TEST_F(WebhookctlTest, EndpointsDisableAndEnable) {
  webhook::v1::Endpoint endpoint = NewEndpoint();
  EXPECT_EQ(Json({"endpoints", "disable", endpoint.id()})["enabled"], false);
  webhook::v1::SubmitEventResponse held =
      Submit(stub(), ExampleEvent("thread-1"));
  EXPECT_THAT(held.delivery_ids(), SizeIs(0)) << "disabled: no delivery";
  EXPECT_EQ(Json({"endpoints", "enable", endpoint.id()})["enabled"], true);
}

TEST_F(WebhookctlTest, DisabledEndpointShowsWhy) {
  webhook::v1::Endpoint endpoint = NewEndpoint();
  json disabled = Json({"endpoints", "disable", endpoint.id()});
  EXPECT_EQ(disabled["disabledReason"], "DISABLED_REASON_MANUAL");
  RunResult get = Ctl({"endpoints", "get", endpoint.id()});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_THAT(get.out, HasSubstr("no (manual)"));
  RunResult list = Ctl({"endpoints", "list"});
  EXPECT_THAT(list.out, HasSubstr("no (manual)"));
}

TEST_F(WebhookctlTest, DeliveriesResendAndEndpointsRecover) {
  webhook::v1::Endpoint endpoint = NewEndpoint();
  receiver_.SetDefaultStatus(500);
  const webhook::v1::SubmitEventResponse submitted =
      Submit(stub(), ExampleEvent("thread-1"));
  const std::string failed = submitted.delivery_ids(0);
  ASSERT_EQ(WaitFinished(stub(), failed).status(),
            webhook::v1::DELIVERY_STATUS_FAILED);
  receiver_.SetDefaultStatus(200);

  json resent = Json({"deliveries", "resend", failed});
  EXPECT_EQ(resent["resentFrom"], failed);
  EXPECT_EQ(WaitFinished(stub(), resent["id"].get<std::string>()).status(),
            webhook::v1::DELIVERY_STATUS_SUCCESS);

  // The original was resent: nothing left to recover.
  json none = Json({"endpoints", "recover", endpoint.id(), "--since", "1h"});
  EXPECT_TRUE(none["deliveryIds"].empty()) << none;
  RunResult bad =
      Ctl({"endpoints", "recover", endpoint.id(), "--since", "yesterday"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--since"));
}

TEST_F(WebhookctlTest, EndpointsTestSendsOneSignedAttempt) {
  webhook::v1::Endpoint endpoint = NewEndpoint();
  json delivery = Json({"endpoints", "test", endpoint.id(), "--payload",
                        R"({"hello":"world"})"});
  EXPECT_EQ(delivery["status"], "DELIVERY_STATUS_SUCCESS");
  EXPECT_EQ(delivery["test"], true);
  EXPECT_EQ(delivery["responseCode"], 200);
  ASSERT_TRUE(receiver_.WaitForRequests(1, absl::Seconds(5)));
  const auto request = receiver_.Requests()[0];
  EXPECT_EQ(request.body, R"({"hello":"world"})");
  EXPECT_EQ(request.Header("X-Hub-Signature-256"),
            SignatureHex("s3cret", request.body));
}

TEST_F(WebhookctlTest, SecretGeneratePrintsStrongSecrets) {
  RunResult hex = Subprocess::Run({WEBHOOKCTL_BINARY, "secret", "generate"});
  EXPECT_EQ(hex.exit_code, 0) << hex.err;
  EXPECT_THAT(hex.out, ::testing::MatchesRegex("[0-9a-f]{64}\n"));
  RunResult whsec = Subprocess::Run(
      {WEBHOOKCTL_BINARY, "secret", "generate", "--standard-webhooks"});
  EXPECT_EQ(whsec.exit_code, 0) << whsec.err;
  const std::string secret(absl::StripTrailingAsciiWhitespace(whsec.out));
  ASSERT_TRUE(StandardWebhooksKey(secret).has_value()) << secret;
  EXPECT_EQ(StandardWebhooksKey(secret)->size(), 32u);
}

TEST_F(WebhookctlTest, EndpointsCreateWithStandardWebhooksSignsThatWay) {
  const std::string secret = GenerateSecret(/*standard_webhooks=*/true);
  json created = Json({"endpoints", "create", "--thread", "thread-1", "--name",
                       "Std", "--url", receiver_.Url(), "--secret", secret,
                       "--signature-scheme", "standard-webhooks"});
  EXPECT_EQ(created["signatureScheme"], "SIGNATURE_SCHEME_STANDARD_WEBHOOKS");
  json tested = Json({"endpoints", "test", created["id"]});
  EXPECT_EQ(tested["status"], "DELIVERY_STATUS_SUCCESS");
  ASSERT_TRUE(receiver_.WaitForRequests(1, absl::Seconds(5)));
  const auto request = receiver_.Requests()[0];
  int64_t timestamp = 0;
  ASSERT_TRUE(
      absl::SimpleAtoi(request.Header("webhook-timestamp"), &timestamp));
  EXPECT_EQ(request.Header("webhook-id"), tested["id"]);
  EXPECT_EQ(request.Header("webhook-signature"),
            StandardWebhooksSignature(*StandardWebhooksKey(secret),
                                      request.Header("webhook-id"), timestamp,
                                      request.body));
  EXPECT_FALSE(request.HasHeader("X-Hub-Signature-256"));

  // A secret of another form is refused, naming the field.
  RunResult refused =
      Ctl({"endpoints", "create", "--thread", "thread-1", "--name", "Std",
           "--url", receiver_.Url(), "--secret", "s3cret", "--signature-scheme",
           "standard-webhooks"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("endpoint.secret"));
  // Back to the default scheme with update.
  json updated = Json({"endpoints", "update", created["id"],
                       "--signature-scheme", "hub-signature-256"});
  EXPECT_EQ(updated["signatureScheme"], "SIGNATURE_SCHEME_HUB_SIGNATURE_256");
}

TEST_F(WebhookctlTest, EndpointsRotateSecretKeepsThePreviousOneForTheGrace) {
  webhook::v1::Endpoint endpoint = NewEndpoint();
  json rotated = Json({"endpoints", "rotate-secret", endpoint.id(), "--secret",
                       "n3w-secret", "--grace", "2h"});
  EXPECT_EQ(rotated["newSecret"], "");
  EXPECT_EQ(rotated["endpoint"]["hasPreviousSecret"], true);
  google::protobuf::Timestamp expire;
  ASSERT_TRUE(google::protobuf::util::TimeUtil::FromString(
      rotated["endpoint"]["previousSecretExpireTime"], &expire));
  EXPECT_GT(absl::FromUnixSeconds(expire.seconds()),
            absl::Now() + absl::Minutes(119));

  std::string id = Submit(stub(), ExampleEvent("thread-1")).delivery_ids(0);
  EXPECT_EQ(WaitFinished(stub(), id).status(),
            webhook::v1::DELIVERY_STATUS_SUCCESS);
  const auto request = receiver_.Requests().back();
  EXPECT_EQ(request.Header("X-Hub-Signature-256"),
            SignatureHex("s3cret", request.body));
  EXPECT_EQ(request.Header("X-Hub-Signature-256-Next"),
            SignatureHex("n3w-secret", request.body));

  // Generated: printed once, in the table too.
  RunResult generated = Ctl({"endpoints", "rotate-secret", endpoint.id()});
  EXPECT_EQ(generated.exit_code, 0) << generated.err;
  EXPECT_THAT(generated.out,
              ::testing::ContainsRegex("new secret  [0-9a-f]{64}"));
  EXPECT_THAT(generated.out, HasSubstr("previous secret  valid until"));

  RunResult bad_grace =
      Ctl({"endpoints", "rotate-secret", endpoint.id(), "--grace", "tomorrow"});
  EXPECT_EQ(bad_grace.exit_code, 2);
  EXPECT_THAT(bad_grace.err, HasSubstr("--grace"));
  RunResult too_long =
      Ctl({"endpoints", "rotate-secret", endpoint.id(), "--grace", "169h"});
  EXPECT_EQ(too_long.exit_code, 1);
  EXPECT_THAT(too_long.err, HasSubstr("grace_period_seconds"));
}

TEST_F(WebhookctlTest, EndpointsStatsShowDeliveriesAndAttempts) {
  server_.Stop();
  server_.options().engine.retry_policy = RetryPolicy({absl::Milliseconds(1)});
  server_.Start();
  webhook::v1::Endpoint endpoint = NewEndpoint();
  // One delivery succeeds at its second attempt, one fails both.
  receiver_.PushResponse(500);
  std::string first = Submit(stub(), ExampleEvent("thread-1")).delivery_ids(0);
  EXPECT_EQ(WaitFinished(stub(), first).status(),
            webhook::v1::DELIVERY_STATUS_SUCCESS);
  receiver_.PushResponse(500);
  receiver_.PushResponse(500);
  std::string second = Submit(stub(), ExampleEvent("thread-1")).delivery_ids(0);
  EXPECT_EQ(WaitFinished(stub(), second).status(),
            webhook::v1::DELIVERY_STATUS_FAILED);

  json stats = Json({"endpoints", "stats", endpoint.id()});
  EXPECT_EQ(stats["endpointId"], endpoint.id());
  EXPECT_EQ(stats["totalDeliveries"], "4");
  EXPECT_EQ(stats["successfulDeliveries"], "1");
  EXPECT_EQ(stats["successRate"], 25);
  EXPECT_EQ(stats["deliveriesSucceeded"], "1");
  EXPECT_EQ(stats["deliveriesFailed"], "1");
  EXPECT_EQ(stats["deliveriesInProgress"], "0");
  EXPECT_EQ(stats["deliverySuccessRate"], 50);

  RunResult table = Ctl({"endpoints", "stats", endpoint.id()});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, ::testing::ContainsRegex("deliveries succeeded +1\n"));
  EXPECT_THAT(table.out, ::testing::ContainsRegex("deliveries failed +1\n"));
  EXPECT_THAT(table.out,
              ::testing::ContainsRegex("delivery success rate +50 %"));
  EXPECT_THAT(table.out, ::testing::ContainsRegex("\nattempts +4\n"));
  EXPECT_THAT(table.out,
              ::testing::ContainsRegex("attempt success rate +25 %"));
}

TEST_F(WebhookctlTest, EventsSubmitFromFlags) {
  NewEndpoint();
  json submitted =
      Json({"events", "submit", "--thread", "thread-1", "--user", "42",
            "--trigger-name", "Nightly", "--job-id", "job-9", "--run-id",
            "run-9", "--prompt", "Summarise", "--idempotency-key", "k1"});
  EXPECT_THAT(submitted["eventId"].get<std::string>(),
              ::testing::StartsWith("evt_"));
  ASSERT_EQ(submitted["deliveryIds"].size(), 1u);
  ASSERT_TRUE(receiver_.WaitForRequests(1, absl::Seconds(10)));
  json body = json::parse(receiver_.Requests()[0].body);
  EXPECT_EQ(body["threadId"], "thread-1");
  EXPECT_EQ(body["userId"], 42);
  EXPECT_EQ(body["triggerName"], "Nightly");
  EXPECT_EQ(body["execution"]["jobId"], "job-9");
  EXPECT_EQ(body["execution"]["prompt"], "Summarise");

  const std::vector<std::string> same = {
      "events",   "submit",    "--thread",          "thread-1",
      "--user",   "42",        "--trigger-name",    "Nightly",
      "--job-id", "job-9",     "--run-id",          "run-9",
      "--prompt", "Summarise", "--idempotency-key", "k1"};
  EXPECT_EQ(submitted["replayed"], false);
  json again = Json(same);
  EXPECT_EQ(again["eventId"], submitted["eventId"]) << "idempotent";
  EXPECT_EQ(again["replayed"], true);
  RunResult table = Ctl(same);
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("replayed"));
  EXPECT_THAT(table.out, HasSubstr("yes"));

  RunResult conflict = Ctl({"events", "submit", "--thread", "thread-1",
                            "--user", "42", "--idempotency-key", "k1"});
  EXPECT_EQ(conflict.exit_code, 1);
  EXPECT_THAT(conflict.err, HasSubstr("ALREADY_EXISTS"));
  EXPECT_THAT(conflict.err, HasSubstr("different request"));
}

TEST_F(WebhookctlTest, EventsSubmitFromAJsonFileWithFlagOverrides) {
  NewEndpoint("thread-2");
  const std::string path = dir_.Sub("event.json");
  std::ofstream(path) << R"({"threadId": "thread-1", "userId": "7",
    "triggerName": "From file",
    "execution": {"jobId": "job-f", "run": {"totalTokens": "12",
      "messages": [{"role": "assistant", "content": "hi"}]}}})";
  json submitted =
      Json({"events", "submit", "--file", path, "--thread", "thread-2"});
  ASSERT_EQ(submitted["deliveryIds"].size(), 1u);
  ASSERT_TRUE(receiver_.WaitForRequests(1, absl::Seconds(10)));
  json body = json::parse(receiver_.Requests()[0].body);
  EXPECT_EQ(body["threadId"], "thread-2") << "the flag wins";
  EXPECT_EQ(body["userId"], 7);
  EXPECT_EQ(body["triggerName"], "From file");
  EXPECT_EQ(body["execution"]["run"]["totalTokens"], 12);
  EXPECT_EQ(body["execution"]["run"]["messages"][0]["content"], "hi");

  std::ofstream(dir_.Sub("bad.json")) << R"({"threadId": 5, "nope": 1})";
  RunResult bad = Ctl({"events", "submit", "--file", dir_.Sub("bad.json")});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("bad.json"));
}

TEST_F(WebhookctlTest, EventsSubmitBatchFromAJsonArrayPrintsEachResult) {
  NewEndpoint();
  const std::string path = dir_.Sub("events.json");
  std::ofstream(path) << R"([
    {"threadId": "thread-1", "triggerName": "first", "idempotencyKey": "b1"},
    {"triggerName": "no thread"},
    {"threadId": "thread-1", "triggerName": "third", "idempotencyKey": "b3"}
  ])";
  RunResult result = Ctl({"events", "submit-batch", "--file", path});
  EXPECT_EQ(result.exit_code, 1) << "one event was refused";
  const std::vector<std::string> lines =
      absl::StrSplit(result.out, '\n', absl::SkipEmpty());
  ASSERT_THAT(lines, SizeIs(3)) << result.out;
  EXPECT_THAT(lines[0], ::testing::StartsWith("0  OK  evt_"));
  EXPECT_THAT(lines[0], HasSubstr("dlv_"));
  EXPECT_THAT(lines[1], ::testing::StartsWith(
                            "1  INVALID_ARGUMENT  events[1].thread_id"));
  EXPECT_THAT(lines[2], ::testing::StartsWith("2  OK  evt_"));
  EXPECT_THAT(result.err, HasSubstr("1 of 3 events were refused"));
  ASSERT_TRUE(receiver_.WaitForRequests(2, absl::Seconds(10)));

  // NDJSON, with -o json: one SubmitEventResult per line; the keys replay.
  std::ofstream(dir_.Sub("events.ndjson"))
      << R"({"threadId": "thread-1", "triggerName": "first", "idempotencyKey": "b1"})"
      << "\n\n"
      << R"({"threadId": "thread-1", "triggerName": "third", "idempotencyKey": "b3"})"
      << "\n";
  RunResult again = Ctl({"events", "submit-batch", "--file",
                         dir_.Sub("events.ndjson"), "--output", "json"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  const std::vector<std::string> results =
      absl::StrSplit(again.out, '\n', absl::SkipEmpty());
  ASSERT_THAT(results, SizeIs(2)) << again.out;
  for (const std::string& line : results) {
    json parsed = json::parse(line);
    EXPECT_EQ(parsed["code"], 0);
    EXPECT_EQ(parsed["response"]["replayed"], true);
  }
  RunResult table =
      Ctl({"events", "submit-batch", "--file", dir_.Sub("events.ndjson")});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("1  REPLAYED  evt_"));
}

TEST_F(WebhookctlTest, EventsSubmitBatchRefusesABadFileAsUsage) {
  std::ofstream(dir_.Sub("bad.ndjson")) << "{\"threadId\": \"t\"}\n{nope\n";
  RunResult bad =
      Ctl({"events", "submit-batch", "--file", dir_.Sub("bad.ndjson")});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("line 2"));
  std::ofstream(dir_.Sub("empty.json")) << "[]";
  RunResult empty =
      Ctl({"events", "submit-batch", "--file", dir_.Sub("empty.json")});
  EXPECT_EQ(empty.exit_code, 2);
  EXPECT_THAT(empty.err, HasSubstr("no events"));
}

TEST_F(WebhookctlTest, DeliveriesListAndGet) {
  webhook::v1::Endpoint endpoint = NewEndpoint();
  receiver_.PushResponse(200);
  receiver_.SetDefaultStatus(500);
  std::string ok = Submit(stub(), ExampleEvent("thread-1")).delivery_ids(0);
  WaitFinished(stub(), ok);
  std::string failed = Submit(stub(), ExampleEvent("thread-1")).delivery_ids(0);
  WaitFinished(stub(), failed);

  json all = Json({"deliveries", "list", "--endpoint", endpoint.id()});
  ASSERT_EQ(all["deliveries"].size(), 2u);
  EXPECT_EQ(all["deliveries"][0]["id"], failed) << "newest first";
  json only_failed = Json({"deliveries", "list", "--status", "failed"});
  ASSERT_EQ(only_failed["deliveries"].size(), 1u);
  EXPECT_EQ(only_failed["deliveries"][0]["id"], failed);
  RunResult bad_status = Ctl({"deliveries", "list", "--status", "lost"});
  EXPECT_NE(bad_status.exit_code, 0);

  json got = Json({"deliveries", "get", failed});
  EXPECT_EQ(got["status"], "DELIVERY_STATUS_FAILED");
  EXPECT_EQ(got["attemptHistory"].size(), 4u);
  EXPECT_EQ(got["attemptHistory"][0]["responseCode"], 500);
  json payload = json::parse(got["payload"].get<std::string>());
  EXPECT_EQ(payload["threadId"], "thread-1");
}

TEST_F(WebhookctlTest, DeliveriesGetShowsTheTraceAndEachAttemptsSpan) {
  constexpr char kTraceparent[] =
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  NewEndpoint();
  receiver_.PushResponse(500);
  grpc::ClientContext context;
  context.AddMetadata("traceparent", kTraceparent);
  webhook::v1::SubmitEventResponse submitted;
  ASSERT_TRUE(
      stub().SubmitEvent(&context, ExampleEvent("thread-1"), &submitted).ok());
  const webhook::v1::Delivery delivery =
      WaitFinished(stub(), submitted.delivery_ids(0));
  ASSERT_EQ(delivery.attempt_history_size(), 2);

  RunResult table = Ctl({"deliveries", "get", delivery.id()});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr(kTraceparent));
  EXPECT_THAT(table.out, HasSubstr("SPAN"));
  for (const webhook::v1::DeliveryAttempt& attempt :
       delivery.attempt_history()) {
    EXPECT_THAT(table.out, HasSubstr(attempt.traceparent().substr(36, 16)));
  }
  json got = Json({"deliveries", "get", delivery.id()});
  EXPECT_EQ(got["traceparent"], kTraceparent);
  EXPECT_EQ(got["attemptHistory"][1]["traceparent"],
            delivery.attempt_history(1).traceparent());
}

TEST_F(WebhookctlTest, DeliveriesRetryQueuesAManualAttempt) {
  server_.Stop();
  server_.options().engine.retry_policy =
      RetryPolicy({absl::Seconds(60), absl::Seconds(60)});
  server_.Start();
  NewEndpoint();
  receiver_.PushResponse(500);
  std::string id = Submit(stub(), ExampleEvent("thread-1")).delivery_ids(0);
  WaitForDelivery(stub(), id, [](const webhook::v1::Delivery& d) {
    return d.attempts() == 1;
  });

  json queued = Json({"deliveries", "retry", id});
  EXPECT_EQ(queued["id"], id);
  EXPECT_EQ(queued["status"], "DELIVERY_STATUS_RETRYING");
  webhook::v1::Delivery done = WaitFinished(stub(), id);
  EXPECT_EQ(done.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  ASSERT_EQ(done.attempt_history_size(), 2);
  EXPECT_TRUE(done.attempt_history(1).manual());

  RunResult again = Ctl({"deliveries", "retry", id});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("FAILED_PRECONDITION"));
}

TEST_F(WebhookctlTest, DeliveriesWatchPrintsUpdatesUntilInterrupted) {
  NewEndpoint();
  absl::StatusOr<std::unique_ptr<Subprocess>> started = Subprocess::Start(
      Argv({"deliveries", "watch", "--thread", "thread-1", "-o", "json"}));
  ASSERT_TRUE(started.ok()) << started.status();
  Subprocess& watch = **started;
  DeliveryHub& hub = server_.server().delivery_hub();
  ASSERT_TRUE(Eventually([&hub] { return hub.StreamCount() == 1; }));
  std::string id = Submit(stub(), ExampleEvent("thread-1")).delivery_ids(0);

  std::vector<json> updates;
  while (updates.size() < 50) {
    std::optional<std::string> line = watch.ReadLine(absl::Seconds(10));
    ASSERT_TRUE(line.has_value()) << "watch ended early";
    updates.push_back(json::parse(*line));
    if (updates.back()["delivery"]["status"] == "DELIVERY_STATUS_SUCCESS") {
      break;
    }
  }
  ASSERT_GE(updates.size(), 2u);
  EXPECT_EQ(updates.front()["delivery"]["id"], id);
  EXPECT_EQ(updates.front()["delivery"]["status"], "DELIVERY_STATUS_PENDING");
  EXPECT_EQ(updates.back()["delivery"]["id"], id);
  EXPECT_EQ(updates.back()["delivery"]["status"], "DELIVERY_STATUS_SUCCESS");

  watch.Signal(SIGINT);
  RunResult result = watch.Finish(absl::Seconds(10));
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(Eventually([&hub] { return hub.StreamCount() == 0; }));
}

TEST_F(WebhookctlTest, DeliveriesWatchReplaysRecentDeliveries) {
  NewEndpoint();
  std::string id = Submit(stub(), ExampleEvent("thread-1")).delivery_ids(0);
  WaitFinished(stub(), id);
  absl::StatusOr<std::unique_ptr<Subprocess>> started = Subprocess::Start(
      Argv({"deliveries", "watch", "--replay", "5", "-o", "json"}));
  ASSERT_TRUE(started.ok()) << started.status();
  Subprocess& watch = **started;
  std::optional<std::string> line = watch.ReadLine(absl::Seconds(10));
  ASSERT_TRUE(line.has_value());
  json update = json::parse(*line);
  EXPECT_EQ(update["delivery"]["id"], id);
  EXPECT_EQ(update["delivery"]["status"], "DELIVERY_STATUS_SUCCESS");
  watch.Signal(SIGINT);
  EXPECT_EQ(watch.Finish(absl::Seconds(10)).exit_code, 0);
}

TEST_F(WebhookctlTest, ListenVerifiesSignaturesAndPrintsPayloads) {
  absl::StatusOr<std::unique_ptr<Subprocess>> started =
      Subprocess::Start({WEBHOOKCTL_BINARY, "listen", "--port", "0", "--secret",
                         "s3cret", "--output", "json"});
  ASSERT_TRUE(started.ok()) << started.status();
  Subprocess& listen = **started;
  std::optional<std::string> first = listen.ReadLine(absl::Seconds(10));
  ASSERT_TRUE(first.has_value());
  const std::string url = json::parse(*first)["listening"];
  ASSERT_THAT(url, ::testing::StartsWith("http://127.0.0.1:"));

  // A real delivery, signed by the server.
  CreateEndpoint(stub(), MakeEndpoint("thread-1", url + "hook", "s3cret"));
  std::string id = Submit(stub(), ExampleEvent("thread-1")).delivery_ids(0);
  std::optional<std::string> line = listen.ReadLine(absl::Seconds(10));
  ASSERT_TRUE(line.has_value());
  json received = json::parse(*line);
  EXPECT_EQ(received["delivery_id"], id);
  EXPECT_EQ(received["signature"], "valid");
  EXPECT_EQ(received["status"], 200);
  EXPECT_EQ(received["body"]["threadId"], "thread-1");
  EXPECT_EQ(WaitFinished(stub(), id).status(),
            webhook::v1::DELIVERY_STATUS_SUCCESS);

  // Forged and unsigned requests are refused.
  const int port = std::stoi(url.substr(url.rfind(':') + 1));
  httplib::Client client("127.0.0.1", port);
  httplib::Headers forged = {{"X-Hub-Signature-256", std::string(64, 'a')}};
  auto bad = client.Post("/hook", forged, R"({"a":1})", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 401);
  line = listen.ReadLine(absl::Seconds(10));
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(json::parse(*line)["signature"], "invalid");
  auto unsigned_post = client.Post("/hook", R"({"a":1})", "application/json");
  ASSERT_TRUE(unsigned_post);
  EXPECT_EQ(unsigned_post->status, 401);
  line = listen.ReadLine(absl::Seconds(10));
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(json::parse(*line)["signature"], "missing");
  // GitHub's "sha256=" form is accepted too.
  httplib::Headers prefixed = {
      {"X-Hub-Signature-256",
       "sha256=" + SignatureHex("s3cret", R"({"a":1})")}};
  auto good = client.Post("/hook", prefixed, R"({"a":1})", "application/json");
  ASSERT_TRUE(good);
  EXPECT_EQ(good->status, 200);
  // No connection is kept alive after its request (webhookd's curl would
  // keep one, and an idle keep-alive connection held the exit on Ctrl-C for
  // httplib's 5 s keep-alive timeout): each answer closes its connection.
  EXPECT_EQ(good->get_header_value("Connection"), "close");

  // Ctrl-C ends it.
  listen.Signal(SIGINT);
  EXPECT_EQ(listen.Finish(absl::Seconds(10)).exit_code, 0);
}

TEST_F(WebhookctlTest, ListenChecksStandardWebhooksAndRotations) {
  const std::string secret = GenerateSecret(/*standard_webhooks=*/true);
  absl::StatusOr<std::unique_ptr<Subprocess>> started =
      Subprocess::Start({WEBHOOKCTL_BINARY, "listen", "--port", "0", "--secret",
                         secret, "--output", "json"});
  ASSERT_TRUE(started.ok()) << started.status();
  Subprocess& listen = **started;
  std::optional<std::string> first = listen.ReadLine(absl::Seconds(10));
  ASSERT_TRUE(first.has_value());
  const std::string url = json::parse(*first)["listening"];
  const int port = std::stoi(url.substr(url.rfind(':') + 1));
  httplib::Client client("127.0.0.1", port);
  const std::string body = R"({"a":1})";
  auto post = [&](int64_t timestamp, const std::string& signed_body) {
    httplib::Headers headers = {
        {"webhook-id", "dlv_1"},
        {"webhook-timestamp", absl::StrCat(timestamp)},
        {"webhook-signature",
         "v1,Zm9yZ2Vk " +
             StandardWebhooksSignature(*StandardWebhooksKey(secret), "dlv_1",
                                       timestamp, signed_body)}};
    auto response = client.Post("/hook", headers, body, "application/json");
    std::optional<std::string> line = listen.ReadLine(absl::Seconds(10));
    EXPECT_TRUE(line.has_value());
    return std::make_pair(response ? response->status : 0,
                          line ? json::parse(*line)["signature"] : json());
  };
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  EXPECT_EQ(post(now, body), std::make_pair(200, json("valid")));
  EXPECT_EQ(post(now, R"({"a":2})"), std::make_pair(401, json("invalid")));
  EXPECT_EQ(post(now - 600, body), std::make_pair(401, json("stale")));
  listen.Signal(SIGINT);
  EXPECT_EQ(listen.Finish(absl::Seconds(10)).exit_code, 0);
}

TEST_F(WebhookctlTest, TablesAreTheDefaultOutput) {
  webhook::v1::Endpoint endpoint = NewEndpoint();
  RunResult list = Ctl({"endpoints", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr("ID"));
  EXPECT_THAT(list.out, HasSubstr("THREAD"));
  EXPECT_THAT(list.out, HasSubstr(endpoint.id()));
  EXPECT_TRUE(json::parse(list.out, nullptr, false).is_discarded());
}

TEST_F(WebhookctlTest, ServerComesFromTheEnvironment) {
  webhook::v1::Endpoint endpoint = NewEndpoint();
  Subprocess::Options options;
  options.env = {"WEBHOOKCTL_SERVER=" + Server()};
  RunResult result = Subprocess::Run(
      {WEBHOOKCTL_BINARY, "endpoints", "get", endpoint.id(), "-o", "json"},
      absl::Seconds(30), options);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(json::parse(result.out)["id"], endpoint.id());
}

TEST_F(WebhookctlTest, UnreachableServerFailsWithTheGrpcError) {
  RunResult result =
      Subprocess::Run({WEBHOOKCTL_BINARY, "--server", "127.0.0.1:1",
                       "--timeout", "5", "endpoints", "list"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(result.err, HasSubstr("is webhookd running on 127.0.0.1:1?"));
}

TEST_F(WebhookctlTest, CallErrorsOtherThanConnectingGiveNoHint) {
  RunResult result = Ctl({"endpoints", "get", "ep_missing"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(result.err, Not(HasSubstr("is webhookd running")));
}

TEST_F(WebhookctlTest, VersionPrintsTheVersionAndExitsZero) {
  RunResult result = Subprocess::Run({WEBHOOKCTL_BINARY, "--version"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr(absl::StrCat("webhookctl ", kVersion)));
}

TEST_F(WebhookctlTest, EndpointsTestExitsNonZeroWhenTheDeliveryFails) {
  receiver_.SetDefaultResponse(500, "down");
  webhook::v1::Endpoint endpoint = NewEndpoint();
  RunResult result = Ctl({"endpoints", "test", endpoint.id()});
  EXPECT_EQ(result.exit_code, 1) << result.out;
  EXPECT_THAT(result.out, HasSubstr("FAILED")) << "the outcome is shown";
  EXPECT_THAT(result.err, HasSubstr("the test delivery failed"));
  EXPECT_EQ(receiver_.RequestCount(), 1u);
}

TEST_F(WebhookctlTest, EverySubcommandHasHelp) {
  const std::vector<std::vector<std::string>> commands = {
      {},
      {"endpoints"},
      {"endpoints", "create"},
      {"endpoints", "get"},
      {"endpoints", "list"},
      {"endpoints", "update"},
      {"endpoints", "delete"},
      {"endpoints", "enable"},
      {"endpoints", "disable"},
      {"endpoints", "test"},
      {"endpoints", "stats"},
      {"endpoints", "rotate-secret"},
      {"secret"},
      {"secret", "generate"},
      {"events"},
      {"events", "submit"},
      {"deliveries"},
      {"deliveries", "list"},
      {"deliveries", "get"},
      {"deliveries", "retry"},
      {"deliveries", "watch"},
      {"listen"}};
  for (std::vector<std::string> command : commands) {
    command.insert(command.begin(), WEBHOOKCTL_BINARY);
    command.push_back("--help");
    RunResult result = Subprocess::Run(command);
    EXPECT_EQ(result.exit_code, 0) << command.size();
    EXPECT_THAT(result.out, HasSubstr("Usage: webhookctl"));
  }
}

TEST_F(WebhookctlTest, UsageErrorsExitNonZero) {
  RunResult missing_id = Ctl({"endpoints", "get"});
  EXPECT_EQ(missing_id.exit_code, 2);
  EXPECT_THAT(missing_id.err, HasSubstr("id is required"));
  RunResult unknown = Ctl({"endpoints", "frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  RunResult bad_output = Ctl({"endpoints", "list", "--output", "xml"});
  EXPECT_EQ(bad_output.exit_code, 2);
}

}  // namespace
}  // namespace webhookd
