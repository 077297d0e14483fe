#include "server/delivery/attempt_log.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/common/logging.h"
#include "server/common/time_util.h"
#include "server/common/trace_context.h"

namespace webhookd {
namespace {

std::string FormatTime(const google::protobuf::Timestamp& time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", FromProtoTime(time),
                          absl::UTCTimeZone());
}

void AddIds(const Delivery& delivery, std::vector<LogField>& fields) {
  fields.emplace_back("delivery_id", delivery.id());
  fields.emplace_back("endpoint_id", delivery.endpoint_id());
  fields.emplace_back("event_id", delivery.event_id());
}

void AddTrace(std::string_view traceparent, std::vector<LogField>& fields) {
  if (traceparent.empty()) return;
  fields.emplace_back("trace_id", TraceIdOf(traceparent));
  fields.emplace_back("span_id", SpanIdOf(traceparent));
}

}  // namespace

void LogFinishedAttempt(const Delivery& after, bool recorded) {
  const bool failed = after.status() == webhook::v1::DELIVERY_STATUS_FAILED;
  const bool warn = recorded && failed && !after.test();
  if (after.attempt_history().empty() ||
      (!warn && !LogEnabled(LogLevel::kDebug))) {
    return;
  }
  const DeliveryAttempt& attempt = *after.attempt_history().rbegin();
  std::string next_attempt;
  std::vector<LogField> fields;
  fields.reserve(14);
  AddIds(after, fields);
  fields.emplace_back("attempt", attempt.attempt());
  fields.emplace_back("max_attempts", after.max_attempts());
  fields.emplace_back("status", attempt.response_code());
  if (!attempt.error().empty()) fields.emplace_back("error", attempt.error());
  fields.emplace_back("duration_ms", attempt.response_time_ms());
  if (!recorded) {
    fields.emplace_back("outcome", "unrecorded");
  } else if (after.status() == webhook::v1::DELIVERY_STATUS_SUCCESS) {
    fields.emplace_back("outcome", "delivered");
  } else if (failed) {
    fields.emplace_back("outcome", "failed");
  } else {
    fields.emplace_back("outcome", "retry");
    next_attempt = FormatTime(after.next_attempt_time());
    fields.emplace_back("next_attempt", next_attempt);
  }
  if (attempt.manual()) fields.emplace_back("manual", "true");
  if (after.test()) fields.emplace_back("test", "true");
  AddTrace(attempt.traceparent(), fields);
  Log(LogLevel::kDebug, "attempt finished", fields);
  if (!warn) return;
  std::vector<LogField> failure;
  failure.reserve(8);
  AddIds(after, failure);
  failure.emplace_back("attempts", after.attempts());
  failure.emplace_back("last_error", after.last_error());
  AddTrace(attempt.traceparent(), failure);
  Log(LogLevel::kWarning, "delivery failed for good", failure);
}

void LogAbortedAttempt(const Delivery& delivery, std::string_view traceparent) {
  if (!LogEnabled(LogLevel::kDebug)) return;
  std::vector<LogField> fields;
  AddIds(delivery, fields);
  fields.emplace_back("attempt", delivery.attempts() + 1);
  fields.emplace_back("outcome", "aborted");
  AddTrace(traceparent, fields);
  Log(LogLevel::kDebug, "attempt cut short by shutdown; made again later",
      fields);
}

}  // namespace webhookd
