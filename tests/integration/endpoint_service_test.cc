// Endpoint management through a real gRPC channel to a real server.

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using testing::Context;
using testing::CreateEndpoint;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using ::testing::IsEmpty;
using testing::ReceivedRequest;
using ::testing::SizeIs;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::TryCreateEndpoint;

class EndpointServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { server_.Start(); }

  webhook::v1::WebhookService::Stub& stub() { return server_.stub(); }

  Endpoint ValidEndpoint(const std::string& thread = "thread-1") {
    Endpoint endpoint;
    endpoint.set_thread_id(thread);
    endpoint.set_user_id(42);
    endpoint.set_name("Slack Notifications");
    endpoint.set_url("https://hooks.example.com/services/T0");
    endpoint.set_secret("s3cret");
    webhook::v1::Header* header = endpoint.add_headers();
    header->set_name("X-Source");
    header->set_value("gpt-workbench");
    return endpoint;
  }

  Endpoint Create(const Endpoint& endpoint) {
    return CreateEndpoint(stub(), endpoint);
  }

  grpc::Status CreateStatus(const Endpoint& endpoint) {
    return TryCreateEndpoint(stub(), endpoint);
  }

  grpc::Status Get(const std::string& id, Endpoint* out) {
    webhook::v1::GetEndpointRequest request;
    request.set_id(id);
    webhook::v1::GetEndpointResponse response;
    grpc::Status status =
        stub().GetEndpoint(Context().get(), request, &response);
    *out = response.endpoint();
    return status;
  }

  grpc::Status Update(const Endpoint& patch,
                      const std::vector<std::string>& paths,
                      Endpoint* out = nullptr) {
    webhook::v1::UpdateEndpointRequest request;
    *request.mutable_endpoint() = patch;
    for (const std::string& path : paths) {
      request.mutable_update_mask()->add_paths(path);
    }
    webhook::v1::UpdateEndpointResponse response;
    grpc::Status status =
        stub().UpdateEndpoint(Context().get(), request, &response);
    if (out != nullptr) *out = response.endpoint();
    return status;
  }

  // Sends a test delivery to endpoint `id` and returns the request
  // `receiver` got for it.
  ReceivedRequest DeliverTest(HttpReceiver& receiver, const std::string& id) {
    webhook::v1::SendTestDeliveryRequest request;
    request.set_endpoint_id(id);
    webhook::v1::SendTestDeliveryResponse response;
    grpc::Status status =
        stub().SendTestDelivery(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    const std::vector<ReceivedRequest> requests = receiver.Requests();
    EXPECT_THAT(requests, SizeIs(::testing::Ge(1)));
    return requests.empty() ? ReceivedRequest() : requests.back();
  }

  // An endpoint posting to `receiver` with headers "Authorization: Bearer
  // real-1" and "X-Plain: a".
  Endpoint EndpointWithAuthorization(const HttpReceiver& receiver) {
    Endpoint endpoint = ValidEndpoint();
    endpoint.set_url(receiver.Url());
    endpoint.clear_headers();
    AddHeader(endpoint, "Authorization", "Bearer real-1");
    AddHeader(endpoint, "X-Plain", "a");
    return endpoint;
  }

  static void AddHeader(Endpoint& endpoint, const std::string& name,
                        const std::string& value) {
    webhook::v1::Header* header = endpoint.add_headers();
    header->set_name(name);
    header->set_value(value);
  }

  TestDir dir_;
  TestServer server_{TestServerOptions(dir_.Sub("data"))};
};

TEST_F(EndpointServiceTest, CreateReturnsEnabledEndpointWithoutSecret) {
  Endpoint created = Create(ValidEndpoint());
  EXPECT_THAT(created.id(), ::testing::StartsWith("ep_"));
  EXPECT_EQ(created.id().size(), 3u + 32u);
  EXPECT_TRUE(created.enabled());
  EXPECT_TRUE(created.has_secret());
  EXPECT_THAT(created.secret(), IsEmpty());
  EXPECT_EQ(created.name(), "Slack Notifications");
  EXPECT_EQ(created.user_id(), 42);
  ASSERT_THAT(created.headers(), SizeIs(1));
  EXPECT_EQ(created.headers(0).value(), "gpt-workbench");
  EXPECT_GT(created.create_time().seconds(), 0);
  EXPECT_EQ(created.update_time().seconds(), created.create_time().seconds());
}

