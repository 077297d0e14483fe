// LevelDbStore: the Store kept in one LevelDB database on local disk. Its
// key schema is in keys.h, its log retention in pruning.h, the offline repair
// of a damaged database in repair.h.
//
// Write failures. LevelDB's log writer cannot carry on after a failed append
// (its idea of the block offset no longer matches the file), and a failed
// sync or background write makes every later write fail. So after any failed
// write the store closes the database and opens it again (recovering the log
// up to the last whole record, into a new log file) before its next
// operation; while that fails (the disk is still full, say), every call
// returns Unavailable. Once the disk works again the next call reopens it.

#ifndef WEBHOOKD_STORAGE_LEVELDB_LEVELDB_STORE_H_
#define WEBHOOKD_STORAGE_LEVELDB_LEVELDB_STORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "storage/endpoint_counts.h"
#include "storage/leveldb/pruning.h"
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
  // Bytes buffered in memory before a table is written (LevelDB keeps up to
  // two such buffers while one is flushed). Every batch writes seven key
  // families, so each level-0 table spans the whole key space and each
  // level-0 compaction rewrites all of level 1: four times LevelDB's 4 MiB
  // default means a quarter as many. At 16 MiB the background compaction
  // writes 43% fewer bytes per delivery and batches deliver 8 to 17% more
  // per second on two cores, for 24 MiB more memory (BENCHMARKS.md).
  size_t write_buffer_bytes = 16 << 20;
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
  absl::Status AddDeliveries(absl::Span<const Delivery> deliveries,
                             absl::Span<const DeliveryChange> changes) override;
  absl::StatusOr<Submission> FindSubmission(
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
  absl::StatusOr<EndpointCounts> GetEndpointCounts(
      std::string_view endpoint_id) override;
  absl::StatusOr<FailureStreak> GetFailureStreak(
      std::string_view endpoint_id) override;
  absl::Status ResetFailureStreak(std::string_view endpoint_id) override;
  absl::StatusOr<PruneResult> PruneBefore(absl::Time cutoff,
                                          absl::Time idempotency_cutoff,
                                          size_t max_records) override;
  absl::Status Compact() override;
  absl::StatusOr<std::string> SettingOrInsert(std::string_view name,
                                              std::string_view value) override;

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
  // At the first open by a release that keeps answered and the delivery
  // counts in st/ records: sets them up (keys::kCountsVersionKey).
  absl::Status UpgradeCounts() ABSL_LOCKS_EXCLUDED(db_mu_, mu_);
  // The stats record of an endpoint; empty if it has none.
  absl::StatusOr<storage::StatsRecord> ReadStats(std::string_view endpoint_id)
      ABSL_SHARED_LOCKS_REQUIRED(db_mu_);
  // Adds to `batch` a new delivery, queued at FirstDue, and its list
  // index entries.
  absl::Status AddNewDelivery(const Delivery& delivery,
                              leveldb::WriteBatch* batch);

  // After a failed write: closes the database and opens it again. On
  // failure db_ stays null and reopen_needed_ set, for the next call.
  void ReopenIfNeeded() ABSL_LOCKS_EXCLUDED(db_mu_);
  // Unavailable with the reason the database is closed.
  absl::Status ClosedError() const ABSL_SHARED_LOCKS_REQUIRED(db_mu_);

  leveldb::ReadOptions DefaultReadOptions() const;
  // Reads the value of key into *value. NotFound if absent.
  absl::Status Get(std::string_view key, std::string* value)
      ABSL_SHARED_LOCKS_REQUIRED(db_mu_);
  // Writes `batch` with the st/ records that apply `deltas`, each read from
  // stats_cache_ or the database; once written, the cache has them. Under
  // mu_ from the read to the write, so that concurrent callers never lose
  // each other's counts.
  absl::Status WriteWithStats(const CountsDeltas& deltas,
                              leveldb::WriteBatch* batch, bool sync)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) ABSL_SHARED_LOCKS_REQUIRED(db_mu_);
  // The stats record of an endpoint, from stats_cache_ or the database.
  absl::StatusOr<storage::StatsRecord> CachedStats(std::string_view endpoint_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) ABSL_SHARED_LOCKS_REQUIRED(db_mu_);
  // After a write of st/ records: the cache takes `written` if the write
  // succeeded, and forgets everything if not (the database may or may not
  // have them once reopened).
  void UpdateStatsCache(
      const absl::Status& write,
      std::vector<std::pair<std::string, storage::StatsRecord>> written)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
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
  // Orders SettingOrInsert's read and write.
  absl::Mutex setting_mu_;
  // Null while a reopen keeps failing.
  std::unique_ptr<leveldb::DB> db_ ABSL_GUARDED_BY(db_mu_);
  absl::Status reopen_error_ ABSL_GUARDED_BY(db_mu_);
  // A write failed: reopen before the next operation.
  std::atomic<bool> reopen_needed_{false};

  // Serialises PruneBefore calls; where the ev/ and idem/ sweeps resume.
  absl::Mutex prune_mu_;
  leveldb_internal::SweepCursors sweep_cursors_ ABSL_GUARDED_BY(prune_mu_);

  // Serialises the read-modify-write mutations: those touching st/ records
  // and PutEndpoint/DeleteEndpoint (which read the old ept/ key). It is held
  // from the read until the batch is written. Writes that read nothing
  // (InsertEvents of test deliveries only, UpdateDeliveries that count
  // nothing) do not take it, so LevelDB can group-commit them. It guards
  // LevelDB keys rather than members, hence no ABSL_GUARDED_BY here.
  absl::Mutex mu_;
  // The st/ records last written, by endpoint id: every submit and every
  // recorded attempt adds to its endpoints' records, which would otherwise
  // be read back each time (10,000 reads for one event to 10,000
  // endpoints). Emptied when it reaches kMaxCachedStats entries.
  absl::flat_hash_map<std::string, storage::StatsRecord> stats_cache_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace webhookd

#endif  // WEBHOOKD_STORAGE_LEVELDB_LEVELDB_STORE_H_
