#include "server/common/logging.h"

#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "server/common/string_view.h"

namespace webhookd {
namespace {

std::atomic<int> log_format{static_cast<int>(LogFormat::kText)};
std::atomic<int> log_fd{STDERR_FILENO};

// `text` as a JSON string. Plain ASCII (the usual ids, codes and times) is
// quoted as is; anything else is escaped by nlohmann-json, which replaces
// invalid UTF-8 (e.g. from a receiver's error text) rather than throw.
std::string JsonQuoted(std::string_view text) {
  bool plain = true;
  for (const char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
      plain = false;
      break;
    }
  }
  if (plain) return absl::StrCat("\"", AsAbsl(text), "\"");
  return nlohmann::json(text).dump(-1, ' ', false,
                                   nlohmann::json::error_handler_t::replace);
}

// A text value as is when it is one plain word, else as a JSON string, so
// that a value never spans lines or looks like another field.
std::string TextValue(std::string_view value) {
  bool plain = !value.empty();
  for (const char c : value) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) {
      plain = false;
      break;
    }
  }
  return plain ? std::string(value) : JsonQuoted(value);
}

char LevelLetter(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return 'D';
    case LogLevel::kInfo:
      return 'I';
    case LogLevel::kWarning:
      return 'W';
    case LogLevel::kError:
      return 'E';
  }
  return '?';
}

void WriteLine(const std::string& line) {
  const int fd = log_fd.load(std::memory_order_relaxed);
  const char* data = line.data();
  size_t left = line.size();
  // One write() holds the whole line; a short write (a full pipe) goes on
  // where it stopped.
  while (left > 0) {
    const ssize_t written = ::write(fd, data, left);
    if (written < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data += written;
    left -= static_cast<size_t>(written);
  }
}

}  // namespace

absl::StatusOr<LogLevel> ParseLogLevel(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(AsAbsl(name));
  if (lower == "debug") return LogLevel::kDebug;
  if (lower == "info") return LogLevel::kInfo;
  if (lower == "warning") return LogLevel::kWarning;
  if (lower == "error") return LogLevel::kError;
  return absl::InvalidArgumentError(
      absl::StrCat("--log_level: \"", AsAbsl(name),
                   "\" is not one of debug, info, warning, error"));
}

absl::StatusOr<LogFormat> ParseLogFormat(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(AsAbsl(name));
  if (lower == "text") return LogFormat::kText;
  if (lower == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(absl::StrCat(
      "--log_format: \"", AsAbsl(name), "\" is not one of text, json"));
}

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "unknown";
}

void SetLogLevel(LogLevel level) {
  logging_internal::min_level.store(static_cast<int>(level),
                                    std::memory_order_relaxed);
}

void SetLogFormat(LogFormat format) {
  log_format.store(static_cast<int>(format), std::memory_order_relaxed);
}

void SetLogFd(int fd) { log_fd.store(fd, std::memory_order_relaxed); }

std::string FormatLogLine(LogFormat format, std::string_view time_text,
                          LogLevel level, std::string_view message,
                          absl::Span<const LogField> fields) {
  if (format == LogFormat::kJson) {
    // Written field by field (keys in this order: time, level, msg, then
    // the fields as given): several times cheaper than building a json
    // object and dumping it.
    std::string line = absl::StrCat(
        "{\"time\":", JsonQuoted(time_text), ",\"level\":\"",
        AsAbsl(LogLevelName(level)), "\",\"msg\":", JsonQuoted(message));
    for (const LogField& field : fields) {
      absl::StrAppend(&line, ",", JsonQuoted(field.key), ":");
      if (const auto* text = std::get_if<std::string>(&field.value)) {
        absl::StrAppend(&line, JsonQuoted(*text));
      } else {
        absl::StrAppend(&line, std::get<int64_t>(field.value));
      }
    }
    absl::StrAppend(&line, "}\n");
    return line;
  }
  std::string line = absl::StrCat(AsAbsl(time_text), " ",
                                  std::string(1, LevelLetter(level)), " ");
  // A message never spans lines.
  if (message.find_first_of("\r\n") == std::string_view::npos) {
    absl::StrAppend(&line, AsAbsl(message));
  } else {
    absl::StrAppend(&line, absl::StrReplaceAll(AsAbsl(message),
                                               {{"\r", "\\r"}, {"\n", "\\n"}}));
  }
  for (const LogField& field : fields) {
    absl::StrAppend(&line, " ", AsAbsl(field.key), "=");
    if (const auto* text = std::get_if<std::string>(&field.value)) {
      absl::StrAppend(&line, TextValue(*text));
    } else {
      absl::StrAppend(&line, std::get<int64_t>(field.value));
    }
  }
  line.push_back('\n');
  return line;
}

void Log(LogLevel level, const std::string& message) {
  Log(level, message, {});
}

void Log(LogLevel level, std::string_view message,
         absl::Span<const LogField> fields) {
  if (!LogEnabled(level)) return;
  const std::string time_text = absl::FormatTime(
      "%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  WriteLine(FormatLogLine(
      static_cast<LogFormat>(log_format.load(std::memory_order_relaxed)),
      time_text, level, message, fields));
}

}  // namespace webhookd
