// Disk faults: writes failing with a full or broken disk, and a corrupted
// database at start-up, repaired with webhookd --repair.

#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
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
using testing::ExampleEvent;
using testing::ExitedWith;
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
using testing::WaitForDelivery;
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

TEST_F(DiskFaultTest, SubmitsWaitingForASlowDiskShareOneSyncAndKeepKeys) {
  // While the disk holds one synced write, the submits arriving meanwhile
  // pile up and are written together, in one sync, by the engine's commit
  // thread. Each must still be stored once, and the copies of one
  // idempotency key within that one write must get one answer.
  CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url()));
  constexpr int kKeys = 8;
  constexpr int kCopiesPerKey = 6;
  constexpr int kUnkeyed = 24;
  constexpr int kSubmits = kKeys * kCopiesPerKey + kUnkeyed;
  constexpr size_t kDistinct = kKeys + kUnkeyed;
  std::vector<webhook::v1::SubmitEventResponse> responses(kSubmits);
  std::vector<grpc::Status> statuses(kSubmits);
  const int syncs_before = env_.log_syncs();
  env_.HoldSyncs(true);
  std::vector<std::thread> threads;
  for (int i = 0; i < kSubmits; ++i) {
    threads.emplace_back([&, i] {
      webhook::v1::SubmitEventRequest request = ExampleEvent("thread-1");
      if (i < kKeys * kCopiesPerKey) {
        request.set_idempotency_key(absl::StrCat("key-", i % kKeys));
      }
      statuses[i] = stub().SubmitEvent(Context().get(), request, &responses[i]);
    });
  }
  // Time for every submit to reach the engine while the first write waits.
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(receiver_.RequestCount(), 0u);
  env_.HoldSyncs(false);
  for (std::thread& thread : threads) thread.join();

  // One write was held; nearly all the others waited for it and share the
  // next one. Far fewer syncs than submits, with room for stragglers.
  EXPECT_LE(env_.log_syncs() - syncs_before, 8);
  std::set<std::string> event_ids;
  for (int i = 0; i < kSubmits; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_message();
    ASSERT_EQ(responses[i].delivery_ids_size(), 1);
    if (i < kKeys * kCopiesPerKey) {
      EXPECT_EQ(responses[i].SerializeAsString(),
                responses[i % kKeys].SerializeAsString())
          << "copy " << i << " of key-" << i % kKeys;
    }
    event_ids.insert(responses[i].event_id());
  }
  EXPECT_EQ(event_ids.size(), kDistinct);
  for (int i = 0; i < kSubmits; ++i) {
    EXPECT_TRUE(IsFinished(
        WaitForDelivery(stub(), responses[i].delivery_ids(0), IsFinished)));
  }
  EXPECT_FALSE(receiver_.WaitForRequests(kDistinct + 1, absl::Seconds(1)));
  EXPECT_EQ(receiver_.RequestCount(), kDistinct);
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
      WaitForDelivery(stub(), accepted.delivery_ids(0), IsFinished);
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
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (env_.injected_failures() == 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_GT(env_.injected_failures(), 0);
  env_.SetWriteFault(FaultInjectionEnv::Fault::kNone);

  webhook::v1::Delivery delivery =
      WaitForDelivery(stub(), response.delivery_ids(0), IsFinished);

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
    ASSERT_GT(server->port(), 0);
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
  EXPECT_THAT(log, HasSubstr("checksum mismatch"));
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
  EXPECT_THAT(report, HasSubstr("checksum mismatch"));
  EXPECT_THAT(report, HasSubstr("LevelDB's repair:"));
  EXPECT_THAT(report, HasSubstr("After the repair: 1 endpoints"));
  EXPECT_THAT(report, HasSubstr("Could not keep:"));
  EXPECT_THAT(report, HasSubstr("repair done"));

  auto server = WebhookdProcess::StartServer(data_, dir_.path());
  ASSERT_GT(server->port(), 0) << server->Log();
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
  for (const webhook::v1::Delivery& listed_delivery : deliveries.deliveries()) {
    webhook::v1::GetDeliveryRequest get;
    get.set_id(listed_delivery.id());
    webhook::v1::GetDeliveryResponse got;
    grpc::Status read = server->stub().GetDelivery(Context().get(), get, &got);
    EXPECT_TRUE(read.ok()) << listed_delivery.id() << ": "
                           << read.error_message();
  }
}

}  // namespace
}  // namespace webhookd
