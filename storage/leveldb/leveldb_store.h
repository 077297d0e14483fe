// LevelDbStore: the Store kept in one LevelDB database on local disk.
//
// Key schema. Every key starts with a short family prefix ending in '/'; no
// prefix is a prefix of another, so each family is one contiguous range.
// Components written <len>s are a 4-byte big-endian length followed by the
// bytes of s, so ids that contain '/' or NUL (thread ids are caller-chosen)
// cannot make one key family entry look like another's. <ts> is the 8-byte
// big-endian complement of the order-preserving encoding of a delivery's
// create_time in unix micros, so ascending key order is newest first.
// <user> is the 8-byte big-endian order-preserving encoding of a user id.
//
//   meta/schema_version                  -> "1"
//   ep/<endpoint_id>                     -> webhook.v1.Endpoint (with secret)
//   ept/<len>thread_id<endpoint_id>      -> ""  (endpoints of a thread)
//   ev/<event_id>                        -> storage.EventRecord (payload)
//   idem/<user>/<idempotency_key>        -> storage.IdempotencyRecord
//   d/<delivery_id>                      -> webhook.v1.Delivery, no payload
//                                           (GetDelivery joins it from ev/)
//   dl/<ts><delivery_id>                 -> ""  (all deliveries)
//   dle/<len>endpoint_id<ts><delivery_id> -> "" (deliveries of an endpoint)
//   dlt/<len>thread_id<ts><delivery_id>  -> ""  (deliveries of a thread)
//   q/<delivery_id>                      -> storage.QueueEntryRecord, present
//                                           exactly while the delivery is
//                                           PENDING or RETRYING
//   st/<endpoint_id>                     -> storage.StatsRecord
//
// A delivery's create_time never changes, so its three list index keys are
// written once, by InsertEvent, and removed only with the delivery, by
// PruneBefore (log retention). Deleting an endpoint keeps its deliveries,
// their index keys and its st/ record.
//
// Write failures. LevelDB's log writer cannot carry on after a failed append
// (its idea of the block offset no longer matches the file), and a failed
// sync or background write makes every later write fail. So after any failed
// write the store closes the database and opens it again (recovering the log
// up to the last whole record, into a new log file) before its next
// operation; while that fails (the disk is still full, say), every call
// returns Unavailable. Once the disk works again the next call reopens it.
//
// Page tokens are the web-safe base64 of the last index key a list call
// examined; a token is valid only for the filter that produced it.

#ifndef WEBHOOKD_STORAGE_LEVELDB_LEVELDB_STORE_H_
#define WEBHOOKD_STORAGE_LEVELDB_LEVELDB_STORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "storage/store.h"

namespace leveldb {
class Cache;
class DB;
class Env;
class FilterPolicy;
struct Options;
struct ReadOptions;
class WriteBatch;
}  // namespace leveldb

namespace webhookd {

struct LevelDbStoreOptions {
  // Verify checksums aggressively and refuse to open a damaged database.
  bool paranoid_checks = true;
  // The file system LevelDB uses; nullptr is the real one. Not owned: must
  // outlive the store. Tests pass a wrapper that injects faults.
  leveldb::Env* env = nullptr;
  // Size of the LRU cache of uncompressed blocks; 0 uses LevelDB's 8 MiB.
  size_t block_cache_bytes = 32 << 20;
  // Bytes buffered in memory before a table is written.
  size_t write_buffer_bytes = 4 << 20;
  int max_open_files = 1000;
  // Bloom filter bits per key for point lookups; 0 disables the filter.
  int bloom_filter_bits_per_key = 10;
  // Upper bound on the index entries one ListDeliveries or ListEndpoints call
  // examines. A call that reaches it returns what it found (possibly nothing)
  // and a next_page_token that continues the scan.
  int max_scan_per_list = 10000;
  // Bytes of recently written or read event payloads kept in memory, so
  // that dispatching the deliveries of an event (one or ten thousand) does
  // not read and parse the event record again each time; 0 disables it.
  size_t payload_cache_bytes = 16 << 20;
};

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
  // deliveries whose event (payload) was lost (ended as FAILED).
  size_t dangling_index_entries = 0;
  size_t dangling_queue_entries = 0;
  size_t dangling_endpoint_entries = 0;
  size_t deliveries_without_event = 0;
  // Queued deliveries (PENDING or RETRYING) whose queue entry was lost,
  // queued again.
  size_t requeued_deliveries = 0;

  // A human-readable account of all of the above, one item a line.
  std::string ToString() const;
};

// Runs LevelDB's repair (leveldb::RepairDB) on the database in dir, then
// makes the webhookd records consistent again (see RepairReport). The
// directory must not be in use (FailedPrecondition otherwise). Unavailable
// or DataLoss if the repaired database still cannot be opened.
absl::StatusOr<RepairReport> RepairLevelDbStore(
    const std::string& dir, const LevelDbStoreOptions& options = {});

// LevelDbStore is safe for concurrent use by multiple threads. One process
// at a time may open a directory.
class LevelDbStore final : public Store {
 public:
  // Opens the database in dir, creating dir and the database if missing.
  // Returns FailedPrecondition if another store (in this or another process)
  // has dir open, DataLoss if the database is corrupted, Unavailable for
  // other I/O errors.
  static absl::StatusOr<std::unique_ptr<LevelDbStore>> Open(
      const std::string& dir, const LevelDbStoreOptions& options = {});

  ~LevelDbStore() override;

