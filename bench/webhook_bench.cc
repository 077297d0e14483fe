// webhook-bench: the benchmark of issue 6 (see BENCHMARKS.md).
//
// An open-loop load generator (asynchronous SubmitEvent calls at a fixed
// rate, timed from their scheduled start) and an in-process HTTP sink
// (libmicrohttpd on 127.0.0.1), against a webhookd child process on a temp
// data directory (or a running one, --target). Every run ends with a ledger
// that must balance; the exit code is 1 when one does not.
//
//   webhook-bench --scenario=fanout1 [--rate=N] [--duration=35s] [--runs=3]
//
// Scenarios: fanout1, fanout10, endpoints10k, latency, hanging, backlog,
// fanout_big, soak. With --postgres --nodes=N, N webhookd nodes share one
// database and the submits rotate over them.

#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "bench/calibration.h"
#include "bench/http_sink.h"
#include "bench/ledger.h"
#include "bench/load_generator.h"
#include "bench/proc_stats.h"
#include "nlohmann/json.hpp"
#include "server/common/command_line.h"
#include "server/common/version.h"
#include "tests/support/postgres_server.h"
#include "tests/support/webhookd_process.h"
#include "webhook/v1/webhook_service.grpc.pb.h"

#ifndef WEBHOOKD_DEFAULT_BINARY
#define WEBHOOKD_DEFAULT_BINARY "server/webhookd"
#endif

ABSL_FLAG(std::string, scenario, "fanout1",
          "fanout1 | fanout10 | endpoints10k | latency | hanging | backlog | "
          "fanout_big (see BENCHMARKS.md).");
ABSL_FLAG(std::string, webhookd, WEBHOOKD_DEFAULT_BINARY,
          "The webhookd binary to start (one process per run).");
ABSL_FLAG(std::string, target, "",
          "host:port of a running webhookd (started with "
          "--allow_insecure_targets) instead of starting one.");
ABSL_FLAG(int, server_pid, 0,
          "With --target: the server's pid, for CPU, RSS and disk figures.");
ABSL_FLAG(std::string, work_dir, "",
          "Where the temp directory (data dirs, logs) goes; default $TMPDIR "
          "or /tmp. Use a disk-backed filesystem: synced writes on tmpfs "
          "cost nothing.");
ABSL_FLAG(bool, keep_data, false, "Keep the temp directory afterwards.");
ABSL_FLAG(double, rate, 0, "Events per second (0: the scenario's default).");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "Length of the schedule, warm-up included (0: scenario default).");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(-1),
          "Start of the schedule left out of the figures (negative: the "
          "scenario default, at most a quarter of the duration).");
ABSL_FLAG(int64_t, events, 0,
          "At most this many events (0: rate x duration; fanout_big: 3).");
ABSL_FLAG(int, threads, 0, "Workbench threads (0: scenario default).");
ABSL_FLAG(int, endpoints_per_thread, 0,
          "Endpoints on each thread (0: scenario default).");
ABSL_FLAG(int, max_outstanding, 1000,
          "SubmitEvent calls open at once; later calls wait, timed from "
          "their scheduled start.");
ABSL_FLAG(int, batch, 1,
          "Events per call: 1 sends SubmitEvent calls; 2 to 1000 send "
          "SubmitEvents calls of that many events, each call when its last "
          "event is due (events are still timed from their own scheduled "
          "start; --max_outstanding then counts calls).");
ABSL_FLAG(int, channels, 2, "gRPC channels (HTTP/2 connections).");
ABSL_FLAG(absl::Duration, drain_timeout, absl::ZeroDuration(),
          "After the schedule, how long to wait for outstanding deliveries "
          "before closing the ledger (0: 30s; fanout_big: 120s per event).");
ABSL_FLAG(int, runs, 1, "Repetitions (fresh webhookd each); medians shown.");
ABSL_FLAG(bool, postgres, false,
          "Run webhookd on PostgreSQL (--postgres): the benchmark starts a "
          "private PostgreSQL server from Debian's packages on loopback (as "
          "the tests do) and gives each webhookd a new database; the figures "
          "add the database's CPU (postmaster and backends).");
ABSL_FLAG(int, nodes, 1,
          "With --postgres: webhookd nodes sharing the run's database. "
          "Submits rotate over the nodes, one channel each (--channels then "
          "applies to one node only); endpoints are created and the ledger "
          "read through the first node; CPU figures add up the nodes and "
          "show each. Not with backlog.");
ABSL_FLAG(bool, calibrate, true,
          "Measure the loopback ceiling with wrk after the runs "
          "(--no-calibrate to skip).");
ABSL_FLAG(absl::Duration, calibrate_duration, absl::Seconds(5),
          "wrk -d of the calibration.");
ABSL_FLAG(std::string, wrk, "wrk", "The wrk binary.");
ABSL_FLAG(int, wrk_threads, 1, "wrk -t of the calibration.");
ABSL_FLAG(int, wrk_connections, 64, "wrk -c of the calibration.");
ABSL_FLAG(int, sink_threads, 2, "HTTP sink threads (at least 2).");
ABSL_FLAG(int64_t, backlog, 1000000, "backlog: queued deliveries to build.");
ABSL_FLAG(int, backlog_in_flight, 16,
          "backlog: webhookd --max_in_flight while the backlog builds (the "
          "sink holds those attempts).");
ABSL_FLAG(double, hang_fraction, 0.1,
          "hanging: share of the endpoints that hang.");
ABSL_FLAG(absl::Duration, hang_time, absl::Seconds(60),
          "How long the sink holds a /hang request before answering 503 "
          "(longer than webhookd's --attempt_timeout).");
ABSL_FLAG(std::string, hang_host, "localhost",
          "Host name in the URLs of the hanging endpoints. The default, "
          "localhost (127.0.0.1 in /etc/hosts), makes them another origin "
          "than the healthy endpoints' 127.0.0.1, as separate receivers "
          "would be; 127.0.0.1 puts every endpoint on one origin (see "
          "BENCHMARKS.md).");
ABSL_FLAG(bool, json, false,
          "Print the figures as JSON on stdout (the report goes to stderr).");
ABSL_FLAG(int64_t, ledger_list_limit, 100000,
          "Up to this many unreceived deliveries, the ledger lists PENDING "
          "and RETRYING deliveries; above, it samples them with GetDelivery.");
ABSL_FLAG(int64_t, ledger_samples, 1000,
          "GetDelivery checks the ledger makes at most.");
ABSL_FLAG(int, setup_concurrency, 32, "CreateEndpoint calls open at once.");
ABSL_FLAG(absl::Duration, soak_sample_interval, absl::Seconds(10),
          "soak: time between two memory readings.");
ABSL_FLAG(int64_t, soak_jemalloc_interval, 128 << 20,
          "soak: webhookd's jemalloc prints its totals every this many bytes "
          "of allocation (0: never).");

