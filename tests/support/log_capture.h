// Captures what the process logs (server/common/logging.h) for one test.

#ifndef WEBHOOKD_TESTS_SUPPORT_LOG_CAPTURE_H_
#define WEBHOOKD_TESTS_SUPPORT_LOG_CAPTURE_H_

#include <cstdio>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "server/common/logging.h"

namespace webhookd::testing {

// The lines of `log` that parse as JSON objects (--log_format=json), only
// those whose "msg" is `message` unless it is empty.
std::vector<nlohmann::json> JsonLogLines(const std::string& log,
                                         const std::string& message = "");

// While it lives, log lines go to a temporary file instead of stderr, at
// `level` and in `format`; the destructor restores stderr, info and text.
// One at a time per process.
class LogCapture {
 public:
  explicit LogCapture(LogLevel level = LogLevel::kInfo,
                      LogFormat format = LogFormat::kText);
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  ~LogCapture();

  // Everything logged so far.
  std::string Text() const;
  // JsonLogLines(Text(), message).
  std::vector<nlohmann::json> JsonLines(const std::string& message = "") const;

 private:
  FILE* file_;
};

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_LOG_CAPTURE_H_
