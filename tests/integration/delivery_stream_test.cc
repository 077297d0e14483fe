// StreamDeliveries end to end: a real server on port 0, real gRPC channels
// and a real HTTP receiver on loopback.

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/eventually.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using testing::CreateEndpoint;
using testing::Eventually;
using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using testing::IsFinished;
using testing::MakeEndpoint;
using ::testing::SizeIs;
using testing::Submit;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::WaitFinished;
using webhook::v1::StreamDeliveriesRequest;
using webhook::v1::StreamDeliveriesResponse;
using Watch = testing::DeliveryWatch;

StreamDeliveriesRequest Filter(const std::string& endpoint_id,
                               const std::string& thread_id,
                               int replay_recent = 0) {
  StreamDeliveriesRequest request;
  request.set_endpoint_id(endpoint_id);
  request.set_thread_id(thread_id);
  request.set_replay_recent(replay_recent);
  return request;
}

std::function<bool(const Delivery&)> Ended(const std::string& id) {
  return [id](const Delivery& d) { return d.id() == id && IsFinished(d); };
}

class DeliveryStreamTest : public ::testing::Test {
 protected:
  void SetUp() override { server_.Start(); }

  webhook::v1::WebhookService::Stub& stub() { return server_.stub(); }

  Endpoint NewEndpoint(const std::string& thread) {
    return CreateEndpoint(stub(), MakeEndpoint(thread, receiver_.Url()));
  }

  // Submits an event to `thread` and waits until its deliveries have ended.
  std::vector<std::string> SubmitAndFinish(const std::string& thread) {
    webhook::v1::SubmitEventResponse submitted =
        Submit(stub(), ExampleEvent(thread));
    std::vector<std::string> ids(submitted.delivery_ids().begin(),
                                 submitted.delivery_ids().end());
    for (const std::string& id : ids) {
      EXPECT_TRUE(IsFinished(WaitFinished(stub(), id)));
    }
    return ids;
  }

  // Newest first, as ListDeliveries returns them.
  std::vector<std::string> ListIds(const std::string& endpoint_id,
                                   const std::string& thread_id, int limit) {
    webhook::v1::ListDeliveriesRequest request;
    request.set_endpoint_id(endpoint_id);
    request.set_thread_id(thread_id);
    request.set_page_size(limit);
    webhook::v1::ListDeliveriesResponse response;
    EXPECT_TRUE(
        stub()
            .ListDeliveries(testing::Context().get(), request, &response)
            .ok());
    std::vector<std::string> ids;
    for (const Delivery& d : response.deliveries()) ids.push_back(d.id());
    return ids;
  }

  DeliveryHub& hub() { return server_.server().delivery_hub(); }

  HttpReceiver receiver_;
  TestDir dir_;
  TestServer server_{TestServerOptions(dir_.Sub("data"))};
};

