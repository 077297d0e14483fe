#include "server/delivery/event_types.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/limits.h"

namespace webhookd {
namespace {

// An InvalidArgument whose message starts with "<field>: ".
MATCHER_P(IsInvalidArgumentFor, field,
          absl::StrCat("is InvalidArgument naming ", field)) {
  return arg.code() == absl::StatusCode::kInvalidArgument &&
         absl::StartsWith(arg.message(), absl::StrCat(field, ": "));
}

EventTypeFilters Filters(const std::vector<std::string>& entries) {
  EventTypeFilters filters;
  for (const std::string& entry : entries) filters.Add(std::string(entry));
  return filters;
}

TEST(ValidateEventTypeTest, AcceptsDottedSegments) {
  for (const std::string& type : std::vector<std::string>{
           "execution.completed", "a", "A-b_c.0.x-y", "webhook.test",
           std::string(kMaxEventTypeBytes, 'e')}) {
    EXPECT_TRUE(ValidateEventType(type, "event_type").ok()) << type;
  }
}

TEST(ValidateEventTypeTest, RefusesOtherSyntaxNamingTheField) {
  for (const std::string& type : std::vector<std::string>{
           "", ".a", "a.", "a..b", "a b", "a.*", "*", "a/b", "caf\xc3\xa9",
           "a\r\nX-Injected: 1", std::string(kMaxEventTypeBytes + 1, 'e')}) {
    EXPECT_THAT(ValidateEventType(type, "event_type"),
                IsInvalidArgumentFor("event_type"))
        << type;
  }
}

TEST(ValidateEventTypeFiltersTest, AcceptsTypesPrefixWildcardsAndStar) {
  EXPECT_TRUE(
      ValidateEventTypeFilters(Filters({}), "endpoint.event_types").ok());
  EXPECT_TRUE(
      ValidateEventTypeFilters(Filters({"execution.completed", "execution.*",
                                        "*", "report.generated.v2"}),
                               "endpoint.event_types")
          .ok());
}

TEST(ValidateEventTypeFiltersTest, NamesTheOffendingEntry) {
  for (const std::string& bad : std::vector<std::string>{
           "", "exec*", "*.completed", "execution.*.x", "a.**", ".*", "a..*",
           "a b", std::string(kMaxEventTypeBytes + 1, 'e')}) {
    EXPECT_THAT(ValidateEventTypeFilters(Filters({"ok.type", bad}),
                                         "endpoint.event_types"),
                IsInvalidArgumentFor("endpoint.event_types[1]"))
        << bad;
  }
}

TEST(ValidateEventTypeFiltersTest, RefusesDuplicates) {
  const absl::Status status = ValidateEventTypeFilters(
      Filters({"a.b", "a.*", "a.b"}), "endpoint.event_types");
  EXPECT_THAT(status, IsInvalidArgumentFor("endpoint.event_types[2]"));
  EXPECT_THAT(std::string(status.message()),
              ::testing::HasSubstr("listed twice"));
}

TEST(ValidateEventTypeFiltersTest, RefusesMoreThanTheLimit) {
  std::vector<std::string> entries;
  for (int i = 0; i <= kMaxEventTypeFilters; ++i) {
    entries.push_back(absl::StrCat("type", i));
  }
  EXPECT_THAT(
      ValidateEventTypeFilters(Filters(entries), "endpoint.event_types"),
      IsInvalidArgumentFor("endpoint.event_types"));
  entries.pop_back();
  EXPECT_TRUE(
      ValidateEventTypeFilters(Filters(entries), "endpoint.event_types").ok());
}

TEST(EventTypeMatchesTest, ExactTypeMatchesOnlyItself) {
  EXPECT_TRUE(EventTypeMatches("execution.completed", "execution.completed"));
  EXPECT_FALSE(EventTypeMatches("execution.completed", "execution.failed"));
  EXPECT_FALSE(EventTypeMatches("execution", "execution.completed"));
  EXPECT_FALSE(EventTypeMatches("execution.completed", "execution"));
}

TEST(EventTypeMatchesTest, PrefixWildcardMatchesOneOrMoreFurtherSegments) {
  EXPECT_TRUE(EventTypeMatches("execution.*", "execution.completed"));
  EXPECT_TRUE(EventTypeMatches("execution.*", "execution.failed.timeout"));
  EXPECT_FALSE(EventTypeMatches("execution.*", "execution"));
  EXPECT_FALSE(EventTypeMatches("execution.*", "executions.completed"));
  EXPECT_FALSE(EventTypeMatches("execution.*", "report.execution.completed"));
}

TEST(EventTypeMatchesTest, StarMatchesEverything) {
  EXPECT_TRUE(EventTypeMatches("*", "execution.completed"));
  EXPECT_TRUE(EventTypeMatches("*", "a"));
}

TEST(EventTypeAdmittedTest, EmptyFiltersAdmitEverything) {
  EXPECT_TRUE(EventTypeAdmitted(Filters({}), "execution.completed"));
  EXPECT_TRUE(EventTypeAdmitted(Filters({}), "anything.else"));
}

TEST(EventTypeAdmittedTest, AnyMatchingEntryAdmits) {
  const EventTypeFilters filters = Filters({"report.generated", "billing.*"});
  EXPECT_TRUE(EventTypeAdmitted(filters, "report.generated"));
  EXPECT_TRUE(EventTypeAdmitted(filters, "billing.invoice.paid"));
  EXPECT_FALSE(EventTypeAdmitted(filters, "execution.completed"));
}

}  // namespace
}  // namespace webhookd
