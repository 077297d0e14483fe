#include "server/security/secrets_keyring.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/common/string_view.h"

namespace webhookd {
namespace {

constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
// "\0sealed:v1:" then the key id, ':' and the base64 body.
constexpr std::string_view kSealedPrefix("\0sealed:v1:", 11);
constexpr size_t kKeyIdChars = 8;

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

// The key id: the first 4 bytes of SHA-256 over a label and the key, in hex.
std::string KeyId(std::string_view key) {
  const std::string input =
      absl::StrCat("webhookd secrets key id:", AsAbsl(key));
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(Bytes(input), input.size(), digest);
  return absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(digest), kKeyIdChars / 2));
}

}  // namespace

SecretsKey::SecretsKey(std::string bytes)
    : bytes_(std::move(bytes)), id_(KeyId(bytes_)) {}

SecretsKey SecretsKey::FromBytes(std::string_view bytes) {
  return SecretsKey(std::string(bytes));
}

absl::StatusOr<SecretsKey> SecretsKey::Parse(std::string_view text,
                                             std::string_view flag) {
  const absl::string_view trimmed = absl::StripAsciiWhitespace(AsAbsl(text));
  std::string bytes;
  if (trimmed.empty() || !absl::Base64Unescape(trimmed, &bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        AsAbsl(flag),
        ": not a key: the file must hold the base64 of 32 random bytes "
        "(create one with: openssl rand -base64 32 > FILE)"));
  }
  if (bytes.size() != kBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        AsAbsl(flag), ": the key is ", bytes.size(),
        " bytes long; it must be 32 random bytes in base64 (create one with: "
        "openssl rand -base64 32 > FILE)"));
  }
  return SecretsKey(std::move(bytes));
}

absl::StatusOr<SecretsKey> SecretsKey::Load(const std::string& path,
                                            std::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(AsAbsl(flag), ": cannot read the key file ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  return Parse(text.str(), absl::StrCat(AsAbsl(flag), " ", path));
}

SecretsKeyring::SecretsKeyring(SecretsKey current, std::vector<SecretsKey> old)
    : current_(std::move(current)), old_(std::move(old)) {}

std::string SecretsKeyring::current_id() const {
  return current_.has_value() ? current_->id() : std::string();
}

std::vector<std::string> SecretsKeyring::key_ids() const {
  std::vector<std::string> ids;
  if (current_.has_value()) ids.push_back(current_->id());
  for (const SecretsKey& key : old_) ids.push_back(key.id());
  return ids;
}

bool SecretsKeyring::IsSealed(std::string_view value) {
  return value.starts_with(kSealedPrefix);
}

std::optional<std::string> SecretsKeyring::KeyIdOf(std::string_view value) {
  if (!IsSealed(value)) return std::nullopt;
  value.remove_prefix(kSealedPrefix.size());
  const size_t colon = value.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  return std::string(value.substr(0, colon));
}

const SecretsKey* SecretsKeyring::Find(std::string_view id) const {
  if (current_.has_value() && current_->id() == id) return &*current_;
  for (const SecretsKey& key : old_) {
    if (key.id() == id) return &key;
  }
  return nullptr;
}

absl::StatusOr<std::string> SecretsKeyring::Seal(
    std::string_view plaintext, std::string_view associated_data) const {
  if (!current_.has_value()) {
    return absl::FailedPreconditionError(
        "no secrets key configured (--secrets_key_file)");
  }
  return absl::StrCat(AsAbsl(kSealedPrefix), current_->id(), ":",
                      absl::Base64Escape(Aes256GcmSeal(
                          current_->bytes(), plaintext, associated_data)));
}

absl::StatusOr<std::string> SecretsKeyring::Open(
    std::string_view sealed, std::string_view associated_data) const {
  const std::optional<std::string> id = KeyIdOf(sealed);
  if (!id.has_value()) {
    return absl::DataLossError("malformed encrypted value");
  }
  const SecretsKey* key = Find(*id);
  if (key == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("encrypted under secrets key id ", absl::CHexEscape(*id),
                     ", which is not configured: give its key file with "
                     "--secrets_key_file or --secrets_old_key_files"));
  }
  std::string body;
  if (!absl::Base64Unescape(
          AsAbsl(sealed.substr(kSealedPrefix.size() + id->size() + 1)),
          &body)) {
    return absl::DataLossError("malformed encrypted value");
  }
  std::optional<std::string> plaintext =
      Aes256GcmOpen(key->bytes(), body, associated_data);
  if (!plaintext.has_value()) {
    return absl::DataLossError(absl::StrCat(
        "an encrypted value fails authentication under secrets key id ", *id,
        " (altered, or moved from another record)"));
  }
  return *std::move(plaintext);
}

std::optional<std::string> SecretsKeyring::DeriveKey(
    std::string_view label) const {
  if (!current_.has_value()) return std::nullopt;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  HMAC(EVP_sha256(), current_->bytes().data(),
       static_cast<int>(current_->bytes().size()), Bytes(label), label.size(),
       out, &out_len);
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

std::string Aes256GcmSeal(std::string_view key, std::string_view plaintext,
                          std::string_view associated_data) {
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  unsigned char* nonce = reinterpret_cast<unsigned char*>(out.data());
  unsigned char* ciphertext = nonce + kNonceBytes;
  // A failure of the system's random generator or of EVP leaves nothing
  // safe to write: stop rather than store a secret under a weak nonce.
  if (RAND_bytes(nonce, kNonceBytes) != 1) std::abort();
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (ctx == nullptr ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key),
                         nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, Bytes(associated_data),
                        static_cast<int>(associated_data.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), ciphertext, &len, Bytes(plaintext),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), ciphertext + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                          ciphertext + plaintext.size()) != 1) {
    std::abort();
  }
  return out;
}

std::optional<std::string> Aes256GcmOpen(std::string_view key,
                                         std::string_view sealed,
                                         std::string_view associated_data) {
  if (key.size() != SecretsKey::kBytes ||
      sealed.size() < kNonceBytes + kTagBytes) {
    return std::nullopt;
  }
  const std::string_view nonce = sealed.substr(0, kNonceBytes);
  const std::string_view ciphertext =
      sealed.substr(kNonceBytes, sealed.size() - kNonceBytes - kTagBytes);
  std::string tag(sealed.substr(sealed.size() - kTagBytes));
  std::string plaintext(ciphertext.size(), '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (ctx == nullptr ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key),
                         Bytes(nonce)) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, Bytes(associated_data),
                        static_cast<int>(associated_data.size())) != 1 ||
      EVP_DecryptUpdate(
          ctx.get(), reinterpret_cast<unsigned char*>(plaintext.data()), &len,
          Bytes(ciphertext), static_cast<int>(ciphertext.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes,
                          tag.data()) != 1 ||
      EVP_DecryptFinal_ex(
          ctx.get(), reinterpret_cast<unsigned char*>(plaintext.data()) + len,
          &len) != 1) {
    return std::nullopt;
  }
  return plaintext;
}

}  // namespace webhookd
