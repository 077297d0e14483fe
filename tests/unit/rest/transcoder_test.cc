// Transcoder on the real WebhookService descriptor: the routes come from
// its google.api.http options; requests are bound from path, query and
// body, and every mistake is a clear InvalidArgument.

#include "server/rest/transcoder.h"

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "webhook/v1/webhook_service.grpc.pb.h"

namespace webhookd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class TranscoderTest : public ::testing::Test {
 protected:
  TranscoderTest() {
    const google::protobuf::ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            webhook::v1::WebhookService::service_full_name());
    absl::StatusOr<Transcoder> created = Transcoder::Create(*service);
    EXPECT_TRUE(created.ok()) << created.status();
    transcoder_ = std::make_unique<Transcoder>(*std::move(created));
  }

  // The request of `method` `path` (found), or the error.
  absl::StatusOr<std::unique_ptr<google::protobuf::Message>> Build(
      std::string_view method, std::string_view path,
      const QueryParams& query = {}, std::string_view body = "") {
    Transcoder::Match match = transcoder_->Find(method, path);
    EXPECT_NE(match.route, nullptr) << method << " " << path;
    if (match.route == nullptr) return absl::NotFoundError("no route");
    return transcoder_->BuildRequest(match, query, body);
  }

  template <typename T>
  T BuildAs(std::string_view method, std::string_view path,
            const QueryParams& query = {}, std::string_view body = "") {
    auto built = Build(method, path, query, body);
    EXPECT_TRUE(built.ok()) << built.status();
    T message;
    if (built.ok()) message.CopyFrom(**built);
    return message;
  }

  std::string BuildError(std::string_view method, std::string_view path,
                         const QueryParams& query = {},
                         std::string_view body = "") {
    auto built = Build(method, path, query, body);
    EXPECT_FALSE(built.ok());
    if (built.ok()) return "";
    EXPECT_EQ(built.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(built.status().message());
  }

  std::unique_ptr<Transcoder> transcoder_;
};

TEST_F(TranscoderTest, EveryMethodHasARoute) {
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          webhook::v1::WebhookService::service_full_name());
  std::set<std::string> routed;
  for (const Route& route : transcoder_->routes()) {
    routed.insert(route.method->name());
  }
  for (int i = 0; i < service->method_count(); ++i) {
    EXPECT_TRUE(routed.contains(service->method(i)->name()))
        << service->method(i)->name();
  }
}

TEST_F(TranscoderTest, FindsTheMethodOfEachRoute) {
  for (const auto& [method, path, rpc] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"POST", "/v1/endpoints", "CreateEndpoint"},
           {"GET", "/v1/endpoints", "ListEndpoints"},
           {"GET", "/v1/endpoints/ep_1", "GetEndpoint"},
           {"PATCH", "/v1/endpoints/ep_1", "UpdateEndpoint"},
           {"DELETE", "/v1/endpoints/ep_1", "DeleteEndpoint"},
           {"POST", "/v1/endpoints/ep_1:enable", "EnableEndpoint"},
           {"POST", "/v1/endpoints/ep_1:disable", "DisableEndpoint"},
           {"POST", "/v1/endpoints/ep_1:test", "SendTestDelivery"},
           {"POST", "/v1/endpoints/ep_1:rotateSecret", "RotateEndpointSecret"},
           {"POST", "/v1/endpoints/ep_1:recover", "RecoverDeliveries"},
           {"GET", "/v1/endpoints/ep_1/stats", "GetEndpointStats"},
           {"POST", "/v1/events", "SubmitEvent"},
           {"GET", "/v1/deliveries", "ListDeliveries"},
           {"GET", "/v1/deliveries/dlv_1", "GetDelivery"},
           {"POST", "/v1/deliveries/dlv_1:retry", "RetryDelivery"},
           {"POST", "/v1/deliveries/dlv_1:resend", "ResendDelivery"},
           {"GET", "/v1/deliveries:stream", "StreamDeliveries"}}) {
    Transcoder::Match match = transcoder_->Find(method, path);
    ASSERT_NE(match.route, nullptr) << method << " " << path;
    EXPECT_EQ(match.route->method->name(), rpc) << method << " " << path;
    EXPECT_EQ(match.route->grpc_method,
              absl::StrCat("/webhook.v1.WebhookService/", rpc));
  }
}

TEST_F(TranscoderTest, UnknownPathHasNoRouteAndNoMethods) {
  for (const char* path : {"/", "/v1", "/v2/endpoints", "/v1/endpoints/",
                           "/v1/endpoints/ep_1/other", "/v1/deliveries:nope"}) {
    Transcoder::Match match = transcoder_->Find("GET", path);
    EXPECT_EQ(match.route, nullptr) << path;
    EXPECT_THAT(match.allowed_methods, IsEmpty()) << path;
  }
}

TEST_F(TranscoderTest, KnownPathWithAnotherMethodListsTheAllowedOnes) {
  Transcoder::Match match = transcoder_->Find("PUT", "/v1/endpoints/ep_1");
  EXPECT_EQ(match.route, nullptr);
  EXPECT_THAT(match.allowed_methods, ElementsAre("GET", "PATCH", "DELETE"));
  match = transcoder_->Find("DELETE", "/v1/deliveries");
  EXPECT_THAT(match.allowed_methods, ElementsAre("GET"));
  // A verb route shadows the plain one: not the delivery "dlv_1:retry".
  match = transcoder_->Find("GET", "/v1/deliveries/dlv_1:retry");
  EXPECT_EQ(match.route, nullptr);
  EXPECT_THAT(match.allowed_methods, ElementsAre("POST"));
}

