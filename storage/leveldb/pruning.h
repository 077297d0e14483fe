// Log retention in the LevelDB store: which records one PruneBefore call
// removes (see Store::PruneBefore).

#ifndef WEBHOOKD_STORAGE_LEVELDB_PRUNING_H_
#define WEBHOOKD_STORAGE_LEVELDB_PRUNING_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/store.h"

namespace leveldb {
class DB;
struct ReadOptions;
class WriteBatch;
}  // namespace leveldb

namespace webhookd::leveldb_internal {

// Where the sweeps of the families without an index by time (ev/ and idem/)
// go on: the last key examined, empty to start from the beginning.
struct SweepCursors {
  std::string events;
  std::string idempotency_records;
};

// Adds to batch the deletes of one PruneBefore call, reading through `read`
// (which should name a snapshot), and moves the cursors on. Writes nothing:
// the caller writes batch, and must serialise calls sharing cursors.
absl::StatusOr<PruneResult> AddPruneDeletes(
    leveldb::DB& db, const leveldb::ReadOptions& read, absl::Time cutoff,
    absl::Time idempotency_cutoff, size_t max_records, SweepCursors* cursors,
    leveldb::WriteBatch* batch);

}  // namespace webhookd::leveldb_internal

#endif  // WEBHOOKD_STORAGE_LEVELDB_PRUNING_H_