namespace webhookd::bench {
namespace {

using Json = nlohmann::ordered_json;
using webhook::v1::WebhookService;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void Progress(const std::string& line) {
  std::fprintf(stderr, "webhook-bench: %s\n", line.c_str());
  std::fflush(stderr);
}

// The report: stdout, or stderr when stdout carries JSON.
FILE* ReportStream() { return absl::GetFlag(FLAGS_json) ? stderr : stdout; }

// Settings of one scenario after defaults and flags.
struct Settings {
  std::string scenario;
  int threads = 100;
  int endpoints_per_thread = 1;
  double rate = 1000;
  absl::Duration duration = absl::Seconds(35);
  absl::Duration warmup = absl::Seconds(5);
  int64_t events = 0;
  absl::Duration drain_timeout = absl::Seconds(30);
  int nodes = 1;  // webhookd processes on one database.
  std::vector<std::string> server_flags;
  std::string work_dir;  // The temp directory of this invocation.
};

absl::StatusOr<Settings> ResolveSettings(
    std::vector<std::string> server_flags) {
  Settings s;
  s.scenario = absl::GetFlag(FLAGS_scenario);
  s.server_flags = std::move(server_flags);
  if (s.scenario == "fanout1") {
    s.threads = 100;
    s.endpoints_per_thread = 1;
    s.rate = 10000;
  } else if (s.scenario == "fanout10") {
    s.threads = 100;
    s.endpoints_per_thread = 10;
    s.rate = 2000;
  } else if (s.scenario == "endpoints10k") {
    s.threads = 10000;
    s.endpoints_per_thread = 1;
    s.rate = 5000;
  } else if (s.scenario == "latency") {
    s.threads = 100;
    s.endpoints_per_thread = 1;
    s.rate = 1000;
  } else if (s.scenario == "hanging") {
    s.threads = 1000;
    s.endpoints_per_thread = 1;
    s.rate = 10000;
  } else if (s.scenario == "backlog") {
    s.threads = 10;
    s.endpoints_per_thread = 100;
    s.rate = 5000;
    s.duration = absl::Seconds(900);
  } else if (s.scenario == "fanout_big") {
    s.threads = 1;
    s.endpoints_per_thread = 10000;
    s.events = 3;
    s.drain_timeout = absl::Seconds(120);
  } else if (s.scenario == "soak") {
    // Memory over a long run: fan-out 3, a fifth of the answers 500 (the
    // sink's /flaky endpoints), RSS sampled every 10 s.
    s.threads = 100;
    s.endpoints_per_thread = 3;
    s.rate = 200;
    s.duration = absl::Minutes(21);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown --scenario=", s.scenario));
  }
  if (absl::GetFlag(FLAGS_threads) > 0)
    s.threads = absl::GetFlag(FLAGS_threads);
  if (absl::GetFlag(FLAGS_endpoints_per_thread) > 0) {
    s.endpoints_per_thread = absl::GetFlag(FLAGS_endpoints_per_thread);
  }
  if (absl::GetFlag(FLAGS_rate) > 0) s.rate = absl::GetFlag(FLAGS_rate);
  if (absl::GetFlag(FLAGS_duration) > absl::ZeroDuration()) {
    s.duration = absl::GetFlag(FLAGS_duration);
  }
  s.warmup = absl::GetFlag(FLAGS_warmup);
  if (s.warmup < absl::ZeroDuration()) {
    // The soak's first minute fills caches and LevelDB's first tables.
    s.warmup =
        std::min(s.scenario == "soak" ? absl::Minutes(1) : absl::Seconds(5),
                 s.duration / 4);
  }
  if (s.warmup >= s.duration) {
    return absl::InvalidArgumentError("--warmup must be below --duration");
  }
  if (absl::GetFlag(FLAGS_batch) < 1 || absl::GetFlag(FLAGS_batch) > 1000) {
    return absl::InvalidArgumentError("--batch must be 1 to 1000");
  }
  if (absl::GetFlag(FLAGS_events) > 0) s.events = absl::GetFlag(FLAGS_events);
  if (absl::GetFlag(FLAGS_drain_timeout) > absl::ZeroDuration()) {
    s.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  }
  s.nodes = absl::GetFlag(FLAGS_nodes);
  if (s.nodes < 1) {
    return absl::InvalidArgumentError("--nodes must be at least 1");
  }
  if (s.nodes != 1 && !absl::GetFlag(FLAGS_postgres)) {
    return absl::InvalidArgumentError(
        "--nodes needs --postgres: only nodes on one PostgreSQL database "
        "share the work");
  }
  if (s.nodes > 1 && s.scenario == "backlog") {
    return absl::InvalidArgumentError(
        "backlog restarts one webhookd: it cannot use --nodes");
  }
  if (s.scenario == "backlog") {
    if (!absl::GetFlag(FLAGS_target).empty()) {
      return absl::InvalidArgumentError(
          "backlog restarts webhookd: it cannot use --target");
    }
    if (s.events == 0) {
      // Each event queues one delivery per endpoint of its thread.
      s.events = (absl::GetFlag(FLAGS_backlog) + s.endpoints_per_thread - 1) /
                 s.endpoints_per_thread;
    }
  }
  return s;
}

// ---------------------------------------------------------------------------
// Figures.

struct Figure {
  std::string key;
  std::string label;
  double value = kNaN;
  std::string unit;
};

// The allocator's totals, from the "Allocated: ..." line jemalloc prints
// every --soak_jemalloc_interval bytes of allocation (MALLOC_CONF
// stats_interval), bytes.
struct JemallocStats {
  int64_t allocated = 0;  // In live objects.
  int64_t active = 0;     // In pages holding them.
  int64_t metadata = 0;
  int64_t resident = 0;  // Physically resident, metadata and caches included.
  int64_t retained = 0;  // Kept mapped for reuse, not resident.
};

// One memory reading of the soak.
struct MemoryPoint {
  double t_s = 0;  // Since the schedule's start.
  ProcessSample process;
  std::optional<JemallocStats> jemalloc;  // The latest line by then.
};

struct PhaseResult {
  std::string label;
  std::vector<Figure> figures;
  std::vector<MemoryPoint> memory;  // soak only.
  Ledger ledger;
  bool ledger_closed = false;
  std::string load_before;
  std::string load_after;
  std::vector<std::string> notes;
};

struct RunResult {
  std::vector<PhaseResult> phases;
  std::vector<Figure> summary;  // Figures across phases (ratios).
};

void Add(std::vector<Figure>& figures, const std::string& key,
         const std::string& label, double value, const std::string& unit) {
  Figure figure;
  figure.key = key;
  figure.label = label;
  figure.value = value;
  figure.unit = unit;
  figures.push_back(std::move(figure));
}

double Find(const std::vector<Figure>& figures, const std::string& key) {
  for (const Figure& figure : figures) {
    if (figure.key == key) return figure.value;
  }
  return kNaN;
}

std::string FormatValue(double value, const std::string& unit) {
  if (std::isnan(value)) return "n/a";
  if (std::isinf(value)) return "> cut-off (some not sent/delivered)";
  if (value == std::floor(value) && std::fabs(value) < 1e15 && unit != "ms" &&
      unit != "s") {
    return absl::StrCat(static_cast<int64_t>(value), unit.empty() ? "" : " ",
                        unit);
  }
  const int precision = std::fabs(value) >= 1000  ? 0
                        : std::fabs(value) >= 10  ? 1
                        : std::fabs(value) >= 0.1 ? 2
                                                  : 4;
  return absl::StrCat(absl::StrFormat("%.*f", precision, value),
                      unit.empty() ? "" : " ", unit);
}

Json FigureJson(double value) {
  if (std::isnan(value)) return nullptr;
  if (std::isinf(value)) return "not delivered by cut-off";
  return value;
}

double Median(std::vector<double> values) {
  std::vector<double> kept;
  for (double value : values) {
    if (!std::isnan(value)) kept.push_back(value);
  }
  if (kept.empty()) return kNaN;
  std::sort(kept.begin(), kept.end());
  const size_t n = kept.size();
  if (n % 2 == 1) return kept[n / 2];
  if (std::isinf(kept[n / 2])) return kept[n / 2];
  return (kept[n / 2 - 1] + kept[n / 2]) / 2;
}

// Nearest-rank quantile of `sorted` plus `missing` values beyond the
// cut-off (+inf): a delivery that never came counts as the slowest.
double Quantile(const std::vector<int64_t>& sorted, int64_t missing, double q) {
  const int64_t total = static_cast<int64_t>(sorted.size()) + missing;
  if (total == 0) return kNaN;
  int64_t rank = static_cast<int64_t>(std::ceil(q * total)) - 1;
  rank = std::clamp<int64_t>(rank, 0, total - 1);
  if (rank >= static_cast<int64_t>(sorted.size())) return kInf;
  return static_cast<double>(sorted[rank]) / 1e6;
}

void AddLatencies(std::vector<Figure>& figures, const std::string& key,
                  const std::string& label, std::vector<int64_t> values,
                  int64_t missing) {
  std::sort(values.begin(), values.end());
  Add(figures, key + "_p50_ms", label + " p50", Quantile(values, missing, 0.5),
      "ms");
  Add(figures, key + "_p99_ms", label + " p99", Quantile(values, missing, 0.99),
      "ms");
  Add(figures, key + "_p999_ms", label + " p99.9",
      Quantile(values, missing, 0.999), "ms");
  Add(figures, key + "_max_ms", label + " max", Quantile(values, missing, 1.0),
      "ms");
}

// ---------------------------------------------------------------------------
// The server under test.

// One webhookd process.
struct Node {
  std::unique_ptr<testing::WebhookdProcess> process;  // Null with --target.
  std::string address;
  pid_t pid = 0;  // 0: unknown.
  std::string data_dir;
};

// The webhookd under test: one node, or with --nodes several sharing one
// PostgreSQL database.
struct Server {
  std::vector<Node> nodes;
  pid_t database_pid = 0;  // The PostgreSQL postmaster; 0: none.
  // Submits rotate over these: --channels to a lone node, one per node
  // otherwise.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  // To the first node. The nodes share the database, so endpoints made and
  // deliveries read there hold for all.
  std::unique_ptr<WebhookService::Stub> stub;

