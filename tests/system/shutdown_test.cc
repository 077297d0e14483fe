// Graceful shutdown of a real webhookd process: SIGTERM stops accepting
// calls, ends streams, lets attempts in flight finish within
// --shutdown_grace, records their outcomes and exits 0; a restart sends
// again only what was not recorded as done.

#include <signal.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
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
using ::testing::HasSubstr;
using testing::HttpReceiver;
using testing::MakeEndpoint;
using testing::ReceivedRequest;
using testing::ReceiverResponse;
using ::testing::SizeIs;
using testing::Submit;
using testing::TestDir;
using testing::WaitFinished;
using testing::WebhookdProcess;

class ShutdownTest : public ::testing::Test {
 protected:
  std::unique_ptr<WebhookdProcess> StartServer(absl::Duration grace) {
    return WebhookdProcess::StartServer(
        dir_.Sub("data"), dir_.path(),
        {absl::StrCat("--shutdown_grace=", absl::FormatDuration(grace)),
         "--retry_schedule=100ms,100ms,100ms", "--attempt_timeout=30s"});
  }

  // Submits one event to thread-1 and returns its one delivery id.
  static std::string SubmitOne(WebhookdProcess& server) {
    webhook::v1::SubmitEventResponse response =
        Submit(server.stub(), ExampleEvent("thread-1"));
    EXPECT_THAT(response.delivery_ids(), SizeIs(1));
    return response.delivery_ids().empty() ? "" : response.delivery_ids(0);
  }

  TestDir dir_;
};

TEST_F(ShutdownTest, SigtermLetsAttemptInFlightFinishAndRestartSendsNothing) {
  HttpReceiver receiver;
  receiver.SetDefaultResponse(200, "ok", {}, absl::Milliseconds(500));
  auto server = StartServer(absl::Seconds(10));
  ASSERT_TRUE(server->status().ok()) << server->status();
  CreateEndpoint(server->stub(), MakeEndpoint("thread-1", receiver.Url()));
  const std::string id = SubmitOne(*server);
  ASSERT_TRUE(receiver.WaitForRequests(1, absl::Seconds(10)));

  const absl::Time start = absl::Now();
  server->Signal(SIGTERM);
  const int status = server->Wait(absl::Seconds(20));
  const absl::Duration took = absl::Now() - start;

  EXPECT_TRUE(ExitedWith(status, 0)) << server->Log();
  EXPECT_LT(took, absl::Seconds(10)) << "within --shutdown_grace";
  EXPECT_GE(took, absl::Milliseconds(300)) << "waited for the attempt";
  receiver.SetDefaultResponse(200);
  server = StartServer(absl::Seconds(10));
  ASSERT_TRUE(server->status().ok()) << server->status();
  webhook::v1::Delivery delivery = WaitFinished(server->stub(), id);
  EXPECT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(delivery.attempts(), 1);
  EXPECT_EQ(delivery.attempt_history(0).response_body(), "ok");
  EXPECT_THAT(server->Log(), ::testing::Not(HasSubstr("resuming")));
  // A later delivery to the same receiver goes out; a resend of the first,
  // had there been one, would have gone out before it.
  const std::string sentinel = SubmitOne(*server);
  EXPECT_EQ(WaitFinished(server->stub(), sentinel).status(),
            webhook::v1::DELIVERY_STATUS_SUCCESS);
  ASSERT_EQ(receiver.RequestCount(), 2u) << "exactly one request each";
  EXPECT_EQ(receiver.Requests()[0].Header("X-Webhook-Id"), id);
  EXPECT_EQ(receiver.Requests()[1].Header("X-Webhook-Id"), sentinel);
}

