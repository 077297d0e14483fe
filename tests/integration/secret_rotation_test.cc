// Signature schemes and secret rotation through a real server and a real
// channel, on a real LevelDB and a real PostgreSQL, with deliveries to a
// real receiver on loopback and restarts in between.

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "server/app/webhook_server.h"
#include "server/security/signature.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/postgres_server.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using testing::Context;
using testing::CreateEndpoint;
using testing::Eventually;
using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using testing::ReceivedRequest;
using testing::Submit;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::WaitFinished;
using webhook::v1::Endpoint;
using webhook::v1::RotateEndpointSecretRequest;
using webhook::v1::RotateEndpointSecretResponse;

constexpr char kOldSecret[] = "old-3b9d1f7a";
constexpr char kNewSecret[] = "new-8c2e4a6f";
constexpr char kWhsecOld[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr char kWhsecNew[] =
    "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

enum class Backend { kLevelDb, kPostgres };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kLevelDb ? "LevelDb" : "Postgres";
}

// A receiver as the README tells one to write for X-Hub-Signature-256,
// knowing `secret` only: accepts when X-Hub-Signature-256, or during a
// rotation X-Hub-Signature-256-Next, is the hex HMAC of the body.
bool HubReceiverAccepts(const ReceivedRequest& request,
                        const std::string& secret) {
  const std::string expected = SignatureHex(secret, request.body);
  return request.Header("X-Hub-Signature-256") == expected ||
         request.Header("X-Hub-Signature-256-Next") == expected;
}

// A receiver written before rotations existed: only X-Hub-Signature-256.
bool LegacyReceiverAccepts(const ReceivedRequest& request,
                           const std::string& secret) {
  return request.Header("X-Hub-Signature-256") ==
         SignatureHex(secret, request.body);
}

// A Standard Webhooks receiver knowing `secret`: one of the signatures of
// webhook-signature matches.
bool StandardReceiverAccepts(const ReceivedRequest& request,
                             const std::string& secret) {
  int64_t timestamp = 0;
  if (!absl::SimpleAtoi(request.Header("webhook-timestamp"), &timestamp)) {
    return false;
  }
  const std::string expected = StandardWebhooksSignature(
      *StandardWebhooksKey(secret), request.Header("webhook-id"), timestamp,
      request.body);
  for (absl::string_view given :
       absl::StrSplit(request.Header("webhook-signature"), ' ')) {
    if (given == expected) return true;
  }
  return false;
}

class SecretRotationTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ServerOptions options = TestServerOptions(dir_.Sub("data"));
    if (GetParam() == Backend::kPostgres) {
      absl::StatusOr<std::string> conninfo =
          testing::NewSharedDatabase("rotation");
      ASSERT_TRUE(conninfo.ok()) << conninfo.status();
      options.postgres = *conninfo;
    }
    server_.emplace(options);
    server_->Start();
  }

  webhook::v1::WebhookService::Stub& stub() { return server_->stub(); }

  Endpoint Create(const std::string& secret, bool standard = false,
                  const std::string& thread = "thread-1") {
    Endpoint endpoint = testing::MakeEndpoint(thread, receiver_.Url(), secret);
    if (standard) {
      endpoint.set_signature_scheme(
          webhook::v1::SIGNATURE_SCHEME_STANDARD_WEBHOOKS);
    }
    return CreateEndpoint(stub(), endpoint);
  }

  grpc::Status Rotate(const std::string& id, const std::string& secret,
                      int64_t grace_seconds,
                      RotateEndpointSecretResponse* response) {
    RotateEndpointSecretRequest request;
    request.set_id(id);
    request.set_new_secret(secret);
    request.set_grace_period_seconds(grace_seconds);
    return stub().RotateEndpointSecret(Context().get(), request, response);
  }

  Endpoint Get(const std::string& id) {
    return testing::GetEndpoint(stub(), id);
  }

  // Submits an event and returns the request the receiver got for it.
  ReceivedRequest Deliver() {
    const size_t before = receiver_.RequestCount();
    const webhook::v1::SubmitEventResponse submitted =
        Submit(stub(), ExampleEvent("thread-1"));
    EXPECT_EQ(submitted.delivery_ids_size(), 1);
    if (submitted.delivery_ids_size() != 1) return {};
    EXPECT_EQ(WaitFinished(stub(), submitted.delivery_ids(0)).status(),
              webhook::v1::DELIVERY_STATUS_SUCCESS);
    EXPECT_EQ(receiver_.RequestCount(), before + 1);
    return receiver_.Requests().back();
  }

  void Restart() {
    server_->Stop();
    server_->Start();
  }

  TestDir dir_;
  HttpReceiver receiver_;
  std::optional<TestServer> server_;
};

