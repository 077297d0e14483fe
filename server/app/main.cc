// webhookd: the webhook delivery server. Parses flags, starts the server and
// shuts it down gracefully on SIGINT or SIGTERM.

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/app/effective_config.h"
#include "server/app/webhook_server.h"
#include "server/common/command_line.h"
#include "server/common/logging.h"
#include "server/delivery/retry_policy.h"
#include "server/security/address_policy.h"
#include "storage/leveldb/repair.h"
#include "storage/postgres/pg.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "Address to serve gRPC on, host:port (port 0 picks a free one).");
ABSL_FLAG(std::string, data_dir, "./data",
          "Directory of the LevelDB database (created if missing). One "
          "process per directory.");
ABSL_FLAG(std::string, postgres, "",
          "libpq connection string (\"host=... dbname=...\" or "
          "postgresql://...) of a PostgreSQL database to keep everything in, "
          "instead of LevelDB under --data_dir. The schema is created or "
          "upgraded at start. Keep the password out of it (PGPASSWORD or "
          "~/.pgpass).");
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
ABSL_FLAG(int, max_in_flight_per_endpoint, 32,
          "Delivery attempts to one endpoint running at once; its other due "
          "deliveries wait, so that hanging endpoints cannot take every "
          "slot. 0: no limit.");
ABSL_FLAG(int64_t, max_payload_bytes, 256 * 1024,
          "Largest event payload accepted, in bytes.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGINT/SIGTERM, how long attempts in flight may finish.");
ABSL_FLAG(std::string, port_file, "",
          "If set, write the port the server listens on to this file once "
          "it serves (useful with --listen=127.0.0.1:0).");
ABSL_FLAG(std::string, metrics_listen, "",
          "Address to serve Prometheus metrics on, at /metrics, host:port "
          "(e.g. 127.0.0.1:9464; port 0 picks a free one). Empty: no "
          "metrics.");
ABSL_FLAG(std::string, metrics_port_file, "",
          "If set, write the port metrics are served on to this file once "
          "the server serves (useful with --metrics_listen=127.0.0.1:0).");
ABSL_FLAG(std::string, http_listen, "",
          "Address to serve the HTTP/JSON API on, host:port (e.g. "
          "127.0.0.1:8081; port 0 picks a free one): every RPC at its REST "
          "route, with the same API keys, over TLS with --tls_cert. Empty: "
          "no HTTP/JSON API.");
ABSL_FLAG(std::string, http_port_file, "",
          "If set, write the port the HTTP/JSON API is served on to this "
          "file once the server serves (useful with "
          "--http_listen=127.0.0.1:0).");
ABSL_FLAG(std::vector<std::string>, allow_cidr, {},
          "Also deliver to addresses in this CIDR range (e.g. 10.1.0.0/16) "
          "that are otherwise blocked as non-public. Repeatable, or "
          "comma-separated.");
ABSL_FLAG(std::string, api_keys_file, "",
          "File of \"<key> <user_id>\" lines. When set, every WebhookService "
          "call needs \"authorization: Bearer <key>\" metadata and acts as "
          "the key's user. Without it, only loopback --listen addresses are "
          "allowed.");
ABSL_FLAG(std::string, secrets_key_file, "",
          "File holding the base64 of 32 random bytes (openssl rand -base64 "
          "32): endpoint secrets and sensitive header values are stored "
          "encrypted (AES-256-GCM) under it. Every node of a cluster needs "
          "the same. Without it they are stored in clear.");
ABSL_FLAG(std::vector<std::string>, secrets_old_key_files, {},
          "Key files of earlier --secrets_key_file keys: values sealed under "
          "them are still read (new writes use --secrets_key_file). "
          "Repeatable, or comma-separated.");
ABSL_FLAG(bool, reencrypt_secrets, false,
          "Rewrite every endpoint whose secrets are not encrypted under "
          "--secrets_key_file (in clear, or under an old key), then exit. "
          "Stop webhookd first (every node, on PostgreSQL).");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: serve gRPC over TLS (with --tls_key).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA certificates: require client certificates they signed "
          "(mutual TLS).");