  std::vector<pid_t> pids() const {
    std::vector<pid_t> pids;
    for (const Node& node : nodes) pids.push_back(node.pid);
    return pids;
  }
};

// The PostgreSQL server of --postgres, started by Main; null without it.
testing::PostgresServer* g_postgres = nullptr;

// `flags` plus, with --postgres, the database of the run `name` (created by
// the first call for that name; a restart or another node gets the same
// one).
absl::StatusOr<std::vector<std::string>> WithStorage(
    const std::string& name, std::vector<std::string> flags) {
  if (g_postgres == nullptr) return flags;
  std::string database = absl::AsciiStrToLower(name);
  for (char& c : database) {
    if (!absl::ascii_isalnum(c)) c = '_';
  }
  absl::StatusOr<std::string> conninfo = g_postgres->CreateDatabase(database);
  if (absl::IsAlreadyExists(conninfo.status())) {
    conninfo = g_postgres->ConnectionString(database);
  }
  if (!conninfo.ok()) return conninfo.status();
  flags.push_back("--postgres=" + *conninfo);
  return flags;
}

// The postmaster's pid: the first line of postmaster.pid; 0 if unknown.
pid_t PostmasterPid() {
  if (g_postgres == nullptr) return 0;
  std::ifstream in(g_postgres->dir() + "/data/postmaster.pid");
  std::string line;
  pid_t pid = 0;
  if (std::getline(in, line) && absl::SimpleAtoi(line, &pid)) return pid;
  return 0;
}

// The name of node `node` of run `name`: its log is <work_dir>/<that>.log,
// its data dir <work_dir>/<that>-data. A lone node goes by the run's name.
std::string NodeName(const Settings& settings, const std::string& name,
                     int node) {
  return settings.nodes == 1 ? name : absl::StrCat(name, "-n", node + 1);
}

// Starts webhookd (--webhookd) as node `node` of run `name` (its database,
// with --postgres), over `data_dir`, and waits until it serves.
absl::StatusOr<std::unique_ptr<testing::WebhookdProcess>> SpawnWebhookd(
    const Settings& settings, const std::string& name, int node,
    const std::string& data_dir, const std::vector<std::string>& flags,
    absl::Duration timeout) {
  testing::WebhookdProcess::Options options;
  options.binary = absl::GetFlag(FLAGS_webhookd);
  options.data_dir = data_dir;
  options.log_path = absl::StrCat(settings.work_dir, "/",
                                  NodeName(settings, name, node), ".log");
  absl::StatusOr<std::vector<std::string>> with_storage =
      WithStorage(name, flags);
  if (!with_storage.ok()) return with_storage.status();
  options.flags = *std::move(with_storage);
  options.start_timeout = timeout;
  std::unique_ptr<testing::WebhookdProcess> process =
      testing::WebhookdProcess::Start(options);
  if (!process->status().ok()) return process->status();
  return process;
}

absl::StatusOr<Server> StartServer(const Settings& settings,
                                   const std::string& name,
                                   const std::vector<std::string>& flags) {
  Server server;
  if (!absl::GetFlag(FLAGS_target).empty()) {
    Node& node = server.nodes.emplace_back();
    node.address = absl::GetFlag(FLAGS_target);
    node.pid = absl::GetFlag(FLAGS_server_pid);
  } else {
    // One after another: the first applies the migrations, which the others
    // would wait for anyway.
    for (int i = 0; i < settings.nodes; ++i) {
      Node& node = server.nodes.emplace_back();
      node.data_dir = absl::StrCat(settings.work_dir, "/",
                                   NodeName(settings, name, i), "-data");
      absl::StatusOr<std::unique_ptr<testing::WebhookdProcess>> process =
          SpawnWebhookd(settings, name, i, node.data_dir, flags,
                        absl::Seconds(60));
      if (!process.ok()) return process.status();
      node.process = *std::move(process);
      node.address = node.process->address();
      node.pid = node.process->pid();
    }
    server.database_pid = PostmasterPid();
  }
  if (server.nodes.size() == 1) {
    server.channels =
        OpenChannels(server.nodes[0].address, absl::GetFlag(FLAGS_channels));
  } else {
    for (const Node& node : server.nodes) {
      server.channels.push_back(OpenChannels(node.address, 1).front());
    }
  }
  for (size_t i = 0; i < server.channels.size(); ++i) {
    if (!server.channels[i]->WaitForConnected(std::chrono::system_clock::now() +
                                              std::chrono::seconds(20))) {
      return absl::UnavailableError(absl::StrCat(
          "cannot connect to webhookd at ",
          server.nodes[std::min(i, server.nodes.size() - 1)].address));
    }
  }
  server.stub = WebhookService::NewStub(server.channels[0]);
  return server;
}

// Stops the nodes this benchmark started, all at once; records how long it
// took until the last one had exited.
void StopServer(Server& server, PhaseResult& result,
                const std::string& key = "server_stop_s") {
  bool any = false;
  for (Node& node : server.nodes) {
    if (node.process == nullptr) continue;
    node.process->Signal(SIGTERM);
    any = true;
  }
  if (!any) return;
  const int64_t begin = NowNanos();
  for (size_t i = 0; i < server.nodes.size(); ++i) {
    Node& node = server.nodes[i];
    if (node.process == nullptr) continue;
    const int status = node.process->Stop(absl::Seconds(30));
    if (status != 0) {
      result.notes.push_back(absl::StrCat(
          server.nodes.size() == 1 ? "webhookd"
                                   : absl::StrCat("webhookd node ", i + 1),
          " exit status ", status, " (see its log)"));
    }
    node.process.reset();
  }
  Add(result.figures, key,
      server.nodes.size() == 1 ? "server stop (SIGTERM to exit)"
                               : "server stop (SIGTERM to exit, all nodes)",
      (NowNanos() - begin) / 1e9, "s");
}

std::optional<ProcessSample> Sample(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  absl::StatusOr<ProcessSample> sample = SampleProcess(pid);
  if (!sample.ok()) return std::nullopt;
  return *sample;
}

// One reading of each of `pids`, in order; nullopt where it failed.
using Samples = std::vector<std::optional<ProcessSample>>;

Samples SampleAll(const std::vector<pid_t>& pids) {
  Samples samples;
  for (pid_t pid : pids) samples.push_back(Sample(pid));
  return samples;
}

// The nodes as one: the sums of their CPU time, RSS and disk writes, and
// the largest node's peak RSS. nullopt if a reading is missing.
std::optional<ProcessSample> Combined(const Samples& samples) {
  if (samples.empty()) return std::nullopt;
  ProcessSample total;
  total.write_bytes = 0;
  for (const std::optional<ProcessSample>& sample : samples) {
    if (!sample) return std::nullopt;
    total.cpu_seconds += sample->cpu_seconds;
    total.rss_bytes += sample->rss_bytes;
    total.rss_anon_bytes += sample->rss_anon_bytes;
    total.rss_file_bytes += sample->rss_file_bytes;
    total.peak_rss_bytes =
        std::max(total.peak_rss_bytes, sample->peak_rss_bytes);
    total.write_bytes = sample->write_bytes < 0 || total.write_bytes < 0
                            ? -1
                            : total.write_bytes + sample->write_bytes;
  }
  return total;
}

// ---------------------------------------------------------------------------
// Endpoints and requests.

// Whether thread `t` of a phase with `fraction` hanging threads hangs:
// spread evenly (with 0.1, threads 9, 19, 29, ...).
bool Hangs(int t, double fraction) {
  return std::floor((t + 1) * fraction) > std::floor(t * fraction);
}

struct Workload {
  std::vector<webhook::v1::SubmitEventRequest> requests;  // One per thread.
  std::vector<bool> hanging;                              // Per thread.
  int64_t endpoints = 0;
  double setup_seconds = 0;
};

absl::StatusOr<Workload> SetUpWorkload(const Settings& settings, Server& server,
                                       HttpSink& sink,
                                       const std::string& prefix,
                                       double hang_fraction) {
  Workload workload;
  std::vector<webhook::v1::Endpoint> endpoints;
  for (int t = 0; t < settings.threads; ++t) {
    const std::string thread = absl::StrCat(prefix, "-t", t);
    const bool hang = hang_fraction > 0 && Hangs(t, hang_fraction);
    workload.requests.push_back(ExampleEvent(thread));
    workload.hanging.push_back(hang);
    for (int e = 0; e < settings.endpoints_per_thread; ++e) {
      webhook::v1::Endpoint endpoint;
      endpoint.set_thread_id(thread);
      endpoint.set_user_id(42);
      endpoint.set_name(absl::StrCat("bench ", t, "/", e));
      const std::string path = absl::StrCat(prefix, "/", t, "/", e);
      endpoint.set_url(
          hang ? sink.Url("/hang/" + path, absl::GetFlag(FLAGS_hang_host))
          : settings.scenario == "soak" ? sink.Url("/flaky/" + path)
                                        : sink.Url("/ok/" + path));
      // Signed, with one custom header, like the README's example.
      endpoint.set_secret("bench-secret");
      webhook::v1::Header* header = endpoint.add_headers();
      header->set_name("X-Source");
      header->set_value("gpt-workbench");
      endpoints.push_back(std::move(endpoint));
    }
  }
  const int64_t begin = NowNanos();
  absl::StatusOr<std::vector<std::string>> ids = CreateEndpoints(
      *server.stub, endpoints, absl::GetFlag(FLAGS_setup_concurrency));
  if (!ids.ok()) return ids.status();
  workload.setup_seconds = (NowNanos() - begin) / 1e9;
  workload.endpoints = static_cast<int64_t>(endpoints.size());
  return workload;
}

// Follows a webhookd log for the totals jemalloc prints there (MALLOC_CONF
// stats_interval): "Allocated: 1, active: 2, metadata: 3 (n_thp 0),
// resident: 4, mapped: 5, retained: 6".
class JemallocLog {
 public:
  explicit JemallocLog(std::string path) : path_(std::move(path)) {}
  // Reads what was appended since the last call; returns the latest totals.
  std::optional<JemallocStats> Poll() {
    std::ifstream in(path_, std::ios::binary);
    if (!in) return latest_;
    in.seekg(offset_);
    std::string line;
    while (std::getline(in, line)) {
      if (in.eof()) break;  // A line still being written: read it next time.
      offset_ += static_cast<std::streamoff>(line.size()) + 1;
      if (std::optional<JemallocStats> stats = Parse(line)) latest_ = stats;
    }
    return latest_;
  }

  static std::optional<JemallocStats> Parse(absl::string_view line) {
    if (!absl::ConsumePrefix(&line, "Allocated: ")) return std::nullopt;
    JemallocStats stats;
    auto field = [&](absl::string_view name, int64_t* value) {
      const size_t at = line.find(name);
      if (at == absl::string_view::npos) return false;
      absl::string_view rest = line.substr(at + name.size());
      return absl::SimpleAtoi(rest.substr(0, rest.find_first_of(", (")), value);
    };
    absl::string_view first = line.substr(0, line.find(','));
    if (!absl::SimpleAtoi(first, &stats.allocated) ||
        !field("active: ", &stats.active) ||
        !field("metadata: ", &stats.metadata) ||
        !field("resident: ", &stats.resident) ||
        !field("retained: ", &stats.retained)) {
      return std::nullopt;
    }
    return stats;
  }

 private:
  const std::string path_;
  std::streamoff offset_ = 0;
  std::optional<JemallocStats> latest_;
};

// Samples the server's nodes, the database and the benchmark itself at
// fixed instants while the schedule runs, and prints progress every 5 s.
// With a JemallocLog, also the allocator's latest totals at each instant.
class Monitor {
 public:
  Monitor(std::vector<pid_t> server_pids, std::vector<int64_t> instants,
          HttpSink& sink, std::string label, pid_t database_pid = 0,
          JemallocLog* jemalloc = nullptr)
      : server_pids_(std::move(server_pids)),
        database_pid_(database_pid),
        jemalloc_log_(jemalloc),
        instants_(std::move(instants)),
        sink_(sink),
        label_(std::move(label)),
        answered_base_(sink.answered_ok()),
        server_(instants_.size()),
        self_(instants_.size()),
        database_(instants_.size()),
        jemalloc_(instants_.size()) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~Monitor() { Stop(); }
  void Stop() {
    if (!done_.HasBeenNotified()) done_.Notify();
    if (thread_.joinable()) thread_.join();
  }
  // Each node's reading at instant `i`.
  const Samples& server(size_t i) const { return server_[i]; }
  const std::optional<ProcessSample>& self(size_t i) const { return self_[i]; }
  // CPU seconds of the database's processes; nullopt without one.
  const std::optional<double>& database(size_t i) const { return database_[i]; }
  const std::optional<JemallocStats>& jemalloc(size_t i) const {
    return jemalloc_[i];
  }
  // Blocks until every instant has been sampled (bounded: 5 s after the
  // last one).
  void AwaitSamples() {
    if (instants_.empty()) return;
    const int64_t wait = instants_.back() + 5000000000 - NowNanos();
    sampled_.WaitForNotificationWithTimeout(absl::Nanoseconds(wait));
  }

 private:
  void Loop() {
    const int64_t begin = NowNanos();
    int64_t next_progress = begin + 5000000000;
    size_t next = 0;
    // Runs until Stop(); a Monitor without instants only prints progress.
    while (true) {
      const int64_t wake = next < instants_.size()
                               ? std::min(instants_[next], next_progress)
                               : next_progress;
      const int64_t now = NowNanos();
      if (wake > now &&
          done_.WaitForNotificationWithTimeout(absl::Nanoseconds(wake - now))) {
        return;
      }
      if (done_.HasBeenNotified()) return;
      if (next < instants_.size() && NowNanos() >= instants_[next]) {
        server_[next] = SampleAll(server_pids_);
        self_[next] = Sample(getpid());
        if (database_pid_ > 0) {
          absl::StatusOr<double> cpu = ProcessTreeCpuSeconds(database_pid_);
          if (cpu.ok()) database_[next] = *cpu;
        }
        if (jemalloc_log_ != nullptr) jemalloc_[next] = jemalloc_log_->Poll();
        if (++next == instants_.size()) sampled_.Notify();
      }
      if (NowNanos() >= next_progress) {
        std::optional<ProcessSample> s = Combined(SampleAll(server_pids_));
        Progress(absl::StrFormat(
            "%s: t=%.0fs sink answered %d, server CPU %s s, RSS %s MiB", label_,
            (NowNanos() - begin) / 1e9, sink_.answered_ok() - answered_base_,
            s ? absl::StrFormat("%.1f", s->cpu_seconds) : "?",
            s ? absl::StrFormat("%.0f", s->rss_bytes / 1048576.0) : "?"));
        next_progress += 5000000000;
      }
    }
  }

