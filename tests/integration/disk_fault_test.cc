// Disk faults: writes failing with a full or broken disk, and a corrupted
// database at start-up, repaired with webhookd --repair.

#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/caller.h"
#include "server/common/clock.h"
#include "server/delivery/change_bus.h"
#include "server/delivery/delivery_engine.h"
#include "server/delivery/endpoint_manager.h"
#include "server/delivery/scheduler.h"
#include "server/security/target_url.h"
#include "storage/leveldb/leveldb_store.h"
#include "tests/support/eventually.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_http_sender.h"
#include "tests/support/fault_env.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"
#include "tests/support/webhookd_process.h"

namespace webhookd {
namespace {

using testing::Context;
using testing::CreateEndpoint;
using testing::Eventually;
using testing::ExampleEvent;
using testing::ExitedWith;
using testing::FakeClock;
using testing::FakeHttpSender;
using testing::FaultInjectionEnv;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using testing::IsFinished;
using testing::MakeEndpoint;
using testing::ReceivedRequest;
using testing::ReceiverResponse;
using testing::Submit;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::WaitFinished;
using testing::WebhookdProcess;

grpc::Status TrySubmit(webhook::v1::WebhookService::Stub& stub,
                       webhook::v1::SubmitEventResponse* response) {
  return stub.SubmitEvent(Context().get(), ExampleEvent("thread-1"), response);
}

class DiskFaultTest : public ::testing::Test {
 protected:
  DiskFaultTest() {
    server_.set_storage_env(&env_);
    server_.Start();
  }
  ~DiskFaultTest() override { server_.Stop(); }  // Before env_ goes.

  webhook::v1::WebhookService::Stub& stub() { return server_.stub(); }

  TestDir dir_;
  FaultInjectionEnv env_;
  HttpReceiver receiver_;
  TestServer server_{TestServerOptions(dir_.Sub("data"))};
};

// 8 keys of 6 copies each, then 24 submits without a key.
constexpr int kKeys = 8;
constexpr int kCopiesPerKey = 6;
constexpr int kUnkeyed = 24;
constexpr int kKeyed = kKeys * kCopiesPerKey;
constexpr int kSubmits = kKeyed + kUnkeyed;
constexpr size_t kDistinct = kKeys + kUnkeyed;

// Submit i of kSubmits on `thread`: a copy of key i % kKeys, or unkeyed.
webhook::v1::SubmitEventRequest GroupSubmit(int i, const std::string& thread) {
  webhook::v1::SubmitEventRequest request = ExampleEvent(thread);
  if (i < kKeyed) request.set_idempotency_key(absl::StrCat("key-", i % kKeys));
  return request;
}

TEST_F(DiskFaultTest, ConcurrentSubmitsStoreEachKeyOnceAndAnswerCopiesAlike) {
  // Submits racing for the commit thread, some with the same idempotency
  // key: however they fall into synced writes, each is stored once and
  // every copy of a key gets the first one's answer. (Which submits share
  // a write, the server cannot show; GroupCommitTest counts that with the
  // engine alone.)
  CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url()));
  std::vector<webhook::v1::SubmitEventResponse> responses(kSubmits);
  std::vector<grpc::Status> statuses(kSubmits);
  std::vector<std::thread> threads;
  for (int i = 0; i < kSubmits; ++i) {
    threads.emplace_back([&, i] {
      statuses[i] = stub().SubmitEvent(
          Context().get(), GroupSubmit(i, "thread-1"), &responses[i]);
    });
  }
  for (std::thread& thread : threads) thread.join();

