// Which events reach which endpoint, through the real gRPC server on
// LevelDB and on a real PostgreSQL, with real receivers on loopback:
// per-endpoint event-type filters and endpoints created disabled.

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/server_backends.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using testing::Context;
using ::testing::ElementsAre;
using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using ::testing::IsEmpty;
using testing::MakeEndpoint;
using ::testing::SizeIs;
using ::testing::StartsWith;
using testing::Submit;
using testing::TestDir;
using testing::TestServer;
using testing::WaitFinished;
using webhook::v1::Endpoint;

class RoutingTest : public ::testing::TestWithParam<testing::ServerBackend> {
 protected:
  void SetUp() override {
    absl::StatusOr<ServerOptions> options =
        testing::BackendServerOptions(GetParam(), dir_.Sub("data"), "routing");
    ASSERT_TRUE(options.ok()) << options.status();
    server_ = std::make_unique<TestServer>(*options);
    server_->Start();
  }

  webhook::v1::WebhookService::Stub& stub() { return server_->stub(); }

  void Restart() {
    server_->Stop();
    server_->Start();
  }

  // An endpoint of thread-1 posting to `receiver`, admitting `types`.
  static Endpoint Filtered(const HttpReceiver& receiver,
                           const std::vector<std::string>& types) {
    Endpoint endpoint = MakeEndpoint("thread-1", receiver.Url());
    for (const std::string& type : types) endpoint.add_event_types(type);
    return endpoint;
  }

  grpc::Status Create(const Endpoint& endpoint, Endpoint* created,
                      bool disabled = false) {
    webhook::v1::CreateEndpointRequest request;
    *request.mutable_endpoint() = endpoint;
    request.set_disabled(disabled);
    webhook::v1::CreateEndpointResponse response;
    grpc::Status status =
        stub().CreateEndpoint(Context().get(), request, &response);
    if (created != nullptr) *created = response.endpoint();
    return status;
  }

  Endpoint CreateOk(const Endpoint& endpoint, bool disabled = false) {
    Endpoint created;
    const grpc::Status status = Create(endpoint, &created, disabled);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return created;
  }