TEST_F(EndpointServiceTest, CreateIgnoresOutputOnlyFields) {
  Endpoint input = ValidEndpoint();
  input.set_id("ep_chosen_by_client");
  input.set_enabled(false);
  input.mutable_create_time()->set_seconds(1);
  Endpoint created = Create(input);
  EXPECT_NE(created.id(), "ep_chosen_by_client");
  EXPECT_TRUE(created.enabled());
  EXPECT_GT(created.create_time().seconds(), 1);
}

TEST_F(EndpointServiceTest, SensitiveHeaderValuesAreMasked) {
  Endpoint input = ValidEndpoint();
  webhook::v1::Header* auth = input.add_headers();
  auth->set_name("Authorization");
  auth->set_value("Bearer sk-very-secret");
  webhook::v1::Header* key = input.add_headers();
  key->set_name("X-Api-Key");
  key->set_value("k-123");
  Endpoint created = Create(input);
  ASSERT_THAT(created.headers(), SizeIs(3));
  EXPECT_EQ(created.headers(0).value(), "gpt-workbench");
  EXPECT_THAT(created.headers(1).value(), ::testing::Not(HasSubstr("sk-")));
  EXPECT_THAT(created.headers(2).value(), ::testing::Not(HasSubstr("k-123")));
}

TEST_F(EndpointServiceTest, CreateRefusesMaskedPlaceholderForSensitiveHeader) {
  Endpoint endpoint = ValidEndpoint();
  AddHeader(endpoint, "X-Api-Key", "********");
  grpc::Status status = CreateStatus(endpoint);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("endpoint.headers[1].value"));
  EXPECT_THAT(status.error_message(), HasSubstr("\"X-Api-Key\""));
  webhook::v1::ListEndpointsResponse list;
  ASSERT_TRUE(stub().ListEndpoints(Context().get(), {}, &list).ok());
  EXPECT_THAT(list.endpoints(), IsEmpty()) << "nothing may be stored";
}

TEST_F(EndpointServiceTest, CreateRefusesInvalidFieldsNamingThem) {
  struct Case {
    std::string field;
    std::function<void(Endpoint&)> spoil;
  };
  const std::vector<Case> cases = {
      {"endpoint.name", [](Endpoint& e) { e.clear_name(); }},
      {"endpoint.url", [](Endpoint& e) { e.clear_url(); }},
      {"endpoint.thread_id", [](Endpoint& e) { e.clear_thread_id(); }},
      {"endpoint.url", [](Endpoint& e) { e.set_url("ftp://example.com/x"); }},
      {"endpoint.url", [](Endpoint& e) { e.set_url("/relative/path"); }},
      {"endpoint.url",
       [](Endpoint& e) { e.set_url("https://user:pw@example.com/"); }},
      {"endpoint.headers[1].name",
       [](Endpoint& e) { e.add_headers()->set_name("Bad Header"); }},
      {"endpoint.headers[1].name",
       [](Endpoint& e) {
         auto* h = e.add_headers();
         h->set_name("Content-Length");
         h->set_value("5");
       }},
      {"endpoint.headers[1].value",
       [](Endpoint& e) {
         auto* h = e.add_headers();
         h->set_name("X-Ok");
         h->set_value("a\r\nInjected: yes");
       }},
      {"endpoint.headers[1].name",
       [](Endpoint& e) {
         auto* h = e.add_headers();
         h->set_name("x-hub-signature-256");
         h->set_value("forged");
       }},
  };
  for (const Case& c : cases) {
    Endpoint endpoint = ValidEndpoint();
    c.spoil(endpoint);
    grpc::Status status = CreateStatus(endpoint);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.field;
    EXPECT_THAT(status.error_message(), HasSubstr(c.field));
  }
  webhook::v1::ListEndpointsResponse list;
  ASSERT_TRUE(stub().ListEndpoints(Context().get(), {}, &list).ok());
  EXPECT_THAT(list.endpoints(), IsEmpty()) << "nothing may be stored";
}

