// Two webhookd nodes sharing one PostgreSQL database, in one process: real
// gRPC servers on port 0 reached through real channels, a real HTTP
// receiver on loopback and a real PostgreSQL started by the test binary.
// What a user of either node sees: the same endpoints, deliveries streamed
// from every node, idempotency keys unique across nodes, exact stats, and
// endpoint changes made through one node taking effect on the other.

#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/eventually.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/postgres_server.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using testing::Context;
using testing::CreateEndpoint;
using testing::DeliveryWatch;
using testing::Eventually;
using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using testing::MakeEndpoint;
using testing::ReceiverResponse;
using ::testing::SizeIs;
using testing::Submit;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::WaitFinished;
using testing::WaitForDelivery;
using webhook::v1::Delivery;
using webhook::v1::Endpoint;

class MultiNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> conninfo =
        testing::NewSharedDatabase("multi_node");
    ASSERT_TRUE(conninfo.ok()) << conninfo.status();
    conninfo_ = *conninfo;
  }

  // Starts node `i` (0 or 1) with `configure` applied to its options.
  void StartNodes(
      const std::function<void(ServerOptions&)>& configure = nullptr) {
    for (int i = 0; i < 2; ++i) {
      ServerOptions options = TestServerOptions(dir_.Sub(absl::StrCat(i)));
      options.postgres = conninfo_;
      if (configure) configure(options);
      nodes_.push_back(std::make_unique<TestServer>(options));
      nodes_.back()->Start();
    }
  }

  webhook::v1::WebhookService::Stub& node(int i) { return nodes_[i]->stub(); }

  webhook::v1::EndpointStats Stats(int i, const std::string& endpoint_id) {
    webhook::v1::GetEndpointStatsRequest request;
    request.set_endpoint_id(endpoint_id);
    webhook::v1::GetEndpointStatsResponse response;
    EXPECT_TRUE(
        node(i).GetEndpointStats(Context().get(), request, &response).ok());
    return response.stats();
  }

  void SetEnabled(int i, const std::string& id, bool enabled) {
    grpc::Status status;
    if (enabled) {
      webhook::v1::EnableEndpointRequest request;
      request.set_id(id);
      webhook::v1::EnableEndpointResponse response;
      status = node(i).EnableEndpoint(Context().get(), request, &response);
    } else {
      webhook::v1::DisableEndpointRequest request;
      request.set_id(id);
      webhook::v1::DisableEndpointResponse response;
      status = node(i).DisableEndpoint(Context().get(), request, &response);
    }
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // Submits through node `i` until an event of `thread` gets `deliveries`
  // deliveries there: the node has learnt of an endpoint change made
  // through the other. Returns the last response.
  webhook::v1::SubmitEventResponse SubmitUntil(int i, const std::string& thread,
                                               int deliveries) {
    webhook::v1::SubmitEventResponse response;
    EXPECT_TRUE(Eventually([&] {
      response = Submit(node(i), ExampleEvent(thread));
      return response.delivery_ids_size() == deliveries;
    }));
    return response;
  }

  std::string conninfo_;
  HttpReceiver receiver_;
  TestDir dir_;
  std::vector<std::unique_ptr<TestServer>> nodes_;
};

TEST_F(MultiNodeTest, EndpointCreatedOnOneNodeIsServedByTheOther) {
  StartNodes();
  const Endpoint created =
      CreateEndpoint(node(0), MakeEndpoint("thread-1", receiver_.Url()));
  // Read through the other node at once: callers get what is stored.
  webhook::v1::GetEndpointRequest get;
  get.set_id(created.id());
  webhook::v1::GetEndpointResponse got;
  ASSERT_TRUE(node(1).GetEndpoint(Context().get(), get, &got).ok());
  EXPECT_EQ(got.endpoint().url(), receiver_.Url());

  // Events submitted through the other node reach it once it has learnt
  // of the endpoint (at once here, or a moment later).
  const webhook::v1::SubmitEventResponse submitted =
      SubmitUntil(1, "thread-1", 1);
  const Delivery delivery = WaitFinished(node(0), submitted.delivery_ids(0));
  EXPECT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
}

TEST_F(MultiNodeTest, StreamOnOneNodeShowsDeliveriesOfTheOther) {
  StartNodes();
  const Endpoint endpoint =
      CreateEndpoint(node(0), MakeEndpoint("thread-1", receiver_.Url()));
  webhook::v1::StreamDeliveriesRequest filter;
  filter.set_endpoint_id(endpoint.id());
  DeliveryWatch watch(node(0), filter);
  watch.WaitSubscribed();

  const webhook::v1::SubmitEventResponse submitted =
      SubmitUntil(1, "thread-1", 1);
  const std::string id = submitted.delivery_ids(0);
  std::vector<Delivery> seen = watch.ReadUntil([&](const Delivery& d) {
    return d.id() == id && d.status() == webhook::v1::DELIVERY_STATUS_SUCCESS;
  });
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().id(), id);
  EXPECT_EQ(seen.back().status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  // Its creation came first.
  bool created = false;
  for (const Delivery& d : seen) {
    if (d.id() == id && d.status() == webhook::v1::DELIVERY_STATUS_PENDING) {
      created = true;
    }
  }
  EXPECT_TRUE(created);
}

