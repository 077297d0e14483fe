// Bounded resources under overload: gRPC limits (streams per connection,
// message size) with health checks still answering, backpressure on
// SubmitEvent, and log retention.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/eventually.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/raw_server.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using testing::Context;
using testing::CreateEndpoint;
using testing::Eventually;
using testing::ExampleEvent;
using testing::Hang;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using testing::MakeEndpoint;
using testing::RawServer;
using testing::ReceivedRequest;
using testing::ReceiverResponse;
using testing::Submit;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::WaitFinished;

// A channel with a connection of its own (no subchannel sharing).
std::shared_ptr<grpc::Channel> NewConnection(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

// grpc.health.v1.Health/Check for the whole server, through a generic stub
// (the health stubs are not in Debian's packages): true if it answered
// SERVING within `timeout`.
bool HealthCheckServing(const std::shared_ptr<grpc::Channel>& channel,
                        absl::Duration timeout = absl::Seconds(2)) {
  grpc::GenericStub stub(channel);
  grpc::Slice empty("");  // HealthCheckRequest{} serializes to nothing.
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer reply;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &reply, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  if (!done.WaitForNotificationWithTimeout(timeout + absl::Seconds(5))) {
    return false;
  }
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (!status.ok() || !reply.Dump(&slices).ok()) return false;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes == std::string("\x08\x01", 2);  // status: SERVING.
}

// What a flood of calls found: the longest queue seen right after an
// answer, the calls refused (and retried, as a client would after the
// hint), and those that failed otherwise.
struct Flood {
  size_t most_queued = 0;
  int refused = 0;
  int failed = 0;
};

// `clients` threads each make `calls_each` calls of `call` (given a fresh
// context), each retried while RESOURCE_EXHAUSTED, at most 10 times.
Flood RunFlood(TestServer& server, int clients, int calls_each,
               const std::function<grpc::Status(grpc::ClientContext&)>& call) {
  std::atomic<size_t> most_queued = 0;
  std::atomic<int> refused = 0;
  std::atomic<int> failed = 0;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      for (int i = 0; i < calls_each; ++i) {
        grpc::Status status;
        for (int tries = 0; tries < 10; ++tries) {
          grpc::ClientContext context;
          context.set_deadline(
              absl::ToChronoTime(absl::Now() + absl::Seconds(90)));
          status = call(context);
          if (status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) {
            break;
          }
          ++refused;
        }
        if (!status.ok()) ++failed;
        // Queued, waiting or in flight, right after this answer.
        const Scheduler::Counts counts = server.server().queue_counts();
        const size_t queued = counts.waiting + counts.held + counts.in_flight;
        size_t seen = most_queued.load();
        while (queued > seen &&
               !most_queued.compare_exchange_weak(seen, queued)) {
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  return Flood{most_queued.load(), refused.load(), failed.load()};
}

class OverloadTest : public ::testing::Test {
 protected:
  TestDir dir_;
  TestServer server_{TestServerOptions(dir_.Sub("data"))};
};

TEST_F(OverloadTest, FloodOfStreamsIsHeldBackWhileHealthChecksAnswer) {
  server_.options().grpc_max_concurrent_streams = 4;
  server_.Start();
  std::shared_ptr<grpc::Channel> flooded = NewConnection(server_.port());
  auto stub = webhook::v1::WebhookService::NewStub(flooded);
  // Four live streams take every stream this connection may have.
  constexpr int kStreams = 4;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<
      grpc::ClientReader<webhook::v1::StreamDeliveriesResponse>>>
      streams;
  for (int i = 0; i < kStreams; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    contexts.back()->set_deadline(std::chrono::system_clock::now() +
                                  std::chrono::seconds(30));
    streams.push_back(stub->StreamDeliveries(
        contexts.back().get(), webhook::v1::StreamDeliveriesRequest()));
  }
  ASSERT_TRUE(Eventually([&] {
    return server_.server().delivery_hub().StreamCount() ==
           static_cast<size_t>(kStreams);
  }));

  // A fifth call on that connection is not served...
  grpc::ClientContext fifth;
  fifth.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(500));
  webhook::v1::ListEndpointsResponse list;
  grpc::Status status = stub->ListEndpoints(&fifth, {}, &list);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << status.error_message();
  // ...while health checks and calls on other connections are.
  EXPECT_TRUE(HealthCheckServing(NewConnection(server_.port())));
  grpc::ClientContext other;
  EXPECT_TRUE(server_.stub().ListEndpoints(&other, {}, &list).ok());

  for (int i = 0; i < kStreams; ++i) {
    contexts[i]->TryCancel();
    streams[i]->Finish();
  }
}

TEST_F(OverloadTest, ClientPingingTooOftenIsDisconnected) {
  server_.Start();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 100);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  auto pinging = webhook::v1::WebhookService::NewStub(
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_.port()),
                                grpc::InsecureChannelCredentials(), args));
  // A quiet stream: no data flows, only the client's pings.
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  auto stream = pinging->StreamDeliveries(
      &context, webhook::v1::StreamDeliveriesRequest());

  webhook::v1::StreamDeliveriesResponse update;
  while (stream->Read(&update)) {
  }
  grpc::Status status = stream->Finish();

  // Cut off before the deadline (which would be DEADLINE_EXCEEDED) by the
  // server, with a GOAWAY only a live server sends, while others are still
  // served.
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("Too many pings"));
  EXPECT_TRUE(HealthCheckServing(NewConnection(server_.port())));
}

