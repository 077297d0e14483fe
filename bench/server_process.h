// A webhookd child process for the benchmark: started on a data directory
// with --listen=127.0.0.1:0 and --port_file, stopped with SIGTERM.

#ifndef WEBHOOKD_BENCH_SERVER_PROCESS_H_
#define WEBHOOKD_BENCH_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace webhookd::bench {

class ServerProcess {
 public:
  // Runs `binary --listen=127.0.0.1:0 --data_dir=<data_dir> --port_file=...
  // --allow_insecure_targets <flags...>` with its output appended to
  // `log_path`, and waits (up to `timeout`) until it has written its port.
  // The child is killed if the benchmark dies.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& binary, const std::string& data_dir,
      const std::string& log_path, const std::vector<std::string>& flags,
      absl::Duration timeout);
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  // Kills the process (SIGKILL) if it still runs.
  ~ServerProcess();

  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  std::string address() const;
  // NowNanos() at fork and when the port file appeared.
  int64_t spawn_ns() const { return spawn_ns_; }
  int64_t serving_ns() const { return serving_ns_; }

  // SIGTERM, then SIGKILL after `timeout`. Returns the wait status.
  int Stop(absl::Duration timeout);

 private:
  ServerProcess() = default;
  // Waits up to `timeout` for the exit; the wait status, or -1.
  int Wait(absl::Duration timeout);

  pid_t pid_ = -1;
  int port_ = 0;
  int64_t spawn_ns_ = 0;
  int64_t serving_ns_ = 0;
};

}  // namespace webhookd::bench

#endif  // WEBHOOKD_BENCH_SERVER_PROCESS_H_
