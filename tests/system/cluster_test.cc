// Clusters of real webhookd processes sharing one PostgreSQL database, under
// load: nodes killed with SIGKILL again and again, and the database stopped
// and started again. Afterwards the ledger must balance: every delivery a
// node acknowledged reached the receiver at least once and is recorded
// SUCCESS, duplicates follow a kill, and nothing arrived that no node
// created.
//
// On PostgreSQL a killed node's claims hold until their leases run out (the
// attempt timeout + 15 s, not settable apart), so the tests keep the attempt
// timeout small and give the drain time for one lease and a margin.

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/delivery_ledger.h"
#include "tests/support/eventually.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/postgres_server.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"
#include "tests/support/webhookd_process.h"

namespace webhookd {
namespace {

using testing::Context;
using testing::CreateEndpoint;
using testing::DeliveryLedger;
using testing::DeliveryWatch;
using testing::Eventually;
using testing::ExampleEvent;
using testing::FormatDeliveryId;
using testing::HttpReceiver;
using testing::LogTail;
using testing::MakeEndpoint;
using testing::ParseDeliveryId;
using testing::PostgresServer;
using testing::ReceivedRequest;
using testing::ReceiverResponse;
using testing::TestDir;
using testing::WebhookdProcess;
using Stub = webhook::v1::WebhookService::Stub;

constexpr char kThread[] = "cluster";
// Endpoints of kThread: each acknowledged event is this many deliveries.
constexpr int kEndpoints = 3;
// --max_in_flight of every node: the attempts a node runs at once, from
// the moment it takes a delivery until its outcome is in the database.
constexpr int kMaxInFlight = 8;
// How long the drain may take: a killed node's claims wait out their lease
// (--attempt_timeout + 15 s: 16 s), then the retry schedule and a loaded
// 2-core machine need a margin.
constexpr absl::Duration kDrainTimeout = absl::Seconds(90);
// The load's pace (a rate, not a wait for anything), so that the load
// outlasts the kills without piling up more work than the drain needs.
constexpr absl::Duration kSubmitPause = absl::Milliseconds(30);

std::vector<std::string> NodeFlags(const std::string& conninfo) {
  return {"--postgres=" + conninfo, "--attempt_timeout=1s",
          "--retry_schedule=200ms,200ms,200ms",
          absl::StrCat("--max_in_flight=", kMaxInFlight)};
}

std::shared_ptr<Stub> StubFor(int port) {
  return webhook::v1::WebhookService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
}

int64_t NowNanos() { return absl::ToUnixNanos(absl::Now()); }

// An HTTP receiver on loopback that answers 200 after 0 to 30 ms (so that
// some attempts are in flight whenever a node dies) and keeps a ledger of
// the X-Webhook-Ids it got. It cannot tell which node sent a request: the
// nodes share the receiver's URLs and send no header of their own.
class LedgerReceiver {
 public:
  LedgerReceiver() {
    receiver_.SetHandler([this](const ReceivedRequest& request) {
      ReceiverResponse response;
      absl::MutexLock lock(&mu_);
      absl::uint128 id;
      if (ParseDeliveryId(request.Header("X-Webhook-Id"), &id)) {
        ledger_.Record(id, NowNanos());
      } else {
        malformed_.push_back(request.Header("X-Webhook-Id"));
      }
      response.delay = absl::Milliseconds(answer_ms_(random_));
      return response;
    });
  }

  std::string Url(const std::string& path) const { return receiver_.Url(path); }
  DeliveryLedger Ledger() const {
    absl::MutexLock lock(&mu_);
    return ledger_;
  }
  // X-Webhook-Ids that are no delivery id.
  std::vector<std::string> Malformed() const {
    absl::MutexLock lock(&mu_);
    return malformed_;
  }
  // Whether every id of `ids` was received.
  bool ReceivedAll(const std::set<absl::uint128>& ids) const {
    absl::MutexLock lock(&mu_);
    for (absl::uint128 id : ids) {
      if (ledger_.Find(id) == nullptr) return false;
    }
    return true;
  }
  void Stop() { receiver_.Stop(); }

