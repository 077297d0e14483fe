// SubmitEvents through the real gRPC server, on LevelDB and on a real
// PostgreSQL, with a real receiver on loopback: a batch is stored in one
// synced write (the server's own storage-write metrics, scraped over HTTP,
// count it) and delivered; invalid events and repeated keys get their own
// results; keys replay across calls and restarts; limits refuse the whole
// call and store nothing.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/server_backends.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using testing::Context;
using testing::CreateEndpoint;
using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using ::testing::IsEmpty;
using testing::MakeEndpoint;
using testing::ScrapedValue;
using ::testing::SizeIs;
using testing::TestDir;
using testing::TestServer;
using testing::WaitFinished;
using webhook::v1::SubmitEventRequest;
using webhook::v1::SubmitEventsRequest;
using webhook::v1::SubmitEventsResponse;

constexpr char kThread[] = "thread-1";
constexpr char kSubmitWrites[] =
    R"(webhookd_storage_write_duration_seconds_count{operation="submit"})";
constexpr char kEventsSubmitted[] = "webhookd_events_submitted_total";
constexpr int kInvalidArgument = 3;
constexpr int kAlreadyExists = 6;

class SubmitEventsTest
    : public ::testing::TestWithParam<testing::ServerBackend> {
 protected:
  void SetUp() override {
    absl::StatusOr<ServerOptions> options = testing::BackendServerOptions(
        GetParam(), dir_.Sub("data"), "submit_events");
    ASSERT_TRUE(options.ok()) << options.status();
    options->metrics_listen = "127.0.0.1:0";
    server_ = std::make_unique<TestServer>(*options);
    server_->Start();
    endpoint_id_ =
        CreateEndpoint(stub(), MakeEndpoint(kThread, receiver_.Url())).id();
  }

  webhook::v1::WebhookService::Stub& stub() { return server_->stub(); }

  double Metric(const char* series) {
    return ScrapedValue(server_->server().metrics_port(), series).value_or(0);
  }

  static SubmitEventRequest Event(const std::string& key = "",
                                  const std::string& trigger = "Nightly") {
    SubmitEventRequest event = ExampleEvent(kThread);
    event.set_idempotency_key(key);
    event.set_trigger_name(trigger);
    return event;
  }

  grpc::Status Call(const SubmitEventsRequest& request,
                    SubmitEventsResponse* response,
                    const std::string& traceparent = "") {
    std::unique_ptr<grpc::ClientContext> context = Context();
    if (!traceparent.empty()) context->AddMetadata("traceparent", traceparent);
    return stub().SubmitEvents(context.get(), request, response);
  }

  SubmitEventsResponse CallOk(const SubmitEventsRequest& request) {
    SubmitEventsResponse response;
    const grpc::Status status = Call(request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.results_size(), request.events_size());
    return response;
  }

  size_t RequestsAfterBarrier() {
    return testing::RequestsAfterBarrier(stub(), receiver_, kThread);
  }
  size_t DeliveriesOfEndpoint() {
    return testing::CountDeliveries(stub(), endpoint_id_);
  }

  HttpReceiver receiver_;
  TestDir dir_;
  std::unique_ptr<TestServer> server_;
  std::string endpoint_id_;
};

TEST_P(SubmitEventsTest, BatchIsStoredInOneSyncedWriteAndDelivered) {
  CreateEndpoint(stub(), MakeEndpoint(kThread, receiver_.Url("/second")));
  constexpr int kEvents = 200;
  SubmitEventsRequest request;
  for (int i = 0; i < kEvents; ++i) {
    *request.add_events() = Event("", absl::StrCat("trigger-", i));
  }
  const double writes_before = Metric(kSubmitWrites);
  const double events_before = Metric(kEventsSubmitted);
  constexpr char kTrace[] =
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  SubmitEventsResponse response;
  const grpc::Status status = Call(request, &response, kTrace);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_THAT(response.results(), SizeIs(kEvents));
  for (const webhook::v1::SubmitEventResult& result : response.results()) {
    EXPECT_EQ(result.code(), 0) << result.message();
    EXPECT_THAT(result.response().delivery_ids(), SizeIs(2));
  }
  EXPECT_EQ(Metric(kSubmitWrites) - writes_before, 1) << "one synced write";
  EXPECT_EQ(Metric(kEventsSubmitted) - events_before, kEvents);

  ASSERT_TRUE(receiver_.WaitForRequests(2 * kEvents, absl::Seconds(30)));
  for (const testing::ReceivedRequest& received : receiver_.Requests()) {
    EXPECT_THAT(received.Header("traceparent"),
                HasSubstr("0af7651916cd43dd8448eb211c80319c"));
  }
  // Each event reached each endpoint once, in its own order of results.
  WaitFinished(stub(),
               response.results(kEvents - 1).response().delivery_ids(1));
}

