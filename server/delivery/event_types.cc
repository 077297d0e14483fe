#include "server/delivery/event_types.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/limits.h"
#include "server/common/string_view.h"

namespace webhookd {
namespace {

constexpr std::string_view kWildcard = "*";
constexpr std::string_view kWildcardSuffix = ".*";

bool IsSegmentChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
         c == '-';
}

// Why `dotted` is not a sequence of valid segments, or empty if it is.
std::string SegmentsProblem(std::string_view dotted) {
  bool segment_empty = true;
  for (char c : dotted) {
    if (c == '.') {
      if (segment_empty) return "has an empty segment";
      segment_empty = true;
    } else if (IsSegmentChar(c)) {
      segment_empty = false;
    } else {
      return "may hold only A-Z, a-z, 0-9, '_', '-' and '.' between segments";
    }
  }
  if (segment_empty) return "has an empty segment";
  return "";
}

absl::Status Invalid(std::string_view field, std::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat(AsAbsl(field), ": ", AsAbsl(problem)));
}

// The checks every event type and filter share: not empty, not too long.
absl::Status CheckLength(std::string_view text, std::string_view field) {
  if (text.empty()) return Invalid(field, "must not be empty");
  if (text.size() > kMaxEventTypeBytes) {
    return Invalid(field,
                   absl::StrCat("at most ", kMaxEventTypeBytes, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateEventType(std::string_view event_type,
                               std::string_view field) {
  if (absl::Status length = CheckLength(event_type, field); !length.ok()) {
    return length;
  }
  const std::string problem = SegmentsProblem(event_type);
  if (!problem.empty()) {
    return Invalid(field, absl::StrCat("\"", AsAbsl(event_type), "\" ", problem,
                                       " (e.g. execution.completed)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateEventTypeFilters(const EventTypeFilters& filters,
                                      std::string_view field) {
  if (filters.size() > kMaxEventTypeFilters) {
    return Invalid(field,
                   absl::StrCat("at most ", kMaxEventTypeFilters, " entries"));
  }
  absl::flat_hash_set<absl::string_view> seen;
  for (int i = 0; i < filters.size(); ++i) {
    const std::string entry_field = absl::StrCat(AsAbsl(field), "[", i, "]");
    const std::string& filter = filters[i];
    if (absl::Status length = CheckLength(filter, entry_field); !length.ok()) {
      return length;
    }
    if (filter != kWildcard) {
      std::string_view prefix = filter;
      if (absl::EndsWith(filter, AsAbsl(kWildcardSuffix))) {
        prefix.remove_suffix(kWildcardSuffix.size());
      }
      const std::string problem = SegmentsProblem(prefix);
      if (!problem.empty()) {
        return Invalid(
            entry_field,
            absl::StrCat("\"", filter, "\" ", problem,
                         "; '*' may only be a whole last segment (e.g. "
                         "execution.completed, execution.* or *)"));
      }
    }
    if (!seen.insert(filter).second) {
      return Invalid(entry_field,
                     absl::StrCat("\"", filter, "\" is listed twice"));
    }
  }
  return absl::OkStatus();
}

bool EventTypeMatches(std::string_view filter, std::string_view event_type) {
  if (filter == kWildcard) return true;
  if (absl::EndsWith(AsAbsl(filter), AsAbsl(kWildcardSuffix))) {
    // "a.*": "a." and at least one more byte (a segment).
    const std::string_view prefix = filter.substr(0, filter.size() - 1);
    return event_type.size() > prefix.size() &&
           absl::StartsWith(AsAbsl(event_type), AsAbsl(prefix));
  }
  return filter == event_type;
}

bool EventTypeAdmitted(const EventTypeFilters& filters,
                       std::string_view event_type) {
  if (filters.empty()) return true;
  for (const std::string& filter : filters) {
    if (EventTypeMatches(filter, event_type)) return true;
  }
  return false;
}

}  // namespace webhookd
