// Failing endpoints end to end, on LevelDB and on a real PostgreSQL: a real
// server on port 0, a real gRPC channel and a real HTTP receiver on
// loopback. ResendDelivery and RecoverDeliveries send ended deliveries
// again as new deliveries of the same event.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/time_util.h"
#include "server/delivery/retry_policy.h"
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
using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using ::testing::IsEmpty;
using testing::MakeEndpoint;
using testing::ReceivedRequest;
using ::testing::SizeIs;
using testing::Submit;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::WaitFinished;
using webhook::v1::Delivery;
using webhook::v1::Endpoint;

enum class Backend { kLevelDb, kPostgres };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kLevelDb ? "LevelDb" : "Postgres";
}

class FailingEndpointsTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ServerOptions options = TestServerOptions(dir_.Sub("data"));
    if (GetParam() == Backend::kPostgres) {
      absl::StatusOr<std::string> conninfo =
          testing::NewSharedDatabase("failing_endpoints");
      ASSERT_TRUE(conninfo.ok()) << conninfo.status();
      options.postgres = *conninfo;
    }
    server_ = std::make_unique<TestServer>(options);
    server_->Start();
  }

  webhook::v1::WebhookService::Stub& stub() { return server_->stub(); }

  // A delivery to `endpoint` that failed for good (the receiver answers
  // 500 to every attempt of the test schedule).
  std::string FailedDelivery() {
    receiver_.SetDefaultStatus(500);
    const webhook::v1::SubmitEventResponse submitted =
        Submit(stub(), ExampleEvent("thread-1"));
    EXPECT_THAT(submitted.delivery_ids(), SizeIs(1));
    const Delivery failed = WaitFinished(stub(), submitted.delivery_ids(0));
    EXPECT_EQ(failed.status(), webhook::v1::DELIVERY_STATUS_FAILED);
    return failed.id();
  }

  grpc::Status Resend(const std::string& id, Delivery* out = nullptr) {
    webhook::v1::ResendDeliveryRequest request;
    request.set_id(id);
    webhook::v1::ResendDeliveryResponse response;
    grpc::Status status =
        stub().ResendDelivery(Context().get(), request, &response);
    if (out != nullptr) *out = response.delivery();
    return status;
  }

  grpc::Status Recover(const std::string& endpoint_id, absl::Time since,
                       webhook::v1::RecoverDeliveriesResponse* out) {
    webhook::v1::RecoverDeliveriesRequest request;
    request.set_endpoint_id(endpoint_id);
    *request.mutable_since() = ToProtoTime(since);
    return stub().RecoverDeliveries(Context().get(), request, out);
  }

  Delivery Get(const std::string& id) {
    webhook::v1::GetDeliveryRequest request;
    request.set_id(id);
    webhook::v1::GetDeliveryResponse response;
    EXPECT_TRUE(stub().GetDelivery(Context().get(), request, &response).ok());
    return response.delivery();
  }

  HttpReceiver receiver_;
  TestDir dir_;
  std::unique_ptr<TestServer> server_;
};

TEST_P(FailingEndpointsTest, ResendSendsTheOriginalBodyAsANewDelivery) {
  const Endpoint endpoint =
      CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url()));
  const std::string original = FailedDelivery();
  webhook::v1::StreamDeliveriesRequest filter;
  filter.set_endpoint_id(endpoint.id());
  DeliveryWatch watch(stub(), filter);
  watch.WaitSubscribed();
  receiver_.SetDefaultStatus(200);

  Delivery resent;
  const grpc::Status status = Resend(original, &resent);

  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_NE(resent.id(), original);
  EXPECT_EQ(resent.resent_from(), original);
  EXPECT_EQ(resent.max_attempts(), 4) << "a full attempt budget";
  const Delivery done = WaitFinished(stub(), resent.id());
  EXPECT_EQ(done.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(done.payload(), Get(original).payload());
  const std::vector<testing::ReceivedRequest> requests = receiver_.Requests();
  ASSERT_THAT(requests, SizeIs(5));
  EXPECT_EQ(requests[4].body, requests[0].body) << "byte for byte";
  EXPECT_EQ(requests[4].Header("X-Webhook-Id"), resent.id());
  EXPECT_EQ(Get(original).resent_by(), resent.id());
  EXPECT_THAT(Get(original).attempt_history(), SizeIs(4));
  // The stream shows the new delivery, and the original now resent.
  const std::vector<Delivery> seen = watch.ReadUntil([&](const Delivery& d) {
    return d.id() == resent.id() &&
           d.status() == webhook::v1::DELIVERY_STATUS_SUCCESS;
  });
  bool original_marked = false;
  for (const Delivery& d : seen) {
    original_marked =
        original_marked || (d.id() == original && d.resent_by() == resent.id());
  }
  EXPECT_TRUE(original_marked);
  // Listed with the others of the endpoint.
  webhook::v1::ListDeliveriesRequest list;
  list.set_endpoint_id(endpoint.id());
  webhook::v1::ListDeliveriesResponse listed;
  ASSERT_TRUE(stub().ListDeliveries(Context().get(), list, &listed).ok());
  ASSERT_THAT(listed.deliveries(), SizeIs(2));
  EXPECT_EQ(listed.deliveries(0).id(), resent.id());
  EXPECT_EQ(listed.deliveries(0).resent_from(), original);
}

