#include "server/console/console_assets.h"

#include "absl/strings/match.h"

namespace webhookd {
namespace {

// By extension; only the kinds the console ships.
absl::string_view ContentTypeOf(absl::string_view name) {
  struct Kind {
    const char* extension;
    const char* content_type;
  };
  static constexpr Kind kKinds[] = {
      {".html", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
  };
  for (const Kind& kind : kKinds) {
    if (absl::EndsWith(name, kind.extension)) return kind.content_type;
  }
  return "application/octet-stream";
}

}  // namespace

std::optional<ConsoleAsset> FindConsoleAsset(absl::string_view path) {
  const absl::string_view name = path.empty() ? "index.html" : path;
  for (size_t i = 0; i < kEmbeddedConsoleFileCount; ++i) {
    const EmbeddedFile& file = kEmbeddedConsoleFiles[i];
    if (name == file.name) {
      return ConsoleAsset{
          ContentTypeOf(name),
          absl::string_view(reinterpret_cast<const char*>(file.data),
                            file.size)};
    }
  }
  return std::nullopt;
}

}  // namespace webhookd
