#include "storage/leveldb_store.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"
#include "leveldb/cache.h"
#include "leveldb/db.h"
#include "leveldb/env.h"
#include "leveldb/filter_policy.h"
#include "leveldb/iterator.h"
#include "leveldb/options.h"
#include "leveldb/slice.h"
#include "leveldb/status.h"
#include "leveldb/write_batch.h"

namespace webhookd {
namespace {

using webhookd::storage::IdempotencyRecord;
using webhookd::storage::QueueEntryRecord;
using webhookd::storage::StatsRecord;

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 1000;

constexpr std::string_view kSchemaVersionKey = "meta/schema_version";
constexpr std::string_view kSchemaVersion = "1";

constexpr std::string_view kEndpointPrefix = "ep/";
constexpr std::string_view kEndpointThreadPrefix = "ept/";
constexpr std::string_view kEventPrefix = "ev/";
constexpr std::string_view kIdempotencyPrefix = "idem/";
constexpr std::string_view kDeliveryPrefix = "d/";
constexpr std::string_view kDeliveryListPrefix = "dl/";
constexpr std::string_view kDeliveryEndpointPrefix = "dle/";
constexpr std::string_view kDeliveryThreadPrefix = "dlt/";
constexpr std::string_view kQueuePrefix = "q/";
constexpr std::string_view kStatsPrefix = "st/";

// The 8 bytes of the time component of the delivery index keys.
constexpr size_t kTimeKeyBytes = 8;

// Returns early from the enclosing function if expr is not OK.
#define STORE_RETURN_IF_ERROR(expr)                     \
  do {                                                  \
    if (absl::Status status_ = (expr); !status_.ok()) { \
      return status_;                                   \
    }                                                   \
  } while (false)

// --- Time -------------------------------------------------------------------

// Delivery times are kept as unix micros (sub-microsecond parts truncated
// toward the past); an unset Timestamp is the epoch.
int64_t ProtoToUnixMicros(const google::protobuf::Timestamp& ts) {
  return absl::ToUnixMicros(absl::FromUnixSeconds(ts.seconds()) +
                            absl::Nanoseconds(ts.nanos()));
}

// --- Strings ----------------------------------------------------------------

// Debian's Abseil is built with its own absl::string_view, distinct from the
// std::string_view of the Store interface, so absl::StrCat does not take
// ours. This concatenates anything convertible to std::string_view.
template <typename... Parts>
std::string Cat(const Parts&... parts) {
  std::string out;
  out.reserve((std::string_view(parts).size() + ... + 0));
  (out.append(std::string_view(parts)), ...);
  return out;
}

absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

std::string_view ToStd(absl::string_view s) {
  return std::string_view(s.data(), s.size());
}

// --- Status -----------------------------------------------------------------

// The one mapping of LevelDB's status to ours; context says what failed.
absl::Status FromLevelDb(const leveldb::Status& s, std::string_view context) {
  if (s.ok()) return absl::OkStatus();
  std::string message = Cat(context, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsIOError()) return absl::UnavailableError(message);
  if (s.IsNotSupportedError()) return absl::UnimplementedError(message);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  return absl::InternalError(message);
}

// --- Keys -------------------------------------------------------------------

leveldb::Slice ToSlice(std::string_view s) {
  return leveldb::Slice(s.data(), s.size());
}

std::string_view ToView(const leveldb::Slice& s) {
  return std::string_view(s.data(), s.size());
}

// Keys hold binary components; this makes them printable in messages.
std::string Printable(std::string_view key) {
  return absl::CHexEscape(ToAbsl(key));
}

void AppendBigEndian64(uint64_t v, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

// <len>s: a 4-byte big-endian length, then the bytes.
void AppendLengthPrefixed(std::string_view s, std::string* out) {
  const uint32_t n = static_cast<uint32_t>(s.size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((n >> shift) & 0xff));
  }
  out->append(s);
}

// Flipping the sign bit makes signed order match unsigned byte order.
uint64_t OrderedBits(int64_t v) {
  return static_cast<uint64_t>(v) ^ (uint64_t{1} << 63);
}

std::string EndpointKey(std::string_view id) {
  return Cat(kEndpointPrefix, id);
}

std::string EndpointThreadPrefix(std::string_view thread_id) {
  std::string key(kEndpointThreadPrefix);
  AppendLengthPrefixed(thread_id, &key);
  return key;
}

std::string EndpointThreadKey(std::string_view thread_id,
                              std::string_view endpoint_id) {
  return Cat(EndpointThreadPrefix(thread_id), endpoint_id);
}

std::string EventKey(std::string_view id) { return Cat(kEventPrefix, id); }

std::string IdempotencyKey(int64_t user_id, std::string_view key) {
  std::string out(kIdempotencyPrefix);
  AppendBigEndian64(OrderedBits(user_id), &out);
  out.push_back('/');
  out.append(key);
  return out;
}

std::string DeliveryKey(std::string_view id) {
  return Cat(kDeliveryPrefix, id);
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

// prefix + <ts> + id; newer create times sort first.
std::string DeliveryIndexKey(std::string prefix, int64_t create_micros,
                             std::string_view id) {
  AppendBigEndian64(~OrderedBits(create_micros), &prefix);
  prefix.append(id);
  return prefix;
}

std::string QueueKey(std::string_view delivery_id) {
  return Cat(kQueuePrefix, delivery_id);
}

std::string StatsKey(std::string_view endpoint_id) {
  return Cat(kStatsPrefix, endpoint_id);
}

// --- Values -----------------------------------------------------------------

template <typename Message>
absl::Status ParseValue(std::string_view key, std::string_view value,
                        Message* message) {
  if (value.size() > static_cast<size_t>(INT32_MAX) ||
      !message->ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return absl::DataLossError(Cat("cannot parse the value of key \"",
                                   Printable(key), "\" as ",
                                   message->GetTypeName()));
  }
  return absl::OkStatus();
}

absl::Status GetValue(leveldb::DB& db, const leveldb::ReadOptions& options,
                      std::string_view key, std::string* value) {
  return FromLevelDb(db.Get(options, ToSlice(key), value),
                     Cat("read \"", Printable(key), "\""));
}

// Reads and parses key. NotFound (with not_found_message) if absent.
template <typename Message>
absl::Status GetMessage(leveldb::DB& db, const leveldb::ReadOptions& options,
                        std::string_view key,
                        std::string_view not_found_message, Message* message) {
  std::string value;
  absl::Status status = GetValue(db, options, key, &value);
  if (absl::IsNotFound(status)) {
    return absl::NotFoundError(ToAbsl(not_found_message));
  }
  STORE_RETURN_IF_ERROR(status);
  return ParseValue(key, value, message);
}

bool IsQueued(DeliveryStatus status) {
  return status == webhook::v1::DELIVERY_STATUS_PENDING ||
         status == webhook::v1::DELIVERY_STATUS_RETRYING;
}

bool CountsInStats(const DeliveryChange& change) {
  return change.finished_attempt.has_value() && !change.delivery.test();
}

// Writes the delivery (without payload) and keeps its q/ entry in step with
// its status.
absl::Status AddDeliveryState(const Delivery& delivery, bool manual,
                              leveldb::WriteBatch* batch) {
  if (delivery.id().empty()) {
    return absl::InvalidArgumentError("delivery without an id");
  }
  std::string value;
  if (delivery.payload().empty()) {
    delivery.SerializeToString(&value);
  } else {
    Delivery stored = delivery;
    stored.clear_payload();
    stored.SerializeToString(&value);
  }
  batch->Put(DeliveryKey(delivery.id()), value);

  const std::string queue_key = QueueKey(delivery.id());
  if (!IsQueued(delivery.status())) {
    batch->Delete(queue_key);
    return absl::OkStatus();
  }
  if (delivery.endpoint_id().empty()) {
    return absl::InvalidArgumentError(
        Cat("queued delivery ", delivery.id(), " has no endpoint"));
  }
  QueueEntryRecord entry;
  entry.set_endpoint_id(delivery.endpoint_id());
  // A queued delivery without a due time is due at once.
  if (delivery.has_next_attempt_time()) {
    entry.set_due_unix_micros(ProtoToUnixMicros(delivery.next_attempt_time()));
  } else if (delivery.has_create_time()) {
    entry.set_due_unix_micros(ProtoToUnixMicros(delivery.create_time()));
  }
  entry.set_manual(manual);
  entry.set_test(delivery.test());
  batch->Put(queue_key, entry.SerializeAsString());
  return absl::OkStatus();
}

int ClampPageSize(int page_size) {
  if (page_size <= 0) return kDefaultPageSize;
  return page_size > kMaxPageSize ? kMaxPageSize : page_size;
}

// --- Scans ------------------------------------------------------------------

std::string EncodePageToken(std::string_view last_key) {
  return absl::WebSafeBase64Escape(ToAbsl(last_key));
}

// Returns the key a page token names; it must lie in the range of prefix
// (the index the current filter selects).
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

// A consistent view of the database for one list call.
class ReadView {
 public:
  ReadView(leveldb::DB& db, const leveldb::ReadOptions& options)
      : db_(db), snapshot_(db.GetSnapshot()), options_(options) {
    options_.snapshot = snapshot_;
  }
  ReadView(const ReadView&) = delete;
  ReadView& operator=(const ReadView&) = delete;
  ~ReadView() { db_.ReleaseSnapshot(snapshot_); }

  const leveldb::ReadOptions& options() const { return options_; }

 private:
  leveldb::DB& db_;
  const leveldb::Snapshot* const snapshot_;
  leveldb::ReadOptions options_;
};

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
    absl::StatusOr<std::string> key = DecodePageToken(page_token, prefix);
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
  STORE_RETURN_IF_ERROR(FromLevelDb(it->status(), "scan"));
  return more ? EncodePageToken(last_key) : std::string();
}

// Calls visit(key, value) for every key with prefix.
template <typename Visit>
absl::Status ScanAll(leveldb::DB& db, const leveldb::ReadOptions& options,
                     std::string_view prefix, Visit visit) {
  ReadView view(db, options);
  std::unique_ptr<leveldb::Iterator> it(db.NewIterator(view.options()));
  for (it->Seek(ToSlice(prefix));
       it->Valid() && ToView(it->key()).starts_with(prefix); it->Next()) {
    STORE_RETURN_IF_ERROR(visit(ToView(it->key()), ToView(it->value())));
  }
  return FromLevelDb(it->status(), "scan");
}

// Explains a failed DB::Open in terms of the data directory.
absl::Status OpenError(const std::string& dir, const leveldb::Status& s) {
  const std::string message = s.ToString();
  // LevelDB reports a held LOCK file as an IOError "lock <dir>/LOCK: ..."
  // ("already held by process" within one process, EAGAIN across them).
  if (s.IsIOError() && message.find("/LOCK") != std::string::npos) {
    return absl::FailedPreconditionError(
        Cat("data directory \"", dir,
            "\" is in use by another webhookd process (LevelDB lock held): ",
            message));
  }
  if (s.IsCorruption()) {
    return absl::DataLossError(
        Cat("data directory \"", dir,
            "\" holds a corrupted LevelDB database: ", message));
  }
  return FromLevelDb(s, Cat("cannot open data directory \"", dir, "\""));
}

}  // namespace

absl::StatusOr<std::unique_ptr<LevelDbStore>> LevelDbStore::Open(
    const std::string& dir, const LevelDbStoreOptions& options) {
  leveldb::Options db_options;
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
      std::move(block_cache), std::move(filter_policy),
      std::unique_ptr<leveldb::DB>(raw_db), options.paranoid_checks,
      options.max_scan_per_list > 0 ? options.max_scan_per_list : 1));

  // The schema version lets a later release recognise (and migrate) this
  // layout rather than misread it.
  std::string version;
  absl::Status status = store->Get(kSchemaVersionKey, &version);
  if (absl::IsNotFound(status)) {
    leveldb::WriteBatch batch;
    batch.Put(ToSlice(kSchemaVersionKey), ToSlice(kSchemaVersion));
    status = store->Write(&batch, /*sync=*/true);
  } else if (status.ok() && version != kSchemaVersion) {
    status = absl::FailedPreconditionError(
        Cat("data directory \"", dir, "\" has storage schema version \"",
            Printable(version), "\"; this webhookd reads version ",
            kSchemaVersion));
  }
  if (absl::IsDataLoss(status)) {
    return absl::DataLossError(Cat(
        "data directory \"", dir,
        "\" holds a corrupted LevelDB database: ", ToStd(status.message())));
  }
  if (!status.ok()) return status;
  return store;
}

