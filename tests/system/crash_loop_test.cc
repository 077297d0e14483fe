// The crash loop: under steady load, webhookd is killed with SIGKILL at
// random moments and restarted on the same data directory, again and again.
// Afterwards the ledger must balance: every acknowledged delivery arrived at
// least once, duplicates are few and follow a crash, and nothing arrived
// that the server did not create.
//
// CI runs 5 kills. The long run (tests/crash_loop.sh) sets CRASH_LOOP_KILLS
// (e.g. 25); CRASH_LOOP_SEED replays the random moments (counted in
// acknowledged deliveries) of an earlier run.

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/delivery_ledger.h"
#include "tests/support/eventually.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"
#include "tests/support/webhookd_process.h"

namespace webhookd {
namespace {

using testing::Context;
using testing::CreateEndpoint;
using testing::DeliveryLedger;
using testing::Eventually;
using testing::ExampleEvent;
using testing::FormatDeliveryId;
using testing::HttpReceiver;
using testing::MakeEndpoint;
using testing::ParseDeliveryId;
using testing::ReceivedRequest;
using testing::ReceiverResponse;
using testing::TestDir;
using testing::WebhookdProcess;
using Stub = webhook::v1::WebhookService::Stub;

constexpr int kDefaultKills = 5;
constexpr int kMaxInFlight = 8;
// Bounds on the load, whatever the number of kills.
constexpr int kMaxSubmits = 50000;
// The load's pace (a rate, not a wait for anything): at most 200 submits a
// second, so that a process being restarted meets few failing calls.
constexpr absl::Duration kSubmitPause = absl::Milliseconds(5);

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  int parsed = 0;
  if (value != nullptr && absl::SimpleAtoi(value, &parsed) && parsed > 0) {
    return parsed;
  }
  return fallback;
}

int64_t NowNanos() { return absl::ToUnixNanos(absl::Now()); }

// Submits events to whichever webhookd currently runs, until stopped.
class Load {
 public:
  void SetTarget(std::shared_ptr<Stub> stub) {
    absl::MutexLock lock(&mu_);
    stub_ = std::move(stub);
  }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  std::set<std::string> Acknowledged() const {
    absl::MutexLock lock(&mu_);
    return acknowledged_;
  }
  size_t AcknowledgedCount() const {
    absl::MutexLock lock(&mu_);
    return acknowledged_.size();
  }
  int failed() const { return failed_.load(); }

