#include "server/common/ids.h"

#include <openssl/rand.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace webhookd {
namespace {

// RAND_bytes fails only when the generator cannot be seeded; ids must be
// unguessable and unique, so there is no safe fallback: abort.
void FillRandom(unsigned char* bytes, size_t size) {
  if (RAND_bytes(bytes, static_cast<int>(size)) != 1) std::abort();
}

std::string Hex(const unsigned char* bytes, size_t size) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), size));
}

}  // namespace

std::string NewId(std::string_view prefix) {
  unsigned char bytes[16];
  // 48 bits of milliseconds, big-endian, so that ids sort by creation time.
  uint64_t millis = static_cast<uint64_t>(absl::ToUnixMillis(absl::Now()));
  for (int i = 5; i >= 0; --i) {
    bytes[i] = static_cast<unsigned char>(millis & 0xff);
    millis >>= 8;
  }
  FillRandom(bytes + 6, sizeof(bytes) - 6);
  return absl::StrCat(absl::string_view(prefix.data(), prefix.size()),
                      Hex(bytes, sizeof(bytes)));
}

std::string RandomHex(size_t size) {
  std::string bytes(size, '\0');
  unsigned char* data = reinterpret_cast<unsigned char*>(bytes.data());
  do {
    FillRandom(data, size);
  } while (size > 0 && bytes.find_first_not_of('\0') == std::string::npos);
  return Hex(data, size);
}

}  // namespace webhookd