TEST_F(TranscoderTest, PathVariableFillsTheRequestField) {
  auto request =
      BuildAs<webhook::v1::GetEndpointRequest>("GET", "/v1/endpoints/ep_%31");
  EXPECT_EQ(request.id(), "ep_1");
  auto stats = BuildAs<webhook::v1::GetEndpointStatsRequest>(
      "GET", "/v1/endpoints/ep_1/stats");
  EXPECT_EQ(stats.endpoint_id(), "ep_1");
}

TEST_F(TranscoderTest, QueryParametersTakeProtoAndJsonNames) {
  auto request = BuildAs<webhook::v1::ListDeliveriesRequest>(
      "GET", "/v1/deliveries",
      {{"thread_id", "t1"},
       {"endpointId", "ep_1"},
       {"status", "DELIVERY_STATUS_FAILED"},
       {"pageSize", "20"},
       {"page_token", "tok"}});
  EXPECT_EQ(request.thread_id(), "t1");
  EXPECT_EQ(request.endpoint_id(), "ep_1");
  EXPECT_EQ(request.status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_EQ(request.page_size(), 20);
  EXPECT_EQ(request.page_token(), "tok");
  auto by_number = BuildAs<webhook::v1::ListDeliveriesRequest>(
      "GET", "/v1/deliveries", {{"status", "3"}});
  EXPECT_EQ(by_number.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
}

TEST_F(TranscoderTest, QueryMistakesNameTheParameter) {
  EXPECT_THAT(BuildError("GET", "/v1/deliveries", {{"thread", "t1"}}),
              HasSubstr("unknown query parameter \"thread\""));
  EXPECT_THAT(BuildError("GET", "/v1/deliveries",
                         {{"thread_id", "a"}, {"threadId", "b"}}),
              HasSubstr("\"threadId\" is given more than once"));
  EXPECT_THAT(BuildError("GET", "/v1/deliveries", {{"page_size", "many"}}),
              HasSubstr("page_size: \"many\" is not a 32-bit integer"));
  EXPECT_THAT(BuildError("GET", "/v1/deliveries", {{"status", "LOST"}}),
              HasSubstr("status: \"LOST\" is not a value of"));
  EXPECT_THAT(BuildError("GET", "/v1/endpoints/ep_1", {{"id", "ep_2"}}),
              HasSubstr("id is given in the path"));
  EXPECT_THAT(BuildError("POST", "/v1/events", {{"thread_id", "t1"}}, "{}"),
              HasSubstr("unknown query parameter \"thread_id\""));
}

TEST_F(TranscoderTest, NestedQueryParameterReachesInnerFields) {
  // No request of the service has a nested scalar outside its body, so this
  // reaches into the UpdateEndpoint body's message through the path.
  auto request = BuildAs<webhook::v1::UpdateEndpointRequest>(
      "PATCH", "/v1/endpoints/ep_1", {},
      R"({"endpoint": {"name": "n"}, "updateMask": "name"})");
  EXPECT_EQ(request.endpoint().id(), "ep_1");
  EXPECT_EQ(request.endpoint().name(), "n");
  EXPECT_THAT(request.update_mask().paths(), ElementsAre("name"));
}

TEST_F(TranscoderTest, BodyFillsTheRequestAndPathAddsToIt) {
  auto request = BuildAs<webhook::v1::SendTestDeliveryRequest>(
      "POST", "/v1/endpoints/ep_1:test", {}, R"({"payloadJson": "{}"})");
  EXPECT_EQ(request.endpoint_id(), "ep_1");
  EXPECT_EQ(request.payload_json(), "{}");
  auto empty = BuildAs<webhook::v1::EnableEndpointRequest>(
      "POST", "/v1/endpoints/ep_1:enable");
  EXPECT_EQ(empty.id(), "ep_1") << "no body is an empty object";
}

TEST_F(TranscoderTest, PathAndBodyMustAgree) {
  auto same = BuildAs<webhook::v1::UpdateEndpointRequest>(
      "PATCH", "/v1/endpoints/ep_1", {}, R"({"endpoint": {"id": "ep_1"}})");
  EXPECT_EQ(same.endpoint().id(), "ep_1");
  EXPECT_THAT(BuildError("PATCH", "/v1/endpoints/ep_1", {},
                         R"({"endpoint": {"id": "ep_2"}})"),
              HasSubstr("endpoint.id: the path says \"ep_1\" but the body "
                        "says \"ep_2\""));
}

TEST_F(TranscoderTest, BadBodiesAreRefusedSayingWhy) {
  EXPECT_THAT(BuildError("POST", "/v1/endpoints", {}, "{not json"),
              HasSubstr("request body"));
  EXPECT_THAT(BuildError("POST", "/v1/endpoints", {}, "[1, 2]"),
              HasSubstr("request body"));
  EXPECT_THAT(
      BuildError("POST", "/v1/endpoints", {}, R"({"endpoint": {"colour": 1}})"),
      HasSubstr("colour"));
  EXPECT_THAT(BuildError("GET", "/v1/endpoints/ep_1", {}, "{}"),
              HasSubstr("takes no request body"));
}

TEST_F(TranscoderTest, JsonOutputIsProto3Json) {
  webhook::v1::Endpoint endpoint;
  endpoint.set_thread_id("t1");
  endpoint.set_user_id(12);
  endpoint.set_signature_scheme(
      webhook::v1::SIGNATURE_SCHEME_HUB_SIGNATURE_256);
  endpoint.mutable_create_time()->set_seconds(1774774800);
  EXPECT_EQ(Transcoder::ToJson(endpoint),
            R"({"threadId":"t1","userId":"12",)"
            R"("createTime":"2026-03-29T09:00:00Z",)"
            R"("signatureScheme":"SIGNATURE_SCHEME_HUB_SIGNATURE_256"})");
}

}  // namespace
}  // namespace webhookd
