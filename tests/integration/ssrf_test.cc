// SSRF defence end to end: a real server without --allow_insecure_targets,
// real gRPC, real HTTPS receivers on loopback that count every connection.

#include <stdlib.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/raw_server.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_pki.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using testing::Context;
using testing::CreateEndpoint;
using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::ListAllEndpoints;
using testing::MakeEndpoint;
using testing::RawServer;
using testing::RespondWith;
using ::testing::SizeIs;
using testing::Submit;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::TryCreateEndpoint;
using testing::WaitFinished;
using webhook::v1::DELIVERY_STATUS_FAILED;
using webhook::v1::DELIVERY_STATUS_SUCCESS;

// Every spelling of a non-public address that REFERENCE.md lists, and more.
const std::vector<std::string>& BlockedHosts() {
  static const auto* hosts = new std::vector<std::string>{
      "127.0.0.1",
      "127.1",
      "2130706433",
      "0x7f.1",
      "0177.0.0.1",
      "127.0.0.1.",
      "0.0.0.0",
      "10.0.0.1",
      "172.16.0.1",
      "192.168.0.1",
      "100.64.0.1",
      "169.254.169.254",
      "198.18.0.1",
      "240.0.0.1",
      "255.255.255.255",
      "224.0.0.1",
      "[::]",
      "[::1]",
      "[::ffff:127.0.0.1]",
      "[::127.0.0.1]",
      "[fe80::1]",
      "[fc00::1]",
      "[fd00:ec2::254]",
      "[64:ff9b::a9fe:a9fe]",
      "[2002:a9fe:a9fe::]",
      "localhost",
      "foo.localhost",
  };
  return *hosts;
}

class SsrfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::MakeTestPki(dir_.path(), &pki_));
    RawServer::Options tls;
    tls.tls_cert_file = pki_.server_cert;
    tls.tls_key_file = pki_.server_key;
    receiver_ = std::make_unique<RawServer>(RespondWith(200, "ok"), tls);
    ASSERT_GT(receiver_->port(), 0);

    ServerOptions& options = server_.options();
    options.target_policy.allow_insecure_targets = false;
    options.target_ca_file = pki_.ca_cert;
    // A resolver that names pass at create time and point at loopback when
    // the delivery connects: what DNS rebinding does.
    options.test_resolve_overrides = {
        absl::StrCat("rebind.test:", receiver_->port(), ":127.0.0.1"),
        absl::StrCat("mixed.test:", receiver_->port(), ":127.0.0.2,127.0.0.1"),
        // "bücher.test" in ASCII form, the form endpoints store.
        absl::StrCat("xn--bcher-kva.test:", receiver_->port(), ":127.0.0.1"),
    };
  }

  void StartServer(const std::vector<std::string>& allow_cidrs = {}) {
    absl::StatusOr<AddressPolicy> policy =
        AddressPolicy::FromCidrs(allow_cidrs);
    ASSERT_TRUE(policy.ok()) << policy.status();
    server_.options().target_policy.addresses = *policy;
    server_.Start();
  }

  webhook::v1::WebhookService::Stub& stub() { return server_.stub(); }

  grpc::Status CreateStatus(const std::string& url) {
    return TryCreateEndpoint(stub(), MakeEndpoint("thread-1", url));
  }

  std::vector<Endpoint> ListEndpoints() { return ListAllEndpoints(stub()); }

  // Submits an event to the endpoints of `thread` and waits for its only
  // delivery to end.
  Delivery DeliverOnce(const std::string& thread) {
    webhook::v1::SubmitEventResponse submitted =
        Submit(stub(), ExampleEvent(thread));
    EXPECT_THAT(submitted.delivery_ids(), SizeIs(1));
    if (submitted.delivery_ids().empty()) return Delivery();
    return WaitFinished(stub(), submitted.delivery_ids(0));
  }

  TestDir dir_;
  testing::TestPki pki_;
  std::unique_ptr<RawServer> receiver_;
  TestServer server_{TestServerOptions(dir_.Sub("data"))};
};

TEST_F(SsrfTest, CreateRefusesEveryBlockedAddressSpellingNamingTheUrl) {
  StartServer();
  for (const std::string& host : BlockedHosts()) {
    const std::string url =
        absl::StrCat("https://", host, ":", receiver_->port(), "/hook");
    grpc::Status status = CreateStatus(url);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << url;
    EXPECT_THAT(status.error_message(), HasSubstr("endpoint.url")) << url;
  }
  EXPECT_THAT(ListEndpoints(), SizeIs(0)) << "nothing may be stored";
  EXPECT_EQ(receiver_->connections(), 0u);
}