LevelDbStore::LevelDbStore(
    std::unique_ptr<leveldb::Cache> block_cache,
    std::unique_ptr<const leveldb::FilterPolicy> filter_policy,
    std::unique_ptr<leveldb::DB> db, bool verify_checksums,
    int max_scan_per_list)
    : block_cache_(std::move(block_cache)),
      filter_policy_(std::move(filter_policy)),
      db_(std::move(db)),
      verify_checksums_(verify_checksums),
      max_scan_per_list_(max_scan_per_list) {}

LevelDbStore::~LevelDbStore() = default;

leveldb::ReadOptions LevelDbStore::DefaultReadOptions() const {
  leveldb::ReadOptions options;
  options.verify_checksums = verify_checksums_;
  return options;
}

absl::Status LevelDbStore::Get(std::string_view key, std::string* value) {
  return GetValue(*db_, DefaultReadOptions(), key, value);
}

absl::Status LevelDbStore::Write(leveldb::WriteBatch* batch, bool sync) {
  leveldb::WriteOptions options;
  options.sync = sync;
  return FromLevelDb(db_->Write(options, batch), "write");
}

absl::Status LevelDbStore::AddStats(absl::Span<const DeliveryChange> changes,
                                    leveldb::WriteBatch* batch) {
  // One read and one write per endpoint, however many of its attempts the
  // batch holds.
  std::map<std::string, StatsRecord, std::less<>> totals;
  for (const DeliveryChange& change : changes) {
    if (!CountsInStats(change)) continue;
    const std::string& endpoint_id = change.delivery.endpoint_id();
    auto [it, inserted] = totals.try_emplace(endpoint_id);
    StatsRecord& record = it->second;
    if (inserted) {
      const std::string key = StatsKey(endpoint_id);
      std::string value;
      absl::Status status = Get(key, &value);
      if (status.ok()) {
        STORE_RETURN_IF_ERROR(ParseValue(key, value, &record));
      } else if (!absl::IsNotFound(status)) {
        return status;
      }
    }
    const DeliveryAttempt& attempt = *change.finished_attempt;
    record.set_total(record.total() + 1);
    if (attempt.response_code() >= 200 && attempt.response_code() < 300) {
      record.set_successful(record.successful() + 1);
    } else {
      record.set_failed(record.failed() + 1);
    }
    record.set_response_time_ms_sum(record.response_time_ms_sum() +
                                    attempt.response_time_ms());
  }
  for (const auto& [endpoint_id, record] : totals) {
    batch->Put(StatsKey(endpoint_id), record.SerializeAsString());
  }
  return absl::OkStatus();
}

