#include "server/security/signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <climits>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace webhookd {
namespace {

// A non-null pointer for empty inputs: a string_view may hold nullptr, and
// OpenSSL 3's HMAC() treats a null key as "no key" and fails.
const unsigned char* Bytes(std::string_view s) {
  static const unsigned char kEmpty[1] = {0};
  return s.empty() ? kEmpty : reinterpret_cast<const unsigned char*>(s.data());
}

// HMAC-SHA256 of `message` keyed with `key`, as raw bytes.
std::string HmacSha256(std::string_view key, std::string_view message) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  // HMAC() fails only on allocation failure or a key longer than INT_MAX
  // (validation caps secrets at 1 KiB); an unsigned delivery is not an
  // acceptable fallback, so both abort.
  if (key.size() > static_cast<size_t>(INT_MAX) ||
      HMAC(EVP_sha256(), Bytes(key), static_cast<int>(key.size()),
           Bytes(message), message.size(), digest, &digest_size) == nullptr) {
    std::abort();
  }
  return std::string(reinterpret_cast<const char*>(digest), digest_size);
}

absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

}  // namespace

std::string SignatureHex(std::string_view secret, std::string_view body) {
  return absl::BytesToHexString(HmacSha256(secret, body));
}

std::optional<std::string> StandardWebhooksKey(std::string_view secret) {
  if (secret.substr(0, kStandardWebhooksSecretPrefix.size()) !=
      kStandardWebhooksSecretPrefix) {
    return std::nullopt;
  }
  const std::string_view encoded =
      secret.substr(kStandardWebhooksSecretPrefix.size());
  // absl::Base64Unescape also takes unpadded input and the URL alphabet's
  // neighbours; the receivers' libraries decode strict standard base64, so
  // accept exactly that: a multiple of 4 characters of A-Z a-z 0-9 + /,
  // with at most two trailing '='.
  if (encoded.empty() || encoded.size() % 4 != 0) return std::nullopt;
  const size_t padding = encoded.size() - encoded.find_last_not_of('=') - 1;
  if (padding > 2) return std::nullopt;
  for (size_t i = 0; i < encoded.size() - padding; ++i) {
    const char c = encoded[i];
    const bool alphabet = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                          (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (!alphabet) return std::nullopt;
  }
  std::string key;
  if (!absl::Base64Unescape(ToAbsl(encoded), &key)) return std::nullopt;
  // Non-canonical padding bits would decode to the same key under another
  // spelling; refuse them so each key has one secret.
  if (absl::Base64Escape(key) != ToAbsl(encoded)) return std::nullopt;
  if (key.size() < kMinStandardWebhooksKeyBytes ||
      key.size() > kMaxStandardWebhooksKeyBytes) {
    return std::nullopt;
  }
  return key;
}

std::string StandardWebhooksSignature(std::string_view key, std::string_view id,
                                      int64_t timestamp,
                                      std::string_view body) {
  const std::string message =
      absl::StrCat(ToAbsl(id), ".", timestamp, ".", ToAbsl(body));
  return absl::StrCat("v1,", absl::Base64Escape(HmacSha256(key, message)));
}

std::string GenerateSecret(bool standard_webhooks) {
  unsigned char bytes[32];
  // Like a failed HMAC, a secret from a failed generator is not acceptable.
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) std::abort();
  const absl::string_view raw(reinterpret_cast<const char*>(bytes),
                              sizeof(bytes));
  if (standard_webhooks) {
    return absl::StrCat(ToAbsl(kStandardWebhooksSecretPrefix),
                        absl::Base64Escape(raw));
  }
  return absl::BytesToHexString(raw);
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    // Still touch every byte so the time depends on the lengths only.
    (void)CRYPTO_memcmp(Bytes(a), Bytes(a), a.size());
    return false;
  }
  return CRYPTO_memcmp(Bytes(a), Bytes(b), a.size()) == 0;
}

}  // namespace webhookd