 private:
  mutable absl::Mutex mu_;
  DeliveryLedger ledger_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> malformed_ ABSL_GUARDED_BY(mu_);
  std::mt19937 random_ ABSL_GUARDED_BY(mu_){20261201};
  std::uniform_int_distribution<int> answer_ms_ ABSL_GUARDED_BY(mu_){0, 30};
  // Last, so that it stops (joining the threads that call the handler)
  // before the members above go.
  HttpReceiver receiver_;
};

// One SubmitEvent call of the load.
struct SubmitRecord {
  int node = 0;
  // Load::Mark() counts when the call was sent and when it was answered.
  int64_t sent_mark = 0;
  int64_t answered_mark = 0;
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::vector<std::string> delivery_ids;  // OK calls only.
  absl::Duration latency;
};

// Submits events round-robin through the nodes that are up, from a thread
// of its own, until stopped or out of its bounds (a number of calls and a
// time). Safe for concurrent use.
class Load {
 public:
  Load(int nodes, int max_submits, absl::Duration max_time)
      : max_submits_(max_submits), max_time_(max_time), stubs_(nodes) {}
  Load(const Load&) = delete;
  Load& operator=(const Load&) = delete;
  ~Load() { Stop(); }

  // Where node `node`'s calls go; nullptr while it is down. Returns a new
  // mark: calls sent from now on carry it or a later one.
  int64_t SetNode(int node, std::shared_ptr<Stub> stub) {
    absl::MutexLock lock(&mu_);
    stubs_[node] = std::move(stub);
    return ++mark_;
  }
  // A new mark, to tell the calls sent after a moment from those before.
  int64_t Mark() {
    absl::MutexLock lock(&mu_);
    return ++mark_;
  }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }

  // Blocks until `n` calls through `node` sent at `since_mark` or later
  // were answered with `code`; false after `timeout`, or at once once the
  // load has ended.
  bool AwaitAnswers(int node, int64_t since_mark, grpc::StatusCode code, int n,
                    absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    absl::MutexLock lock(&mu_);
    while (CountLocked(node, since_mark, code) < n) {
      if (done_ || cv_.WaitWithDeadline(&mu_, deadline)) {
        return CountLocked(node, since_mark, code) >= n;
      }
    }
    return true;
  }

  std::vector<SubmitRecord> Records() const {
    absl::MutexLock lock(&mu_);
    return records_;
  }

 private:
  void Run() {
    const absl::Time end = absl::Now() + max_time_;
    size_t next = 0;
    for (int i = 0; i < max_submits_ && absl::Now() < end; ++i) {
      SubmitRecord record;
      std::shared_ptr<Stub> stub;
      {
        absl::MutexLock lock(&mu_);
        if (stop_) break;
        // The next node that is up, if any.
        for (size_t tried = 0; tried < stubs_.size() && stub == nullptr;
             ++tried) {
          record.node = static_cast<int>(next);
          stub = stubs_[next];
          next = (next + 1) % stubs_.size();
        }
        record.sent_mark = mark_;
      }
      if (stub != nullptr) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::seconds(5));
        webhook::v1::SubmitEventResponse response;
        const absl::Time sent = absl::Now();
        const grpc::Status status =
            stub->SubmitEvent(&context, ExampleEvent(kThread), &response);
        record.latency = absl::Now() - sent;
        record.code = status.error_code();
        record.delivery_ids.assign(response.delivery_ids().begin(),
                                   response.delivery_ids().end());
        absl::MutexLock lock(&mu_);
        record.answered_mark = mark_;
        records_.push_back(std::move(record));
        cv_.SignalAll();
      }
      absl::SleepFor(kSubmitPause);
    }
    absl::MutexLock lock(&mu_);
    done_ = true;
    cv_.SignalAll();
  }

  int CountLocked(int node, int64_t since_mark, grpc::StatusCode code) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return static_cast<int>(std::count_if(
        records_.begin(), records_.end(), [&](const SubmitRecord& record) {
          return record.node == node && record.sent_mark >= since_mark &&
                 record.code == code;
        }));
  }

  const int max_submits_;
  const absl::Duration max_time_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;  // A call was answered, or the load ended.
  std::vector<std::shared_ptr<Stub>> stubs_ ABSL_GUARDED_BY(mu_);
  int64_t mark_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<SubmitRecord> records_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