TEST_P(FailingEndpointsTest, ResendRefusesWhatCannotBeSentAgain) {
  const Endpoint endpoint =
      CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url()));
  EXPECT_EQ(Resend("dlv_00000000000000000000000000000000").error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Resend("").error_code(), grpc::StatusCode::NOT_FOUND);
  const std::string failed = FailedDelivery();
  webhook::v1::DeleteEndpointRequest remove;
  remove.set_id(endpoint.id());
  webhook::v1::DeleteEndpointResponse removed;
  ASSERT_TRUE(stub().DeleteEndpoint(Context().get(), remove, &removed).ok());
  const grpc::Status status = Resend(failed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("deleted"));
}

TEST_P(FailingEndpointsTest, RecoverResendsFailedDeliveriesOnceAcrossRestarts) {
  const Endpoint endpoint =
      CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url()));
  const absl::Time since = absl::Now() - absl::Minutes(1);
  const std::string a = FailedDelivery();
  const std::string b = FailedDelivery();
  receiver_.SetDefaultStatus(200);

  webhook::v1::RecoverDeliveriesResponse first;
  grpc::Status status = Recover(endpoint.id(), since, &first);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_THAT(first.delivery_ids(), SizeIs(2));
  EXPECT_FALSE(first.more());
  // At once, before any of them ends: nothing is queued twice.
  webhook::v1::RecoverDeliveriesResponse second;
  ASSERT_TRUE(Recover(endpoint.id(), since, &second).ok());
  EXPECT_THAT(second.delivery_ids(), IsEmpty());

  server_->Stop();
  server_->Start();

  for (const std::string& id : first.delivery_ids()) {
    const Delivery done = WaitFinished(stub(), id);
    EXPECT_EQ(done.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
    EXPECT_TRUE(done.resent_from() == a || done.resent_from() == b);
  }
  EXPECT_FALSE(Get(a).resent_by().empty());
  EXPECT_FALSE(Get(b).resent_by().empty());
  webhook::v1::RecoverDeliveriesResponse third;
  ASSERT_TRUE(Recover(endpoint.id(), since, &third).ok());
  EXPECT_THAT(third.delivery_ids(), IsEmpty());
  // Every attempt of the originals, and each resend at least once (one in
  // flight at the restart is made again: at least once), nothing else.
  std::map<std::string, int> received;
  for (const ReceivedRequest& request : receiver_.Requests()) {
    ++received[request.Header("X-Webhook-Id")];
  }
  EXPECT_EQ(received.size(), 4u);
  EXPECT_EQ(received[a], Get(a).attempts());
  EXPECT_EQ(received[b], Get(b).attempts());
  for (const std::string& id : first.delivery_ids()) {
    EXPECT_GE(received[id], 1) << id;
  }
}

