#include "server/delivery/payload.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "nlohmann/json.hpp"
#include "server/common/string_view.h"
#include "server/delivery/validation.h"

namespace webhookd {
namespace {

using Json = nlohmann::ordered_json;

// google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999999Z, so the year always has four digits.
constexpr int64_t kMinTimestampSeconds = -62135596800;
constexpr int64_t kMaxTimestampSeconds = 253402300799;

// Deeper Struct values are refused: they could only come from in-process
// callers (protobuf's parser stops at 100 levels) and rendering recurses.
constexpr int kMaxStructDepth = 64;

// Doubles with an integral value up to 2^53 (where every integer is still
// exact) render as integers, as JavaScript's JSON.stringify does; nlohmann
// would print 42.0 as "42.0". Larger ones keep nlohmann's float form (1e+16).
constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

// Builds the JSON tree and remembers the first field that cannot be
// represented, so the rendering code reads straight through.
class Renderer {
 public:
  Json String(std::string_view value, std::string_view field) {
    if (!IsValidUtf8(value)) {
      Fail(field, "must be valid UTF-8");
      return Json("");
    }
    return Json(value);
  }

  Json Number(double value, std::string_view field) {
    if (!std::isfinite(value)) {
      Fail(field, "must be a finite number (JSON has no NaN or Infinity)");
      return Json(0);
    }
    if (std::trunc(value) == value && std::fabs(value) <= kMaxExactInteger) {
      return Json(static_cast<int64_t>(value));
    }
    return Json(value);
  }

  Json Time(bool has_value, const google::protobuf::Timestamp& timestamp,
            std::string_view field) {
    if (!has_value) return Json(nullptr);
    if (timestamp.seconds() < kMinTimestampSeconds ||
        timestamp.seconds() > kMaxTimestampSeconds || timestamp.nanos() < 0 ||
        timestamp.nanos() > 999999999) {
      Fail(field, "must be a valid timestamp (years 0001 to 9999)");
      return Json(nullptr);
    }
    // Truncates sub-millisecond precision; nanos are non-negative, so this
    // rounds towards the past also before 1970.
    return Json(FormatTimestampMillis(timestamp.seconds() * 1000 +
                                      timestamp.nanos() / 1000000));
  }

  Json RenderObject(const google::protobuf::Struct& object,
                    const std::string& field, int depth) {
    Json out = Json::object();
    if (depth > kMaxStructDepth) {
      Fail(field, absl::StrCat("must not nest deeper than ", kMaxStructDepth,
                               " levels"));
      return out;
    }
    // Struct.fields is a map with no order, so keys are rendered sorted
    // (bytewise) to keep the body, and thus its signature, deterministic.
    std::vector<const std::string*> keys;
    keys.reserve(object.fields_size());
    for (const auto& [key, value] : object.fields()) keys.push_back(&key);
    std::sort(
        keys.begin(), keys.end(),
        [](const std::string* a, const std::string* b) { return *a < *b; });
    for (const std::string* key : keys) {
      const std::string child = absl::StrCat(field, ".", *key);
      if (!IsValidUtf8(*key)) {
        Fail(field, "keys must be valid UTF-8");
        return out;
      }
      out[*key] = RenderValue(object.fields().at(*key), child, depth + 1);
    }
    return out;
  }

  Json RenderValue(const google::protobuf::Value& value,
                   const std::string& field, int depth) {
    using google::protobuf::Value;
    switch (value.kind_case()) {
      case Value::kNullValue:
        return Json(nullptr);
      case Value::kNumberValue:
        return Number(value.number_value(), field);
      case Value::kStringValue:
        return String(value.string_value(), field);
      case Value::kBoolValue:
        return Json(value.bool_value());
      case Value::kStructValue:
        return RenderObject(value.struct_value(), field, depth);
      case Value::kListValue: {
        Json out = Json::array();
        if (depth > kMaxStructDepth) {
          Fail(field, absl::StrCat("must not nest deeper than ",
                                   kMaxStructDepth, " levels"));
          return out;
        }
        const auto& values = value.list_value().values();
        for (int i = 0; i < values.size(); ++i) {
          out.push_back(RenderValue(
              values.Get(i), absl::StrCat(field, "[", i, "]"), depth + 1));
        }
        return out;
      }
      case Value::KIND_NOT_SET:
        break;
    }
    Fail(field,
         "must have a value (null, number, string, bool, struct or list)");
    return Json(nullptr);
  }

  const absl::Status& status() const { return status_; }

 private:
  void Fail(std::string_view field, std::string_view reason) {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(
          absl::StrCat(AsAbsl(field), ": ", AsAbsl(reason)));
    }
  }

  absl::Status status_;
};

google::protobuf::Timestamp MakeTimestamp(int64_t unix_millis) {
  google::protobuf::Timestamp timestamp;
  timestamp.set_seconds(unix_millis / 1000);
  timestamp.set_nanos(static_cast<int32_t>(unix_millis % 1000) * 1000000);
  return timestamp;
}

}  // namespace

