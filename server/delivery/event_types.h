// Event types and the per-endpoint filters that select which events reach
// an endpoint (webhook.v1.Endpoint.event_types).
//
// An event type is 1 to kMaxEventTypeBytes bytes of dot-separated segments,
// each one or more of A-Z, a-z, 0-9, '_' and '-' ("execution.completed").
// A filter entry is an event type, or such a prefix followed by ".*"
// ("execution.*": every type with at least one more segment after
// "execution."), or "*" alone (every event).

#ifndef WEBHOOKD_SERVER_DELIVERY_EVENT_TYPES_H_
#define WEBHOOKD_SERVER_DELIVERY_EVENT_TYPES_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/repeated_ptr_field.h"

namespace webhookd {

using EventTypeFilters = google::protobuf::RepeatedPtrField<std::string>;

// InvalidArgument naming `field` unless `event_type` has the syntax above.
absl::Status ValidateEventType(std::string_view event_type,
                               std::string_view field);

// InvalidArgument naming "<field>[i]" for an entry that is neither an event
// type, a prefix with ".*" nor "*", or repeats an earlier entry; naming
// `field` for more than kMaxEventTypeFilters entries.
absl::Status ValidateEventTypeFilters(const EventTypeFilters& filters,
                                      std::string_view field);

// Whether one filter entry admits `event_type`.
bool EventTypeMatches(std::string_view filter, std::string_view event_type);

// Whether an endpoint with these filters receives events of `event_type`:
// always when `filters` is empty, else when any entry matches.
bool EventTypeAdmitted(const EventTypeFilters& filters,
                       std::string_view event_type);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_EVENT_TYPES_H_