TEST_F(EndpointServiceTest, HttpUrlRefusedUnlessInsecureTargetsAllowed) {
  server_.Stop();
  server_.options().target_policy.allow_insecure_targets = false;
  server_.Start();
  Endpoint endpoint = ValidEndpoint();
  endpoint.set_url("http://hooks.example.com/x");
  grpc::Status status = CreateStatus(endpoint);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("endpoint.url"));
  EXPECT_THAT(status.error_message(), HasSubstr("https"));
}

TEST_F(EndpointServiceTest, GetReturnsCreatedEndpoint) {
  Endpoint created = Create(ValidEndpoint());
  Endpoint got;
  ASSERT_TRUE(Get(created.id(), &got).ok());
  EXPECT_EQ(got.SerializeAsString(), created.SerializeAsString());
}

TEST_F(EndpointServiceTest, GetUnknownIdIsNotFound) {
  Endpoint got;
  grpc::Status status = Get("ep_00000000000000000000000000000000", &got);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(EndpointServiceTest, ListFiltersByThreadAndPaginates) {
  std::set<std::string> thread_a;
  for (int i = 0; i < 5; ++i) thread_a.insert(Create(ValidEndpoint("a")).id());
  Create(ValidEndpoint("b"));

  std::set<std::string> seen;
  webhook::v1::ListEndpointsRequest request;
  request.set_thread_id("a");
  request.set_page_size(2);
  int pages = 0;
  do {
    webhook::v1::ListEndpointsResponse response;
    ASSERT_TRUE(stub().ListEndpoints(Context().get(), request, &response).ok());
    EXPECT_LE(response.endpoints_size(), 2);
    for (const Endpoint& e : response.endpoints()) {
      EXPECT_EQ(e.thread_id(), "a");
      EXPECT_THAT(e.secret(), IsEmpty());
      EXPECT_TRUE(seen.insert(e.id()).second) << "listed twice: " << e.id();
    }
    request.set_page_token(response.next_page_token());
    ASSERT_LT(++pages, 10);
  } while (!request.page_token().empty());
  EXPECT_EQ(seen, thread_a);
  EXPECT_EQ(pages, 3);

  webhook::v1::ListEndpointsResponse all;
  ASSERT_TRUE(stub().ListEndpoints(Context().get(), {}, &all).ok());
  EXPECT_THAT(all.endpoints(), SizeIs(6));
}

TEST_F(EndpointServiceTest, ListRefusesBadPageTokenAndNegativeSize) {
  webhook::v1::ListEndpointsRequest request;
  webhook::v1::ListEndpointsResponse response;
  request.set_page_token("not-a-token!!");
  EXPECT_EQ(
      stub().ListEndpoints(Context().get(), request, &response).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
  request.clear_page_token();
  request.set_page_size(-1);
  grpc::Status status =
      stub().ListEndpoints(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("page_size"));
}

TEST_F(EndpointServiceTest, UpdateChangesOnlyMaskedFields) {
  Endpoint created = Create(ValidEndpoint());
  webhook::v1::UpdateEndpointRequest request;
  request.mutable_endpoint()->set_id(created.id());
  request.mutable_endpoint()->set_name("Renamed");
  request.mutable_endpoint()->set_url("https://ignored.example.com/");
  request.mutable_update_mask()->add_paths("name");
  webhook::v1::UpdateEndpointResponse response;
  ASSERT_TRUE(stub().UpdateEndpoint(Context().get(), request, &response).ok());
  EXPECT_EQ(response.endpoint().name(), "Renamed");
  EXPECT_EQ(response.endpoint().url(), created.url());
  EXPECT_TRUE(response.endpoint().has_secret());

  request.mutable_update_mask()->clear_paths();
  request.mutable_update_mask()->add_paths("secret");
  request.mutable_endpoint()->clear_secret();
  ASSERT_TRUE(stub().UpdateEndpoint(Context().get(), request, &response).ok());
  EXPECT_FALSE(response.endpoint().has_secret());

  Endpoint got;
  ASSERT_TRUE(Get(created.id(), &got).ok());
  EXPECT_EQ(got.name(), "Renamed");
  EXPECT_FALSE(got.has_secret());
}

TEST_F(EndpointServiceTest, UpdateMovesEndpointToAnotherThread) {
  Endpoint created = Create(ValidEndpoint("old"));
  webhook::v1::UpdateEndpointRequest request;
  request.mutable_endpoint()->set_id(created.id());
  request.mutable_endpoint()->set_thread_id("new");
  request.mutable_update_mask()->add_paths("thread_id");
  webhook::v1::UpdateEndpointResponse response;
  ASSERT_TRUE(stub().UpdateEndpoint(Context().get(), request, &response).ok());

  webhook::v1::ListEndpointsRequest list_request;
  webhook::v1::ListEndpointsResponse list;
  list_request.set_thread_id("old");
  ASSERT_TRUE(stub().ListEndpoints(Context().get(), list_request, &list).ok());
  EXPECT_THAT(list.endpoints(), IsEmpty());
  list_request.set_thread_id("new");
  ASSERT_TRUE(stub().ListEndpoints(Context().get(), list_request, &list).ok());
  EXPECT_THAT(list.endpoints(), SizeIs(1));
}

TEST_F(EndpointServiceTest, UpdateRefusesBadMaskAndInvalidValues) {
  Endpoint created = Create(ValidEndpoint());
  webhook::v1::UpdateEndpointRequest request;
  webhook::v1::UpdateEndpointResponse response;
  request.mutable_endpoint()->set_id(created.id());
  grpc::Status status =
      stub().UpdateEndpoint(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("update_mask"));

  request.mutable_update_mask()->add_paths("no_such_field");
  status = stub().UpdateEndpoint(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("no_such_field"));

  request.mutable_update_mask()->clear_paths();
  request.mutable_update_mask()->add_paths("url");
  request.mutable_endpoint()->set_url("not a url");
  status = stub().UpdateEndpoint(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("endpoint.url"));

  Endpoint got;
  ASSERT_TRUE(Get(created.id(), &got).ok());
  EXPECT_EQ(got.url(), created.url()) << "a refused update changes nothing";

  request.mutable_endpoint()->set_id("ep_missing");
  request.mutable_endpoint()->set_url("https://example.com/");
  EXPECT_EQ(
      stub().UpdateEndpoint(Context().get(), request, &response).error_code(),
      grpc::StatusCode::NOT_FOUND);
}

TEST_F(EndpointServiceTest, UpdateWritingBackMaskedHeadersKeepsStoredValues) {
  HttpReceiver receiver;
  Endpoint created = Create(EndpointWithAuthorization(receiver));
  Endpoint got;
  ASSERT_TRUE(Get(created.id(), &got).ok());
  ASSERT_THAT(got.headers(), SizeIs(2));
  ASSERT_EQ(got.headers(0).value(), "********") << "read back masked";

  got.set_name("Renamed");
  Endpoint updated;
  grpc::Status status = Update(got, {"headers", "name"}, &updated);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(updated.name(), "Renamed");

  const ReceivedRequest received = DeliverTest(receiver, created.id());
  EXPECT_EQ(received.Header("Authorization"), "Bearer real-1");
  EXPECT_EQ(received.Header("X-Plain"), "a");
}

TEST_F(EndpointServiceTest, UpdateWithNewSensitiveValueReplacesIt) {
  HttpReceiver receiver;
  Endpoint created = Create(EndpointWithAuthorization(receiver));
  Endpoint patch;
  patch.set_id(created.id());
  AddHeader(patch, "Authorization", "Bearer real-2");
  grpc::Status status = Update(patch, {"headers"});
  ASSERT_TRUE(status.ok()) << status.error_message();

  const ReceivedRequest received = DeliverTest(receiver, created.id());
  EXPECT_EQ(received.Header("Authorization"), "Bearer real-2");
  EXPECT_FALSE(received.HasHeader("X-Plain")) << "the whole list is replaced";
}

TEST_F(EndpointServiceTest, UpdateRefusesMaskedPlaceholderWithoutStoredValue) {
  HttpReceiver receiver;
  Endpoint created = Create(EndpointWithAuthorization(receiver));
  Endpoint before;
  ASSERT_TRUE(Get(created.id(), &before).ok());

  Endpoint patch = before;
  patch.set_name("Renamed");
  AddHeader(patch, "X-Api-Key", "********");
  grpc::Status status = Update(patch, {"headers", "name"});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("endpoint.headers[2].value"));
  EXPECT_THAT(status.error_message(), HasSubstr("\"X-Api-Key\""));

  Endpoint after;
  ASSERT_TRUE(Get(created.id(), &after).ok());
  EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString())
      << "a refused update changes nothing";
}

