#include "server/delivery/validation.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/string_view.h"
#include "server/delivery/event_types.h"

namespace webhookd {
namespace {

absl::Status Invalid(std::string_view field, std::string_view reason) {
  return absl::InvalidArgumentError(
      absl::StrCat(AsAbsl(field), ": ", AsAbsl(reason)));
}

// C0 controls, DEL and C1 controls.
bool IsControl(uint32_t code_point) {
  return code_point < 0x20 || (code_point >= 0x7f && code_point <= 0x9f);
}

// Decodes one UTF-8 sequence at s[*pos] and advances *pos past it. Returns
// false (leaving *pos unspecified) on a malformed sequence.
bool DecodeUtf8(std::string_view s, size_t* pos, uint32_t* code_point) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t lead = byte(*pos);
  int extra;
  uint32_t cp;
  uint32_t min;
  if (lead < 0x80) {
    *code_point = lead;
    ++*pos;
    return true;
  } else if ((lead & 0xe0) == 0xc0) {
    extra = 1;
    cp = lead & 0x1f;
    min = 0x80;
  } else if ((lead & 0xf0) == 0xe0) {
    extra = 2;
    cp = lead & 0x0f;
    min = 0x800;
  } else if ((lead & 0xf8) == 0xf0) {
    extra = 3;
    cp = lead & 0x07;
    min = 0x10000;
  } else {
    return false;
  }
  if (s.size() - *pos <= static_cast<size_t>(extra)) return false;
  for (int i = 1; i <= extra; ++i) {
    const uint8_t b = byte(*pos + i);
    if ((b & 0xc0) != 0x80) return false;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    return false;
  }
  *code_point = cp;
  *pos += extra + 1;
  return true;
}

// Checks that `value` is UTF-8 without control characters and returns its
// length in code points, or -1 with `*reason` set.
int64_t CountPrintableCodePoints(std::string_view value,
                                 std::string_view* reason) {
  int64_t count = 0;
  size_t pos = 0;
  while (pos < value.size()) {
    uint32_t cp;
    if (!DecodeUtf8(value, &pos, &cp)) {
      *reason = "must be valid UTF-8";
      return -1;
    }
    if (IsControl(cp)) {
      *reason = "must not contain control characters";
      return -1;
    }
    ++count;
  }
  return count;
}

// RFC 9110 section 5.6.2.
bool IsTokenChar(char c) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    // ASCII runs, the common case, eight bytes at a time.
    while (pos + 8 <= s.size()) {
      uint64_t word;
      std::memcpy(&word, s.data() + pos, sizeof(word));
      if ((word & 0x8080808080808080ULL) != 0) break;
      pos += 8;
    }
    if (pos == s.size()) break;
    uint32_t cp;
    if (!DecodeUtf8(s, &pos, &cp)) return false;
  }
  return true;
}

absl::Status ValidateThreadId(std::string_view thread_id,
                              std::string_view field) {
  if (thread_id.empty()) return Invalid(field, "is required");
  if (thread_id.size() > static_cast<size_t>(kMaxThreadIdBytes)) {
    return Invalid(
        field, absl::StrCat("must be at most ", kMaxThreadIdBytes, " bytes"));
  }
  std::string_view reason;
  if (CountPrintableCodePoints(thread_id, &reason) < 0) {
    return Invalid(field, reason);
  }
  return absl::OkStatus();
}

