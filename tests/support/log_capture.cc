#include "tests/support/log_capture.h"

#include <unistd.h>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace webhookd::testing {

LogCapture::LogCapture(LogLevel level, LogFormat format) : file_(tmpfile()) {
  if (file_ == nullptr) {
    ADD_FAILURE() << "cannot create a temporary file for the log";
    return;
  }
  FlushLog();  // Earlier lines go to stderr still.
  SetLogFormat(format);
  SetLogLevel(level);
  SetLogFd(fileno(file_));
}

LogCapture::~LogCapture() {
  FlushLog();
  SetLogFd(STDERR_FILENO);
  SetLogLevel(LogLevel::kInfo);
  SetLogFormat(LogFormat::kText);
  // A thread still logging writes to stderr from now on; the file may go.
  if (file_ != nullptr) fclose(file_);
}

std::string LogCapture::Text() const {
  std::string text;
  if (file_ == nullptr) return text;
  FlushLog();
  char buffer[8192];
  for (off_t offset = 0;;) {
    const ssize_t got = pread(fileno(file_), buffer, sizeof buffer, offset);
    if (got <= 0) break;
    text.append(buffer, static_cast<size_t>(got));
    offset += got;
  }
  return text;
}

std::vector<nlohmann::json> LogCapture::JsonLines(
    const std::string& message) const {
  return JsonLogLines(Text(), message);
}

std::vector<nlohmann::json> JsonLogLines(const std::string& log,
                                         const std::string& message) {
  std::vector<nlohmann::json> lines;
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    nlohmann::json parsed = nlohmann::json::parse(
        line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_object()) continue;
    if (!message.empty() && parsed.value("msg", "") != message) continue;
    lines.push_back(std::move(parsed));
  }
  return lines;
}

}  // namespace webhookd::testing
