#include "server/delivery/signing.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "server/common/string_view.h"
#include "server/common/time_util.h"
#include "server/security/signature.h"

namespace webhookd {

bool UsesStandardWebhooks(const webhook::v1::Endpoint& endpoint) {
  return endpoint.signature_scheme() ==
         webhook::v1::SIGNATURE_SCHEME_STANDARD_WEBHOOKS;
}

bool PreviousSecretActive(const webhook::v1::Endpoint& endpoint,
                          absl::Time now) {
  return !endpoint.previous_secret().empty() &&
         endpoint.has_previous_secret_expire_time() &&
         FromProtoTime(endpoint.previous_secret_expire_time()) > now;
}

std::vector<std::pair<std::string, std::string>> SignatureHeaders(
    const webhook::v1::Endpoint& endpoint, std::string_view delivery_id,
    std::string_view body, absl::Time now) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (endpoint.secret().empty()) return headers;
  const bool previous = PreviousSecretActive(endpoint, now);
  if (!UsesStandardWebhooks(endpoint)) {
    if (previous) {
      // Receivers that know only the previous secret keep accepting the
      // documented header; updated ones also find the new secret's digest.
      headers.emplace_back("X-Hub-Signature-256",
                           SignatureHex(endpoint.previous_secret(), body));
      headers.emplace_back(kNextSignatureHeader,
                           SignatureHex(endpoint.secret(), body));
    } else {
      headers.emplace_back("X-Hub-Signature-256",
                           SignatureHex(endpoint.secret(), body));
    }
    return headers;
  }
  const int64_t timestamp = absl::ToUnixSeconds(now);
  // Validation admits only "whsec_" secrets for this scheme; a record that
  // holds anything else (written by hand) is signed with an empty key
  // rather than sent unsigned, and fails verification visibly.
  auto sign = [&](const std::string& secret) {
    return StandardWebhooksSignature(StandardWebhooksKey(secret).value_or(""),
                                     delivery_id, timestamp, body);
  };
  std::string signature = sign(endpoint.secret());
  if (previous) {
    absl::StrAppend(&signature, " ", sign(endpoint.previous_secret()));
  }
  headers.emplace_back("webhook-id", std::string(delivery_id));
  headers.emplace_back("webhook-timestamp", absl::StrCat(timestamp));
  headers.emplace_back("webhook-signature", std::move(signature));
  return headers;
}

absl::Status ValidateSignatureScheme(const webhook::v1::Endpoint& endpoint,
                                     std::string_view field) {
  if (!webhook::v1::SignatureScheme_IsValid(endpoint.signature_scheme())) {
    return absl::InvalidArgumentError(
        absl::StrCat(AsAbsl(field), ".signature_scheme: unknown value ",
                     endpoint.signature_scheme(),
                     "; use SIGNATURE_SCHEME_HUB_SIGNATURE_256 or "
                     "SIGNATURE_SCHEME_STANDARD_WEBHOOKS"));
  }
  return ValidateSecretForScheme(endpoint.secret(), endpoint.signature_scheme(),
                                 absl::StrCat(AsAbsl(field), ".secret"));
}

absl::Status ValidateSecretForScheme(std::string_view secret,
                                     webhook::v1::SignatureScheme scheme,
                                     std::string_view field) {
  if (scheme == webhook::v1::SIGNATURE_SCHEME_STANDARD_WEBHOOKS &&
      !StandardWebhooksKey(secret).has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        AsAbsl(field),
        ": a SIGNATURE_SCHEME_STANDARD_WEBHOOKS endpoint needs a secret of "
        "the form \"whsec_\" followed by the base64 of ",
        kMinStandardWebhooksKeyBytes, " to ", kMaxStandardWebhooksKeyBytes,
        " random bytes (webhookctl secret generate --standard-webhooks makes "
        "one)"));
  }
  return absl::OkStatus();
}

}  // namespace webhookd
