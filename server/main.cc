// webhookd: the webhook delivery server. Parses flags, starts the server and
// shuts it down gracefully on SIGINT or SIGTERM.

#include <signal.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/logging.h"
#include "server/retry_policy.h"
#include "server/webhook_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "Address to serve gRPC on, host:port (port 0 picks a free one).");
ABSL_FLAG(std::string, data_dir, "./data",
          "Directory of the LevelDB database (created if missing). One "
          "process per directory.");
ABSL_FLAG(bool, allow_insecure_targets, false,
          "Allow http:// endpoint URLs and loopback/private hosts (local "
          "development and tests only).");
ABSL_FLAG(std::string, retry_schedule, "5s,15s,60s",
          "Delays before each retry after a failed attempt, comma-separated "
          "(e.g. 50ms,150ms,600ms for tests). Attempts = retries + 1.");
ABSL_FLAG(absl::Duration, attempt_timeout, absl::Seconds(30),
          "Time limit of one delivery attempt.");
ABSL_FLAG(int, http_workers, 2,
          "HTTP worker threads, each driving one curl multi handle.");
ABSL_FLAG(int, max_in_flight, 4096, "Delivery attempts running at once.");
ABSL_FLAG(int64_t, max_payload_bytes, 256 * 1024,
          "Largest event payload accepted, in bytes.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGINT/SIGTERM, how long attempts in flight may finish.");
ABSL_FLAG(std::string, port_file, "",
          "If set, write the port the server listens on to this file once "
          "it serves (useful with --listen=127.0.0.1:0).");

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "webhookd: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "server/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  usage.version_string = [] {
    return absl::StrCat("webhookd ", webhookd::kVersion, "\n");
  };
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "webhookd: durable, signed webhook delivery over a gRPC API.\n"
      "Usage: webhookd [--listen=127.0.0.1:50051] [--data_dir=./data] ...");
  absl::ParseCommandLine(argc, argv);

  webhookd::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.target_policy.allow_insecure_targets =
      absl::GetFlag(FLAGS_allow_insecure_targets);
  absl::StatusOr<webhookd::RetryPolicy> policy =
      webhookd::RetryPolicy::Parse(absl::GetFlag(FLAGS_retry_schedule));
  if (!policy.ok()) return Fail(std::string(policy.status().message()));
  options.engine.retry_policy = *policy;
  options.engine.attempt_timeout = absl::GetFlag(FLAGS_attempt_timeout);
  if (options.engine.attempt_timeout <= absl::ZeroDuration()) {
    return Fail("--attempt_timeout must be positive");
  }
  options.engine.max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  options.engine.max_payload_bytes = absl::GetFlag(FLAGS_max_payload_bytes);
  options.http_workers = absl::GetFlag(FLAGS_http_workers);
  if (options.http_workers < 1 || options.engine.max_in_flight < 1) {
    return Fail("--http_workers and --max_in_flight must be at least 1");
  }

  // Signals are taken synchronously by this thread; block them before any
  // other thread starts so none of those receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<webhookd::WebhookServer>> server =
      webhookd::WebhookServer::Start(options);
  if (!server.ok()) return Fail(server.status().ToString());
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    std::ofstream(port_file) << (*server)->port() << "\n";
  }
  webhookd::Log(webhookd::LogLevel::kInfo,
                absl::StrCat("webhookd ", webhookd::kVersion, " serving on ",
                             options.listen, " (port ", (*server)->port(),
                             "), data in ", options.data_dir));
  if (options.target_policy.allow_insecure_targets) {
    webhookd::Log(webhookd::LogLevel::kWarning,
                  "--allow_insecure_targets: http:// and private addresses "
                  "are allowed; do not use in production");
  }

  int received = 0;
  sigwait(&signals, &received);
  webhookd::Log(
      webhookd::LogLevel::kInfo,
      absl::StrCat("received ", strsignal(received), ", shutting down"));
  (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace));
  webhookd::Log(webhookd::LogLevel::kInfo, "stopped");
  return 0;
}
