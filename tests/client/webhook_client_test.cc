// WebhookClient over a mocked stub: requests, deadlines, metadata and status
// conversion, without a server.

#include "client/webhook_client.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/test/client_context_test_peer.h"
#include "grpcpp/test/mock_stream.h"
#include "gtest/gtest.h"
#include "webhook/v1/webhook_service_mock.grpc.pb.h"

namespace webhookd {
namespace {

using ::testing::_;
using ::testing::DoAll;
using ::testing::ElementsAre;
using ::testing::Invoke;
using ::testing::Return;
using ::testing::SetArgPointee;
using webhook::v1::Delivery;
using webhook::v1::Endpoint;

// The time left before the deadline of `context`.
absl::Duration TimeLeft(const grpc::ClientContext& context) {
  return absl::FromChrono(context.deadline() -
                          std::chrono::system_clock::now());
}

class WebhookClientTest : public ::testing::Test {
 protected:
  WebhookClient& client(WebhookClientOptions options = {}) {
    client_ = std::make_unique<WebhookClient>(std::move(owned_stub_),
                                              std::move(options));
    return *client_;
  }

  std::unique_ptr<webhook::v1::MockWebhookServiceStub> owned_stub_ =
      std::make_unique<webhook::v1::MockWebhookServiceStub>();
  webhook::v1::MockWebhookServiceStub& stub_ = *owned_stub_;
  std::unique_ptr<WebhookClient> client_;
};

TEST_F(WebhookClientTest, CreateEndpointSendsTheEndpointAndReturnsTheCreated) {
  Endpoint created;
  created.set_id("ep_1");
  created.set_name("Receiver");
  webhook::v1::CreateEndpointResponse response;
  *response.mutable_endpoint() = created;
  webhook::v1::CreateEndpointRequest sent;
  EXPECT_CALL(stub_, CreateEndpoint(_, _, _))
      .WillOnce(DoAll(::testing::SaveArg<1>(&sent), SetArgPointee<2>(response),
                      Return(grpc::Status::OK)));

  Endpoint endpoint;
  endpoint.set_name("Receiver");
  endpoint.set_url("https://example.com/hook");
  absl::StatusOr<Endpoint> result = client().CreateEndpoint(endpoint);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->id(), "ep_1");
  EXPECT_EQ(sent.endpoint().url(), "https://example.com/hook");
}

TEST_F(WebhookClientTest, SubmitEventsSendsTheBatchWithTheDeadline) {
  webhook::v1::SubmitEventsResponse response;
  response.add_results()->mutable_response()->set_event_id("evt_1");
  webhook::v1::SubmitEventsRequest sent;
  absl::Duration left;
  EXPECT_CALL(stub_, SubmitEvents(_, _, _))
      .WillOnce(Invoke([&](grpc::ClientContext* context,
                           const webhook::v1::SubmitEventsRequest& request,
                           webhook::v1::SubmitEventsResponse* out) {
        left = TimeLeft(*context);
        sent = request;
        *out = response;
        return grpc::Status::OK;
      }));
  WebhookClientOptions options;
  options.timeout = absl::Seconds(3);
  webhook::v1::SubmitEventsRequest request;
  request.add_events()->set_thread_id("thread-1");
  absl::StatusOr<webhook::v1::SubmitEventsResponse> result =
      client(options).SubmitEvents(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->results(0).response().event_id(), "evt_1");
  EXPECT_EQ(sent.events(0).thread_id(), "thread-1");
  EXPECT_GT(left, absl::Seconds(2));
  EXPECT_LE(left, absl::Seconds(3));
}

TEST_F(WebhookClientTest, ErrorsKeepTheirCodeAndMessage) {
  EXPECT_CALL(stub_, GetEndpoint(_, _, _))
      .WillOnce(Return(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                    "endpoint \"ep_x\" not found")));
  absl::StatusOr<Endpoint> result = client().GetEndpoint("ep_x");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(result.status().message(), "endpoint \"ep_x\" not found");
}