  std::set<std::string> event_ids;
  for (int i = 0; i < kSubmits; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_message();
    ASSERT_EQ(responses[i].delivery_ids_size(), 1);
    if (i < kKeyed) {
      // The same answer, but for `replayed`, which only the first copy to
      // be stored lacks.
      webhook::v1::SubmitEventResponse copy = responses[i];
      webhook::v1::SubmitEventResponse first = responses[i % kKeys];
      copy.clear_replayed();
      first.clear_replayed();
      EXPECT_EQ(copy.SerializeAsString(), first.SerializeAsString())
          << "copy " << i << " of key-" << i % kKeys;
    }
    event_ids.insert(responses[i].event_id());
  }
  EXPECT_EQ(event_ids.size(), kDistinct);
  // Of the copies of each key, exactly one is not a replay.
  for (int key = 0; key < kKeys; ++key) {
    int originals = 0;
    for (int i = key; i < kKeyed; i += kKeys) {
      if (!responses[i].replayed()) ++originals;
    }
    EXPECT_EQ(originals, 1) << "key-" << key;
  }
  for (int i = 0; i < kSubmits; ++i) {
    const webhook::v1::Delivery delivery =
        WaitFinished(stub(), responses[i].delivery_ids(0));
    EXPECT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
    EXPECT_EQ(delivery.attempts(), 1);
  }
  // Every delivery has ended after one attempt: nothing more is sent.
  EXPECT_EQ(receiver_.RequestCount(), kDistinct);
}

// The engine stepped by hand (no engine threads) over a real LevelDB on a
// FaultInjectionEnv that counts synced writes: the test decides which
// submits wait together for one commit, which it cannot through gRPC.
class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LevelDbStoreOptions store_options;
    store_options.env = &env_;
    absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
        LevelDbStore::Open(dir_.Sub("data"), store_options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    DeliveryEngineOptions options;
    options.run_threads = false;
    scheduler_ = std::make_unique<Scheduler>(options.limits);
    endpoints_ = std::make_unique<EndpointManager>(
        *store_, clock_, TargetPolicy(), *scheduler_, bus_);
    ASSERT_TRUE(endpoints_->Load().ok());
    engine_ = std::make_unique<DeliveryEngine>(
        *store_, *endpoints_, *scheduler_, bus_, sender_, clock_, options);
    ASSERT_TRUE(engine_->Start().ok());
  }
  void TearDown() override {
    if (engine_ != nullptr) engine_->Stop(absl::ZeroDuration());
  }

  // Queues submit i of kSubmits; its answer goes to answers_[i].
  void Submit(int i) {
    engine_->SubmitAsync(Caller::Unrestricted(), GroupSubmit(i, "thread-none"),
                         [this, i](absl::StatusOr<SubmitEventResponse> answer) {
                           answers_[i] = std::move(answer);
                         });
  }

  TestDir dir_;
  FaultInjectionEnv env_;
  FakeClock clock_;
  FakeHttpSender sender_;
  ChangeBus bus_;
  std::unique_ptr<LevelDbStore> store_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<EndpointManager> endpoints_;
  std::unique_ptr<DeliveryEngine> engine_;
  std::vector<std::optional<absl::StatusOr<SubmitEventResponse>>> answers_ =
      std::vector<std::optional<absl::StatusOr<SubmitEventResponse>>>(kSubmits);
};

TEST_F(GroupCommitTest, SubmitsWaitingTogetherShareOneSyncAndKeepKeys) {
  // The thread has no endpoint: each submit stores its event alone, and
  // nothing is sent.
  const int syncs_before = env_.log_syncs();
  Submit(0);
  ASSERT_EQ(engine_->CommitPending(), 1u);
  for (int i = 1; i < kSubmits; ++i) Submit(i);
  ASSERT_EQ(engine_->CommitPending(), static_cast<size_t>(kSubmits - 1));

  EXPECT_EQ(env_.log_syncs() - syncs_before, 2)
      << "one write for the first submit, one for all that waited after it";
  std::set<std::string> event_ids;
  for (int i = 0; i < kSubmits; ++i) {
    ASSERT_TRUE(answers_[i].has_value()) << i << " not answered";
    ASSERT_TRUE(answers_[i]->ok()) << i << ": " << answers_[i]->status();
    if (i < kKeyed) {
      // key-0's first copy was written alone, the others' copies together.
      EXPECT_EQ((*answers_[i])->event_id(), (*answers_[i % kKeys])->event_id())
          << "copy " << i << " of key-" << i % kKeys;
    }
    event_ids.insert((*answers_[i])->event_id());
  }
  EXPECT_EQ(event_ids.size(), kDistinct);
  EXPECT_EQ(sender_.open(), 0u) << "nothing to send";
}

