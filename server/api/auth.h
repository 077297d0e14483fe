// API authentication at the gRPC edge: API keys ("authorization: Bearer
// <key>" metadata) mapped to the users they act for.

#ifndef WEBHOOKD_SERVER_API_AUTH_H_
#define WEBHOOKD_SERVER_API_AUTH_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"
#include "server/common/caller.h"

namespace webhookd {

// Keys shorter than this are refused: they could be guessed.
inline constexpr size_t kMinApiKeyChars = 16;
inline constexpr size_t kMaxApiKeyChars = 1024;

// A set of API keys, each acting for one user. Only SHA-256 digests of the
// keys are kept. Immutable, so safe for concurrent use.
class ApiKeys {
 public:
  // Parses the --api_keys_file format: one "<key> <user_id>" per line,
  // separated by spaces or tabs; blank lines and lines starting with '#'
  // are skipped. A key is 16 to 1024 visible ASCII characters, a user id a
  // positive integer; a key may appear once. InvalidArgument naming the
  // line (never the key) otherwise, or if there is no key at all.
  static absl::StatusOr<ApiKeys> Parse(absl::string_view text);
  // Reads and parses the file at `path`.
  static absl::StatusOr<ApiKeys> Load(const std::string& path);

  // The user `key` acts for, or nullopt. Takes the same time whichever
  // key (if any) matches and however much of it does.
  std::optional<int64_t> Find(absl::string_view key) const;

  size_t size() const { return entries_.size(); }

 private:
  using Digest = std::array<uint8_t, 32>;
  struct Entry {
    Digest digest;
    int64_t user_id;
  };

  static Digest Sha256(absl::string_view key);

  std::vector<Entry> entries_;
};

// Establishes the Caller of each RPC. Immutable, so safe for concurrent use.
class Authenticator {
 public:
  // Authenticates nobody: every caller is Caller::Unrestricted().
  Authenticator() = default;
  // Every caller must present one of `keys`.
  explicit Authenticator(ApiKeys keys);

  // Whether callers must present a key.
  bool enabled() const { return keys_.has_value(); }

  // The caller of a call, from its "authorization" metadata; Unauthenticated
  // when keys are required and the call has no single valid
  // "Bearer <key>". Never logs or echoes the key. Cheap: call it on the
  // gRPC thread.
  absl::StatusOr<Caller> Authenticate(
      const grpc::ServerContextBase& context) const;
  // The same from the values of the authorization header.
  absl::StatusOr<Caller> AuthenticateHeader(
      const std::vector<absl::string_view>& authorization) const;

 private:
  std::optional<ApiKeys> keys_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_API_AUTH_H_
