#include "server/console/console_assets.h"

#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace webhookd {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string Bytes(const std::optional<ConsoleAsset>& asset) {
  return asset.has_value() ? std::string(asset->bytes) : "";
}

TEST(ConsoleAssetsTest, EmptyPathIsTheIndexPage) {
  const std::optional<ConsoleAsset> root = FindConsoleAsset("");
  ASSERT_TRUE(root.has_value());
  EXPECT_EQ(root->content_type, "text/html; charset=utf-8");
  EXPECT_THAT(Bytes(root), StartsWith("<!doctype html>"));
  EXPECT_EQ(Bytes(root), Bytes(FindConsoleAsset("index.html")));
}

TEST(ConsoleAssetsTest, ScriptAndStyleHaveTheirContentTypes) {
  for (const char* module : {"console.js", "api.js", "charts.js", "ui.js"}) {
    const std::optional<ConsoleAsset> script = FindConsoleAsset(module);
    ASSERT_TRUE(script.has_value()) << module;
    EXPECT_EQ(script->content_type, "text/javascript; charset=utf-8");
  }
  EXPECT_THAT(Bytes(FindConsoleAsset("api.js")),
              HasSubstr("/v1/deliveries:stream"));
  const std::optional<ConsoleAsset> style = FindConsoleAsset("console.css");
  ASSERT_TRUE(style.has_value());
  EXPECT_EQ(style->content_type, "text/css; charset=utf-8");
}

TEST(ConsoleAssetsTest, TheFilesAreEmbeddedWhole) {
  // The last bytes of each file: nothing cut off by the generator.
  EXPECT_THAT(Bytes(FindConsoleAsset("index.html")), HasSubstr("</html>\n"));
  EXPECT_THAT(Bytes(FindConsoleAsset("console.js")),
              ::testing::EndsWith("openThread();\n"));
}

TEST(ConsoleAssetsTest, IndexPageLoadsNoInlineOrForeignScript) {
  const std::string page = Bytes(FindConsoleAsset("index.html"));
  EXPECT_THAT(page, HasSubstr("<script type=\"module\" src=\"console.js\">"
                              "</script>"));
  EXPECT_EQ(page.find("<script>"), std::string::npos);
  for (const char* foreign :
       {"src=\"http", "href=\"http", "src=\"//", "href=\"//", "onclick="}) {
    EXPECT_EQ(page.find(foreign), std::string::npos) << foreign;
  }
}

TEST(ConsoleAssetsTest, UnknownPathsAreNotFound) {
  for (const char* path :
       {"missing.js", "../console.js", "/console.js", "sub/index.html",
        "console.js?x=1", "index.html/", "INDEX.HTML", "."}) {
    EXPECT_FALSE(FindConsoleAsset(path).has_value()) << path;
  }
}

}  // namespace
}  // namespace webhookd
