#include "server/app/effective_config.h"

#include <algorithm>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/logging.h"
#include "server/common/string_view.h"
#include "storage/postgres/pg.h"

namespace webhookd {
namespace {

constexpr std::string_view kMasked = "********";

// What may be logged of `value`, the value of flag `name`.
std::string Loggable(absl::string_view name, const std::string& value) {
  if (name == "postgres") {
    if (value.empty()) return value;
    // A string libpq cannot parse is refused at start-up; never show it.
    absl::StatusOr<std::string> described = pg::DescribeConninfo(value);
    return described.ok() ? *described : std::string(kMasked);
  }
  const bool sensitive = (absl::StrContains(name, "password") ||
                          absl::StrContains(name, "secret")) &&
                         !absl::EndsWith(name, "_file");
  if (sensitive && !value.empty()) return std::string(kMasked);
  return value;
}

}  // namespace

FlagValues EffectiveFlags(std::string_view flags_file,
                          const FlagValues& overrides) {
  FlagValues flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!absl::EndsWith(flag->Filename(), AsAbsl(flags_file))) continue;
    std::string value = flag->CurrentValue();
    for (const auto& [overridden, given] : overrides) {
      if (name == overridden) value = given;
    }
    flags.emplace_back(std::string(name), Loggable(name, value));
  }
  std::sort(flags.begin(), flags.end());
  return flags;
}

void LogEffectiveConfiguration(std::string_view flags_file,
                               const FlagValues& overrides,
                               const RetryPolicy& policy,
                               absl::Duration attempt_timeout) {
  if (!LogEnabled(LogLevel::kInfo)) return;
  const FlagValues flags = EffectiveFlags(flags_file, overrides);
  std::vector<LogField> fields;
  fields.reserve(flags.size());
  for (const auto& [name, value] : flags) fields.emplace_back(name, value);
  Log(LogLevel::kInfo, "effective configuration", fields);
  std::vector<std::string> delays;
  for (absl::Duration delay : policy.delays()) {
    delays.push_back(absl::FormatDuration(delay));
  }
  Log(LogLevel::kInfo, "retry schedule",
      {{"attempts", policy.max_attempts()},
       {"retry_delays", delays.empty() ? "none" : absl::StrJoin(delays, ",")},
       {"attempt_timeout", absl::FormatDuration(attempt_timeout)},
       {"max_retry_after", absl::FormatDuration(kMaxRetryAfter)}});
}

}  // namespace webhookd