ABSL_FLAG(int64_t, max_queued_deliveries, 10'000'000,
          "Deliveries waiting (queued, held or in flight) past which "
          "SubmitEvent answers RESOURCE_EXHAUSTED and stores nothing.");
ABSL_FLAG(absl::Duration, log_retention, absl::Hours(24 * 30),
          "Finished delivery records older than this are removed in the "
          "background, with their events; 0 keeps them forever. Endpoint "
          "stats stay cumulative.");
ABSL_FLAG(bool, repair, false,
          "Repair the LevelDB database in --data_dir (webhookd must not be "
          "running on it), report what could not be kept, and exit.");
ABSL_FLAG(int, grpc_max_concurrent_streams, 100,
          "Concurrent gRPC calls on one client connection; more wait.");
ABSL_FLAG(int, grpc_memory_limit_mb, 512,
          "Memory gRPC may use for calls and buffers (resource quota), MiB.");
ABSL_FLAG(std::string, log_level, "info",
          "Least severe log entries written: debug (adds one line per "
          "finished attempt), info, warning or error.");
ABSL_FLAG(bool, access_log, false,
          "Log an info line per finished gRPC call: method, peer, user, "
          "status code, duration.");
ABSL_FLAG(std::string, log_format, "text",
          "Log lines as text (\"<time> <level letter> message key=value\") "
          "or json (one JSON object per line).");
ABSL_FLAG(absl::Duration, auto_disable_after, absl::Hours(120),
          "Disable an endpoint once its deliveries have all failed for this "
          "long (and at least --auto_disable_min_failures of them); its "
          "queued deliveries are held. 0: never (410 aside).");
ABSL_FLAG(int64_t, auto_disable_min_failures, 10,
          "Deliveries in a row that must have failed before "
          "--auto_disable_after disables their endpoint.");
ABSL_FLAG(bool, disable_on_410, true,
          "Disable an endpoint at once when an attempt is answered 410 "
          "Gone.");
ABSL_FLAG(absl::Duration, admission_max_lag, absl::Seconds(1),
          "Admission control: when a due delivery has waited this long "
          "without an attempt (delivery is behind ingest), new SubmitEvent "
          "calls wait for it to catch up. Held deliveries of disabled "
          "endpoints do not count. 0 turns admission control off.");
ABSL_FLAG(absl::Duration, admission_max_wait, absl::Seconds(2),
          "Admission control: how long a SubmitEvent waits for delivery to "
          "catch up before it is refused with RESOURCE_EXHAUSTED (nothing "
          "stored) and a grpc-retry-pushback-ms hint.");
ABSL_FLAG(bool, trace_new_events, false,
          "Give each event submitted without a valid W3C traceparent a new "
          "trace id, sent with its deliveries' attempts like a received "
          "one.");

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "webhookd: %s\n", message.c_str());
  return 1;
}

// webhookd --repair: runs LevelDB's repair on --data_dir and reports.
int Repair(const std::string& data_dir) {
  std::printf("webhookd: repairing the database in %s\n", data_dir.c_str());
  // The store decides nothing about deliveries: the repair applies the
  // domain's rules.
  webhookd::RepairRules rules;
  rules.next_due = webhookd::NextAttemptDue;
  rules.end = webhookd::EndedDelivery;
  absl::StatusOr<webhookd::RepairReport> report =
      webhookd::RepairLevelDbStore(data_dir, rules);
  if (!report.ok()) {
    std::fflush(stdout);
    return Fail(absl::StrCat("repair failed: ", report.status().ToString()));
  }
  std::printf("%s", report->ToString().c_str());
  std::printf("webhookd: repair done; start webhookd as usual.\n");
  return 0;
}

// Every value given to a list flag, in "--name=a,b" or "--name a" form:
// absl keeps only the last occurrence of a flag, this makes it repeatable.
std::vector<std::string> RepeatedFlag(int argc, char** argv,
                                      absl::string_view name) {
  std::vector<std::string> values;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (!absl::ConsumePrefix(&arg, "--")) {
      if (!absl::ConsumePrefix(&arg, "-")) continue;
    }
    if (!absl::ConsumePrefix(&arg, name)) continue;
    absl::string_view value;
    if (absl::ConsumePrefix(&arg, "=")) {
      value = arg;
    } else if (arg.empty() && i + 1 < argc) {
      value = argv[++i];
    } else {
      continue;
    }
    for (absl::string_view part : absl::StrSplit(value, ',')) {
      if (!part.empty()) values.emplace_back(part);
    }
  }
  return values;
}

