#include "server/delivery/payload.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <regex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace webhookd {
namespace {

using ::testing::ElementsAre;

// An InvalidArgument whose message starts with "<field>: ".
MATCHER_P(IsInvalidArgumentFor, field,
          absl::StrCat("is InvalidArgument naming ", field)) {
  return arg.code() == absl::StatusCode::kInvalidArgument &&
         absl::StartsWith(arg.message(), absl::StrCat(field, ": "));
}

constexpr int64_t kQueuedAtSeconds = 1774774800;  // 2026-03-29T09:00:00Z

google::protobuf::Timestamp Ts(int64_t seconds, int32_t nanos = 0) {
  google::protobuf::Timestamp timestamp;
  timestamp.set_seconds(seconds);
  timestamp.set_nanos(nanos);
  return timestamp;
}

google::protobuf::Struct StructFromJson(const std::string& json) {
  google::protobuf::Struct message;
  const auto status =
      google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in " << json;
  return message;
}

// The example of the product documentation.
webhook::v1::SubmitEventRequest DocumentedRequest() {
  webhook::v1::SubmitEventRequest request;
  request.set_thread_id("883b1733-d50c-64e7-bg4c-779988001111");
  request.set_user_id(42);
  request.set_event_type("execution.completed");
  request.set_trigger_id("550e8400-e29b-41d4-a716-446655440000");
  request.set_trigger_name("Daily Report Schedule");
  webhook::v1::Execution* execution = request.mutable_execution();
  execution->set_job_id("661f9511-b38a-42c5-9e2a-557766880000");
  execution->set_run_id("772a0622-c49b-53d6-af3b-668877990000");
  execution->set_prompt("Generate today's sales summary");
  *execution->mutable_queued_at() = Ts(kQueuedAtSeconds);
  *execution->mutable_completed_at() = Ts(kQueuedAtSeconds + 12, 450000000);
  execution->set_duration_ms(12450);
  webhook::v1::Run* run = execution->mutable_run();
  run->set_total_cost_usd(0.0342);
  run->set_total_tokens(4521);
  *run->mutable_started_at() = Ts(kQueuedAtSeconds + 1);
  *run->mutable_completed_at() = Ts(kQueuedAtSeconds + 12, 450000000);
  run->set_duration_ms(11450);
  *run->add_messages() = StructFromJson(
      R"({"role": "assistant", "content": "Sales were up 12%."})");
  return request;
}

std::string RenderOrDie(const webhook::v1::SubmitEventRequest& request) {
  absl::StatusOr<std::string> payload = RenderEventPayload(request);
  EXPECT_TRUE(payload.ok()) << payload.status();
  return payload.ok() ? *payload : "";
}

std::vector<std::string> Keys(const nlohmann::ordered_json& object) {
  std::vector<std::string> keys;
  for (const auto& item : object.items()) keys.push_back(item.key());
  return keys;
}

// --- RenderEventPayload -----------------------------------------------------

TEST(RenderEventPayloadTest, RendersDocumentedExampleByteForByte) {
  EXPECT_EQ(
      RenderOrDie(DocumentedRequest()),
      R"({"event":"execution.completed",)"
      R"("triggerId":"550e8400-e29b-41d4-a716-446655440000",)"
      R"("triggerName":"Daily Report Schedule",)"
      R"("execution":{"jobId":"661f9511-b38a-42c5-9e2a-557766880000",)"
      R"("runId":"772a0622-c49b-53d6-af3b-668877990000",)"
      R"("prompt":"Generate today's sales summary",)"
      R"("run":{"totalCostUsd":0.0342,"totalTokens":4521,)"
      R"("startedAt":"2026-03-29T09:00:01.000Z",)"
      R"("completedAt":"2026-03-29T09:00:12.450Z","durationMs":11450,)"
      R"("messages":[{"content":"Sales were up 12%.","role":"assistant"}]},)"
      R"("queuedAt":"2026-03-29T09:00:00.000Z",)"
      R"("completedAt":"2026-03-29T09:00:12.450Z","durationMs":12450},)"
      R"("threadId":"883b1733-d50c-64e7-bg4c-779988001111","userId":42})");
}

TEST(RenderEventPayloadTest, UnsetFieldsRenderAsEmptyZeroNullAndEmptyList) {
  EXPECT_EQ(RenderOrDie(webhook::v1::SubmitEventRequest()),
            R"({"event":"execution.completed","triggerId":"","triggerName":"",)"
            R"("execution":{"jobId":"","runId":"","prompt":"",)"
            R"("run":{"totalCostUsd":0,"totalTokens":0,"startedAt":null,)"
            R"("completedAt":null,"durationMs":0,"messages":[]},)"
            R"("queuedAt":null,"completedAt":null,"durationMs":0},)"
            R"("threadId":"","userId":0})");
}

TEST(RenderEventPayloadTest, KeysFollowDocumentedOrder) {
  const auto payload =
      nlohmann::ordered_json::parse(RenderOrDie(DocumentedRequest()));
  EXPECT_THAT(Keys(payload), ElementsAre("event", "triggerId", "triggerName",
                                         "execution", "threadId", "userId"));
  EXPECT_THAT(Keys(payload["execution"]),
              ElementsAre("jobId", "runId", "prompt", "run", "queuedAt",
                          "completedAt", "durationMs"));
  EXPECT_THAT(Keys(payload["execution"]["run"]),
              ElementsAre("totalCostUsd", "totalTokens", "startedAt",
                          "completedAt", "durationMs", "messages"));
}

TEST(RenderEventPayloadTest, IntegersAreJsonIntegers) {
  webhook::v1::SubmitEventRequest request = DocumentedRequest();
  request.set_user_id(std::numeric_limits<int64_t>::max());
  request.mutable_execution()->mutable_run()->set_total_tokens(
      9007199254740993);  // 2^53 + 1: not representable as a double.
  const auto payload = nlohmann::json::parse(RenderOrDie(request));
  EXPECT_TRUE(payload["userId"].is_number_integer());
  EXPECT_EQ(payload["userId"].get<int64_t>(),
            std::numeric_limits<int64_t>::max());
  EXPECT_TRUE(payload["execution"]["durationMs"].is_number_integer());
  EXPECT_TRUE(payload["execution"]["run"]["durationMs"].is_number_integer());
  EXPECT_TRUE(payload["execution"]["run"]["totalTokens"].is_number_integer());
  EXPECT_EQ(payload["execution"]["run"]["totalTokens"].get<int64_t>(),
            9007199254740993);
}

TEST(RenderEventPayloadTest, NegativeIntegersRenderExactly) {
  webhook::v1::SubmitEventRequest request;
  request.set_user_id(-7);
  EXPECT_TRUE(absl::StrContains(RenderOrDie(request), R"("userId":-7})"));
}

TEST(RenderEventPayloadTest, EmptyEventTypeRendersDefault) {
  webhook::v1::SubmitEventRequest request = DocumentedRequest();
  request.clear_event_type();
  EXPECT_TRUE(absl::StartsWith(RenderOrDie(request),
                               R"({"event":"execution.completed",)"));
}

TEST(RenderEventPayloadTest, GivenEventTypeIsKept) {
  webhook::v1::SubmitEventRequest request = DocumentedRequest();
  request.set_event_type("report.generated");
  EXPECT_TRUE(absl::StartsWith(RenderOrDie(request),
                               R"({"event":"report.generated",)"));
}

TEST(RenderEventPayloadTest, MessagesRenderedVerbatimWithSortedKeys) {
  webhook::v1::SubmitEventRequest request;
  webhook::v1::Run* run = request.mutable_execution()->mutable_run();
  *run->add_messages() = StructFromJson(R"({
      "role": "assistant",
      "content": [{"type": "text", "text": "line1\nline2 \"quoted\" \u00e9\u20ac"}],
      "meta": {"done": true, "failed": false, "none": null,
               "nested": {"list": [1, 2.5, "three", [], {}]}},
      "tokens": 42.0,
      "score": -0.125})");
  *run->add_messages() = StructFromJson(R"({})");
  const std::string payload = RenderOrDie(request);
  EXPECT_TRUE(absl::StrContains(
      payload, R"("messages":[{"content":[{"text":"line1\nline2 \"quoted\" )"
               "\u00e9\u20ac"
               R"(","type":"text"}],)"
               R"("meta":{"done":true,"failed":false,)"
               R"("nested":{"list":[1,2.5,"three",[],{}]},"none":null},)"
               R"("role":"assistant","score":-0.125,"tokens":42},{}])"))
      << payload;
}

