#include "server/common/logging.h"

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/log_capture.h"

namespace webhookd {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::LogCapture;
using ::testing::Not;

constexpr std::string_view kTime = "2026-12-02T00:00:00.000Z";

TEST(FormatLogLineTest, TextRendersFieldsAsKeyValue) {
  EXPECT_EQ(FormatLogLine(LogFormat::kText, kTime, LogLevel::kWarning,
                          "delivery failed",
                          {{"delivery_id", "dlv_1"}, {"attempt", 4}}),
            "2026-12-02T00:00:00.000Z W delivery failed delivery_id=dlv_1 "
            "attempt=4\n");
}

TEST(FormatLogLineTest, TextQuotesValuesWithSpacesQuotesOrNewlines) {
  EXPECT_EQ(FormatLogLine(LogFormat::kText, kTime, LogLevel::kDebug, "m",
                          {{"error", "HTTP 500\nx=\"y\""}, {"empty", ""}}),
            "2026-12-02T00:00:00.000Z D m error=\"HTTP 500\\nx=\\\"y\\\"\" "
            "empty=\"\"\n");
}

TEST(FormatLogLineTest, TextMessageStaysOnOneLine) {
  EXPECT_EQ(FormatLogLine(LogFormat::kText, kTime, LogLevel::kError,
                          "two\nlines", {}),
            "2026-12-02T00:00:00.000Z E two\\nlines\n");
}

TEST(FormatLogLineTest, JsonHasTimeLevelMessageAndTypedFields) {
  const std::string line =
      FormatLogLine(LogFormat::kJson, kTime, LogLevel::kInfo, "started",
                    {{"listen", "127.0.0.1:0"}, {"port", 4711}});
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line,
            "{\"time\":\"2026-12-02T00:00:00.000Z\",\"level\":\"info\","
            "\"msg\":\"started\",\"listen\":\"127.0.0.1:0\",\"port\":4711}\n");
}

TEST(FormatLogLineTest, JsonReplacesInvalidUtf8) {
  const std::string line = FormatLogLine(LogFormat::kJson, kTime,
                                         LogLevel::kInfo, "m", {{"e", "\xff"}});
  const nlohmann::json parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed["e"], "\xEF\xBF\xBD");
}

TEST(ParseLogLevelTest, AcceptsTheFourLevels) {
  EXPECT_EQ(*ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("info"), LogLevel::kInfo);
  EXPECT_EQ(*ParseLogLevel("WARNING"), LogLevel::kWarning);
  EXPECT_EQ(*ParseLogLevel("error"), LogLevel::kError);
}

TEST(ParseLogLevelTest, RefusesOthersNamingTheFlag) {
  const absl::StatusOr<LogLevel> level = ParseLogLevel("verbose");
  EXPECT_TRUE(absl::IsInvalidArgument(level.status()));
  EXPECT_THAT(level.status().message(), HasSubstr("--log_level"));
  EXPECT_THAT(ParseLogFormat("xml").status().message(),
              HasSubstr("--log_format"));
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
}

TEST(LogTest, DropsEntriesBelowTheLevel) {
  LogCapture capture(LogLevel::kWarning);
  EXPECT_FALSE(LogEnabled(LogLevel::kInfo));
  Log(LogLevel::kInfo, "hidden");
  Log(LogLevel::kDebug, "hidden too", {{"k", 1}});
  EXPECT_THAT(capture.Text(), IsEmpty());
  Log(LogLevel::kWarning, "shown");
  Log(LogLevel::kError, "shown too");
  EXPECT_THAT(capture.Text(), HasSubstr(" W shown\n"));
  EXPECT_THAT(capture.Text(), HasSubstr(" E shown too\n"));
  EXPECT_THAT(capture.Text(), Not(HasSubstr("hidden")));
}

TEST(LogTest, DebugIsOffByDefault) {
  EXPECT_FALSE(LogEnabled(LogLevel::kDebug));
  EXPECT_TRUE(LogEnabled(LogLevel::kInfo));
}

TEST(LogTest, WritesJsonWhenAsked) {
  LogCapture capture(LogLevel::kInfo, LogFormat::kJson);
  Log(LogLevel::kInfo, "hello", {{"n", 3}});
  const nlohmann::json parsed = nlohmann::json::parse(capture.Text());
  EXPECT_EQ(parsed["level"], "info");
  EXPECT_EQ(parsed["msg"], "hello");
  EXPECT_EQ(parsed["n"], 3);
}

// Each thread formats the second of a line once and reuses it: the time a
// line shows is still the clock's, to the millisecond.
TEST(LogTest, LinesCarryTheCurrentTimeInMilliseconds) {
  LogCapture capture(LogLevel::kInfo, LogFormat::kJson);
  std::vector<std::pair<absl::Time, absl::Time>> bounds;
  for (int i = 0; i < 50; ++i) {
    const absl::Time before = absl::Now();
    Log(LogLevel::kInfo, "tick", {{"i", i}});
    bounds.emplace_back(absl::FromUnixMillis(absl::ToUnixMillis(before)),
                        absl::Now());
  }
  const std::vector<std::string> lines =
      absl::StrSplit(capture.Text(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), bounds.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    const nlohmann::json parsed = nlohmann::json::parse(lines[i]);
    const std::string text = parsed["time"];
    ASSERT_THAT(text, ::testing::MatchesRegex(
                          "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
                          "[0-9]{2}[.][0-9]{3}Z"));
    absl::Time time;
    std::string error;
    ASSERT_TRUE(absl::ParseTime("%Y-%m-%dT%H:%M:%E3SZ", text,
                                absl::UTCTimeZone(), &time, &error))
        << text << ": " << error;
    EXPECT_GE(time, bounds[i].first) << text;
    EXPECT_LE(time, bounds[i].second) << text;
  }
}

// Fields borrow the text of lvalues and keep temporaries: a vector of fields
// built from strings that are gone by the time it is logged still logs them.
TEST(LogTest, FieldsKeepTemporaryStrings) {
  LogCapture capture(LogLevel::kInfo);
  std::vector<LogField> fields;
  const std::string kept = "kept";
  fields.emplace_back("borrowed", kept);
  fields.emplace_back("owned", absl::StrCat("tempo", "rary"));
  fields.emplace_back("literal", "word");
  Log(LogLevel::kInfo, "fields", fields);
  EXPECT_THAT(
      capture.Text(),
      HasSubstr(" I fields borrowed=kept owned=temporary literal=word\n"));
}

TEST(LogTest, LinesOfConcurrentThreadsNeverInterleave) {
  LogCapture capture(LogLevel::kInfo, LogFormat::kJson);
  constexpr int kThreads = 8;
  constexpr int kLines = 500;
  // Long lines, so that a line written in pieces would show.
  const std::string filler(3000, 'x');
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &filler] {
      for (int i = 0; i < kLines; ++i) {
        Log(LogLevel::kInfo, filler, {{"thread", t}, {"line", i}});
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const std::string text = capture.Text();
  std::vector<absl::string_view> lines =
      absl::StrSplit(text, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), size_t{kThreads * kLines});
  std::vector<int> next(kThreads, 0);
  for (absl::string_view line : lines) {
    const nlohmann::json parsed = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << line.substr(0, 100);
    ASSERT_EQ(parsed["msg"], filler);
    const int thread = parsed["thread"];
    EXPECT_EQ(parsed["line"], next[thread]++);
  }
}

}  // namespace
}  // namespace webhookd
