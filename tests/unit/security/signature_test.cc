#include "server/security/signature.h"

#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace webhookd {
namespace {

using ::testing::MatchesRegex;

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