TEST(RenderEventPayloadTest, NumbersUseShortestRoundTripForm) {
  webhook::v1::SubmitEventRequest request;
  webhook::v1::Run* run = request.mutable_execution()->mutable_run();
  run->set_total_cost_usd(0.1 + 0.2);
  *run->add_messages() = StructFromJson(
      R"({"a": 42.0, "b": -3, "c": 1e300, "d": 0.0342, "e": 1e-7,
          "f": 9007199254740992, "g": 1e16})");
  const std::string payload = RenderOrDie(request);
  EXPECT_TRUE(
      absl::StrContains(payload, R"("totalCostUsd":0.30000000000000004,)"))
      << payload;
  EXPECT_TRUE(absl::StrContains(
      payload,
      R"({"a":42,"b":-3,"c":1e+300,"d":0.0342,"e":1e-07,"f":9007199254740992,)"
      R"("g":1e+16})"))
      << payload;
  const auto parsed = nlohmann::json::parse(payload);
  const auto& message = parsed["execution"]["run"]["messages"][0];
  EXPECT_EQ(message["c"].get<double>(), 1e300);
  EXPECT_EQ(message["e"].get<double>(), 1e-7);
}

TEST(RenderEventPayloadTest, StringsAreEscapedAndRoundTrip) {
  // Every control character, the two JSON escapes, '/', DEL and text in
  // 2-, 3- and 4-byte UTF-8: escaped byte for byte as earlier releases did
  // (lower-case hex), and parsed back to the same text.
  std::string text;
  for (char c = 1; c < 0x20; ++c) text += c;
  constexpr char kSpecial[] = "\0 \"quote\" back\\slash /slash \x7f";
  text += std::string(kSpecial, sizeof(kSpecial) - 1);
  text += "\u00e9\u20ac\U0001F600";
  text += std::string(100, 'a');
  webhook::v1::SubmitEventRequest request = DocumentedRequest();
  request.mutable_execution()->set_prompt(text);
  const std::string payload = RenderOrDie(request);
  EXPECT_TRUE(absl::StrContains(payload,
                                R"("prompt":"\u0001\u0002\u0003\u0004)"
                                R"(\u0005\u0006\u0007\b\t\n\u000b\f\r)"))
      << payload;
  EXPECT_TRUE(absl::StrContains(payload, R"(\u001f\u0000 \"quote\" )"
                                         R"(back\\slash /slash )"
                                         "\x7f"))
      << payload;
  EXPECT_EQ(nlohmann::json::parse(payload)["execution"]["prompt"], text);
}

