// The signature headers of a delivery attempt, by the endpoint's scheme
// (webhook.v1.SignatureScheme), and the secrets rules that go with them:
// which secret a scheme accepts, whether a rotation grace is under way.

#ifndef WEBHOOKD_SERVER_DELIVERY_SIGNING_H_
#define WEBHOOKD_SERVER_DELIVERY_SIGNING_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "webhook/v1/webhook_service.pb.h"

namespace webhookd {

// The header of the next secret's signature during a rotation grace of an
// X-Hub-Signature-256 endpoint.
inline constexpr char kNextSignatureHeader[] = "X-Hub-Signature-256-Next";

// The default rotation grace, and the longest one a caller may ask for.
inline constexpr absl::Duration kDefaultRotationGrace = absl::Hours(24);
inline constexpr absl::Duration kMaxRotationGrace = absl::Hours(24 * 7);

// Whether the endpoint's deliveries use Standard Webhooks signatures.
bool UsesStandardWebhooks(const webhook::v1::Endpoint& endpoint);

// Whether the endpoint's previous secret still signs deliveries at `now`:
// it has one and its grace ends after `now`.
bool PreviousSecretActive(const webhook::v1::Endpoint& endpoint,
                          absl::Time now);

// The headers that sign an attempt of delivery `delivery_id` with `body` to
// `endpoint`, made at `now`. No secret: none at all. X-Hub-Signature-256:
// that header, under the previous secret while PreviousSecretActive (and
// kNextSignatureHeader under the current one), else under the current one.
// Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature,
// the current secret's signature first, then the previous one's while it is
// active.
std::vector<std::pair<std::string, std::string>> SignatureHeaders(
    const webhook::v1::Endpoint& endpoint, std::string_view delivery_id,
    std::string_view body, absl::Time now);

// Checks that `secret` fits `scheme` (a "whsec_" secret for Standard
// Webhooks, anything else ValidateSecret takes otherwise); `field` is the
// secret's full path, used in the message. Call after ValidateSecret.
absl::Status ValidateSecretForScheme(std::string_view secret,
                                     webhook::v1::SignatureScheme scheme,
                                     std::string_view field);

// Checks that the endpoint's signature_scheme is known and that its secret
// fits it: a Standard Webhooks endpoint needs a "whsec_" secret
// (StandardWebhooksKey). `field` prefixes messages ("endpoint"); the error
// names "<field>.signature_scheme" or "<field>.secret".
absl::Status ValidateSignatureScheme(const webhook::v1::Endpoint& endpoint,
                                     std::string_view field);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_SIGNING_H_
