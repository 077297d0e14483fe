// HMAC-SHA256 signatures of delivery bodies (X-Hub-Signature-256). Uses only
// the API that BoringSSL shares with OpenSSL. webhookctl links this and
// nothing else of the server.

#ifndef WEBHOOKD_SERVER_SECURITY_SIGNATURE_H_
#define WEBHOOKD_SERVER_SECURITY_SIGNATURE_H_

#include <string>
#include <string_view>

namespace webhookd {

// Returns the lowercase hex HMAC-SHA256 of `body` keyed with `secret`: the
// value of X-Hub-Signature-256 (bare hex, as the product documents it).
std::string SignatureHex(std::string_view secret, std::string_view body);

// Compares in time that depends only on the lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_SECURITY_SIGNATURE_H_