TEST(RenderEventPayloadTest, NanCostIsInvalidArgumentNamingField) {
  webhook::v1::SubmitEventRequest request = DocumentedRequest();
  request.mutable_execution()->mutable_run()->set_total_cost_usd(
      std::numeric_limits<double>::quiet_NaN());
  EXPECT_THAT(RenderEventPayload(request).status(),
              IsInvalidArgumentFor("execution.run.total_cost_usd"));
}

TEST(RenderEventPayloadTest, InfiniteCostIsInvalidArgument) {
  webhook::v1::SubmitEventRequest request = DocumentedRequest();
  request.mutable_execution()->mutable_run()->set_total_cost_usd(
      -std::numeric_limits<double>::infinity());
  EXPECT_THAT(RenderEventPayload(request).status(),
              IsInvalidArgumentFor("execution.run.total_cost_usd"));
}

TEST(RenderEventPayloadTest, NonFiniteMessageNumberNamesItsPath) {
  webhook::v1::SubmitEventRequest request = DocumentedRequest();
  google::protobuf::Struct* message =
      request.mutable_execution()->mutable_run()->add_messages();
  (*(*message->mutable_fields())["usage"]
        .mutable_struct_value()
        ->mutable_fields())["cost"]
      .set_number_value(std::numeric_limits<double>::infinity());
  EXPECT_THAT(RenderEventPayload(request).status(),
              IsInvalidArgumentFor("execution.run.messages[1].usage.cost"));
}

