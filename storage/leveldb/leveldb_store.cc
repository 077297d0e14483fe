#include "storage/leveldb/leveldb_store.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "leveldb/cache.h"
#include "leveldb/db.h"
#include "leveldb/env.h"
#include "leveldb/filter_policy.h"
#include "leveldb/iterator.h"
#include "leveldb/options.h"
#include "leveldb/slice.h"
#include "leveldb/status.h"
#include "leveldb/write_batch.h"
#include "server/common/limits.h"
#include "server/common/status_macros.h"
#include "server/common/string_view.h"
#include "server/common/time_util.h"
#include "storage/leveldb/keys.h"
#include "storage/leveldb/pruning.h"
#include "storage/leveldb/record_io.h"

namespace webhookd {
namespace {

using leveldb_internal::AddDeliveryState;
using leveldb_internal::Cat;
using leveldb_internal::FromLevelDb;
using leveldb_internal::GetMessage;
using leveldb_internal::GetValue;
using leveldb_internal::OpenError;
using leveldb_internal::ParseValue;
using leveldb_internal::ReadView;
using leveldb_internal::ScanAll;
using leveldb_internal::ToSlice;
using leveldb_internal::ToStd;
using leveldb_internal::ToView;
using webhookd::storage::IdempotencyRecord;
using webhookd::storage::QueueEntryRecord;
using webhookd::storage::StatsRecord;
namespace keys = ::webhookd::leveldb_keys;

// Starts every operation of LevelDbStore: reopens the database if a write
// failed, then holds db_mu_ shared until the end of the enclosing scope.
#define STORE_USE_DB()                     \
  ReopenIfNeeded();                        \
  absl::ReaderMutexLock db_lock_(&db_mu_); \
  if (db_ == nullptr) return ClosedError()

// Walks the keys of one index range for a page, bounded in work.
//
// Visit(key, value) is called for each key after the token's (or from the
// start of the range) and returns an error, or whether it added a result.
// The walk stops when the page is full or max_scan keys were visited; the
// returned token is non-empty when keys remain in the range.
template <typename Visit>
absl::StatusOr<std::string> ScanPage(leveldb::DB& db, const ReadView& view,
                                     std::string_view prefix,
                                     std::string_view page_token, int page_size,
                                     int max_scan, Visit visit) {
  std::string start(prefix);
  if (!page_token.empty()) {
    absl::StatusOr<std::string> key = keys::DecodePageToken(page_token, prefix);
    if (!key.ok()) return key.status();
    start = *std::move(key);
  }
  std::unique_ptr<leveldb::Iterator> it(db.NewIterator(view.options()));
  it->Seek(ToSlice(start));
  if (!page_token.empty() && it->Valid() && ToView(it->key()) == start) {
    it->Next();
  }
  int found = 0;
  int scanned = 0;
  std::string last_key;
  bool more = false;
  for (; it->Valid() && ToView(it->key()).starts_with(prefix); it->Next()) {
    if (found >= page_size || scanned >= max_scan) {
      more = true;
      break;
    }
    ++scanned;
    last_key.assign(it->key().data(), it->key().size());
    absl::StatusOr<bool> added = visit(last_key, ToView(it->value()));
    if (!added.ok()) return added.status();
    if (*added) ++found;
  }
  WEBHOOKD_RETURN_IF_ERROR(FromLevelDb(it->status(), "scan"));
  return more ? keys::EncodePageToken(last_key) : std::string();
}

}  // namespace

absl::StatusOr<std::unique_ptr<LevelDbStore>> LevelDbStore::Open(
    const std::string& dir, const LevelDbStoreOptions& options) {
  auto owned_options = std::make_unique<leveldb::Options>();
  leveldb::Options& db_options = *owned_options;
  db_options.create_if_missing = true;
  db_options.paranoid_checks = options.paranoid_checks;
  db_options.write_buffer_size = options.write_buffer_bytes;
  db_options.max_open_files = options.max_open_files;
  if (options.env != nullptr) {
    db_options.env = options.env;
  } else {
    // LevelDB creates only the last component of the path.
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    if (error) {
      return absl::UnavailableError(
          Cat("cannot create data directory \"", dir, "\": ", error.message()));
    }
  }
  std::unique_ptr<leveldb::Cache> block_cache;
  if (options.block_cache_bytes > 0) {
    block_cache.reset(leveldb::NewLRUCache(options.block_cache_bytes));
    db_options.block_cache = block_cache.get();
  }
  std::unique_ptr<const leveldb::FilterPolicy> filter_policy;
  if (options.bloom_filter_bits_per_key > 0) {
    filter_policy.reset(
        leveldb::NewBloomFilterPolicy(options.bloom_filter_bits_per_key));
    db_options.filter_policy = filter_policy.get();
  }

  leveldb::DB* raw_db = nullptr;
  leveldb::Status s = leveldb::DB::Open(db_options, dir, &raw_db);
  if (!s.ok()) return OpenError(dir, s);
  std::unique_ptr<LevelDbStore> store(new LevelDbStore(
      dir, std::move(owned_options), std::move(block_cache),
      std::move(filter_policy), std::unique_ptr<leveldb::DB>(raw_db),
      options.paranoid_checks,
      options.max_scan_per_list > 0 ? options.max_scan_per_list : 1,
      options.payload_cache_bytes > 0
          ? std::unique_ptr<leveldb::Cache>(
                leveldb::NewLRUCache(options.payload_cache_bytes))
          : nullptr));

  // The schema version lets a later release recognise (and migrate) this
  // layout rather than misread it.
  absl::Status status;
  {
    absl::ReaderMutexLock lock(&store->db_mu_);
    std::string version;
    status = store->Get(keys::kSchemaVersionKey, &version);
    if (absl::IsNotFound(status)) {
      leveldb::WriteBatch batch;
      batch.Put(ToSlice(keys::kSchemaVersionKey),
                ToSlice(keys::kSchemaVersion));
      status = store->Write(&batch, /*sync=*/true);
    } else if (status.ok() && version != keys::kSchemaVersion) {
      status = absl::FailedPreconditionError(
          Cat("data directory \"", dir, "\" has storage schema version \"",
              keys::Printable(version), "\"; this webhookd reads version ",
              keys::kSchemaVersion));
    }
  }
  if (status.ok()) status = store->UpgradeCounts();
  if (absl::IsDataLoss(status)) {
    return absl::DataLossError(Cat(
        "data directory \"", dir,
        "\" holds a corrupted LevelDB database: ", ToStd(status.message())));
  }
  if (!status.ok()) return status;
  return store;
}

absl::Status LevelDbStore::UpgradeCounts() {
  STORE_USE_DB();
  absl::MutexLock lock(&mu_);
  std::string version;
  absl::Status status = Get(keys::kCountsVersionKey, &version);
  if (status.ok() && version == keys::kCountsVersion) return status;
  if (!status.ok() && !absl::IsNotFound(status)) return status;
  // Attempts of earlier releases all added their response time (a recount
  // after a repair keeps what was counted since); the deliveries in
  // progress are those queued, test deliveries aside. Deliveries that
  // ended before the upgrade are not counted.
  const bool upgrade = absl::IsNotFound(status);
  std::map<std::string, StatsRecord, std::less<>> records;
  ReadView view(*db_, DefaultReadOptions());
  WEBHOOKD_RETURN_IF_ERROR(ScanAll(
      *db_, view.options(), keys::kStatsPrefix,
      [&](std::string_view key, std::string_view value) {
        StatsRecord& record =
            records[std::string(keys::IdAfter(keys::kStatsPrefix, key))];
        WEBHOOKD_RETURN_IF_ERROR(ParseValue(key, value, &record));
        if (upgrade) record.set_answered(record.total());
        record.clear_deliveries_in_progress();
        return absl::OkStatus();
      }));
  QueueEntryRecord entry;
  WEBHOOKD_RETURN_IF_ERROR(ScanAll(
      *db_, view.options(), keys::kQueuePrefix,
      [&](std::string_view key, std::string_view value) {
        WEBHOOKD_RETURN_IF_ERROR(ParseValue(key, value, &entry));
        if (entry.test()) return absl::OkStatus();
        StatsRecord& record = records[entry.endpoint_id()];
        record.set_deliveries_in_progress(record.deliveries_in_progress() + 1);
        return absl::OkStatus();
      }));
  leveldb::WriteBatch batch;
  for (const auto& [endpoint_id, record] : records) {
    batch.Put(keys::StatsKey(endpoint_id), record.SerializeAsString());
  }
  stats_cache_.clear();  // Rewritten here (empty at open anyway).
  batch.Put(ToSlice(keys::kCountsVersionKey), ToSlice(keys::kCountsVersion));
  return Write(&batch, /*sync=*/true);
}

LevelDbStore::LevelDbStore(
    std::string dir, std::unique_ptr<leveldb::Options> db_options,
    std::unique_ptr<leveldb::Cache> block_cache,
    std::unique_ptr<const leveldb::FilterPolicy> filter_policy,
    std::unique_ptr<leveldb::DB> db, bool verify_checksums,
    int max_scan_per_list, std::unique_ptr<leveldb::Cache> payload_cache)
    : dir_(std::move(dir)),
      db_options_(std::move(db_options)),
      block_cache_(std::move(block_cache)),
      filter_policy_(std::move(filter_policy)),
      verify_checksums_(verify_checksums),
      max_scan_per_list_(max_scan_per_list),
      payload_cache_(std::move(payload_cache)),
      db_(std::move(db)) {}

LevelDbStore::~LevelDbStore() {
  // Before the cache and filter policy it uses.
  absl::MutexLock lock(&db_mu_);
  db_.reset();
}

leveldb::ReadOptions LevelDbStore::DefaultReadOptions() const {
  leveldb::ReadOptions options;
  options.verify_checksums = verify_checksums_;
  return options;
}

absl::Status LevelDbStore::Get(std::string_view key, std::string* value) {
  return GetValue(*db_, DefaultReadOptions(), key, value);
}

absl::Status LevelDbStore::Write(leveldb::WriteBatch* batch, bool sync) {
  if (reopen_needed_.load()) {
    // Another write failed since this call began: the log must not be
    // appended to until the database is reopened.
    return absl::UnavailableError(
        "write: an earlier write failed; the database is being reopened");
  }
  leveldb::WriteOptions options;
  options.sync = sync;
  leveldb::Status s = db_->Write(options, batch);
  if (!s.ok()) reopen_needed_.store(true);
  return FromLevelDb(s, "write");
}

void LevelDbStore::ReopenIfNeeded() {
  if (!reopen_needed_.load()) return;
  absl::MutexLock lock(&db_mu_);
  if (!reopen_needed_.load()) return;  // Another caller did it.
  // Closing waits for LevelDB's background work; the new instance recovers
  // the log up to its last whole record and starts a new log file.
  db_.reset();
  leveldb::DB* raw_db = nullptr;
  leveldb::Status s = leveldb::DB::Open(*db_options_, dir_, &raw_db);
  if (!s.ok()) {
    reopen_error_ = OpenError(dir_, s);
    return;
  }
  db_.reset(raw_db);
  reopen_error_ = absl::OkStatus();
  reopen_needed_.store(false);
}

absl::Status LevelDbStore::ClosedError() const {
  return absl::UnavailableError(
      Cat("the database is closed after a failed write and cannot be "
          "reopened yet: ",
          ToStd(reopen_error_.message())));
}

namespace {

// Adds `delta` to the counts and failure streak in `record`.
void AddDelta(const CountsDelta& delta, StatsRecord* record) {
  const EndpointCounts& counts = delta.counts;
  record->set_total(record->total() + counts.attempts);
  record->set_successful(record->successful() + counts.successes);
  // failed is total - successful; kept for the readers of earlier releases.
  record->set_failed(record->failed() + counts.attempts - counts.successes);
  record->set_answered(record->answered() + counts.answered);
  record->set_response_time_ms_sum(record->response_time_ms_sum() +
                                   counts.response_time_ms_sum);
  record->set_deliveries_succeeded(record->deliveries_succeeded() +
                                   counts.deliveries_succeeded);
  record->set_deliveries_failed(record->deliveries_failed() +
                                counts.deliveries_failed);
  record->set_deliveries_in_progress(record->deliveries_in_progress() +
                                     counts.deliveries_in_progress);
  const StreakChange& streak = delta.streak;
  if (streak.reset) {
    record->clear_streak_failures();
    record->clear_streak_first_failure_unix_micros();
  }
  if (streak.failures > 0) {
    if (record->streak_failures() == 0) {
      record->set_streak_first_failure_unix_micros(*streak.first_us);
    }
    record->set_streak_failures(record->streak_failures() + streak.failures);
  }
}

}  // namespace

absl::StatusOr<StatsRecord> LevelDbStore::CachedStats(
    std::string_view endpoint_id) {
  if (auto it = stats_cache_.find(AsAbsl(endpoint_id));
      it != stats_cache_.end()) {
    return it->second;
  }
  return ReadStats(endpoint_id);
}

void LevelDbStore::UpdateStatsCache(
    const absl::Status& write,
    std::vector<std::pair<std::string, StatsRecord>> written) {
  // Bounds the cache's memory (about 200 bytes an endpoint).
  constexpr size_t kMaxCachedStats = 65'536;
  if (!write.ok() || stats_cache_.size() + written.size() > kMaxCachedStats) {
    stats_cache_.clear();
  }
  if (!write.ok()) return;
  for (auto& [endpoint_id, record] : written) {
    stats_cache_.insert_or_assign(std::move(endpoint_id), std::move(record));
  }
}

absl::Status LevelDbStore::WriteWithStats(const CountsDeltas& deltas,
                                          leveldb::WriteBatch* batch,
                                          bool sync) {
  // One read (from the cache, mostly) and one write per endpoint, however
  // many of its deliveries the batch holds.
  std::vector<std::pair<std::string, StatsRecord>> written;
  written.reserve(deltas.by_endpoint().size());
  for (const auto& [endpoint_id, delta] : deltas.by_endpoint()) {
    WEBHOOKD_ASSIGN_OR_RETURN(StatsRecord record, CachedStats(endpoint_id));
    AddDelta(delta, &record);
    batch->Put(keys::StatsKey(endpoint_id), record.SerializeAsString());
    written.emplace_back(endpoint_id, std::move(record));
  }
  const absl::Status status = Write(batch, sync);
  UpdateStatsCache(status, std::move(written));
  return status;
}

absl::Status LevelDbStore::PutEndpoint(const Endpoint& endpoint) {
  if (endpoint.id().empty()) {
    return absl::InvalidArgumentError("endpoint without an id");
  }
  const std::string key = keys::EndpointKey(endpoint.id());
  leveldb::WriteBatch batch;
  STORE_USE_DB();
  absl::MutexLock lock(&mu_);
  // A changed thread moves the endpoint between ept/ ranges.
  std::string value;
  absl::Status status = Get(key, &value);
  if (status.ok()) {
    Endpoint old;
    WEBHOOKD_RETURN_IF_ERROR(ParseValue(key, value, &old));
    if (old.thread_id() != endpoint.thread_id()) {
      batch.Delete(keys::EndpointThreadKey(old.thread_id(), endpoint.id()));
    }
  } else if (!absl::IsNotFound(status)) {
    return status;
  }
  batch.Put(key, endpoint.SerializeAsString());
  batch.Put(keys::EndpointThreadKey(endpoint.thread_id(), endpoint.id()),
            leveldb::Slice());
  return Write(&batch, /*sync=*/true);
}

absl::StatusOr<Endpoint> LevelDbStore::GetEndpoint(std::string_view id) {
  STORE_USE_DB();
  Endpoint endpoint;
  WEBHOOKD_RETURN_IF_ERROR(
      GetMessage(*db_, DefaultReadOptions(), keys::EndpointKey(id),
                 Cat("endpoint \"", id, "\" not found"), &endpoint));
  return endpoint;
}

absl::StatusOr<EndpointPage> LevelDbStore::ListEndpoints(
    const EndpointFilter& filter, int page_size, std::string_view page_token) {
  page_size = ClampPageSize(page_size);
  STORE_USE_DB();
  EndpointPage page;
  ReadView view(*db_, DefaultReadOptions());
  absl::StatusOr<std::string> next_token;
  if (filter.thread_id.empty()) {
    next_token = ScanPage(
        *db_, view, keys::kEndpointPrefix, page_token, page_size,
        max_scan_per_list_,
        [&](std::string_view key,
            std::string_view value) -> absl::StatusOr<bool> {
          Endpoint endpoint;
          WEBHOOKD_RETURN_IF_ERROR(ParseValue(key, value, &endpoint));
          if (filter.user_id != 0 && endpoint.user_id() != filter.user_id) {
            return false;
          }
          page.endpoints.push_back(std::move(endpoint));
          return true;
        });
  } else {
    const std::string prefix = keys::EndpointThreadPrefix(filter.thread_id);
    next_token = ScanPage(
        *db_, view, prefix, page_token, page_size, max_scan_per_list_,
        [&](std::string_view key, std::string_view) -> absl::StatusOr<bool> {
          const std::string_view id = key.substr(prefix.size());
          Endpoint endpoint;
          absl::Status status = GetMessage(
              *db_, view.options(), keys::EndpointKey(id), "", &endpoint);
          // Index and endpoint are written together, so a miss or another
          // thread means damage; skipping keeps the listing usable.
          if (absl::IsNotFound(status)) return false;
          WEBHOOKD_RETURN_IF_ERROR(status);
          if (endpoint.thread_id() != filter.thread_id ||
              (filter.user_id != 0 && endpoint.user_id() != filter.user_id)) {
            return false;
          }
          page.endpoints.push_back(std::move(endpoint));
          return true;
        });
  }
  if (!next_token.ok()) return next_token.status();
  page.next_page_token = *std::move(next_token);
  return page;
}

absl::StatusOr<std::vector<Endpoint>> LevelDbStore::LoadEndpoints() {
  STORE_USE_DB();
  std::vector<Endpoint> endpoints;
  WEBHOOKD_RETURN_IF_ERROR(
      ScanAll(*db_, DefaultReadOptions(), keys::kEndpointPrefix,
              [&](std::string_view key, std::string_view value) {
                Endpoint endpoint;
                WEBHOOKD_RETURN_IF_ERROR(ParseValue(key, value, &endpoint));
                endpoints.push_back(std::move(endpoint));
                return absl::OkStatus();
              }));
  return endpoints;
}

absl::Status LevelDbStore::DeleteEndpoint(
    std::string_view id, absl::Span<const DeliveryChange> changes) {
  leveldb::WriteBatch batch;
  for (const DeliveryChange& change : changes) {
    WEBHOOKD_RETURN_IF_ERROR(AddDeliveryState(
        change.delivery, change.next_due, change.next_attempt_manual, &batch));
  }
  const std::string key = keys::EndpointKey(id);
  STORE_USE_DB();
  absl::MutexLock lock(&mu_);
  Endpoint endpoint;
  WEBHOOKD_RETURN_IF_ERROR(GetMessage(*db_, DefaultReadOptions(), key,
                                      Cat("endpoint \"", id, "\" not found"),
                                      &endpoint));
  batch.Delete(key);
  batch.Delete(keys::EndpointThreadKey(endpoint.thread_id(), id));
  return WriteWithStats(DeltasOf({}, changes), &batch, /*sync=*/true);
}

absl::Status LevelDbStore::AddNewDelivery(const Delivery& delivery,
                                          leveldb::WriteBatch* batch) {
  WEBHOOKD_RETURN_IF_ERROR(AddDeliveryState(delivery, FirstDue(delivery),
                                            /*manual=*/false, batch));
  const int64_t created =
      absl::ToUnixMicros(FromProtoTime(delivery.create_time()));
  batch->Put(keys::DeliveryIndexKey(std::string(keys::kDeliveryListPrefix),
                                    created, delivery.id()),
             leveldb::Slice());
  batch->Put(keys::DeliveryIndexKey(
                 keys::DeliveryEndpointPrefix(delivery.endpoint_id()), created,
                 delivery.id()),
             leveldb::Slice());
  batch->Put(
      keys::DeliveryIndexKey(keys::DeliveryThreadPrefix(delivery.thread_id()),
                             created, delivery.id()),
      leveldb::Slice());
  return absl::OkStatus();
}

absl::Status LevelDbStore::InsertEvents(absl::Span<const NewEvent> events) {
  leveldb::WriteBatch batch;
  CountsDeltas deltas;
  for (const NewEvent& insert : events) {
    const EventRecord& event = *insert.event;
    if (event.id().empty()) {
      return absl::InvalidArgumentError("event without an id");
    }
    batch.Put(keys::EventKey(event.id()), event.SerializeAsString());
    for (const Delivery& delivery : insert.deliveries) {
      WEBHOOKD_RETURN_IF_ERROR(AddNewDelivery(delivery, &batch));
      deltas.AddNew(delivery);
    }
    if (!event.idempotency_key().empty()) {
      IdempotencyRecord record;
      record.mutable_response()->set_event_id(event.id());
      for (const Delivery& delivery : insert.deliveries) {
        record.mutable_response()->add_delivery_ids(delivery.id());
      }
      record.set_create_time_unix_micros(event.create_time_unix_micros());
      record.set_request_fingerprint(event.request_fingerprint());
      batch.Put(keys::IdempotencyKey(event.user_id(), event.idempotency_key()),
                record.SerializeAsString());
    }
  }
  STORE_USE_DB();
  if (deltas.empty()) {
    WEBHOOKD_RETURN_IF_ERROR(Write(&batch, /*sync=*/true));
  } else {
    absl::MutexLock lock(&mu_);
    WEBHOOKD_RETURN_IF_ERROR(WriteWithStats(deltas, &batch, /*sync=*/true));
  }
  for (const NewEvent& insert : events) {
    if (!insert.deliveries.empty()) {
      CachePayload(insert.event->id(), insert.event->payload());
    }
  }
  return absl::OkStatus();
}

void LevelDbStore::CachePayload(std::string_view event_id,
                                const std::string& payload) {
  if (payload_cache_ == nullptr) return;
  auto* value = new std::string(payload);
  leveldb::Cache::Handle* handle = payload_cache_->Insert(
      ToSlice(event_id), value, sizeof(std::string) + value->capacity(),
      [](const leveldb::Slice&, void* cached) {
        delete static_cast<std::string*>(cached);
      });
  payload_cache_->Release(handle);
}

absl::StatusOr<std::string> LevelDbStore::EventPayload(
    const leveldb::ReadOptions& read, std::string_view event_id) {
  if (payload_cache_ != nullptr) {
    if (leveldb::Cache::Handle* handle =
            payload_cache_->Lookup(ToSlice(event_id))) {
      std::string payload =
          *static_cast<const std::string*>(payload_cache_->Value(handle));
      payload_cache_->Release(handle);
      return payload;
    }
  }
  EventRecord event;
  WEBHOOKD_RETURN_IF_ERROR(
      GetMessage(*db_, read, keys::EventKey(event_id), "", &event));
  CachePayload(event_id, event.payload());
  return std::move(*event.mutable_payload());
}

absl::Status LevelDbStore::AddDeliveries(
    absl::Span<const Delivery> deliveries,
    absl::Span<const DeliveryChange> changes) {
  leveldb::WriteBatch batch;
  for (const Delivery& delivery : deliveries) {
    WEBHOOKD_RETURN_IF_ERROR(AddNewDelivery(delivery, &batch));
  }
  for (const DeliveryChange& change : changes) {
    WEBHOOKD_RETURN_IF_ERROR(AddDeliveryState(
        change.delivery, change.next_due, change.next_attempt_manual, &batch));
  }
  STORE_USE_DB();
  // The events' delivery_ids are read and rewritten: pruning keeps an event
  // while one of the deliveries it lists remains.
  absl::MutexLock lock(&mu_);
  std::map<std::string, EventRecord, std::less<>> events;
  for (const Delivery& delivery : deliveries) {
    auto [it, inserted] = events.try_emplace(delivery.event_id());
    if (inserted) {
      WEBHOOKD_RETURN_IF_ERROR(GetMessage(
          *db_, DefaultReadOptions(), keys::EventKey(delivery.event_id()),
          Cat("event \"", delivery.event_id(), "\" not found"), &it->second));
    }
    it->second.add_delivery_ids(delivery.id());
  }
  for (const auto& [id, event] : events) {
    batch.Put(keys::EventKey(id), event.SerializeAsString());
  }
  return WriteWithStats(DeltasOf(deliveries, changes), &batch, /*sync=*/true);
}

absl::StatusOr<Submission> LevelDbStore::FindSubmission(
    int64_t user_id, std::string_view idempotency_key) {
  STORE_USE_DB();
  IdempotencyRecord record;
  WEBHOOKD_RETURN_IF_ERROR(
      GetMessage(*db_, DefaultReadOptions(),
                 keys::IdempotencyKey(user_id, idempotency_key),
                 "no submission with this idempotency key", &record));
  return Submission{std::move(*record.mutable_response()),
                    std::move(*record.mutable_request_fingerprint())};
}

absl::StatusOr<EventRecord> LevelDbStore::GetEvent(std::string_view id) {
  STORE_USE_DB();
  EventRecord event;
  WEBHOOKD_RETURN_IF_ERROR(
      GetMessage(*db_, DefaultReadOptions(), keys::EventKey(id),
                 Cat("event \"", id, "\" not found"), &event));
  return event;
}

absl::StatusOr<Delivery> LevelDbStore::GetDelivery(std::string_view id) {
  STORE_USE_DB();
  ReadView view(*db_, DefaultReadOptions());
  Delivery delivery;
  WEBHOOKD_RETURN_IF_ERROR(
      GetMessage(*db_, view.options(), keys::DeliveryKey(id),
                 Cat("delivery \"", id, "\" not found"), &delivery));
  absl::StatusOr<std::string> payload =
      EventPayload(view.options(), delivery.event_id());
  if (absl::IsNotFound(payload.status())) {
    return absl::DataLossError(Cat("event \"", delivery.event_id(),
                                   "\" of delivery \"", id, "\" is missing"));
  }
  WEBHOOKD_RETURN_IF_ERROR(payload.status());
  delivery.set_payload(*std::move(payload));
  return delivery;
}

absl::StatusOr<DeliveryPage> LevelDbStore::ListDeliveries(
    const DeliveryFilter& filter, int page_size, std::string_view page_token) {
  page_size = ClampPageSize(page_size);
  // The narrowest index the filter allows; the rest is checked per row.
  std::string prefix;
  if (!filter.endpoint_id.empty()) {
    prefix = keys::DeliveryEndpointPrefix(filter.endpoint_id);
  } else if (!filter.thread_id.empty()) {
    prefix = keys::DeliveryThreadPrefix(filter.thread_id);
  } else {
    prefix = std::string(keys::kDeliveryListPrefix);
  }
  DeliveryPage page;
  STORE_USE_DB();
  ReadView view(*db_, DefaultReadOptions());
  absl::StatusOr<std::string> next_token = ScanPage(
      *db_, view, prefix, page_token, page_size, max_scan_per_list_,
      [&](std::string_view key, std::string_view) -> absl::StatusOr<bool> {
        const std::optional<keys::DeliveryIndexEntry> entry =
            keys::ParseDeliveryIndexKey(key);
        if (!entry.has_value()) {
          return absl::DataLossError(
              Cat("malformed index key \"", keys::Printable(key), "\""));
        }
        const std::string_view id = entry->delivery_id;
        Delivery delivery;
        WEBHOOKD_RETURN_IF_ERROR(GetMessage(
            *db_, view.options(), keys::DeliveryKey(id),
            Cat("indexed delivery \"", id, "\" is missing"), &delivery));
        if ((!filter.endpoint_id.empty() &&
             delivery.endpoint_id() != filter.endpoint_id) ||
            (!filter.thread_id.empty() &&
             delivery.thread_id() != filter.thread_id) ||
            (filter.status != webhook::v1::DELIVERY_STATUS_UNSPECIFIED &&
             delivery.status() != filter.status) ||
            (filter.user_id != 0 && delivery.user_id() != filter.user_id)) {
          return false;
        }
        delivery.clear_payload();
        delivery.clear_attempt_history();
        page.deliveries.push_back(std::move(delivery));
        return true;
      });
  if (!next_token.ok()) {
    // An index entry without its delivery is damage, not absence.
    if (absl::IsNotFound(next_token.status())) {
      return absl::DataLossError(next_token.status().message());
    }
    return next_token.status();
  }
  page.next_page_token = *std::move(next_token);
  return page;
}

absl::Status LevelDbStore::UpdateDeliveries(
    absl::Span<const DeliveryChange> changes, Durability durability) {
  if (changes.empty()) return absl::OkStatus();
  const bool sync = durability == Durability::kSynced;
  leveldb::WriteBatch batch;
  for (const DeliveryChange& change : changes) {
    WEBHOOKD_RETURN_IF_ERROR(AddDeliveryState(
        change.delivery, change.next_due, change.next_attempt_manual, &batch));
  }
  const CountsDeltas deltas = DeltasOf({}, changes);
  STORE_USE_DB();
  if (deltas.empty()) return Write(&batch, sync);
  absl::MutexLock lock(&mu_);
  return WriteWithStats(deltas, &batch, sync);
}

absl::Status LevelDbStore::ScanQueue(
    const std::function<void(const QueuedDelivery&)>& visit) {
  STORE_USE_DB();
  QueueEntryRecord entry;
  QueuedDelivery queued;
  return ScanAll(
      *db_, DefaultReadOptions(), keys::kQueuePrefix,
      [&](std::string_view key, std::string_view value) {
        WEBHOOKD_RETURN_IF_ERROR(ParseValue(key, value, &entry));
        queued.delivery_id.assign(keys::IdAfter(keys::kQueuePrefix, key));
        queued.endpoint_id = entry.endpoint_id();
        queued.due = absl::FromUnixMicros(entry.due_unix_micros());
        queued.manual = entry.manual();
        queued.test = entry.test();
        visit(queued);
        return absl::OkStatus();
      });
}

absl::StatusOr<StatsRecord> LevelDbStore::ReadStats(
    std::string_view endpoint_id) {
  StatsRecord record;
  absl::Status status = GetMessage(*db_, DefaultReadOptions(),
                                   keys::StatsKey(endpoint_id), "", &record);
  if (!status.ok() && !absl::IsNotFound(status)) return status;
  return record;
}

absl::StatusOr<EndpointCounts> LevelDbStore::GetEndpointCounts(
    std::string_view endpoint_id) {
  STORE_USE_DB();
  WEBHOOKD_ASSIGN_OR_RETURN(const StatsRecord record, ReadStats(endpoint_id));
  EndpointCounts counts;
  counts.attempts = record.total();
  counts.successes = record.successful();
  counts.answered = record.answered();
  counts.response_time_ms_sum = record.response_time_ms_sum();
  counts.deliveries_succeeded = record.deliveries_succeeded();
  counts.deliveries_failed = record.deliveries_failed();
  counts.deliveries_in_progress = record.deliveries_in_progress();
  return counts;
}

absl::StatusOr<FailureStreak> LevelDbStore::GetFailureStreak(
    std::string_view endpoint_id) {
  STORE_USE_DB();
  WEBHOOKD_ASSIGN_OR_RETURN(const StatsRecord record, ReadStats(endpoint_id));
  FailureStreak streak;
  streak.failures = record.streak_failures();
  if (streak.failures > 0) {
    streak.first_failure =
        absl::FromUnixMicros(record.streak_first_failure_unix_micros());
  }
  return streak;
}

absl::Status LevelDbStore::ResetFailureStreak(std::string_view endpoint_id) {
  STORE_USE_DB();
  absl::MutexLock lock(&mu_);
  WEBHOOKD_ASSIGN_OR_RETURN(StatsRecord record, CachedStats(endpoint_id));
  if (record.streak_failures() == 0) return absl::OkStatus();
  record.clear_streak_failures();
  record.clear_streak_first_failure_unix_micros();
  leveldb::WriteBatch batch;
  batch.Put(keys::StatsKey(endpoint_id), record.SerializeAsString());
  const absl::Status status = Write(&batch, /*sync=*/true);
  std::vector<std::pair<std::string, StatsRecord>> written;
  written.emplace_back(endpoint_id, std::move(record));
  UpdateStatsCache(status, std::move(written));
  return status;
}

absl::Status LevelDbStore::Compact() {
  STORE_USE_DB();
  // Flushes the write-ahead log into tables and merges every level, which
  // drops the versions of keys that were overwritten or deleted.
  db_->CompactRange(nullptr, nullptr);
  return absl::OkStatus();
}

absl::StatusOr<std::string> LevelDbStore::SettingOrInsert(
    std::string_view name, std::string_view value) {
  std::string key(leveldb_keys::kSettingPrefix);
  key.append(name);
  // One process per directory: the lock only orders this process's callers.
  absl::MutexLock setting_lock(&setting_mu_);
  STORE_USE_DB();
  std::string stored;
  absl::Status read = GetValue(*db_, DefaultReadOptions(), key, &stored);
  if (read.ok()) return stored;
  if (!absl::IsNotFound(read)) return read;
  leveldb::WriteBatch batch;
  batch.Put(key, ToSlice(value));
  WEBHOOKD_RETURN_IF_ERROR(Write(&batch, /*sync=*/true));
  return std::string(value);
}

absl::StatusOr<PruneResult> LevelDbStore::PruneBefore(
    absl::Time cutoff, absl::Time idempotency_cutoff, size_t max_records) {
  if (max_records == 0) return PruneResult();
  absl::MutexLock prune_lock(&prune_mu_);
  STORE_USE_DB();
  leveldb::WriteBatch batch;
  absl::StatusOr<PruneResult> result;
  {
    ReadView view(*db_, DefaultReadOptions());
    result = leveldb_internal::AddPruneDeletes(*db_, view.options(), cutoff,
                                               idempotency_cutoff, max_records,
                                               &sweep_cursors_, &batch);
  }
  if (!result.ok()) return result.status();
  if (batch.ApproximateSize() > leveldb::WriteBatch().ApproximateSize()) {
    // Not synced: a prune lost in a machine crash is simply done again.
    WEBHOOKD_RETURN_IF_ERROR(Write(&batch, /*sync=*/false));
  }
  return result;
}

}  // namespace webhookd

#undef STORE_USE_DB
