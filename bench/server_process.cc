#include "bench/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "bench/proc_stats.h"

namespace webhookd::bench {

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& binary, const std::string& data_dir,
    const std::string& log_path, const std::vector<std::string>& flags,
    absl::Duration timeout) {
  if (access(binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("webhookd binary ", binary, " is not executable"));
  }
  static int counter = 0;
  const std::string port_file =
      absl::StrCat(log_path, ".port-", getpid(), "-", ++counter);
  unlink(port_file.c_str());
  std::vector<std::string> args = {
      binary, "--listen=127.0.0.1:0", absl::StrCat("--data_dir=", data_dir),
      absl::StrCat("--port_file=", port_file), "--allow_insecure_targets"};
  args.insert(args.end(), flags.begin(), flags.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const int log_fd =
      open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot open ", log_path));
  }
  const pid_t parent = getpid();
  std::unique_ptr<ServerProcess> process(new ServerProcess);
  process->spawn_ns_ = NowNanos();
  process->pid_ = fork();
  if (process->pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(log_fd, STDERR_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);
  if (process->pid_ < 0) return absl::UnavailableError("fork failed");

  const int64_t deadline = NowNanos() + absl::ToInt64Nanoseconds(timeout);
  while (true) {
    std::ifstream in(port_file);
    std::stringstream text;
    text << in.rdbuf();
    int port = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(text.str()), &port) &&
        port > 0) {
      process->port_ = port;
      process->serving_ns_ = NowNanos();
      break;
    }
    if (process->Wait(absl::ZeroDuration()) != -1) {
      return absl::UnavailableError(
          absl::StrCat("webhookd exited at start; see ", log_path));
    }
    if (NowNanos() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("webhookd did not serve in time; see ", log_path));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  unlink(port_file.c_str());
  return process;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    Wait(absl::Seconds(10));
  }
}

std::string ServerProcess::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

int ServerProcess::Stop(absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = Wait(timeout);
  if (status == -1) {
    kill(pid_, SIGKILL);
    status = Wait(absl::Seconds(10));
  }
  return status;
}

int ServerProcess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  const int64_t deadline = NowNanos() + absl::ToInt64Nanoseconds(timeout);
  while (true) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    if (NowNanos() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace webhookd::bench
