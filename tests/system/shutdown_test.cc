// Graceful shutdown of a real webhookd process: SIGTERM stops accepting
// calls, ends streams, lets attempts in flight finish within
// --shutdown_grace, records their outcomes and exits 0; a restart sends
// again only what was not recorded as done. An idle server stops at once,
// whatever connections clients keep open.

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
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
using testing::Eventually;
using testing::ExampleEvent;
using testing::ExitedWith;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using testing::kEventuallyTimeout;
using testing::MakeEndpoint;
using testing::ReceivedRequest;
using testing::ReceiverResponse;
using ::testing::SizeIs;
using testing::Submit;
using testing::TestDir;
using testing::WaitFinished;
using testing::WebhookdProcess;

// A response the receiver gives only when the test releases it: the
// attempt stays in flight until then.
ReceiverResponse Held(std::string body = "") {
  ReceiverResponse response;
  response.body = std::move(body);
  response.held = true;
  return response;
}

// An HTTP/2 connection that says hello (the client preface and an empty
// SETTINGS frame) and then nothing: a client that never closes an idle
// connection, whatever the server asks.
class SilentHttp2Connection {
 public:
  explicit SilentHttp2Connection(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    constexpr char kHello[] =
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        "\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    connected_ = fd_ >= 0 &&
                 connect(fd_, reinterpret_cast<const sockaddr*>(&address),
                         sizeof(address)) == 0 &&
                 write(fd_, kHello, sizeof(kHello) - 1) ==
                     static_cast<ssize_t>(sizeof(kHello) - 1);
  }
  SilentHttp2Connection(const SilentHttp2Connection&) = delete;
  SilentHttp2Connection& operator=(const SilentHttp2Connection&) = delete;
  ~SilentHttp2Connection() {
    if (fd_ >= 0) close(fd_);
  }

