// PathTemplate: the google.api.http path syntax, parsed and matched.

#include "server/rest/path_template.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace webhookd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

PathTemplate Parsed(std::string_view text) {
  absl::StatusOr<PathTemplate> parsed = PathTemplate::Parse(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return *std::move(parsed);
}

TEST(PathTemplateTest, LiteralPathMatchesItselfOnly) {
  PathTemplate path = Parsed("/v1/endpoints");
  EXPECT_TRUE(path.Match("/v1/endpoints").has_value());
  EXPECT_THAT(*path.Match("/v1/endpoints"), ::testing::IsEmpty());
  EXPECT_FALSE(path.Match("/v1/endpoints/").has_value());
  EXPECT_FALSE(path.Match("/v1/endpoint").has_value());
  EXPECT_FALSE(path.Match("/v1").has_value());
  EXPECT_FALSE(path.Match("v1/endpoints").has_value());
}

TEST(PathTemplateTest, VariableBindsOneDecodedSegment) {
  PathTemplate path = Parsed("/v1/endpoints/{id}");
  EXPECT_THAT(path.FieldPaths(), ElementsAre("id"));
  EXPECT_THAT(*path.Match("/v1/endpoints/ep_1"),
              ElementsAre(Pair("id", "ep_1")));
  EXPECT_THAT(*path.Match("/v1/endpoints/a%20b%2Fc"),
              ElementsAre(Pair("id", "a b/c")));
  EXPECT_FALSE(path.Match("/v1/endpoints/").has_value()) << "empty segment";
  EXPECT_FALSE(path.Match("/v1/endpoints/a/b").has_value());
}

TEST(PathTemplateTest, NestedFieldPathAndSuffixSegment) {
  PathTemplate path = Parsed("/v1/endpoints/{endpoint.id}/stats");
  EXPECT_THAT(*path.Match("/v1/endpoints/ep_1/stats"),
              ElementsAre(Pair("endpoint.id", "ep_1")));
  EXPECT_FALSE(path.Match("/v1/endpoints/ep_1").has_value());
}

TEST(PathTemplateTest, VerbMustEndThePath) {
  PathTemplate path = Parsed("/v1/endpoints/{id}:enable");
  EXPECT_EQ(path.verb(), "enable");
  EXPECT_THAT(*path.Match("/v1/endpoints/ep_1:enable"),
              ElementsAre(Pair("id", "ep_1")));
  EXPECT_FALSE(path.Match("/v1/endpoints/ep_1").has_value());
  EXPECT_FALSE(path.Match("/v1/endpoints/ep_1:disable").has_value());
  EXPECT_FALSE(path.Match("/v1/endpoints/:enable").has_value());
  PathTemplate collection = Parsed("/v1/deliveries:stream");
  EXPECT_TRUE(collection.Match("/v1/deliveries:stream").has_value());
  EXPECT_FALSE(collection.Match("/v1/deliveries").has_value());
}

TEST(PathTemplateTest, WildcardsAndMultiSegmentVariables) {
  PathTemplate path = Parsed("/v1/{name=things/*}/*");
  EXPECT_THAT(*path.Match("/v1/things/a/x"),
              ElementsAre(Pair("name", "things/a")));
  EXPECT_FALSE(path.Match("/v1/other/a/x").has_value());
  PathTemplate rest = Parsed("/files/{path=**}");
  EXPECT_THAT(*rest.Match("/files/a/b%2Fc/d"),
              ElementsAre(Pair("path", "a/b%2Fc/d")))
      << "%2F stays encoded in a multi-segment variable";
}

TEST(PathTemplateTest, MalformedTemplatesAreRefusedSayingWhy) {
  for (const auto& [text, why] :
       std::vector<std::pair<std::string, std::string>>{
           {"v1/endpoints", "must start with"},
           {"/v1/{id", "without"},
           {"/v1/{1id}", "bad field path"},
           {"/v1/{id}/{id}", "more than once"},
           {"/v1//x", "empty segment"},
           {"/v1/**/x", "last segment"},
           {"/v1/x:", "bad verb"},
           {"/v1/a*b", "bad literal"}}) {
    absl::StatusOr<PathTemplate> parsed = PathTemplate::Parse(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(parsed.status().message(), HasSubstr(why)) << text;
  }
}

}  // namespace
}  // namespace webhookd