TEST_F(WebhookClientTest, EveryUnaryCallHasTheConfiguredDeadline) {
  std::vector<absl::Duration> left;
  auto record = [&left](grpc::ClientContext* context, const auto&, auto*) {
    left.push_back(TimeLeft(*context));
    return grpc::Status::OK;
  };
  EXPECT_CALL(stub_, GetEndpoint(_, _, _)).WillOnce(Invoke(record));
  EXPECT_CALL(stub_, ListDeliveries(_, _, _)).WillOnce(Invoke(record));
  EXPECT_CALL(stub_, DeleteEndpoint(_, _, _)).WillOnce(Invoke(record));
  EXPECT_CALL(stub_, SendTestDelivery(_, _, _)).WillOnce(Invoke(record));
  WebhookClientOptions options;
  options.timeout = absl::Seconds(3);
  options.test_delivery_timeout = absl::Seconds(40);
  WebhookClient& c = client(options);

  ASSERT_TRUE(c.GetEndpoint("ep_1").ok());
  ASSERT_TRUE(c.ListDeliveries({}).ok());
  ASSERT_TRUE(c.DeleteEndpoint("ep_1").ok());
  ASSERT_TRUE(c.SendTestDelivery("ep_1", "").ok());
  ASSERT_EQ(left.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_GT(left[i], absl::Seconds(2)) << i;
    EXPECT_LE(left[i], absl::Seconds(3)) << i;
  }
  EXPECT_GT(left[3], absl::Seconds(39)) << "test deliveries wait longer";
  EXPECT_LE(left[3], absl::Seconds(40));
}

TEST_F(WebhookClientTest, ApiKeyIsSentAsBearerMetadata) {
  std::string authorization;
  EXPECT_CALL(stub_, GetDelivery(_, _, _))
      .WillOnce(Invoke(
          [&authorization](grpc::ClientContext* context, const auto&, auto*) {
            grpc::testing::ClientContextTestPeer peer(context);
            auto metadata = peer.GetSendInitialMetadata();
            auto it = metadata.find("authorization");
            if (it != metadata.end()) authorization = it->second;
            return grpc::Status::OK;
          }));
  WebhookClientOptions options;
  options.api_key = "k-0123456789abcdef";
  ASSERT_TRUE(client(options).GetDelivery("dlv_1").ok());
  EXPECT_EQ(authorization, "Bearer k-0123456789abcdef");
}

TEST_F(WebhookClientTest, NoApiKeyMeansNoAuthorizationMetadata) {
  bool has_authorization = true;
  EXPECT_CALL(stub_, GetDelivery(_, _, _))
      .WillOnce(Invoke([&has_authorization](grpc::ClientContext* context,
                                            const auto&, auto*) {
        grpc::testing::ClientContextTestPeer peer(context);
        has_authorization =
            peer.GetSendInitialMetadata().count("authorization") > 0;
        return grpc::Status::OK;
      }));
  ASSERT_TRUE(client().GetDelivery("dlv_1").ok());
  EXPECT_FALSE(has_authorization);
}

TEST_F(WebhookClientTest, UpdateEndpointSendsTheMask) {
  webhook::v1::UpdateEndpointRequest sent;
  EXPECT_CALL(stub_, UpdateEndpoint(_, _, _))
      .WillOnce(DoAll(::testing::SaveArg<1>(&sent), Return(grpc::Status::OK)));
  Endpoint endpoint;
  endpoint.set_id("ep_1");
  endpoint.set_name("New name");
  google::protobuf::FieldMask mask;
  mask.add_paths("name");
  ASSERT_TRUE(client().UpdateEndpoint(endpoint, mask).ok());
  EXPECT_EQ(sent.endpoint().id(), "ep_1");
  EXPECT_EQ(sent.endpoint().name(), "New name");
  EXPECT_THAT(sent.update_mask().paths(), ElementsAre("name"));
}