  bool connected() const { return connected_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

class ShutdownTest : public ::testing::Test {
 protected:
  // Attempts never time out during a test: they end when the receiver
  // answers, or when the grace runs out.
  std::unique_ptr<WebhookdProcess> StartServer(absl::Duration grace) {
    return WebhookdProcess::StartServer(
        dir_.Sub("data"), dir_.path(),
        {absl::StrCat("--shutdown_grace=", absl::FormatDuration(grace)),
         "--retry_schedule=100ms,100ms,100ms", "--attempt_timeout=10m"});
  }

  // Submits one event to thread-1 and returns its one delivery id.
  static std::string SubmitOne(WebhookdProcess& server) {
    webhook::v1::SubmitEventResponse response =
        Submit(server.stub(), ExampleEvent("thread-1"));
    EXPECT_THAT(response.delivery_ids(), SizeIs(1));
    return response.delivery_ids().empty() ? "" : response.delivery_ids(0);
  }

  // Whether the server has logged that it received a signal and is
  // shutting down.
  static bool ShuttingDown(const WebhookdProcess& server) {
    return absl::StrContains(server.Log(), "shutting down");
  }

  TestDir dir_;
};

TEST_F(ShutdownTest, SigtermLetsAttemptInFlightFinishAndRestartSendsNothing) {
  HttpReceiver receiver;
  receiver.SetDefaultResponse(Held("ok"));
  auto server = StartServer(absl::Minutes(10));
  ASSERT_TRUE(server->status().ok()) << server->status();
  CreateEndpoint(server->stub(), MakeEndpoint("thread-1", receiver.Url()));
  const std::string id = SubmitOne(*server);
  ASSERT_TRUE(receiver.WaitForRequests(1, kEventuallyTimeout));

  server->Signal(SIGTERM);
  // The server is shutting down with the attempt in flight, and waits.
  ASSERT_TRUE(Eventually([&] { return ShuttingDown(*server); }))
      << server->Log();
  EXPECT_EQ(server->Wait(absl::ZeroDuration()), -1) << "waits for the attempt";
  // Only now does the receiver answer; the server records it and exits.
  receiver.Release();
  EXPECT_TRUE(ExitedWith(server->Wait(kEventuallyTimeout), 0)) << server->Log();

  receiver.SetDefaultResponse(200);
  server = StartServer(absl::Seconds(10));
  ASSERT_TRUE(server->status().ok()) << server->status();
  webhook::v1::Delivery delivery = WaitFinished(server->stub(), id);
  EXPECT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(delivery.attempts(), 1);
  EXPECT_EQ(delivery.attempt_history(0).response_body(), "ok")
      << "the answer given after SIGTERM was recorded";
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
  HttpReceiver receiver;
  // The first request is never answered; later ones at once.
  receiver.PushResponse(Held());
  auto server = StartServer(absl::Milliseconds(300));
  ASSERT_TRUE(server->status().ok()) << server->status();
  CreateEndpoint(server->stub(), MakeEndpoint("thread-1", receiver.Url()));
  const std::string id = SubmitOne(*server);
  ASSERT_TRUE(receiver.WaitForRequests(1, kEventuallyTimeout));

  server->Signal(SIGTERM);
  // The attempt never ends (no answer, a 10 minute timeout), so the server
  // can only have exited by aborting it when the grace ran out.
  EXPECT_TRUE(ExitedWith(server->Wait(kEventuallyTimeout), 0)) << server->Log();

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
  receiver.SetDefaultResponse(Held());
  auto server = StartServer(absl::Minutes(10));
  ASSERT_TRUE(server->status().ok()) << server->status();
  CreateEndpoint(server->stub(), MakeEndpoint("thread-1", receiver.Url()));
  // A live stream, read on its own thread until the server ends it.
  grpc::ClientContext stream_context;
  stream_context.set_deadline(
      absl::ToChronoTime(absl::Now() + kEventuallyTimeout));
  webhook::v1::StreamDeliveriesRequest stream_request;
  stream_request.set_thread_id("thread-1");
  auto reader =
      server->stub().StreamDeliveries(&stream_context, stream_request);
  grpc::Status stream_status;
  std::thread stream_thread([&] {
    webhook::v1::StreamDeliveriesResponse update;
    while (reader->Read(&update)) {
    }
    stream_status = reader->Finish();
  });
  SubmitOne(*server);
  ASSERT_TRUE(receiver.WaitForRequests(1, kEventuallyTimeout));

  server->Signal(SIGTERM);

  // While the attempt is held, new connections are refused...
  grpc::Status refused;
  EXPECT_TRUE(Eventually([&] {
    auto stub = webhook::v1::WebhookService::NewStub(grpc::CreateChannel(
        server->address(), grpc::InsecureChannelCredentials()));
    webhook::v1::ListEndpointsResponse list;
    refused = stub->ListEndpoints(Context().get(), {}, &list);
    return refused.error_code() == grpc::StatusCode::UNAVAILABLE;
  })) << refused.error_message();
  // ...the stream is ended by the server, with its reason...
  stream_thread.join();
  EXPECT_EQ(stream_status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(stream_status.error_message(), HasSubstr("shutting down"));
  // ...and the process lives on until the attempt ends.
  EXPECT_EQ(server->Wait(absl::ZeroDuration()), -1) << "still finishing";
  receiver.Release();
  EXPECT_TRUE(ExitedWith(server->Wait(kEventuallyTimeout), 0)) << server->Log();
}

TEST_F(ShutdownTest, IdleServerStopsAtOnceWithClientsConnected) {
  // A grace far longer than the test may wait: an exit within the wait
  // below is not the grace running out.
  auto server = StartServer(absl::Minutes(10));
  ASSERT_TRUE(server->status().ok()) << server->status();
  // An idle gRPC channel (the stub's, used once), a connection that never
  // closes by itself, and an open StreamDeliveries stream on a channel of
  // its own.
  webhook::v1::ListEndpointsResponse list;
  ASSERT_TRUE(server->stub().ListEndpoints(Context().get(), {}, &list).ok());
  SilentHttp2Connection silent(server->port());
  ASSERT_TRUE(silent.connected());
  auto stream_stub = webhook::v1::WebhookService::NewStub(grpc::CreateChannel(
      server->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext stream_context;
  stream_context.set_deadline(
      absl::ToChronoTime(absl::Now() + kEventuallyTimeout));
  auto reader = stream_stub->StreamDeliveries(&stream_context, {});
  reader->WaitForInitialMetadata();
  ASSERT_TRUE(Eventually(
      [&] { return absl::StrContains(server->Log(), "serving on"); }));

  const absl::Time signalled = absl::Now();
  server->Signal(SIGTERM);
  // It stops in milliseconds. Left to gRPC, the silent connection would
  // hold the shutdown for 20 s (until gRPC gives up on a graceful close),
  // which this bound, generous for a loaded machine, tells apart.
  EXPECT_TRUE(ExitedWith(server->Wait(absl::Seconds(10)), 0)) << server->Log();
  const absl::Duration took = absl::Now() - signalled;
  std::printf("idle server stopped %s after SIGTERM\n",
              absl::FormatDuration(took).c_str());
  webhook::v1::StreamDeliveriesResponse update;
  EXPECT_FALSE(reader->Read(&update));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace webhookd