TEST_F(SsrfTest, UpdateRefusesEveryBlockedAddressSpelling) {
  StartServer();
  const Endpoint created =
      CreateEndpoint(stub(), MakeEndpoint("thread-1", "https://example.com/"));
  for (const std::string& host : BlockedHosts()) {
    webhook::v1::UpdateEndpointRequest request;
    request.mutable_endpoint()->set_id(created.id());
    request.mutable_endpoint()->set_url(
        absl::StrCat("https://", host, "/hook"));
    request.mutable_update_mask()->add_paths("url");
    webhook::v1::UpdateEndpointResponse response;
    grpc::Status status =
        stub().UpdateEndpoint(Context().get(), request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << host;
    EXPECT_THAT(status.error_message(), HasSubstr("endpoint.url")) << host;
  }
  const std::vector<Endpoint> endpoints = ListEndpoints();
  ASSERT_THAT(endpoints, SizeIs(1));
  EXPECT_EQ(endpoints[0].url(), "https://example.com/");
}

TEST_F(SsrfTest, HttpIsRefusedWithoutInsecureTargets) {
  StartServer();
  grpc::Status status = CreateStatus("http://hooks.example.com/x");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("endpoint.url"));
  EXPECT_THAT(status.error_message(), HasSubstr("https"));
}

TEST_F(SsrfTest, RebindingNameIsRefusedAtConnectTimeWithoutAConnection) {
  StartServer();
  const std::string url = receiver_->Url("rebind.test");
  const Endpoint endpoint =
      CreateEndpoint(stub(), MakeEndpoint("thread-1", url));
  ASSERT_FALSE(endpoint.id().empty()) << "a host name passes at create time";

  const Delivery delivery = DeliverOnce("thread-1");
  EXPECT_EQ(delivery.status(), DELIVERY_STATUS_FAILED);
  EXPECT_EQ(delivery.attempts(), delivery.max_attempts());
  ASSERT_GT(delivery.attempt_history_size(), 0);
  for (const webhook::v1::DeliveryAttempt& attempt :
       delivery.attempt_history()) {
    EXPECT_EQ(attempt.response_code(), 0);
    EXPECT_THAT(attempt.error(), HasSubstr("blocked address 127.0.0.1"));
    EXPECT_THAT(attempt.error(), HasSubstr("loopback"));
  }
  EXPECT_EQ(receiver_->connections(), 0u) << "the listener saw a connection";
}

TEST_F(SsrfTest, IdnNameResolvingToLoopbackGetsNoConnection) {
  // The IDN is stored in ASCII form; the policy applies to what that
  // resolves to, as for any other name.
  StartServer();
  const Endpoint endpoint = CreateEndpoint(
      stub(), MakeEndpoint("thread-1", receiver_->Url("b\u00fccher.test")));
  EXPECT_EQ(endpoint.url(), receiver_->Url("xn--bcher-kva.test"));
  const Delivery delivery = DeliverOnce("thread-1");
  EXPECT_EQ(delivery.status(), DELIVERY_STATUS_FAILED);
  EXPECT_THAT(delivery.last_error(), HasSubstr("blocked address 127.0.0.1"));
  EXPECT_EQ(receiver_->connections(), 0u);
}

TEST_F(SsrfTest, TestDeliveryToRebindingNameIsRefusedToo) {
  StartServer();
  const Endpoint endpoint = CreateEndpoint(
      stub(), MakeEndpoint("thread-1", receiver_->Url("rebind.test")));
  webhook::v1::SendTestDeliveryRequest request;
  request.set_endpoint_id(endpoint.id());
  webhook::v1::SendTestDeliveryResponse response;
  ASSERT_TRUE(
      stub().SendTestDelivery(Context().get(), request, &response).ok());
  EXPECT_EQ(response.delivery().status(), DELIVERY_STATUS_FAILED);
  EXPECT_THAT(response.delivery().last_error(),
              HasSubstr("blocked address 127.0.0.1"));
  EXPECT_EQ(receiver_->connections(), 0u);
}

