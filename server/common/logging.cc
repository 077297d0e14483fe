#include "server/common/logging.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "server/common/string_view.h"

namespace webhookd {
namespace {

std::atomic<int> log_format{static_cast<int>(LogFormat::kText)};
std::atomic<int> log_fd{STDERR_FILENO};

// Appends `text` as a JSON string. Plain ASCII (the usual ids, codes and
// times) is quoted as is; anything else is escaped by nlohmann-json, which
// replaces invalid UTF-8 (e.g. from a receiver's error text) rather than
// throw.
void AppendJsonQuoted(std::string& out, std::string_view text) {
  bool plain = true;
  for (const char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
      plain = false;
      break;
    }
  }
  if (plain) {
    out.push_back('"');
    out.append(text);
    out.push_back('"');
    return;
  }
  out.append(nlohmann::json(text).dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// Appends a text value as is when it is one plain word, else as a JSON
// string, so that a value never spans lines or looks like another field.
void AppendTextValue(std::string& out, std::string_view value) {
  bool plain = !value.empty();
  for (const char c : value) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) {
      plain = false;
      break;
    }
  }
  if (plain) {
    out.append(value);
  } else {
    AppendJsonQuoted(out, value);
  }
}

// Appends a field's value: its text through `append_text`, or its integer.
template <typename AppendText>
void AppendValue(std::string& out, const LogField& field,
                 AppendText append_text) {
  if (const auto* number = std::get_if<int64_t>(&field.value)) {
    absl::StrAppend(&out, *number);
  } else if (const auto* view = std::get_if<std::string_view>(&field.value)) {
    append_text(out, *view);
  } else {
    append_text(out, std::get<std::string>(field.value));
  }
}

// The time of a line, "2026-11-30T00:00:00.000Z". absl::FormatTime costs
// about a microsecond, so each thread keeps the text of the second it last
// formatted and only writes the milliseconds after it.
std::string_view TimeText(absl::Time now, char (&buffer)[32]) {
  thread_local int64_t cached_second = std::numeric_limits<int64_t>::min();
  thread_local char cached_text[24];
  thread_local size_t cached_size = 0;
  // absl's ToUnix* round down, before 1970 too.
  const int64_t second = absl::ToUnixSeconds(now);
  const int64_t milli =
      absl::ToInt64Milliseconds(now - absl::FromUnixSeconds(second));
  if (second != cached_second) {
    const std::string text =
        absl::FormatTime("%Y-%m-%dT%H:%M:%S", absl::FromUnixSeconds(second),
                         absl::UTCTimeZone());
    cached_size = std::min(text.size(), sizeof(cached_text));
    std::memcpy(cached_text, text.data(), cached_size);
    cached_second = second;
  }
  std::memcpy(buffer, cached_text, cached_size);
  char* p = buffer + cached_size;
  *p++ = '.';
  *p++ = static_cast<char>('0' + milli / 100);
  *p++ = static_cast<char>('0' + milli / 10 % 10);
  *p++ = static_cast<char>('0' + milli % 10);
  *p++ = 'Z';
  return std::string_view(buffer, static_cast<size_t>(p - buffer));
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

// Writes all of `data` to the log descriptor: a short write (a full pipe)
// goes on where it stopped.
void WriteAll(std::string_view data) {
  const int fd = log_fd.load(std::memory_order_relaxed);
  while (!data.empty()) {
    const ssize_t written = ::write(fd, data.data(), data.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data.remove_prefix(static_cast<size_t>(written));
  }
}

// Lines waiting for the thread that is writing. Threads that log at once
// would otherwise queue on the file's lock, one write() each (at debug, a
// line per attempt from every worker): instead, the first becomes the
// writer and takes along, in one write(), the lines the others appended
// meanwhile, and they go on at once. Never destroyed, so that threads still
// logging during exit find it.
struct PendingLines {
  // Beyond this, loggers wait for the writer rather than buffer more.
  static constexpr size_t kMaxBytes = 4 << 20;

  bool HasRoom() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return lines.size() < kMaxBytes;
  }

  absl::Mutex mu;
  std::string lines ABSL_GUARDED_BY(mu);
  bool writing ABSL_GUARDED_BY(mu) = false;
  // Bytes ever handed over, and of those, written (or failed to).
  uint64_t appended ABSL_GUARDED_BY(mu) = 0;
  uint64_t written ABSL_GUARDED_BY(mu) = 0;
  // Signalled when `written` grows.
  absl::CondVar wrote;
};

PendingLines& Pending() {
  static PendingLines* const pending = [] {
    // A second at most, in case the descriptor blocks.
    std::atexit([] { FlushLog(absl::Seconds(1)); });
    return new PendingLines;
  }();
  return *pending;
}

// Hands `line` to the thread writing, or writes it (with whatever others
// hand over meanwhile) when none is. When it returns, the line is written
// or will be before the writer's Log returns.
void WriteLine(std::string_view line) {
  PendingLines& pending = Pending();
  std::string batch;
  {
    absl::MutexLock lock(&pending.mu);
    pending.mu.Await(absl::Condition(&pending, &PendingLines::HasRoom));
    pending.lines.append(line);
    pending.appended += line.size();
    if (pending.writing) return;
    pending.writing = true;
    batch.swap(pending.lines);
  }
  for (;;) {
    WriteAll(batch);
    absl::MutexLock lock(&pending.mu);
    pending.written += batch.size();
    pending.wrote.SignalAll();
    batch.clear();
    if (pending.lines.empty()) {
      pending.writing = false;
      return;
    }
    batch.swap(pending.lines);
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
  std::string line;
  line.reserve(128 + 48 * fields.size());
  if (format == LogFormat::kJson) {
    // Written field by field (keys in this order: time, level, msg, then
    // the fields as given): several times cheaper than building a json
    // object and dumping it.
    line.append("{\"time\":");
    AppendJsonQuoted(line, time_text);
    absl::StrAppend(&line, ",\"level\":\"", AsAbsl(LogLevelName(level)),
                    "\",\"msg\":");
    AppendJsonQuoted(line, message);
    for (const LogField& field : fields) {
      line.push_back(',');
      AppendJsonQuoted(line, field.key);
      line.push_back(':');
      AppendValue(line, field, AppendJsonQuoted);
    }
    line.append("}\n");
    return line;
  }
  line.append(time_text);
  line.push_back(' ');
  line.push_back(LevelLetter(level));
  line.push_back(' ');
  // A message never spans lines.
  if (message.find_first_of("\r\n") == std::string_view::npos) {
    line.append(message);
  } else {
    absl::StrAppend(&line, absl::StrReplaceAll(AsAbsl(message),
                                               {{"\r", "\\r"}, {"\n", "\\n"}}));
  }
  for (const LogField& field : fields) {
    line.push_back(' ');
    line.append(field.key);
    line.push_back('=');
    AppendValue(line, field, AppendTextValue);
  }
  line.push_back('\n');
  return line;
}

void FlushLog(absl::Duration timeout) {
  PendingLines& pending = Pending();
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&pending.mu);
  const uint64_t target = pending.appended;
  while (pending.written < target) {
    if (pending.wrote.WaitWithDeadline(&pending.mu, deadline)) return;
  }
}

void Log(LogLevel level, const std::string& message) {
  Log(level, message, {});
}

void Log(LogLevel level, std::string_view message,
         absl::Span<const LogField> fields) {
  if (!LogEnabled(level)) return;
  char time_buffer[32];
  WriteLine(FormatLogLine(
      static_cast<LogFormat>(log_format.load(std::memory_order_relaxed)),
      TimeText(absl::Now(), time_buffer), level, message, fields));
}

}  // namespace webhookd