TEST_F(WebhookClientTest, SimpleRequestsCarryTheirIds) {
  webhook::v1::EnableEndpointRequest enable;
  webhook::v1::DisableEndpointRequest disable;
  webhook::v1::GetEndpointStatsRequest stats;
  webhook::v1::RetryDeliveryRequest retry;
  webhook::v1::SendTestDeliveryRequest test;
  EXPECT_CALL(stub_, EnableEndpoint(_, _, _))
      .WillOnce(
          DoAll(::testing::SaveArg<1>(&enable), Return(grpc::Status::OK)));
  EXPECT_CALL(stub_, DisableEndpoint(_, _, _))
      .WillOnce(
          DoAll(::testing::SaveArg<1>(&disable), Return(grpc::Status::OK)));
  EXPECT_CALL(stub_, GetEndpointStats(_, _, _))
      .WillOnce(DoAll(::testing::SaveArg<1>(&stats), Return(grpc::Status::OK)));
  EXPECT_CALL(stub_, RetryDelivery(_, _, _))
      .WillOnce(DoAll(::testing::SaveArg<1>(&retry), Return(grpc::Status::OK)));
  EXPECT_CALL(stub_, SendTestDelivery(_, _, _))
      .WillOnce(DoAll(::testing::SaveArg<1>(&test), Return(grpc::Status::OK)));
  WebhookClient& c = client();
  ASSERT_TRUE(c.EnableEndpoint("ep_1").ok());
  ASSERT_TRUE(c.DisableEndpoint("ep_2").ok());
  ASSERT_TRUE(c.GetEndpointStats("ep_3").ok());
  ASSERT_TRUE(c.RetryDelivery("dlv_1").ok());
  ASSERT_TRUE(c.SendTestDelivery("ep_4", R"({"a":1})").ok());
  EXPECT_EQ(enable.id(), "ep_1");
  EXPECT_EQ(disable.id(), "ep_2");
  EXPECT_EQ(stats.endpoint_id(), "ep_3");
  EXPECT_EQ(retry.id(), "dlv_1");
  EXPECT_EQ(test.endpoint_id(), "ep_4");
  EXPECT_EQ(test.payload_json(), R"({"a":1})");
}

TEST_F(WebhookClientTest, SubmitEventReturnsTheResponse) {
  webhook::v1::SubmitEventResponse response;
  response.set_event_id("evt_1");
  response.add_delivery_ids("dlv_1");
  EXPECT_CALL(stub_, SubmitEvent(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(response), Return(grpc::Status::OK)));
  webhook::v1::SubmitEventRequest request;
  request.set_thread_id("thread-1");
  auto result = client().SubmitEvent(request);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->event_id(), "evt_1");
  EXPECT_THAT(result->delivery_ids(), ElementsAre("dlv_1"));
}

TEST_F(WebhookClientTest, WatchYieldsUpdatesThenTheFinalStatus) {
  // Owned by the client once returned.
  auto* reader = new grpc::testing::MockClientReader<
      webhook::v1::StreamDeliveriesResponse>();
  webhook::v1::StreamDeliveriesResponse first, second;
  first.mutable_delivery()->set_id("dlv_1");
  second.mutable_delivery()->set_id("dlv_2");
  EXPECT_CALL(*reader, Read(_))
      .WillOnce(DoAll(SetArgPointee<0>(first), Return(true)))
      .WillOnce(DoAll(SetArgPointee<0>(second), Return(true)))
      .WillOnce(Return(false));
  EXPECT_CALL(*reader, Finish())
      .WillOnce(Return(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                    "fell behind; reconnect")));
  webhook::v1::StreamDeliveriesRequest sent;
  bool has_deadline = true;
  EXPECT_CALL(stub_, StreamDeliveriesRaw(_, _))
      .WillOnce(Invoke([&](grpc::ClientContext* context,
                           const webhook::v1::StreamDeliveriesRequest& r) {
        sent = r;
        has_deadline =
            context->deadline() != std::chrono::system_clock::time_point::max();
        return reader;
      }));

  webhook::v1::StreamDeliveriesRequest request;
  request.set_thread_id("thread-1");
  request.set_replay_recent(5);
  std::unique_ptr<DeliveryWatch> watch = client().WatchDeliveries(request);
  Delivery delivery;
  std::vector<std::string> ids;
  while (watch->Next(&delivery)) ids.push_back(delivery.id());
  absl::Status status = watch->Finish();
  EXPECT_THAT(ids, ElementsAre("dlv_1", "dlv_2"));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(sent.thread_id(), "thread-1");
  EXPECT_EQ(sent.replay_recent(), 5);
  EXPECT_FALSE(has_deadline) << "a watch runs until cancelled";
}

TEST_F(WebhookClientTest, FromGrpcStatusMapsEveryCode) {
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  for (int code = 1; code <= 16; ++code) {
    absl::Status status = FromGrpcStatus(
        grpc::Status(static_cast<grpc::StatusCode>(code), "why"));
    EXPECT_EQ(static_cast<int>(status.code()), code);
    EXPECT_EQ(status.message(), "why");
  }
}

}  // namespace
}  // namespace webhookd
