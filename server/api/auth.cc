#include "server/api/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace webhookd {
namespace {

constexpr absl::string_view kBearer = "bearer";

absl::Status Unauthenticated() {
  return absl::UnauthenticatedError(
      "missing or invalid API key: send gRPC metadata \"authorization: "
      "Bearer <key>\"");
}

bool IsVisibleAscii(absl::string_view s) {
  for (char c : s) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

}  // namespace

ApiKeys::Digest ApiKeys::Sha256(absl::string_view key) {
  Digest digest{};
  unsigned int length = 0;
  EVP_Digest(key.data(), key.size(), digest.data(), &length, EVP_sha256(),
             nullptr);
  return digest;
}

absl::StatusOr<ApiKeys> ApiKeys::Parse(absl::string_view text) {
  ApiKeys keys;
  // Digest -> line number, to name the first line of a repeated key.
  absl::flat_hash_map<std::string, int> seen;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    const auto invalid = [line_number](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": ", why));
    };
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2) {
      return invalid("expected \"<key> <user_id>\"");
    }
    const absl::string_view key = fields[0];
    if (key.size() < kMinApiKeyChars) {
      return invalid(absl::StrCat("the key is shorter than ", kMinApiKeyChars,
                                  " characters"));
    }
    if (key.size() > kMaxApiKeyChars) {
      return invalid(absl::StrCat("the key is longer than ", kMaxApiKeyChars,
                                  " characters"));
    }
    if (!IsVisibleAscii(key)) {
      return invalid("the key must be visible ASCII characters");
    }
    int64_t user_id = 0;
    if (!absl::SimpleAtoi(fields[1], &user_id) || user_id <= 0) {
      return invalid("the user id must be a positive integer");
    }
    const Digest digest = Sha256(key);
    const auto [it, inserted] =
        seen.emplace(std::string(digest.begin(), digest.end()), line_number);
    if (!inserted) {
      return invalid(
          absl::StrCat("the key repeats the key of line ", it->second));
    }
    keys.entries_.push_back({digest, user_id});
  }
  if (keys.entries_.empty()) {
    return absl::InvalidArgumentError(
        "no API keys (every line is blank or a "
        "comment)");
  }
  return keys;
}

absl::StatusOr<ApiKeys> ApiKeys::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<ApiKeys> keys = Parse(text.str());
  if (!keys.ok()) {
    return absl::Status(keys.status().code(),
                        absl::StrCat(path, ": ", keys.status().message()));
  }
  return keys;
}

std::optional<int64_t> ApiKeys::Find(absl::string_view key) const {
  // Comparing digests rather than keys makes the time independent of the
  // key's length and content; every entry is compared, and without an
  // early exit, so neither does it depend on which entry matches.
  const Digest digest = Sha256(key);
  uint64_t found = 0;
  int64_t user_id = 0;
  for (const Entry& entry : entries_) {
    const uint64_t match = static_cast<uint64_t>(
        CRYPTO_memcmp(entry.digest.data(), digest.data(), digest.size()) == 0);
    const uint64_t mask = ~uint64_t{0} * match;  // All ones on a match.
    found |= match;
    user_id |=
        static_cast<int64_t>(mask & static_cast<uint64_t>(entry.user_id));
  }
  if (found == 0) return std::nullopt;
  return user_id;
}

Authenticator::Authenticator(ApiKeys keys) : keys_(std::move(keys)) {}

absl::StatusOr<Caller> Authenticator::Authenticate(
    const grpc::ServerContextBase& context) const {
  if (!keys_.has_value()) return Caller::Unrestricted();
  std::vector<absl::string_view> values;
  const auto range = context.client_metadata().equal_range("authorization");
  for (auto it = range.first; it != range.second; ++it) {
    values.emplace_back(it->second.data(), it->second.size());
  }
  return AuthenticateHeader(values);
}

absl::StatusOr<Caller> Authenticator::AuthenticateHeader(
    const std::vector<absl::string_view>& authorization) const {
  if (!keys_.has_value()) return Caller::Unrestricted();
  if (authorization.size() != 1) return Unauthenticated();
  absl::string_view value = authorization[0];
  if (value.size() <= kBearer.size() ||
      !absl::StartsWithIgnoreCase(value, kBearer) ||
      (value[kBearer.size()] != ' ' && value[kBearer.size()] != '\t')) {
    return Unauthenticated();
  }
  value.remove_prefix(kBearer.size());
  value = absl::StripAsciiWhitespace(value);
  std::optional<int64_t> user_id = keys_->Find(value);
  if (!user_id.has_value()) return Unauthenticated();
  return Caller::User(*user_id);
}

}  // namespace webhookd
