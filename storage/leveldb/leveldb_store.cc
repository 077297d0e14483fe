#include "storage/leveldb/leveldb_store.h"

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
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
#include "server/common/limits.h"

namespace webhookd {
namespace {

using webhookd::storage::IdempotencyRecord;
using webhookd::storage::QueueEntryRecord;
using webhookd::storage::StatsRecord;

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

// Starts every operation of LevelDbStore: reopens the database if a write
// failed, then holds db_mu_ shared until the end of the enclosing scope.
#define STORE_USE_DB()                     \
  ReopenIfNeeded();                        \
  absl::ReaderMutexLock db_lock_(&db_mu_); \
  if (db_ == nullptr) return ClosedError()

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

// The create time (unix micros) in the 8 <ts> bytes of an index key.
int64_t DecodeIndexTime(std::string_view ts) {
  uint64_t v = 0;
  for (size_t i = 0; i < kTimeKeyBytes; ++i) {
    v = (v << 8) | static_cast<unsigned char>(ts[i]);
  }
  return static_cast<int64_t>(~v ^ (uint64_t{1} << 63));
}

// The first key after every key that starts with prefix ("dl/" -> "dl0").
std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  end.back() = static_cast<char>(end.back() + 1);
  return end;
}

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
  STORE_RETURN_IF_ERROR(FromLevelDb(it->status(), "sweep"));
  // Walked to the end of the family: the next sweep starts over.
  if (!it->Valid() || !ToView(it->key()).starts_with(prefix)) cursor->clear();
  return deleted;
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
    status = store->Get(kSchemaVersionKey, &version);
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
  STORE_USE_DB();
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
  STORE_USE_DB();
  Endpoint endpoint;
  STORE_RETURN_IF_ERROR(GetMessage(*db_, DefaultReadOptions(), EndpointKey(id),
                                   Cat("endpoint \"", id, "\" not found"),
                                   &endpoint));
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
  STORE_USE_DB();
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
  STORE_USE_DB();
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

absl::Status LevelDbStore::InsertEvents(absl::Span<const NewEvent> events) {
  leveldb::WriteBatch batch;
  for (const NewEvent& insert : events) {
    const EventRecord& event = *insert.event;
    if (event.id().empty()) {
      return absl::InvalidArgumentError("event without an id");
    }
    batch.Put(EventKey(event.id()), event.SerializeAsString());
    for (const Delivery& delivery : insert.deliveries) {
      STORE_RETURN_IF_ERROR(
          AddDeliveryState(delivery, /*manual=*/false, &batch));
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
      for (const Delivery& delivery : insert.deliveries) {
        record.mutable_response()->add_delivery_ids(delivery.id());
      }
      record.set_create_time_unix_micros(event.create_time_unix_micros());
      batch.Put(IdempotencyKey(event.user_id(), event.idempotency_key()),
                record.SerializeAsString());
    }
  }
  STORE_USE_DB();
  STORE_RETURN_IF_ERROR(Write(&batch, /*sync=*/true));
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
  STORE_RETURN_IF_ERROR(GetMessage(*db_, read, EventKey(event_id), "", &event));
  CachePayload(event_id, event.payload());
  return std::move(*event.mutable_payload());
}

absl::StatusOr<SubmitEventResponse> LevelDbStore::FindSubmission(
    int64_t user_id, std::string_view idempotency_key) {
  STORE_USE_DB();
  IdempotencyRecord record;
  STORE_RETURN_IF_ERROR(GetMessage(
      *db_, DefaultReadOptions(), IdempotencyKey(user_id, idempotency_key),
      "no submission with this idempotency key", &record));
  return std::move(*record.mutable_response());
}

absl::StatusOr<EventRecord> LevelDbStore::GetEvent(std::string_view id) {
  STORE_USE_DB();
  EventRecord event;
  STORE_RETURN_IF_ERROR(GetMessage(*db_, DefaultReadOptions(), EventKey(id),
                                   Cat("event \"", id, "\" not found"),
                                   &event));
  return event;
}

absl::StatusOr<Delivery> LevelDbStore::GetDelivery(std::string_view id) {
  STORE_USE_DB();
  ReadView view(*db_, DefaultReadOptions());
  Delivery delivery;
  STORE_RETURN_IF_ERROR(GetMessage(*db_, view.options(), DeliveryKey(id),
                                   Cat("delivery \"", id, "\" not found"),
                                   &delivery));
  absl::StatusOr<std::string> payload =
      EventPayload(view.options(), delivery.event_id());
  if (absl::IsNotFound(payload.status())) {
    return absl::DataLossError(Cat("event \"", delivery.event_id(),
                                   "\" of delivery \"", id, "\" is missing"));
  }
  STORE_RETURN_IF_ERROR(payload.status());
  delivery.set_payload(*std::move(payload));
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
  STORE_USE_DB();
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
  STORE_USE_DB();
  if (!touches_stats) return Write(&batch, sync);
  absl::MutexLock lock(&mu_);
  STORE_RETURN_IF_ERROR(AddStats(changes, &batch));
  return Write(&batch, sync);
}

absl::Status LevelDbStore::ScanQueue(
    const std::function<void(const QueuedDelivery&)>& visit) {
  STORE_USE_DB();
  QueueEntryRecord entry;
  QueuedDelivery queued;
  return ScanAll(*db_, DefaultReadOptions(), kQueuePrefix,
                 [&](std::string_view key, std::string_view value) {
                   STORE_RETURN_IF_ERROR(ParseValue(key, value, &entry));
                   queued.delivery_id.assign(key.substr(kQueuePrefix.size()));
                   queued.endpoint_id = entry.endpoint_id();
                   queued.due = absl::FromUnixMicros(entry.due_unix_micros());
                   queued.manual = entry.manual();
                   queued.test = entry.test();
                   visit(queued);
                   return absl::OkStatus();
                 });
}

absl::StatusOr<EndpointStats> LevelDbStore::GetEndpointStats(
    std::string_view endpoint_id) {
  STORE_USE_DB();
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

absl::StatusOr<PruneResult> LevelDbStore::PruneBefore(
    absl::Time cutoff, absl::Time idempotency_cutoff, size_t max_records) {
  PruneResult result;
  if (max_records == 0) return result;
  const int64_t cutoff_micros = absl::ToUnixMicros(cutoff);
  const int64_t idempotency_cutoff_micros =
      absl::ToUnixMicros(idempotency_cutoff);
  absl::MutexLock prune_lock(&prune_mu_);
  STORE_USE_DB();
  leveldb::WriteBatch batch;
  ReadView view(*db_, DefaultReadOptions());
  const leveldb::ReadOptions& read = view.options();
  auto exists = [&](const std::string& key) -> absl::StatusOr<bool> {
    std::string value;
    absl::Status status = GetValue(*db_, read, key, &value);
    if (absl::IsNotFound(status)) return false;
    if (!status.ok()) return status;
    return true;
  };

  // dl/ sorts newest first: walk it backwards from its end, oldest first,
  // until the first delivery created at or after the cutoff.
  std::set<std::string, std::less<>> pruned;
  std::set<std::string> events;
  {
    std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(read));
    it->Seek(ToSlice(PrefixEnd(kDeliveryListPrefix)));
    if (it->Valid()) {
      it->Prev();
    } else {
      it->SeekToLast();
    }
    const size_t prefix_size = kDeliveryListPrefix.size();
    for (; it->Valid() && ToView(it->key()).starts_with(kDeliveryListPrefix);
         it->Prev()) {
      const std::string_view key = ToView(it->key());
      if (key.size() <= prefix_size + kTimeKeyBytes) {
        return absl::DataLossError(
            Cat("malformed index key \"", Printable(key), "\""));
      }
      const int64_t created =
          DecodeIndexTime(key.substr(prefix_size, kTimeKeyBytes));
      if (created >= cutoff_micros) break;
      const std::string id(key.substr(prefix_size + kTimeKeyBytes));
      Delivery delivery;
      absl::Status status =
          GetMessage(*db_, read, DeliveryKey(id), "", &delivery);
      if (absl::IsNotFound(status)) {
        batch.Delete(it->key());  // Dangling: its delivery is gone.
        continue;
      }
      STORE_RETURN_IF_ERROR(status);
      // A queued delivery is still to be attempted, however old. (Not
      // atomic with a concurrent RetryDelivery of a delivery this old: the
      // retry could be lost, never an acknowledged first delivery.)
      if (IsQueued(delivery.status())) continue;
      if (result.deliveries == max_records) {
        result.more = true;
        break;
      }
      batch.Delete(it->key());
      batch.Delete(DeliveryKey(id));
      batch.Delete(DeliveryIndexKey(
          DeliveryEndpointPrefix(delivery.endpoint_id()), created, id));
      batch.Delete(DeliveryIndexKey(DeliveryThreadPrefix(delivery.thread_id()),
                                    created, id));
      events.insert(delivery.event_id());
      pruned.insert(id);
      ++result.deliveries;
    }
    STORE_RETURN_IF_ERROR(FromLevelDb(it->status(), "scan"));
  }

  // An event goes with the last of its deliveries.
  auto unreferenced = [&](const EventRecord& event) -> absl::StatusOr<bool> {
    for (const std::string& id : event.delivery_ids()) {
      if (pruned.contains(id)) continue;
      absl::StatusOr<bool> found = exists(DeliveryKey(id));
      if (!found.ok()) return found.status();
      if (*found) return false;
    }
    return true;
  };
  for (const std::string& event_id : events) {
    EventRecord event;
    absl::Status status =
        GetMessage(*db_, read, EventKey(event_id), "", &event);
    if (absl::IsNotFound(status)) continue;
    STORE_RETURN_IF_ERROR(status);
    absl::StatusOr<bool> unused = unreferenced(event);
    if (!unused.ok()) return unused.status();
    if (*unused) {
      batch.Delete(EventKey(event_id));
      ++result.events;
    }
  }

  // Events that never had a delivery (or lost them all otherwise), and
  // idempotency records, are found by sweeping their families a part at a
  // time: neither has an index by time.
  const size_t sweep = max_records * 4;
  absl::StatusOr<size_t> swept_events =
      Sweep(*db_, read, kEventPrefix, sweep, &event_sweep_cursor_, &batch,
            [&](std::string_view key,
                std::string_view value) -> absl::StatusOr<bool> {
              EventRecord event;
              STORE_RETURN_IF_ERROR(ParseValue(key, value, &event));
              if (event.create_time_unix_micros() >= cutoff_micros ||
                  events.contains(event.id())) {
                return false;
              }
              return unreferenced(event);
            });
  if (!swept_events.ok()) return swept_events.status();
  result.events += *swept_events;
  absl::StatusOr<size_t> swept_keys = Sweep(
      *db_, read, kIdempotencyPrefix, sweep, &idempotency_sweep_cursor_, &batch,
      [&](std::string_view key,
          std::string_view value) -> absl::StatusOr<bool> {
        IdempotencyRecord record;
        STORE_RETURN_IF_ERROR(ParseValue(key, value, &record));
        return record.create_time_unix_micros() < idempotency_cutoff_micros;
      });
  if (!swept_keys.ok()) return swept_keys.status();
  result.idempotency_records = *swept_keys;

  if (batch.ApproximateSize() > leveldb::WriteBatch().ApproximateSize()) {
    // Not synced: a prune lost in a machine crash is simply done again.
    STORE_RETURN_IF_ERROR(Write(&batch, /*sync=*/false));
  }
  return result;
}

// --- Repair -----------------------------------------------------------------

namespace {

// Keeps LevelDB's info log lines (the repairer's account of what it did).
class CapturingLogger final : public leveldb::Logger {
 public:
  void Logv(const char* format, std::va_list ap) override {
    char line[2048];
    std::vsnprintf(line, sizeof(line), format, ap);
    std::string_view text(line);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
      text.remove_suffix(1);
    }
    absl::MutexLock lock(&mu_);
    lines_.emplace_back(text);
  }

