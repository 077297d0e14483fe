#include "server/delivery/validation.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace webhookd {
namespace {

using ::testing::HasSubstr;

// An InvalidArgument whose message starts with "<field>: ".
MATCHER_P(IsInvalidArgumentFor, field,
          absl::StrCat("is InvalidArgument naming ", field)) {
  return arg.code() == absl::StatusCode::kInvalidArgument &&
         absl::StartsWith(arg.message(), absl::StrCat(field, ": "));
}

const TargetPolicy kSecure;
const TargetPolicy kInsecure = [] {
  TargetPolicy policy;
  policy.allow_insecure_targets = true;
  return policy;
}();

webhook::v1::Endpoint ValidEndpoint() {
  webhook::v1::Endpoint endpoint;
  endpoint.set_thread_id("thread-1");
  endpoint.set_name("Slack Notifications");
  endpoint.set_url("https://hooks.example.com/services/T0/B0");
  endpoint.set_secret("s3cret");
  webhook::v1::Header* header = endpoint.add_headers();
  header->set_name("Authorization");
  header->set_value("Bearer sk-your-token");
  return endpoint;
}

absl::Status CheckHeader(const std::string& name, const std::string& value) {
  webhook::v1::Endpoint endpoint;
  webhook::v1::Header* header = endpoint.add_headers();
  header->set_name(name);
  header->set_value(value);
  return ValidateHeaders(endpoint.headers(), "endpoint.headers");
}

// --- ValidateEndpoint -------------------------------------------------------

TEST(ValidateEndpointTest, AcceptsValidEndpoint) {
  EXPECT_TRUE(ValidateEndpoint(ValidEndpoint(), kSecure).ok());
}

TEST(ValidateEndpointTest, AcceptsEndpointWithoutSecretOrHeaders) {
  webhook::v1::Endpoint endpoint = ValidEndpoint();
  endpoint.clear_secret();
  endpoint.clear_headers();
  EXPECT_TRUE(ValidateEndpoint(endpoint, kSecure).ok());
}

TEST(ValidateEndpointTest, NamesEachFieldWithPrefix) {
  webhook::v1::Endpoint endpoint = ValidEndpoint();
  endpoint.clear_thread_id();
  EXPECT_THAT(ValidateEndpoint(endpoint, kSecure),
              IsInvalidArgumentFor("endpoint.thread_id"));

  endpoint = ValidEndpoint();
  endpoint.clear_name();
  EXPECT_THAT(ValidateEndpoint(endpoint, kSecure),
              IsInvalidArgumentFor("endpoint.name"));

  endpoint = ValidEndpoint();
  endpoint.clear_url();
  EXPECT_THAT(ValidateEndpoint(endpoint, kSecure),
              IsInvalidArgumentFor("endpoint.url"));

  endpoint = ValidEndpoint();
  endpoint.set_secret(std::string(kMaxSecretBytes + 1, 'x'));
  EXPECT_THAT(ValidateEndpoint(endpoint, kSecure),
              IsInvalidArgumentFor("endpoint.secret"));

  endpoint = ValidEndpoint();
  endpoint.mutable_headers(0)->set_name("Host");
  EXPECT_THAT(ValidateEndpoint(endpoint, kSecure),
              IsInvalidArgumentFor("endpoint.headers[0].name"));
}

TEST(ValidateEndpointTest, UsesGivenFieldPrefix) {
  webhook::v1::Endpoint endpoint = ValidEndpoint();
  endpoint.set_url("http://hooks.example.com/");
  EXPECT_THAT(ValidateEndpoint(endpoint, kSecure, "update.endpoint"),
              IsInvalidArgumentFor("update.endpoint.url"));
}

TEST(ValidateEndpointTest, HttpUrlAcceptedOnlyWithInsecurePolicy) {
  webhook::v1::Endpoint endpoint = ValidEndpoint();
  endpoint.set_url("http://127.0.0.1:8080/hook");
  EXPECT_THAT(ValidateEndpoint(endpoint, kSecure),
              IsInvalidArgumentFor("endpoint.url"));
  EXPECT_TRUE(ValidateEndpoint(endpoint, kInsecure).ok());
}

// --- thread_id --------------------------------------------------------------

TEST(ValidateThreadIdTest, EmptyIsRefused) {
  EXPECT_THAT(ValidateThreadId("", "t"), IsInvalidArgumentFor("t"));
}

TEST(ValidateThreadIdTest, MaxLengthAcceptedOneMoreRefused) {
  EXPECT_TRUE(ValidateThreadId(std::string(kMaxThreadIdBytes, 'a'), "t").ok());
  EXPECT_THAT(ValidateThreadId(std::string(kMaxThreadIdBytes + 1, 'a'), "t"),
              IsInvalidArgumentFor("t"));
}

TEST(ValidateThreadIdTest, ControlCharactersAreRefused) {
  EXPECT_THAT(ValidateThreadId("a\nb", "t"), IsInvalidArgumentFor("t"));
  EXPECT_THAT(ValidateThreadId(std::string("a\0b", 3), "t"),
              IsInvalidArgumentFor("t"));
  EXPECT_THAT(ValidateThreadId("a\x7f", "t"), IsInvalidArgumentFor("t"));
  EXPECT_THAT(ValidateThreadId("a\u0085", "t"), IsInvalidArgumentFor("t"));
}

TEST(ValidateThreadIdTest, AcceptsUuidAndUnicode) {
  EXPECT_TRUE(
      ValidateThreadId("883b1733-d50c-64e7-bg4c-779988001111", "t").ok());
  EXPECT_TRUE(ValidateThreadId("thread \u00e9t\u00e9", "t").ok());
}

// --- name -------------------------------------------------------------------

TEST(ValidateNameTest, EmptyIsRefused) {
  EXPECT_THAT(ValidateName("", "endpoint.name"),
              IsInvalidArgumentFor("endpoint.name"));
}

TEST(ValidateNameTest, CountsCodePointsNotBytes) {
  // U+00E9 is two bytes, U+1F600 four: 200 characters, 400 or 800 bytes.
  std::string two_byte;
  std::string four_byte;
  for (int i = 0; i < kMaxNameChars; ++i) {
    two_byte += "\u00e9";
    four_byte += "\U0001F600";
  }
  EXPECT_TRUE(ValidateName(two_byte, "n").ok());
  EXPECT_TRUE(ValidateName(four_byte, "n").ok());
  EXPECT_THAT(ValidateName(two_byte + "\u00e9", "n"),
              IsInvalidArgumentFor("n"));
  EXPECT_THAT(ValidateName(four_byte + "a", "n"), IsInvalidArgumentFor("n"));
}

TEST(ValidateNameTest, TwoHundredAsciiAcceptedTwoHundredOneRefused) {
  EXPECT_TRUE(ValidateName(std::string(200, 'a'), "n").ok());
  EXPECT_THAT(ValidateName(std::string(201, 'a'), "n"),
              IsInvalidArgumentFor("n"));
}

TEST(ValidateNameTest, InvalidUtf8IsRefused) {
  EXPECT_THAT(ValidateName("bad \xff", "n"), IsInvalidArgumentFor("n"));
  EXPECT_THAT(ValidateName("truncated \xc3", "n"), IsInvalidArgumentFor("n"));
  EXPECT_THAT(ValidateName("overlong \xc0\xaf", "n"),
              IsInvalidArgumentFor("n"));
  EXPECT_THAT(ValidateName("surrogate \xed\xa0\x80", "n"),
              IsInvalidArgumentFor("n"));
  EXPECT_THAT(ValidateName("too big \xf4\x90\x80\x80", "n"),
              IsInvalidArgumentFor("n"));
}

TEST(ValidateNameTest, ControlCharactersAreRefused) {
  EXPECT_THAT(ValidateName("tab\there", "n"), IsInvalidArgumentFor("n"));
  EXPECT_THAT(ValidateName("line\r\nbreak", "n"), IsInvalidArgumentFor("n"));
}

TEST(IsValidUtf8Test, AcceptsWellFormedAndRefusesMalformed) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("ascii \u00e9 \u20ac \U0010FFFF"));
  EXPECT_FALSE(IsValidUtf8("\x80"));
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));
  EXPECT_FALSE(IsValidUtf8("\xf8\x88\x80\x80\x80"));
}

