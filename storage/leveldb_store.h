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
// written once, by InsertEvent, and never removed. Deleting an endpoint keeps
// its deliveries, their index keys and its st/ record.
//
// Page tokens are the web-safe base64 of the last index key a list call
// examined; a token is valid only for the filter that produced it.

#ifndef WEBHOOKD_STORAGE_LEVELDB_STORE_H_
#define WEBHOOKD_STORAGE_LEVELDB_STORE_H_

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
  absl::Status InsertEvent(const EventRecord& event,
                           absl::Span<const Delivery> deliveries) override;
  absl::StatusOr<SubmitEventResponse> FindSubmission(
      int64_t user_id, std::string_view idempotency_key) override;
  absl::StatusOr<EventRecord> GetEvent(std::string_view id) override;
  absl::StatusOr<Delivery> GetDelivery(std::string_view id) override;
  absl::StatusOr<DeliveryPage> ListDeliveries(
      const DeliveryFilter& filter, int page_size,
      std::string_view page_token) override;
  absl::Status UpdateDeliveries(absl::Span<const DeliveryChange> changes,
                                Durability durability) override;
  absl::StatusOr<std::vector<QueuedDelivery>> LoadQueue() override;
  absl::StatusOr<EndpointStats> GetEndpointStats(
      std::string_view endpoint_id) override;

 private:
  LevelDbStore(std::unique_ptr<leveldb::Cache> block_cache,
               std::unique_ptr<const leveldb::FilterPolicy> filter_policy,
               std::unique_ptr<leveldb::DB> db, bool verify_checksums,
               int max_scan_per_list);

  leveldb::ReadOptions DefaultReadOptions() const;
  // Reads the value of key into *value. NotFound if absent.
  absl::Status Get(std::string_view key, std::string* value);
  // Adds the st/ writes for the finished attempts among changes to batch,
  // reading the current totals. The batch must be written before mu_ is
  // released, or concurrent callers would lose each other's counts.
  absl::Status AddStats(absl::Span<const DeliveryChange> changes,
                        leveldb::WriteBatch* batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Write(leveldb::WriteBatch* batch, bool sync);

  // Constant after construction. The block cache and filter policy are used
  // by db_, so they are declared first and destroyed last.
  const std::unique_ptr<leveldb::Cache> block_cache_;
  const std::unique_ptr<const leveldb::FilterPolicy> filter_policy_;
  const std::unique_ptr<leveldb::DB> db_;
  // Paranoid stores also check the checksum of every block they read.
  const bool verify_checksums_;
  const int max_scan_per_list_;

  // Serialises the read-modify-write mutations: those touching st/ records
  // and PutEndpoint/DeleteEndpoint (which read the old ept/ key). It is held
  // from the read until the batch is written. Writes that read nothing
  // (InsertEvent, UpdateDeliveries without finished attempts) do not take
  // it, so LevelDB can group-commit them. It guards LevelDB keys rather
  // than members, hence no ABSL_GUARDED_BY here.
  absl::Mutex mu_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_STORAGE_LEVELDB_STORE_H_