TEST_F(DeliveryStreamTest, ReplaySendsMostRecentMatchingOldestFirst) {
  NewEndpoint("thread-1");
  NewEndpoint("thread-2");
  for (int i = 0; i < 3; ++i) SubmitAndFinish("thread-1");
  SubmitAndFinish("thread-2");
  std::vector<std::string> newest_first = ListIds("", "thread-1", 2);
  ASSERT_THAT(newest_first, SizeIs(2));

  Watch watch(stub(), Filter("", "thread-1", /*replay_recent=*/2));
  Delivery first, second;
  ASSERT_TRUE(watch.Next(&first));
  ASSERT_TRUE(watch.Next(&second));
  EXPECT_EQ(first.id(), newest_first[1]);
  EXPECT_EQ(second.id(), newest_first[0]);
  EXPECT_EQ(second.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(second.thread_id(), "thread-1");

  // Nothing else was replayed: the next message is a live one.
  std::vector<std::string> live = SubmitAndFinish("thread-1");
  ASSERT_THAT(live, SizeIs(1));
  Delivery next;
  ASSERT_TRUE(watch.Next(&next));
  EXPECT_EQ(next.id(), live[0]);
  EXPECT_EQ(next.status(), webhook::v1::DELIVERY_STATUS_PENDING);
}

TEST_F(DeliveryStreamTest, ReplayFiltersByEndpoint) {
  Endpoint a = NewEndpoint("thread-1");
  NewEndpoint("thread-1");
  for (int i = 0; i < 2; ++i) SubmitAndFinish("thread-1");
  std::vector<std::string> newest_first = ListIds(a.id(), "", 10);
  ASSERT_THAT(newest_first, SizeIs(2));

  Watch watch(stub(), Filter(a.id(), "", /*replay_recent=*/10));
  Delivery first, second;
  ASSERT_TRUE(watch.Next(&first));
  ASSERT_TRUE(watch.Next(&second));
  EXPECT_EQ(first.id(), newest_first[1]);
  EXPECT_EQ(second.id(), newest_first[0]);
  EXPECT_EQ(first.endpoint_id(), a.id());
  EXPECT_EQ(second.endpoint_id(), a.id());
  EXPECT_TRUE(first.payload().empty());
}

TEST_F(DeliveryStreamTest, ReplayRecentOutOfRangeIsInvalidArgument) {
  for (int replay : {-1, 1001}) {
    Watch watch(stub(), Filter("", "", replay));
    grpc::Status status = watch.Drain();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << replay;
    EXPECT_THAT(status.error_message(), HasSubstr("replay_recent"));
  }
  Watch max(stub(), Filter("", "", 1000));
  max.WaitSubscribed();
  EXPECT_TRUE(Eventually([&] { return hub().StreamCount() == 1; }));
}

TEST_F(DeliveryStreamTest, LiveUpdatesFollowADeliveryToSuccess) {
  NewEndpoint("thread-1");
  Watch watch(stub(), Filter("", "thread-1"));
  watch.WaitSubscribed();
  webhook::v1::SubmitEventResponse submitted =
      Submit(stub(), ExampleEvent("thread-1"));
  ASSERT_THAT(submitted.delivery_ids(), SizeIs(1));
  const std::string id = submitted.delivery_ids(0);

  std::vector<Delivery> seen = watch.ReadUntil(Ended(id));
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen.front().id(), id);
  EXPECT_EQ(seen.front().status(), webhook::v1::DELIVERY_STATUS_PENDING);
  EXPECT_EQ(seen.front().attempts(), 0);
  const Delivery& last = seen.back();
  EXPECT_EQ(last.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(last.attempts(), 1);
  EXPECT_EQ(last.response_code(), 200);
  EXPECT_EQ(last.event_id(), submitted.event_id());
  for (const Delivery& d : seen) {
    EXPECT_TRUE(d.payload().empty()) << "streams carry no payload";
  }
}

TEST_F(DeliveryStreamTest, LiveUpdatesShowEachRetryThenFailure) {
  receiver_.SetDefaultStatus(500);
  NewEndpoint("thread-1");
  Watch watch(stub(), Filter("", "thread-1"));
  watch.WaitSubscribed();
  const std::string id =
      Submit(stub(), ExampleEvent("thread-1")).delivery_ids(0);

  std::vector<Delivery> seen = watch.ReadUntil(Ended(id));
  ASSERT_FALSE(seen.empty());
  std::vector<int> retrying_attempts;
  for (const Delivery& d : seen) {
    if (d.status() == webhook::v1::DELIVERY_STATUS_RETRYING) {
      retrying_attempts.push_back(d.attempts());
      EXPECT_EQ(d.response_code(), 500);
    }
  }
  // The test schedule has three retries: four attempts in all.
  EXPECT_EQ(retrying_attempts, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(seen.back().status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_EQ(seen.back().attempts(), 4);
}

TEST_F(DeliveryStreamTest, FiltersExcludeOtherEndpointsAndThreads) {
  Endpoint a = NewEndpoint("thread-1");
  NewEndpoint("thread-1");
  NewEndpoint("thread-2");
  Watch by_endpoint(stub(), Filter(a.id(), ""));
  Watch by_thread(stub(), Filter("", "thread-2"));
  Watch by_both(stub(), Filter(a.id(), "thread-2"));  // Matches nothing.
  by_endpoint.WaitSubscribed();
  by_thread.WaitSubscribed();
  by_both.WaitSubscribed();

  SubmitAndFinish("thread-1");
  SubmitAndFinish("thread-2");
  // Changes are sent in order, so once the streams have seen these last
  // deliveries end, anything excluded would have come before.
  std::string last_of_a;
  for (const std::string& id : SubmitAndFinish("thread-1")) {
    if (WaitFinished(stub(), id).endpoint_id() == a.id()) {
      last_of_a = id;
    }
  }
  const std::vector<std::string> last_of_thread2 = SubmitAndFinish("thread-2");
  ASSERT_FALSE(last_of_a.empty());
  ASSERT_THAT(last_of_thread2, SizeIs(1));

  std::vector<Delivery> seen = by_endpoint.ReadUntil(Ended(last_of_a));
  ASSERT_TRUE(Ended(last_of_a)(seen.back()));
  for (const Delivery& d : seen) EXPECT_EQ(d.endpoint_id(), a.id());

  seen = by_thread.ReadUntil(Ended(last_of_thread2[0]));
  ASSERT_TRUE(Ended(last_of_thread2[0])(seen.back()));
  for (const Delivery& d : seen) EXPECT_EQ(d.thread_id(), "thread-2");

  by_both.Cancel();
  size_t messages = 0;
  EXPECT_EQ(by_both.Drain(&messages).error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(messages, 0u);
}

TEST_F(DeliveryStreamTest, SlowReaderIsCutOffWhileDeliveriesGoOn) {
  server_.Stop();
  server_.options().stream_buffer = 4;
  server_.Start();
  // Large response bodies (kept in each update's attempt history) fill the
  // HTTP/2 flow-control window quickly once the client stops reading.
  receiver_.SetDefaultResponse(200, std::string(4000, 'x'));
  NewEndpoint("thread-1");

  // A channel of its own, without BDP probing, so that the window stays at
  // its initial size.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto channel =
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_.port()),
                                grpc::InsecureChannelCredentials(), args);
  auto slow_stub = webhook::v1::WebhookService::NewStub(channel);
  Watch slow(*slow_stub, Filter("", "thread-1"), absl::Seconds(60));
  slow.WaitSubscribed();
  Watch fast(stub(), Filter("", "thread-1"), absl::Seconds(60));
  fast.WaitSubscribed();
  ASSERT_EQ(hub().StreamCount(), 2u);

  // The slow stream never reads; the fast one keeps up.
  std::vector<std::string> ids;
  for (int round = 0; round < 40 && hub().StreamCount() == 2; ++round) {
    for (int i = 0; i < 5; ++i) {
      std::vector<std::string> submitted = SubmitAndFinish("thread-1");
      ids.insert(ids.end(), submitted.begin(), submitted.end());
    }
    std::vector<Delivery> seen = fast.ReadUntil(Ended(ids.back()));
    ASSERT_FALSE(seen.empty());
    ASSERT_TRUE(Ended(ids.back())(seen.back())) << "the fast stream ended";
  }
  ASSERT_TRUE(Eventually([&] { return hub().StreamCount() == 1; }))
      << "the slow stream was never cut off";

  // Deliveries went on while the slow stream was stuck.
  for (const std::string& id : ids) {
    EXPECT_EQ(WaitFinished(stub(), id).status(),
              webhook::v1::DELIVERY_STATUS_SUCCESS);
  }
  EXPECT_EQ(receiver_.RequestCount(), ids.size());
  // The slow reader gets what was in flight, then the reason.
  grpc::Status status = slow.Drain();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("reconnect"));

  // The fast stream still gets live updates.
  std::vector<std::string> after = SubmitAndFinish("thread-1");
  std::vector<Delivery> seen = fast.ReadUntil(Ended(after[0]));
  ASSERT_TRUE(Ended(after[0])(seen.back()));
}

TEST_F(DeliveryStreamTest, ClientCancellationEndsStreamAndServerGoesOn) {
  NewEndpoint("thread-1");
  {
    Watch watch(stub(), Filter("", ""));
    watch.WaitSubscribed();
    ASSERT_EQ(hub().StreamCount(), 1u);
    watch.Cancel();
    EXPECT_EQ(watch.Drain().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(Eventually([&] { return hub().StreamCount() == 0; }));

  Watch again(stub(), Filter("", ""));
  again.WaitSubscribed();
  std::vector<std::string> ids = SubmitAndFinish("thread-1");
  ASSERT_THAT(ids, SizeIs(1));
  std::vector<Delivery> seen = again.ReadUntil(Ended(ids[0]));
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
}

TEST_F(DeliveryStreamTest, ServerShutdownEndsOpenStreamsPromptly) {
  NewEndpoint("thread-1");
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_.port()),
                                     grpc::InsecureChannelCredentials());
  auto own_stub = webhook::v1::WebhookService::NewStub(channel);
  std::vector<std::unique_ptr<Watch>> watches;
  for (int i = 0; i < 3; ++i) {
    watches.push_back(
        std::make_unique<Watch>(*own_stub, Filter("", ""), absl::Seconds(60)));
    watches.back()->WaitSubscribed();
  }
  std::vector<grpc::Status> statuses(watches.size());
  std::vector<std::thread> readers;
  for (size_t i = 0; i < watches.size(); ++i) {
    readers.emplace_back([&, i] { statuses[i] = watches[i]->Drain(); });
  }

  // A long grace: if open streams held the shutdown, it would last that
  // long and then cut them off.
  constexpr absl::Duration kGrace = absl::Seconds(30);
  const absl::Time start = absl::Now();
  server_.Stop(kGrace);
  const absl::Duration took = absl::Now() - start;
  for (std::thread& reader : readers) reader.join();
  EXPECT_LT(took, kGrace);
  // Ended by the server itself, with its reason: not the UNAVAILABLE of a
  // connection gone.
  for (const grpc::Status& status : statuses) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT(status.error_message(), HasSubstr("shutting down"));
  }
}

}  // namespace
}  // namespace webhookd