  const std::vector<pid_t> server_pids_;
  const pid_t database_pid_;
  JemallocLog* const jemalloc_log_;
  const std::vector<int64_t> instants_;
  HttpSink& sink_;
  const std::string label_;
  const int64_t answered_base_;
  std::vector<Samples> server_;
  std::vector<std::optional<ProcessSample>> self_;
  std::vector<std::optional<double>> database_;
  std::vector<std::optional<JemallocStats>> jemalloc_;
  absl::Notification done_;
  absl::Notification sampled_;
  std::thread thread_;
};

// Waits until `receipts` holds at least `expected` unique ids, for at most
// `timeout`. Returns when it stopped.
int64_t Drain(HttpSink& sink, ReceiptIndex& receipts, int64_t expected,
              absl::Duration timeout) {
  const int64_t deadline = NowNanos() + absl::ToInt64Nanoseconds(timeout);
  while (true) {
    receipts.CollectFrom(sink);
    if (receipts.unique() >= expected || NowNanos() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return NowNanos();
}

LedgerOptions LedgerSettings() {
  LedgerOptions options;
  options.list_limit = absl::GetFlag(FLAGS_ledger_list_limit);
  options.samples = absl::GetFlag(FLAGS_ledger_samples);
  return options;
}

// `s0` and `s1`: each node's reading at the start and the end of the window.
void AddResourceFigures(PhaseResult& result, const Server& server,
                        const Samples& s0, const Samples& s1,
                        const std::optional<ProcessSample>& self0,
                        const std::optional<ProcessSample>& self1,
                        double window_s, int64_t deliveries,
                        std::optional<double> database0 = std::nullopt,
                        std::optional<double> database1 = std::nullopt) {
  const double per_1000 = deliveries > 0 ? 1000.0 / deliveries : kNaN;
  const size_t nodes = server.nodes.size();
  const std::string all = nodes > 1 ? absl::StrCat(" (", nodes, " nodes)") : "";
  double cpu = kNaN;
  double written = kNaN;
  const std::optional<ProcessSample> total0 = Combined(s0);
  const std::optional<ProcessSample> total1 = Combined(s1);
  if (total0 && total1) {
    cpu = total1->cpu_seconds - total0->cpu_seconds;
    if (total0->write_bytes >= 0 && total1->write_bytes >= 0) {
      written = static_cast<double>(total1->write_bytes - total0->write_bytes);
    }
  }
  Add(result.figures, "server_cpu_s_per_1000_deliveries",
      "server CPU per 1,000 deliveries" + all, cpu * per_1000, "s");
  Add(result.figures, "server_cpu_cores", "server CPU use (window)" + all,
      cpu / window_s, "cores");
  if (nodes > 1) {
    for (size_t i = 0; i < nodes && i < s0.size() && i < s1.size(); ++i) {
      const double node_cpu =
          s0[i] && s1[i] ? s1[i]->cpu_seconds - s0[i]->cpu_seconds : kNaN;
      Add(result.figures, absl::StrCat("node", i + 1, "_cpu_cores"),
          absl::StrCat("  node ", i + 1, " CPU use (window)"),
          node_cpu / window_s, "cores");
    }
  }
  double self_cpu = kNaN;
  if (self0 && self1) self_cpu = self1->cpu_seconds - self0->cpu_seconds;
  Add(result.figures, "bench_cpu_cores", "benchmark CPU use (generator + sink)",
      self_cpu / window_s, "cores");
  if (server.database_pid > 0) {
    const double database_cpu =
        database0 && database1 ? *database1 - *database0 : kNaN;
    Add(result.figures, "database_cpu_s_per_1000_deliveries",
        "PostgreSQL CPU per 1,000 deliveries", database_cpu * per_1000, "s");
    Add(result.figures, "database_cpu_cores", "PostgreSQL CPU use (window)",
        database_cpu / window_s, "cores");
  }
  Add(result.figures, "disk_write_bytes_per_delivery",
      "disk write_bytes per delivery (/proc/<pid>/io)",
      deliveries > 0 ? written / deliveries : kNaN, "B");
  std::optional<ProcessSample> last = Combined(SampleAll(server.pids()));
  Add(result.figures, "server_peak_rss_mib",
      nodes > 1 ? "server peak RSS (VmHWM, largest node)"
                : "server peak RSS (VmHWM)",
      last ? last->peak_rss_bytes / 1048576.0 : kNaN, "MiB");
}

// Least-squares slope of y over x; NaN with fewer than two points.
double Slope(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = x.size();
  if (n < 2) return kNaN;
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) {
    mx += x[i] / n;
    my += y[i] / n;
  }
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
  }
  return sxx > 0 ? sxy / sxx : kNaN;
}

// The soak's verdict on memory over the window [t0, t1] (seconds since the
// start): RSS at its start, middle and end, the growth of each half, the
// trend of the second half, and what the RSS is made of at the end.
void AddSoakFigures(PhaseResult& result, double t0, double t1) {
  const std::vector<MemoryPoint>& memory = result.memory;
  auto at = [&](double t) -> const MemoryPoint* {
    const MemoryPoint* best = nullptr;
    for (const MemoryPoint& point : memory) {
      if (best == nullptr ||
          std::fabs(point.t_s - t) < std::fabs(best->t_s - t))
        best = &point;
    }
    return best;
  };
  const MemoryPoint* start = at(t0);
  const MemoryPoint* middle = at((t0 + t1) / 2);
  const MemoryPoint* end = at(t1);
  if (start == nullptr) return;
  constexpr double kMiB = 1048576.0;
  auto& f = result.figures;
  Add(f, "rss_start_mib", "RSS after the warm-up",
      start->process.rss_bytes / kMiB, "MiB");
  Add(f, "rss_middle_mib", "RSS halfway", middle->process.rss_bytes / kMiB,
      "MiB");
  Add(f, "rss_end_mib", "RSS at the end", end->process.rss_bytes / kMiB, "MiB");
  Add(f, "rss_growth_first_half_mib", "RSS growth, first half",
      (middle->process.rss_bytes - start->process.rss_bytes) / kMiB, "MiB");
  Add(f, "rss_growth_second_half_mib", "RSS growth, second half",
      (end->process.rss_bytes - middle->process.rss_bytes) / kMiB, "MiB");
  // What a leak would grow: the anonymous part (the mapped files are
  // LevelDB's tables, which the kernel may drop at any time).
  Add(f, "anon_middle_mib", "anonymous RSS halfway",
      middle->process.rss_anon_bytes / kMiB, "MiB");
  Add(f, "anon_growth_first_half_mib", "anonymous RSS growth, first half",
      (middle->process.rss_anon_bytes - start->process.rss_anon_bytes) / kMiB,
      "MiB");
  Add(f, "anon_growth_second_half_mib", "anonymous RSS growth, second half",
      (end->process.rss_anon_bytes - middle->process.rss_anon_bytes) / kMiB,
      "MiB");
  std::vector<double> x;
  std::vector<double> y;
  std::vector<double> anon;
  std::vector<double> heap;
  std::vector<double> heap_x;
  for (const MemoryPoint& point : memory) {
    if (point.t_s < middle->t_s || point.t_s > end->t_s) continue;
    x.push_back(point.t_s / 600);
    y.push_back(point.process.rss_bytes / kMiB);
    anon.push_back(point.process.rss_anon_bytes / kMiB);
    if (point.jemalloc) {
      heap_x.push_back(point.t_s / 600);
      heap.push_back(point.jemalloc->allocated / kMiB);
    }
  }
  Add(f, "rss_trend_second_half_mib_per_10min",
      "RSS trend over the second half (least squares)", Slope(x, y),
      "MiB/10 min");
  // A fit over every sample of the half: single samples move up and down
  // by several MiB with compactions.
  const double anon_slope = Slope(x, anon);
  Add(f, "anon_trend_second_half_mib_per_10min",
      "anonymous RSS trend over the second half (least squares)", anon_slope,
      "MiB/10 min");
  Add(f, "anon_fit_growth_second_half_mib",
      "anonymous RSS growth, second half, by that trend",
      anon_slope * (end->t_s - middle->t_s) / 600, "MiB");
  Add(f, "rss_anon_end_mib", "  of the end RSS: anonymous (heap, stacks)",
      end->process.rss_anon_bytes / kMiB, "MiB");
  Add(f, "rss_file_end_mib",
      "  of the end RSS: mapped files (code, LevelDB tables)",
      end->process.rss_file_bytes / kMiB, "MiB");
  if (end->jemalloc) {
    Add(f, "jemalloc_allocated_end_mib",
        "  jemalloc: allocated in live objects (last report)",
        end->jemalloc->allocated / kMiB, "MiB");
    Add(f, "jemalloc_resident_end_mib",
        "  jemalloc: resident (objects, free pages kept, metadata)",
        end->jemalloc->resident / kMiB, "MiB");
    Add(f, "jemalloc_metadata_end_mib", "  jemalloc: metadata",
        end->jemalloc->metadata / kMiB, "MiB");
  }
  Add(f, "jemalloc_allocated_trend_mib_per_10min",
      "jemalloc allocated, trend over the second half", Slope(heap_x, heap),
      "MiB/10 min");
}

// ---------------------------------------------------------------------------
// Scenarios.

// A phase at a fixed rate: fanout1, fanout10, endpoints10k, latency and the
// two phases of hanging.
absl::StatusOr<PhaseResult> RunRatePhase(const Settings& settings,
                                         HttpSink& sink,
                                         const std::string& name,
                                         const std::string& label,
                                         double hang_fraction) {
  PhaseResult result;
  result.label = label;
  result.load_before = LoadAverage();
  absl::StatusOr<Server> started =
      StartServer(settings, name, settings.server_flags);
  if (!started.ok()) return started.status();
  Server& server = *started;
  absl::StatusOr<Workload> workload =
      SetUpWorkload(settings, server, sink, name, hang_fraction);
  if (!workload.ok()) return workload.status();
  Progress(absl::StrFormat("%s: %d endpoints created in %.1f s", label,
                           workload->endpoints, workload->setup_seconds));

  ReceiptIndex receipts;
  receipts.CollectFrom(sink);  // Drops stragglers of earlier phases.
  receipts = ReceiptIndex();

  LoadPlan plan;
  plan.rate = settings.rate;
  plan.duration = settings.duration;
  plan.max_events = settings.events;
  plan.max_outstanding = absl::GetFlag(FLAGS_max_outstanding);
  plan.batch = absl::GetFlag(FLAGS_batch);
  const int64_t start = NowNanos() + 100000000;
  int64_t count = static_cast<int64_t>(
      absl::ToDoubleSeconds(plan.duration) * plan.rate + 0.5);
  if (plan.max_events > 0) count = std::min(count, plan.max_events);
  const int64_t w0 = start + absl::ToInt64Nanoseconds(settings.warmup);
  const int64_t w1 =
      std::min(start + absl::ToInt64Nanoseconds(settings.duration),
               start + static_cast<int64_t>(count * 1e9 / plan.rate));
  if (w1 <= w0) {
    return absl::InvalidArgumentError(
        "the event bound ends the schedule before the warm-up does");
  }
  const double window_s = (w1 - w0) / 1e9;

  // The soak also reads memory every --soak_sample_interval, and the
  // allocator's totals from the (lone) node's log.
  const bool soak = settings.scenario == "soak";
  std::vector<int64_t> instants = {w0, w1};
  std::unique_ptr<JemallocLog> jemalloc;
  if (soak) {
    const int64_t step = std::max<int64_t>(
        absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_soak_sample_interval)),
        100000000);
    for (int64_t t = start; t < w1; t += step) instants.push_back(t);
    std::sort(instants.begin(), instants.end());
    instants.erase(std::unique(instants.begin(), instants.end()),
                   instants.end());
    if (server.nodes.size() == 1 && server.nodes[0].process != nullptr) {
      jemalloc = std::make_unique<JemallocLog>(absl::StrCat(
          settings.work_dir, "/", NodeName(settings, name, 0), ".log"));
    }
  }
  const size_t i0 = static_cast<size_t>(
      std::find(instants.begin(), instants.end(), w0) - instants.begin());
  const size_t i1 = static_cast<size_t>(
      std::find(instants.begin(), instants.end(), w1) - instants.begin());

