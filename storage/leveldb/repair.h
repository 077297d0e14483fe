// The offline repair of a LevelDbStore directory (webhookd --repair).

#ifndef WEBHOOKD_STORAGE_LEVELDB_REPAIR_H_
#define WEBHOOKD_STORAGE_LEVELDB_REPAIR_H_

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/leveldb/leveldb_store.h"
#include "storage/store.h"

namespace webhookd {

// What RepairLevelDbStore did and could not keep.
struct RepairReport {
  // Record counts before the repair, when the database could be opened
  // then; otherwise why not.
  bool readable_before = false;
  std::string error_before;
  size_t endpoints_before = 0;
  size_t events_before = 0;
  size_t deliveries_before = 0;
  size_t queued_before = 0;
  // LevelDB's account of the repair: each log and table file salvaged, the
  // bytes and entries it dropped, the files it moved to <dir>/lost/.
  std::vector<std::string> leveldb_log;
  // Counts after the repair.
  size_t endpoints_after = 0;
  size_t events_after = 0;
  size_t deliveries_after = 0;
  size_t queued_after = 0;
  // LevelDB's repair keeps the records of damaged logs without verifying
  // their checksums: records that no longer parse are removed.
  size_t damaged_records = 0;
  // Records left pointing at lost ones, fixed after LevelDB's repair:
  // list index entries and queue entries of lost deliveries (removed),
  // endpoint index entries of lost endpoints (removed), and queued
  // deliveries whose event (payload) was lost (ended by RepairRules::end).
  size_t dangling_index_entries = 0;
  size_t dangling_queue_entries = 0;
  size_t dangling_endpoint_entries = 0;
  size_t deliveries_without_event = 0;
  // Events lost while some of their deliveries survived, written again as
  // placeholders without payload (EventRecord.payload_lost) so that those
  // deliveries can still be read; and how many deliveries they hold (the
  // queued ones among them are also in deliveries_without_event).
  size_t events_with_lost_payload = 0;
  size_t deliveries_with_lost_payload = 0;
  // Deliveries awaiting an attempt (RepairRules::next_due) whose queue
  // entry was lost, queued again.
  size_t requeued_deliveries = 0;

  // A human-readable account of all of the above, one item a line.
  std::string ToString() const;
};

// The domain's rules the repair applies to deliveries. The store keeps
// whether a delivery is queued only in its queue entry, so when LevelDB's
// repair lost that entry only the domain can tell from the delivery's state.
struct RepairRules {
  // When a delivery in this state is due for an attempt, or nullopt if it
  // awaits none.
  std::function<std::optional<absl::Time>(const Delivery&)> next_due;
  // The state of a delivery ended for good, without another attempt,
  // because of `why`.
  std::function<Delivery(Delivery delivery, const std::string& why)> end;
};

// Runs LevelDB's repair (leveldb::RepairDB) on the database in dir, then
// makes the webhookd records consistent again (see RepairReport), applying
// `rules` to deliveries. The directory must not be in use
// (FailedPrecondition otherwise). Unavailable or DataLoss if the repaired
// database still cannot be opened; InvalidArgument if a rule is unset.
absl::StatusOr<RepairReport> RepairLevelDbStore(
    const std::string& dir, const RepairRules& rules,
    const LevelDbStoreOptions& options = {});

}  // namespace webhookd

#endif  // WEBHOOKD_STORAGE_LEVELDB_REPAIR_H_
