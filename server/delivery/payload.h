// The JSON bodies that webhookd sends.

#ifndef WEBHOOKD_SERVER_DELIVERY_PAYLOAD_H_
#define WEBHOOKD_SERVER_DELIVERY_PAYLOAD_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "webhook/v1/webhook_service.pb.h"

namespace webhookd {

inline constexpr std::string_view kDefaultEventType = "execution.completed";
inline constexpr std::string_view kTestEventType = "webhook.test";

// Renders the documented payload of an event: keys in the documented order,
// integers as JSON numbers, timestamps as RFC 3339 UTC with exactly three
// fractional digits and "Z" (null when unset), every key always present,
// messages_json byte for byte (InvalidArgument naming messages_json[i] for
// one that is not a JSON object, and for messages and messages_json both
// set). An empty event_type renders as kDefaultEventType.
absl::StatusOr<std::string> RenderEventPayload(
    const webhook::v1::SubmitEventRequest& request);

// The example event of the product documentation (trigger, execution, run,
// user 42, thread "883b1733-…") with one assistant message whose content is
// `message`. Tests, the benchmark and SamplePayload() all start from it.
webhook::v1::SubmitEventRequest DocumentedExampleEvent(
    const std::string& message);

// The body of a test delivery sent without a payload: the documented
// example event (event "execution.completed"), its ids valid version 4
// UUIDs, with a last key "test": true that real events never have.
std::string SamplePayload();

// Returns InvalidArgument naming `field` unless `json` is a JSON object.
absl::Status ValidateJsonObject(std::string_view json, std::string_view field);

// Formats a time in years 0001 to 9999 as RFC 3339 UTC with milliseconds:
// 2026-03-29T09:00:01.000Z.
std::string FormatTimestampMillis(int64_t unix_millis);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_PAYLOAD_H_
