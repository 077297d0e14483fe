// Encryption of secrets at rest: AES-256-GCM (OpenSSL EVP) under keys read
// from files (--secrets_key_file, --secrets_old_key_files), in a small
// versioned text envelope that names the key, so that keys can be rotated.

#ifndef WEBHOOKD_SERVER_SECURITY_SECRETS_KEYRING_H_
#define WEBHOOKD_SERVER_SECURITY_SECRETS_KEYRING_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace webhookd {

// A 256-bit key and its id: 8 lowercase hex digits derived from the key
// (SHA-256), the same on every node that has the key.
class SecretsKey {
 public:
  static constexpr size_t kBytes = 32;

  // Parses the text of a key file: the base64 of exactly 32 bytes
  // (`openssl rand -base64 32`), surrounding whitespace ignored.
  // InvalidArgument naming `flag` otherwise.
  static absl::StatusOr<SecretsKey> Parse(std::string_view text,
                                          std::string_view flag);
  // Reads and parses the file at `path`.
  static absl::StatusOr<SecretsKey> Load(const std::string& path,
                                         std::string_view flag);
  // The key of 32 raw bytes (tests).
  static SecretsKey FromBytes(std::string_view bytes);

  const std::string& id() const { return id_; }
  const std::string& bytes() const { return bytes_; }

 private:
  SecretsKey(std::string bytes);

  std::string bytes_;
  std::string id_;
};

// The keys secrets are written and read with. Immutable once built, so safe
// for concurrent use.
//
// A sealed value is "\0sealed:v1:<key id>:<base64 of nonce, ciphertext and
// tag>": a 96-bit random nonce per value, and associated data given by the
// caller (the record's id and the field), so that a sealed value cannot be
// moved to another record or field. The leading NUL keeps sealed values
// apart from what clients may send (ValidateSecret and ValidateHeaders
// refuse NUL).
class SecretsKeyring {
 public:
  // No key: Seal fails, and so does Open of any sealed value.
  SecretsKeyring() = default;
  // `current` seals; `current` and `old` open.
  SecretsKeyring(SecretsKey current, std::vector<SecretsKey> old);

  // Whether a key is configured for writing.
  bool has_current() const { return current_.has_value(); }
  // The id of the writing key; empty without one.
  std::string current_id() const;
  // Ids of every key that can open, the writing one first.
  std::vector<std::string> key_ids() const;

  // Whether `value` is a sealed value (by its prefix).
  static bool IsSealed(std::string_view value);
  // The key id a sealed value names, or nullopt if it is not one.
  static std::optional<std::string> KeyIdOf(std::string_view value);

  // Encrypts `plaintext` under the current key. FailedPrecondition without
  // one.
  absl::StatusOr<std::string> Seal(std::string_view plaintext,
                                   std::string_view associated_data) const;
  // Decrypts a sealed value. FailedPrecondition naming the key id if that
  // key is not configured; DataLoss if the value is malformed, was altered
  // or belongs to other associated data.
  absl::StatusOr<std::string> Open(std::string_view sealed,
                                   std::string_view associated_data) const;

  // A 32-byte key for another purpose, derived from the current key with
  // HMAC-SHA256 over `label`; nullopt without a current key.
  std::optional<std::string> DeriveKey(std::string_view label) const;

 private:
  const SecretsKey* Find(std::string_view id) const;

  std::optional<SecretsKey> current_;
  std::vector<SecretsKey> old_;
};

// AES-256-GCM with a random 96-bit nonce: returns nonce, ciphertext and the
// 128-bit tag, concatenated. `key` must be 32 bytes.
std::string Aes256GcmSeal(std::string_view key, std::string_view plaintext,
                          std::string_view associated_data);
// The reverse; nullopt if `sealed` is malformed or fails authentication.
std::optional<std::string> Aes256GcmOpen(std::string_view key,
                                         std::string_view sealed,
                                         std::string_view associated_data);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_SECURITY_SECRETS_KEYRING_H_
