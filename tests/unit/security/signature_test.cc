#include "server/security/signature.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace webhookd {
namespace {

using ::testing::MatchesRegex;
using ::testing::Optional;

TEST(SignatureHexTest, MatchesRfc4231TestCase2) {
  EXPECT_EQ(SignatureHex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(SignatureHexTest, MatchesRfc4231TestCase6WithKeyLongerThanBlock) {
  // A 131-byte key is hashed first (longer than SHA-256's 64-byte block).
  EXPECT_EQ(SignatureHex(std::string(131, '\xaa'),
                         "Test Using Larger Than Block-Size Key - Hash Key "
                         "First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(SignatureHexTest, EmptySecretAndBodyStillSign) {
  // HMAC-SHA256 with an empty key over an empty message.
  EXPECT_EQ(SignatureHex("", ""),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
  EXPECT_EQ(SignatureHex(std::string_view(), std::string_view()),
            SignatureHex("", ""));
}

TEST(SignatureHexTest, IsLowercaseHexOf32Bytes) {
  EXPECT_THAT(SignatureHex("secret", R"({"event":"execution.completed"})"),
              MatchesRegex("[0-9a-f]{64}"));
}

TEST(SignatureHexTest, DependsOnSecretAndEveryBodyByte) {
  const std::string body = R"({"userId":42})";
  const std::string signature = SignatureHex("secret", body);
  EXPECT_NE(SignatureHex("secreT", body), signature);
  EXPECT_NE(SignatureHex("secret", R"({"userId":43})"), signature);
  EXPECT_NE(SignatureHex("secret", body + " "), signature);
  EXPECT_EQ(SignatureHex("secret", body), signature);
}

TEST(SignatureHexTest, HandlesBinaryBytes) {
  const std::string body("a\0b", 3);
  EXPECT_NE(SignatureHex("k", body), SignatureHex("k", "a"));
}

// The example of the Standard Webhooks libraries' own tests (the npm
// standardwebhooks package's sign() gives the same value).
constexpr char kSpecSecret[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr char kSpecId[] = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr int64_t kSpecTimestamp = 1614265330;
constexpr char kSpecBody[] = R"({"test": 2432232314})";
constexpr char kSpecSignature[] =
    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

TEST(StandardWebhooksSignatureTest, MatchesTheLibrariesKnownVector) {
  const std::optional<std::string> key = StandardWebhooksKey(kSpecSecret);
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(StandardWebhooksSignature(*key, kSpecId, kSpecTimestamp, kSpecBody),
            kSpecSignature);
}

TEST(StandardWebhooksSignatureTest, DependsOnIdTimestampAndBody) {
  const std::string key = *StandardWebhooksKey(kSpecSecret);
  EXPECT_NE(
      StandardWebhooksSignature(key, "msg_other", kSpecTimestamp, kSpecBody),
      kSpecSignature);
  EXPECT_NE(
      StandardWebhooksSignature(key, kSpecId, kSpecTimestamp + 1, kSpecBody),
      kSpecSignature);
  EXPECT_NE(StandardWebhooksSignature(key, kSpecId, kSpecTimestamp,
                                      R"({"test": 2432232315})"),
            kSpecSignature);
}

TEST(StandardWebhooksKeyTest, DecodesTheBase64AfterThePrefix) {
  EXPECT_THAT(StandardWebhooksKey("whsec_" + std::string(32, 'A')),
              Optional(std::string(24, '\0')));
  EXPECT_EQ(StandardWebhooksKey(kSpecSecret)->size(), 24u);
}

TEST(StandardWebhooksKeyTest, AcceptsOnly24To64Bytes) {
  // 16 bytes: too short; 24 and 64: the bounds; 65: too long.
  EXPECT_FALSE(
      StandardWebhooksKey("whsec_AAAAAAAAAAAAAAAAAAAAAA==").has_value());
  EXPECT_TRUE(StandardWebhooksKey("whsec_" + std::string(32, 'A')).has_value());
  EXPECT_TRUE(StandardWebhooksKey("whsec_" + std::string(84, 'A') + "AA==")
                  .has_value());
  EXPECT_FALSE(StandardWebhooksKey("whsec_" + std::string(84, 'A') + "AAA=")
                   .has_value());
  EXPECT_FALSE(
      StandardWebhooksKey("whsec_" + std::string(88, 'A')).has_value());
}

TEST(StandardWebhooksKeyTest, RefusesOtherSpellings) {
  EXPECT_FALSE(StandardWebhooksKey("").has_value());
  EXPECT_FALSE(StandardWebhooksKey("whsec_").has_value());
  EXPECT_FALSE(StandardWebhooksKey(std::string(32, 'A')).has_value());
  EXPECT_FALSE(
      StandardWebhooksKey("WHSEC_" + std::string(32, 'A')).has_value());
  // Not standard base64: URL alphabet, missing padding, spaces, bad padding.
  EXPECT_FALSE(
      StandardWebhooksKey("whsec_" + std::string(31, 'A') + "-").has_value());
  EXPECT_FALSE(
      StandardWebhooksKey("whsec_" + std::string(34, 'A')).has_value());
  EXPECT_FALSE(
      StandardWebhooksKey("whsec_ " + std::string(31, 'A')).has_value());
  EXPECT_FALSE(
      StandardWebhooksKey("whsec_" + std::string(29, 'A') + "===").has_value());
  // Non-zero padding bits: another spelling of a key.
  EXPECT_FALSE(
      StandardWebhooksKey("whsec_" + std::string(85, 'A') + "B==").has_value());
}

TEST(GenerateSecretTest, HexSecretIs32RandomBytes) {
  const std::string secret = GenerateSecret(false);
  EXPECT_THAT(secret, MatchesRegex("[0-9a-f]{64}"));
  EXPECT_NE(GenerateSecret(false), secret);
}

TEST(GenerateSecretTest, StandardWebhooksSecretIsAValidWhsecSecret) {
  const std::string secret = GenerateSecret(true);
  EXPECT_THAT(secret, MatchesRegex("whsec_[A-Za-z0-9+/]{43}="));
  const std::optional<std::string> key = StandardWebhooksKey(secret);
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->size(), 32u);
  EXPECT_NE(GenerateSecret(true), secret);
}

TEST(ConstantTimeEqualsTest, EqualStringsAreEqual) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  const std::string signature = SignatureHex("Jefe", "body");
  EXPECT_TRUE(ConstantTimeEquals(signature, std::string(signature)));
}

TEST(ConstantTimeEqualsTest, DifferentContentIsNotEqual) {
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "xbc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ABC"));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0c", 3), "abc"));
}

TEST(ConstantTimeEqualsTest, DifferentLengthsAreNotEqual) {
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEquals("ab", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_FALSE(ConstantTimeEquals("a", ""));
}

TEST(ConstantTimeEqualsTest, PrefixIsNotEqualEvenIfMemoryAfterItMatches) {
  // `shorter` is followed in memory by the byte that would make it equal, so
  // a comparison that read past its end would wrongly succeed.
  const std::string buffer = "abcabc";
  const std::string_view longer(buffer.data(), 3);
  const std::string_view shorter(buffer.data() + 3, 2);
  EXPECT_FALSE(ConstantTimeEquals(longer, shorter));
  EXPECT_FALSE(ConstantTimeEquals(shorter, longer));
}

}  // namespace
}  // namespace webhookd