TEST_F(OverloadTest, OversizedMessageIsRefusedWhileHealthChecksAnswer) {
  server_.Start();
  HttpReceiver receiver;
  CreateEndpoint(server_.stub(), MakeEndpoint("thread-1", receiver.Url()));
  webhook::v1::SubmitEventRequest huge = ExampleEvent("thread-1");
  huge.mutable_execution()->set_prompt(std::string(5 << 20, 'x'));

  webhook::v1::SubmitEventResponse response;
  grpc::Status status =
      server_.stub().SubmitEvent(Context().get(), huge, &response);

  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << status.error_message();
  EXPECT_TRUE(HealthCheckServing(server_.channel()));
  Submit(server_.stub(), ExampleEvent("thread-1"));  // Still served.
  webhook::v1::ListDeliveriesResponse deliveries;
  ASSERT_TRUE(
      server_.stub().ListDeliveries(Context().get(), {}, &deliveries).ok());
  EXPECT_EQ(deliveries.deliveries_size(), 1) << "the huge event was not kept";
}

TEST_F(OverloadTest, SubmitPastMaxQueuedDeliveriesIsRefusedAndStoresNothing) {
  server_.options().engine.limits.max_queued_deliveries = 5;
  server_.Start();
  // Receivers that hold every request until released: the deliveries stay
  // in flight, and so count as queued.
  absl::Notification release;
  HttpReceiver receiver;
  receiver.SetHandler([&](const ReceivedRequest&) {
    release.WaitForNotificationWithTimeout(absl::Seconds(20));
    return ReceiverResponse();
  });
  CreateEndpoint(server_.stub(), MakeEndpoint("thread-1", receiver.Url("/a")));
  CreateEndpoint(server_.stub(), MakeEndpoint("thread-1", receiver.Url("/b")));
  std::vector<std::string> accepted;
  for (int i = 0; i < 2; ++i) {  // 4 deliveries.
    webhook::v1::SubmitEventResponse response =
        Submit(server_.stub(), ExampleEvent("thread-1"));
    accepted.insert(accepted.end(), response.delivery_ids().begin(),
                    response.delivery_ids().end());
  }

  webhook::v1::SubmitEventResponse refused;
  grpc::Status status = server_.stub().SubmitEvent(
      Context().get(), ExampleEvent("thread-1"), &refused);

  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("--max_queued_deliveries"));
  webhook::v1::ListDeliveriesResponse deliveries;
  ASSERT_TRUE(
      server_.stub().ListDeliveries(Context().get(), {}, &deliveries).ok());
  EXPECT_EQ(deliveries.deliveries_size(), 4) << "nothing stored";
  // Once the queue drains, submits are accepted again.
  release.Notify();
  for (const std::string& id : accepted) {
    WaitFinished(server_.stub(), id);
  }
  Submit(server_.stub(), ExampleEvent("thread-1"));
}

TEST_F(OverloadTest, AdmissionKeepsTheQueueBoundedWhenIngestOutrunsDelivery) {
  // Two attempts at once, 20 ms each: about 100 deliveries a second, far
  // fewer than 8 clients submitting as fast as they are answered.
  server_.options().engine.limits.max_in_flight = 2;
  server_.options().engine.admission.max_lag = absl::Milliseconds(200);
  server_.options().engine.admission.max_wait = absl::Seconds(60);
  server_.Start();
  HttpReceiver receiver;
  receiver.SetDefaultResponse(200, "", {}, absl::Milliseconds(20));
  CreateEndpoint(server_.stub(), MakeEndpoint("thread-1", receiver.Url()));

  constexpr int kClients = 8;
  constexpr int kEventsEach = 40;
  const Flood flood = RunFlood(
      server_, kClients, kEventsEach, [&](grpc::ClientContext& context) {
        webhook::v1::SubmitEventResponse response;
        return server_.stub().SubmitEvent(&context, ExampleEvent("thread-1"),
                                          &response);
      });

  EXPECT_EQ(flood.failed, 0);
  // Without admission control the queue grows to nearly every event (about
  // 300 of 320 here); with it, to what 200 ms of delivery and one round of
  // waiting clients add.
  EXPECT_LE(flood.most_queued, 120u)
      << flood.refused << " submits were refused and retried";
  // Every acknowledged event is delivered.
  EXPECT_TRUE(
      receiver.WaitForRequests(kClients * kEventsEach, absl::Seconds(60)));
}

