#include "server/security/page_tokens.h"

#include <openssl/rand.h>

#include <cstdlib>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/common/string_view.h"
#include "server/security/secrets_keyring.h"

namespace webhookd {
namespace {

// Keeps page tokens apart from any other use of the same key.
std::string AssociatedData(std::string_view listing) {
  return absl::StrCat("webhookd page token:", AsAbsl(listing));
}

}  // namespace

PageTokens::PageTokens(std::string key) : key_(std::move(key)) {}

std::string PageTokens::NewKey() {
  std::string key(kKeyBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()),
                 static_cast<int>(key.size())) != 1) {
    std::abort();
  }
  return key;
}

std::string PageTokens::Seal(std::string_view cursor,
                             std::string_view listing) const {
  if (cursor.empty()) return std::string();
  return absl::WebSafeBase64Escape(
      Aes256GcmSeal(key_, cursor, AssociatedData(listing)));
}

absl::StatusOr<std::string> PageTokens::Open(std::string_view token,
                                             std::string_view listing) const {
  if (token.empty()) return std::string();
  std::string sealed;
  std::optional<std::string> cursor;
  if (absl::WebSafeBase64Unescape(AsAbsl(token), &sealed)) {
    cursor = Aes256GcmOpen(key_, sealed, AssociatedData(listing));
  }
  if (!cursor.has_value() || cursor->empty()) {
    return absl::InvalidArgumentError(
        "page_token: not a next_page_token of this listing (a token is valid "
        "only for the caller and the filter it was given with, and until "
        "the secrets key changes)");
  }
  return *std::move(cursor);
}

}  // namespace webhookd