  Monitor monitor(server.pids(), instants, sink, label, server.database_pid,
                  jemalloc.get());
  LoadGenerator generator(server.channels, workload->requests);
  std::vector<EventOutcome> events = generator.Run(plan, start);
  const int64_t load_end = NowNanos();
  const AckIndex acked = IndexAcknowledged(events);
  int64_t expected = 0;
  for (const EventOutcome& event : events) {
    if (event.code == 0 && !workload->hanging[event.request]) {
      expected += static_cast<int64_t>(event.delivery_ids.size());
    }
  }
  Progress(absl::StrFormat(
      "%s: schedule done; waiting up to %s for %d "
      "deliveries",
      label, absl::FormatDuration(settings.drain_timeout), expected));
  const int64_t drained =
      Drain(sink, receipts, expected, settings.drain_timeout);
  monitor.AwaitSamples();
  monitor.Stop();
  sink.ReleaseHung();

  absl::StatusOr<Ledger> ledger = CloseLedger(*server.stub, events, acked, sink,
                                              receipts, LedgerSettings());
  if (!ledger.ok()) return ledger.status();
  result.ledger = *ledger;
  result.ledger_closed = true;

  // Figures over the measurement window [w0, w1).
  int64_t sent_in_window = 0;
  int64_t acked_in_window = 0;
  int64_t acked_deliveries_in_window = 0;
  std::vector<int64_t> ack_latency;
  int64_t ack_missing = 0;
  std::vector<int64_t> latency;
  std::vector<int64_t> sent_latency;  // Of the delivered ones, from sent_ns.
  std::vector<int64_t> sent_ack_latency;  // Of the acknowledged ones.
  int64_t undelivered = 0;
  for (const EventOutcome& event : events) {
    if (event.sent_ns >= w0 && event.sent_ns < w1) ++sent_in_window;
    if (event.code == 0 && event.done_ns >= w0 && event.done_ns < w1) {
      ++acked_in_window;
      acked_deliveries_in_window +=
          static_cast<int64_t>(event.delivery_ids.size());
    }
    if (event.scheduled_ns < w0 || event.scheduled_ns >= w1) continue;
    // An event not sent or not acknowledged counts as infinitely slow: at a
    // rate above capacity the latency has no bound.
    if (event.code == 0) {
      ack_latency.push_back(event.done_ns - event.scheduled_ns);
      sent_ack_latency.push_back(event.done_ns - event.sent_ns);
    } else {
      ++ack_missing;
    }
    if (workload->hanging[event.request]) continue;
    if (event.code != 0) {
      undelivered += settings.endpoints_per_thread;
      continue;
    }
    for (const std::string& text : event.delivery_ids) {
      absl::uint128 id;
      const ReceiptIndex::Entry* entry =
          testing::ParseDeliveryId(text, &id) ? receipts.Find(id) : nullptr;
      if (entry == nullptr) {
        ++undelivered;
      } else {
        latency.push_back(entry->first_ns - event.scheduled_ns);
        sent_latency.push_back(entry->first_ns - event.sent_ns);
      }
    }
  }
  int64_t delivered_in_window = 0;
  for (const auto& [id, entry] : receipts.entries()) {
    if (entry.first_ns >= w0 && entry.first_ns < w1 &&
        acked.event_of.contains(id)) {
      ++delivered_in_window;
    }
  }

  auto& f = result.figures;
  Add(f, "offered_events_per_s", "offered rate", settings.rate, "events/s");
  if (plan.batch > 1) {
    Add(f, "batch_events", "events per SubmitEvents call", plan.batch, "");
  }
  Add(f, "endpoints", "endpoints", workload->endpoints, "");
  Add(f, "window_s", "measurement window", window_s, "s");
  Add(f, "sent_events_per_s", "sent (window)", sent_in_window / window_s,
      "events/s");
  Add(f, "ingest_rpc_per_s", "ingest: acknowledged SubmitEvent (window)",
      acked_in_window / window_s, "RPC/s");
  Add(f, "deliveries_per_s", "deliveries received (window)",
      delivered_in_window / window_s, "deliveries/s");
  AddLatencies(f, "latency", "submit->received latency", latency, undelivered);
  // Above capacity the figures above have no bound (events not sent count
  // as infinitely slow); these follow the events webhookd acknowledged,
  // from the moment each was sent (admission waits included).
  const auto add_p50_p99 = [&f](const std::string& key,
                                const std::string& label,
                                std::vector<int64_t>& values) {
    std::sort(values.begin(), values.end());
    Add(f, key + "_p50_ms", label + " p50", Quantile(values, 0, 0.5), "ms");
    Add(f, key + "_p99_ms", label + " p99", Quantile(values, 0, 0.99), "ms");
  };
  add_p50_p99("acked_latency", "acknowledged events: sent->received latency",
              sent_latency);
  // Of that, the part before the answer: admission waits and the write.
  add_p50_p99("acked_ack_latency",
              "acknowledged events: sent->acknowledged latency",
              sent_ack_latency);
  Add(f, "delivered_per_acked", "deliveries received / acknowledged (window)",
      acked_deliveries_in_window > 0
          ? static_cast<double>(delivered_in_window) /
                static_cast<double>(acked_deliveries_in_window)
          : 0.0,
      "");
  Add(f, "latency_samples", "latency samples (deliveries in window)",
      static_cast<double>(latency.size() + undelivered), "");
  Add(f, "latency_undelivered",
      "  of them not delivered by cut-off (or not sent)",
      static_cast<double>(undelivered), "");
  std::sort(ack_latency.begin(), ack_latency.end());
  Add(f, "ack_p50_ms", "SubmitEvent ack latency p50",
      Quantile(ack_latency, ack_missing, 0.5), "ms");
  Add(f, "ack_p99_ms", "SubmitEvent ack latency p99",
      Quantile(ack_latency, ack_missing, 0.99), "ms");
  AddResourceFigures(result, server, monitor.server(i0), monitor.server(i1),
                     monitor.self(i0), monitor.self(i1), window_s,
                     delivered_in_window, monitor.database(i0),
                     monitor.database(i1));
  if (soak) {
    for (size_t i = 0; i < instants.size(); ++i) {
      std::optional<ProcessSample> sample = Combined(monitor.server(i));
      if (!sample) continue;
      MemoryPoint& point = result.memory.emplace_back();
      point.t_s = (instants[i] - start) / 1e9;
      point.process = *sample;
      point.jemalloc = monitor.jemalloc(i);
    }
    AddSoakFigures(result, (w0 - start) / 1e9, (w1 - start) / 1e9);
    Add(f, "flaky_answers", "answers 500 (first attempts of 1 in 4)",
        static_cast<double>(receipts.non_2xx()), "");
  }
  int64_t data_bytes = 0;
  bool data_dirs = false;
  for (const Node& node : server.nodes) {
    if (node.data_dir.empty()) continue;
    data_bytes += DirectoryBytes(node.data_dir);
    data_dirs = true;
  }
  Add(f, "data_dir_bytes_per_delivery",
      "data dir size at end per acknowledged delivery",
      !data_dirs || ledger->acknowledged_deliveries == 0
          ? kNaN
          : static_cast<double>(data_bytes) / ledger->acknowledged_deliveries,
      "B");
  Add(f, "drain_s", "drain after the schedule", (drained - load_end) / 1e9,
      "s");
  Add(f, "setup_endpoints_per_s", "endpoint creation (setup)",
      workload->endpoints / workload->setup_seconds, "endpoints/s");
  if (receipts.total() > 0) {
    Add(f, "payload_bytes", "mean delivery body",
        static_cast<double>(receipts.body_bytes()) /
            (receipts.total() + receipts.non_2xx()),
        "B");
  }
  if (const int64_t not_sent = ledger->not_sent; not_sent > 0) {
    result.notes.push_back(absl::StrCat(
        not_sent,
        " scheduled events were not sent: webhookd answered "
        "slower than the offered rate with --max_outstanding=",
        plan.max_outstanding, " calls open (the rate is above capacity)"));
  }
  StopServer(server, result);
  result.load_after = LoadAverage();
  return result;
}

// fanout_big: one event to 10,000 endpoints of one thread, several times.
absl::StatusOr<PhaseResult> RunFanoutBig(const Settings& settings,
                                         HttpSink& sink,
                                         const std::string& name) {
  PhaseResult result;
  result.label = absl::StrCat("one event to ", settings.endpoints_per_thread,
                              " endpoints");
  result.load_before = LoadAverage();
  absl::StatusOr<Server> started =
      StartServer(settings, name, settings.server_flags);
  if (!started.ok()) return started.status();
  Server& server = *started;
  Settings one_thread = settings;
  one_thread.threads = 1;
  absl::StatusOr<Workload> workload =
      SetUpWorkload(one_thread, server, sink, name, 0);
  if (!workload.ok()) return workload.status();
  Progress(absl::StrFormat("%s: %d endpoints created in %.1f s", result.label,
                           workload->endpoints, workload->setup_seconds));
  ReceiptIndex receipts;
  receipts.CollectFrom(sink);
  receipts = ReceiptIndex();

  const int64_t events_count = std::max<int64_t>(settings.events, 1);
  std::vector<EventOutcome> events(events_count);
  std::vector<double> ack_ms;
  std::vector<double> all_ms;
  // The events rotate over the channels (over the nodes, with --nodes).
  std::vector<std::unique_ptr<WebhookService::Stub>> stubs;
  for (const auto& channel : server.channels) {
    stubs.push_back(WebhookService::NewStub(channel));
  }
  const Samples s0 = SampleAll(server.pids());
  const std::optional<ProcessSample> self0 = Sample(getpid());
  const int64_t begin = NowNanos();
  int64_t expected = 0;
  for (int64_t i = 0; i < events_count; ++i) {
    EventOutcome& event = events[i];
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(60));
    webhook::v1::SubmitEventResponse response;
    event.scheduled_ns = event.sent_ns = NowNanos();
    grpc::Status status = stubs[i % stubs.size()]->SubmitEvent(
        &context, workload->requests[0], &response);
    event.done_ns = NowNanos();
    event.code = status.error_code();
    if (!status.ok()) {
      result.notes.push_back(
          absl::StrCat("SubmitEvent failed: ", status.error_message()));
      continue;
    }
    event.delivery_ids.assign(response.delivery_ids().begin(),
                              response.delivery_ids().end());
    expected += response.delivery_ids_size();
    ack_ms.push_back((event.done_ns - event.scheduled_ns) / 1e6);
    Drain(sink, receipts, expected, settings.drain_timeout);
    // The time of the last of this event's deliveries.
    int64_t last = 0;
    bool all = true;
    for (const std::string& text : event.delivery_ids) {
      absl::uint128 id;
      const ReceiptIndex::Entry* entry =
          testing::ParseDeliveryId(text, &id) ? receipts.Find(id) : nullptr;
      if (entry == nullptr) {
        all = false;
      } else {
        last = std::max(last, entry->first_ns);
      }
    }
    all_ms.push_back(all ? (last - event.scheduled_ns) / 1e6 : kInf);
    Progress(absl::StrFormat(
        "%s: event %d acknowledged in %.1f ms, %s", result.label, i + 1,
        ack_ms.back(),
        all ? absl::StrFormat("all delivered in %.0f ms", all_ms.back())
            : std::string("NOT all delivered")));
  }
  const int64_t end = NowNanos();
  const Samples s1 = SampleAll(server.pids());
  const std::optional<ProcessSample> self1 = Sample(getpid());
  const AckIndex acked = IndexAcknowledged(events);
  absl::StatusOr<Ledger> ledger = CloseLedger(*server.stub, events, acked, sink,
                                              receipts, LedgerSettings());
  if (!ledger.ok()) return ledger.status();
  result.ledger = *ledger;
  result.ledger_closed = true;

  auto& f = result.figures;
  Add(f, "endpoints", "endpoints on the thread", workload->endpoints, "");
  Add(f, "events", "events (one after another)", events_count, "");
  Add(f, "ack_ms", "ack latency (median of events)", Median(ack_ms), "ms");
  Add(f, "ack_max_ms", "ack latency (slowest event)",
      ack_ms.empty() ? kNaN : *std::max_element(ack_ms.begin(), ack_ms.end()),
      "ms");
  Add(f, "all_delivered_ms", "submit -> all delivered (median)", Median(all_ms),
      "ms");
  Add(f, "all_delivered_max_ms", "submit -> all delivered (slowest)",
      all_ms.empty() ? kNaN : *std::max_element(all_ms.begin(), all_ms.end()),
      "ms");
  const double med_all = Median(all_ms);
  Add(f, "deliveries_per_s", "fan-out delivery rate",
      std::isinf(med_all) ? kNaN : workload->endpoints / (med_all / 1e3),
      "deliveries/s");
  AddResourceFigures(result, server, s0, s1, self0, self1, (end - begin) / 1e9,
                     ledger->received);
  Add(f, "setup_endpoints_per_s", "endpoint creation (setup)",
      workload->endpoints / workload->setup_seconds, "endpoints/s");
  StopServer(server, result);
  result.load_after = LoadAverage();
  return result;
}