// "code 0: 12 (mean 9ms, max 20ms); code 14: ...": the calls answered
// with each code, and how long they took.
std::string AnswerSummary(const std::vector<SubmitRecord>& records) {
  struct Answers {
    int count = 0;
    absl::Duration total;
    absl::Duration max;
  };
  std::map<grpc::StatusCode, Answers> by_code;
  for (const SubmitRecord& record : records) {
    Answers& answers = by_code[record.code];
    ++answers.count;
    answers.total += record.latency;
    answers.max = std::max(answers.max, record.latency);
  }
  std::vector<std::string> parts;
  for (const auto& [code, answers] : by_code) {
    parts.push_back(absl::StrCat(
        "code ", code, ": ", answers.count, " (mean ",
        absl::FormatDuration(
            absl::Trunc(answers.total / answers.count, absl::Milliseconds(1))),
        ", max ",
        absl::FormatDuration(absl::Trunc(answers.max, absl::Milliseconds(1))),
        ")"));
  }
  return absl::StrJoin(parts, "; ");
}

// The delivery ids of the calls answered OK, each with the node that
// acknowledged it.
std::map<std::string, int> Acknowledged(
    const std::vector<SubmitRecord>& records) {
  std::map<std::string, int> acknowledged;
  for (const SubmitRecord& record : records) {
    if (record.code != grpc::StatusCode::OK) continue;
    for (const std::string& id : record.delivery_ids) {
      acknowledged[id] = record.node;
    }
  }
  return acknowledged;
}

// What one node's StreamDeliveries showed, read from a thread of its own.
class StreamRecorder {
 public:
  struct Seen {
    // A message of the delivery as created: PENDING, no attempt yet.
    bool created = false;
    bool succeeded = false;
  };

  // Subscribes (returns once the server has) and starts reading.
  explicit StreamRecorder(int port)
      : stub_(StubFor(port)), watch_(*stub_, {}, absl::Minutes(3)) {
    watch_.WaitSubscribed();
    thread_ = std::thread([this] { Run(); });
  }
  StreamRecorder(const StreamRecorder&) = delete;
  StreamRecorder& operator=(const StreamRecorder&) = delete;
  ~StreamRecorder() { Stop(); }

  // Ends the stream and returns how it had ended before: OK if it was still
  // open.
  grpc::Status Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    watch_.Cancel();
    if (thread_.joinable()) thread_.join();
    absl::MutexLock lock(&mu_);
    return ended_early_;
  }

  absl::flat_hash_map<std::string, Seen> SeenById() const {
    absl::MutexLock lock(&mu_);
    return seen_;
  }
  // Whether SUCCESS was seen for every id of `ids`.
  bool SucceededAll(const std::map<std::string, int>& ids) const {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, node] : ids) {
      auto it = seen_.find(id);
      if (it == seen_.end() || !it->second.succeeded) return false;
    }
    return true;
  }

 private:
  void Run() {
    webhook::v1::Delivery delivery;
    for (int i = 0; i < 1'000'000 && watch_.Next(&delivery); ++i) {
      absl::MutexLock lock(&mu_);
      Seen& seen = seen_[delivery.id()];
      if (delivery.status() == webhook::v1::DELIVERY_STATUS_PENDING &&
          delivery.attempts() == 0) {
        seen.created = true;
      }
      if (delivery.status() == webhook::v1::DELIVERY_STATUS_SUCCESS) {
        seen.succeeded = true;
      }
    }
    const grpc::Status status = watch_.Drain();
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      ended_early_ = status.ok() ? grpc::Status(grpc::StatusCode::UNKNOWN,
                                                "the stream ended with OK")
                                 : status;
    }
  }

  const std::shared_ptr<Stub> stub_;
  DeliveryWatch watch_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Seen> seen_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status ended_early_ ABSL_GUARDED_BY(mu_);
};

// The nodes of a cluster, each with a data directory and a log of its own
// (kept across restarts).
class Cluster {
 public:
  Cluster(const TestDir& dir, std::vector<std::string> flags, int nodes)
      : dir_(dir), flags_(std::move(flags)), nodes_(nodes) {}