TEST_F(ShutdownTest, AttemptOutlastingGraceIsAbortedAndSentAgainAfterRestart) {
  absl::Mutex mu;
  int answered = 0;
  HttpReceiver receiver;
  receiver.SetHandler([&](const ReceivedRequest&) {
    ReceiverResponse response;
    absl::MutexLock lock(&mu);
    // The first request hangs well past the grace.
    if (answered++ == 0) response.delay = absl::Seconds(30);
    return response;
  });
  auto server = StartServer(absl::Milliseconds(300));
  ASSERT_TRUE(server->status().ok()) << server->status();
  CreateEndpoint(server->stub(), MakeEndpoint("thread-1", receiver.Url()));
  const std::string id = SubmitOne(*server);
  ASSERT_TRUE(receiver.WaitForRequests(1, absl::Seconds(10)));

  const absl::Time start = absl::Now();
  server->Signal(SIGTERM);
  const int status = server->Wait(absl::Seconds(20));

  EXPECT_TRUE(ExitedWith(status, 0)) << server->Log();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  server = StartServer(absl::Seconds(10));
  ASSERT_TRUE(server->status().ok()) << server->status();
  webhook::v1::Delivery delivery = WaitFinished(server->stub(), id);
  EXPECT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  // The aborted attempt is not recorded as a failed one.
  EXPECT_EQ(delivery.attempts(), 1);
  EXPECT_THAT(delivery.attempt_history(), SizeIs(1));
  EXPECT_THAT(server->Log(), HasSubstr("resuming 1 queued deliveries"));
  ASSERT_EQ(receiver.RequestCount(), 2u);
  for (const ReceivedRequest& request : receiver.Requests()) {
    EXPECT_EQ(request.Header("X-Webhook-Id"), id);
    EXPECT_EQ(request.Header("X-Webhook-Attempt"), "1");
  }
  receiver.Stop();
}

TEST_F(ShutdownTest, SigtermRefusesNewCallsAndEndsStreamsWhileAttemptsFinish) {
  HttpReceiver receiver;
  receiver.SetDefaultResponse(200, "", {}, absl::Milliseconds(1500));
  auto server = StartServer(absl::Seconds(10));
  ASSERT_TRUE(server->status().ok()) << server->status();
  CreateEndpoint(server->stub(), MakeEndpoint("thread-1", receiver.Url()));
  // A live stream, read on its own thread until the server ends it.
  grpc::ClientContext stream_context;
  stream_context.set_deadline(std::chrono::system_clock::now() +
                              std::chrono::seconds(20));
  webhook::v1::StreamDeliveriesRequest stream_request;
  stream_request.set_thread_id("thread-1");
  auto reader =
      server->stub().StreamDeliveries(&stream_context, stream_request);
  grpc::Status stream_status;
  absl::Time stream_end;
  std::thread stream_thread([&] {
    webhook::v1::StreamDeliveriesResponse update;
    while (reader->Read(&update)) {
    }
    stream_status = reader->Finish();
    stream_end = absl::Now();
  });
  SubmitOne(*server);
  ASSERT_TRUE(receiver.WaitForRequests(1, absl::Seconds(10)));

  server->Signal(SIGTERM);

  // New connections are refused while the attempt (1.5 s) still runs.
  bool refused = false;
  const absl::Time give_up = absl::Now() + absl::Seconds(2);
  while (!refused && absl::Now() < give_up) {
    auto channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", server->port()),
                            grpc::InsecureChannelCredentials());
    auto stub = webhook::v1::WebhookService::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(200));
    webhook::v1::ListEndpointsResponse list;
    refused = !stub->ListEndpoints(&context, {}, &list).ok();
  }
  EXPECT_TRUE(refused);
  EXPECT_EQ(server->Wait(absl::ZeroDuration()), -1) << "still finishing";
  stream_thread.join();
  EXPECT_EQ(stream_status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(stream_status.error_message(), HasSubstr("shutting down"));
  EXPECT_TRUE(ExitedWith(server->Wait(absl::Seconds(20)), 0)) << server->Log();
  receiver.Stop();
}

}  // namespace
}  // namespace webhookd