TEST_P(SecretRotationTest, DefaultSchemeIsReportedAndSignsAsBefore) {
  const Endpoint endpoint = Create(kOldSecret);
  EXPECT_EQ(endpoint.signature_scheme(),
            webhook::v1::SIGNATURE_SCHEME_HUB_SIGNATURE_256);
  EXPECT_FALSE(endpoint.has_previous_secret());
  const ReceivedRequest request = Deliver();
  EXPECT_EQ(request.Header("X-Hub-Signature-256"),
            SignatureHex(kOldSecret, request.body));
  EXPECT_FALSE(request.HasHeader("X-Hub-Signature-256-Next"));
  EXPECT_FALSE(request.HasHeader("webhook-signature"));
  EXPECT_FALSE(request.HasHeader("webhook-id"));
}

TEST_P(SecretRotationTest, EndpointWithoutSecretSendsNoSignatureHeader) {
  Create("");
  const ReceivedRequest request = Deliver();
  EXPECT_FALSE(request.HasHeader("X-Hub-Signature-256"));
  EXPECT_FALSE(request.HasHeader("webhook-signature"));
  EXPECT_TRUE(request.HasHeader("X-Webhook-Id"));
}

TEST_P(SecretRotationTest,
       HubGraceKeepsOldAndNewReceiversAcceptingAcrossRestart) {
  const Endpoint endpoint = Create(kOldSecret);
  RotateEndpointSecretResponse rotated;
  ASSERT_TRUE(Rotate(endpoint.id(), kNewSecret, 3600, &rotated).ok());
  // A secret the caller gave is not echoed.
  EXPECT_EQ(rotated.new_secret(), "");
  EXPECT_TRUE(rotated.endpoint().has_previous_secret());
  const absl::Time expire = absl::FromUnixSeconds(
      rotated.endpoint().previous_secret_expire_time().seconds());
  EXPECT_GT(expire, absl::Now() + absl::Minutes(59));
  EXPECT_LE(expire, absl::Now() + absl::Hours(1));

  for (bool restarted : {false, true}) {
    if (restarted) Restart();
    SCOPED_TRACE(restarted ? "after a restart" : "before a restart");
    const ReceivedRequest request = Deliver();
    // The documented header keeps the previous secret's signature.
    EXPECT_EQ(request.Header("X-Hub-Signature-256"),
              SignatureHex(kOldSecret, request.body));
    EXPECT_EQ(request.Header("X-Hub-Signature-256-Next"),
              SignatureHex(kNewSecret, request.body));
    EXPECT_TRUE(LegacyReceiverAccepts(request, kOldSecret));
    EXPECT_TRUE(HubReceiverAccepts(request, kOldSecret));
    EXPECT_TRUE(HubReceiverAccepts(request, kNewSecret));
    EXPECT_FALSE(HubReceiverAccepts(request, "another"));
    const Endpoint stored = Get(endpoint.id());
    EXPECT_TRUE(stored.has_previous_secret());
    EXPECT_EQ(stored.previous_secret(), "");
    EXPECT_EQ(stored.secret(), "");
  }
}