TEST(RenderEventPayloadTest, InvalidUtf8IsInvalidArgumentNamingField) {
  webhook::v1::SubmitEventRequest request = DocumentedRequest();
  request.mutable_execution()->set_prompt("bad \xff byte");
  EXPECT_THAT(RenderEventPayload(request).status(),
              IsInvalidArgumentFor("execution.prompt"));

  request = DocumentedRequest();
  request.set_trigger_name("\xc3");
  EXPECT_THAT(RenderEventPayload(request).status(),
              IsInvalidArgumentFor("trigger_name"));

  request = DocumentedRequest();
  (*request.mutable_execution()
        ->mutable_run()
        ->mutable_messages(0)
        ->mutable_fields())["content"]
      .set_string_value("\xed\xa0\x80");
  EXPECT_THAT(RenderEventPayload(request).status(),
              IsInvalidArgumentFor("execution.run.messages[0].content"));
}

TEST(RenderEventPayloadTest, ValueWithoutKindIsInvalidArgument) {
  webhook::v1::SubmitEventRequest request = DocumentedRequest();
  (*request.mutable_execution()
        ->mutable_run()
        ->mutable_messages(0)
        ->mutable_fields())["empty"];
  EXPECT_THAT(RenderEventPayload(request).status(),
              IsInvalidArgumentFor("execution.run.messages[0].empty"));
}

TEST(RenderEventPayloadTest, TooDeeplyNestedMessageIsInvalidArgument) {
  webhook::v1::SubmitEventRequest request;
  google::protobuf::Struct* level =
      request.mutable_execution()->mutable_run()->add_messages();
  for (int i = 0; i < 200; ++i) {
    level = (*level->mutable_fields())["x"].mutable_struct_value();
  }
  const absl::Status status = RenderEventPayload(request).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      absl::StartsWith(status.message(), "execution.run.messages[0].x.x."))
      << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "nest")) << status;
}

TEST(RenderEventPayloadTest, TimestampsTruncateToMilliseconds) {
  webhook::v1::SubmitEventRequest request;
  *request.mutable_execution()->mutable_queued_at() =
      Ts(kQueuedAtSeconds, 450999999);
  *request.mutable_execution()->mutable_run()->mutable_started_at() =
      Ts(kQueuedAtSeconds, 999999);
  const std::string payload = RenderOrDie(request);
  EXPECT_TRUE(
      absl::StrContains(payload, R"("queuedAt":"2026-03-29T09:00:00.450Z")"))
      << payload;
  EXPECT_TRUE(
      absl::StrContains(payload, R"("startedAt":"2026-03-29T09:00:00.000Z")"))
      << payload;
}

TEST(RenderEventPayloadTest, EpochTimestampIsSetNotNull) {
  webhook::v1::SubmitEventRequest request;
  *request.mutable_execution()->mutable_completed_at() = Ts(0);
  EXPECT_TRUE(absl::StrContains(RenderOrDie(request),
                                R"("completedAt":"1970-01-01T00:00:00.000Z")"));
}

TEST(RenderEventPayloadTest, TimestampBefore1970TruncatesTowardsPast) {
  webhook::v1::SubmitEventRequest request;
  *request.mutable_execution()->mutable_queued_at() = Ts(-1, 999999);
  EXPECT_TRUE(absl::StrContains(RenderOrDie(request),
                                R"("queuedAt":"1969-12-31T23:59:59.000Z")"));
}

