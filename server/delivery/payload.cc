#include "server/delivery/payload.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "nlohmann/json.hpp"
#include "server/common/string_view.h"
#include "server/delivery/validation.h"

namespace webhookd {
namespace {

// google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999999Z, so the year always has four digits.
constexpr int64_t kMinTimestampSeconds = -62135596800;
constexpr int64_t kMaxTimestampSeconds = 253402300799;

// Deeper Struct values are refused: they could only come from in-process
// callers (protobuf's parser stops at 100 levels) and rendering recurses.
constexpr int kMaxStructDepth = 64;

// Doubles with an integral value up to 2^53 (where every integer is still
// exact) render as integers, as JavaScript's JSON.stringify does. Larger
// ones and fractions keep the shortest round-trip form that earlier
// releases sent (nlohmann's: 0.0342, 1e+16, 1.5e-07).
constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

// A JSON writer into one string: values, keys and the commas between them,
// strings escaped as nlohmann escaped them before (\" \\ \b \f \n \r
// \t, other control characters as \u00xx, everything else as is: the
// callers pass valid UTF-8). Written here because RapidJSON 1.1's writer,
// the one Debian has, does pointer arithmetic on a null pointer that the
// sanitizers of the fuzzing build stop on.
class JsonOut {
 public:
  void StartObject() { Open('{'); }
  void EndObject() { Close('}'); }
  void StartArray() { Open('['); }
  void EndArray() { Close(']'); }
  void Key(std::string_view key) {
    Value();
    Quoted(key);
    out_.push_back(':');
    after_key_ = true;
  }
  void String(std::string_view value) {
    Value();
    Quoted(value);
  }
  void Int64(int64_t value) {
    Value();
    absl::StrAppend(&out_, value);
  }
  void Bool(bool value) {
    Value();
    out_.append(value ? "true" : "false");
  }
  void Null() {
    Value();
    out_.append("null");
  }
  // A number already in JSON form.
  void Raw(std::string_view json) {
    Value();
    out_.append(json);
  }
  // One whole value written, every object and array closed.
  bool complete() const { return open_.empty() && !out_.empty(); }
  std::string Take() { return std::move(out_); }

 private:
  // Before a value (or a key): the comma that separates it from the one
  // before, unless it follows a key or opens its container.
  void Value() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!open_.empty()) {
      if (open_.back()) out_.push_back(',');
      open_.back() = true;
    }
  }
  void Open(char bracket) {
    Value();
    out_.push_back(bracket);
    open_.push_back(false);
  }
  void Close(char bracket) {
    out_.push_back(bracket);
    if (!open_.empty()) open_.pop_back();
  }
  void Quoted(std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    out_.reserve(out_.size() + text.size() + 2);
    out_.push_back('"');
    size_t run = 0;  // Start of the bytes not yet copied.
    for (size_t i = 0; i < text.size(); ++i) {
      // Eight bytes at a time while none needs escaping (no byte below
      // 0x20, no '"', no '\\': the classic has-zero-byte tests).
      while (i + 8 <= text.size()) {
        uint64_t word;
        std::memcpy(&word, text.data() + i, sizeof(word));
        constexpr uint64_t kOnes = 0x0101010101010101ULL;
        constexpr uint64_t kHighs = 0x8080808080808080ULL;
        const auto has_zero = [](uint64_t v) {
          return (v - kOnes) & ~v & kHighs;
        };
        const uint64_t below_space = (word - kOnes * 0x20) & ~word & kHighs;
        if ((below_space | has_zero(word ^ (kOnes * '"')) |
             has_zero(word ^ (kOnes * '\\'))) != 0) {
          break;
        }
        i += 8;
      }
      if (i >= text.size()) break;
      const unsigned char c = static_cast<unsigned char>(text[i]);
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      out_.append(text.data() + run, i - run);
      run = i + 1;
      switch (c) {
        case '"':
          out_.append("\\\"");
          break;
        case '\\':
          out_.append("\\\\");
          break;
        case '\b':
          out_.append("\\b");
          break;
        case '\f':
          out_.append("\\f");
          break;
        case '\n':
          out_.append("\\n");
          break;
        case '\r':
          out_.append("\\r");
          break;
        case '\t':
          out_.append("\\t");
          break;
        default: {
          const char escaped[] = {'\\', 'u',          '0',
                                  '0',  kHex[c >> 4], kHex[c & 0xf]};
          out_.append(escaped, sizeof(escaped));
        }
      }
    }
    out_.append(text.data() + run, text.size() - run);
    out_.push_back('"');
  }