TEST_P(SecretRotationTest, AfterTheGraceOnlyTheNewSecretSigns) {
  const Endpoint endpoint = Create(kOldSecret);
  RotateEndpointSecretResponse rotated;
  ASSERT_TRUE(Rotate(endpoint.id(), kNewSecret, 1, &rotated).ok());
  // Decided by time: once the grace is over, the previous secret is gone.
  ASSERT_TRUE(
      Eventually([&] { return !Get(endpoint.id()).has_previous_secret(); }));
  const ReceivedRequest request = Deliver();
  EXPECT_EQ(request.Header("X-Hub-Signature-256"),
            SignatureHex(kNewSecret, request.body));
  EXPECT_FALSE(request.HasHeader("X-Hub-Signature-256-Next"));
  EXPECT_TRUE(HubReceiverAccepts(request, kNewSecret));
  EXPECT_FALSE(LegacyReceiverAccepts(request, kOldSecret));
  // Still so after the next write and a restart.
  webhook::v1::DisableEndpointRequest disable;
  disable.set_id(endpoint.id());
  webhook::v1::DisableEndpointResponse disabled;
  ASSERT_TRUE(stub().DisableEndpoint(Context().get(), disable, &disabled).ok());
  Restart();
  EXPECT_FALSE(Get(endpoint.id()).has_previous_secret());
}

TEST_P(SecretRotationTest, StandardWebhooksGraceCarriesBothSignatures) {
  const Endpoint endpoint = Create(kWhsecOld, /*standard=*/true);
  EXPECT_EQ(endpoint.signature_scheme(),
            webhook::v1::SIGNATURE_SCHEME_STANDARD_WEBHOOKS);
  RotateEndpointSecretResponse rotated;
  ASSERT_TRUE(Rotate(endpoint.id(), kWhsecNew, 0, &rotated).ok());
  // The default grace: 24 hours.
  const absl::Time expire = absl::FromUnixSeconds(
      rotated.endpoint().previous_secret_expire_time().seconds());
  EXPECT_GT(expire, absl::Now() + absl::Hours(23));
  EXPECT_LE(expire, absl::Now() + absl::Hours(24));
  Restart();
  const ReceivedRequest request = Deliver();
  const std::vector<std::string> signatures =
      absl::StrSplit(request.Header("webhook-signature"), ' ');
  ASSERT_EQ(signatures.size(), 2u);
  EXPECT_TRUE(StandardReceiverAccepts(request, kWhsecOld));
  EXPECT_TRUE(StandardReceiverAccepts(request, kWhsecNew));
  EXPECT_FALSE(request.HasHeader("X-Hub-Signature-256"));
  EXPECT_EQ(request.Header("webhook-id"), request.Header("X-Webhook-Id"));
}

TEST_P(SecretRotationTest, GeneratedSecretIsReturnedOnceAndSigns) {
  const Endpoint endpoint = Create(kWhsecOld, /*standard=*/true);
  RotateEndpointSecretResponse rotated;
  ASSERT_TRUE(Rotate(endpoint.id(), "", 0, &rotated).ok());
  ASSERT_TRUE(StandardWebhooksKey(rotated.new_secret()).has_value());
  const ReceivedRequest request = Deliver();
  EXPECT_TRUE(StandardReceiverAccepts(request, rotated.new_secret()));
  const Endpoint hub = Create(kOldSecret);
  RotateEndpointSecretResponse hub_rotated;
  ASSERT_TRUE(Rotate(hub.id(), "", 0, &hub_rotated).ok());
  EXPECT_THAT(hub_rotated.new_secret(),
              ::testing::MatchesRegex("[0-9a-f]{64}"));
}

TEST_P(SecretRotationTest, UpdateEndpointSecretReplacesAtOnce) {
  const Endpoint endpoint = Create(kOldSecret);
  RotateEndpointSecretResponse rotated;
  ASSERT_TRUE(Rotate(endpoint.id(), kNewSecret, 3600, &rotated).ok());
  webhook::v1::UpdateEndpointRequest update;
  update.mutable_endpoint()->set_id(endpoint.id());
  update.mutable_endpoint()->set_secret("third-5d7f");
  update.mutable_update_mask()->add_paths("secret");
  webhook::v1::UpdateEndpointResponse updated;
  ASSERT_TRUE(stub().UpdateEndpoint(Context().get(), update, &updated).ok());
  EXPECT_FALSE(updated.endpoint().has_previous_secret());
  const ReceivedRequest request = Deliver();
  EXPECT_EQ(request.Header("X-Hub-Signature-256"),
            SignatureHex("third-5d7f", request.body));
  EXPECT_FALSE(request.HasHeader("X-Hub-Signature-256-Next"));
}

