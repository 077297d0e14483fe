#include "storage/leveldb/keys.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"

namespace webhookd::leveldb_keys {
namespace {

// The 4 bytes of the length of a <len>s component.
constexpr size_t kLengthBytes = 4;

// Debian's Abseil is built with its own absl::string_view, distinct from
// std::string_view.
absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

std::string Concat(std::string_view prefix, std::string_view rest) {
  std::string out;
  out.reserve(prefix.size() + rest.size());
  out.append(prefix);
  out.append(rest);
  return out;
}

void AppendBigEndian64(uint64_t v, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

uint64_t ReadBigEndian(std::string_view bytes) {
  uint64_t v = 0;
  for (const char c : bytes) v = (v << 8) | static_cast<unsigned char>(c);
  return v;
}

// <len>s: a 4-byte big-endian length, then the bytes.
void AppendLengthPrefixed(std::string_view s, std::string* out) {
  const uint32_t n = static_cast<uint32_t>(s.size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((n >> shift) & 0xff));
  }
  out->append(s);
}

// Removes a <len>s component from the front of *rest. False if it does not
// hold a whole one.
bool SkipLengthPrefixed(std::string_view* rest) {
  if (rest->size() < kLengthBytes) return false;
  const uint64_t n = ReadBigEndian(rest->substr(0, kLengthBytes));
  if (rest->size() - kLengthBytes < n) return false;
  rest->remove_prefix(kLengthBytes + n);
  return true;
}

// Flipping the sign bit makes signed order match unsigned byte order.
uint64_t OrderedBits(int64_t v) {
  return static_cast<uint64_t>(v) ^ (uint64_t{1} << 63);
}

}  // namespace

std::string EndpointKey(std::string_view endpoint_id) {
  return Concat(kEndpointPrefix, endpoint_id);
}

std::string EndpointThreadPrefix(std::string_view thread_id) {
  std::string key(kEndpointThreadPrefix);
  AppendLengthPrefixed(thread_id, &key);
  return key;
}

std::string EndpointThreadKey(std::string_view thread_id,
                              std::string_view endpoint_id) {
  return Concat(EndpointThreadPrefix(thread_id), endpoint_id);
}

std::string EventKey(std::string_view event_id) {
  return Concat(kEventPrefix, event_id);
}

std::string IdempotencyKey(int64_t user_id, std::string_view idempotency_key) {
  std::string out(kIdempotencyPrefix);
  AppendBigEndian64(OrderedBits(user_id), &out);
  out.push_back('/');
  out.append(idempotency_key);
  return out;
}

std::string DeliveryKey(std::string_view delivery_id) {
  return Concat(kDeliveryPrefix, delivery_id);
}

std::string DeliveryEndpointPrefix(std::string_view endpoint_id) {
  std::string key(kDeliveryEndpointPrefix);
  AppendLengthPrefixed(endpoint_id, &key);
  return key;
}

std::string DeliveryThreadPrefix(std::string_view thread_id) {
  std::string key(kDeliveryThreadPrefix);
  AppendLengthPrefixed(thread_id, &key);
  return key;
}

std::string DeliveryIndexKey(std::string prefix, int64_t create_micros,
                             std::string_view delivery_id) {
  // The complement: newer create times sort first.
  AppendBigEndian64(~OrderedBits(create_micros), &prefix);
  prefix.append(delivery_id);
  return prefix;
}

std::string QueueKey(std::string_view delivery_id) {
  return Concat(kQueuePrefix, delivery_id);
}

std::string StatsKey(std::string_view endpoint_id) {
  return Concat(kStatsPrefix, endpoint_id);
}

std::optional<DeliveryIndexEntry> ParseDeliveryIndexKey(std::string_view key) {
  std::string_view rest = key;
  if (rest.starts_with(kDeliveryListPrefix)) {
    rest.remove_prefix(kDeliveryListPrefix.size());
  } else if (rest.starts_with(kDeliveryEndpointPrefix)) {
    rest.remove_prefix(kDeliveryEndpointPrefix.size());
    if (!SkipLengthPrefixed(&rest)) return std::nullopt;
  } else if (rest.starts_with(kDeliveryThreadPrefix)) {
    rest.remove_prefix(kDeliveryThreadPrefix.size());
    if (!SkipLengthPrefixed(&rest)) return std::nullopt;
  } else {
    return std::nullopt;
  }
  if (rest.size() <= kTimeKeyBytes) return std::nullopt;
  DeliveryIndexEntry entry;
  entry.create_micros = static_cast<int64_t>(
      ~ReadBigEndian(rest.substr(0, kTimeKeyBytes)) ^ (uint64_t{1} << 63));
  entry.delivery_id = rest.substr(kTimeKeyBytes);
  return entry;
}

std::optional<std::string_view> ParseEndpointThreadKey(std::string_view key) {
  if (!key.starts_with(kEndpointThreadPrefix)) return std::nullopt;
  std::string_view rest = key.substr(kEndpointThreadPrefix.size());
  if (!SkipLengthPrefixed(&rest) || rest.empty()) return std::nullopt;
  return rest;
}

std::string_view IdAfter(std::string_view prefix, std::string_view key) {
  if (!key.starts_with(prefix)) return {};
  return key.substr(prefix.size());
}

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  end.back() = static_cast<char>(end.back() + 1);
  return end;
}

std::string EncodePageToken(std::string_view last_key) {
  return absl::WebSafeBase64Escape(ToAbsl(last_key));
}

absl::StatusOr<std::string> DecodePageToken(std::string_view token,
                                            std::string_view prefix) {
  std::string key;
  if (!absl::WebSafeBase64Unescape(ToAbsl(token), &key) ||
      !key.starts_with(prefix) || key.size() == prefix.size()) {
    return absl::InvalidArgumentError(
        "invalid page_token: not a token of this list and filter");
  }
  return key;
}

std::string Printable(std::string_view key) {
  return absl::CHexEscape(ToAbsl(key));
}

}  // namespace webhookd::leveldb_keys
