// A child process with its stdout and stderr captured, for tests that run
// the real webhookctl binary.

#ifndef WEBHOOKD_TESTS_CLIENT_SUBPROCESS_H_
#define WEBHOOKD_TESTS_CLIENT_SUBPROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace webhookd::testing {

struct RunResult {
  // The exit code, or -1 if the process was killed (e.g. on timeout).
  int exit_code = -1;
  std::string out;
  std::string err;
};

class Subprocess {
 public:
  // Starts `argv` (argv[0] is the path of the binary) with the environment
  // of this process plus `env` ("NAME=value"; "NAME=" with an empty value
  // removes NAME). Fails the current test if it cannot.
  Subprocess(const std::vector<std::string>& argv,
             const std::vector<std::string>& env = {});
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  // Kills the process (SIGKILL) if it still runs.
  ~Subprocess();

  // The next line of stdout (without its newline), or nullopt when stdout
  // has closed or `timeout` passed.
  std::optional<std::string> ReadLine(absl::Duration timeout);

  void Signal(int signal);
  // Waits for the exit and collects the rest of stdout and stderr; kills the
  // process after `timeout`.
  RunResult Wait(absl::Duration timeout);

  // Runs to completion, bounded by `timeout`.
  static RunResult Run(const std::vector<std::string>& argv,
                       absl::Duration timeout = absl::Seconds(30),
                       const std::vector<std::string>& env = {});

 private:
  // Reads what is available from the pipes until `deadline`; returns false
  // once both have closed or the deadline passed.
  bool Pump(absl::Time deadline);

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;  // Not yet returned by ReadLine.
  std::string err_;
};

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_CLIENT_SUBPROCESS_H_