  std::string out_;
  // Per open object or array: whether it holds a value yet.
  std::vector<bool> open_;
  bool after_key_ = false;
};

// Where a value sits in the request, for the error message: built only when
// a value fails, so that rendering allocates no field names. A chain of
// parents on the stack: "execution.run.messages" [0] "role" reads as
// execution.run.messages[0].role.
struct FieldPath {
  const FieldPath* parent = nullptr;
  std::string_view name;  // A field or key; empty for an index.
  int index = -1;

  std::string ToString() const {
    std::string out = parent == nullptr ? "" : parent->ToString();
    if (name.empty()) {
      absl::StrAppend(&out, "[", index, "]");
    } else {
      absl::StrAppend(&out, out.empty() ? "" : ".", AsAbsl(name));
    }
    return out;
  }
};

// Whether `json` is one JSON value (RFC 8259) and an object.
bool IsJsonObject(std::string_view json) {
  // allow_exceptions=false: a parse error yields a discarded value instead.
  const nlohmann::json parsed = nlohmann::json::parse(
      json.begin(), json.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  return !parsed.is_discarded() && parsed.is_object();
}

// Writes the JSON of an event straight into one buffer (no tree, one
// allocation that grows) and remembers the first field that cannot be
// represented, so the rendering code reads straight through. After a
// failure the output is discarded, so what is written then does not matter.
class Renderer {
 public:
  void Key(std::string_view key) { writer_.Key(key); }

  template <typename Field>
  void String(std::string_view value, const Field& field) {
    if (!IsValidUtf8(value)) {
      Fail(field, "must be valid UTF-8");
      value = {};
    }
    writer_.String(value);
  }

  void Int(int64_t value) { writer_.Int64(value); }

  // A JSON object given as text, written byte for byte.
  void VerbatimObject(std::string_view json, const FieldPath& field) {
    if (!IsJsonObject(json)) {
      Fail(field, "must be a JSON object (valid JSON, RFC 8259)");
      writer_.Null();
      return;
    }
    writer_.Raw(json);
  }

  // Refuses the request, naming `field`.
  void Refuse(std::string_view field, std::string_view reason) {
    Fail(field, reason);
  }

  template <typename Field>
  void Number(double value, const Field& field) {
    if (!std::isfinite(value)) {
      Fail(field, "must be a finite number (JSON has no NaN or Infinity)");
      writer_.Int64(0);
      return;
    }
    if (std::trunc(value) == value && std::fabs(value) <= kMaxExactInteger) {
      writer_.Int64(static_cast<int64_t>(value));
      return;
    }
    const std::string text = nlohmann::json(value).dump();
    writer_.Raw(text);
  }

  void Time(bool has_value, const google::protobuf::Timestamp& timestamp,
            std::string_view field) {
    if (!has_value) {
      writer_.Null();
      return;
    }
    if (timestamp.seconds() < kMinTimestampSeconds ||
        timestamp.seconds() > kMaxTimestampSeconds || timestamp.nanos() < 0 ||
        timestamp.nanos() > 999999999) {
      Fail(field, "must be a valid timestamp (years 0001 to 9999)");
      writer_.Null();
      return;
    }
    // Truncates sub-millisecond precision; nanos are non-negative, so this
    // rounds towards the past also before 1970.
    const std::string text = FormatTimestampMillis(timestamp.seconds() * 1000 +
                                                   timestamp.nanos() / 1000000);
    writer_.String(text);
  }

  void Object(const google::protobuf::Struct& object, const FieldPath& field,
              int depth) {
    writer_.StartObject();
    if (depth > kMaxStructDepth) {
      Fail(field, absl::StrCat("must not nest deeper than ", kMaxStructDepth,
                               " levels"));
      writer_.EndObject();
      return;
    }
    // Struct.fields is a map with no order, so keys are rendered sorted
    // (bytewise) to keep the body, and thus its signature, deterministic.
    using Field = std::pair<const std::string*, const google::protobuf::Value*>;
    std::vector<Field> fields;
    fields.reserve(object.fields_size());
    for (const auto& [key, value] : object.fields()) {
      fields.emplace_back(&key, &value);
    }
    std::sort(fields.begin(), fields.end(), [](const Field& a, const Field& b) {
      return *a.first < *b.first;
    });
    for (const auto& [key, value] : fields) {
      if (!IsValidUtf8(*key)) {
        Fail(field, "keys must be valid UTF-8");
        break;
      }
      Key(*key);
      Value(*value, FieldPath{&field, *key}, depth + 1);
    }
    writer_.EndObject();
  }

  void Value(const google::protobuf::Value& value, const FieldPath& field,
             int depth) {
    using google::protobuf::Value;
    switch (value.kind_case()) {
      case Value::kNullValue:
        writer_.Null();
        return;
      case Value::kNumberValue:
        Number(value.number_value(), field);
        return;
      case Value::kStringValue:
        String(value.string_value(), field);
        return;
      case Value::kBoolValue:
        writer_.Bool(value.bool_value());
        return;
      case Value::kStructValue:
        Object(value.struct_value(), field, depth);
        return;
      case Value::kListValue: {
        writer_.StartArray();
        if (depth > kMaxStructDepth) {
          Fail(field, absl::StrCat("must not nest deeper than ",
                                   kMaxStructDepth, " levels"));
        } else {
          const auto& values = value.list_value().values();
          for (int i = 0; i < values.size(); ++i) {
            this->Value(values.Get(i), FieldPath{&field, {}, i}, depth + 1);
          }
        }
        writer_.EndArray();
        return;
      }
      case Value::KIND_NOT_SET:
        break;
    }
    Fail(field,
         "must have a value (null, number, string, bool, struct or list)");
    writer_.Null();
  }

  void StartObject() { writer_.StartObject(); }
  void EndObject() { writer_.EndObject(); }
  void StartArray() { writer_.StartArray(); }
  void EndArray() { writer_.EndArray(); }

  // The JSON written, or the first failure.
  absl::StatusOr<std::string> Finish() {
    if (!status_.ok()) return status_;
    if (!writer_.complete()) {
      return absl::InternalError("payload JSON is incomplete");
    }
    return writer_.Take();
  }

 private:
  void Fail(std::string_view field, std::string_view reason) {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(
          absl::StrCat(AsAbsl(field), ": ", AsAbsl(reason)));
    }
  }
  void Fail(const FieldPath& field, std::string_view reason) {
    if (status_.ok()) Fail(field.ToString(), reason);
  }

  JsonOut writer_;
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
  // Keys in the documented order.
  r.StartObject();
  r.Key("event");
  if (request.event_type().empty()) {
    r.String(kDefaultEventType, "event_type");
  } else {
    r.String(request.event_type(), "event_type");
  }
  r.Key("triggerId");
  r.String(request.trigger_id(), "trigger_id");
  r.Key("triggerName");
  r.String(request.trigger_name(), "trigger_name");

  r.Key("execution");
  r.StartObject();
  r.Key("jobId");
  r.String(execution.job_id(), "execution.job_id");
  r.Key("runId");
  r.String(execution.run_id(), "execution.run_id");
  r.Key("prompt");
  r.String(execution.prompt(), "execution.prompt");

  r.Key("run");
  r.StartObject();
  r.Key("totalCostUsd");
  r.Number(run.total_cost_usd(), "execution.run.total_cost_usd");
  r.Key("totalTokens");
  r.Int(run.total_tokens());
  r.Key("startedAt");
  r.Time(run.has_started_at(), run.started_at(), "execution.run.started_at");
  r.Key("completedAt");
  r.Time(run.has_completed_at(), run.completed_at(),
         "execution.run.completed_at");
  r.Key("durationMs");
  r.Int(run.duration_ms());
  r.Key("messages");
  r.StartArray();
  if (!run.messages_json().empty() && !run.messages().empty()) {
    r.Refuse("execution.run.messages_json",
             "set either messages or messages_json, not both");
  }
  for (int i = 0; i < run.messages_size(); ++i) {
    const FieldPath messages{nullptr, "execution.run.messages"};
    r.Object(run.messages(i), FieldPath{&messages, {}, i}, 1);
  }
  for (int i = 0; i < run.messages_json_size(); ++i) {
    const FieldPath messages_json{nullptr, "execution.run.messages_json"};
    r.VerbatimObject(run.messages_json(i), FieldPath{&messages_json, {}, i});
  }
  r.EndArray();
  r.EndObject();  // run

  r.Key("queuedAt");
  r.Time(execution.has_queued_at(), execution.queued_at(),
         "execution.queued_at");
  r.Key("completedAt");
  r.Time(execution.has_completed_at(), execution.completed_at(),
         "execution.completed_at");
  r.Key("durationMs");
  r.Int(execution.duration_ms());
  r.EndObject();  // execution

  r.Key("threadId");
  r.String(request.thread_id(), "thread_id");
  r.Key("userId");
  r.Int(request.user_id());
  r.EndObject();
  return r.Finish();
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
  // "execution.completed", not kTestEventType: receivers dispatch on it, and
  // the sample shows them exactly what a real event looks like, so they
  // parse it the same way. The X-Webhook-Event header says kTestEventType.
  webhook::v1::SubmitEventRequest request =
      DocumentedExampleEvent("This is a test delivery from webhookd.");
  // The documentation's thread and run ids are not valid UUIDs: receivers
  // that store ids as UUIDs would refuse the sample.
  request.set_thread_id("883b1733-d50c-44e7-9b4c-779988001111");
  request.mutable_execution()->set_run_id(
      "772a0622-c49b-43d6-af3b-668877990000");
  absl::StatusOr<std::string> payload = RenderEventPayload(request);
  // Constant input: failing here is a programming error.
  if (!payload.ok()) std::abort();
  // A last key that real events never have, so that a receiver can tell a
  // test from the body alone: {...,"test":true}.
  payload->insert(payload->size() - 1, ",\"test\":true");
  return *std::move(payload);
}