TEST_F(DiskFaultTest, SubmitFailsWithUnavailableWhileTheDiskIsFull) {
  CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url()));
  env_.SetWriteFault(FaultInjectionEnv::Fault::kNoSpace);

  for (int i = 0; i < 5; ++i) {
    webhook::v1::SubmitEventResponse response;
    grpc::Status status = TrySubmit(stub(), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << "attempt " << i << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("No space left on device"));
  }
  EXPECT_EQ(receiver_.RequestCount(), 0u);
}

TEST_F(DiskFaultTest, IoErrorFailsSubmitAndTheServerRecoversAfterwards) {
  CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url()));
  env_.SetWriteFault(FaultInjectionEnv::Fault::kIoError);
  webhook::v1::SubmitEventResponse refused;
  grpc::Status status = TrySubmit(stub(), &refused);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("Input/output error"));

  env_.SetWriteFault(FaultInjectionEnv::Fault::kNone);

  // The very next submit is stored and delivered: the server stayed up.
  webhook::v1::SubmitEventResponse accepted;
  status = TrySubmit(stub(), &accepted);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(accepted.delivery_ids_size(), 1);
  webhook::v1::Delivery delivery =
      WaitFinished(stub(), accepted.delivery_ids(0));
  EXPECT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(receiver_.RequestCount(), 1u);
}

TEST_F(DiskFaultTest, OutcomeThatCannotBeRecordedIsSentAgainAfterRecovery) {
  // The first attempt is answered while the disk is failing, so its outcome
  // cannot be stored; later attempts succeed.
  absl::Mutex mu;
  bool first = true;
  receiver_.SetHandler([&](const ReceivedRequest&) {
    ReceiverResponse response;
    absl::MutexLock lock(&mu);
    if (first) {
      first = false;
      env_.SetWriteFault(FaultInjectionEnv::Fault::kNoSpace);
    }
    return response;
  });
  CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url()));
  webhook::v1::SubmitEventResponse response =
      Submit(stub(), ExampleEvent("thread-1"));
  ASSERT_EQ(response.delivery_ids_size(), 1);
  ASSERT_TRUE(receiver_.WaitForRequests(1, absl::Seconds(10)));
  // Let the recorder meet the fault, then heal the disk.
  ASSERT_TRUE(Eventually([&] { return env_.injected_failures() > 0; }));
  env_.SetWriteFault(FaultInjectionEnv::Fault::kNone);

  webhook::v1::Delivery delivery =
      WaitFinished(stub(), response.delivery_ids(0));

  EXPECT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(delivery.attempts(), 1) << "the unrecorded attempt is not counted";
  EXPECT_GE(receiver_.RequestCount(), 2u) << "sent again: at least once";
  for (const ReceivedRequest& request : receiver_.Requests()) {
    EXPECT_EQ(request.Header("X-Webhook-Id"), response.delivery_ids(0));
  }
}

// --- A corrupted database, with real processes
// --------------------------------

std::filesystem::path FindLog(const std::string& dir) {
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".log") return entry.path();
  }
  return {};
}

class CorruptionTest : public ::testing::Test {
 protected:
  // Fills the data directory with an endpoint and 30 events, stops cleanly
  // (the records are then in LevelDB's log) and damages the middle of the
  // log.
  void MakeCorruptedDatabase() {
    auto server = WebhookdProcess::StartServer(data_, dir_.path());
    ASSERT_TRUE(server->status().ok()) << server->status();
    CreateEndpoint(server->stub(), MakeEndpoint("thread-1", receiver_.Url()));
    for (int i = 0; i < 30; ++i)
      Submit(server->stub(), ExampleEvent("thread-1"));
    server->Signal(SIGTERM);
    ASSERT_TRUE(ExitedWith(server->Wait(absl::Seconds(20)), 0));
    const std::filesystem::path log = FindLog(data_);
    ASSERT_FALSE(log.empty());
    const auto size = std::filesystem::file_size(log);
    ASSERT_GT(size, 2000u);
    std::fstream file(log, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(size / 2));
    file << std::string(64, '\x5a');
  }