absl::Status ValidateName(std::string_view name, std::string_view field) {
  if (name.empty()) return Invalid(field, "is required");
  std::string_view reason;
  const int64_t chars = CountPrintableCodePoints(name, &reason);
  if (chars < 0) return Invalid(field, reason);
  if (chars > kMaxNameChars) {
    return Invalid(
        field, absl::StrCat("must be at most ", kMaxNameChars, " characters"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ValidatedUrl(std::string_view url,
                                         const TargetPolicy& policy,
                                         std::string_view field) {
  absl::StatusOr<ParsedUrl> parsed = ParseTargetUrl(url);
  if (!parsed.ok())
    return Invalid(field, std::string(parsed.status().message()));
  if (policy.allow_insecure_targets) return std::move(parsed->url);
  if (parsed->scheme != "https") {
    return Invalid(field,
                   "must use https; http is allowed only with "
                   "--allow_insecure_targets");
  }
  if (absl::Status host = policy.addresses.CheckHost(parsed->host);
      !host.ok()) {
    return Invalid(field, absl::StrCat("host ", host.message(),
                                       "; deliveries go only to public "
                                       "addresses unless --allow_cidr admits "
                                       "them"));
  }
  return std::move(parsed->url);
}

absl::Status ValidateUrl(std::string_view url, const TargetPolicy& policy,
                         std::string_view field) {
  return ValidatedUrl(url, policy, field).status();
}

absl::Status ValidateId(std::string_view id, std::string_view field) {
  if (id.size() > kMaxIdBytes) {
    return Invalid(field, absl::StrCat("must be at most ", kMaxIdBytes,
                                       " bytes (an id such as ep_ or dlv_ "
                                       "and 32 hex digits); got ",
                                       id.size()));
  }
  return absl::OkStatus();
}

absl::Status ValidateTimestamp(const google::protobuf::Timestamp& time,
                               std::string_view field) {
  // 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
  constexpr int64_t kMinSeconds = -62135596800;
  constexpr int64_t kMaxSeconds = 253402300799;
  if (time.seconds() < kMinSeconds || time.seconds() > kMaxSeconds ||
      time.nanos() < 0 || time.nanos() > 999999999) {
    return Invalid(field, "must be a time in years 0001 to 9999");
  }
  return absl::OkStatus();
}

absl::Status ValidateSecret(std::string_view secret, std::string_view field) {
  if (secret.size() > static_cast<size_t>(kMaxSecretBytes)) {
    return Invalid(field,
                   absl::StrCat("must be at most ", kMaxSecretBytes, " bytes"));
  }
  // Sealed values at rest start with NUL (SecretsKeyring): no secret can be
  // taken for one.
  if (secret.find('\0') != std::string_view::npos) {
    return Invalid(field, "must not contain NUL");
  }
  return absl::OkStatus();
}

bool IsReservedHeader(std::string_view name) {
  // Headers webhookd or libcurl set, hop-by-hop headers, and anything that
  // would change how the body is framed or where the request goes.
  static constexpr std::string_view kReserved[] = {
      "host",
      "transfer-encoding",
      "connection",
      "keep-alive",
      "te",
      "trailer",
      "upgrade",
      "expect",
      "user-agent",
      // Standard Webhooks signatures (SignatureHeaders).
      "webhook-id",
      "webhook-timestamp",
      "webhook-signature",
  };
  for (std::string_view reserved : kReserved) {
    if (absl::EqualsIgnoreCase(AsAbsl(name), AsAbsl(reserved))) return true;
  }
  // Content-* describe the body webhookd sends; X-Hub-Signature* would let
  // an endpoint's configuration forge or confuse the signature.
  static constexpr std::string_view kReservedPrefixes[] = {
      "content-", "proxy-", "x-webhook-", "x-hub-signature"};
  for (std::string_view prefix : kReservedPrefixes) {
    if (absl::StartsWithIgnoreCase(AsAbsl(name), AsAbsl(prefix))) return true;
  }
  return false;
}

absl::Status ValidateHeaders(
    const google::protobuf::RepeatedPtrField<webhook::v1::Header>& headers,
    std::string_view field) {
  if (headers.size() > kMaxHeaders) {
    return Invalid(field,
                   absl::StrCat("must hold at most ", kMaxHeaders, " headers"));
  }
  // Lowercased name -> index of its first occurrence.
  absl::flat_hash_map<std::string, int> seen;
  for (int i = 0; i < headers.size(); ++i) {
    const webhook::v1::Header& header = headers.Get(i);
    const std::string name_field =
        absl::StrCat(AsAbsl(field), "[", i, "].name");
    const std::string value_field =
        absl::StrCat(AsAbsl(field), "[", i, "].value");
    const std::string& name = header.name();
    if (name.empty()) return Invalid(name_field, "is required");
    if (name.size() > static_cast<size_t>(kMaxHeaderNameBytes)) {
      return Invalid(name_field, absl::StrCat("must be at most ",
                                              kMaxHeaderNameBytes, " bytes"));
    }
    for (char c : name) {
      if (!IsTokenChar(c)) {
        return Invalid(name_field,
                       "must be an HTTP token (letters, digits and "
                       "!#$%&'*+-.^_`|~)");
      }
    }
    if (IsReservedHeader(name)) {
      return Invalid(name_field,
                     absl::StrCat("\"", name, "\" is set by webhookd itself"));
    }
    const auto [it, inserted] = seen.emplace(absl::AsciiStrToLower(name), i);
    if (!inserted) {
      return Invalid(name_field,
                     absl::StrCat("duplicates ", AsAbsl(field), "[", it->second,
                                  "].name (names are case-insensitive)"));
    }

    const std::string& value = header.value();
    if (value.size() > static_cast<size_t>(kMaxHeaderValueBytes)) {
      return Invalid(value_field, absl::StrCat("must be at most ",
                                               kMaxHeaderValueBytes, " bytes"));
    }
    for (char c : value) {
      const auto byte = static_cast<unsigned char>(c);
      if (c == '\r' || c == '\n' || c == '\0') {
        return Invalid(value_field, "must not contain CR, LF or NUL");
      }
      if ((byte < 0x20 && c != '\t') || byte >= 0x7f) {
        return Invalid(value_field,
                       "must hold only visible ASCII, spaces and tabs");
      }
    }
  }
  return absl::OkStatus();
}

bool IsSensitiveHeader(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(AsAbsl(name));
  return lower == "authorization" || lower == "proxy-authorization" ||
         absl::StrContains(lower, "key") || absl::StrContains(lower, "token") ||
         absl::StrContains(lower, "secret");
}

absl::StatusOr<google::protobuf::RepeatedPtrField<webhook::v1::Header>>
RestoreMaskedHeaders(
    const google::protobuf::RepeatedPtrField<webhook::v1::Header>& submitted,
    const google::protobuf::RepeatedPtrField<webhook::v1::Header>& stored,
    std::string_view field) {
  google::protobuf::RepeatedPtrField<webhook::v1::Header> out = submitted;
  for (int i = 0; i < out.size(); ++i) {
    webhook::v1::Header& header = *out.Mutable(i);
    // Only values that responses mask can be placeholders: a non-sensitive
    // header whose value happens to be "********" is stored as given.
    if (header.value() != kMaskedHeaderValue ||
        !IsSensitiveHeader(header.name())) {
      continue;
    }
    const webhook::v1::Header* kept = nullptr;
    for (const webhook::v1::Header& candidate : stored) {
      if (absl::EqualsIgnoreCase(candidate.name(), header.name())) {
        kept = &candidate;
        break;
      }
    }
    if (kept == nullptr) {
      return Invalid(
          absl::StrCat(AsAbsl(field), "[", i, "].value"),
          absl::StrCat("\"", kMaskedHeaderValue,
                       "\" is the masked placeholder of a stored value, and \"",
                       header.name(),
                       "\" has no stored value to keep; send the real value"));
    }
    header.set_value(kept->value());
  }
  return out;
}

absl::Status ValidateEndpoint(const webhook::v1::Endpoint& endpoint,
                              const TargetPolicy& policy,
                              std::string_view field) {
  absl::Status status = ValidateThreadId(
      endpoint.thread_id(), absl::StrCat(AsAbsl(field), ".thread_id"));
  if (!status.ok()) return status;
  status = ValidateName(endpoint.name(), absl::StrCat(AsAbsl(field), ".name"));
  if (!status.ok()) return status;
  status =
      ValidateUrl(endpoint.url(), policy, absl::StrCat(AsAbsl(field), ".url"));
  if (!status.ok()) return status;
  status =
      ValidateSecret(endpoint.secret(), absl::StrCat(AsAbsl(field), ".secret"));
  if (!status.ok()) return status;
  status = ValidateHeaders(endpoint.headers(),
                           absl::StrCat(AsAbsl(field), ".headers"));
  if (!status.ok()) return status;
  return ValidateEventTypeFilters(endpoint.event_types(),
                                  absl::StrCat(AsAbsl(field), ".event_types"));
}

}  // namespace webhookd
