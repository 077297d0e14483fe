// HMAC-SHA256 signatures of delivery bodies: X-Hub-Signature-256 and
// Standard Webhooks (webhook-signature), and the secrets they are keyed
// with. Uses only the API that BoringSSL shares with OpenSSL. webhookctl
// links this and nothing else of the server.

#ifndef WEBHOOKD_SERVER_SECURITY_SIGNATURE_H_
#define WEBHOOKD_SERVER_SECURITY_SIGNATURE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace webhookd {

// Returns the lowercase hex HMAC-SHA256 of `body` keyed with `secret`: the
// value of X-Hub-Signature-256 (bare hex, as the product documents it).
std::string SignatureHex(std::string_view secret, std::string_view body);

// The prefix of Standard Webhooks secrets: "whsec_" and the base64 of the
// key bytes.
inline constexpr std::string_view kStandardWebhooksSecretPrefix = "whsec_";
// How many key bytes a Standard Webhooks secret may hold (the standard
// asks for 24 to 64).
inline constexpr size_t kMinStandardWebhooksKeyBytes = 24;
inline constexpr size_t kMaxStandardWebhooksKeyBytes = 64;

// The HMAC key of a Standard Webhooks secret: the bytes of the standard
// base64 after "whsec_". nullopt unless `secret` is that prefix followed by
// valid base64 (padding included) of kMinStandardWebhooksKeyBytes to
// kMaxStandardWebhooksKeyBytes bytes.
std::optional<std::string> StandardWebhooksKey(std::string_view secret);

// One Standard Webhooks signature, "v1," and the base64 HMAC-SHA256 keyed
// with `key` (StandardWebhooksKey) of "<id>.<timestamp>.<body>"; webhook-id
// is `id` and webhook-timestamp the decimal `timestamp` (Unix seconds).
std::string StandardWebhooksSignature(std::string_view key, std::string_view id,
                                      int64_t timestamp, std::string_view body);

// A new secret from OpenSSL's generator, 32 random bytes: "whsec_" and
// their base64 for Standard Webhooks, 64 lowercase hex digits otherwise.
std::string GenerateSecret(bool standard_webhooks);

// Compares in time that depends only on the lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_SECURITY_SIGNATURE_H_
