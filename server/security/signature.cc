#include "server/security/signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

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

std::string ToHex(const unsigned char* data, size_t size) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(data), size));
}

}  // namespace

std::string SignatureHex(std::string_view secret, std::string_view body) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  // HMAC() fails only on allocation failure or a key longer than INT_MAX
  // (validation caps secrets at 1 KiB); an unsigned delivery is not an
  // acceptable fallback, so both abort.
  if (secret.size() > static_cast<size_t>(INT_MAX) ||
      HMAC(EVP_sha256(), Bytes(secret), static_cast<int>(secret.size()),
           Bytes(body), body.size(), digest, &digest_size) == nullptr) {
    std::abort();
  }
  return ToHex(digest, digest_size);
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