TEST_F(EndpointServiceTest, DisableAndEnableToggleEnabled) {
  Endpoint created = Create(ValidEndpoint());
  webhook::v1::DisableEndpointRequest disable;
  disable.set_id(created.id());
  webhook::v1::DisableEndpointResponse disabled;
  ASSERT_TRUE(stub().DisableEndpoint(Context().get(), disable, &disabled).ok());
  EXPECT_FALSE(disabled.endpoint().enabled());
  Endpoint got;
  ASSERT_TRUE(Get(created.id(), &got).ok());
  EXPECT_FALSE(got.enabled());

  webhook::v1::EnableEndpointRequest enable;
  enable.set_id(created.id());
  webhook::v1::EnableEndpointResponse enabled;
  ASSERT_TRUE(stub().EnableEndpoint(Context().get(), enable, &enabled).ok());
  EXPECT_TRUE(enabled.endpoint().enabled());

  enable.set_id("ep_missing");
  EXPECT_EQ(
      stub().EnableEndpoint(Context().get(), enable, &enabled).error_code(),
      grpc::StatusCode::NOT_FOUND);
  disable.set_id("ep_missing");
  EXPECT_EQ(
      stub().DisableEndpoint(Context().get(), disable, &disabled).error_code(),
      grpc::StatusCode::NOT_FOUND);
}

