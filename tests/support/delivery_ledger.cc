#include "tests/support/delivery_ledger.h"

#include <algorithm>

namespace webhookd::testing {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool ParseDeliveryId(absl::string_view text, absl::uint128* id) {
  constexpr absl::string_view kPrefix = "dlv_";
  if (text.size() != kPrefix.size() + 32 ||
      text.substr(0, kPrefix.size()) != kPrefix) {
    return false;
  }
  uint64_t high = 0;
  uint64_t low = 0;
  for (size_t i = 0; i < 32; ++i) {
    const int value = HexValue(text[kPrefix.size() + i]);
    if (value < 0) return false;
    uint64_t& half = i < 16 ? high : low;
    half = (half << 4) | static_cast<uint64_t>(value);
  }
  *id = absl::MakeUint128(high, low);
  return true;
}

std::string FormatDeliveryId(absl::uint128 id) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text = "dlv_";
  const uint64_t halves[2] = {absl::Uint128High64(id), absl::Uint128Low64(id)};
  for (uint64_t half : halves) {
    for (int shift = 60; shift >= 0; shift -= 4) {
      text.push_back(kDigits[(half >> shift) & 0xf]);
    }
  }
  return text;
}

void DeliveryLedger::Record(absl::uint128 id, int64_t time_ns) {
  ++total_;
  Entry& entry = entries_[id];
  if (entry.count++ == 0) {
    entry.first_ns = time_ns;
  } else if (time_ns < entry.first_ns) {
    repeats_[id].push_back(entry.first_ns);
    entry.first_ns = time_ns;
  } else {
    repeats_[id].push_back(time_ns);
  }
}

const DeliveryLedger::Entry* DeliveryLedger::Find(absl::uint128 id) const {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<int64_t> DeliveryLedger::Times(absl::uint128 id) const {
  const Entry* entry = Find(id);
  if (entry == nullptr) return {};
  std::vector<int64_t> times = {entry->first_ns};
  if (auto it = repeats_.find(id); it != repeats_.end()) {
    times.insert(times.end(), it->second.begin(), it->second.end());
    std::sort(times.begin(), times.end());
  }
  return times;
}

}  // namespace webhookd::testing
