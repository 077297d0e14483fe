#include "tests/support/webhookd_process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace webhookd::testing {
namespace {

// A webhookd stopping gracefully waits until each client connection acks
// its shutdown ping, and an idle client channel reads its socket only when
// gRPC's backup poller runs: every 5 s by default. Poll more often, so that
// tests that signal a process they talked to do not wait for it. Runs
// before main(), so before gRPC reads its configuration.
[[maybe_unused]] const bool kFastBackupPoll = [] {
  setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100",
         /*overwrite=*/0);
  return true;
}();

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

std::string WebhookdBinary() { return WEBHOOKD_BINARY; }

bool ExitedWith(int status, int code) {
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == code;
}

WebhookdProcess::WebhookdProcess(std::vector<std::string> args,
                                 std::string log_path)
    : log_path_(std::move(log_path)) {
  args.insert(args.begin(), WebhookdBinary());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const int log_fd =
      open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  pid_ = fork();
  if (pid_ == 0) {
    dup2(log_fd, STDERR_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);
  EXPECT_GT(pid_, 0) << "fork failed";
}

WebhookdProcess::~WebhookdProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    Wait(absl::Seconds(10));
  }
}

std::unique_ptr<WebhookdProcess> WebhookdProcess::StartServer(
    const std::string& data_dir, const std::string& work_dir,
    std::vector<std::string> extra) {
  static int counter = 0;
  const std::string port_file =
      absl::StrCat(work_dir, "/port-", getpid(), "-", ++counter);
  std::vector<std::string> args = {
      "--listen=127.0.0.1:0", absl::StrCat("--data_dir=", data_dir),
      absl::StrCat("--port_file=", port_file), "--allow_insecure_targets"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto process = std::make_unique<WebhookdProcess>(
      std::move(args), absl::StrCat(work_dir, "/webhookd.log"));
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (process->port_ == 0) {
    int port = 0;
    std::string text(absl::StripAsciiWhitespace(ReadFile(port_file)));
    if (absl::SimpleAtoi(text, &port) && port > 0) {
      process->port_ = port;
      break;
    }
    if (absl::Now() > deadline || process->Wait(absl::ZeroDuration()) != -1) {
      ADD_FAILURE() << "webhookd did not start; its log:\n" << process->Log();
      return process;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  process->channel_ =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", process->port_),
                          grpc::InsecureChannelCredentials());
  process->stub_ = webhook::v1::WebhookService::NewStub(process->channel_);
  return process;
}

std::string WebhookdProcess::Log() const { return ReadFile(log_path_); }

void WebhookdProcess::Signal(int signal) {
  if (pid_ > 0) kill(pid_, signal);
}

int WebhookdProcess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      return status;
    }
    if (absl::Now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace webhookd::testing
