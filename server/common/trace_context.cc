#include "server/common/trace_context.h"

#include <cstddef>

#include "absl/strings/str_cat.h"
#include "server/common/ids.h"
#include "server/common/string_view.h"

namespace webhookd {
namespace {

constexpr size_t kVersion00Size = 55;  // 2 + 1 + 32 + 1 + 16 + 1 + 2.
constexpr size_t kMaxTracestateSize = 512;

bool LowerHex(std::string_view text) {
  for (const char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZeros(std::string_view text) {
  return text.find_first_not_of('0') == std::string_view::npos;
}

absl::Status Invalid(std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("traceparent: ", AsAbsl(why)));
}

}  // namespace

std::string Traceparent::ToString() const {
  return absl::StrCat("00-", trace_id, "-", parent_id, "-", flags);
}

absl::StatusOr<Traceparent> ParseTraceparent(std::string_view value) {
  if (value.size() < kVersion00Size) {
    return Invalid(
        "expected 00-<32 hex digits>-<16 hex digits>-<2 hex digits>");
  }
  Traceparent parsed;
  parsed.version = std::string(value.substr(0, 2));
  parsed.trace_id = std::string(value.substr(3, 32));
  parsed.parent_id = std::string(value.substr(36, 16));
  parsed.flags = std::string(value.substr(53, 2));
  if (value[2] != '-' || value[35] != '-' || value[52] != '-') {
    return Invalid(
        "expected 00-<32 hex digits>-<16 hex digits>-<2 hex digits>");
  }
  if (!LowerHex(parsed.version) || !LowerHex(parsed.trace_id) ||
      !LowerHex(parsed.parent_id) || !LowerHex(parsed.flags)) {
    return Invalid("only lowercase hex digits are allowed");
  }
  if (parsed.version == "ff") return Invalid("version ff is invalid");
  // Version 00 has exactly these fields; later versions may add more.
  if (parsed.version == "00"
          ? value.size() != kVersion00Size
          : value.size() > kVersion00Size && value[kVersion00Size] != '-') {
    return Invalid("unexpected characters after the flags");
  }
  if (AllZeros(parsed.trace_id)) return Invalid("the trace id is all zeros");
  if (AllZeros(parsed.parent_id)) return Invalid("the parent id is all zeros");
  return parsed;
}

bool ValidTracestate(std::string_view value) {
  if (value.size() > kMaxTracestateSize) return false;
  for (const char c : value) {
    if (c < ' ' || c > '~') return false;
  }
  return true;
}

TraceContext ReadTraceContext(absl::Span<const std::string_view> traceparents,
                              absl::Span<const std::string_view> tracestates,
                              std::string* ignored) {
  std::string why;
  TraceContext trace;
  if (traceparents.size() > 1) {
    why = absl::StrCat("traceparent: given ", traceparents.size(),
                       " times; ignored");
  } else if (traceparents.size() == 1) {
    absl::StatusOr<Traceparent> parsed = ParseTraceparent(traceparents[0]);
    if (parsed.ok()) {
      trace.traceparent = parsed->ToString();
    } else {
      why = absl::StrCat(parsed.status().message(), "; ignored");
    }
  }
  if (!trace.empty() && !tracestates.empty()) {
    std::string state;
    for (size_t i = 0; i < tracestates.size(); ++i) {
      if (i > 0) state.push_back(',');
      state.append(tracestates[i]);
    }
    if (ValidTracestate(state)) {
      trace.tracestate = std::move(state);
    } else {
      why =
          "tracestate: longer than 512 characters or not visible ASCII; "
          "dropped";
    }
  }
  if (ignored != nullptr) *ignored = std::move(why);
  return trace;
}

TraceContext NewTraceContext() {
  TraceContext trace;
  trace.traceparent =
      Traceparent{"00", RandomHex(16), RandomHex(8), "01"}.ToString();
  return trace;
}

std::string ChildTraceparent(std::string_view traceparent) {
  absl::StatusOr<Traceparent> parent = ParseTraceparent(traceparent);
  if (!parent.ok()) return "";
  parent->parent_id = RandomHex(8);
  return parent->ToString();
}

std::string_view TraceIdOf(std::string_view traceparent) {
  return traceparent.size() >= kVersion00Size ? traceparent.substr(3, 32)
                                              : std::string_view();
}

std::string_view SpanIdOf(std::string_view traceparent) {
  return traceparent.size() >= kVersion00Size ? traceparent.substr(36, 16)
                                              : std::string_view();
}

}  // namespace webhookd