TEST_F(EndpointServiceTest, DeleteRemovesEndpoint) {
  Endpoint created = Create(ValidEndpoint());
  webhook::v1::DeleteEndpointRequest request;
  request.set_id(created.id());
  webhook::v1::DeleteEndpointResponse response;
  ASSERT_TRUE(stub().DeleteEndpoint(Context().get(), request, &response).ok());
  Endpoint got;
  EXPECT_EQ(Get(created.id(), &got).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(
      stub().DeleteEndpoint(Context().get(), request, &response).error_code(),
      grpc::StatusCode::NOT_FOUND);
}

TEST_F(EndpointServiceTest, EndpointsSurviveServerRestart) {
  Endpoint kept = Create(ValidEndpoint());
  Endpoint removed = Create(ValidEndpoint());
  webhook::v1::DeleteEndpointRequest del;
  del.set_id(removed.id());
  webhook::v1::DeleteEndpointResponse deleted;
  ASSERT_TRUE(stub().DeleteEndpoint(Context().get(), del, &deleted).ok());
  webhook::v1::DisableEndpointRequest disable;
  disable.set_id(kept.id());
  webhook::v1::DisableEndpointResponse disabled;
  ASSERT_TRUE(stub().DisableEndpoint(Context().get(), disable, &disabled).ok());

  server_.Stop();
  server_.Start();

  Endpoint got;
  ASSERT_TRUE(Get(kept.id(), &got).ok());
  EXPECT_EQ(got.name(), kept.name());
  EXPECT_FALSE(got.enabled());
  EXPECT_TRUE(got.has_secret());
  EXPECT_EQ(Get(removed.id(), &got).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace webhookd