  // Starts node `i` (again); returns whether it serves.
  ::testing::AssertionResult Start(int i) {
    WebhookdProcess::Options options;
    options.data_dir = dir_.Sub(absl::StrCat("data", i));
    options.log_path = dir_.Sub(absl::StrCat("node", i, ".log"));
    options.flags = flags_;
    nodes_[i] = WebhookdProcess::Start(options);
    if (nodes_[i]->status().ok()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "node " << i << ": " << nodes_[i]->status();
  }

  WebhookdProcess& node(int i) { return *nodes_[i]; }

  // The end of every node's log, for failure messages.
  std::string Logs() const {
    std::string logs;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i] == nullptr) continue;
      absl::StrAppend(&logs, "--- node ", i, " ---\n",
                      LogTail(nodes_[i]->Log()), "\n");
    }
    return logs;
  }

 private:
  const TestDir& dir_;
  const std::vector<std::string> flags_;
  std::vector<std::unique_ptr<WebhookdProcess>> nodes_;
};

// GetDelivery through `stub`; the delivery, or why not.
absl::StatusOr<webhook::v1::Delivery> GetDelivery(Stub& stub,
                                                  const std::string& id) {
  webhook::v1::GetDeliveryRequest request;
  request.set_id(id);
  webhook::v1::GetDeliveryResponse response;
  const grpc::Status status =
      stub.GetDelivery(Context().get(), request, &response);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        status.error_message());
  }
  return response.delivery();
}

// Deliveries with `status`, up to 1000.
int CountWithStatus(Stub& stub, webhook::v1::DeliveryStatus status) {
  webhook::v1::ListDeliveriesRequest request;
  request.set_status(status);
  request.set_page_size(1000);
  webhook::v1::ListDeliveriesResponse response;
  const grpc::Status rpc =
      stub.ListDeliveries(Context().get(), request, &response);
  EXPECT_TRUE(rpc.ok()) << rpc.error_message();
  return response.deliveries_size();
}

// What DrainAndCheckLedger found.
struct LedgerReport {
  // The endpoint of each acknowledged delivery, by delivery id.
  std::map<std::string, std::string> endpoint_of;
  DeliveryLedger received;
  // Ids received more than once.
  int duplicated_ids = 0;
  // Ids received again without a kill shortly before.
  std::vector<std::string> unexplained_duplicates;
  // Received, not acknowledged (the submit failed), and stored.
  int unacknowledged_but_stored = 0;
};

// The drain and the ledger, the same for every test: waits (up to
// kDrainTimeout in all) until every acknowledged delivery was received and
// is SUCCESS and nothing is left queued, then checks that every
// acknowledged delivery was received and that every one received was
// created by a node. `kill_times` (NowNanos) explain duplicates.