absl::Status LevelDbStore::PutEndpoint(const Endpoint& endpoint) {
  if (endpoint.id().empty()) {
    return absl::InvalidArgumentError("endpoint without an id");
  }
  const std::string key = EndpointKey(endpoint.id());
  leveldb::WriteBatch batch;
  absl::MutexLock lock(&mu_);
  // A changed thread moves the endpoint between ept/ ranges.
  std::string value;
  absl::Status status = Get(key, &value);
  if (status.ok()) {
    Endpoint old;
    STORE_RETURN_IF_ERROR(ParseValue(key, value, &old));
    if (old.thread_id() != endpoint.thread_id()) {
      batch.Delete(EndpointThreadKey(old.thread_id(), endpoint.id()));
    }
  } else if (!absl::IsNotFound(status)) {
    return status;
  }
  batch.Put(key, endpoint.SerializeAsString());
  batch.Put(EndpointThreadKey(endpoint.thread_id(), endpoint.id()),
            leveldb::Slice());
  return Write(&batch, /*sync=*/true);
}

absl::StatusOr<Endpoint> LevelDbStore::GetEndpoint(std::string_view id) {
  Endpoint endpoint;
  STORE_RETURN_IF_ERROR(GetMessage(*db_, DefaultReadOptions(), EndpointKey(id),
                                   Cat("endpoint \"", id, "\" not found"),
                                   &endpoint));
  return endpoint;
}

