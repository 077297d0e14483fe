#include "tests/support/subprocess.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/eventually.h"

extern char** environ;

namespace webhookd::testing {
namespace {

// This process's environment with `changes` applied.
std::vector<std::string> ChildEnvironment(
    const std::vector<std::string>& changes) {
  std::vector<std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    bool overridden = false;
    for (const std::string& change : changes) {
      const std::string name = change.substr(0, change.find('=') + 1);
      if (entry.compare(0, name.size(), name) == 0) overridden = true;
    }
    if (!overridden) environment.push_back(entry);
  }
  for (const std::string& change : changes) {
    if (change.back() != '=') environment.push_back(change);
  }
  return environment;
}

void CloseIfOpen(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

bool ExitedWith(int status, int code) {
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == code;
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    const std::vector<std::string>& argv, const Options& options) {
  if (argv.empty()) return absl::InvalidArgumentError("no argv");
  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls.
  std::vector<std::string> environment = ChildEnvironment(options.env);
  std::vector<char*> args, envp;
  for (const std::string& arg : argv) {
    args.push_back(const_cast<char*>(arg.c_str()));
  }
  args.push_back(nullptr);
  for (std::string& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);

  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  if (options.output_file.empty()) {
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
      const int error = errno;
      for (int fd : {out[0], out[1], err[0], err[1]}) CloseIfOpen(fd);
      return absl::UnavailableError(
          absl::StrCat("pipe: ", std::strerror(error)));
    }
  } else {
    out[1] = open(options.output_file.c_str(),
                  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out[1] < 0) {
      return absl::UnavailableError(absl::StrCat(
          "cannot open ", options.output_file, ": ", std::strerror(errno)));
    }
    err[1] = out[1];
  }

  const pid_t parent = getpid();
  std::unique_ptr<Subprocess> process(new Subprocess);
  process->pid_ = fork();
  if (process->pid_ == 0) {
    if (options.kill_with_parent) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      // The parent may have gone before prctl.
      if (getppid() != parent) _exit(127);
    }
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    const int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, STDIN_FILENO);
    // Signals blocked by the parent (gRPC's threads block none, but tests
    // may) would stay blocked in the child: unblock them.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execvpe(args[0], args.data(), envp.data());
    _exit(127);
  }
  const int fork_error = errno;
  if (out[1] != err[1]) CloseIfOpen(err[1]);
  CloseIfOpen(out[1]);
  process->out_fd_ = out[0];
  process->err_fd_ = err[0];
  if (process->pid_ < 0) {
    process->pid_ = -1;
    return absl::UnavailableError(
        absl::StrCat("fork: ", std::strerror(fork_error)));
  }
  return process;
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !status_.has_value()) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  CloseIfOpen(out_fd_);
  CloseIfOpen(err_fd_);
}

RunResult Subprocess::Run(const std::vector<std::string>& argv,
                          absl::Duration timeout, const Options& options) {
  absl::StatusOr<std::unique_ptr<Subprocess>> process = Start(argv, options);
  if (!process.ok()) {
    RunResult result;
    result.err = process.status().ToString();
    return result;
  }
  return (*process)->Finish(timeout);
}

bool Subprocess::Pump(absl::Time deadline) {
  pollfd fds[2];
  int n = 0;
  for (int fd : {out_fd_, err_fd_}) {
    if (fd >= 0) fds[n++] = {fd, POLLIN, 0};
  }
  if (n == 0) return false;
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return false;
  const int ready =
      poll(fds, n,
           static_cast<int>(std::min<int64_t>(
               absl::ToInt64Milliseconds(left + absl::Milliseconds(1)),
               std::numeric_limits<int>::max())));
  if (ready < 0 && errno != EINTR) return false;
  for (int i = 0; i < n; ++i) {
    if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    char buffer[4096];
    const ssize_t got = read(fds[i].fd, buffer, sizeof(buffer));
    const bool is_out = fds[i].fd == out_fd_;
    if (got > 0) {
      (is_out ? out_ : err_).append(buffer, static_cast<size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      CloseIfOpen(is_out ? out_fd_ : err_fd_);
    }
  }
  return true;
}

std::optional<std::string> Subprocess::ReadLine(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const size_t newline = out_.find('\n');
    if (newline != std::string::npos) {
      std::string line = out_.substr(0, newline);
      out_.erase(0, newline + 1);
      return line;
    }
    if (out_fd_ < 0 || !Pump(deadline)) return std::nullopt;
  }
}

void Subprocess::Signal(int signal) {
  if (pid_ > 0 && !status_.has_value()) kill(pid_, signal);
}

int Subprocess::Wait(absl::Duration timeout) {
  if (status_.has_value()) return *status_;
  if (pid_ <= 0) return -1;
  // SIGCHLD or a pidfd could signal the exit; a waitpid poll is simpler,
  // and cheap.
  Eventually(
      [this] {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
        status_ = status;
        return true;
      },
      timeout);
  return status_.value_or(-1);
}

int Subprocess::Stop(absl::Duration timeout) {
  Signal(SIGTERM);
  int status = Wait(timeout);
  if (status == -1) {
    Signal(SIGKILL);
    status = Wait(kEventuallyTimeout);
  }
  return status;
}

RunResult Subprocess::Finish(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (Pump(deadline)) {
  }
  RunResult result;
  int status = Wait(std::max(deadline - absl::Now(), absl::ZeroDuration()));
  if (status == -1) {
    Signal(SIGKILL);
    status = Wait(kEventuallyTimeout);
    absl::StrAppend(&err_, "\n[killed: still running after ",
                    absl::FormatDuration(timeout), "]\n");
  }
  if (status != -1 && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  result.out = std::move(out_);
  result.err = std::move(err_);
  return result;
}

absl::StatusOr<int> FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("socket: ", std::strerror(errno)));
  }
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  const bool ok =
      bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  const int error = errno;
  close(fd);
  if (!ok) {
    return absl::UnavailableError(
        absl::StrCat("no free port on 127.0.0.1: ", std::strerror(error)));
  }
  return ntohs(address.sin_port);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string LogTail(const std::string& text) {
  constexpr size_t kTail = 4096;
  return text.size() <= kTail ? text : "..." + text.substr(text.size() - kTail);
}

}  // namespace webhookd::testing