LedgerReport DrainAndCheckLedger(Stub& stub, const LedgerReceiver& receiver,
                                 const std::map<std::string, int>& acknowledged,
                                 const std::vector<int64_t>& kill_times,
                                 const Cluster& cluster) {
  LedgerReport report;
  std::set<absl::uint128> ids;
  for (const auto& [text, node] : acknowledged) {
    absl::uint128 id;
    EXPECT_TRUE(ParseDeliveryId(text, &id)) << text;
    ids.insert(id);
  }
  const absl::Time deadline = absl::Now() + kDrainTimeout;
  const bool all_received =
      Eventually([&] { return receiver.ReceivedAll(ids); }, kDrainTimeout);
  // SUCCESS is final: each is asked for until seen once.
  std::set<std::string> unfinished;
  for (const auto& [id, node] : acknowledged) unfinished.insert(id);
  std::string last_seen;
  const bool all_succeeded = Eventually(
      [&] {
        while (!unfinished.empty()) {
          const std::string& id = *unfinished.begin();
          absl::StatusOr<webhook::v1::Delivery> delivery =
              GetDelivery(stub, id);
          if (!delivery.ok() ||
              delivery->status() != webhook::v1::DELIVERY_STATUS_SUCCESS) {
            last_seen = delivery.ok() ? delivery->ShortDebugString()
                                      : delivery.status().ToString();
            return false;
          }
          report.endpoint_of[id] = delivery->endpoint_id();
          unfinished.erase(unfinished.begin());
        }
        return true;
      },
      std::max(deadline - absl::Now(), absl::Seconds(1)));
  // Deliveries whose submit failed but were stored are sent too.
  const bool queue_empty = Eventually(
      [&] {
        return CountWithStatus(stub, webhook::v1::DELIVERY_STATUS_PENDING) +
                   CountWithStatus(stub,
                                   webhook::v1::DELIVERY_STATUS_RETRYING) ==
               0;
      },
      std::max(deadline - absl::Now(), absl::Seconds(1)));

  report.received = receiver.Ledger();
  std::vector<std::string> missing;
  for (absl::uint128 id : ids) {
    if (report.received.Find(id) == nullptr) {
      missing.push_back(FormatDeliveryId(id));
    }
  }
  EXPECT_TRUE(all_received)
      << missing.size() << " acknowledged deliveries "
      << "never received, e.g. " << (missing.empty() ? "" : missing.front());
  EXPECT_THAT(missing, ::testing::IsEmpty()) << "acknowledged, never received";
  EXPECT_TRUE(all_succeeded)
      << unfinished.size() << " acknowledged deliveries not SUCCESS after "
      << kDrainTimeout << "; the first: " << last_seen << "\n"
      << cluster.Logs();
  EXPECT_TRUE(queue_empty) << "deliveries left PENDING or RETRYING";

  std::vector<std::string> unknown = receiver.Malformed();
  for (const auto& [id, entry] : report.received.entries()) {
    const std::vector<int64_t> times = report.received.Times(id);
    if (times.size() > 1) ++report.duplicated_ids;
    // A resend follows a kill: the earlier attempt was in flight then (its
    // request may even reach the receiver just after the kill).
    for (size_t i = 1; i < times.size(); ++i) {
      const bool after_kill =
          std::any_of(kill_times.begin(), kill_times.end(), [&](int64_t kill) {
            return kill >= times[i - 1] - 500'000'000 && kill <= times[i];
          });
      if (!after_kill) {
        report.unexplained_duplicates.push_back(FormatDeliveryId(id));
      }
    }
    const std::string text = FormatDeliveryId(id);
    if (acknowledged.contains(text)) continue;
    // Its submit failed (a kill, the database going) after the event was
    // stored: fine, if a node really created it.
    absl::StatusOr<webhook::v1::Delivery> delivery = GetDelivery(stub, text);
    if (delivery.ok()) {
      ++report.unacknowledged_but_stored;
    } else {
      unknown.push_back(text);
    }
  }
  EXPECT_THAT(unknown, ::testing::IsEmpty()) << "received, never created";
  return report;
}

