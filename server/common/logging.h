// Minimal logging to stderr (Debian's Abseil predates absl/log).

#ifndef WEBHOOKD_SERVER_COMMON_LOGGING_H_
#define WEBHOOKD_SERVER_COMMON_LOGGING_H_

#include <string_view>

namespace webhookd {

enum class LogLevel { kInfo, kWarning, kError };

// Writes one line "2026-11-30T00:00:00.000Z W message" to stderr. Never pass
// secrets or API keys.
void Log(LogLevel level, const std::string& message);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_COMMON_LOGGING_H_