TEST(RenderEventPayloadTest, InvalidTimestampIsInvalidArgumentNamingField) {
  webhook::v1::SubmitEventRequest request;
  *request.mutable_execution()->mutable_queued_at() = Ts(253402300800);
  EXPECT_THAT(RenderEventPayload(request).status(),
              IsInvalidArgumentFor("execution.queued_at"));

  request.Clear();
  *request.mutable_execution()->mutable_run()->mutable_completed_at() =
      Ts(0, -1);
  EXPECT_THAT(RenderEventPayload(request).status(),
              IsInvalidArgumentFor("execution.run.completed_at"));
}

// --- messages_json ----------------------------------------------------------

TEST(RenderEventPayloadTest, MessagesJsonAreSentByteForByte) {
  webhook::v1::SubmitEventRequest request = DocumentedRequest();
  request.mutable_execution()->mutable_run()->clear_messages();
  const std::string first =
      R"({"z":1,"a":{"y":[1,2.50,"x"]},"n":12345678901234567890})";
  const std::string second = R"( {"role" : "assistant",  "content":"\u00e9"} )";
  request.mutable_execution()->mutable_run()->add_messages_json(first);
  request.mutable_execution()->mutable_run()->add_messages_json(second);
  const absl::StatusOr<std::string> payload = RenderEventPayload(request);
  ASSERT_TRUE(payload.ok()) << payload.status();
  EXPECT_TRUE(absl::StrContains(
      *payload, absl::StrCat("\"messages\":[", first, ",", second, "]")))
      << *payload;
  EXPECT_FALSE(nlohmann::json::parse(*payload, nullptr, false).is_discarded());
}

TEST(RenderEventPayloadTest, MessagesJsonMustBeJsonObjects) {
  for (const std::string bad : {"", "{", "[1]", "\"text\"", "{\"a\":1} {}",
                                "{\"a\":NaN}", "{'a':1}", "{\"a\":1,}"}) {
    webhook::v1::SubmitEventRequest request = DocumentedRequest();
    webhook::v1::Run* run = request.mutable_execution()->mutable_run();
    run->clear_messages();
    run->add_messages_json("{}");
    run->add_messages_json(bad);
    EXPECT_THAT(RenderEventPayload(request).status(),
                IsInvalidArgumentFor("execution.run.messages_json[1]"))
        << bad;
  }
}

TEST(RenderEventPayloadTest, MessagesAndMessagesJsonTogetherAreRefused) {
  webhook::v1::SubmitEventRequest request = DocumentedRequest();
  request.mutable_execution()->mutable_run()->add_messages_json("{}");
  EXPECT_THAT(RenderEventPayload(request).status(),
              IsInvalidArgumentFor("execution.run.messages_json"));
}

// --- SamplePayload ----------------------------------------------------------