TEST_F(MultiNodeTest, DisablingThroughOneNodeStopsDeliveriesOnTheOther) {
  StartNodes();
  const Endpoint endpoint =
      CreateEndpoint(node(0), MakeEndpoint("thread-1", receiver_.Url()));
  SubmitUntil(1, "thread-1", 1);

  SetEnabled(0, endpoint.id(), false);
  // Node 1 learns of it: its events get no delivery to the endpoint.
  SubmitUntil(1, "thread-1", 0);

  SetEnabled(0, endpoint.id(), true);
  const webhook::v1::SubmitEventResponse after = SubmitUntil(1, "thread-1", 1);
  EXPECT_EQ(WaitFinished(node(1), after.delivery_ids(0)).status(),
            webhook::v1::DELIVERY_STATUS_SUCCESS);
}

TEST_F(MultiNodeTest, DeletingThroughOneNodeEndsQueuedDeliveriesOfTheOther) {
  // One attempt fails and the next waits an hour, queued in the database.
  StartNodes([](ServerOptions& options) {
    options.engine.retry_policy = RetryPolicy({absl::Hours(1)});
  });
  receiver_.SetDefaultStatus(500);
  const Endpoint endpoint =
      CreateEndpoint(node(0), MakeEndpoint("thread-1", receiver_.Url()));
  const webhook::v1::SubmitEventResponse submitted =
      SubmitUntil(1, "thread-1", 1);
  const std::string id = submitted.delivery_ids(0);
  WaitForDelivery(node(1), id, [](const Delivery& d) {
    return d.status() == webhook::v1::DELIVERY_STATUS_RETRYING;
  });

  webhook::v1::DeleteEndpointRequest request;
  request.set_id(endpoint.id());
  webhook::v1::DeleteEndpointResponse response;
  ASSERT_TRUE(node(0).DeleteEndpoint(Context().get(), request, &response).ok());
  const Delivery ended = WaitFinished(node(1), id);
  EXPECT_EQ(ended.status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_EQ(ended.last_error(), "endpoint was deleted");
}

TEST_F(MultiNodeTest, IdempotencyKeysAreUniqueAcrossNodes) {
  StartNodes();
  CreateEndpoint(node(0), MakeEndpoint("thread-1", receiver_.Url()));
  SubmitUntil(1, "thread-1", 1);
  // The same key through both nodes at once, many times.
  constexpr int kKeys = 20;
  std::vector<webhook::v1::SubmitEventResponse> through[2];
  std::vector<std::thread> submitters;
  for (int i = 0; i < 2; ++i) {
    through[i].resize(kKeys);
    submitters.emplace_back([&, i] {
      for (int k = 0; k < kKeys; ++k) {
        webhook::v1::SubmitEventRequest request = ExampleEvent("thread-1");
        request.set_idempotency_key(absl::StrCat("key-", k));
        through[i][k] = Submit(node(i), request);
      }
    });
  }
  for (std::thread& submitter : submitters) submitter.join();
  std::set<std::string> deliveries;
  for (int k = 0; k < kKeys; ++k) {
    EXPECT_EQ(through[0][k].event_id(), through[1][k].event_id()) << k;
    ASSERT_THAT(through[0][k].delivery_ids(), SizeIs(1));
    deliveries.insert(through[0][k].delivery_ids(0));
  }
  for (const std::string& id : deliveries) WaitFinished(node(0), id);
  // One request per key reached the receiver (plus the first event's).
  EXPECT_EQ(receiver_.RequestCount(), kKeys + 1);
}

TEST_F(MultiNodeTest,
       ConflictingRequestsWithOneKeyThroughBothNodesMakeOneEvent) {
  StartNodes();
  CreateEndpoint(node(0), MakeEndpoint("thread-1", receiver_.Url()));
  SubmitUntil(1, "thread-1", 1);
  // The same key through both nodes at once, with different requests.
  constexpr int kKeys = 20;
  grpc::Status status[2][kKeys];
  webhook::v1::SubmitEventResponse through[2][kKeys];
  std::vector<std::thread> submitters;
  for (int i = 0; i < 2; ++i) {
    submitters.emplace_back([&, i] {
      for (int k = 0; k < kKeys; ++k) {
        webhook::v1::SubmitEventRequest request = ExampleEvent("thread-1");
        request.set_idempotency_key(absl::StrCat("key-", k));
        request.set_trigger_name(absl::StrCat("node-", i));
        status[i][k] =
            node(i).SubmitEvent(Context().get(), request, &through[i][k]);
      }
    });
  }
  for (std::thread& submitter : submitters) submitter.join();
  for (int k = 0; k < kKeys; ++k) {
    EXPECT_EQ(status[0][k].ok() + status[1][k].ok(), 1) << k;
    for (int i = 0; i < 2; ++i) {
      if (status[i][k].ok()) {
        ASSERT_THAT(through[i][k].delivery_ids(), SizeIs(1));
        WaitFinished(node(0), through[i][k].delivery_ids(0));
      } else {
        EXPECT_EQ(status[i][k].error_code(), grpc::StatusCode::ALREADY_EXISTS)
            << status[i][k].error_message();
      }
    }
  }
  // One request per key reached the receiver (plus the first event's).
  EXPECT_EQ(receiver_.RequestCount(), kKeys + 1);
}

TEST_F(MultiNodeTest, StatsAreExactAcrossNodes) {
  StartNodes();
  const Endpoint endpoint =
      CreateEndpoint(node(0), MakeEndpoint("thread-1", receiver_.Url()));
  SubmitUntil(1, "thread-1", 1);
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    ids.push_back(
        Submit(node(i % 2), ExampleEvent("thread-1")).delivery_ids(0));
  }
  for (const std::string& id : ids) WaitFinished(node(0), id);
  // 11 successes, counted once each, whichever node attempted them.
  EXPECT_EQ(Stats(0, endpoint.id()).total_deliveries(), 11);
  EXPECT_EQ(Stats(1, endpoint.id()).total_deliveries(), 11);
  EXPECT_EQ(Stats(1, endpoint.id()).successful_deliveries(), 11);
  EXPECT_EQ(Stats(0, endpoint.id()).deliveries_succeeded(), 11);
  EXPECT_EQ(Stats(1, endpoint.id()).deliveries_in_progress(), 0);
}