// Batches against an endpoint that answers quickly but is capped at two
// attempts at once: the backlog parks behind the per-endpoint cap, not in
// the dispatcher's queue. It is still webhookd's own (the endpoint keeps
// up), so admission counts it, and the queue stays bounded.
TEST_F(OverloadTest, AdmissionCountsTheBacklogParkedBehindAQuickEndpoint) {
  server_.options().engine.limits.max_in_flight_per_endpoint = 2;
  server_.options().engine.admission.max_lag = absl::Milliseconds(200);
  server_.options().engine.admission.max_wait = absl::Seconds(60);
  server_.Start();
  HttpReceiver receiver;
  receiver.SetDefaultResponse(200, "", {}, absl::Milliseconds(5));
  CreateEndpoint(server_.stub(), MakeEndpoint("thread-1", receiver.Url()));
  // Until one of its attempts has ended, nothing tells that the endpoint
  // keeps up: a first delivery shows it.
  const webhook::v1::SubmitEventResponse first =
      Submit(server_.stub(), ExampleEvent("thread-1"));
  WaitFinished(server_.stub(), first.delivery_ids(0));

  constexpr int kClients = 4;
  constexpr int kCallsEach = 50;
  constexpr int kBatch = 10;
  webhook::v1::SubmitEventsRequest batch;
  for (int i = 0; i < kBatch; ++i)
    *batch.add_events() = ExampleEvent("thread-1");
  const Flood flood = RunFlood(
      server_, kClients, kCallsEach, [&](grpc::ClientContext& context) {
        webhook::v1::SubmitEventsResponse response;
        grpc::Status status =
            server_.stub().SubmitEvents(&context, batch, &response);
        for (const auto& result : response.results()) {
          if (result.code() != 0) {
            status = grpc::Status(grpc::StatusCode::UNKNOWN, result.message());
          }
        }
        return status;
      });

  EXPECT_EQ(flood.failed, 0);
  // Without counting the parked backlog nothing ever waits and the queue
  // grows to nearly every event (about 1,900 of 2,000). With it, to what
  // comes in before an attempt of the flood ends and shows the endpoint
  // keeping up, then 200 ms of delivery, the slack and one round of
  // waiting calls.
  EXPECT_LE(flood.most_queued, 900u)
      << flood.refused << " calls were refused and retried";
  EXPECT_TRUE(receiver.WaitForRequests(1 + kClients * kCallsEach * kBatch,
                                       absl::Seconds(120)));
}

TEST_F(OverloadTest, OldFinishedDeliveriesArePrunedButQueuedOnesStay) {
  server_.options().log_retention.retention = absl::Seconds(1);
  server_.options().log_retention.interval = absl::Milliseconds(100);
  server_.options().engine.attempt_timeout = absl::Seconds(30);
  server_.Start();
  HttpReceiver healthy;
  RawServer hanging(Hang());
  const std::string healthy_endpoint =
      CreateEndpoint(server_.stub(), MakeEndpoint("thread-1", healthy.Url()))
          .id();
  CreateEndpoint(server_.stub(), MakeEndpoint("thread-2", hanging.Url()));
  webhook::v1::SubmitEventResponse done =
      Submit(server_.stub(), ExampleEvent("thread-1"));
  webhook::v1::SubmitEventResponse stuck =
      Submit(server_.stub(), ExampleEvent("thread-2"));
  ASSERT_EQ(done.delivery_ids_size(), 1);
  ASSERT_EQ(stuck.delivery_ids_size(), 1);
  EXPECT_EQ(WaitFinished(server_.stub(), done.delivery_ids(0)).status(),
            webhook::v1::DELIVERY_STATUS_SUCCESS);

  // Pruned in the background once older than a second.
  webhook::v1::GetDeliveryRequest get;
  get.set_id(done.delivery_ids(0));
  webhook::v1::GetDeliveryResponse got;
  grpc::Status status;
  EXPECT_TRUE(Eventually([&] {
    status = server_.stub().GetDelivery(Context().get(), get, &got);
    return !status.ok();
  }));

  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  webhook::v1::ListDeliveriesResponse deliveries;
  ASSERT_TRUE(
      server_.stub().ListDeliveries(Context().get(), {}, &deliveries).ok());
  ASSERT_EQ(deliveries.deliveries_size(), 1);
  EXPECT_EQ(deliveries.deliveries(0).id(), stuck.delivery_ids(0));
  EXPECT_EQ(deliveries.deliveries(0).status(),
            webhook::v1::DELIVERY_STATUS_PENDING);
  // Stats are cumulative: the pruned attempt still counts.
  webhook::v1::GetEndpointStatsRequest stats_request;
  stats_request.set_endpoint_id(healthy_endpoint);
  webhook::v1::GetEndpointStatsResponse stats;
  ASSERT_TRUE(server_.stub()
                  .GetEndpointStats(Context().get(), stats_request, &stats)
                  .ok());
  EXPECT_EQ(stats.stats().total_deliveries(), 1);
  EXPECT_EQ(stats.stats().successful_deliveries(), 1);
}

}  // namespace
}  // namespace webhookd
