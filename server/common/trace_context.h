// W3C Trace Context (https://www.w3.org/TR/trace-context/): the traceparent
// and tracestate values an event carries into every attempt of its
// deliveries.

#ifndef WEBHOOKD_SERVER_COMMON_TRACE_CONTEXT_H_
#define WEBHOOKD_SERVER_COMMON_TRACE_CONTEXT_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace webhookd {

// The fields of a valid traceparent, lowercase hex.
struct Traceparent {
  std::string version;    // 2 digits, never "ff".
  std::string trace_id;   // 32 digits, not all zeros.
  std::string parent_id;  // 16 digits (the span id), not all zeros.
  std::string flags;      // 2 digits; bit 0: sampled.

  // "00-<trace_id>-<parent_id>-<flags>": the version-00 form we send.
  std::string ToString() const;
};

// Parses a traceparent value as the W3C recommendation says: version 00 is
// exactly "00-<32 hex>-<16 hex>-<2 hex>"; a later version may carry more
// after a further "-". Uppercase hex, all-zero ids and version ff are
// invalid. InvalidArgument naming `traceparent` otherwise.
absl::StatusOr<Traceparent> ParseTraceparent(std::string_view value);

// Whether `value` can be passed on as tracestate: at most 512 characters
// of visible ASCII and spaces (the list itself is the vendors' business).
bool ValidTracestate(std::string_view value);

// What an event carries: a valid traceparent (empty: none) in version-00
// form, and the tracestate to pass on unchanged (empty: none).
struct TraceContext {
  std::string traceparent;
  std::string tracestate;

  bool empty() const { return traceparent.empty(); }
};

// The trace context of a request whose headers (or gRPC metadata) carried
// `traceparents` and `tracestates`, every value of each in order. As the
// W3C recommendation asks, an invalid context is ignored rather than
// refused: a missing, repeated or malformed traceparent gives an empty
// context, and a tracestate that cannot be passed on is dropped (the
// tracestate values are joined with ","). When something was ignored,
// `*ignored` (if not null) says what, naming the header; else it is
// cleared.
TraceContext ReadTraceContext(absl::Span<const std::string_view> traceparents,
                              absl::Span<const std::string_view> tracestates,
                              std::string* ignored);

// A trace context for an event that came without one: a new random trace id
// and parent id, sampled.
TraceContext NewTraceContext();

// The traceparent of one attempt made within `traceparent` (a stored, valid
// one): the same trace id and flags, a new random span id. Empty if
// `traceparent` is empty or does not parse.
std::string ChildTraceparent(std::string_view traceparent);

// The trace id of a traceparent, or empty.
std::string_view TraceIdOf(std::string_view traceparent);
// The span (parent) id of a traceparent, or empty.
std::string_view SpanIdOf(std::string_view traceparent);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_COMMON_TRACE_CONTEXT_H_
