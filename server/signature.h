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

// Returns `prefix` followed by 32 lowercase hex digits, e.g. "ep_0193...":
// 12 of the creation time in milliseconds, then 20 of 80 random bits from a
// cryptographic generator. Ids made later sort after earlier ones, so the
// records keyed by them are written in key order: LevelDB then compacts
// new records without rewriting old ones (see BENCHMARKS.md). 80 random bits
// keep them unguessable and, within one millisecond, unique.
std::string NewId(std::string_view prefix);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_SIGNATURE_H_
