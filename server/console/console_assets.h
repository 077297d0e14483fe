// The web console's static files (index.html, console.css, console.js),
// compiled into the binary by embed_assets.sh, so that webhookd stays one
// file to deploy. The files hold no data: every data call of the page goes
// through the HTTP/JSON API with the user's API key.

#ifndef WEBHOOKD_SERVER_CONSOLE_CONSOLE_ASSETS_H_
#define WEBHOOKD_SERVER_CONSOLE_CONSOLE_ASSETS_H_

#include <cstddef>
#include <optional>

#include "absl/strings/string_view.h"

namespace webhookd {

// Where the console is served; "/" redirects here.
inline constexpr char kConsolePath[] = "/console/";

struct ConsoleAsset {
  // E.g. "text/html; charset=utf-8".
  absl::string_view content_type;
  absl::string_view bytes;
};

// The file served at `path` below kConsolePath: "" is index.html,
// "console.js" itself. nullopt for anything else (subfolders, "..", a
// query string are never files).
std::optional<ConsoleAsset> FindConsoleAsset(absl::string_view path);

// One embedded file, as embed_assets.sh writes it.
struct EmbeddedFile {
  const char* name;
  const unsigned char* data;
  size_t size;
};
// Defined by the generated source.
extern const EmbeddedFile kEmbeddedConsoleFiles[];
extern const size_t kEmbeddedConsoleFileCount;

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_CONSOLE_CONSOLE_ASSETS_H_
