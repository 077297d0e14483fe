// Validation of endpoint configuration. Every error is InvalidArgument with a
// message that starts with the offending field's path, e.g.
// "endpoint.url: must be an absolute URL".

#ifndef WEBHOOKD_SERVER_DELIVERY_VALIDATION_H_
#define WEBHOOKD_SERVER_DELIVERY_VALIDATION_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "google/protobuf/timestamp.pb.h"
#include "server/common/limits.h"
#include "server/security/target_url.h"
#include "webhook/v1/webhook_service.pb.h"

namespace webhookd {

// Whether `s` is well-formed UTF-8 (no overlong forms, surrogates or code
// points above U+10FFFF).
bool IsValidUtf8(std::string_view s);

// Checks every field a client may set on create: thread_id, name, url,
// secret, headers and event_types. `field` prefixes messages ("endpoint").
absl::Status ValidateEndpoint(const webhook::v1::Endpoint& endpoint,
                              const TargetPolicy& policy,
                              std::string_view field = "endpoint");

// Checks one field; `field` is its full path used in the message.
absl::Status ValidateThreadId(std::string_view thread_id,
                              std::string_view field);
absl::Status ValidateName(std::string_view name, std::string_view field);
// Unless policy.allow_insecure_targets: https only, and a host that passes
// policy.addresses.CheckHost (no literal non-public address, no localhost).
absl::Status ValidateUrl(std::string_view url, const TargetPolicy& policy,
                         std::string_view field);
// As ValidateUrl, and returns the URL to store and deliver to: `url` with an
// internationalized host in its ASCII ("xn--") form (ParsedUrl::url).
absl::StatusOr<std::string> ValidatedUrl(std::string_view url,
                                         const TargetPolicy& policy,
                                         std::string_view field);
// An id a request names (endpoint or delivery): at most kMaxIdBytes.
absl::Status ValidateId(std::string_view id, std::string_view field);
absl::Status ValidateSecret(std::string_view secret, std::string_view field);
// A time in years 0001 to 9999 with nanos in [0, 1e9), as
// google.protobuf.Timestamp documents.
absl::Status ValidateTimestamp(const google::protobuf::Timestamp& time,
                               std::string_view field);
// At most kMaxHeaders. Names must be RFC 9110 tokens, unique
// (case-insensitively) and not reserved; values hold at most
// kMaxHeaderValueBytes of visible ASCII, spaces and tabs (so no CR, LF or NUL).
absl::Status ValidateHeaders(
    const google::protobuf::RepeatedPtrField<webhook::v1::Header>& headers,
    std::string_view field);

// Whether the header name is one webhookd sets itself or that would change
// how the request is framed or routed (Host, Content-*, X-Hub-Signature*,
// X-Webhook-*, Proxy-*, hop-by-hop headers...), compared case-insensitively.
bool IsReservedHeader(std::string_view name);

// What responses show in place of the value of a sensitive header.
inline constexpr char kMaskedHeaderValue[] = "********";

// Whether responses mask the header's value: Authorization,
// Proxy-Authorization, or a name containing "key", "token" or "secret",
// compared case-insensitively.
bool IsSensitiveHeader(std::string_view name);

// `submitted` with each sensitive header whose value is kMaskedHeaderValue
// given the value of the header of the same name (case-insensitively) in
// `stored`, so that a client writing back what it read keeps the real value.
// Returns InvalidArgument naming "<field>[i].value" if `stored` has no such
// header (a new endpoint has no stored headers). Other values are kept as
// submitted. Call after ValidateHeaders.
absl::StatusOr<google::protobuf::RepeatedPtrField<webhook::v1::Header>>
RestoreMaskedHeaders(
    const google::protobuf::RepeatedPtrField<webhook::v1::Header>& submitted,
    const google::protobuf::RepeatedPtrField<webhook::v1::Header>& stored,
    std::string_view field);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_VALIDATION_H_