TEST_P(SecretRotationTest, BadRotationsAreRefusedNamingTheField) {
  const Endpoint hub = Create(kOldSecret);
  const Endpoint standard =
      Create(kWhsecOld, /*standard=*/true, /*thread=*/"thread-2");
  RotateEndpointSecretResponse response;
  struct Case {
    std::string id, secret;
    int64_t grace;
    grpc::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {hub.id(), kNewSecret, -1, grpc::INVALID_ARGUMENT,
       "grace_period_seconds: "},
      {hub.id(), kNewSecret, 7 * 24 * 3600 + 1, grpc::INVALID_ARGUMENT,
       "grace_period_seconds: "},
      {hub.id(), kOldSecret, 0, grpc::INVALID_ARGUMENT, "new_secret: "},
      {standard.id(), "not-whsec", 0, grpc::INVALID_ARGUMENT, "new_secret: "},
      {"ep_00000000000000000000000000000000", kNewSecret, 0, grpc::NOT_FOUND,
       "not found"},
  };
  for (const Case& c : cases) {
    const grpc::Status status = Rotate(c.id, c.secret, c.grace, &response);
    EXPECT_EQ(status.error_code(), c.code) << c.secret << " " << c.grace;
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
  }
  // Nothing changed.
  EXPECT_FALSE(Get(hub.id()).has_previous_secret());
  EXPECT_EQ(Get(hub.id()).update_time().seconds(), hub.update_time().seconds());
  EXPECT_TRUE(LegacyReceiverAccepts(Deliver(), kOldSecret));
}

TEST_P(SecretRotationTest, StandardWebhooksNeedsAWhsecSecret) {
  Endpoint endpoint =
      testing::MakeEndpoint("thread-1", receiver_.Url(), "s3cret");
  endpoint.set_signature_scheme(
      webhook::v1::SIGNATURE_SCHEME_STANDARD_WEBHOOKS);
  const grpc::Status status = testing::TryCreateEndpoint(stub(), endpoint);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("endpoint.secret: "));
  // Switching an endpoint's scheme checks its secret too.
  const Endpoint hub = Create(kOldSecret);
  webhook::v1::UpdateEndpointRequest update;
  update.mutable_endpoint()->set_id(hub.id());
  update.mutable_endpoint()->set_signature_scheme(
      webhook::v1::SIGNATURE_SCHEME_STANDARD_WEBHOOKS);
  update.mutable_update_mask()->add_paths("signature_scheme");
  webhook::v1::UpdateEndpointResponse updated;
  EXPECT_EQ(
      stub().UpdateEndpoint(Context().get(), update, &updated).error_code(),
      grpc::INVALID_ARGUMENT);
  update.mutable_endpoint()->set_secret(kWhsecNew);
  update.mutable_update_mask()->add_paths("secret");
  ASSERT_TRUE(stub().UpdateEndpoint(Context().get(), update, &updated).ok());
  EXPECT_EQ(updated.endpoint().signature_scheme(),
            webhook::v1::SIGNATURE_SCHEME_STANDARD_WEBHOOKS);
}

TEST_P(SecretRotationTest, StandardWebhooksHeadersAreReserved) {
  for (const char* name : {"webhook-id", "Webhook-Timestamp",
                           "WEBHOOK-SIGNATURE", "X-Hub-Signature-256-Next"}) {
    Endpoint endpoint =
        testing::MakeEndpoint("thread-1", receiver_.Url(), kOldSecret);
    webhook::v1::Header* header = endpoint.add_headers();
    header->set_name(name);
    header->set_value("forged");
    const grpc::Status status = testing::TryCreateEndpoint(stub(), endpoint);
    EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT) << name;
    EXPECT_THAT(status.error_message(), HasSubstr("is set by webhookd"))
        << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, SecretRotationTest,
                         ::testing::Values(Backend::kLevelDb,
                                           Backend::kPostgres),
                         BackendName);

}  // namespace
}  // namespace webhookd