TEST_P(SubmitEventsTest, InvalidEventsAreRefusedOnTheirOwn) {
  SubmitEventsRequest request;
  *request.add_events() = Event();
  SubmitEventRequest* no_thread = request.add_events();
  *no_thread = Event();
  no_thread->clear_thread_id();
  SubmitEventRequest* bad_type = request.add_events();
  *bad_type = Event();
  bad_type->set_event_type("two words");
  *request.add_events() = Event();

  const SubmitEventsResponse response = CallOk(request);
  ASSERT_THAT(response.results(), SizeIs(4));
  EXPECT_EQ(response.results(0).code(), 0);
  EXPECT_EQ(response.results(1).code(), kInvalidArgument);
  EXPECT_THAT(response.results(1).message(), HasSubstr("events[1].thread_id:"));
  EXPECT_FALSE(response.results(1).has_response());
  EXPECT_EQ(response.results(2).code(), kInvalidArgument);
  EXPECT_THAT(response.results(2).message(),
              HasSubstr("events[2].event_type:"));
  EXPECT_EQ(response.results(3).code(), 0);
  EXPECT_EQ(DeliveriesOfEndpoint(), 2u);
  WaitFinished(stub(), response.results(3).response().delivery_ids(0));
  EXPECT_EQ(RequestsAfterBarrier(), 2u);
}

TEST_P(SubmitEventsTest, SameKeyTwiceInOneBatchReplaysOrConflicts) {
  SubmitEventsRequest request;
  *request.add_events() = Event("run-1", "Nightly");
  *request.add_events() = Event("run-1", "Nightly");
  *request.add_events() = Event("run-1", "Weekly");

  const SubmitEventsResponse response = CallOk(request);
  ASSERT_THAT(response.results(), SizeIs(3));
  EXPECT_FALSE(response.results(0).response().replayed());
  EXPECT_TRUE(response.results(1).response().replayed());
  EXPECT_EQ(response.results(1).response().event_id(),
            response.results(0).response().event_id());
  EXPECT_EQ(response.results(2).code(), kAlreadyExists);
  EXPECT_THAT(response.results(2).message(),
              HasSubstr("events[2].idempotency_key: \"run-1\""));
  EXPECT_EQ(DeliveriesOfEndpoint(), 1u);
  WaitFinished(stub(), response.results(0).response().delivery_ids(0));
  EXPECT_EQ(RequestsAfterBarrier(), 1u);
}

TEST_P(SubmitEventsTest, KeysReplayAcrossCallsRpcsAndRestarts) {
  SubmitEventsRequest request;
  *request.add_events() = Event("run-1", "Nightly");
  *request.add_events() = Event("run-2", "Nightly");
  const SubmitEventsResponse first = CallOk(request);
  // A key used by SubmitEvent is the same key for SubmitEvents.
  const webhook::v1::SubmitEventResponse unary =
      testing::Submit(stub(), Event("run-3", "Nightly"));
  for (const auto& result : first.results()) {
    WaitFinished(stub(), result.response().delivery_ids(0));
  }
  WaitFinished(stub(), unary.delivery_ids(0));
  server_->Stop();
  server_->Start();

  SubmitEventsRequest again = request;
  *again.add_events() = Event("run-3", "Nightly");
  *again.add_events() = Event("run-1", "Weekly");
  const SubmitEventsResponse replayed = CallOk(again);
  ASSERT_THAT(replayed.results(), SizeIs(4));
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(replayed.results(i).response().replayed()) << i;
    EXPECT_EQ(replayed.results(i).response().event_id(),
              first.results(i).response().event_id());
    EXPECT_THAT(replayed.results(i).response().delivery_ids(),
                ::testing::ElementsAreArray(
                    first.results(i).response().delivery_ids()));
  }
  EXPECT_TRUE(replayed.results(2).response().replayed());
  EXPECT_EQ(replayed.results(2).response().event_id(), unary.event_id());
  EXPECT_EQ(replayed.results(3).code(), kAlreadyExists);
  EXPECT_EQ(DeliveriesOfEndpoint(), 3u);
  EXPECT_EQ(RequestsAfterBarrier(), 3u);
}

TEST_P(SubmitEventsTest, BatchesOutsideTheLimitsAreRefusedWhole) {
  SubmitEventsResponse response;
  grpc::Status empty = Call(SubmitEventsRequest(), &response);
  EXPECT_EQ(empty.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(empty.error_message(), HasSubstr("events:"));

  SubmitEventsRequest too_many;
  for (int i = 0; i < 1001; ++i) *too_many.add_events() = Event();
  grpc::Status many = Call(too_many, &response);
  EXPECT_EQ(many.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(many.error_message(), HasSubstr("events: 1001 events"));

  // Each event is under --max_payload_bytes, the whole over 4 MiB.
  SubmitEventsRequest too_big;
  for (int i = 0; i < 20; ++i) {
    SubmitEventRequest* event = too_big.add_events();
    *event = Event();
    event->mutable_execution()->set_prompt(std::string(250 * 1000, 'x'));
  }
  grpc::Status big = Call(too_big, &response);
  EXPECT_EQ(big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  EXPECT_EQ(DeliveriesOfEndpoint(), 0u);
  // The largest batch allowed goes through.
  too_many.mutable_events()->RemoveLast();
  const SubmitEventsResponse accepted = CallOk(too_many);
  EXPECT_EQ(DeliveriesOfEndpoint(), 1000u);
  ASSERT_TRUE(receiver_.WaitForRequests(1000, absl::Seconds(60)));
}

INSTANTIATE_TEST_SUITE_P(Backends, SubmitEventsTest,
                         testing::AllServerBackends(),
                         testing::ServerBackendName);

}  // namespace
}  // namespace webhookd