TEST_P(FailingEndpointsTest, RecoverChecksItsArguments) {
  webhook::v1::RecoverDeliveriesRequest request;
  request.set_endpoint_id("ep_00000000000000000000000000000000");
  webhook::v1::RecoverDeliveriesResponse response;
  grpc::Status status =
      stub().RecoverDeliveries(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("since"));
  request.mutable_since()->set_nanos(-1);
  status = stub().RecoverDeliveries(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(
      Recover("ep_00000000000000000000000000000000", absl::Now(), &response)
          .error_code(),
      grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Recover("", absl::Now(), &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

Endpoint GetEndpoint(webhook::v1::WebhookService::Stub& stub,
                     const std::string& id) {
  webhook::v1::GetEndpointRequest request;
  request.set_id(id);
  webhook::v1::GetEndpointResponse response;
  EXPECT_TRUE(stub.GetEndpoint(Context().get(), request, &response).ok());
  return response.endpoint();
}

TEST_P(FailingEndpointsTest, GoneDisablesTheEndpointAtOnceUntilEnabled) {
  // A retry due well after the disable lands, on every node.
  server_->Stop();
  server_->options().engine.retry_policy = RetryPolicy({absl::Seconds(2)});
  server_->Start();
  receiver_.SetDefaultStatus(410);
  const Endpoint endpoint =
      CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url()));
  const webhook::v1::SubmitEventResponse submitted =
      Submit(stub(), ExampleEvent("thread-1"));

  ASSERT_TRUE(testing::Eventually(
      [&] { return !GetEndpoint(stub(), endpoint.id()).enabled(); }));
  server_->Stop();
  server_->Start();
  Endpoint disabled = GetEndpoint(stub(), endpoint.id());
  EXPECT_FALSE(disabled.enabled());
  EXPECT_EQ(disabled.disabled_reason(), webhook::v1::DISABLED_REASON_GONE);
  EXPECT_TRUE(disabled.has_disable_time());
  EXPECT_THAT(disabled.disabled_detail(), HasSubstr("410 Gone"));
  // Its retry is held: one attempt only.
  EXPECT_EQ(Get(submitted.delivery_ids(0)).status(),
            webhook::v1::DELIVERY_STATUS_RETRYING);
  EXPECT_EQ(receiver_.RequestCount(), 1u);

  receiver_.SetDefaultStatus(200);
  webhook::v1::EnableEndpointRequest enable;
  enable.set_id(endpoint.id());
  webhook::v1::EnableEndpointResponse enabled;
  ASSERT_TRUE(stub().EnableEndpoint(Context().get(), enable, &enabled).ok());
  EXPECT_EQ(enabled.endpoint().disabled_reason(),
            webhook::v1::DISABLED_REASON_UNSPECIFIED);
  EXPECT_FALSE(enabled.endpoint().has_disable_time());
  EXPECT_EQ(WaitFinished(stub(), submitted.delivery_ids(0)).status(),
            webhook::v1::DELIVERY_STATUS_SUCCESS);
}

TEST_P(FailingEndpointsTest, AnEndpointFailingPastTheLimitsIsDisabled) {
  // One attempt per delivery; 3 failed deliveries over at least 1 ms.
  server_->Stop();
  server_->options().engine.retry_policy = RetryPolicy({});
  server_->options().engine.auto_disable.after = absl::Milliseconds(1);
  server_->options().engine.auto_disable.min_failures = 3;
  server_->Start();
  const Endpoint endpoint =
      CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url()));
  FailedDelivery();
  FailedDelivery();
  EXPECT_TRUE(GetEndpoint(stub(), endpoint.id()).enabled());
  // The streak is stored: it goes on after a restart.
  server_->Stop();
  server_->Start();
  FailedDelivery();

  ASSERT_TRUE(testing::Eventually(
      [&] { return !GetEndpoint(stub(), endpoint.id()).enabled(); }));
  const Endpoint disabled = GetEndpoint(stub(), endpoint.id());
  EXPECT_EQ(disabled.disabled_reason(), webhook::v1::DISABLED_REASON_FAILING);
  EXPECT_THAT(disabled.disabled_detail(),
              HasSubstr("3 deliveries in a row failed"));
  const webhook::v1::SubmitEventResponse none =
      Submit(stub(), ExampleEvent("thread-1"));
  EXPECT_THAT(none.delivery_ids(), IsEmpty());
}

TEST_P(FailingEndpointsTest, ManualDisableShowsItsReason) {
  const Endpoint endpoint =
      CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url()));
  webhook::v1::DisableEndpointRequest request;
  request.set_id(endpoint.id());
  webhook::v1::DisableEndpointResponse response;
  ASSERT_TRUE(stub().DisableEndpoint(Context().get(), request, &response).ok());
  EXPECT_EQ(response.endpoint().disabled_reason(),
            webhook::v1::DISABLED_REASON_MANUAL);
  EXPECT_EQ(GetEndpoint(stub(), endpoint.id()).disabled_reason(),
            webhook::v1::DISABLED_REASON_MANUAL);
}

INSTANTIATE_TEST_SUITE_P(Backends, FailingEndpointsTest,
                         ::testing::Values(Backend::kLevelDb,
                                           Backend::kPostgres),
                         BackendName);

}  // namespace
}  // namespace webhookd
