// Page tokens of every List RPC are opaque and bound to their caller and
// filter: with two users' records interleaved, on LevelDB and PostgreSQL.

#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/postgres_server.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using testing::MakeEndpoint;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;

constexpr char kKeyOne[] = "key-of-user-one-9f8e7d6c5b4a";
constexpr char kKeyTwo[] = "key-of-user-two-0a1b2c3d4e5f";
constexpr int kPerUser = 7;

enum class Backend { kLevelDb, kPostgres };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kLevelDb ? "LevelDb" : "Postgres";
}

std::unique_ptr<grpc::ClientContext> As(const char* key) {
  auto context = testing::Context();
  context->AddMetadata("authorization", absl::StrCat("Bearer ", key));
  return context;
}

class PageTokenTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ServerOptions options = TestServerOptions(dir_.Sub("data"));
    if (GetParam() == Backend::kPostgres) {
      absl::StatusOr<std::string> conninfo =
          testing::NewSharedDatabase("page_tokens");
      ASSERT_TRUE(conninfo.ok()) << conninfo.status();
      options.postgres = *conninfo;
    }
    options.api_keys_file = dir_.Sub("keys");
    std::ofstream(options.api_keys_file) << kKeyOne << " 1\n"
                                         << kKeyTwo << " 2\n";
    options_ = options;
    server_ = std::make_unique<TestServer>(options);
    server_->Start();

    // Interleaved: one endpoint and one event of each user in turn, all in
    // one thread, so that every list range mixes both users' records.
    for (int i = 0; i < kPerUser; ++i) {
      for (const char* key : {kKeyOne, kKeyTwo}) {
        webhook::v1::CreateEndpointRequest create;
        *create.mutable_endpoint() = MakeEndpoint("thread-1", receiver_.Url());
        create.mutable_endpoint()->clear_user_id();
        webhook::v1::CreateEndpointResponse created;
        grpc::Status status =
            stub().CreateEndpoint(As(key).get(), create, &created);
        ASSERT_TRUE(status.ok()) << status.error_message();
        (key == kKeyOne ? endpoints_one_ : endpoints_two_)
            .insert(created.endpoint().id());
        webhook::v1::SubmitEventRequest event = ExampleEvent("thread-1");
        event.clear_user_id();
        event.set_idempotency_key(absl::StrCat("run-", i));
        webhook::v1::SubmitEventResponse submitted;
        status = stub().SubmitEvent(As(key).get(), event, &submitted);
        ASSERT_TRUE(status.ok()) << status.error_message();
        for (const std::string& id : submitted.delivery_ids()) {
          (key == kKeyOne ? deliveries_one_ : deliveries_two_).insert(id);
        }
      }
    }
  }

  webhook::v1::WebhookService::Stub& stub() { return server_->stub(); }

  // Pages through ListEndpoints as user one, two at a time; returns every
  // id in order and adds each token to `tokens`.
  std::vector<std::string> PageEndpoints(const std::string& thread,
                                         std::vector<std::string>& tokens) {
    std::vector<std::string> ids;
    webhook::v1::ListEndpointsRequest request;
    request.set_thread_id(thread);
    request.set_page_size(2);
    do {
      webhook::v1::ListEndpointsResponse response;
      grpc::Status status =
          stub().ListEndpoints(As(kKeyOne).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      for (const Endpoint& endpoint : response.endpoints()) {
        ids.push_back(endpoint.id());
      }
      if (!response.next_page_token().empty()) {
        tokens.push_back(response.next_page_token());
      }
      request.set_page_token(response.next_page_token());
    } while (!request.page_token().empty());
    return ids;
  }

  std::vector<std::string> PageDeliveries(
      const webhook::v1::ListDeliveriesRequest& filter,
      std::vector<std::string>& tokens) {
    std::vector<std::string> ids;
    webhook::v1::ListDeliveriesRequest request = filter;
    request.set_page_size(2);
    do {
      webhook::v1::ListDeliveriesResponse response;
      grpc::Status status =
          stub().ListDeliveries(As(kKeyOne).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      for (const webhook::v1::Delivery& delivery : response.deliveries()) {
        ids.push_back(delivery.id());
      }
      if (!response.next_page_token().empty()) {
        tokens.push_back(response.next_page_token());
      }
      request.set_page_token(response.next_page_token());
    } while (!request.page_token().empty());
    return ids;
  }

  // No token, as given or decoded, names a record of user two.
  void ExpectNothingOfUserTwoIn(const std::vector<std::string>& tokens) {
    for (const std::string& token : tokens) {
      std::string decoded;
      absl::WebSafeBase64Unescape(token, &decoded);
      for (const std::set<std::string>* ids :
           {&endpoints_two_, &deliveries_two_}) {
        for (const std::string& id : *ids) {
          // The random part of an id alone must not show either.
          const std::string tail = id.substr(id.size() - 16);
          EXPECT_FALSE(absl::StrContains(token, tail)) << token;
          EXPECT_FALSE(absl::StrContains(decoded, tail)) << token;
        }
      }
    }
  }

  static std::set<std::string> Once(const std::vector<std::string>& ids) {
    const std::set<std::string> unique(ids.begin(), ids.end());
    EXPECT_EQ(unique.size(), ids.size()) << "an id came twice";
    return unique;
  }

  TestDir dir_;
  HttpReceiver receiver_;
  ServerOptions options_;
  std::unique_ptr<TestServer> server_;
  std::set<std::string> endpoints_one_, endpoints_two_;
  std::set<std::string> deliveries_one_, deliveries_two_;
};

TEST_P(PageTokenTest, EndpointPagesReturnEverythingOnceAndRevealNothing) {
  for (const std::string& thread : {std::string("thread-1"), std::string()}) {
    std::vector<std::string> tokens;
    EXPECT_EQ(Once(PageEndpoints(thread, tokens)), endpoints_one_) << thread;
    EXPECT_GE(tokens.size(), 3u);
    ExpectNothingOfUserTwoIn(tokens);
  }
}

TEST_P(PageTokenTest, DeliveryPagesReturnEverythingOnceAndRevealNothing) {
  ASSERT_EQ(deliveries_one_.size(), size_t{kPerUser * (kPerUser + 1) / 2});
  std::vector<webhook::v1::ListDeliveriesRequest> filters(3);
  filters[1].set_thread_id("thread-1");
  filters[2].set_endpoint_id(*endpoints_one_.begin());
  for (const webhook::v1::ListDeliveriesRequest& filter : filters) {
    std::vector<std::string> tokens;
    const std::set<std::string> ids = Once(PageDeliveries(filter, tokens));
    if (filter.endpoint_id().empty()) {
      EXPECT_EQ(ids, deliveries_one_);
      EXPECT_GE(tokens.size(), 3u);
    } else {
      EXPECT_FALSE(ids.empty());
    }
    ExpectNothingOfUserTwoIn(tokens);
  }
}

TEST_P(PageTokenTest, TokenOfAnotherUserOrFilterOrForgedIsRefused) {
  webhook::v1::ListEndpointsRequest request;
  request.set_page_size(2);
  webhook::v1::ListEndpointsResponse first;
  ASSERT_TRUE(stub().ListEndpoints(As(kKeyOne).get(), request, &first).ok());
  ASSERT_FALSE(first.next_page_token().empty());
  const std::string token = first.next_page_token();

  std::string forged = token;
  forged[forged.size() / 2] = forged[forged.size() / 2] == 'A' ? 'B' : 'A';
  // The former format: the base64 of a store key.
  const std::string raw_key =
      absl::WebSafeBase64Escape(absl::StrCat("ep/", *endpoints_two_.begin()));
  struct Case {
    const char* key;
    std::string thread;
    std::string token;
  };
  for (const Case& bad :
       {Case{kKeyTwo, "", token}, Case{kKeyOne, "thread-1", token},
        Case{kKeyOne, "", forged}, Case{kKeyOne, "", raw_key},
        Case{kKeyOne, "", "not-a-token!!"}}) {
    request.set_thread_id(bad.thread);
    request.set_page_token(bad.token);
    webhook::v1::ListEndpointsResponse response;
    grpc::Status status =
        stub().ListEndpoints(As(bad.key).get(), request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << bad.token;
    EXPECT_THAT(status.error_message(), HasSubstr("page_token"));
  }

  webhook::v1::ListDeliveriesRequest deliveries;
  deliveries.set_page_size(2);
  webhook::v1::ListDeliveriesResponse page;
  ASSERT_TRUE(stub().ListDeliveries(As(kKeyOne).get(), deliveries, &page).ok());
  ASSERT_FALSE(page.next_page_token().empty());
  deliveries.set_page_token(page.next_page_token());
  grpc::Status status =
      stub().ListDeliveries(As(kKeyTwo).get(), deliveries, &page);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("page_token"));
  deliveries.set_status(webhook::v1::DELIVERY_STATUS_FAILED);
  status = stub().ListDeliveries(As(kKeyOne).get(), deliveries, &page);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// Without a secrets key, tokens are sealed under a key kept in the store:
// another node on the same database, or the same server restarted, takes
// them (a load balancer may send each page to another node).
TEST_P(PageTokenTest, TokensHoldOnAnotherNodeAndAcrossARestart) {
  webhook::v1::ListEndpointsRequest request;
  request.set_page_size(2);
  webhook::v1::ListEndpointsResponse first;
  ASSERT_TRUE(stub().ListEndpoints(As(kKeyOne).get(), request, &first).ok());
  ASSERT_FALSE(first.next_page_token().empty());
  request.set_page_token(first.next_page_token());

  auto expect_next_page = [&](webhook::v1::WebhookService::Stub& on) {
    webhook::v1::ListEndpointsResponse next;
    grpc::Status status = on.ListEndpoints(As(kKeyOne).get(), request, &next);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(next.endpoints_size(), 2);
    for (const Endpoint& endpoint : next.endpoints()) {
      EXPECT_TRUE(endpoints_one_.contains(endpoint.id()));
      for (const Endpoint& seen : first.endpoints()) {
        EXPECT_NE(endpoint.id(), seen.id());
      }
    }
  };
  if (GetParam() == Backend::kPostgres) {
    TestServer other(options_);
    other.Start();
    expect_next_page(other.stub());
  }
  server_.reset();
  server_ = std::make_unique<TestServer>(options_);
  server_->Start();
  expect_next_page(stub());
}

INSTANTIATE_TEST_SUITE_P(Backends, PageTokenTest,
                         ::testing::Values(Backend::kLevelDb,
                                           Backend::kPostgres),
                         BackendName);

}  // namespace
}  // namespace webhookd