  Endpoint Get(const std::string& id) {
    webhook::v1::GetEndpointRequest request;
    request.set_id(id);
    webhook::v1::GetEndpointResponse response;
    const grpc::Status status =
        stub().GetEndpoint(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.endpoint();
  }

  grpc::Status UpdateEventTypes(const std::string& id,
                                const std::vector<std::string>& types,
                                Endpoint* updated) {
    webhook::v1::UpdateEndpointRequest request;
    request.mutable_endpoint()->set_id(id);
    for (const std::string& type : types) {
      request.mutable_endpoint()->add_event_types(type);
    }
    request.mutable_update_mask()->add_paths("event_types");
    webhook::v1::UpdateEndpointResponse response;
    grpc::Status status =
        stub().UpdateEndpoint(Context().get(), request, &response);
    *updated = response.endpoint();
    return status;
  }

  webhook::v1::SubmitEventRequest EventOfType(const std::string& type) {
    webhook::v1::SubmitEventRequest request = ExampleEvent("thread-1");
    request.set_event_type(type);
    return request;
  }

  // The ids of the endpoints the deliveries go to.
  std::vector<std::string> EndpointsOf(
      const webhook::v1::SubmitEventResponse& submitted) {
    std::vector<std::string> ids;
    for (const std::string& id : submitted.delivery_ids()) {
      ids.push_back(WaitFinished(stub(), id).endpoint_id());
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  std::vector<webhook::v1::Delivery> DeliveriesOf(const std::string& id) {
    webhook::v1::ListDeliveriesRequest request;
    request.set_endpoint_id(id);
    webhook::v1::ListDeliveriesResponse response;
    EXPECT_TRUE(
        stub().ListDeliveries(Context().get(), request, &response).ok());
    return {response.deliveries().begin(), response.deliveries().end()};
  }

  TestDir dir_;
  std::unique_ptr<TestServer> server_;
};

TEST_P(RoutingTest, EventTypesAreStoredReturnedAndSurviveRestart) {
  HttpReceiver receiver;
  const Endpoint created =
      CreateOk(Filtered(receiver, {"execution.completed", "report.*"}));
  EXPECT_THAT(created.event_types(),
              ElementsAre("execution.completed", "report.*"));
  Restart();
  EXPECT_THAT(Get(created.id()).event_types(),
              ElementsAre("execution.completed", "report.*"));
  // And they still route after the restart.
  EXPECT_THAT(Submit(stub(), EventOfType("report.generated")).delivery_ids(),
              SizeIs(1));
  EXPECT_THAT(Submit(stub(), EventOfType("execution.failed")).delivery_ids(),
              IsEmpty());
}

TEST_P(RoutingTest, InvalidEventTypesAreRefusedNamingTheEntry) {
  HttpReceiver receiver;
  for (const std::string& bad :
       std::vector<std::string>{"exec*", "a..b", "*.completed", "a b"}) {
    const grpc::Status status =
        Create(Filtered(receiver, {"execution.completed", bad}), nullptr);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_THAT(status.error_message(), StartsWith("endpoint.event_types[1]: "))
        << bad;
  }
  const grpc::Status twice =
      Create(Filtered(receiver, {"a.b", "a.b"}), nullptr);
  EXPECT_EQ(twice.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(twice.error_message(), HasSubstr("endpoint.event_types[1]"));
  EXPECT_THAT(testing::ListAllEndpoints(stub()), IsEmpty()) << "nothing stored";
}

TEST_P(RoutingTest, UpdateReplacesTheEventTypesAndEmptyAdmitsEverything) {
  HttpReceiver receiver;
  const Endpoint created = CreateOk(Filtered(receiver, {"report.generated"}));
  Endpoint updated;
  ASSERT_TRUE(UpdateEventTypes(created.id(), {"execution.*"}, &updated).ok());
  EXPECT_THAT(updated.event_types(), ElementsAre("execution.*"));
  EXPECT_EQ(updated.url(), created.url()) << "not in the mask";
  EXPECT_THAT(Submit(stub(), EventOfType("report.generated")).delivery_ids(),
              IsEmpty());

  const grpc::Status bad =
      UpdateEventTypes(created.id(), {"ok", "x.*.y"}, &updated);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.error_message(), StartsWith("endpoint.event_types[1]: "));
  EXPECT_THAT(Get(created.id()).event_types(), ElementsAre("execution.*"))
      << "a refused update changes nothing";

  ASSERT_TRUE(UpdateEventTypes(created.id(), {}, &updated).ok());
  EXPECT_THAT(updated.event_types(), IsEmpty());
  EXPECT_THAT(Submit(stub(), EventOfType("report.generated")).delivery_ids(),
              SizeIs(1));
}

TEST_P(RoutingTest, SubmitDeliversOnlyToEndpointsWhoseFilterAdmitsTheType) {
  HttpReceiver completed_only, reports, everything, star;
  const Endpoint a =
      CreateOk(Filtered(completed_only, {"execution.completed"}));
  const Endpoint b = CreateOk(Filtered(reports, {"report.*"}));
  const Endpoint c = CreateOk(Filtered(everything, {}));
  const Endpoint d = CreateOk(Filtered(star, {"*"}));

  const webhook::v1::SubmitEventResponse report =
      Submit(stub(), EventOfType("report.weekly.generated"));
  std::vector<std::string> expected = {b.id(), c.id(), d.id()};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(EndpointsOf(report), expected);
  EXPECT_EQ(reports.Requests().at(0).Header("X-Webhook-Event"),
            "report.weekly.generated");

  // The default type reaches the completed-only endpoint, which is sent
  // that event and nothing else.
  webhook::v1::SubmitEventRequest plain = ExampleEvent("thread-1");
  plain.clear_event_type();
  const webhook::v1::SubmitEventResponse completed = Submit(stub(), plain);
  expected = {a.id(), c.id(), d.id()};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(EndpointsOf(completed), expected);
  ASSERT_THAT(completed_only.Requests(), SizeIs(1));
  EXPECT_EQ(completed_only.Requests()[0].Header("X-Webhook-Event"),
            "execution.completed");
  EXPECT_THAT(DeliveriesOf(a.id()), SizeIs(1));
  EXPECT_THAT(reports.Requests(), SizeIs(1));
  EXPECT_THAT(DeliveriesOf(b.id()), SizeIs(1));
}

TEST_P(RoutingTest, SubmitRefusesAnInvalidEventTypeAndStoresNothing) {
  HttpReceiver receiver;
  const Endpoint endpoint = CreateOk(Filtered(receiver, {}));
  for (const std::string& bad :
       std::vector<std::string>{"a..b", "execution.*", "a\r\nX-Injected: 1",
                                std::string(129, 'e')}) {
    webhook::v1::SubmitEventResponse response;
    const grpc::Status status =
        stub().SubmitEvent(Context().get(), EventOfType(bad), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_THAT(status.error_message(), StartsWith("event_type: ")) << bad;
  }
  EXPECT_THAT(DeliveriesOf(endpoint.id()), IsEmpty());
}

TEST_P(RoutingTest, EndpointCreatedDisabledGetsNothingUntilEnabled) {
  HttpReceiver off, on;
  const Endpoint disabled = CreateOk(Filtered(off, {}), /*disabled=*/true);
  EXPECT_FALSE(disabled.enabled());
  // Disabled by its creator: the reason DisableEndpoint would record.
  EXPECT_EQ(disabled.disabled_reason(), webhook::v1::DISABLED_REASON_MANUAL);
  EXPECT_EQ(disabled.disable_time().seconds(),
            disabled.create_time().seconds());
  const Endpoint enabled = CreateOk(Filtered(on, {}));
  EXPECT_TRUE(enabled.enabled()) << "the default stays enabled";
  Restart();
  EXPECT_FALSE(Get(disabled.id()).enabled());

  const webhook::v1::SubmitEventResponse before =
      Submit(stub(), ExampleEvent("thread-1"));
  EXPECT_EQ(EndpointsOf(before), std::vector<std::string>{enabled.id()});
  EXPECT_THAT(off.Requests(), IsEmpty());
  EXPECT_THAT(DeliveriesOf(disabled.id()), IsEmpty());

  webhook::v1::EnableEndpointRequest enable;
  enable.set_id(disabled.id());
  webhook::v1::EnableEndpointResponse response;
  ASSERT_TRUE(stub().EnableEndpoint(Context().get(), enable, &response).ok());
  EXPECT_TRUE(response.endpoint().enabled());
  EXPECT_EQ(response.endpoint().disabled_reason(),
            webhook::v1::DISABLED_REASON_UNSPECIFIED);
  const webhook::v1::SubmitEventResponse after =
      Submit(stub(), ExampleEvent("thread-1"));
  std::vector<std::string> both = {disabled.id(), enabled.id()};
  std::sort(both.begin(), both.end());
  EXPECT_EQ(EndpointsOf(after), both);
  EXPECT_THAT(off.Requests(), SizeIs(1)) << "only the event after enabling";
}

INSTANTIATE_TEST_SUITE_P(Backends, RoutingTest, testing::AllServerBackends(),
                         testing::ServerBackendName);

}  // namespace
}  // namespace webhookd