// The successful attempts of every endpoint, as GetEndpointStats counts
// them, must cover the acknowledged deliveries (each has one recorded
// success) and cannot exceed the requests received (each success recorded
// is one received).
void CheckEndpointStats(Stub& stub, const std::vector<std::string>& endpoints,
                        const LedgerReport& report) {
  std::map<std::string, int64_t> acknowledged_of;
  for (const auto& [id, endpoint] : report.endpoint_of) {
    ++acknowledged_of[endpoint];
  }
  int64_t successes = 0;
  for (const std::string& endpoint : endpoints) {
    webhook::v1::GetEndpointStatsRequest request;
    request.set_endpoint_id(endpoint);
    webhook::v1::GetEndpointStatsResponse response;
    const grpc::Status status =
        stub.GetEndpointStats(Context().get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    const webhook::v1::EndpointStats& stats = response.stats();
    std::printf("stats of %s: %lld attempts, %lld successful, %lld failed\n",
                endpoint.c_str(),
                static_cast<long long>(stats.total_deliveries()),
                static_cast<long long>(stats.successful_deliveries()),
                static_cast<long long>(stats.failed_deliveries()));
    EXPECT_GE(stats.successful_deliveries(), acknowledged_of[endpoint])
        << endpoint;
    EXPECT_EQ(stats.total_deliveries(),
              stats.successful_deliveries() + stats.failed_deliveries())
        << endpoint;
    successes += stats.successful_deliveries();
  }
  EXPECT_LE(successes, report.received.total());
}

std::vector<std::string> CreateEndpoints(Stub& stub,
                                         const LedgerReceiver& receiver) {
  std::vector<std::string> endpoints;
  for (int i = 0; i < kEndpoints; ++i) {
    endpoints.push_back(
        CreateEndpoint(
            stub, MakeEndpoint(kThread, receiver.Url(absl::StrCat("/e", i))))
            .id());
  }
  return endpoints;
}

TEST(ClusterTest, ThreeNodesSurviveRepeatedKillNine) {
  constexpr int kNodes = 3;
  constexpr int kKills = 10;
  absl::StatusOr<PostgresServer*> postgres = testing::SharedPostgresServer();
  ASSERT_TRUE(postgres.ok()) << postgres.status();
  // A new database each run (--gtest_repeat keeps the shared server).
  static int runs = 0;
  absl::StatusOr<std::string> conninfo = (*postgres)->CreateDatabase(
      absl::StrCat("three_nodes_kill_nine_", ++runs));
  ASSERT_TRUE(conninfo.ok()) << conninfo.status();

  TestDir dir;
  LedgerReceiver receiver;
  Cluster cluster(dir, NodeFlags(*conninfo), kNodes);
  // The endpoints exist before nodes 1 and 2 start, so that every node
  // knows them from its first submit on.
  ASSERT_TRUE(cluster.Start(0));
  const std::vector<std::string> endpoints =
      CreateEndpoints(cluster.node(0).stub(), receiver);
  ASSERT_TRUE(cluster.Start(1));
  ASSERT_TRUE(cluster.Start(2));

  // Node 0 is never killed: its stream must show the other nodes' work.
  StreamRecorder stream(cluster.node(0).port());
  Load load(kNodes, /*max_submits=*/700, /*max_time=*/absl::Seconds(90));
  std::vector<int64_t> since(kNodes);
  for (int i = 0; i < kNodes; ++i) {
    since[i] = load.SetNode(i, StubFor(cluster.node(i).port()));
  }
  load.Start();
  const absl::Time load_start = absl::Now();

  std::vector<int64_t> kill_times;
  int64_t last_restart = since[0];
  // From each SIGKILL until the node serves again.
  absl::Duration restarts;
  absl::Duration slowest_restart;
  for (int k = 0; k < kKills; ++k) {
    const int victim = 1 + k % 2;
    // Kill it once it acknowledged 10 to 20 events since the last restart,
    // while the attempts of their deliveries run: 1 to 3 s apart at the
    // load's pace, so that the kills go on for about a lease (16 s) or
    // more, and the claims of the first killed nodes are taken over (also
    // by restarted nodes) while nodes keep dying.
    ASSERT_TRUE(load.AwaitAnswers(victim, last_restart, grpc::StatusCode::OK,
                                  10 + 5 * (k % 3), absl::Seconds(30)))
        << "kill " << k + 1 << ": no load reached node " << victim << "\n"
        << cluster.Logs();
    kill_times.push_back(NowNanos());
    cluster.node(victim).Signal(SIGKILL);
    const int status = cluster.node(victim).Wait(absl::Seconds(10));
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "kill " << k + 1 << ": wait status " << status;
    load.SetNode(victim, nullptr);
    ASSERT_TRUE(cluster.Start(victim)) << "restart " << k + 1;
    since[victim] = load.SetNode(victim, StubFor(cluster.node(victim).port()));
    last_restart = since[victim];
    const absl::Duration restart =
        absl::Now() - absl::FromUnixNanos(kill_times.back());
    restarts += restart;
    slowest_restart = std::max(slowest_restart, restart);
  }
  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(load.AwaitAnswers(i, since[i], grpc::StatusCode::OK, 2,
                                  absl::Seconds(30)))
        << "no load reached node " << i << " after the kills";
  }
  load.Stop();
  const absl::Duration load_time = absl::Now() - load_start;

  const std::vector<SubmitRecord> records = load.Records();
  const std::map<std::string, int> acknowledged = Acknowledged(records);
  int bad_responses = 0;
  for (const SubmitRecord& record : records) {
    if (record.code == grpc::StatusCode::OK &&
        record.delivery_ids.size() != kEndpoints) {
      ++bad_responses;
    }
  }
  EXPECT_EQ(bad_responses, 0) << "acknowledged events without a delivery "
                                 "for each endpoint";
  ASSERT_FALSE(acknowledged.empty());

  LedgerReport report = DrainAndCheckLedger(cluster.node(0).stub(), receiver,
                                            acknowledged, kill_times, cluster);
  const absl::Duration drain_time = absl::Now() - load_start - load_time;

  // Only an attempt in flight when its node was killed is sent again (by
  // the node that claims the delivery once the lease ran out): the killed
  // node had taken it and its outcome was not yet in the database. A node
  // counts an attempt in flight from the moment it takes the delivery
  // until the outcome is written (the scheduler settles it after the
  // write), and runs at most --max_in_flight of them, so each kill leaves
  // at most kMaxInFlight deliveries to be sent twice.
  EXPECT_LE(report.duplicated_ids, kKills * kMaxInFlight);
  EXPECT_THAT(report.unexplained_duplicates, ::testing::IsEmpty())
      << "received twice without a kill between";
  for (const auto& [id, entry] : report.received.entries()) {
    EXPECT_LE(entry.count, 1 + kKills) << FormatDeliveryId(id);
  }

  // Node 0's stream saw every acknowledged delivery created and succeed,
  // also (above all) those created on nodes 1 and 2: by the cluster feed.
  // Its SUCCESS messages may trail GetDelivery a little.
  Eventually([&] { return stream.SucceededAll(acknowledged); });
  const grpc::Status stream_end = stream.Stop();
  EXPECT_TRUE(stream_end.ok())
      << "the stream ended early: " << stream_end.error_code() << " "
      << stream_end.error_message();
  const auto seen = stream.SeenById();
  // By the node that acknowledged them.
  std::vector<int> seen_created(kNodes);
  std::vector<std::string> not_seen_created;
  std::vector<std::string> not_seen_succeeded;
  for (const auto& [id, node] : acknowledged) {
    auto it = seen.find(id);
    if (it == seen.end() || !it->second.created) {
      not_seen_created.push_back(absl::StrCat(id, " (node ", node, ")"));
    } else {
      ++seen_created[node];
    }
    if (it == seen.end() || !it->second.succeeded) {
      not_seen_succeeded.push_back(absl::StrCat(id, " (node ", node, ")"));
    }
  }
  EXPECT_GT(seen_created[1], 0);
  EXPECT_GT(seen_created[2], 0);
  EXPECT_THAT(not_seen_created, ::testing::IsEmpty())
      << "node 0's stream showed no creation of these";
  EXPECT_THAT(not_seen_succeeded, ::testing::IsEmpty())
      << "node 0's stream showed no SUCCESS of these";

  CheckEndpointStats(cluster.node(0).stub(), endpoints, report);

  std::vector<int> acknowledged_by(kNodes);
  for (const auto& [id, node] : acknowledged) ++acknowledged_by[node];
  std::printf(
      "three nodes, %d kills: %zu submits (%s), %zu deliveries acknowledged "
      "(%d/%d/%d through nodes 0/1/2), %lld received, %d ids received more "
      "than once (%lld extra receipts), %d unacknowledged but stored; "
      "restarts took %s (mean), %s (max); load phase %s, drain %s\n",
      kKills, records.size(), AnswerSummary(records).c_str(),
      acknowledged.size(), acknowledged_by[0], acknowledged_by[1],
      acknowledged_by[2], static_cast<long long>(report.received.unique()),
      report.duplicated_ids,
      static_cast<long long>(report.received.duplicates()),
      report.unacknowledged_but_stored,
      absl::FormatDuration(
          absl::Trunc(restarts / kKills, absl::Milliseconds(1)))
          .c_str(),
      absl::FormatDuration(absl::Trunc(slowest_restart, absl::Milliseconds(1)))
          .c_str(),
      absl::FormatDuration(load_time).c_str(),
      absl::FormatDuration(drain_time).c_str());
  receiver.Stop();
}