// backlog: the sink holds every request while events build a backlog; then
// webhookd restarts over it.
absl::StatusOr<PhaseResult> RunBacklog(const Settings& settings, HttpSink& sink,
                                       const std::string& name) {
  PhaseResult result;
  result.label = "backlog";
  result.load_before = LoadAverage();
  // While the backlog builds, the sink holds the few attempts webhookd may
  // run at once; they must not time out meanwhile. Admission control is off:
  // with every attempt slot held, it would rightly refuse submits (delivery
  // is behind), and the backlog would not build. A real backlog of this
  // size is retries of failing endpoints, which admission never counts.
  std::vector<std::string> build_flags = {
      absl::StrCat("--max_in_flight=", absl::GetFlag(FLAGS_backlog_in_flight)),
      "--attempt_timeout=1h", "--shutdown_grace=1s", "--admission_max_lag=0"};
  build_flags.insert(build_flags.end(), settings.server_flags.begin(),
                     settings.server_flags.end());
  absl::StatusOr<Server> started = StartServer(settings, name, build_flags);
  if (!started.ok()) return started.status();
  Server& server = *started;
  Node& node = server.nodes[0];  // backlog runs one node (ResolveSettings).
  absl::StatusOr<Workload> workload =
      SetUpWorkload(settings, server, sink, name, 0);
  if (!workload.ok()) return workload.status();
  Progress(absl::StrFormat("backlog: %d endpoints created in %.1f s",
                           workload->endpoints, workload->setup_seconds));
  ReceiptIndex receipts;
  receipts.CollectFrom(sink);
  receipts = ReceiptIndex();

  sink.Pause();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::optional<ProcessSample> before = Sample(node.pid);
  LoadPlan plan;
  plan.rate = settings.rate;
  plan.duration = settings.duration;
  plan.max_events = settings.events;
  plan.max_outstanding = absl::GetFlag(FLAGS_max_outstanding);
  plan.batch = absl::GetFlag(FLAGS_batch);
  const int64_t start = NowNanos() + 100000000;
  std::vector<EventOutcome> events;
  {
    Monitor monitor(server.pids(), {}, sink, "backlog build");
    LoadGenerator generator(server.channels, workload->requests);
    events = generator.Run(plan, start);
  }
  const int64_t built = NowNanos();
  const AckIndex acked = IndexAcknowledged(events);
  const int64_t queued = static_cast<int64_t>(acked.event_of.size());
  int64_t acknowledged = 0;
  for (const EventOutcome& event : events) acknowledged += event.code == 0;
  // The figures below are per queued delivery: a backlog that did not build
  // must not pass for a small one.
  if (acknowledged < static_cast<int64_t>(events.size()) * 99 / 100) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "backlog: only %d of %d events were acknowledged (%d deliveries "
        "queued): the backlog did not build",
        acknowledged, events.size(), queued));
  }
  // Let the engine settle (queue loaded, allocator quiet).
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const std::optional<ProcessSample> after = Sample(node.pid);
  Progress(
      absl::StrFormat("backlog: %d deliveries queued in %.1f s (%d "
                      "attempts held by the sink)",
                      queued, (built - start) / 1e9, sink.held()));
  auto& f = result.figures;
  Add(f, "backlog_deliveries", "deliveries queued", queued, "");
  Add(f, "build_deliveries_per_s", "backlog build (deliveries created)",
      queued / ((built - start) / 1e9), "created/s");
  Add(f, "build_events_per_s", "backlog build (events acknowledged)",
      acknowledged / ((built - start) / 1e9), "events/s");
  if (before && after) {
    Add(f, "rss_before_mib", "RSS before the backlog",
        before->rss_bytes / 1048576.0, "MiB");
    Add(f, "rss_after_mib", "RSS with the backlog",
        after->rss_bytes / 1048576.0, "MiB");
    Add(f, "rss_growth_per_queued_bytes", "RSS growth per queued delivery",
        queued > 0
            ? static_cast<double>(after->rss_bytes - before->rss_bytes) / queued
            : kNaN,
        "B");
    Add(f, "peak_rss_build_mib", "peak RSS (VmHWM) while building",
        after->peak_rss_bytes / 1048576.0, "MiB");
  }
  Add(f, "data_dir_bytes_per_queued", "data dir size per queued delivery",
      queued > 0 ? static_cast<double>(DirectoryBytes(node.data_dir)) / queued
                 : kNaN,
      "B");
  StopServer(server, result);
  // The held attempts were aborted by the shutdown; answer their dead
  // connections 503 (not received) and let requests through again.
  sink.Resume(503);

  Progress("backlog: restarting webhookd over the backlog");
  const std::string data_dir = node.data_dir;
  const int64_t answered_before = sink.answered_ok();
  const int64_t spawn = NowNanos();
  absl::StatusOr<std::unique_ptr<testing::WebhookdProcess>> restarted =
      SpawnWebhookd(settings, name, 0, data_dir, settings.server_flags,
                    absl::Seconds(600));
  if (!restarted.ok()) return restarted.status();
  // Read within the start's polling of the port file (at most 20 ms).
  const int64_t serving = NowNanos();
  node.process = *std::move(restarted);
  node.pid = node.process->pid();
  Add(f, "restart_serving_s", "restart: spawn -> serving (port file)",
      (serving - spawn) / 1e9, "s");
  const int64_t first_deadline = NowNanos() + 600000000000;
  while (sink.answered_ok() == answered_before && NowNanos() < first_deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  const int64_t first = NowNanos();
  const bool got_first = sink.answered_ok() > answered_before;
  Add(f, "restart_first_delivery_s", "restart: spawn -> first delivery",
      got_first ? (first - spawn) / 1e9 : kInf, "s");
  const std::optional<ProcessSample> restarted_sample = Sample(node.pid);
  if (restarted_sample) {
    Add(f, "rss_after_restart_mib", "RSS at the first delivery after restart",
        restarted_sample->rss_bytes / 1048576.0, "MiB");
  }
  node.address = node.process->address();
  server.channels = OpenChannels(node.address, 1);
  server.stub = WebhookService::NewStub(server.channels[0]);

  Progress(absl::StrFormat(
      "backlog: first delivery %.2f s after the "
      "restart; draining for up to %s",
      (first - spawn) / 1e9, absl::FormatDuration(settings.drain_timeout)));
  const int64_t drained = Drain(sink, receipts, queued, settings.drain_timeout);
  Add(f, "drain_deliveries_per_s", "drain after restart",
      receipts.unique() / ((drained - first) / 1e9), "deliveries/s");
  const std::optional<ProcessSample> end_sample = Sample(node.pid);
  if (end_sample) {
    Add(f, "server_peak_rss_mib", "peak RSS after restart (VmHWM)",
        end_sample->peak_rss_bytes / 1048576.0, "MiB");
  }
  absl::StatusOr<Ledger> ledger = CloseLedger(*server.stub, events, acked, sink,
                                              receipts, LedgerSettings());
  if (!ledger.ok()) return ledger.status();
  result.ledger = *ledger;
  result.ledger_closed = true;
  StopServer(server, result, "server_stop_after_restart_s");
  result.load_after = LoadAverage();
  return result;
}

absl::StatusOr<RunResult> RunScenario(const Settings& settings, HttpSink& sink,
                                      int run) {
  RunResult result;
  // The pid keeps thread ids apart between invocations against one
  // --target.
  const std::string name =
      absl::StrCat(settings.scenario, "-", getpid(), "-r", run);
  if (settings.scenario == "hanging") {
    absl::StatusOr<PhaseResult> healthy = RunRatePhase(
        settings, sink, name + "-healthy", "all endpoints healthy", 0);
    if (!healthy.ok()) return healthy.status();
    result.phases.push_back(*std::move(healthy));
    const double fraction = absl::GetFlag(FLAGS_hang_fraction);
    absl::StatusOr<PhaseResult> hanging = RunRatePhase(
        settings, sink, name + "-hanging",
        absl::StrCat(fraction * 100, "% of endpoints hanging"), fraction);
    if (!hanging.ok()) return hanging.status();
    result.phases.push_back(*std::move(hanging));
    Add(result.summary, "healthy_ratio",
        "healthy deliveries/s with hanging endpoints / all-healthy",
        Find(result.phases[1].figures, "deliveries_per_s") /
            Find(result.phases[0].figures, "deliveries_per_s"),
        "");
    // The same, per healthy endpoint: the hanging phase has (1 - fraction)
    // of the endpoints healthy, so even a free hang caps the ratio above at
    // 1 - fraction whenever the offered rate is all that is delivered, or
    // the machine is saturated.
    Add(result.summary, "healthy_endpoint_ratio",
        "per healthy endpoint: hanging phase / all-healthy",
        Find(result.phases[1].figures, "deliveries_per_s") /
            ((1 - fraction) *
             Find(result.phases[0].figures, "deliveries_per_s")),
        "");
  } else if (settings.scenario == "fanout_big") {
    absl::StatusOr<PhaseResult> phase = RunFanoutBig(settings, sink, name);
    if (!phase.ok()) return phase.status();
    result.phases.push_back(*std::move(phase));
  } else if (settings.scenario == "backlog") {
    absl::StatusOr<PhaseResult> phase = RunBacklog(settings, sink, name);
    if (!phase.ok()) return phase.status();
    result.phases.push_back(*std::move(phase));
  } else {
    std::string label = absl::StrFormat(
        "%s: %d threads x %d endpoints, %.0f events/s", settings.scenario,
        settings.threads, settings.endpoints_per_thread, settings.rate);
    if (settings.nodes > 1) {
      absl::StrAppend(&label, ", ", settings.nodes, " nodes");
    }
    absl::StatusOr<PhaseResult> phase =
        RunRatePhase(settings, sink, name, label, 0);
    if (!phase.ok()) return phase.status();
    result.phases.push_back(*std::move(phase));
  }
  return result;
}

