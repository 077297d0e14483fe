#include "storage/leveldb/pruning.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "leveldb/iterator.h"
#include "server/common/status_macros.h"
#include "storage/leveldb/keys.h"
#include "storage/leveldb/record_io.h"

namespace webhookd::leveldb_internal {
namespace {

using webhookd::storage::IdempotencyRecord;
namespace keys = ::webhookd::leveldb_keys;

// Examines up to max_examined keys with prefix, going on after *cursor
// (from the start when empty), and adds a Delete to batch for each key
// `old(key, value)` says is due. Leaves in *cursor where the next sweep goes
// on, empty once the family was walked to its end. Returns the deletes.
template <typename IsOld>
absl::StatusOr<size_t> Sweep(leveldb::DB& db,
                             const leveldb::ReadOptions& options,
                             std::string_view prefix, size_t max_examined,
                             std::string* cursor, leveldb::WriteBatch* batch,
                             IsOld old) {
  std::unique_ptr<leveldb::Iterator> it(db.NewIterator(options));
  it->Seek(ToSlice(cursor->empty() ? std::string(prefix) : *cursor));
  if (!cursor->empty() && it->Valid() && ToView(it->key()) == *cursor) {
    it->Next();
  }
  size_t examined = 0;
  size_t deleted = 0;
  cursor->clear();
  for (; it->Valid() && ToView(it->key()).starts_with(prefix); it->Next()) {
    if (examined == max_examined) {
      break;
    }
    ++examined;
    cursor->assign(it->key().data(), it->key().size());
    absl::StatusOr<bool> due = old(ToView(it->key()), ToView(it->value()));
    if (!due.ok()) return due.status();
    if (*due) {
      batch->Delete(it->key());
      ++deleted;
    }
  }
  WEBHOOKD_RETURN_IF_ERROR(FromLevelDb(it->status(), "sweep"));
  // Walked to the end of the family: the next sweep starts over.
  if (!it->Valid() || !ToView(it->key()).starts_with(prefix)) cursor->clear();
  return deleted;
}

}  // namespace

absl::StatusOr<PruneResult> AddPruneDeletes(
    leveldb::DB& db, const leveldb::ReadOptions& read, absl::Time cutoff,
    absl::Time idempotency_cutoff, size_t max_records, SweepCursors* cursors,
    leveldb::WriteBatch* batch) {
  PruneResult result;
  if (max_records == 0) return result;
  const int64_t cutoff_micros = absl::ToUnixMicros(cutoff);
  const int64_t idempotency_cutoff_micros =
      absl::ToUnixMicros(idempotency_cutoff);

  // dl/ sorts newest first: walk it backwards from its end, oldest first,
  // until the first delivery created at or after the cutoff.
  std::set<std::string, std::less<>> pruned;
  std::set<std::string> events;
  {
    std::unique_ptr<leveldb::Iterator> it(db.NewIterator(read));
    it->Seek(ToSlice(keys::PrefixEnd(keys::kDeliveryListPrefix)));
    if (it->Valid()) {
      it->Prev();
    } else {
      it->SeekToLast();
    }
    for (; it->Valid() &&
           ToView(it->key()).starts_with(keys::kDeliveryListPrefix);
         it->Prev()) {
      const std::string_view key = ToView(it->key());
      const std::optional<keys::DeliveryIndexEntry> entry =
          keys::ParseDeliveryIndexKey(key);
      if (!entry.has_value()) {
        return absl::DataLossError(
            Cat("malformed index key \"", keys::Printable(key), "\""));
      }
      if (entry->create_micros >= cutoff_micros) break;
      const std::string id(entry->delivery_id);
      Delivery delivery;
      absl::Status status =
          GetMessage(db, read, keys::DeliveryKey(id), "", &delivery);
      if (absl::IsNotFound(status)) {
        batch->Delete(it->key());  // Dangling: its delivery is gone.
        continue;
      }
      WEBHOOKD_RETURN_IF_ERROR(status);
      // A queued delivery is still to be attempted, however old. (Not
      // atomic with a concurrent RetryDelivery of a delivery this old: the
      // retry could be lost, never an acknowledged first delivery.)
      absl::StatusOr<bool> queued = Exists(db, read, keys::QueueKey(id));
      if (!queued.ok()) return queued.status();
      if (*queued) continue;
      if (result.deliveries == max_records) {
        result.more = true;
        break;
      }
      batch->Delete(it->key());
      batch->Delete(keys::DeliveryKey(id));
      batch->Delete(keys::DeliveryIndexKey(
          keys::DeliveryEndpointPrefix(delivery.endpoint_id()),
          entry->create_micros, id));
      batch->Delete(keys::DeliveryIndexKey(
          keys::DeliveryThreadPrefix(delivery.thread_id()),
          entry->create_micros, id));
      events.insert(delivery.event_id());
      pruned.insert(id);
      ++result.deliveries;
    }
    WEBHOOKD_RETURN_IF_ERROR(FromLevelDb(it->status(), "scan"));
  }

  // An event goes with the last of its deliveries.
  auto unreferenced = [&](const EventRecord& event) -> absl::StatusOr<bool> {
    for (const std::string& id : event.delivery_ids()) {
      if (pruned.contains(id)) continue;
      absl::StatusOr<bool> found = Exists(db, read, keys::DeliveryKey(id));
      if (!found.ok()) return found.status();
      if (*found) return false;
    }
    return true;
  };
  for (const std::string& event_id : events) {
    EventRecord event;
    absl::Status status =
        GetMessage(db, read, keys::EventKey(event_id), "", &event);
    if (absl::IsNotFound(status)) continue;
    WEBHOOKD_RETURN_IF_ERROR(status);
    absl::StatusOr<bool> unused = unreferenced(event);
    if (!unused.ok()) return unused.status();
    if (*unused) {
      batch->Delete(keys::EventKey(event_id));
      ++result.events;
    }
  }

  // Events that never had a delivery (or lost them all otherwise), and
  // idempotency records, are found by sweeping their families a part at a
  // time: neither has an index by time.
  const size_t sweep = max_records * 4;
  absl::StatusOr<size_t> swept_events =
      Sweep(db, read, keys::kEventPrefix, sweep, &cursors->events, batch,
            [&](std::string_view key,
                std::string_view value) -> absl::StatusOr<bool> {
              EventRecord event;
              WEBHOOKD_RETURN_IF_ERROR(ParseValue(key, value, &event));
              if (event.create_time_unix_micros() >= cutoff_micros ||
                  events.contains(event.id())) {
                return false;
              }
              return unreferenced(event);
            });
  if (!swept_events.ok()) return swept_events.status();
  result.events += *swept_events;
  absl::StatusOr<size_t> swept_keys = Sweep(
      db, read, keys::kIdempotencyPrefix, sweep, &cursors->idempotency_records,
      batch,
      [&](std::string_view key,
          std::string_view value) -> absl::StatusOr<bool> {
        IdempotencyRecord record;
        WEBHOOKD_RETURN_IF_ERROR(ParseValue(key, value, &record));
        return record.create_time_unix_micros() < idempotency_cutoff_micros;
      });
  if (!swept_keys.ok()) return swept_keys.status();
  result.idempotency_records = *swept_keys;
  return result;
}

}  // namespace webhookd::leveldb_internal
