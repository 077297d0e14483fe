#include "tests/support/webhookd_process.h"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace webhookd::testing {

std::string WebhookdBinary() { return WEBHOOKD_BINARY; }

WebhookdProcess::WebhookdProcess(std::vector<std::string> args,
                                 std::string log_path)
    : log_path_(std::move(log_path)) {
  Run(WebhookdBinary(), std::move(args));
}

void WebhookdProcess::Run(const std::string& binary,
                          std::vector<std::string> args) {
  args.insert(args.begin(), binary);
  Subprocess::Options options;
  options.output_file = log_path_;
  options.kill_with_parent = true;
  absl::StatusOr<std::unique_ptr<Subprocess>> process =
      Subprocess::Start(args, options);
  if (process.ok()) {
    process_ = *std::move(process);
  } else {
    status_ = process.status();
  }
}

std::unique_ptr<WebhookdProcess> WebhookdProcess::Start(
    const Options& options) {
  static std::atomic<int> counter{0};
  std::unique_ptr<WebhookdProcess> process(
      new WebhookdProcess(options.log_path));
  const std::string binary =
      options.binary.empty() ? WebhookdBinary() : options.binary;
  if (access(binary.c_str(), X_OK) != 0) {
    process->status_ = absl::NotFoundError(
        absl::StrCat("webhookd binary ", binary, " is not executable"));
    return process;
  }
  const std::string port_file =
      absl::StrCat(options.log_path, ".port-", getpid(), "-", ++counter);
  std::vector<std::string> args = {
      "--listen=127.0.0.1:0", absl::StrCat("--data_dir=", options.data_dir),
      absl::StrCat("--port_file=", port_file), "--allow_insecure_targets"};
  args.insert(args.end(), options.flags.begin(), options.flags.end());
  process->Run(binary, std::move(args));
  if (!process->status_.ok()) return process;

  // webhookd writes the file (by a rename) once it serves.
  bool exited = false;
  Eventually(
      [&] {
        int port = 0;
        if (absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(port_file)),
                             &port) &&
            port > 0) {
          process->port_ = port;
          return true;
        }
        exited = process->Wait(absl::ZeroDuration()) != -1;
        return exited;
      },
      options.start_timeout);
  unlink(port_file.c_str());
  if (process->port_ == 0) {
    process->status_ = absl::UnavailableError(absl::StrCat(
        "webhookd ",
        exited ? "exited before serving"
               : absl::StrCat("did not serve within ",
                              absl::FormatDuration(options.start_timeout)),
        "; its log ", options.log_path, ":\n", LogTail(process->Log())));
    return process;
  }
  process->channel_ = grpc::CreateChannel(process->address(),
                                          grpc::InsecureChannelCredentials());
  process->stub_ = webhook::v1::WebhookService::NewStub(process->channel_);
  return process;
}

std::unique_ptr<WebhookdProcess> WebhookdProcess::StartServer(
    const std::string& data_dir, const std::string& work_dir,
    std::vector<std::string> flags) {
  Options options;
  options.data_dir = data_dir;
  options.log_path = absl::StrCat(work_dir, "/webhookd.log");
  options.flags = std::move(flags);
  return Start(options);
}

std::string WebhookdProcess::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

std::string WebhookdProcess::Log() const { return ReadFile(log_path_); }

void WebhookdProcess::Signal(int signal) {
  if (process_ != nullptr) process_->Signal(signal);
}

int WebhookdProcess::Wait(absl::Duration timeout) {
  return process_ != nullptr ? process_->Wait(timeout) : -1;
}

int WebhookdProcess::Stop(absl::Duration timeout) {
  return process_ != nullptr ? process_->Stop(timeout) : -1;
}

}  // namespace webhookd::testing