// ---------------------------------------------------------------------------
// Targets of issue 6 and the report.

struct Target {
  std::string text;
  std::string status;  // "met", "not met", "not measured"
};

std::vector<Target> CheckTargets(const std::string& scenario,
                                 const RunResult& median) {
  std::vector<Target> targets;
  auto check = [&](const std::string& text, double value, bool met) {
    Target target;
    target.text = text;
    target.status = std::isnan(value) ? "not measured"
                    : met             ? "met"
                                      : "not met";
    targets.push_back(std::move(target));
  };
  if (median.phases.empty()) return targets;
  const std::vector<Figure>& f = median.phases[0].figures;
  if (scenario == "fanout1") {
    const double v = Find(f, "deliveries_per_s");
    check(absl::StrCat("sustained deliveries/s, fan-out 1 >= 10,000 (measured ",
                       FormatValue(v, ""), ")"),
          v, v >= 10000);
  } else if (scenario == "fanout10") {
    const double v = Find(f, "deliveries_per_s");
    check(
        absl::StrCat("sustained deliveries/s, fan-out 10 >= 20,000 (measured ",
                     FormatValue(v, ""), ")"),
        v, v >= 20000);
  } else if (scenario == "latency") {
    const double p50 = Find(f, "latency_p50_ms");
    const double p99 = Find(f, "latency_p99_ms");
    check(absl::StrCat("latency at 1,000 events/s p50 <= 2 ms (measured ",
                       FormatValue(p50, "ms"), ")"),
          p50, p50 <= 2);
    check(absl::StrCat("latency at 1,000 events/s p99 <= 10 ms (measured ",
                       FormatValue(p99, "ms"), ")"),
          p99, p99 <= 10);
  } else if (scenario == "backlog") {
    const double rss = Find(f, "rss_growth_per_queued_bytes");
    const double first = Find(f, "restart_first_delivery_s");
    check(absl::StrCat("backlog RSS growth <= 300 B per queued delivery "
                       "(measured ",
                       FormatValue(rss, "B"), ")"),
          rss, rss <= 300);
    check(absl::StrCat("first delivery within 10 s of a restart (measured ",
                       FormatValue(first, "s"), ")"),
          first, first <= 10);
  } else if (scenario == "hanging") {
    const double ratio = Find(median.summary, "healthy_ratio");
    check(absl::StrCat("healthy deliveries/s with 10% hanging >= 80% of "
                       "all-healthy (measured ",
                       FormatValue(ratio * 100, "%"), ")"),
          ratio, ratio >= 0.8);
  } else if (scenario == "soak") {
    // A plateau: over the second half, the anonymous RSS (heap and stacks,
    // where a leak would show) grows, by its least-squares trend, by at
    // most 5% of what it was halfway.
    const double middle = Find(f, "anon_middle_mib");
    const double growth = Find(f, "anon_fit_growth_second_half_mib");
    check(absl::StrCat("anonymous memory levels off: second-half growth by "
                       "the trend <= 5% of its halfway size (measured ",
                       FormatValue(growth, "MiB"), " of ",
                       FormatValue(middle, "MiB"), ")"),
          growth, growth <= 0.05 * middle);
  } else if (scenario == "fanout_big") {
    const double ack = Find(f, "ack_max_ms");
    const double all = Find(f, "all_delivered_max_ms");
    check(absl::StrCat("one event to 10,000 endpoints acknowledged in <= "
                       "200 ms (slowest ",
                       FormatValue(ack, "ms"), ")"),
          ack, ack <= 200);
    check("... and all delivered", all, !std::isinf(all));
  }
  return targets;
}

// Medians of every figure over the runs (same phases, same keys).
RunResult MedianOf(const std::vector<RunResult>& runs) {
  RunResult median = runs.front();
  for (size_t p = 0; p < median.phases.size(); ++p) {
    for (Figure& figure : median.phases[p].figures) {
      std::vector<double> values;
      for (const RunResult& run : runs) {
        if (p < run.phases.size()) {
          values.push_back(Find(run.phases[p].figures, figure.key));
        }
      }
      figure.value = Median(values);
    }
  }
  for (Figure& figure : median.summary) {
    std::vector<double> values;
    for (const RunResult& run : runs) {
      values.push_back(Find(run.summary, figure.key));
    }
    figure.value = Median(values);
  }
  return median;
}

// The soak's readings, one line a minute (and the last).
void PrintMemory(FILE* out, const std::vector<MemoryPoint>& memory) {
  constexpr double kMiB = 1048576.0;
  std::fprintf(out,
               "  memory (MiB):   t      RSS     anon     file   jemalloc "
               "allocated/resident\n");
  double next = 0;
  for (size_t i = 0; i < memory.size(); ++i) {
    const MemoryPoint& point = memory[i];
    if (point.t_s + 1e-6 < next && i + 1 != memory.size()) continue;
    next = std::floor(point.t_s / 60 + 1) * 60;
    std::fprintf(
        out, "  %14.0fs %8.1f %8.1f %8.1f   %s\n", point.t_s,
        point.process.rss_bytes / kMiB, point.process.rss_anon_bytes / kMiB,
        point.process.rss_file_bytes / kMiB,
        point.jemalloc
            ? absl::StrFormat("%.1f / %.1f", point.jemalloc->allocated / kMiB,
                              point.jemalloc->resident / kMiB)
                  .c_str()
            : "n/a");
  }
}

Json MemoryJson(const std::vector<MemoryPoint>& memory) {
  Json points = Json::array();
  for (const MemoryPoint& point : memory) {
    Json json = {{"t_s", point.t_s},
                 {"rss_bytes", point.process.rss_bytes},
                 {"rss_anon_bytes", point.process.rss_anon_bytes},
                 {"rss_file_bytes", point.process.rss_file_bytes}};
    if (point.jemalloc) {
      json["jemalloc"] = {{"allocated", point.jemalloc->allocated},
                          {"active", point.jemalloc->active},
                          {"metadata", point.jemalloc->metadata},
                          {"resident", point.jemalloc->resident},
                          {"retained", point.jemalloc->retained}};
    }
    points.push_back(std::move(json));
  }
  return points;
}

void PrintFigures(FILE* out, const std::vector<Figure>& figures,
                  double ceiling) {
  for (const Figure& figure : figures) {
    std::string line = absl::StrFormat("  %-52s %s", figure.label,
                                       FormatValue(figure.value, figure.unit));
    const bool rate = figure.unit == "deliveries/s" || figure.unit == "RPC/s";
    if (rate && ceiling > 0 && std::isfinite(figure.value)) {
      absl::StrAppendFormat(&line, "   (%.1f%% of the loopback ceiling)",
                            100 * figure.value / ceiling);
    }
    std::fprintf(out, "%s\n", line.c_str());
  }
}

Json FiguresJson(const std::vector<Figure>& figures, double ceiling) {
  Json json = Json::object();
  for (const Figure& figure : figures) {
    json[figure.key] = FigureJson(figure.value);
    const bool rate = figure.unit == "deliveries/s" || figure.unit == "RPC/s";
    if (rate && ceiling > 0 && std::isfinite(figure.value)) {
      json[figure.key + "_ratio_to_ceiling"] = figure.value / ceiling;
    }
  }
  return json;
}

Json LedgerJson(const Ledger& l) {
  Json json;
  json["scheduled"] = l.scheduled;
  json["not_sent"] = l.not_sent;
  json["submitted"] = l.submitted;
  json["acknowledged"] = l.acknowledged;
  json["failed_rpcs"] = l.failed_rpcs;
  json["unanswered_rpcs"] = l.unanswered_rpcs;
  json["acknowledged_deliveries"] = l.acknowledged_deliveries;
  json["received"] = l.received;
  json["still_queued"] = l.queued;
  json["unaccounted"] = l.unaccounted;
  json["duplicates"] = l.duplicates;
  json["unexpected"] = l.unexpected;
  json["queued_check"] = l.queued_check;
  json["balanced"] = l.balanced;
  return json;
}

// Splits off the arguments absl must not see: every --server_flag=VALUE
// (values may hold commas, so they are not an absl list flag) and turns
// --no-NAME into absl's --noNAME.
std::vector<char*> PrepareArguments(int argc, char** argv,
                                    std::deque<std::string>& storage,
                                    std::vector<std::string>& server_flags) {
  std::vector<char*> kept = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (absl::StartsWith(arg, "--server_flag=")) {
      server_flags.push_back(arg.substr(std::strlen("--server_flag=")));
    } else if (arg == "--server_flag" && i + 1 < argc) {
      server_flags.push_back(argv[++i]);
    } else if (absl::StartsWith(arg, "--no-")) {
      std::string name = arg.substr(5);
      std::replace(name.begin(), name.end(), '-', '_');
      storage.push_back("--no" + name);
      kept.push_back(storage.back().data());
    } else {
      kept.push_back(argv[i]);
    }
  }
  return kept;
}