TEST_F(MultiNodeTest, WorkANodeHasNoRoomForGoesToTheOther) {
  // Node 0 attempts one delivery at a time; node 1 many.
  StartNodes([](ServerOptions& options) {
    if (options.data_dir.ends_with("/0"))
      options.engine.limits.max_in_flight = 1;
  });
  CreateEndpoint(node(0), MakeEndpoint("thread-1", receiver_.Url()));
  SubmitUntil(1, "thread-1", 1);
  ASSERT_TRUE(receiver_.WaitForRequests(1, testing::kEventuallyTimeout));
  // Every attempt now hangs until released.
  ReceiverResponse held;
  held.held = true;
  receiver_.SetDefaultResponse(held);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(Submit(node(0), ExampleEvent("thread-1")).delivery_ids(0));
  }
  // Node 0 claimed what it had room for; node 1 took the rest, woken by
  // the new work rather than by a poll.
  EXPECT_TRUE(
      receiver_.WaitForRequests(1 + ids.size(), testing::kEventuallyTimeout));
  receiver_.Release();
  for (const std::string& id : ids) {
    EXPECT_EQ(WaitFinished(node(0), id).status(),
              webhook::v1::DELIVERY_STATUS_SUCCESS);
  }
}

TEST_F(MultiNodeTest, DeliveryRetriedThroughTheOtherNode) {
  // A long schedule keeps the delivery RETRYING, queued in the database.
  StartNodes([](ServerOptions& options) {
    options.engine.retry_policy = RetryPolicy({absl::Hours(1)});
  });
  CreateEndpoint(node(0), MakeEndpoint("thread-1", receiver_.Url()));
  receiver_.PushResponse(500);
  const std::string id =
      Submit(node(0), ExampleEvent("thread-1")).delivery_ids(0);
  WaitForDelivery(node(0), id, [](const Delivery& d) {
    return d.status() == webhook::v1::DELIVERY_STATUS_RETRYING;
  });

  webhook::v1::RetryDeliveryRequest retry;
  retry.set_id(id);
  webhook::v1::RetryDeliveryResponse retried;
  const grpc::Status status =
      node(1).RetryDelivery(Context().get(), retry, &retried);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const Delivery done = WaitFinished(node(0), id);
  EXPECT_EQ(done.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  ASSERT_THAT(done.attempt_history(), SizeIs(2));
  EXPECT_TRUE(done.attempt_history(1).manual());
  // Finished: a second retry is refused, through either node.
  const grpc::Status again =
      node(0).RetryDelivery(Context().get(), retry, &retried);
  EXPECT_EQ(again.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(again.error_message(), HasSubstr("succeeded"));
}

// The database stopped while an attempt is under way: submits answer
// UNAVAILABLE meanwhile, and the attempt's outcome, kept by the node, is
// written once the database is back, without a restart and without a
// second attempt (which would come only after the claim's lease ran out).
TEST(MultiNodeOutageTest, OutcomeOfAnAttemptFinishedDuringAnOutageIsKept) {
  // A server of its own: this test stops it.
  absl::StatusOr<std::unique_ptr<testing::PostgresServer>> database =
      testing::PostgresServer::Start();
  ASSERT_TRUE(database.ok()) << database.status();
  absl::StatusOr<std::string> conninfo = (*database)->CreateDatabase("outage");
  ASSERT_TRUE(conninfo.ok()) << conninfo.status();
  HttpReceiver receiver;
  TestDir dir;
  ServerOptions options = TestServerOptions(dir.Sub("data"));
  options.postgres = *conninfo;
  // The claim's lease (attempt timeout + 15 s) must outlast the outage,
  // which takes a restart of PostgreSQL: on a loaded machine, more than the
  // 17 s of the 2 s test timeout. The held attempt ends when released.
  options.engine.attempt_timeout = absl::Seconds(60);
  TestServer node(options);
  node.Start();
  CreateEndpoint(node.stub(), MakeEndpoint("thread-1", receiver.Url()));
  ReceiverResponse held;
  held.held = true;
  receiver.SetDefaultResponse(held);
  const std::string id =
      Submit(node.stub(), ExampleEvent("thread-1")).delivery_ids(0);
  ASSERT_TRUE(receiver.WaitForRequests(1, testing::kEventuallyTimeout));

  ASSERT_TRUE((*database)->Stop().ok());
  webhook::v1::SubmitEventResponse refused;
  const grpc::Status during = node.stub().SubmitEvent(
      Context().get(), ExampleEvent("thread-1"), &refused);
  EXPECT_EQ(during.error_code(), grpc::StatusCode::UNAVAILABLE)
      << during.error_message();
  // The attempt ends while the database is down.
  receiver.Release();

  ASSERT_TRUE((*database)->StartAgain().ok());
  const Delivery done = WaitFinished(node.stub(), id);
  EXPECT_EQ(done.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(done.attempts(), 1);
  EXPECT_EQ(receiver.RequestCount(), 1u);
  // Serving again, without a restart.
  const webhook::v1::SubmitEventResponse after =
      Submit(node.stub(), ExampleEvent("thread-1"));
  EXPECT_EQ(WaitFinished(node.stub(), after.delivery_ids(0)).status(),
            webhook::v1::DELIVERY_STATUS_SUCCESS);
}

TEST_F(MultiNodeTest, ResendThroughOneNodeIsDeliveredAndStreamedByEither) {
  StartNodes([](ServerOptions& options) {
    options.engine.retry_policy = RetryPolicy({});
  });
  receiver_.SetDefaultStatus(500);
  const Endpoint endpoint =
      CreateEndpoint(node(0), MakeEndpoint("thread-1", receiver_.Url()));
  const webhook::v1::SubmitEventResponse submitted =
      SubmitUntil(0, "thread-1", 1);
  const std::string original = submitted.delivery_ids(0);
  ASSERT_EQ(WaitFinished(node(0), original).status(),
            webhook::v1::DELIVERY_STATUS_FAILED);
  receiver_.SetDefaultStatus(200);
  webhook::v1::StreamDeliveriesRequest filter;
  filter.set_endpoint_id(endpoint.id());
  DeliveryWatch watch(node(0), filter);
  watch.WaitSubscribed();

  webhook::v1::ResendDeliveryRequest request;
  request.set_id(original);
  webhook::v1::ResendDeliveryResponse response;
  const grpc::Status status =
      node(1).ResendDelivery(Context().get(), request, &response);

  ASSERT_TRUE(status.ok()) << status.error_message();
  const std::string resent = response.delivery().id();
  EXPECT_EQ(WaitFinished(node(0), resent).status(),
            webhook::v1::DELIVERY_STATUS_SUCCESS);
  const std::vector<Delivery> seen = watch.ReadUntil([&](const Delivery& d) {
    return d.id() == resent &&
           d.status() == webhook::v1::DELIVERY_STATUS_SUCCESS;
  });
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().id(), resent) << "streamed by the other node";
  const std::vector<testing::ReceivedRequest> requests = receiver_.Requests();
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_EQ(requests[1].body, requests[0].body);
  EXPECT_EQ(requests[1].Header("X-Webhook-Id"), resent);
}

}  // namespace
}  // namespace webhookd
