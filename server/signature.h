// HMAC-SHA256 signatures of delivery bodies (X-Hub-Signature-256). Uses only
// the API that BoringSSL shares with OpenSSL.

#ifndef WEBHOOKD_SERVER_SIGNATURE_H_
#define WEBHOOKD_SERVER_SIGNATURE_H_

#include <string>
#include <string_view>

namespace webhookd {

// Returns the lowercase hex HMAC-SHA256 of `body` keyed with `secret`: the
// value of X-Hub-Signature-256 (bare hex, as the product documents it).
std::string SignatureHex(std::string_view secret, std::string_view body);

// Compares in time that depends only on the lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// Returns `prefix` followed by 32 lowercase hex digits of 128 random bits
// from a cryptographic generator, e.g. "ep_1f0c...".
std::string NewId(std::string_view prefix);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_SIGNATURE_H_