int Main(int argc, char** argv) {
  std::deque<std::string> storage;
  std::vector<std::string> server_flags;
  std::vector<char*> args = PrepareArguments(argc, argv, storage, server_flags);
  ParseCommandLineOrExit(
      static_cast<int>(args.size()), args.data(), "webhook-bench",
      "bench/webhook_bench.cc", kVersion,
      "open-loop benchmark of webhookd with an in-process "
      "HTTP sink.\nUsage: webhook-bench --scenario=fanout1|fanout10|"
      "endpoints10k|latency|hanging|backlog|fanout_big|soak [--rate=N] "
      "[--duration=35s] [--runs=3] [--postgres [--nodes=N]] "
      "[--server_flag=--http_workers=4] ...\n"
      "See BENCHMARKS.md.");
  signal(SIGPIPE, SIG_IGN);

  // Many connections: raise the open-file limit to the hard limit.
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }

  absl::StatusOr<Settings> resolved = ResolveSettings(server_flags);
  if (!resolved.ok()) {
    std::fprintf(stderr, "webhook-bench: %s\n",
                 std::string(resolved.status().message()).c_str());
    return 2;
  }
  Settings settings = *std::move(resolved);
  // The soak reads webhookd's allocator totals from its log (JemallocLog).
  if (settings.scenario == "soak" && absl::GetFlag(FLAGS_target).empty() &&
      absl::GetFlag(FLAGS_soak_jemalloc_interval) > 0) {
    // Added to the caller's own options (a heap profile, say).
    const char* given = getenv("MALLOC_CONF");
    std::string conf = given != nullptr && *given != '\0'
                           ? absl::StrCat(given, ",")
                           : std::string();
    absl::StrAppend(
        &conf, "stats_interval:", absl::GetFlag(FLAGS_soak_jemalloc_interval),
        ",stats_interval_opts:gmdablxeh");
    setenv("MALLOC_CONF", conf.c_str(), 1);
  }
  std::string parent = absl::GetFlag(FLAGS_work_dir);
  if (parent.empty()) {
    const char* tmp = getenv("TMPDIR");
    parent = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  std::string pattern = parent + "/webhook-bench-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    std::fprintf(stderr, "webhook-bench: cannot create a directory in %s\n",
                 parent.c_str());
    return 2;
  }
  settings.work_dir = pattern;

  // Kept until the end of Main: the webhookd runs' databases live in it.
  std::unique_ptr<testing::PostgresServer> postgres;
  if (absl::GetFlag(FLAGS_postgres)) {
    if (!absl::GetFlag(FLAGS_target).empty()) {
      std::fprintf(stderr,
                   "webhook-bench: --postgres starts webhookd on PostgreSQL "
                   "itself; with --target, start yours with --postgres\n");
      return 2;
    }
    Progress("starting a private PostgreSQL server");
    absl::StatusOr<std::unique_ptr<testing::PostgresServer>> started =
        testing::PostgresServer::Start();
    if (!started.ok()) {
      std::fprintf(stderr, "webhook-bench: PostgreSQL: %s\n",
                   std::string(started.status().message()).c_str());
      return 2;
    }
    postgres = *std::move(started);
    g_postgres = postgres.get();
  }

  HttpSink::Options sink_options;
  sink_options.threads = absl::GetFlag(FLAGS_sink_threads);
  sink_options.hang_time = absl::GetFlag(FLAGS_hang_time);
  absl::StatusOr<std::unique_ptr<HttpSink>> sink =
      HttpSink::Start(sink_options);
  if (!sink.ok()) {
    std::fprintf(stderr, "webhook-bench: sink: %s\n",
                 std::string(sink.status().message()).c_str());
    return 2;
  }

  const MachineInfo machine = DescribeMachine();
  const std::string fs = FilesystemType(settings.work_dir);
  Json report;
  report["scenario"] = settings.scenario;
  report["machine"] = {{"cpus", machine.cpus},
                       {"cpu_model", machine.cpu_model},
                       {"memory_gib", machine.memory_bytes / 1073741824.0},
                       {"kernel", machine.kernel},
                       {"work_dir", settings.work_dir},
                       {"work_dir_filesystem", fs}};
  report["settings"] = {
      {"threads", settings.threads},
      {"endpoints_per_thread", settings.endpoints_per_thread},
      {"rate", settings.rate},
      {"duration_s", absl::ToDoubleSeconds(settings.duration)},
      {"warmup_s", absl::ToDoubleSeconds(settings.warmup)},
      {"events", settings.events},
      {"drain_timeout_s", absl::ToDoubleSeconds(settings.drain_timeout)},
      {"max_outstanding", absl::GetFlag(FLAGS_max_outstanding)},
      {"channels", absl::GetFlag(FLAGS_channels)},
      {"storage", absl::GetFlag(FLAGS_postgres) ? "postgres" : "leveldb"},
      {"nodes", settings.nodes},
      {"sink_threads", sink_options.threads},
      {"server_flags", settings.server_flags},
      {"target", absl::GetFlag(FLAGS_target)}};
  Progress(absl::StrFormat(
      "scenario %s%s; %d CPUs (%s), kernel %s; temp dir %s on %s; load "
      "average %s",
      settings.scenario,
      settings.nodes > 1 ? absl::StrCat(", ", settings.nodes, " nodes") : "",
      machine.cpus, machine.cpu_model, machine.kernel, settings.work_dir, fs,
      LoadAverage()));
  if (fs == "tmpfs") {
    Progress(
        "WARNING: the data dir is on tmpfs: synced writes are free "
        "there; use --work_dir on a disk");
  }

  bool balanced = true;
  std::vector<RunResult> runs;
  int64_t body_bytes = 0;
  int64_t bodies = 0;
  for (int run = 1; run <= std::max(absl::GetFlag(FLAGS_runs), 1); ++run) {
    Progress(absl::StrFormat("run %d of %d", run, absl::GetFlag(FLAGS_runs)));
    absl::StatusOr<RunResult> result = RunScenario(settings, **sink, run);
    if (!result.ok()) {
      std::fprintf(stderr, "webhook-bench: run %d failed: %s\n", run,
                   std::string(result.status().message()).c_str());
      return 1;
    }
    for (const PhaseResult& phase : result->phases) {
      balanced = balanced && phase.ledger_closed && phase.ledger.balanced;
      const double payload = Find(phase.figures, "payload_bytes");
      if (!std::isnan(payload)) {
        body_bytes += static_cast<int64_t>(payload);
        ++bodies;
      }
    }
    runs.push_back(*std::move(result));
  }

  // The loopback ceiling, minutes apart at most from the runs.
  std::optional<Calibration> calibration;
  if (absl::GetFlag(FLAGS_calibrate)) {
    CalibrationOptions options;
    options.wrk = absl::GetFlag(FLAGS_wrk);
    options.url = (*sink)->Url("/calib");
    options.body_bytes =
        bodies > 0 ? static_cast<int>(body_bytes / bodies) : 700;
    options.threads = absl::GetFlag(FLAGS_wrk_threads);
    options.connections = absl::GetFlag(FLAGS_wrk_connections);
    options.duration = absl::GetFlag(FLAGS_calibrate_duration);
    options.work_dir = settings.work_dir;
    const std::string load = LoadAverage();
    absl::StatusOr<Calibration> measured = Calibrate(options);
    if (!measured.ok()) {
      std::fprintf(stderr, "webhook-bench: calibration failed: %s\n",
                   std::string(measured.status().message()).c_str());
      return 1;
    }
    calibration = *measured;
    report["calibration"] = {
        {"command", calibration->command},
        {"body_bytes", options.body_bytes},
        {"requests_per_s", calibration->requests_per_second},
        {"p50_ms", FigureJson(calibration->p50_ms)},
        {"p99_ms", FigureJson(calibration->p99_ms)},
        {"load_average_before", load},
        {"wrk_output", calibration->output}};
  }
  const double ceiling = calibration ? calibration->requests_per_second : 0;

  const RunResult median = MedianOf(runs);
  const std::vector<Target> targets = CheckTargets(settings.scenario, median);

  FILE* out = ReportStream();
  std::fprintf(out, "\n== webhook-bench %s: %zu run(s) ==\n",
               settings.scenario.c_str(), runs.size());
  std::fprintf(out, "machine: %d CPUs, %s, %.1f GiB, kernel %s; data on %s\n",
               machine.cpus, machine.cpu_model.c_str(),
               machine.memory_bytes / 1073741824.0, machine.kernel.c_str(),
               fs.c_str());
  Json runs_json = Json::array();
  for (size_t r = 0; r < runs.size(); ++r) {
    Json run_json;
    Json phases = Json::array();
    for (const PhaseResult& phase : runs[r].phases) {
      std::fprintf(out, "\n-- run %zu: %s (load average %s -> %s)\n", r + 1,
                   phase.label.c_str(), phase.load_before.c_str(),
                   phase.load_after.c_str());
      PrintFigures(out, phase.figures, ceiling);
      if (!phase.memory.empty()) PrintMemory(out, phase.memory);
      std::fprintf(out, "%s", FormatLedger(phase.ledger).c_str());
      for (const std::string& note : phase.notes) {
        std::fprintf(out, "  note: %s\n", note.c_str());
      }
      Json phase_json;
      phase_json["label"] = phase.label;
      phase_json["load_average_before"] = phase.load_before;
      phase_json["load_average_after"] = phase.load_after;
      phase_json["figures"] = FiguresJson(phase.figures, ceiling);
      if (!phase.memory.empty())
        phase_json["memory"] = MemoryJson(phase.memory);
      phase_json["ledger"] = LedgerJson(phase.ledger);
      phase_json["notes"] = phase.notes;
      phases.push_back(std::move(phase_json));
    }
    if (!runs[r].summary.empty()) {
      std::fprintf(out, "-- run %zu summary\n", r + 1);
      PrintFigures(out, runs[r].summary, 0);
    }
    run_json["phases"] = std::move(phases);
    run_json["summary"] = FiguresJson(runs[r].summary, 0);
    runs_json.push_back(std::move(run_json));
  }
  report["runs"] = std::move(runs_json);
  if (runs.size() > 1) {
    std::fprintf(out, "\n-- medians of %zu runs\n", runs.size());
    Json phases = Json::array();
    for (const PhaseResult& phase : median.phases) {
      std::fprintf(out, "  [%s]\n", phase.label.c_str());
      PrintFigures(out, phase.figures, ceiling);
      phases.push_back({{"label", phase.label},
                        {"figures", FiguresJson(phase.figures, ceiling)}});
    }
    PrintFigures(out, median.summary, 0);
    report["median"] = {{"phases", std::move(phases)},
                        {"summary", FiguresJson(median.summary, 0)}};
  }
  if (calibration) {
    std::fprintf(out,
                 "\nloopback ceiling (sink alone, %s): %.0f requests/s, p50 "
                 "%.2f ms, p99 %.2f ms\n",
                 calibration->command.c_str(), calibration->requests_per_second,
                 calibration->p50_ms, calibration->p99_ms);
  }
  Json targets_json = Json::array();
  if (!targets.empty()) std::fprintf(out, "\ntargets (issue 6):\n");
  for (const Target& target : targets) {
    std::fprintf(out, "  %-8s %s\n", target.status.c_str(),
                 target.text.c_str());
    targets_json.push_back(
        {{"target", target.text}, {"status", target.status}});
  }
  report["targets"] = std::move(targets_json);
  report["ledger_balanced"] = balanced;
  std::fprintf(out, "\nledger: %s\n",
               balanced ? "every run balances" : "A RUN DOES NOT BALANCE");
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", report.dump(2).c_str());
  }
  std::fflush(stdout);

  sink->reset();
  if (!absl::GetFlag(FLAGS_keep_data)) {
    std::error_code error;
    std::filesystem::remove_all(settings.work_dir, error);
  } else {
    Progress("kept " + settings.work_dir);
  }
  return balanced ? 0 : 1;
}

}  // namespace
}  // namespace webhookd::bench

int main(int argc, char** argv) { return webhookd::bench::Main(argc, argv); }
