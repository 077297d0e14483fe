// A real webhookd process, for tests of crashes, signals and start-up and
// for webhook-bench: a Subprocess with its stdout and stderr appended to a
// log file, killed (SIGKILL) when the object goes or when the thread that
// started it ends.

#ifndef WEBHOOKD_TESTS_SUPPORT_WEBHOOKD_PROCESS_H_
#define WEBHOOKD_TESTS_SUPPORT_WEBHOOKD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tests/support/eventually.h"
#include "tests/support/subprocess.h"
#include "webhook/v1/webhook_service.grpc.pb.h"

namespace webhookd::testing {

// The webhookd binary built with the tests.
std::string WebhookdBinary();

// Thread-compatible: one thread at a time.
class WebhookdProcess {
 public:
  struct Options {
    // WebhookdBinary() if empty.
    std::string binary;
    std::string data_dir;
    // stdout and stderr are appended here; the port file goes beside it.
    std::string log_path;
    // After --listen=127.0.0.1:0 --data_dir --port_file
    // --allow_insecure_targets.
    std::vector<std::string> flags;
    absl::Duration start_timeout = kEventuallyTimeout;
  };

  // Starts a server on a free loopback port and waits until it serves (has
  // written its port file). Never null: if it does not come up, status()
  // says why (with the end of its log) and port() is 0.
  static std::unique_ptr<WebhookdProcess> Start(const Options& options);
  // Start with WebhookdBinary(), its log at <work_dir>/webhookd.log and
  // `flags`.
  static std::unique_ptr<WebhookdProcess> StartServer(
      const std::string& data_dir, const std::string& work_dir,
      std::vector<std::string> flags = {});

  // Runs `WebhookdBinary() args...` with stdout and stderr appended to
  // `log_path`, waiting for nothing (--help, --repair, a start meant to
  // fail); status() says if it could not be started.
  WebhookdProcess(std::vector<std::string> args, std::string log_path);
  WebhookdProcess(const WebhookdProcess&) = delete;
  WebhookdProcess& operator=(const WebhookdProcess&) = delete;
  ~WebhookdProcess() = default;

  const absl::Status& status() const { return status_; }
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  // The port it serves on; 0 unless started by Start and serving.
  int port() const { return port_; }
  // "127.0.0.1:<port>".
  std::string address() const;
  // A stub on a channel of its own; only for a serving process.
  webhook::v1::WebhookService::Stub& stub() { return *stub_; }
  // The log so far.
  std::string Log() const;

  void Signal(int signal);
  // Waits up to `timeout` for the exit; returns the wait status, or -1 if
  // it still runs (see ExitedWith).
  int Wait(absl::Duration timeout);
  // SIGTERM, then SIGKILL after `timeout`; returns the wait status.
  int Stop(absl::Duration timeout);

 private:
  explicit WebhookdProcess(std::string log_path)
      : log_path_(std::move(log_path)) {}
  void Run(const std::string& binary, std::vector<std::string> args);

  const std::string log_path_;
  absl::Status status_;
  std::unique_ptr<Subprocess> process_;
  int port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<webhook::v1::WebhookService::Stub> stub_;
};

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_WEBHOOKD_PROCESS_H_