absl::StatusOr<std::string> RenderEventPayload(
    const webhook::v1::SubmitEventRequest& request) {
  const webhook::v1::Execution& execution = request.execution();
  const webhook::v1::Run& run = execution.run();
  Renderer r;

  Json messages = Json::array();
  for (int i = 0; i < run.messages_size(); ++i) {
    messages.push_back(r.RenderObject(
        run.messages(i), absl::StrCat("execution.run.messages[", i, "]"), 1));
  }

  // Insertion order is the documented key order.
  Json run_json = Json::object();
  run_json["totalCostUsd"] =
      r.Number(run.total_cost_usd(), "execution.run.total_cost_usd");
  run_json["totalTokens"] = run.total_tokens();
  run_json["startedAt"] = r.Time(run.has_started_at(), run.started_at(),
                                 "execution.run.started_at");
  run_json["completedAt"] = r.Time(run.has_completed_at(), run.completed_at(),
                                   "execution.run.completed_at");
  run_json["durationMs"] = run.duration_ms();
  run_json["messages"] = std::move(messages);

  Json execution_json = Json::object();
  execution_json["jobId"] = r.String(execution.job_id(), "execution.job_id");
  execution_json["runId"] = r.String(execution.run_id(), "execution.run_id");
  execution_json["prompt"] = r.String(execution.prompt(), "execution.prompt");
  execution_json["run"] = std::move(run_json);
  execution_json["queuedAt"] = r.Time(
      execution.has_queued_at(), execution.queued_at(), "execution.queued_at");
  execution_json["completedAt"] =
      r.Time(execution.has_completed_at(), execution.completed_at(),
             "execution.completed_at");
  execution_json["durationMs"] = execution.duration_ms();

  Json payload = Json::object();
  payload["event"] = request.event_type().empty()
                         ? Json(kDefaultEventType)
                         : r.String(request.event_type(), "event_type");
  payload["triggerId"] = r.String(request.trigger_id(), "trigger_id");
  payload["triggerName"] = r.String(request.trigger_name(), "trigger_name");
  payload["execution"] = std::move(execution_json);
  payload["threadId"] = r.String(request.thread_id(), "thread_id");
  payload["userId"] = request.user_id();

  if (!r.status().ok()) return r.status();
  // Every string was checked above, so the strict handler (which throws) is
  // never reached; `replace` keeps this exception-free regardless.
  return payload.dump(-1, ' ', /*ensure_ascii=*/false,
                      Json::error_handler_t::replace);
}

webhook::v1::SubmitEventRequest DocumentedExampleEvent(
    const std::string& message) {
  constexpr int64_t kQueuedAtMillis = 1774774800000;  // 2026-03-29T09:00:00Z
  webhook::v1::SubmitEventRequest request;
  request.set_event_type(std::string(kDefaultEventType));
  request.set_trigger_id("550e8400-e29b-41d4-a716-446655440000");
  request.set_trigger_name("Daily Report Schedule");
  request.set_thread_id("883b1733-d50c-64e7-bg4c-779988001111");
  request.set_user_id(42);
  webhook::v1::Execution* execution = request.mutable_execution();
  execution->set_job_id("661f9511-b38a-42c5-9e2a-557766880000");
  execution->set_run_id("772a0622-c49b-53d6-af3b-668877990000");
  execution->set_prompt("Generate today's sales summary");
  *execution->mutable_queued_at() = MakeTimestamp(kQueuedAtMillis);
  *execution->mutable_completed_at() = MakeTimestamp(kQueuedAtMillis + 12450);
  execution->set_duration_ms(12450);
  webhook::v1::Run* run = execution->mutable_run();
  run->set_total_cost_usd(0.0342);
  run->set_total_tokens(4521);
  *run->mutable_started_at() = MakeTimestamp(kQueuedAtMillis + 1000);
  *run->mutable_completed_at() = MakeTimestamp(kQueuedAtMillis + 12450);
  run->set_duration_ms(11450);
  auto& fields = *run->add_messages()->mutable_fields();
  fields["role"].set_string_value("assistant");
  fields["content"].set_string_value(message);
  return request;
}

std::string SamplePayload() {
  // The sample of the product documentation. Its event is
  // "execution.completed", not kTestEventType: it shows receivers exactly
  // what a real event looks like, so they can parse it the same way.
  absl::StatusOr<std::string> payload = RenderEventPayload(
      DocumentedExampleEvent("This is a test delivery from webhookd."));
  // Constant input: failing here is a programming error.
  if (!payload.ok()) std::abort();
  return *std::move(payload);
}

absl::Status ValidateJsonObject(std::string_view json, std::string_view field) {
  // allow_exceptions=false: a parse error yields a discarded value instead.
  const nlohmann::json parsed = nlohmann::json::parse(
      json.begin(), json.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(AsAbsl(field), ": must be a JSON object"));
  }
  return absl::OkStatus();
}

std::string FormatTimestampMillis(int64_t unix_millis) {
  // %E3S truncates to milliseconds, and FromUnixMillis is exact, so the
  // output is exactly the given millisecond, also before 1970.
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ",
                          absl::FromUnixMillis(unix_millis),
                          absl::UTCTimeZone());
}

}  // namespace webhookd