absl::Status ValidateJsonObject(std::string_view json, std::string_view field) {
  if (!IsJsonObject(json)) {
    return absl::InvalidArgumentError(
        absl::StrCat(AsAbsl(field), ": must be a JSON object"));
  }
  return absl::OkStatus();
}

std::string FormatTimestampMillis(int64_t unix_millis) {
  // Floor division, so that times before 1970 keep their millisecond
  // (-1 ms is 1969-12-31T23:59:59.999Z).
  int64_t seconds = unix_millis / 1000;
  int64_t millis = unix_millis % 1000;
  if (millis < 0) {
    millis += 1000;
    seconds -= 1;
  }
  const absl::CivilSecond civil =
      absl::ToCivilSecond(absl::FromUnixSeconds(seconds), absl::UTCTimeZone());
  // Written digit by digit: this runs four times per event, and a format
  // string parse costs more than the rest of the payload.
  std::string out = "0000-00-00T00:00:00.000Z";
  const auto put = [&out](size_t pos, size_t width, int64_t value) {
    for (size_t i = width; i-- > 0; value /= 10) {
      out[pos + i] = static_cast<char>('0' + value % 10);
    }
  };
  put(0, 4, civil.year());  // 0001 to 9999: callers check the range.
  put(5, 2, civil.month());
  put(8, 2, civil.day());
  put(11, 2, civil.hour());
  put(14, 2, civil.minute());
  put(17, 2, civil.second());
  put(20, 3, millis);
  return out;
}

}  // namespace webhookd
