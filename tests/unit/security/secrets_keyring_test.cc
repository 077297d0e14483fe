#include "server/security/secrets_keyring.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace webhookd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const SecretsKey kOld = SecretsKey::FromBytes(std::string(32, 'o'));
const SecretsKey kNew = SecretsKey::FromBytes(std::string(32, 'n'));

TEST(SecretsKeyringTest, SealedValueOpensToThePlaintext) {
  const SecretsKeyring ring(kNew, {});
  absl::StatusOr<std::string> sealed = ring.Seal("s3cret", "ep_1 secret");
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_TRUE(SecretsKeyring::IsSealed(*sealed));
  EXPECT_THAT(*sealed, Not(HasSubstr("s3cret")));
  EXPECT_EQ(SecretsKeyring::KeyIdOf(*sealed), kNew.id());
  absl::StatusOr<std::string> opened = ring.Open(*sealed, "ep_1 secret");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "s3cret");
}

TEST(SecretsKeyringTest, EachSealUsesANewNonce) {
  const SecretsKeyring ring(kNew, {});
  EXPECT_NE(*ring.Seal("same", "ad"), *ring.Seal("same", "ad"));
}

TEST(SecretsKeyringTest, EmptyPlaintextRoundTrips) {
  const SecretsKeyring ring(kNew, {});
  EXPECT_EQ(*ring.Open(*ring.Seal("", "ad"), "ad"), "");
}

TEST(SecretsKeyringTest, AlteredValueFailsToOpen) {
  const SecretsKeyring ring(kNew, {});
  std::string sealed = *ring.Seal("s3cret", "ad");
  // Flip one bit of the ciphertext inside the base64 body.
  const size_t body = sealed.rfind(':') + 1;
  std::string raw;
  ASSERT_TRUE(absl::Base64Unescape(sealed.substr(body), &raw));
  raw[14] ^= 1;
  sealed = sealed.substr(0, body) + absl::Base64Escape(raw);
  absl::StatusOr<std::string> opened = ring.Open(sealed, "ad");
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(opened.status().message(), HasSubstr("fails authentication"));
}

TEST(SecretsKeyringTest, TruncatedValueFailsToOpen) {
  const SecretsKeyring ring(kNew, {});
  const std::string sealed = *ring.Seal("s3cret", "ad");
  EXPECT_EQ(
      ring.Open(sealed.substr(0, sealed.size() - 8), "ad").status().code(),
      absl::StatusCode::kDataLoss);
}

TEST(SecretsKeyringTest, OtherAssociatedDataFailsToOpen) {
  const SecretsKeyring ring(kNew, {});
  const std::string sealed = *ring.Seal("s3cret", "ep_1 secret");
  EXPECT_EQ(ring.Open(sealed, "ep_2 secret").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(SecretsKeyringTest, UnknownKeyIdIsNamedInTheError) {
  const SecretsKeyring writer(kOld, {});
  const SecretsKeyring reader(kNew, {});
  absl::StatusOr<std::string> opened =
      reader.Open(*writer.Seal("s3cret", "ad"), "ad");
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(opened.status().message(), HasSubstr(kOld.id()));
  EXPECT_THAT(opened.status().message(), HasSubstr("--secrets_old_key_files"));
}

TEST(SecretsKeyringTest, NoKeyOpensNothingAndSealsNothing) {
  const SecretsKeyring none;
  EXPECT_FALSE(none.has_current());
  EXPECT_EQ(none.Seal("x", "ad").status().code(),
            absl::StatusCode::kFailedPrecondition);
  const std::string sealed = *SecretsKeyring(kNew, {}).Seal("x", "ad");
  EXPECT_EQ(none.Open(sealed, "ad").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(SecretsKeyringTest, OldKeyStillOpensAndNewKeySeals) {
  const std::string under_old = *SecretsKeyring(kOld, {}).Seal("v1", "ad");
  const SecretsKeyring rotated(kNew, {kOld});
  EXPECT_EQ(*rotated.Open(under_old, "ad"), "v1");
  EXPECT_EQ(SecretsKeyring::KeyIdOf(*rotated.Seal("v2", "ad")), kNew.id());
  EXPECT_EQ(rotated.key_ids(),
            (std::vector<std::string>{kNew.id(), kOld.id()}));
}

TEST(SecretsKeyringTest, PlainValuesAreNotSealed) {
  EXPECT_FALSE(SecretsKeyring::IsSealed("s3cret"));
  EXPECT_FALSE(SecretsKeyring::IsSealed(""));
  EXPECT_EQ(SecretsKeyring::KeyIdOf("sealed:v1:abcd:xyz"), std::nullopt);
}

TEST(SecretsKeyTest, ParsesBase64OfThirtyTwoBytes) {
  const std::string text = absl::Base64Escape(std::string(32, 'k')) + "\n";
  absl::StatusOr<SecretsKey> key =
      SecretsKey::Parse(text, "--secrets_key_file");
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->bytes(), std::string(32, 'k'));
  EXPECT_EQ(key->id().size(), 8u);
  EXPECT_EQ(key->id(), SecretsKey::FromBytes(std::string(32, 'k')).id());
  EXPECT_NE(key->id(), kNew.id());
}

TEST(SecretsKeyTest, RefusesAKeyOfAnotherLength) {
  absl::StatusOr<SecretsKey> key = SecretsKey::Parse(
      absl::Base64Escape(std::string(16, 'k')), "--secrets_key_file");
  EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(key.status().message(), HasSubstr("--secrets_key_file"));
  EXPECT_THAT(key.status().message(), HasSubstr("16 bytes"));
}

TEST(SecretsKeyTest, RefusesTextThatIsNotBase64) {
  for (const char* text : {"", "  \n", "not a key!", "%%%%"}) {
    absl::StatusOr<SecretsKey> key =
        SecretsKey::Parse(text, "--secrets_key_file");
    EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(key.status().message(), HasSubstr("openssl rand -base64 32"));
  }
}

TEST(SecretsKeyTest, MissingFileIsNamed) {
  absl::StatusOr<SecretsKey> key =
      SecretsKey::Load("/nonexistent/key", "--secrets_key_file");
  EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(key.status().message(), HasSubstr("/nonexistent/key"));
}

TEST(Aes256GcmTest, KeyOfWrongLengthOpensNothing) {
  const std::string sealed = Aes256GcmSeal(std::string(32, 'k'), "text", "ad");
  EXPECT_EQ(Aes256GcmOpen(std::string(32, 'k'), sealed, "ad"), "text");
  EXPECT_EQ(Aes256GcmOpen(std::string(16, 'k'), sealed, "ad"), std::nullopt);
}

}  // namespace
}  // namespace webhookd