 private:
  void Run() {
    for (int i = 0; i < kMaxSubmits && !stop_; ++i) {
      std::shared_ptr<Stub> stub;
      {
        absl::MutexLock lock(&mu_);
        stub = stub_;
      }
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::seconds(2));
      webhook::v1::SubmitEventResponse response;
      grpc::Status status =
          stub->SubmitEvent(&context, ExampleEvent("load"), &response);
      if (status.ok()) {
        absl::MutexLock lock(&mu_);
        acknowledged_.insert(response.delivery_ids().begin(),
                             response.delivery_ids().end());
      } else {
        // Killed under us: the event may or may not have been stored.
        ++failed_;
      }
      absl::SleepFor(kSubmitPause);
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<int> failed_{0};
  std::thread thread_;
  mutable absl::Mutex mu_;
  std::shared_ptr<Stub> stub_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> acknowledged_ ABSL_GUARDED_BY(mu_);
};

std::shared_ptr<Stub> StubFor(int port) {
  return webhook::v1::WebhookService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
}

int CountWithStatus(Stub& stub, webhook::v1::DeliveryStatus status) {
  webhook::v1::ListDeliveriesRequest request;
  request.set_status(status);
  request.set_page_size(1000);
  webhook::v1::ListDeliveriesResponse response;
  grpc::Status rpc = stub.ListDeliveries(Context().get(), request, &response);
  EXPECT_TRUE(rpc.ok()) << rpc.error_message();
  return response.deliveries_size();
}

TEST(CrashLoopTest, LedgerBalancesAfterRepeatedKillNineUnderLoad) {
  const int kills = EnvInt("CRASH_LOOP_KILLS", kDefaultKills);
  const uint32_t seed = static_cast<uint32_t>(
      EnvInt("CRASH_LOOP_SEED", static_cast<int>(std::random_device()() >> 1)));
  std::printf("crash loop: %d kills, CRASH_LOOP_SEED=%u\n", kills, seed);
  std::mt19937 random(seed);
  std::uniform_int_distribution<int> kill_after_acks(4, 100);
  std::uniform_int_distribution<int> answer_ms(0, 30);

  TestDir dir;
  const std::string data = dir.Sub("data");
  // What the receiver got, and X-Webhook-Ids that are no delivery id; with
  // `random`, guarded by `mu`.
  absl::Mutex mu;
  DeliveryLedger ledger;
  std::vector<std::string> malformed;
  HttpReceiver receiver;
  receiver.SetHandler([&](const ReceivedRequest& request) {
    ReceiverResponse response;
    absl::MutexLock lock(&mu);
    absl::uint128 id;
    if (ParseDeliveryId(request.Header("X-Webhook-Id"), &id)) {
      ledger.Record(id, NowNanos());
    } else {
      malformed.push_back(request.Header("X-Webhook-Id"));
    }
    // Answers take a moment, so that some attempts are in flight at a kill.
    response.delay = absl::Milliseconds(answer_ms(random));
    return response;
  });
  const std::vector<std::string> flags = {
      absl::StrCat("--max_in_flight=", kMaxInFlight),
      "--retry_schedule=100ms,200ms,400ms", "--attempt_timeout=10s"};

  auto server = WebhookdProcess::StartServer(data, dir.path(), flags);
  ASSERT_TRUE(server->status().ok()) << server->status();
  CreateEndpoint(server->stub(), MakeEndpoint("load", receiver.Url("/a")));
  CreateEndpoint(server->stub(), MakeEndpoint("load", receiver.Url("/b")));
  Load load;
  load.SetTarget(StubFor(server->port()));
  load.Start();

  std::vector<int64_t> kill_times;
  // Lets load reach the current process: `n` more deliveries acknowledged.
  const auto acknowledge = [&load](size_t n) {
    const size_t before = load.AcknowledgedCount();
    return Eventually(
        [&load, before, n] { return load.AcknowledgedCount() >= before + n; });
  };
  for (int k = 0; k < kills; ++k) {
    // Kill this process at a random moment of its load: after 4 to 100
    // more acknowledged deliveries (two a submit).
    size_t kill_after;
    {
      absl::MutexLock lock(&mu);
      kill_after = static_cast<size_t>(kill_after_acks(random));
    }
    ASSERT_TRUE(acknowledge(kill_after)) << "no load reached process " << k + 1;
    kill_times.push_back(NowNanos());
    server->Signal(SIGKILL);
    ASSERT_NE(server->Wait(absl::Seconds(10)), -1);
    server = WebhookdProcess::StartServer(data, dir.path(), flags);
    ASSERT_TRUE(server->status().ok())
        << "restart " << k + 1 << ": " << server->status();
    load.SetTarget(StubFor(server->port()));
  }
  ASSERT_TRUE(acknowledge(4)) << "no load reached the last process";
  load.Stop();
  std::set<absl::uint128> acknowledged;
  for (const std::string& text : load.Acknowledged()) {
    absl::uint128 id;
    ASSERT_TRUE(ParseDeliveryId(text, &id)) << text;
    acknowledged.insert(id);
  }
  ASSERT_FALSE(acknowledged.empty());

  // Drain: every acknowledged delivery arrives, and nothing stays queued.
  Eventually(
      [&] {
        absl::MutexLock lock(&mu);
        return std::all_of(
            acknowledged.begin(), acknowledged.end(),
            [&](absl::uint128 id) { return ledger.Find(id) != nullptr; });
      },
      absl::Seconds(60));
  Eventually(
      [&] {
        return CountWithStatus(server->stub(),
                               webhook::v1::DELIVERY_STATUS_PENDING) +
                   CountWithStatus(server->stub(),
                                   webhook::v1::DELIVERY_STATUS_RETRYING) ==
               0;
      },
      absl::Seconds(60));
  EXPECT_EQ(
      CountWithStatus(server->stub(), webhook::v1::DELIVERY_STATUS_PENDING), 0);
  EXPECT_EQ(
      CountWithStatus(server->stub(), webhook::v1::DELIVERY_STATUS_RETRYING),
      0);

  // The ledger.
  DeliveryLedger received;
  std::vector<std::string> unknown;
  {
    absl::MutexLock lock(&mu);
    received = ledger;
    unknown = malformed;
  }
  std::vector<std::string> missing;
  for (absl::uint128 id : acknowledged) {
    if (received.Find(id) == nullptr) missing.push_back(FormatDeliveryId(id));
  }
  int unacknowledged_but_stored = 0;
  std::vector<std::string> unexplained_duplicates;
  for (const auto& [id, entry] : received.entries()) {
    // A resend follows a kill: the earlier attempt was in flight then (its
    // request may even reach the receiver just after the kill).
    const std::vector<int64_t> times = received.Times(id);
    for (size_t i = 1; i < times.size(); ++i) {
      const bool after_kill =
          std::any_of(kill_times.begin(), kill_times.end(), [&](int64_t kill) {
            return kill >= times[i - 1] - 500'000'000 && kill <= times[i];
          });
      if (!after_kill) unexplained_duplicates.push_back(FormatDeliveryId(id));
    }
    if (acknowledged.contains(id)) continue;
    // Its SubmitEvent failed (killed) after the event was stored: fine, if
    // the server really created it.
    webhook::v1::GetDeliveryRequest request;
    request.set_id(FormatDeliveryId(id));
    webhook::v1::GetDeliveryResponse response;
    grpc::Status status =
        server->stub().GetDelivery(Context().get(), request, &response);
    if (status.ok() && !response.delivery().payload().empty()) {
      ++unacknowledged_but_stored;
    } else {
      unknown.push_back(FormatDeliveryId(id));
    }
  }
  int succeeded = 0;
  for (absl::uint128 id : acknowledged) {
    webhook::v1::GetDeliveryRequest request;
    request.set_id(FormatDeliveryId(id));
    webhook::v1::GetDeliveryResponse response;
    if (server->stub().GetDelivery(Context().get(), request, &response).ok() &&
        response.delivery().status() == webhook::v1::DELIVERY_STATUS_SUCCESS) {
      ++succeeded;
    }
  }
  std::printf(
      "crash loop ledger: %d kills, %zu deliveries acknowledged (%d submits "
      "failed by a kill), %zu received, %zu missing, %d duplicates, %d "
      "unacknowledged but stored, %zu unknown, %d SUCCESS\n",
      kills, acknowledged.size(), load.failed(),
      static_cast<size_t>(received.unique()), missing.size(),
      static_cast<int>(received.duplicates()), unacknowledged_but_stored,
      unknown.size(), succeeded);

  EXPECT_THAT(missing, ::testing::IsEmpty()) << "acknowledged, never received";
  EXPECT_THAT(unknown, ::testing::IsEmpty()) << "received, never created";
  EXPECT_THAT(unexplained_duplicates, ::testing::IsEmpty())
      << "received twice without a kill between";
  EXPECT_LE(received.duplicates(), kills * kMaxInFlight)
      << "only attempts in flight at a kill are sent again";
  EXPECT_EQ(succeeded, static_cast<int>(acknowledged.size()));
  receiver.Stop();
}

}  // namespace
}  // namespace webhookd