  TestDir dir_;
  const std::string data_ = dir_.Sub("data");
  HttpReceiver receiver_;
};

TEST_F(CorruptionTest, CorruptedDatabaseIsReportedClearlyAtStartUp) {
  ASSERT_NO_FATAL_FAILURE(MakeCorruptedDatabase());

  WebhookdProcess server(
      {"--listen=127.0.0.1:0", absl::StrCat("--data_dir=", data_)},
      dir_.Sub("corrupt.log"));
  const int status = server.Wait(absl::Seconds(20));

  ASSERT_NE(status, -1) << "webhookd must exit by itself";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << status;
  const std::string log = server.Log();
  EXPECT_THAT(log, HasSubstr("holds a corrupted LevelDB database"));
  // LevelDB's own words for the damage, which depend on where the bytes
  // fell: "checksum mismatch" inside a record, "bad record length" on a
  // record's header (the log's layout follows the timing of group commits).
  EXPECT_THAT(log, HasSubstr("Corruption: "));
  EXPECT_THAT(log,
              HasSubstr(absl::StrCat("webhookd --repair --data_dir=", data_)));
}

TEST_F(CorruptionTest, RepairReportsLossesAndTheServerStartsAgain) {
  ASSERT_NO_FATAL_FAILURE(MakeCorruptedDatabase());

  WebhookdProcess repair({"--repair", absl::StrCat("--data_dir=", data_)},
                         dir_.Sub("repair.log"));
  const int status = repair.Wait(absl::Seconds(30));

  EXPECT_TRUE(ExitedWith(status, 0)) << repair.Log();
  const std::string report = repair.Log();
  // What was damaged depends on where the bytes fell; the report always
  // has these parts.
  EXPECT_THAT(report, HasSubstr("could not be read"));
  EXPECT_THAT(report, HasSubstr("Corruption: "));
  EXPECT_THAT(report, HasSubstr("LevelDB's repair:"));
  EXPECT_THAT(report, HasSubstr("After the repair: 1 endpoints"));
  EXPECT_THAT(report, HasSubstr("Could not keep:"));
  EXPECT_THAT(report, HasSubstr("repair done"));

  auto server = WebhookdProcess::StartServer(data_, dir_.path());
  ASSERT_TRUE(server->status().ok()) << server->status();
  webhook::v1::ListEndpointsRequest request;
  request.set_thread_id("thread-1");
  webhook::v1::ListEndpointsResponse endpoints;
  ASSERT_TRUE(
      server->stub().ListEndpoints(Context().get(), request, &endpoints).ok());
  EXPECT_EQ(endpoints.endpoints_size(), 1);
  webhook::v1::ListDeliveriesResponse deliveries;
  grpc::Status listed = server->stub().ListDeliveries(
      Context().get(), webhook::v1::ListDeliveriesRequest(), &deliveries);
  ASSERT_TRUE(listed.ok()) << listed.error_message();
  EXPECT_GT(deliveries.deliveries_size(), 0);
  EXPECT_LE(deliveries.deliveries_size(), 30);
  // Every listed delivery can be read, also one whose event was lost (the
  // damage may fall on an event and spare its delivery): that one has no
  // payload and cannot be retried.
  for (const webhook::v1::Delivery& listed_delivery : deliveries.deliveries()) {
    webhook::v1::GetDeliveryRequest get;
    get.set_id(listed_delivery.id());
    webhook::v1::GetDeliveryResponse got;
    grpc::Status read = server->stub().GetDelivery(Context().get(), get, &got);
    EXPECT_TRUE(read.ok()) << listed_delivery.id() << ": "
                           << read.error_message();
    if (!read.ok() || !got.delivery().payload().empty()) continue;
    EXPECT_THAT(report, HasSubstr("events lost their payload"));
    webhook::v1::RetryDeliveryRequest retry;
    retry.set_id(listed_delivery.id());
    webhook::v1::RetryDeliveryResponse retried;
    grpc::Status refused =
        server->stub().RetryDelivery(Context().get(), retry, &retried);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << listed_delivery.id() << ": " << refused.error_message();
  }
}

}  // namespace
}  // namespace webhookd
