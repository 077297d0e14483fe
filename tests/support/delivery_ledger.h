// DeliveryLedger: which deliveries a receiver got, by id, how often and
// when; the receiving side of the ledger that the crash-loop test and
// webhook-bench set against the ids the server acknowledged.

#ifndef WEBHOOKD_TESTS_SUPPORT_DELIVERY_LEDGER_H_
#define WEBHOOKD_TESTS_SUPPORT_DELIVERY_LEDGER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/numeric/int128.h"
#include "absl/strings/string_view.h"

namespace webhookd::testing {

// Parses a delivery id, "dlv_" followed by 32 hex digits.
bool ParseDeliveryId(absl::string_view text, absl::uint128* id);
// The inverse of ParseDeliveryId.
std::string FormatDeliveryId(absl::uint128 id);

// Thread-compatible. Holds 16 bytes per id, plus the times of repeats.
class DeliveryLedger {
 public:
  struct Entry {
    int64_t first_ns = 0;  // The earliest receipt.
    int32_t count = 0;     // Receipts (more than 1: duplicates).
  };

  // Records one receipt of `id` at `time_ns` (any clock, the same for
  // every call). Receipts may be recorded out of time order.
  void Record(absl::uint128 id, int64_t time_ns);

  // nullptr if `id` was never received.
  const Entry* Find(absl::uint128 id) const;
  const absl::flat_hash_map<absl::uint128, Entry>& entries() const {
    return entries_;
  }
  // Every receipt time of `id`, earliest first; empty if never received.
  std::vector<int64_t> Times(absl::uint128 id) const;

  // Ids received.
  int64_t unique() const { return static_cast<int64_t>(entries_.size()); }
  // Receipts, duplicates included.
  int64_t total() const { return total_; }
  // Receipts past the first of each id.
  int64_t duplicates() const { return total_ - unique(); }

 private:
  absl::flat_hash_map<absl::uint128, Entry> entries_;
  // The receipt times other than each id's first: duplicates are few.
  absl::flat_hash_map<absl::uint128, std::vector<int64_t>> repeats_;
  int64_t total_ = 0;
};

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_DELIVERY_LEDGER_H_