TEST_F(SsrfTest, NameWithAnyBlockedAddressGetsNoConnectionAtAll) {
  // 127.0.0.1 is allowed, 127.0.0.2 is not; the name resolves to both,
  // the blocked one first. Without the rule, libcurl would go on to
  // 127.0.0.1 and reach the receiver.
  StartServer({"127.0.0.1/32"});
  CreateEndpoint(stub(),
                 MakeEndpoint("thread-1", receiver_->Url("mixed.test")));
  const Delivery delivery = DeliverOnce("thread-1");
  EXPECT_EQ(delivery.status(), DELIVERY_STATUS_FAILED);
  EXPECT_THAT(delivery.last_error(), HasSubstr("blocked address 127.0.0.2"));
  EXPECT_EQ(receiver_->connections(), 0u);
}

TEST_F(SsrfTest, AllowCidrLetsItsRangeThroughAndNothingMore) {
  StartServer({"127.0.0.0/8"});
  EXPECT_EQ(CreateStatus("https://10.0.0.1/hook").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(CreateStatus("https://[::1]/hook").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(CreateStatus("https://169.254.169.254/").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(CreateStatus(receiver_->Url("127.0.0.1")).error_code(),
            grpc::StatusCode::OK);
  const Delivery literal = DeliverOnce("thread-1");
  EXPECT_EQ(literal.status(), DELIVERY_STATUS_SUCCESS) << literal.last_error();

  CreateEndpoint(stub(),
                 MakeEndpoint("thread-2", receiver_->Url("rebind.test")));
  const Delivery by_name = DeliverOnce("thread-2");
  EXPECT_EQ(by_name.status(), DELIVERY_STATUS_SUCCESS) << by_name.last_error();
  EXPECT_EQ(receiver_->requests(), 2u);
}

TEST_F(SsrfTest, RedirectToAnInternalAddressIsNotFollowed) {
  RawServer internal(RespondWith(200, "internal secrets"));
  receiver_ = std::make_unique<RawServer>(
      RespondWith(302, "", absl::StrCat("Location: ", internal.Url(), "\r\n")),
      [&] {
        RawServer::Options tls;
        tls.tls_cert_file = pki_.server_cert;
        tls.tls_key_file = pki_.server_key;
        return tls;
      }());
  StartServer({"127.0.0.1/32"});
  CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_->Url()));
  const Delivery delivery = DeliverOnce("thread-1");
  EXPECT_EQ(delivery.status(), DELIVERY_STATUS_FAILED);
  EXPECT_EQ(delivery.response_code(), 302);
  EXPECT_THAT(delivery.last_error(), HasSubstr("302"));
  EXPECT_EQ(internal.connections(), 0u);
  for (const auto& attempt : delivery.attempt_history()) {
    EXPECT_THAT(attempt.response_body(),
                ::testing::Not(HasSubstr("internal secrets")));
  }
}

TEST_F(SsrfTest, ProxyEnvironmentVariablesAreIgnored) {
  // A proxy would connect wherever it is told, past the address checks.
  RawServer proxy(RespondWith(200, "proxied"));
  const std::string proxy_url = proxy.Url("127.0.0.1", "");
  const std::vector<std::string> names = {"https_proxy", "HTTPS_PROXY",
                                          "http_proxy",  "HTTP_PROXY",
                                          "all_proxy",   "ALL_PROXY"};
  for (const std::string& name : names) {
    setenv(name.c_str(), proxy_url.c_str(), 1);
  }
  // The test's own gRPC channel honours these too: keep it direct. The
  // delivery goes to rebind.test, which no_proxy does not name.
  setenv("no_proxy", "127.0.0.1", 1);
  setenv("NO_PROXY", "127.0.0.1", 1);
  StartServer({"127.0.0.1/32"});
  CreateEndpoint(stub(),
                 MakeEndpoint("thread-1", receiver_->Url("rebind.test")));
  const Delivery delivery = DeliverOnce("thread-1");
  for (const std::string& name : names) unsetenv(name.c_str());
  unsetenv("no_proxy");
  unsetenv("NO_PROXY");
  EXPECT_EQ(delivery.status(), DELIVERY_STATUS_SUCCESS)
      << delivery.last_error();
  EXPECT_EQ(proxy.connections(), 0u);
  EXPECT_EQ(receiver_->requests(), 1u);
}

TEST_F(SsrfTest, InsecureTargetsTurnTheConnectTimeCheckOff) {
  server_.options().target_policy.allow_insecure_targets = true;
  StartServer();
  CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_->Url()));
  const Delivery delivery = DeliverOnce("thread-1");
  EXPECT_EQ(delivery.status(), DELIVERY_STATUS_SUCCESS)
      << delivery.last_error();
}

}  // namespace
}  // namespace webhookd