TEST(ClusterTest, DatabaseStoppedUnderLoadLosesNothing) {
  constexpr int kNodes = 2;
  // Calls each node must answer UNAVAILABLE before the database comes
  // back: about 5 s of outage at the load's pace, so that a lease renewal
  // (due every third of the 16 s lease) falls into it, while the leases
  // still hold when the database returns.
  constexpr int kOutageAnswers = 80;
  const absl::Time test_start = absl::Now();
  // A server of its own: stopping it must not disturb other tests.
  absl::StatusOr<std::unique_ptr<PostgresServer>> postgres =
      PostgresServer::Start();
  ASSERT_TRUE(postgres.ok()) << postgres.status();
  absl::StatusOr<std::string> conninfo =
      (*postgres)->CreateDatabase("database_stopped");
  ASSERT_TRUE(conninfo.ok()) << conninfo.status();

  TestDir dir;
  LedgerReceiver receiver;
  Cluster cluster(dir, NodeFlags(*conninfo), kNodes);
  ASSERT_TRUE(cluster.Start(0));
  const std::vector<std::string> endpoints =
      CreateEndpoints(cluster.node(0).stub(), receiver);
  ASSERT_TRUE(cluster.Start(1));

  Load load(kNodes, /*max_submits=*/600, /*max_time=*/absl::Seconds(60));
  int64_t since = 0;
  for (int i = 0; i < kNodes; ++i) {
    since = load.SetNode(i, StubFor(cluster.node(i).port()));
  }
  load.Start();
  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(load.AwaitAnswers(i, since, grpc::StatusCode::OK, 20,
                                  absl::Seconds(30)))
        << "no load reached node " << i << "\n"
        << cluster.Logs();
  }

  ASSERT_TRUE((*postgres)->Stop().ok());
  const absl::Time outage_start = absl::Now();
  const int64_t outage_mark = load.Mark();
  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(load.AwaitAnswers(i, outage_mark, grpc::StatusCode::UNAVAILABLE,
                                  kOutageAnswers, absl::Seconds(30)))
        << "node " << i << " did not answer UNAVAILABLE without its database\n"
        << cluster.Logs();
  }
  const int64_t restart_mark = load.Mark();
  ASSERT_TRUE((*postgres)->StartAgain().ok()) << (*postgres)->Log();
  const absl::Duration outage = absl::Now() - outage_start;
  const int64_t recovered_mark = load.Mark();
  // The same processes serve again, by themselves.
  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(load.AwaitAnswers(i, recovered_mark, grpc::StatusCode::OK, 20,
                                  absl::Seconds(30)))
        << "node " << i << " did not recover with its database\n"
        << cluster.Logs();
  }
  load.Stop();
  const absl::Duration load_time = absl::Now() - test_start;

  const std::vector<SubmitRecord> records = load.Records();
  // Calls sent and answered while the database was down: none may be
  // acknowledged, and each must say UNAVAILABLE (retry), nothing else.
  std::map<grpc::StatusCode, int> outage_answers;
  for (const SubmitRecord& record : records) {
    if (record.sent_mark >= outage_mark &&
        record.answered_mark < restart_mark) {
      ++outage_answers[record.code];
    }
  }
  EXPECT_FALSE(outage_answers.contains(grpc::StatusCode::OK))
      << "acknowledged without a database";
  for (const auto& [code, count] : outage_answers) {
    EXPECT_EQ(code, grpc::StatusCode::UNAVAILABLE)
        << count << " calls during the outage";
  }
  EXPECT_GE(outage_answers[grpc::StatusCode::UNAVAILABLE],
            kNodes * kOutageAnswers);
  const std::map<std::string, int> acknowledged = Acknowledged(records);
  ASSERT_FALSE(acknowledged.empty());

  LedgerReport report = DrainAndCheckLedger(cluster.node(0).stub(), receiver,
                                            acknowledged, {}, cluster);
  const absl::Duration drain_time = absl::Now() - test_start - load_time;
  CheckEndpointStats(cluster.node(0).stub(), endpoints, report);
  // No node died: whatever a node sent during the outage it still held the
  // claim of, and it writes the outcome once the database is back, so
  // nothing is sent twice, as long as the claims held through the outage.
  // They do if it was shorter than two thirds of the 16 s lease (a renewal
  // is due every third), as it is unless the machine is badly overloaded.
  if (outage < absl::Seconds(16) * 2 / 3) {
    EXPECT_EQ(report.duplicated_ids, 0);
  } else {
    std::printf("the outage outlasted the leases: duplicates allowed\n");
  }

  std::printf(
      "two nodes, database stopped for %s: %zu submits (%s), %d answered "
      "during the outage, %zu deliveries acknowledged, %lld received, %d ids "
      "received more than once, %d unacknowledged but stored; load phase %s, "
      "drain %s\n",
      absl::FormatDuration(outage).c_str(), records.size(),
      AnswerSummary(records).c_str(),
      outage_answers[grpc::StatusCode::UNAVAILABLE], acknowledged.size(),
      static_cast<long long>(report.received.unique()), report.duplicated_ids,
      report.unacknowledged_but_stored, absl::FormatDuration(load_time).c_str(),
      absl::FormatDuration(drain_time).c_str());
  receiver.Stop();
}

}  // namespace
}  // namespace webhookd