  std::vector<std::string> Take() {
    absl::MutexLock lock(&mu_);
    return std::move(lines_);
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

struct RecordCounts {
  size_t endpoints = 0;
  size_t events = 0;
  size_t deliveries = 0;
  size_t queued = 0;
};

absl::StatusOr<RecordCounts> CountRecords(leveldb::DB& db) {
  leveldb::ReadOptions options;
  options.verify_checksums = true;
  RecordCounts counts;
  auto count = [&](std::string_view prefix, size_t* n) {
    return ScanAll(db, options, prefix,
                   [n](std::string_view, std::string_view) {
                     ++*n;
                     return absl::OkStatus();
                   });
  };
  STORE_RETURN_IF_ERROR(count(kEndpointPrefix, &counts.endpoints));
  STORE_RETURN_IF_ERROR(count(kEventPrefix, &counts.events));
  STORE_RETURN_IF_ERROR(count(kDeliveryPrefix, &counts.deliveries));
  STORE_RETURN_IF_ERROR(count(kQueuePrefix, &counts.queued));
  return counts;
}

absl::StatusOr<std::unique_ptr<leveldb::DB>> OpenForRepair(
    const std::string& dir, const leveldb::Options& options) {
  leveldb::DB* raw = nullptr;
  leveldb::Status s = leveldb::DB::Open(options, dir, &raw);
  if (!s.ok()) return OpenError(dir, s);
  return std::unique_ptr<leveldb::DB>(raw);
}

// The id at the end of a dle/ or dlt/ key: after the length-prefixed
// component and the <ts> bytes. Empty if the key is malformed.
std::string_view IdAfterComponent(std::string_view key, size_t prefix_size,
                                  size_t extra) {
  if (key.size() < prefix_size + 4) return {};
  uint32_t n = 0;
  for (size_t i = 0; i < 4; ++i) {
    n = (n << 8) | static_cast<unsigned char>(key[prefix_size + i]);
  }
  const size_t start = prefix_size + 4 + n + extra;
  if (key.size() <= start) return {};
  return key.substr(start);
}

// Adds a Delete to batch for every record with prefix whose value does not
// parse as a Message, counting them in *n.
template <typename Message>
absl::Status DropUnreadable(leveldb::DB& db, const leveldb::ReadOptions& read,
                            std::string_view prefix, leveldb::WriteBatch* batch,
                            size_t* n) {
  return ScanAll(db, read, prefix,
                 [&](std::string_view key, std::string_view value) {
                   Message message;
                   if (!ParseValue(key, value, &message).ok()) {
                     batch->Delete(ToSlice(key));
                     ++*n;
                   }
                   return absl::OkStatus();
                 });
}

// Removes the records that LevelDB's repair kept although their bytes were
// damaged (it reads logs without checking their checksums), as far as they
// no longer parse.
absl::Status DropDamagedRecords(leveldb::DB& db, RepairReport* report) {
  leveldb::ReadOptions read;
  read.verify_checksums = true;
  leveldb::WriteBatch batch;
  size_t* n = &report->damaged_records;
  STORE_RETURN_IF_ERROR(
      DropUnreadable<Endpoint>(db, read, kEndpointPrefix, &batch, n));
  STORE_RETURN_IF_ERROR(
      DropUnreadable<EventRecord>(db, read, kEventPrefix, &batch, n));
  STORE_RETURN_IF_ERROR(DropUnreadable<IdempotencyRecord>(
      db, read, kIdempotencyPrefix, &batch, n));
  STORE_RETURN_IF_ERROR(
      DropUnreadable<Delivery>(db, read, kDeliveryPrefix, &batch, n));
  STORE_RETURN_IF_ERROR(
      DropUnreadable<QueueEntryRecord>(db, read, kQueuePrefix, &batch, n));
  STORE_RETURN_IF_ERROR(
      DropUnreadable<StatsRecord>(db, read, kStatsPrefix, &batch, n));
  leveldb::WriteOptions write;
  write.sync = true;
  return FromLevelDb(db.Write(write, &batch), "remove damaged records");
}

// Makes the records consistent after LevelDB's repair dropped some of them.
absl::Status FixDanglingRecords(leveldb::DB& db, RepairReport* report) {
  leveldb::ReadOptions read;
  read.verify_checksums = true;
  ReadView view(db, read);
  leveldb::WriteBatch batch;
  auto exists = [&](const std::string& key) -> absl::StatusOr<bool> {
    std::string value;
    absl::Status status = GetValue(db, view.options(), key, &value);
    if (absl::IsNotFound(status)) return false;
    if (!status.ok()) return status;
    return true;
  };
  // Deletes each key of the family whose record (named by target(key)) is
  // gone, counting them in *n.
  auto drop_dangling = [&](std::string_view prefix, auto target, size_t* n) {
    return ScanAll(db, view.options(), prefix,
                   [&](std::string_view key, std::string_view) -> absl::Status {
                     const std::string target_key = target(key);
                     absl::StatusOr<bool> found = exists(target_key);
                     if (!found.ok()) return found.status();
                     if (!*found) {
                       batch.Delete(ToSlice(key));
                       ++*n;
                     }
                     return absl::OkStatus();
                   });
  };
  STORE_RETURN_IF_ERROR(drop_dangling(
      kQueuePrefix,
      [](std::string_view key) {
        return DeliveryKey(key.substr(kQueuePrefix.size()));
      },
      &report->dangling_queue_entries));
  STORE_RETURN_IF_ERROR(drop_dangling(
      kDeliveryListPrefix,
      [](std::string_view key) {
        return DeliveryKey(key.substr(
            std::min(key.size(), kDeliveryListPrefix.size() + kTimeKeyBytes)));
      },
      &report->dangling_index_entries));
  for (std::string_view prefix :
       {kDeliveryEndpointPrefix, kDeliveryThreadPrefix}) {
    STORE_RETURN_IF_ERROR(drop_dangling(
        prefix,
        [prefix](std::string_view key) {
          return DeliveryKey(
              IdAfterComponent(key, prefix.size(), kTimeKeyBytes));
        },
        &report->dangling_index_entries));
  }
  STORE_RETURN_IF_ERROR(drop_dangling(
      kEndpointThreadPrefix,
      [](std::string_view key) {
        return EndpointKey(
            IdAfterComponent(key, kEndpointThreadPrefix.size(), 0));
      },
      &report->dangling_endpoint_entries));

  // Queued deliveries: without their event there is nothing to send; without
  // their queue entry they would never be attempted.
  STORE_RETURN_IF_ERROR(ScanAll(
      db, view.options(), kDeliveryPrefix,
      [&](std::string_view key, std::string_view value) -> absl::Status {
        Delivery delivery;
        STORE_RETURN_IF_ERROR(ParseValue(key, value, &delivery));
        if (!IsQueued(delivery.status())) return absl::OkStatus();
        absl::StatusOr<bool> has_event = exists(EventKey(delivery.event_id()));
        if (!has_event.ok()) return has_event.status();
        if (!*has_event) {
          delivery.set_status(webhook::v1::DELIVERY_STATUS_FAILED);
          delivery.set_last_error(
              "its event (the payload) was lost in a database repair");
          delivery.clear_next_attempt_time();
          ++report->deliveries_without_event;
          return AddDeliveryState(delivery, false, &batch);
        }
        absl::StatusOr<bool> has_entry = exists(QueueKey(delivery.id()));
        if (!has_entry.ok()) return has_entry.status();
        if (!*has_entry) {
          ++report->requeued_deliveries;
          return AddDeliveryState(delivery, false, &batch);
        }
        return absl::OkStatus();
      }));
  leveldb::WriteOptions write;
  write.sync = true;
  return FromLevelDb(db.Write(write, &batch), "write the repaired records");
}

}  // namespace

std::string RepairReport::ToString() const {
  auto counts = [](size_t endpoints, size_t events, size_t deliveries,
                   size_t queued) {
    return Cat(std::to_string(endpoints), " endpoints, ",
               std::to_string(events), " events, ", std::to_string(deliveries),
               " deliveries (", std::to_string(queued), " queued)");
  };
  std::string out;
  if (readable_before) {
    out += Cat("Before the repair: ",
               counts(endpoints_before, events_before, deliveries_before,
                      queued_before),
               ".\n");
  } else {
    out +=
        Cat("Before the repair the database could not be read: ", error_before,
            "\n");
  }
  out += "LevelDB's repair:\n";
  for (const std::string& line : leveldb_log) out += Cat("  ", line, "\n");
  out +=
      Cat("After the repair: ",
          counts(endpoints_after, events_after, deliveries_after, queued_after),
          ".\n");
  out += "Could not keep:\n";
  bool lost_any = false;
  auto lost = [&](size_t n, std::string_view what) {
    if (n == 0) return;
    lost_any = true;
    out += Cat("  ", std::to_string(n), " ", what, "\n");
  };
  if (readable_before) {
    auto minus = [](size_t a, size_t b) { return a > b ? a - b : 0; };
    lost(minus(endpoints_before, endpoints_after), "endpoints");
    lost(minus(events_before, events_after), "events");
    lost(minus(deliveries_before, deliveries_after), "deliveries");
  }
  lost(damaged_records,
       "records whose bytes were damaged and no longer parse (removed)");
  lost(dangling_index_entries,
       "list index entries of lost deliveries (removed)");
  lost(dangling_queue_entries, "queue entries of lost deliveries (removed)");
  lost(dangling_endpoint_entries,
       "thread index entries of lost endpoints (removed)");
  lost(deliveries_without_event,
       "queued deliveries whose event was lost (ended as FAILED)");
  if (!lost_any) {
    out += readable_before
               ? "  nothing that webhookd can tell\n"
               : "  no dangling records; LevelDB's lines above say what it "
                 "dropped\n";
  }
  if (requeued_deliveries > 0) {
    out += Cat("Queued again: ", std::to_string(requeued_deliveries),
               " deliveries whose queue entry was lost.\n");
  }
  return out;
}

absl::StatusOr<RepairReport> RepairLevelDbStore(
    const std::string& dir, const LevelDbStoreOptions& options) {
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) {
    return absl::NotFoundError(
        Cat("data directory \"", dir, "\" does not exist"));
  }
  leveldb::Options db_options;
  db_options.paranoid_checks = true;
  db_options.create_if_missing = false;
  if (options.env != nullptr) db_options.env = options.env;
  CapturingLogger logger;
  db_options.info_log = &logger;

