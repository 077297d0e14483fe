// Logging to stderr (Debian's Abseil predates absl/log): one line per entry,
// as text or JSON, with structured fields, filtered by level.

#ifndef WEBHOOKD_SERVER_COMMON_LOGGING_H_
#define WEBHOOKD_SERVER_COMMON_LOGGING_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace webhookd {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

enum class LogFormat {
  // 2026-11-30T00:00:00.000Z W message key=value key="a value"
  kText,
  // {"time":"2026-11-30T00:00:00.000Z","level":"warning","msg":"message",
  //  "key":"value"}
  kJson,
};

// One structured field of a log entry: a key (lowercase snake_case, never
// "time", "level" or "msg") and a string or integer value. A string passed
// as an lvalue, a string_view or a C string is borrowed, not copied: it must
// outlive the Log call, as the fields of a call (or a vector built just
// before it) do. A temporary std::string is moved in and owned.
struct LogField {
  LogField(std::string_view key, std::string_view value)
      : key(key), value(value) {}
  LogField(std::string_view key, const std::string& value)
      : key(key), value(std::string_view(value)) {}
  LogField(std::string_view key, std::string&& value)
      : key(key), value(std::move(value)) {}
  LogField(std::string_view key, const char* value)
      : key(key), value(std::string_view(value)) {}
  template <typename Int,
            typename = std::enable_if_t<std::is_integral_v<Int> &&
                                        !std::is_same_v<Int, bool>>>
  LogField(std::string_view key, Int value)
      : key(key), value(static_cast<int64_t>(value)) {}

  std::string_view key;
  std::variant<std::string_view, int64_t, std::string> value;
};

// "debug", "info", "warning" or "error"; InvalidArgument naming --log_level
// otherwise.
absl::StatusOr<LogLevel> ParseLogLevel(std::string_view name);
// "text" or "json"; InvalidArgument naming --log_format otherwise.
absl::StatusOr<LogFormat> ParseLogFormat(std::string_view name);
std::string_view LogLevelName(LogLevel level);

// Process-wide settings, normally set once by main before other threads
// log; safe to change at any time. Defaults: kInfo, kText, fd 2 (stderr).
void SetLogLevel(LogLevel level);
void SetLogFormat(LogFormat format);
// Where lines go. The descriptor must stay open while anything logs.
void SetLogFd(int fd);

namespace logging_internal {
inline std::atomic<int> min_level{static_cast<int>(LogLevel::kInfo)};
}  // namespace logging_internal

// Whether entries of `level` are written. Check it before building an
// expensive message or field list.
inline bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >=
         logging_internal::min_level.load(std::memory_order_relaxed);
}

// Writes one entry if `level` is enabled, as a single line: lines of
// concurrent threads never interleave. While one thread writes, the lines
// other threads log are handed to it and written together with one write(),
// so that they do not wait for the file; when Log returns, its line has been
// written or will be by that thread (also if the process exits normally). Field
// values are quoted or escaped as the format needs. Never pass secrets,
// signatures, payloads, header values or API keys.
void Log(LogLevel level, const std::string& message);
void Log(LogLevel level, std::string_view message,
         absl::Span<const LogField> fields);

// Waits until the lines logged before the call (by any thread) are written,
// at most `timeout`. For readers of the log file (tests) and exit, which
// does it by itself.
void FlushLog(absl::Duration timeout = absl::InfiniteDuration());

// The line Log would write (with its final newline) at `time_text`, for
// tests and for the writer itself.
std::string FormatLogLine(LogFormat format, std::string_view time_text,
                          LogLevel level, std::string_view message,
                          absl::Span<const LogField> fields);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_COMMON_LOGGING_H_