// --- url --------------------------------------------------------------------

TEST(ValidateUrlTest, AcceptsHttps) {
  EXPECT_TRUE(ValidateUrl("https://hooks.slack.com/services/T00000000/"
                          "B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                          kSecure, "u")
                  .ok());
  EXPECT_TRUE(ValidateUrl("https://example.com", kSecure, "u").ok());
  EXPECT_TRUE(ValidateUrl("https://example.com:8443/a?b=c", kSecure, "u").ok());
  EXPECT_TRUE(
      ValidateUrl("https://[2606:4700:4700::1111]/hook", kSecure, "u").ok());
}

TEST(ValidatedUrlTest, ReturnsIdnHostInAsciiForm) {
  absl::StatusOr<std::string> url =
      ValidatedUrl("https://b\u00fccher.example/hook", kSecure, "endpoint.url");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(*url, "https://xn--bcher-kva.example/hook");
  url =
      ValidatedUrl("https://b%C3%BCcher.example/hook", kSecure, "endpoint.url");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(*url, "https://xn--bcher-kva.example/hook");
}

TEST(ValidatedUrlTest, InvalidIdnHostIsRefusedNamingTheField) {
  const absl::StatusOr<std::string> url =
      ValidatedUrl("https://b%C3cher.example/", kSecure, "endpoint.url");
  EXPECT_THAT(url.status(), IsInvalidArgumentFor("endpoint.url"));
  EXPECT_THAT(url.status().message(),
              HasSubstr("not a valid internationalized domain name"));
}

TEST(ValidatedUrlTest, AddressPolicyAppliesToTheDecodedHost) {
  EXPECT_THAT(
      ValidatedUrl("https://127%2E0.0.1/", kSecure, "endpoint.url").status(),
      IsInvalidArgumentFor("endpoint.url"));
}

TEST(ValidateUrlTest, SchemeIsCaseInsensitive) {
  EXPECT_TRUE(ValidateUrl("HTTPS://example.com/", kSecure, "u").ok());
  EXPECT_TRUE(ValidateUrl("HtTp://example.com/", kInsecure, "u").ok());
}

TEST(ValidateUrlTest, HttpRefusedUnlessInsecureAllowed) {
  const absl::Status status =
      ValidateUrl("http://example.com/", kSecure, "endpoint.url");
  EXPECT_THAT(status, IsInvalidArgumentFor("endpoint.url"));
  EXPECT_EQ(status.message(),
            "endpoint.url: must use https; http is allowed only with "
            "--allow_insecure_targets");
  EXPECT_TRUE(ValidateUrl("http://example.com/", kInsecure, "u").ok());
}

TEST(ValidateUrlTest, OtherSchemesRefusedEvenWhenInsecureAllowed) {
  for (const char* url :
       {"ftp://example.com/", "file:///etc/passwd", "gopher://example.com/",
        "ws://example.com/", "mailto:someone@example.com"}) {
    EXPECT_THAT(ValidateUrl(url, kInsecure, "u"), IsInvalidArgumentFor("u"))
        << url;
  }
}

TEST(ValidateUrlTest, EmptyIsRefused) {
  EXPECT_THAT(ValidateUrl("", kSecure, "u"), IsInvalidArgumentFor("u"));
}

TEST(ValidateUrlTest, RelativeUrlIsRefused) {
  for (const char* url : {"/hook", "example.com/hook", "//example.com/hook",
                          "https:example.com/hook"}) {
    EXPECT_THAT(ValidateUrl(url, kSecure, "u"), IsInvalidArgumentFor("u"))
        << url;
  }
}

TEST(ValidateUrlTest, MissingHostIsRefused) {
  for (const char* url :
       {"https://", "https:///path", "https://:443/", "https://?q=1"}) {
    const absl::Status status = ValidateUrl(url, kSecure, "u");
    EXPECT_THAT(status, IsInvalidArgumentFor("u")) << url;
    EXPECT_THAT(status.message(), HasSubstr("host")) << url;
  }
}

TEST(ValidateUrlTest, UserInfoIsRefused) {
  for (const char* url :
       {"https://user:pass@example.com/", "https://user@example.com/",
        "https://@example.com/", "https://a;opt@example.com/"}) {
    const absl::Status status = ValidateUrl(url, kSecure, "u");
    EXPECT_THAT(status, IsInvalidArgumentFor("u")) << url;
    EXPECT_THAT(status.message(), HasSubstr("user-info")) << url;
  }
}

TEST(ValidateUrlTest, FragmentIsRefused) {
  for (const char* url : {"https://example.com/#frag", "https://example.com/#",
                          "https://example.com?q#x"}) {
    const absl::Status status = ValidateUrl(url, kSecure, "u");
    EXPECT_THAT(status, IsInvalidArgumentFor("u")) << url;
    EXPECT_THAT(status.message(), HasSubstr("fragment")) << url;
  }
}

TEST(ValidateUrlTest, WhitespaceAndControlCharactersAreRefused) {
  for (const std::string& url : std::vector<std::string>{
           "https://example.com/a b", " https://example.com/",
           "https://example.com/\t", "https://example.com/\r\nX: y",
           std::string("https://example.com/\0", 21),
           "https://example.com/\x7f"}) {
    EXPECT_THAT(ValidateUrl(url, kSecure, "u"), IsInvalidArgumentFor("u"))
        << url;
  }
}

TEST(ValidateUrlTest, NonAsciiIsRefused) {
  EXPECT_THAT(ValidateUrl("https://example.com/\u00e4", kSecure, "u"),
              IsInvalidArgumentFor("u"));
}

TEST(ValidateUrlTest, LengthLimitIsInBytes) {
  const std::string prefix = "https://example.com/";
  const std::string at_limit =
      prefix + std::string(kMaxUrlBytes - prefix.size(), 'a');
  EXPECT_TRUE(ValidateUrl(at_limit, kSecure, "u").ok());
  EXPECT_THAT(ValidateUrl(at_limit + "a", kSecure, "u"),
              IsInvalidArgumentFor("u"));
}

TEST(ValidateUrlTest, PortMustBeInRange) {
  EXPECT_TRUE(ValidateUrl("https://example.com:1/", kSecure, "u").ok());
  EXPECT_TRUE(ValidateUrl("https://example.com:65535/", kSecure, "u").ok());
  for (const char* url :
       {"https://example.com:0/", "https://example.com:65536/",
        "https://example.com:99999999999/", "https://example.com:-1/",
        "https://example.com:abc/"}) {
    EXPECT_THAT(ValidateUrl(url, kSecure, "u"), IsInvalidArgumentFor("u"))
        << url;
  }
}

TEST(ValidateUrlTest, IpV6ZoneIdIsRefused) {
  EXPECT_THAT(ValidateUrl("https://[fe80::1%25eth0]/", kSecure, "u"),
              IsInvalidArgumentFor("u"));
}

// --- secret -----------------------------------------------------------------

TEST(ValidateSecretTest, OptionalAndLimitedInBytes) {
  EXPECT_TRUE(ValidateSecret("", "s").ok());
  EXPECT_TRUE(ValidateSecret(std::string(kMaxSecretBytes, 'k'), "s").ok());
  EXPECT_THAT(ValidateSecret(std::string(kMaxSecretBytes + 1, 'k'), "s"),
              IsInvalidArgumentFor("s"));
}

TEST(ValidateSecretTest, NulIsRefused) {
  EXPECT_THAT(ValidateSecret(std::string("a\0b", 3), "s"),
              IsInvalidArgumentFor("s"));
}

// --- ids --------------------------------------------------------------------

TEST(ValidateIdTest, IdsOfTheFormatPassAndLongerOnesAreRefused) {
  EXPECT_TRUE(ValidateId("", "id").ok());
  EXPECT_TRUE(ValidateId("dlv_" + std::string(32, 'f'), "id").ok());
  EXPECT_TRUE(ValidateId(std::string(kMaxIdBytes, 'x'), "id").ok());
  EXPECT_THAT(ValidateId(std::string(kMaxIdBytes + 1, 'x'), "endpoint_id"),
              IsInvalidArgumentFor("endpoint_id"));
}

// --- headers ----------------------------------------------------------------

TEST(ValidateHeadersTest, AcceptsDocumentedExamples) {
  webhook::v1::Endpoint endpoint;
  for (const auto& [name, value] :
       {std::pair{"Authorization", "Bearer sk-your-token"},
        std::pair{"X-Source", "gpt-workbench"},
        std::pair{"X-Environment", "production"},
        std::pair{"!#$%&'*+-.^_`|~09azAZ", "tab\tand space ok ~"}}) {
    webhook::v1::Header* header = endpoint.add_headers();
    header->set_name(name);
    header->set_value(value);
  }
  EXPECT_TRUE(ValidateHeaders(endpoint.headers(), "h").ok());
}

TEST(ValidateHeadersTest, AtMostFiftyHeaders) {
  webhook::v1::Endpoint endpoint;
  for (int i = 0; i < kMaxHeaders; ++i) {
    webhook::v1::Header* header = endpoint.add_headers();
    header->set_name(absl::StrCat("X-Custom-", i));
    header->set_value("v");
  }
  EXPECT_TRUE(ValidateHeaders(endpoint.headers(), "endpoint.headers").ok());
  endpoint.add_headers()->set_name("X-One-Too-Many");
  EXPECT_THAT(ValidateHeaders(endpoint.headers(), "endpoint.headers"),
              IsInvalidArgumentFor("endpoint.headers"));
}

TEST(ValidateHeadersTest, NameMustBeToken) {
  for (const char* name :
       {"", "Bad Name", "Bad:Name", "Bad(Name)", "Bad\"", "Bad/Name",
        "B\u00e4d", "Bad\tName", "Bad@", "Bad,Name", "Bad;", "Bad=", "Bad?",
        "Bad[]", "Bad{}", "Bad\\"}) {
    EXPECT_THAT(CheckHeader(name, "v"),
                IsInvalidArgumentFor("endpoint.headers[0].name"))
        << name;
  }
}

TEST(ValidateHeadersTest, NameLengthLimit) {
  EXPECT_TRUE(CheckHeader(std::string(kMaxHeaderNameBytes, 'x'), "v").ok());
  EXPECT_THAT(CheckHeader(std::string(kMaxHeaderNameBytes + 1, 'x'), "v"),
              IsInvalidArgumentFor("endpoint.headers[0].name"));
}

TEST(ValidateHeadersTest, FieldPathNamesTheIndex) {
  webhook::v1::Endpoint endpoint = ValidEndpoint();
  endpoint.add_headers()->set_name("X-Fine");
  webhook::v1::Header* bad = endpoint.add_headers();
  bad->set_name("X-Bad");
  bad->set_value("a\nb");
  EXPECT_THAT(ValidateHeaders(endpoint.headers(), "endpoint.headers"),
              IsInvalidArgumentFor("endpoint.headers[2].value"));
}

TEST(ValidateHeadersTest, ValueMustNotContainCrLfNul) {
  for (const std::string& value : std::vector<std::string>{
           std::string("a\rb"), std::string("a\nb"),
           std::string("a\r\nX-Evil: 1"), std::string("a\0b", 3)}) {
    const absl::Status status = CheckHeader("X-Test", value);
    EXPECT_THAT(status, IsInvalidArgumentFor("endpoint.headers[0].value"));
    EXPECT_THAT(status.message(), HasSubstr("CR, LF or NUL"));
  }
}

TEST(ValidateHeadersTest, ValueMustNotContainOtherControlCharacters) {
  for (const char* value : {"a\x01", "a\x1b[0m", "a\x7f"}) {
    EXPECT_THAT(CheckHeader("X-Test", value),
                IsInvalidArgumentFor("endpoint.headers[0].value"));
  }
  EXPECT_TRUE(CheckHeader("X-Test", "a\tb").ok());
}

TEST(ValidateHeadersTest, ValueMustBeAscii) {
  EXPECT_THAT(CheckHeader("X-Test", "Z\u00fcrich"),
              IsInvalidArgumentFor("endpoint.headers[0].value"));
}

TEST(ValidateHeadersTest, ValueLengthLimit) {
  EXPECT_TRUE(
      CheckHeader("X-Test", std::string(kMaxHeaderValueBytes, 'v')).ok());
  EXPECT_THAT(CheckHeader("X-Test", std::string(kMaxHeaderValueBytes + 1, 'v')),
              IsInvalidArgumentFor("endpoint.headers[0].value"));
}

TEST(ValidateHeadersTest, EmptyValueIsAccepted) {
  EXPECT_TRUE(CheckHeader("X-Empty", "").ok());
}

TEST(ValidateHeadersTest, DuplicateNamesRefusedCaseInsensitively) {
  webhook::v1::Endpoint endpoint;
  endpoint.add_headers()->set_name("X-Source");
  endpoint.add_headers()->set_name("X-Other");
  endpoint.add_headers()->set_name("x-SOURCE");
  const absl::Status status =
      ValidateHeaders(endpoint.headers(), "endpoint.headers");
  EXPECT_THAT(status, IsInvalidArgumentFor("endpoint.headers[2].name"));
  EXPECT_THAT(status.message(), HasSubstr("endpoint.headers[0].name"));
}

TEST(ValidateHeadersTest, ReservedNamesRefusedInAnyCase) {
  for (const std::string& name :
       std::vector<std::string>{"Host",
                                "Content-Length",
                                "Content-Type",
                                "Transfer-Encoding",
                                "Connection",
                                "Keep-Alive",
                                "TE",
                                "Trailer",
                                "Upgrade",
                                "Expect",
                                "Proxy-Authorization",
                                "Proxy-Connection",
                                "User-Agent",
                                "X-Hub-Signature-256",
                                "X-Hub-Signature",
                                "X-Webhook-Id",
                                "X-Webhook-Event",
                                "X-Webhook-Attempt",
                                "X-Webhook-Foo",
                                "Content-Encoding",
                                "Content-Language",
                                "Content-MD5",
                                "Content-Range",
                                "Content-Disposition"}) {
    for (const std::string& variant : std::vector<std::string>{
             name, absl::AsciiStrToLower(name), absl::AsciiStrToUpper(name)}) {
      EXPECT_TRUE(IsReservedHeader(variant)) << variant;
      EXPECT_THAT(CheckHeader(variant, "v"),
                  IsInvalidArgumentFor("endpoint.headers[0].name"))
          << variant;
    }
  }
}

TEST(ValidateHeadersTest, SimilarButUnreservedNamesAccepted) {
  for (const char* name :
       {"Authorization", "X-Webhook", "X-Webhooks-Id", "Proxy", "Hosts", "TE2",
        "X-Hub", "Content", "X-Content-Type-Options"}) {
    EXPECT_FALSE(IsReservedHeader(name)) << name;
    EXPECT_TRUE(CheckHeader(name, "v").ok()) << name;
  }
}

// --- masked header values ---------------------------------------------------

using Headers = google::protobuf::RepeatedPtrField<webhook::v1::Header>;

Headers MakeHeaders(
    const std::vector<std::pair<std::string, std::string>>& pairs) {
  Headers headers;
  for (const auto& [name, value] : pairs) {
    webhook::v1::Header* header = headers.Add();
    header->set_name(name);
    header->set_value(value);
  }
  return headers;
}

TEST(IsSensitiveHeaderTest, MatchesDocumentedNamesInAnyCase) {
  for (const char* name :
       {"Authorization", "AUTHORIZATION", "proxy-authorization", "X-Api-Key",
        "x-auth-token", "X-Client-SECRET", "Keycloak"}) {
    EXPECT_TRUE(IsSensitiveHeader(name)) << name;
  }
  for (const char* name :
       {"X-Plain", "X-Authorization-Mode", "Authorisation", "X-Source"}) {
    EXPECT_FALSE(IsSensitiveHeader(name)) << name;
  }
}

TEST(RestoreMaskedHeadersTest, KeepsStoredValueMatchedCaseInsensitively) {
  const Headers stored =
      MakeHeaders({{"Authorization", "Bearer real"}, {"X-Plain", "a"}});
  const absl::StatusOr<Headers> restored = RestoreMaskedHeaders(
      MakeHeaders({{"X-Plain", "b"}, {"authorization", kMaskedHeaderValue}}),
      stored, "endpoint.headers");
  ASSERT_TRUE(restored.ok()) << restored.status();
  ASSERT_EQ(restored->size(), 2);
  EXPECT_EQ(restored->Get(0).value(), "b");
  EXPECT_EQ(restored->Get(1).name(), "authorization");
  EXPECT_EQ(restored->Get(1).value(), "Bearer real");
}

TEST(RestoreMaskedHeadersTest, NewValuesAndNonSensitivePlaceholdersKept) {
  const Headers stored =
      MakeHeaders({{"Authorization", "Bearer real"}, {"X-Plain", "a"}});
  const Headers submitted = MakeHeaders(
      {{"Authorization", "Bearer new"}, {"X-Plain", kMaskedHeaderValue}});
  const absl::StatusOr<Headers> restored =
      RestoreMaskedHeaders(submitted, stored, "endpoint.headers");
  ASSERT_TRUE(restored.ok()) << restored.status();
  ASSERT_EQ(restored->size(), 2);
  EXPECT_EQ(restored->Get(0).value(), "Bearer new");
  EXPECT_EQ(restored->Get(1).value(), kMaskedHeaderValue);
}

TEST(RestoreMaskedHeadersTest, PlaceholderWithoutStoredHeaderIsRefused) {
  const Headers submitted = MakeHeaders({{"X-Plain", "a"},
                                         {"Authorization", "Bearer x"},
                                         {"X-Api-Key", kMaskedHeaderValue}});
  for (const Headers& stored :
       {Headers(), MakeHeaders({{"Authorization", "Bearer real"}})}) {
    const absl::StatusOr<Headers> restored =
        RestoreMaskedHeaders(submitted, stored, "endpoint.headers");
    EXPECT_THAT(restored.status(),
                IsInvalidArgumentFor("endpoint.headers[2].value"));
    EXPECT_THAT(restored.status().message(), HasSubstr("\"X-Api-Key\""));
  }
}

}  // namespace
}  // namespace webhookd
