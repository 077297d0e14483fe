#include "server/common/ids.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
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

// Random bytes for ids, drawn from RAND_bytes a page at a time: one call
// costs about a microsecond here, as much as the rest of a delivery's ids
// and records together, and one event to 10,000 endpoints needs 10,001 ids.
// Each byte is handed out once and wiped from the buffer as it is.
void FillRandomForId(unsigned char* bytes, size_t size) {
  struct Buffer {
    unsigned char bytes[4096];
    size_t next = sizeof(bytes);  // Empty.
  };
  thread_local Buffer buffer;
  if (size > sizeof(buffer.bytes)) return FillRandom(bytes, size);
  if (buffer.next + size > sizeof(buffer.bytes)) {
    FillRandom(buffer.bytes, sizeof(buffer.bytes));
    buffer.next = 0;
  }
  std::memcpy(bytes, buffer.bytes + buffer.next, size);
  OPENSSL_cleanse(buffer.bytes + buffer.next, size);
  buffer.next += size;
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
  FillRandomForId(bytes + 6, sizeof(bytes) - 6);
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
