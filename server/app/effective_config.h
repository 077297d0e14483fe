// The effective configuration, as webhookd logs it at start-up.

#ifndef WEBHOOKD_SERVER_APP_EFFECTIVE_CONFIG_H_
#define WEBHOOKD_SERVER_APP_EFFECTIVE_CONFIG_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/delivery/retry_policy.h"

namespace webhookd {

// The value of every flag defined in a source file whose path ends with
// `flags_file` (given or default), sorted by name, as safe to log: the
// --postgres connection string reduced by pg::DescribeConninfo (never a
// password), and the value of any flag whose name contains "password" or
// "secret" (but not a "_file" path) masked as "********". `overrides`
// replace the values absl keeps of the flags they name (e.g. every value
// of a repeated flag, where absl keeps the last).
using FlagValues = std::vector<std::pair<std::string, std::string>>;
FlagValues EffectiveFlags(std::string_view flags_file,
                          const FlagValues& overrides = {});

// Logs at info level one "effective configuration" line with
// EffectiveFlags(flags_file, overrides) as fields, then one "retry schedule"
// line: attempts, the delays and the attempt timeout in effect.
void LogEffectiveConfiguration(std::string_view flags_file,
                               const FlagValues& overrides,
                               const RetryPolicy& policy,
                               absl::Duration attempt_timeout);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_APP_EFFECTIVE_CONFIG_H_