absl::StatusOr<EndpointPage> LevelDbStore::ListEndpoints(
    const EndpointFilter& filter, int page_size, std::string_view page_token) {
  page_size = ClampPageSize(page_size);
  EndpointPage page;
  ReadView view(*db_, DefaultReadOptions());
  absl::StatusOr<std::string> next_token;
  if (filter.thread_id.empty()) {
    next_token = ScanPage(
        *db_, view, kEndpointPrefix, page_token, page_size, max_scan_per_list_,
        [&](std::string_view key,
            std::string_view value) -> absl::StatusOr<bool> {
          Endpoint endpoint;
          STORE_RETURN_IF_ERROR(ParseValue(key, value, &endpoint));
          if (filter.user_id != 0 && endpoint.user_id() != filter.user_id) {
            return false;
          }
          page.endpoints.push_back(std::move(endpoint));
          return true;
        });
  } else {
    const std::string prefix = EndpointThreadPrefix(filter.thread_id);
    next_token = ScanPage(
        *db_, view, prefix, page_token, page_size, max_scan_per_list_,
        [&](std::string_view key, std::string_view) -> absl::StatusOr<bool> {
          const std::string_view id = key.substr(prefix.size());
          Endpoint endpoint;
          absl::Status status =
              GetMessage(*db_, view.options(), EndpointKey(id), "", &endpoint);
          // Index and endpoint are written together, so a miss or another
          // thread means damage; skipping keeps the listing usable.
          if (absl::IsNotFound(status)) return false;
          STORE_RETURN_IF_ERROR(status);
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
  std::vector<Endpoint> endpoints;
  STORE_RETURN_IF_ERROR(
      ScanAll(*db_, DefaultReadOptions(), kEndpointPrefix,
              [&](std::string_view key, std::string_view value) {
                Endpoint endpoint;
                STORE_RETURN_IF_ERROR(ParseValue(key, value, &endpoint));
                endpoints.push_back(std::move(endpoint));
                return absl::OkStatus();
              }));
  return endpoints;
}

absl::Status LevelDbStore::DeleteEndpoint(
    std::string_view id, absl::Span<const DeliveryChange> changes) {
  leveldb::WriteBatch batch;
  for (const DeliveryChange& change : changes) {
    STORE_RETURN_IF_ERROR(
        AddDeliveryState(change.delivery, change.next_attempt_manual, &batch));
  }
  const std::string key = EndpointKey(id);
  absl::MutexLock lock(&mu_);
  Endpoint endpoint;
  STORE_RETURN_IF_ERROR(GetMessage(*db_, DefaultReadOptions(), key,
                                   Cat("endpoint \"", id, "\" not found"),
                                   &endpoint));
  batch.Delete(key);
  batch.Delete(EndpointThreadKey(endpoint.thread_id(), id));
  STORE_RETURN_IF_ERROR(AddStats(changes, &batch));
  return Write(&batch, /*sync=*/true);
}

absl::Status LevelDbStore::InsertEvent(const EventRecord& event,
                                       absl::Span<const Delivery> deliveries) {
  if (event.id().empty()) {
    return absl::InvalidArgumentError("event without an id");
  }
  leveldb::WriteBatch batch;
  batch.Put(EventKey(event.id()), event.SerializeAsString());
  for (const Delivery& delivery : deliveries) {
    STORE_RETURN_IF_ERROR(AddDeliveryState(delivery, /*manual=*/false, &batch));
    const int64_t created = ProtoToUnixMicros(delivery.create_time());
    batch.Put(DeliveryIndexKey(std::string(kDeliveryListPrefix), created,
                               delivery.id()),
              leveldb::Slice());
    batch.Put(DeliveryIndexKey(DeliveryEndpointPrefix(delivery.endpoint_id()),
                               created, delivery.id()),
              leveldb::Slice());
    batch.Put(DeliveryIndexKey(DeliveryThreadPrefix(delivery.thread_id()),
                               created, delivery.id()),
              leveldb::Slice());
  }
  if (!event.idempotency_key().empty()) {
    IdempotencyRecord record;
    record.mutable_response()->set_event_id(event.id());
    for (const Delivery& delivery : deliveries) {
      record.mutable_response()->add_delivery_ids(delivery.id());
    }
    record.set_create_time_unix_micros(event.create_time_unix_micros());
    batch.Put(IdempotencyKey(event.user_id(), event.idempotency_key()),
              record.SerializeAsString());
  }
  return Write(&batch, /*sync=*/true);
}

absl::StatusOr<SubmitEventResponse> LevelDbStore::FindSubmission(
    int64_t user_id, std::string_view idempotency_key) {
  IdempotencyRecord record;
  STORE_RETURN_IF_ERROR(GetMessage(
      *db_, DefaultReadOptions(), IdempotencyKey(user_id, idempotency_key),
      "no submission with this idempotency key", &record));
  return std::move(*record.mutable_response());
}

absl::StatusOr<EventRecord> LevelDbStore::GetEvent(std::string_view id) {
  EventRecord event;
  STORE_RETURN_IF_ERROR(GetMessage(*db_, DefaultReadOptions(), EventKey(id),
                                   Cat("event \"", id, "\" not found"),
                                   &event));
  return event;
}

absl::StatusOr<Delivery> LevelDbStore::GetDelivery(std::string_view id) {
  ReadView view(*db_, DefaultReadOptions());
  Delivery delivery;
  STORE_RETURN_IF_ERROR(GetMessage(*db_, view.options(), DeliveryKey(id),
                                   Cat("delivery \"", id, "\" not found"),
                                   &delivery));
  EventRecord event;
  absl::Status status = GetMessage(*db_, view.options(),
                                   EventKey(delivery.event_id()), "", &event);
  if (absl::IsNotFound(status)) {
    return absl::DataLossError(Cat("event \"", delivery.event_id(),
                                   "\" of delivery \"", id, "\" is missing"));
  }
  STORE_RETURN_IF_ERROR(status);
  delivery.set_payload(std::move(*event.mutable_payload()));
  return delivery;
}

absl::StatusOr<DeliveryPage> LevelDbStore::ListDeliveries(
    const DeliveryFilter& filter, int page_size, std::string_view page_token) {
  page_size = ClampPageSize(page_size);
  // The narrowest index the filter allows; the rest is checked per row.
  std::string prefix;
  if (!filter.endpoint_id.empty()) {
    prefix = DeliveryEndpointPrefix(filter.endpoint_id);
  } else if (!filter.thread_id.empty()) {
    prefix = DeliveryThreadPrefix(filter.thread_id);
  } else {
    prefix = std::string(kDeliveryListPrefix);
  }
  DeliveryPage page;
  ReadView view(*db_, DefaultReadOptions());
  absl::StatusOr<std::string> next_token = ScanPage(
      *db_, view, prefix, page_token, page_size, max_scan_per_list_,
      [&](std::string_view key, std::string_view) -> absl::StatusOr<bool> {
        if (key.size() < prefix.size() + kTimeKeyBytes) {
          return absl::DataLossError(
              Cat("malformed index key \"", Printable(key), "\""));
        }
        const std::string_view id = key.substr(prefix.size() + kTimeKeyBytes);
        Delivery delivery;
        STORE_RETURN_IF_ERROR(GetMessage(
            *db_, view.options(), DeliveryKey(id),
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
  bool touches_stats = false;
  for (const DeliveryChange& change : changes) {
    STORE_RETURN_IF_ERROR(
        AddDeliveryState(change.delivery, change.next_attempt_manual, &batch));
    touches_stats = touches_stats || CountsInStats(change);
  }
  if (!touches_stats) return Write(&batch, sync);
  absl::MutexLock lock(&mu_);
  STORE_RETURN_IF_ERROR(AddStats(changes, &batch));
  return Write(&batch, sync);
}

absl::StatusOr<std::vector<QueuedDelivery>> LevelDbStore::LoadQueue() {
  std::vector<QueuedDelivery> queue;
  STORE_RETURN_IF_ERROR(ScanAll(
      *db_, DefaultReadOptions(), kQueuePrefix,
      [&](std::string_view key, std::string_view value) {
        QueueEntryRecord entry;
        STORE_RETURN_IF_ERROR(ParseValue(key, value, &entry));
        QueuedDelivery& queued = queue.emplace_back();
        queued.delivery_id = std::string(key.substr(kQueuePrefix.size()));
        queued.endpoint_id = entry.endpoint_id();
        queued.due = absl::FromUnixMicros(entry.due_unix_micros());
        queued.manual = entry.manual();
        queued.test = entry.test();
        return absl::OkStatus();
      }));
  return queue;
}

absl::StatusOr<EndpointStats> LevelDbStore::GetEndpointStats(
    std::string_view endpoint_id) {
  StatsRecord record;
  absl::Status status = GetMessage(*db_, DefaultReadOptions(),
                                   StatsKey(endpoint_id), "", &record);
  if (!status.ok() && !absl::IsNotFound(status)) return status;
  EndpointStats stats;
  stats.set_endpoint_id(std::string(endpoint_id));
  stats.set_total_deliveries(record.total());
  stats.set_successful_deliveries(record.successful());
  stats.set_failed_deliveries(record.failed());
  if (record.total() > 0) {
    const double total = static_cast<double>(record.total());
    stats.set_success_rate(100.0 * static_cast<double>(record.successful()) /
                           total);
    stats.set_avg_response_time_ms(
        static_cast<double>(record.response_time_ms_sum()) / total);
  }
  return stats;
}

}  // namespace webhookd

#undef STORE_RETURN_IF_ERROR