TEST(SamplePayloadTest, IsDocumentedSampleWithEveryKey) {
  const auto payload = nlohmann::ordered_json::parse(
      SamplePayload(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(payload.is_object());
  EXPECT_THAT(Keys(payload),
              ElementsAre("event", "triggerId", "triggerName", "execution",
                          "threadId", "userId", "test"));
  EXPECT_EQ(payload["test"], true);
  EXPECT_EQ(payload["event"], "execution.completed");
  EXPECT_EQ(payload["triggerId"], "550e8400-e29b-41d4-a716-446655440000");
  EXPECT_EQ(payload["triggerName"], "Daily Report Schedule");
  EXPECT_EQ(payload["threadId"], "883b1733-d50c-44e7-9b4c-779988001111");
  EXPECT_EQ(payload["userId"], 42);
  const auto& execution = payload["execution"];
  EXPECT_EQ(execution["jobId"], "661f9511-b38a-42c5-9e2a-557766880000");
  EXPECT_EQ(execution["runId"], "772a0622-c49b-43d6-af3b-668877990000");
  EXPECT_EQ(execution["prompt"], "Generate today's sales summary");
  EXPECT_EQ(execution["queuedAt"], "2026-03-29T09:00:00.000Z");
  EXPECT_EQ(execution["completedAt"], "2026-03-29T09:00:12.450Z");
  EXPECT_EQ(execution["durationMs"], 12450);
  const auto& run = execution["run"];
  EXPECT_EQ(run["totalCostUsd"], 0.0342);
  EXPECT_EQ(run["totalTokens"], 4521);
  EXPECT_EQ(run["startedAt"], "2026-03-29T09:00:01.000Z");
  EXPECT_EQ(run["completedAt"], "2026-03-29T09:00:12.450Z");
  EXPECT_EQ(run["durationMs"], 11450);
  ASSERT_TRUE(run["messages"].is_array());
  ASSERT_EQ(run["messages"].size(), 1u);
  EXPECT_EQ(run["messages"][0]["role"], "assistant");
  EXPECT_TRUE(run["messages"][0]["content"].is_string());
}

TEST(SamplePayloadTest, IdsAreVersion4Uuids) {
  const auto payload = nlohmann::json::parse(SamplePayload());
  const std::regex uuid_v4(
      "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  for (const std::string& id :
       {payload["triggerId"].get<std::string>(),
        payload["threadId"].get<std::string>(),
        payload["execution"]["jobId"].get<std::string>(),
        payload["execution"]["runId"].get<std::string>()}) {
    EXPECT_TRUE(std::regex_match(id, uuid_v4)) << id;
  }
}

TEST(SamplePayloadTest, RealEventsHaveNoTestKey) {
  const absl::StatusOr<std::string> real =
      RenderEventPayload(DocumentedExampleEvent("hi"));
  ASSERT_TRUE(real.ok());
  EXPECT_FALSE(nlohmann::json::parse(*real).contains("test"));
}

TEST(SamplePayloadTest, PassesValidateJsonObject) {
  EXPECT_TRUE(ValidateJsonObject(SamplePayload(), "payload_json").ok());
}

// --- ValidateJsonObject -----------------------------------------------------

TEST(ValidateJsonObjectTest, AcceptsObjects) {
  for (const char* json :
       {"{}", " { } ", R"({"a":[1,2,{"b":null}],"c":"\u00e9"})",
        "{\"nested\":{\"deep\":{\"deeper\":true}}}\n"}) {
    EXPECT_TRUE(ValidateJsonObject(json, "payload_json").ok()) << json;
  }
}

TEST(ValidateJsonObjectTest, RefusesNonObjectsAndGarbage) {
  for (const std::string& json : std::vector<std::string>{
           "", " ", "[]", "[{}]", "\"string\"", "42", "true", "null", "{",
           "garbage", R"({"a":1} trailing)", R"({"a":1}{"b":2})", "{'a':1}",
           R"({"a":1,})", "{\"bad\":\"\xff\"}", "{\"a\":1e999}",
           "{} // comment"}) {
    const absl::Status status = ValidateJsonObject(json, "payload_json");
    EXPECT_THAT(status, IsInvalidArgumentFor("payload_json")) << json;
    EXPECT_EQ(status.message(), "payload_json: must be a JSON object") << json;
  }
}

// --- FormatTimestampMillis --------------------------------------------------

TEST(FormatTimestampMillisTest, FormatsUtcWithThreeFractionalDigits) {
  EXPECT_EQ(FormatTimestampMillis(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatTimestampMillis(kQueuedAtSeconds * 1000 + 1000),
            "2026-03-29T09:00:01.000Z");
  EXPECT_EQ(FormatTimestampMillis(kQueuedAtSeconds * 1000 + 12450),
            "2026-03-29T09:00:12.450Z");
  EXPECT_EQ(FormatTimestampMillis(kQueuedAtSeconds * 1000 + 7),
            "2026-03-29T09:00:00.007Z");
}

TEST(FormatTimestampMillisTest, FormatsTheWholeProtobufRange) {
  EXPECT_EQ(FormatTimestampMillis(-62135596800000), "0001-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatTimestampMillis(253402300799999), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatTimestampMillis(951782400000), "2000-02-29T00:00:00.000Z");
}

TEST(FormatTimestampMillisTest, FormatsTimesBefore1970) {
  EXPECT_EQ(FormatTimestampMillis(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatTimestampMillis(-1500), "1969-12-31T23:59:58.500Z");
}

}  // namespace
}  // namespace webhookd
