// Tests of real webhookd processes: signals, start-up errors and crashes.

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <set>
#include <string>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/eventually.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/test_dir.h"
#include "tests/support/webhookd_process.h"

namespace webhookd {
namespace {

using testing::CreateEndpoint;
using testing::Eventually;
using testing::ExampleEvent;
using testing::ExitedWith;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using testing::MakeEndpoint;
using testing::ReceivedRequest;
using testing::ReceiverResponse;
using testing::Submit;
using testing::TestDir;
using testing::WaitFinished;
using testing::WaitForDelivery;
using testing::WebhookdProcess;

class ProcessTest : public ::testing::Test {
 protected:
  std::unique_ptr<WebhookdProcess> StartServer(
      std::vector<std::string> extra = {}) {
    return WebhookdProcess::StartServer(dir_.Sub("data"), dir_.path(),
                                        std::move(extra));
  }

  TestDir dir_;
};

TEST_F(ProcessTest, SigtermShutsDownGracefullyWithExitZero) {
  auto server = StartServer();
  ASSERT_TRUE(server->status().ok()) << server->status();
  server->Signal(SIGTERM);
  const int status = server->Wait(absl::Seconds(20));
  EXPECT_TRUE(ExitedWith(status, 0)) << server->Log();
  EXPECT_THAT(server->Log(), HasSubstr("shutting down"));
}

TEST_F(ProcessTest, SigintShutsDownGracefullyWithExitZero) {
  auto server = StartServer();
  ASSERT_TRUE(server->status().ok()) << server->status();
  server->Signal(SIGINT);
  EXPECT_TRUE(ExitedWith(server->Wait(absl::Seconds(20)), 0)) << server->Log();
}

TEST_F(ProcessTest, SecondProcessOnSameDataDirFailsClearly) {
  auto first = StartServer();
  ASSERT_TRUE(first->status().ok()) << first->status();
  WebhookdProcess second(
      {"--listen=127.0.0.1:0", "--data_dir=" + dir_.Sub("data")},
      dir_.Sub("second.log"));
  const int status = second.Wait(absl::Seconds(20));
  ASSERT_NE(status, -1) << "the second process must exit by itself";
  EXPECT_TRUE(WIFEXITED(status)) << "exit, not a crash";
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_THAT(second.Log(), HasSubstr("in use"));
  // The first one is unaffected.
  webhook::v1::ListEndpointsResponse list;
  grpc::ClientContext context;
  EXPECT_TRUE(first->stub().ListEndpoints(&context, {}, &list).ok());
}

TEST_F(ProcessTest, HelpListsEveryFlag) {
  WebhookdProcess help({"--help"}, dir_.Sub("help.log"));
  help.Wait(absl::Seconds(10));
  const std::string text = help.Log();
  for (const char* flag :
       {"--listen", "--data_dir", "--allow_insecure_targets",
        "--retry_schedule", "--attempt_timeout", "--http_workers",
        "--max_in_flight", "--max_in_flight_per_endpoint",
        "--max_payload_bytes", "--shutdown_grace", "--port_file",
        "--max_queued_deliveries", "--log_retention", "--repair",
        "--grpc_max_concurrent_streams", "--grpc_memory_limit_mb"}) {
    EXPECT_THAT(text, HasSubstr(flag));
  }
}

TEST_F(ProcessTest, KillNineLosesNoAcknowledgedDelivery) {
  // Until the crash the receiver hangs, so some attempts are in flight and
  // the rest wait in the queue; afterwards it answers 200 at once.
  std::atomic<bool> healthy{false};
  absl::Mutex mu;
  std::set<std::string> delivered;  // Ids answered 200.
  HttpReceiver receiver;
  receiver.SetHandler([&](const ReceivedRequest& request) {
    ReceiverResponse response;
    if (!healthy.load()) {
      response.delay = absl::Seconds(30);
      response.status = 500;
      return response;
    }
    absl::MutexLock lock(&mu);
    delivered.insert(request.Header("X-Webhook-Id"));
    return response;
  });

  const std::vector<std::string> flags = {"--max_in_flight=4",
                                          "--retry_schedule=200ms,200ms,200ms",
                                          "--attempt_timeout=20s"};
  auto server = StartServer(flags);
  ASSERT_TRUE(server->status().ok()) << server->status();
  CreateEndpoint(server->stub(), MakeEndpoint("thread-1", receiver.Url("/a")));
  CreateEndpoint(server->stub(), MakeEndpoint("thread-1", receiver.Url("/b")));
  std::set<std::string> acknowledged;
  for (int i = 0; i < 15; ++i) {
    webhook::v1::SubmitEventResponse response =
        Submit(server->stub(), ExampleEvent("thread-1"));
    acknowledged.insert(response.delivery_ids().begin(),
                        response.delivery_ids().end());
  }
  ASSERT_EQ(acknowledged.size(), 30u);
  ASSERT_TRUE(receiver.WaitForRequests(4, absl::Seconds(10)))
      << server->Log() << "\n"
      << WaitForDelivery(server->stub(), *acknowledged.begin(),
                         [](const webhook::v1::Delivery&) { return true; })
             .DebugString();

  server->Signal(SIGKILL);
  ASSERT_NE(server->Wait(absl::Seconds(10)), -1);
  healthy = true;

  server = StartServer(flags);
  ASSERT_TRUE(server->status().ok()) << server->status();
  Eventually([&] {
    absl::MutexLock lock(&mu);
    return delivered.size() >= acknowledged.size();
  });
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(delivered, acknowledged) << server->Log();
  }
  for (const std::string& id : acknowledged) {
    webhook::v1::Delivery d = WaitFinished(server->stub(), id);
    EXPECT_EQ(d.status(), webhook::v1::DELIVERY_STATUS_SUCCESS) << id;
  }
  receiver.Stop();
}

}  // namespace
}  // namespace webhookd
