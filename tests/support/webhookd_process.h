// A real webhookd process, for tests of crashes, signals and start-up.

#ifndef WEBHOOKD_TESTS_SUPPORT_WEBHOOKD_PROCESS_H_
#define WEBHOOKD_TESTS_SUPPORT_WEBHOOKD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "webhook/v1/webhook_service.grpc.pb.h"

namespace webhookd::testing {

// The webhookd binary built with the tests.
std::string WebhookdBinary();

// Whether a wait status (as WebhookdProcess::Wait returns it) is a normal
// exit with `code`; false for a timeout (-1) or a signal.
bool ExitedWith(int status, int code);

class WebhookdProcess {
 public:
  // Runs `WebhookdBinary() args...` with stderr going to `log_path`.
  WebhookdProcess(std::vector<std::string> args, std::string log_path);
  WebhookdProcess(const WebhookdProcess&) = delete;
  WebhookdProcess& operator=(const WebhookdProcess&) = delete;
  // Kills the process (SIGKILL) if it still runs.
  ~WebhookdProcess();

  // Starts a server on 127.0.0.1:0 over `data_dir` with test settings
  // (insecure targets allowed) plus `extra` flags and waits until it serves.
  static std::unique_ptr<WebhookdProcess> StartServer(
      const std::string& data_dir, const std::string& work_dir,
      std::vector<std::string> extra = {});

  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  webhook::v1::WebhookService::Stub& stub() { return *stub_; }
  // The process's stderr so far.
  std::string Log() const;

  void Signal(int signal);
  // Waits for the process to exit; returns its wait status, or -1 on
  // timeout.
  int Wait(absl::Duration timeout);

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_path_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<webhook::v1::WebhookService::Stub> stub_;
};

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_WEBHOOKD_PROCESS_H_
