// Opaque page tokens: where a listing stopped (a store's cursor, which may
// name records the caller cannot see), sealed with AES-256-GCM and bound to
// the listing it belongs to (who lists, and with which filter), so that a
// token reveals nothing and a forged, altered or borrowed one is refused.

#ifndef WEBHOOKD_SERVER_SECURITY_PAGE_TOKENS_H_
#define WEBHOOKD_SERVER_SECURITY_PAGE_TOKENS_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace webhookd {

// Immutable, so safe for concurrent use.
class PageTokens {
 public:
  static constexpr size_t kKeyBytes = 32;

  // Tokens sealed under `key` (kKeyBytes): nodes that share it accept each
  // other's tokens.
  explicit PageTokens(std::string key);
  // A new random key.
  static std::string NewKey();

  // The token of `cursor` for `listing`; empty for an empty cursor (the
  // last page).
  std::string Seal(std::string_view cursor, std::string_view listing) const;
  // The cursor of a token Seal made for the same `listing`; empty for an
  // empty token. InvalidArgument naming "page_token" otherwise.
  absl::StatusOr<std::string> Open(std::string_view token,
                                   std::string_view listing) const;

 private:
  std::string key_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_SECURITY_PAGE_TOKENS_H_
