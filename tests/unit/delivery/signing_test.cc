#include "server/delivery/signing.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/time_util.h"
#include "server/security/signature.h"

namespace webhookd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using webhook::v1::Endpoint;

constexpr char kBody[] = R"({"event":"execution.completed"})";
constexpr char kDeliveryId[] = "dlv_0193aaaabbbbccccddddeeeeffff0000";
// Two valid Standard Webhooks secrets (24 and 32 key bytes).
constexpr char kWhsecOld[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr char kWhsecNew[] =
    "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

const absl::Time kNow = absl::FromUnixSeconds(1800000000);

Endpoint HubEndpoint(std::string secret) {
  Endpoint endpoint;
  endpoint.set_secret(std::move(secret));
  return endpoint;
}

Endpoint StandardEndpoint(std::string secret) {
  Endpoint endpoint = HubEndpoint(std::move(secret));
  endpoint.set_signature_scheme(
      webhook::v1::SIGNATURE_SCHEME_STANDARD_WEBHOOKS);
  return endpoint;
}

// `endpoint` in a rotation grace that ends at `expire`.
Endpoint Rotating(Endpoint endpoint, std::string previous, absl::Time expire) {
  endpoint.set_previous_secret(std::move(previous));
  *endpoint.mutable_previous_secret_expire_time() = ToProtoTime(expire);
  return endpoint;
}

TEST(SignatureHeadersTest, NoSecretMeansNoSignatureHeaderAtAll) {
  EXPECT_THAT(SignatureHeaders(HubEndpoint(""), kDeliveryId, kBody, kNow),
              IsEmpty());
  Endpoint standard = StandardEndpoint("");
  EXPECT_THAT(SignatureHeaders(standard, kDeliveryId, kBody, kNow), IsEmpty());
}

TEST(SignatureHeadersTest, DefaultSchemeIsTheUnchangedHubSignature) {
  EXPECT_THAT(
      SignatureHeaders(HubEndpoint("s3cret"), kDeliveryId, kBody, kNow),
      ElementsAre(Pair("X-Hub-Signature-256", SignatureHex("s3cret", kBody))));
  Endpoint explicit_hub = HubEndpoint("s3cret");
  explicit_hub.set_signature_scheme(
      webhook::v1::SIGNATURE_SCHEME_HUB_SIGNATURE_256);
  EXPECT_EQ(SignatureHeaders(explicit_hub, kDeliveryId, kBody, kNow),
            SignatureHeaders(HubEndpoint("s3cret"), kDeliveryId, kBody, kNow));
}

TEST(SignatureHeadersTest, HubGraceSignsDocumentedHeaderWithPreviousSecret) {
  const Endpoint endpoint =
      Rotating(HubEndpoint("new"), "old", kNow + absl::Hours(1));
  EXPECT_THAT(
      SignatureHeaders(endpoint, kDeliveryId, kBody, kNow),
      ElementsAre(
          Pair("X-Hub-Signature-256", SignatureHex("old", kBody)),
          Pair("X-Hub-Signature-256-Next", SignatureHex("new", kBody))));
}

TEST(SignatureHeadersTest, HubAfterGraceSignsWithNewSecretOnly) {
  const Endpoint endpoint =
      Rotating(HubEndpoint("new"), "old", kNow + absl::Hours(1));
  // The grace ends at its expire time exactly.
  for (absl::Time at : {kNow + absl::Hours(1), kNow + absl::Hours(2)}) {
    EXPECT_THAT(
        SignatureHeaders(endpoint, kDeliveryId, kBody, at),
        ElementsAre(Pair("X-Hub-Signature-256", SignatureHex("new", kBody))));
  }
}

TEST(SignatureHeadersTest, StandardWebhooksSignsIdTimestampAndBody) {
  const std::string key = *StandardWebhooksKey(kWhsecOld);
  EXPECT_THAT(
      SignatureHeaders(StandardEndpoint(kWhsecOld), kDeliveryId, kBody, kNow),
      ElementsAre(
          Pair("webhook-id", kDeliveryId),
          Pair("webhook-timestamp", "1800000000"),
          Pair("webhook-signature", StandardWebhooksSignature(
                                        key, kDeliveryId, 1800000000, kBody))));
}

TEST(SignatureHeadersTest, StandardWebhooksTimestampIsThatOfTheAttempt) {
  const auto later = SignatureHeaders(StandardEndpoint(kWhsecOld), kDeliveryId,
                                      kBody, kNow + absl::Seconds(75));
  EXPECT_EQ(later[1].second, "1800000075");
  EXPECT_EQ(later[0].second, kDeliveryId);
}

TEST(SignatureHeadersTest, StandardWebhooksGraceCarriesNewThenPrevious) {
  const Endpoint endpoint =
      Rotating(StandardEndpoint(kWhsecNew), kWhsecOld, kNow + absl::Hours(1));
  const std::string expected =
      absl::StrCat(StandardWebhooksSignature(*StandardWebhooksKey(kWhsecNew),
                                             kDeliveryId, 1800000000, kBody),
                   " ",
                   StandardWebhooksSignature(*StandardWebhooksKey(kWhsecOld),
                                             kDeliveryId, 1800000000, kBody));
  EXPECT_THAT(SignatureHeaders(endpoint, kDeliveryId, kBody, kNow),
              ElementsAre(Pair("webhook-id", kDeliveryId),
                          Pair("webhook-timestamp", "1800000000"),
                          Pair("webhook-signature", expected)));
  // After the grace: the new one alone, and no X-Hub-Signature-256 ever.
  const auto after =
      SignatureHeaders(endpoint, kDeliveryId, kBody, kNow + absl::Hours(1));
  EXPECT_EQ(after[2].second,
            StandardWebhooksSignature(*StandardWebhooksKey(kWhsecNew),
                                      kDeliveryId, 1800003600, kBody));
}

TEST(PreviousSecretActiveTest, NeedsASecretAndAnExpireTimeAfterNow) {
  EXPECT_FALSE(PreviousSecretActive(HubEndpoint("new"), kNow));
  Endpoint no_expire = HubEndpoint("new");
  no_expire.set_previous_secret("old");
  EXPECT_FALSE(PreviousSecretActive(no_expire, kNow));
  EXPECT_TRUE(PreviousSecretActive(
      Rotating(HubEndpoint("new"), "old", kNow + absl::Seconds(1)), kNow));
  EXPECT_FALSE(PreviousSecretActive(
      Rotating(HubEndpoint("new"), "", kNow + absl::Seconds(1)), kNow));
}

TEST(ValidateSignatureSchemeTest, StandardWebhooksNeedsAWhsecSecret) {
  EXPECT_TRUE(
      ValidateSignatureScheme(StandardEndpoint(kWhsecOld), "endpoint").ok());
  for (const char* secret : {"", "s3cret", "whsec_", "whsec_c2hvcnQ="}) {
    const absl::Status status =
        ValidateSignatureScheme(StandardEndpoint(secret), "endpoint");
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << secret;
    EXPECT_THAT(status.message(), HasSubstr("endpoint.secret: ")) << secret;
  }
}

TEST(ValidateSignatureSchemeTest, HubSchemeTakesAnySecret) {
  EXPECT_TRUE(ValidateSignatureScheme(HubEndpoint(""), "endpoint").ok());
  EXPECT_TRUE(ValidateSignatureScheme(HubEndpoint(kWhsecOld), "endpoint").ok());
}

TEST(ValidateSignatureSchemeTest, RefusesUnknownValues) {
  Endpoint endpoint = HubEndpoint("s3cret");
  endpoint.set_signature_scheme(static_cast<webhook::v1::SignatureScheme>(7));
  const absl::Status status = ValidateSignatureScheme(endpoint, "endpoint");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("endpoint.signature_scheme: "));
}

}  // namespace
}  // namespace webhookd
