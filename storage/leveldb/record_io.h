// Reading and writing webhookd records in a leveldb::DB: the one mapping of
// LevelDB's status to absl::Status, parsing of values, consistent scans.
// Shared by the store, its pruning and the repair tool; not for use outside
// storage/leveldb.

#ifndef WEBHOOKD_STORAGE_LEVELDB_RECORD_IO_H_
#define WEBHOOKD_STORAGE_LEVELDB_RECORD_IO_H_

#include <climits>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "leveldb/db.h"
#include "leveldb/iterator.h"
#include "leveldb/options.h"
#include "leveldb/slice.h"
#include "leveldb/status.h"
#include "leveldb/write_batch.h"
#include "server/common/status_macros.h"
#include "storage/leveldb/keys.h"
#include "storage/store.h"

namespace webhookd::leveldb_internal {

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

inline std::string_view ToStd(absl::string_view s) {
  return std::string_view(s.data(), s.size());
}

inline leveldb::Slice ToSlice(std::string_view s) {
  return leveldb::Slice(s.data(), s.size());
}

inline std::string_view ToView(const leveldb::Slice& s) {
  return std::string_view(s.data(), s.size());
}

// The one mapping of LevelDB's status to ours; context says what failed.
absl::Status FromLevelDb(const leveldb::Status& s, std::string_view context);

// Explains a failed DB::Open in terms of the data directory: a held lock is
// FailedPrecondition, corruption DataLoss.
absl::Status OpenError(const std::string& dir, const leveldb::Status& s);

// Parses the value of key. DataLoss if it is not a Message.
template <typename Message>
absl::Status ParseValue(std::string_view key, std::string_view value,
                        Message* message) {
  if (value.size() > static_cast<size_t>(INT32_MAX) ||
      !message->ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return absl::DataLossError(Cat("cannot parse the value of key \"",
                                   leveldb_keys::Printable(key), "\" as ",
                                   message->GetTypeName()));
  }
  return absl::OkStatus();
}

// Reads the value of key into *value. NotFound if absent.
absl::Status GetValue(leveldb::DB& db, const leveldb::ReadOptions& options,
                      std::string_view key, std::string* value);

// Reads and parses key. NotFound (with not_found_message) if absent.
template <typename Message>
absl::Status GetMessage(leveldb::DB& db, const leveldb::ReadOptions& options,
                        std::string_view key,
                        std::string_view not_found_message, Message* message) {
  std::string value;
  absl::Status status = GetValue(db, options, key, &value);
  if (absl::IsNotFound(status)) {
    return absl::NotFoundError(
        absl::string_view(not_found_message.data(), not_found_message.size()));
  }
  WEBHOOKD_RETURN_IF_ERROR(status);
  return ParseValue(key, value, message);
}

// Whether key exists.
absl::StatusOr<bool> Exists(leveldb::DB& db,
                            const leveldb::ReadOptions& options,
                            std::string_view key);

// A consistent view of the database (a snapshot) for one call.
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

// Calls visit(key, value), which returns an absl::Status, for every key with
// prefix, in a snapshot; stops at the first error.
template <typename Visit>
absl::Status ScanAll(leveldb::DB& db, const leveldb::ReadOptions& options,
                     std::string_view prefix, Visit visit) {
  ReadView view(db, options);
  std::unique_ptr<leveldb::Iterator> it(db.NewIterator(view.options()));
  for (it->Seek(ToSlice(prefix));
       it->Valid() && ToView(it->key()).starts_with(prefix); it->Next()) {
    WEBHOOKD_RETURN_IF_ERROR(visit(ToView(it->key()), ToView(it->value())));
  }
  return FromLevelDb(it->status(), "scan");
}

// Adds to batch the writes of a delivery's new state: the delivery (without
// payload), and its q/ entry when `due` is set (the delivery is queued) or
// the removal of that entry when it is not. `manual` marks the queued
// attempt as asked for by RetryDelivery.
absl::Status AddDeliveryState(const Delivery& delivery,
                              std::optional<absl::Time> due, bool manual,
                              leveldb::WriteBatch* batch);

}  // namespace webhookd::leveldb_internal

#endif  // WEBHOOKD_STORAGE_LEVELDB_RECORD_IO_H_