  // Store
  absl::Status PutEndpoint(const Endpoint& endpoint) override;
  absl::StatusOr<Endpoint> GetEndpoint(std::string_view id) override;
  absl::StatusOr<EndpointPage> ListEndpoints(
      const EndpointFilter& filter, int page_size,
      std::string_view page_token) override;
  absl::StatusOr<std::vector<Endpoint>> LoadEndpoints() override;
  absl::Status DeleteEndpoint(
      std::string_view id, absl::Span<const DeliveryChange> changes) override;
  using Store::InsertEvent;
  absl::Status InsertEvents(absl::Span<const NewEvent> events) override;
  absl::StatusOr<SubmitEventResponse> FindSubmission(
      int64_t user_id, std::string_view idempotency_key) override;
  absl::StatusOr<EventRecord> GetEvent(std::string_view id) override;
  absl::StatusOr<Delivery> GetDelivery(std::string_view id) override;
  absl::StatusOr<DeliveryPage> ListDeliveries(
      const DeliveryFilter& filter, int page_size,
      std::string_view page_token) override;
  absl::Status UpdateDeliveries(absl::Span<const DeliveryChange> changes,
                                Durability durability) override;
  absl::Status ScanQueue(
      const std::function<void(const QueuedDelivery&)>& visit) override;
  absl::StatusOr<EndpointStats> GetEndpointStats(
      std::string_view endpoint_id) override;
  absl::StatusOr<PruneResult> PruneBefore(absl::Time cutoff,
                                          absl::Time idempotency_cutoff,
                                          size_t max_records) override;

 private:
  LevelDbStore(std::string dir, std::unique_ptr<leveldb::Options> db_options,
               std::unique_ptr<leveldb::Cache> block_cache,
               std::unique_ptr<const leveldb::FilterPolicy> filter_policy,
               std::unique_ptr<leveldb::DB> db, bool verify_checksums,
               int max_scan_per_list,
               std::unique_ptr<leveldb::Cache> payload_cache);

  // The payload of an event, from the payload cache or the ev/ record.
  absl::StatusOr<std::string> EventPayload(const leveldb::ReadOptions& read,
                                           std::string_view event_id)
      ABSL_SHARED_LOCKS_REQUIRED(db_mu_);
  void CachePayload(std::string_view event_id, const std::string& payload);

  // After a failed write: closes the database and opens it again. On
  // failure db_ stays null and reopen_needed_ set, for the next call.
  void ReopenIfNeeded() ABSL_LOCKS_EXCLUDED(db_mu_);
  // Unavailable with the reason the database is closed.
  absl::Status ClosedError() const ABSL_SHARED_LOCKS_REQUIRED(db_mu_);

  leveldb::ReadOptions DefaultReadOptions() const;
  // Reads the value of key into *value. NotFound if absent.
  absl::Status Get(std::string_view key, std::string* value)
      ABSL_SHARED_LOCKS_REQUIRED(db_mu_);
  // Adds the st/ writes for the finished attempts among changes to batch,
  // reading the current totals. The batch must be written before mu_ is
  // released, or concurrent callers would lose each other's counts.
  absl::Status AddStats(absl::Span<const DeliveryChange> changes,
                        leveldb::WriteBatch* batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) ABSL_SHARED_LOCKS_REQUIRED(db_mu_);
  // Writes batch; a failure schedules a reopen (see the file comment).
  absl::Status Write(leveldb::WriteBatch* batch, bool sync)
      ABSL_SHARED_LOCKS_REQUIRED(db_mu_);

  // Constant after construction. The block cache and filter policy are used
  // by db_, so they are declared first and destroyed last.
  const std::string dir_;
  const std::unique_ptr<leveldb::Options> db_options_;
  const std::unique_ptr<leveldb::Cache> block_cache_;
  const std::unique_ptr<const leveldb::FilterPolicy> filter_policy_;
  // Paranoid stores also check the checksum of every block they read.
  const bool verify_checksums_;
  const int max_scan_per_list_;
  // Event id -> std::string payload; events never change. Null if disabled.
  const std::unique_ptr<leveldb::Cache> payload_cache_;

  // Held shared by every operation while it uses db_, exclusively to close
  // and reopen it. Taken before mu_, never while holding it.
  mutable absl::Mutex db_mu_;
  // Null while a reopen keeps failing.
  std::unique_ptr<leveldb::DB> db_ ABSL_GUARDED_BY(db_mu_);
  absl::Status reopen_error_ ABSL_GUARDED_BY(db_mu_);
  // A write failed: reopen before the next operation.
  std::atomic<bool> reopen_needed_{false};

  // Serialises PruneBefore calls; where the ev/ and idem/ sweeps resume.
  absl::Mutex prune_mu_;
  std::string event_sweep_cursor_ ABSL_GUARDED_BY(prune_mu_);
  std::string idempotency_sweep_cursor_ ABSL_GUARDED_BY(prune_mu_);

  // Serialises the read-modify-write mutations: those touching st/ records
  // and PutEndpoint/DeleteEndpoint (which read the old ept/ key). It is held
  // from the read until the batch is written. Writes that read nothing
  // (InsertEvent, UpdateDeliveries without finished attempts) do not take
  // it, so LevelDB can group-commit them. It guards LevelDB keys rather
  // than members, hence no ABSL_GUARDED_BY here.
  absl::Mutex mu_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_STORAGE_LEVELDB_LEVELDB_STORE_H_