// Writes `port` to `path` atomically (rename).
void WritePortFile(const std::string& path, int port) {
  const std::string temp = path + ".tmp";
  std::ofstream(temp) << port << "\n";
  std::rename(temp.c_str(), path.c_str());
}

// Raises the soft limit of open files to the hard limit: every attempt in
// flight holds a socket, and the usual soft limit (1024) is below the
// default --max_in_flight. Warns when even the hard limit is too low.
void RaiseOpenFileLimit(int max_in_flight) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  // Sockets of the attempts, plus LevelDB's files and gRPC's connections.
  const rlim_t wanted = static_cast<rlim_t>(max_in_flight) + 1024;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted) {
    webhookd::Log(
        webhookd::LogLevel::kWarning,
        absl::StrCat("open file limit ", limit.rlim_cur, " is below ", wanted,
                     " (--max_in_flight + 1024): attempts may fail with "
                     "\"too many open files\"; raise it (ulimit -n)"));
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil is built without NDEBUG, so every Mutex::Lock would also
  // update a global lock-order graph (about 1.3% of the CPU under load).
  // The tests keep the check on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  webhookd::ParseCommandLineOrExit(
      argc, argv, "webhookd", "server/app/main.cc", webhookd::kVersion,
      "durable, signed webhook delivery over a gRPC API.\n"
      "Usage: webhookd [--listen=127.0.0.1:50051] [--data_dir=./data] ...\n"
      "       webhookd --flagfile=webhookd.flags  (one --flag=value a line)");
  absl::StatusOr<webhookd::LogLevel> log_level =
      webhookd::ParseLogLevel(absl::GetFlag(FLAGS_log_level));
  if (!log_level.ok()) return Fail(std::string(log_level.status().message()));
  absl::StatusOr<webhookd::LogFormat> log_format =
      webhookd::ParseLogFormat(absl::GetFlag(FLAGS_log_format));
  if (!log_format.ok()) {
    return Fail(std::string(log_format.status().message()));
  }
  webhookd::SetLogLevel(*log_level);
  webhookd::SetLogFormat(*log_format);
  // Parsed by absl above (which validates the syntax); read again for every
  // occurrence.
  const std::vector<std::string> allow_cidrs =
      RepeatedFlag(argc, argv, "allow_cidr");
  // The database, port file and logs hold secrets or point at them: files
  // webhookd creates are its user's alone (0600, directories 0700).
  umask(077);

  if (absl::GetFlag(FLAGS_repair)) {
    if (!absl::GetFlag(FLAGS_postgres).empty()) {
      return Fail(
          "--repair repairs the LevelDB database of --data_dir; it does not "
          "apply to --postgres");
    }
    return Repair(absl::GetFlag(FLAGS_data_dir));
  }

  webhookd::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.postgres = absl::GetFlag(FLAGS_postgres);
  options.secrets_key_file = absl::GetFlag(FLAGS_secrets_key_file);
  options.secrets_old_key_files =
      RepeatedFlag(argc, argv, "secrets_old_key_files");
  if (absl::GetFlag(FLAGS_reencrypt_secrets)) {
    absl::StatusOr<size_t> rewritten = webhookd::ReencryptSecrets(options);
    if (!rewritten.ok()) {
      return Fail(
          absl::StrCat("--reencrypt_secrets: ", rewritten.status().ToString()));
    }
    std::printf(
        "webhookd: re-encrypted the secrets of %zu endpoint(s) under the "
        "key of %s\n",
        *rewritten, options.secrets_key_file.c_str());
    return 0;
  }
  std::string data_description = options.data_dir;
  if (!options.postgres.empty()) {
    absl::StatusOr<std::string> described =
        webhookd::pg::DescribeConninfo(options.postgres);
    if (!described.ok()) {
      return Fail(absl::StrCat("--postgres: ", described.status().message()));
    }
    data_description = absl::StrCat("PostgreSQL (", *described, ")");
  }
  options.target_policy.allow_insecure_targets =
      absl::GetFlag(FLAGS_allow_insecure_targets);
  absl::StatusOr<webhookd::AddressPolicy> addresses =
      webhookd::AddressPolicy::FromCidrs(allow_cidrs);
  if (!addresses.ok()) {
    return Fail(absl::StrCat("--allow_cidr: ", addresses.status().message()));
  }
  options.target_policy.addresses = *std::move(addresses);
  options.api_keys_file = absl::GetFlag(FLAGS_api_keys_file);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  absl::StatusOr<webhookd::RetryPolicy> policy =
      webhookd::RetryPolicy::Parse(absl::GetFlag(FLAGS_retry_schedule));
  if (!policy.ok()) return Fail(std::string(policy.status().message()));
  options.engine.retry_policy = *policy;
  options.engine.attempt_timeout = absl::GetFlag(FLAGS_attempt_timeout);
  if (options.engine.attempt_timeout <= absl::ZeroDuration()) {
    return Fail("--attempt_timeout must be positive");
  }
  options.engine.limits.max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  RaiseOpenFileLimit(absl::GetFlag(FLAGS_max_in_flight));
  options.engine.max_payload_bytes = absl::GetFlag(FLAGS_max_payload_bytes);
  options.http_workers = absl::GetFlag(FLAGS_http_workers);
  if (options.http_workers < 1 || options.engine.limits.max_in_flight < 1) {
    return Fail("--http_workers and --max_in_flight must be at least 1");
  }
  if (absl::GetFlag(FLAGS_max_in_flight_per_endpoint) < 0) {
    return Fail("--max_in_flight_per_endpoint must be 0 (no limit) or more");
  }
  options.engine.limits.max_in_flight_per_endpoint =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_in_flight_per_endpoint));
  if (absl::GetFlag(FLAGS_max_queued_deliveries) < 1) {
    return Fail("--max_queued_deliveries must be at least 1");
  }
  options.engine.limits.max_queued_deliveries =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_queued_deliveries));
  options.log_retention.retention = absl::GetFlag(FLAGS_log_retention);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  const std::string metrics_port_file = absl::GetFlag(FLAGS_metrics_port_file);
  if (!metrics_port_file.empty() && options.metrics_listen.empty()) {
    return Fail("--metrics_port_file needs --metrics_listen");
  }
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  const std::string http_port_file = absl::GetFlag(FLAGS_http_port_file);
  if (!http_port_file.empty() && options.http_listen.empty()) {
    return Fail("--http_port_file needs --http_listen");
  }
  options.grpc_max_concurrent_streams =
      absl::GetFlag(FLAGS_grpc_max_concurrent_streams);
  if (options.grpc_max_concurrent_streams < 1 ||
      absl::GetFlag(FLAGS_grpc_memory_limit_mb) < 1) {
    return Fail(
        "--grpc_max_concurrent_streams and --grpc_memory_limit_mb must be at "
        "least 1");
  }
  options.grpc_memory_limit_bytes =
      static_cast<size_t>(absl::GetFlag(FLAGS_grpc_memory_limit_mb)) << 20;
  options.engine.trace_new_events = absl::GetFlag(FLAGS_trace_new_events);
  options.engine.admission.max_lag = absl::GetFlag(FLAGS_admission_max_lag);
  options.engine.admission.max_wait = absl::GetFlag(FLAGS_admission_max_wait);
  if (options.engine.admission.max_lag < absl::ZeroDuration() ||
      options.engine.admission.max_wait < absl::ZeroDuration()) {
    return Fail(
        "--admission_max_lag and --admission_max_wait must be 0 or "
        "more");
  }
  options.access_log = absl::GetFlag(FLAGS_access_log);
  options.engine.auto_disable.after = absl::GetFlag(FLAGS_auto_disable_after);
  options.engine.auto_disable.min_failures =
      absl::GetFlag(FLAGS_auto_disable_min_failures);
  options.engine.auto_disable.disable_on_410 =
      absl::GetFlag(FLAGS_disable_on_410);
  if (options.engine.auto_disable.after < absl::ZeroDuration() ||
      options.engine.auto_disable.min_failures < 1) {
    return Fail(
        "--auto_disable_after must be 0 (off) or more and "
        "--auto_disable_min_failures at least 1");
  }
  // The flags' file as --help names it (ParseCommandLineOrExit).
  webhookd::LogEffectiveConfiguration(
      "webhookd", {{"allow_cidr", absl::StrJoin(allow_cidrs, ",")}},
      options.engine.retry_policy, options.engine.attempt_timeout);

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
  if (server.ok() && options.api_keys_file.empty()) {
    webhookd::Log(webhookd::LogLevel::kWarning,
                  "no --api_keys_file: the API is unauthenticated and open to "
                  "anyone who can reach it on this machine");
  }
  if (absl::IsDataLoss(server.status()) && options.postgres.empty()) {
    return Fail(absl::StrCat(
        server.status().ToString(),
        "\nwebhookd: the database is damaged. Stop here, back up the data "
        "directory, then run webhookd --repair --data_dir=",
        options.data_dir, " to keep what can still be read."));
  }
  if (!server.ok()) return Fail(server.status().ToString());
  webhookd::Log(webhookd::LogLevel::kInfo,
                absl::StrCat("webhookd ", webhookd::kVersion, " serving on ",
                             options.listen, " (port ", (*server)->port(),
                             "), data in ", data_description));
  if (options.target_policy.allow_insecure_targets) {
    webhookd::Log(webhookd::LogLevel::kWarning,
                  "--allow_insecure_targets: http:// and private addresses "
                  "are allowed; do not use in production");
  } else if (!allow_cidrs.empty()) {
    webhookd::Log(webhookd::LogLevel::kInfo,
                  absl::StrCat("deliveries may also go to ",
                               absl::StrJoin(allow_cidrs, ", ")));
  }
  webhookd::Log(
      options.secrets_key_file.empty() ? webhookd::LogLevel::kWarning
                                       : webhookd::LogLevel::kInfo,
      options.secrets_key_file.empty()
          ? std::string("no --secrets_key_file: endpoint secrets and "
                        "sensitive header values are stored in clear")
          : absl::StrCat("endpoint secrets are stored encrypted under key "
                         "id ",
                         (*server)->secrets_key_id(), " (",
                         options.secrets_key_file, ")"));
  webhookd::Log(
      webhookd::LogLevel::kInfo,
      absl::StrCat(
          "gRPC ",
          options.tls_cert_file.empty()
              ? "without TLS"
              : (options.tls_client_ca_file.empty() ? "over TLS"
                                                    : "over mutual TLS"),
          options.api_keys_file.empty() ? ", unauthenticated"
                                        : ", API keys required"));

  if (!options.metrics_listen.empty()) {
    webhookd::Log(webhookd::LogLevel::kInfo,
                  absl::StrCat("metrics on ", options.metrics_listen, " (port ",
                               (*server)->metrics_port(), "), path /metrics"));
  }

  if (!options.http_listen.empty()) {
    webhookd::Log(
        webhookd::LogLevel::kInfo,
        absl::StrCat("HTTP/JSON API on ", options.http_listen, " (port ",
                     (*server)->http_port(), "), ",
                     options.tls_cert_file.empty() ? "http" : "https",
                     options.api_keys_file.empty() ? ", unauthenticated"
                                                   : ", API keys required"));
  }

  // Written last, and atomically (rename), so that whoever waits for them
  // sees a serving server with its start-up lines logged.
  if (!http_port_file.empty()) {
    WritePortFile(http_port_file, (*server)->http_port());
  }
  if (!metrics_port_file.empty()) {
    WritePortFile(metrics_port_file, (*server)->metrics_port());
  }
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) WritePortFile(port_file, (*server)->port());

  int received = 0;
  sigwait(&signals, &received);
  webhookd::Log(
      webhookd::LogLevel::kInfo,
      absl::StrCat("received ", strsignal(received), ", shutting down"));
  (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace));
  webhookd::Log(webhookd::LogLevel::kInfo, "stopped");
  return 0;
}
