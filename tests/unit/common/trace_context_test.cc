#include "server/common/trace_context.h"

#include <string>

#include "absl/container/flat_hash_set.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace webhookd {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

constexpr char kValid[] =
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(ParseTraceparentTest, ReadsTheFieldsOfVersion00) {
  absl::StatusOr<Traceparent> parsed = ParseTraceparent(kValid);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->version, "00");
  EXPECT_EQ(parsed->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(parsed->parent_id, "00f067aa0ba902b7");
  EXPECT_EQ(parsed->flags, "01");
  EXPECT_EQ(parsed->ToString(), kValid);
}

TEST(ParseTraceparentTest, RefusesMalformedValuesNamingTheHeader) {
  for (const std::string bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
           "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
       }) {
    absl::StatusOr<Traceparent> parsed = ParseTraceparent(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(parsed.status())) << bad;
    EXPECT_THAT(parsed.status().message(), HasSubstr("traceparent")) << bad;
  }
}

TEST(ParseTraceparentTest, AcceptsLaterVersionsWithMoreFields) {
  absl::StatusOr<Traceparent> parsed = ParseTraceparent(
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  // Passed on in the version we know.
  EXPECT_EQ(parsed->ToString(), kValid);
}

TEST(ChildTraceparentTest, KeepsTraceIdAndFlagsWithANewSpanId) {
  absl::flat_hash_set<std::string> spans;
  for (int i = 0; i < 100; ++i) {
    const std::string child = ChildTraceparent(kValid);
    EXPECT_THAT(child, MatchesRegex("00-4bf92f3577b34da6a3ce929d0e0e4736-"
                                    "[0-9a-f]{16}-01"));
    EXPECT_NE(SpanIdOf(child), "00f067aa0ba902b7");
    spans.insert(std::string(SpanIdOf(child)));
  }
  EXPECT_EQ(spans.size(), 100u);
}

TEST(ChildTraceparentTest, EmptyWithoutAValidParent) {
  EXPECT_EQ(ChildTraceparent(""), "");
  EXPECT_EQ(ChildTraceparent("garbage"), "");
}

TEST(NewTraceContextTest, IsValidSampledAndFresh) {
  const TraceContext first = NewTraceContext();
  const TraceContext second = NewTraceContext();
  ASSERT_TRUE(ParseTraceparent(first.traceparent).ok()) << first.traceparent;
  EXPECT_THAT(first.traceparent,
              MatchesRegex("00-[0-9a-f]{32}-[0-9a-f]{16}-01"));
  EXPECT_NE(TraceIdOf(first.traceparent), TraceIdOf(second.traceparent));
  EXPECT_TRUE(first.tracestate.empty());
}

TEST(TraceIdOfTest, SplitsAValidValue) {
  EXPECT_EQ(TraceIdOf(kValid), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(SpanIdOf(kValid), "00f067aa0ba902b7");
  EXPECT_EQ(TraceIdOf(""), "");
}

TEST(ValidTracestateTest, AcceptsVisibleAsciiUpTo512) {
  EXPECT_TRUE(ValidTracestate("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
  EXPECT_TRUE(ValidTracestate(std::string(512, 'a')));
  EXPECT_FALSE(ValidTracestate(std::string(513, 'a')));
  EXPECT_FALSE(ValidTracestate("a=b\r\nX-Injected: 1"));
}

TEST(ReadTraceContextTest, KeepsAValidTraceparentAndJoinsTracestates) {
  std::string ignored = "stale";
  const std::string_view parents[] = {kValid};
  const std::string_view states[] = {"congo=t61rcWkgMzE", "rojo=1"};
  const TraceContext trace = ReadTraceContext(parents, states, &ignored);
  EXPECT_EQ(trace.traceparent, kValid);
  EXPECT_EQ(trace.tracestate, "congo=t61rcWkgMzE,rojo=1");
  EXPECT_EQ(ignored, "");
}

TEST(ReadTraceContextTest, NothingGivenIsNothingIgnored) {
  std::string ignored;
  EXPECT_TRUE(ReadTraceContext({}, {}, &ignored).empty());
  EXPECT_EQ(ignored, "");
}

TEST(ReadTraceContextTest, IgnoresAMalformedTraceparentAndItsTracestate) {
  std::string ignored;
  const std::string_view parents[] = {"00-abc-def-01"};
  const std::string_view states[] = {"congo=1"};
  const TraceContext trace = ReadTraceContext(parents, states, &ignored);
  EXPECT_TRUE(trace.empty());
  EXPECT_TRUE(trace.tracestate.empty());
  EXPECT_THAT(ignored, HasSubstr("traceparent"));
}

TEST(ReadTraceContextTest, IgnoresARepeatedTraceparent) {
  std::string ignored;
  const std::string_view parents[] = {kValid, kValid};
  EXPECT_TRUE(ReadTraceContext(parents, {}, &ignored).empty());
  EXPECT_THAT(ignored, HasSubstr("traceparent: given 2 times"));
}

TEST(ReadTraceContextTest, DropsABadTracestateButKeepsTheTraceparent) {
  std::string ignored;
  const std::string big(600, 'a');
  const std::string_view parents[] = {kValid};
  const std::string_view states[] = {big};
  const TraceContext trace = ReadTraceContext(parents, states, &ignored);
  EXPECT_EQ(trace.traceparent, kValid);
  EXPECT_TRUE(trace.tracestate.empty());
  EXPECT_THAT(ignored, HasSubstr("tracestate"));
}

TEST(ReadTraceContextTest, NormalisesALaterVersionToVersion00) {
  const std::string_view parents[] = {
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"};
  EXPECT_EQ(ReadTraceContext(parents, {}, nullptr).traceparent, kValid);
}

}  // namespace
}  // namespace webhookd