  RepairReport report;
  {
    absl::StatusOr<std::unique_ptr<leveldb::DB>> db =
        OpenForRepair(dir, db_options);
    if (absl::IsFailedPrecondition(db.status())) return db.status();
    if (db.ok()) {
      absl::StatusOr<RecordCounts> counts = CountRecords(**db);
      if (counts.ok()) {
        report.readable_before = true;
        report.endpoints_before = counts->endpoints;
        report.events_before = counts->events;
        report.deliveries_before = counts->deliveries;
        report.queued_before = counts->queued;
      } else {
        report.error_before = std::string(counts.status().message());
      }
    } else {
      report.error_before = std::string(db.status().message());
    }
  }
  logger.Take();  // Only the repair's own lines are reported.

  leveldb::Status s = leveldb::RepairDB(dir, db_options);
  report.leveldb_log = logger.Take();
  if (!s.ok()) return FromLevelDb(s, Cat("repair of \"", dir, "\""));

  absl::StatusOr<std::unique_ptr<leveldb::DB>> db =
      OpenForRepair(dir, db_options);
  if (!db.ok()) return db.status();
  STORE_RETURN_IF_ERROR(DropDamagedRecords(**db, &report));
  STORE_RETURN_IF_ERROR(FixDanglingRecords(**db, &report));
  absl::StatusOr<RecordCounts> counts = CountRecords(**db);
  if (!counts.ok()) return counts.status();
  report.endpoints_after = counts->endpoints;
  report.events_after = counts->events;
  report.deliveries_after = counts->deliveries;
  report.queued_after = counts->queued;
  db->reset();  // Closed before the logger goes away.
  return report;
}

}  // namespace webhookd

#undef STORE_RETURN_IF_ERROR
