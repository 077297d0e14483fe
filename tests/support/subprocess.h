// Subprocess: a child process run from an argv, for the tests (webhookctl,
// webhookd) and webhook-bench (webhookd, wrk): its stdout and stderr either
// captured through pipes or appended to a file, its exit waited for with a
// timeout, and killed (SIGKILL) when the object goes.

#ifndef WEBHOOKD_TESTS_SUPPORT_SUBPROCESS_H_
#define WEBHOOKD_TESTS_SUPPORT_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace webhookd::testing {

struct RunResult {
  // The exit code, or -1 if the process did not exit normally (a signal, a
  // kill on timeout) or could not be started.
  int exit_code = -1;
  std::string out;
  // With output_file set, "" (the output is in the file). When the process
  // could not be started, why.
  std::string err;
};

// A port of 127.0.0.1 that nothing listens on now, for a child that cannot
// report the port it picked (PostgreSQL, Prometheus): bound and closed
// again, so another process may take it meanwhile.
absl::StatusOr<int> FreeLoopbackPort();

// The whole of a file ("" if it cannot be read): a process's log.
std::string ReadFile(const std::string& path);

// The last 4 KiB of a log, for an error message.
std::string LogTail(const std::string& text);

// Whether a wait status (as Subprocess::Wait returns it) is a normal exit
// with `code`; false for a timeout (-1) or a signal.
bool ExitedWith(int status, int code);

// How a Subprocess runs. (Outside the class, so that its default can be a
// default argument of the class's functions.)
struct SubprocessOptions {
  // "NAME=value" set in the child's environment, which is otherwise this
  // process's; "NAME=" removes NAME.
  std::vector<std::string> env;
  // Where stdout and stderr go: appended to this file, or, if empty,
  // captured for ReadLine and Finish.
  std::string output_file;
  // Kill the child (SIGKILL) if the thread that started it ends, e.g. when
  // the test or benchmark crashes (PR_SET_PDEATHSIG).
  bool kill_with_parent = false;
};

// Thread-compatible: one thread at a time.
class Subprocess {
 public:
  using Options = SubprocessOptions;

  // Starts `argv`: argv[0] is the binary, looked up in PATH if it has no
  // '/'. UnavailableError if no process could be made; a binary that cannot
  // be run exits with 127.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(
      const std::vector<std::string>& argv, const Options& options = {});
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  // Kills the process (SIGKILL) if it still runs.
  ~Subprocess();

  // Runs `argv` to completion, bounded by `timeout` (then killed), and
  // returns its exit code and captured output.
  static RunResult Run(const std::vector<std::string>& argv,
                       absl::Duration timeout = absl::Seconds(30),
                       const Options& options = {});

  pid_t pid() const { return pid_; }

  // The next line of captured stdout (without its newline), or nullopt
  // once stdout has closed or after `timeout`.
  std::optional<std::string> ReadLine(absl::Duration timeout);

  // Sends `signal` unless the process has been waited for.
  void Signal(int signal);
  // Waits up to `timeout` for the exit and returns the wait status; -1 if
  // the process still runs. Once it has exited, every call returns the
  // same status.
  int Wait(absl::Duration timeout);
  // Signals SIGTERM and waits up to `timeout`, then kills (SIGKILL).
  // Returns the wait status.
  int Stop(absl::Duration timeout);
  // Reads the rest of the captured output and waits for the exit, killing
  // the process after `timeout`.
  RunResult Finish(absl::Duration timeout);

 private:
  Subprocess() = default;
  // Reads what is available from the pipes until `deadline`; false once
  // both have closed or the deadline passed.
  bool Pump(absl::Time deadline);

  pid_t pid_ = -1;
  // Set once the process has been waited for.
  std::optional<int> status_;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;  // Not yet returned by ReadLine.
  std::string err_;
};

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_SUBPROCESS_H_
