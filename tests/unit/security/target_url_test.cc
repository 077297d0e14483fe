#include "server/security/target_url.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace webhookd {
namespace {

TEST(ParseTargetUrlTest, ReturnsLowercaseSchemeHostAndDefaultPort) {
  absl::StatusOr<ParsedUrl> parsed =
      ParseTargetUrl("HTTPS://Hooks.Example.COM/path?q=1");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->scheme, "https");
  EXPECT_EQ(parsed->host, "hooks.example.com");
  EXPECT_EQ(parsed->port, 443);

  parsed = ParseTargetUrl("http://example.com/");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->scheme, "http");
  EXPECT_EQ(parsed->port, 80);
}

TEST(ParseTargetUrlTest, ReturnsExplicitPort) {
  absl::StatusOr<ParsedUrl> parsed = ParseTargetUrl("http://127.0.0.1:8080/");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->host, "127.0.0.1");
  EXPECT_EQ(parsed->port, 8080);
}

TEST(ParseTargetUrlTest, NormalisesIpv4AndUnbracketsIpv6) {
  absl::StatusOr<ParsedUrl> parsed = ParseTargetUrl("https://127.1/");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->host, "127.0.0.1");

  parsed = ParseTargetUrl("https://[::1]:8443/");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->host, "::1");
  EXPECT_EQ(parsed->port, 8443);
}

TEST(ParseTargetUrlTest, ErrorNamesNoField) {
  const absl::StatusOr<ParsedUrl> parsed = ParseTargetUrl("ftp://example.com/");
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(), "scheme must be http or https");
}

}  // namespace
}  // namespace webhookd
