#include "server/security/target_url.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
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

TEST(ParseTargetUrlTest, KeepsAnAsciiUrlAsGiven) {
  const absl::StatusOr<ParsedUrl> parsed =
      ParseTargetUrl("HTTPS://Hooks.Example.COM:8443/Path?q=%C3%BC");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->url, "HTTPS://Hooks.Example.COM:8443/Path?q=%C3%BC");
}

TEST(ParseTargetUrlTest, ConvertsRawUtf8HostToPunycode) {
  const absl::StatusOr<ParsedUrl> parsed =
      ParseTargetUrl("https://b\u00fccher.example/hook?q=1");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->host, "xn--bcher-kva.example");
  EXPECT_EQ(parsed->url, "https://xn--bcher-kva.example/hook?q=1");
  EXPECT_EQ(parsed->port, 443);
}

TEST(ParseTargetUrlTest, ConvertsPercentEncodedHostToPunycode) {
  const absl::StatusOr<ParsedUrl> parsed =
      ParseTargetUrl("https://b%C3%BCcher.example:8443/hook");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->host, "xn--bcher-kva.example");
  EXPECT_EQ(parsed->url, "https://xn--bcher-kva.example:8443/hook");
  EXPECT_EQ(parsed->port, 8443);
}

TEST(ParseTargetUrlTest, MapsUppercaseIdnHostToLowercase) {
  const absl::StatusOr<ParsedUrl> parsed =
      ParseTargetUrl("https://B\u00dcCHER.Example/");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->url, "https://xn--bcher-kva.example/");
}

TEST(ParseTargetUrlTest, DecodesPercentEncodedAsciiHost) {
  const absl::StatusOr<ParsedUrl> parsed =
      ParseTargetUrl("https://ex%61mple.com/");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->host, "example.com");
  EXPECT_EQ(parsed->url, "https://example.com/");
}

TEST(ParseTargetUrlTest, RefusesInvalidIdnHosts) {
  const std::string long_label = [] {
    std::string label;
    for (int i = 0; i < 64; ++i) label += "\u00fc";
    return label;
  }();
  for (const std::string& url : {
           std::string("https://b%C3%28cher.example/"),  // Not UTF-8.
           std::string("https://b\xc3"
                       "cher.example/"),  // Truncated UTF-8.
           absl::StrCat("https://", long_label, ".example/"),
           std::string("https://a\u00fc%zz.example/"),  // Bad escape.
       }) {
    const absl::StatusOr<ParsedUrl> parsed = ParseTargetUrl(url);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << url;
    EXPECT_THAT(parsed.status().message(), testing::HasSubstr("host")) << url;
  }
}

TEST(ParseTargetUrlTest, RefusesDelimitersHiddenInPercentEncodedHost) {
  for (const char* url :
       {"https://evil.example%40good.example/", "https://a%2Fb.example/",
        "https://a%3A1.example/", "https://a%00b.example/"}) {
    const absl::StatusOr<ParsedUrl> parsed = ParseTargetUrl(url);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << url;
  }
}

TEST(ParseTargetUrlTest, RefusesNonAsciiOutsideTheHost) {
  const absl::StatusOr<ParsedUrl> parsed =
      ParseTargetUrl("https://example.com/b\u00fccher");
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(parsed.status().message(), testing::HasSubstr("ASCII"));
}

TEST(ParseTargetUrlTest, PercentEncodedIpLiteralIsNormalised) {
  // Decoded before the address policy sees it, so "127%2E0.0.1" cannot
  // slip past a check on literal addresses.
  const absl::StatusOr<ParsedUrl> parsed =
      ParseTargetUrl("https://127%2E0.0.1/");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->host, "127.0.0.1");
}

TEST(ParseTargetUrlTest, ErrorNamesNoField) {
  const absl::StatusOr<ParsedUrl> parsed = ParseTargetUrl("ftp://example.com/");
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(), "scheme must be http or https");
}

}  // namespace
}  // namespace webhookd
