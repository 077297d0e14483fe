#include "storage/leveldb/record_io.h"

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/leveldb/keys.h"

namespace webhookd::leveldb_internal {

using webhookd::storage::QueueEntryRecord;

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

absl::Status GetValue(leveldb::DB& db, const leveldb::ReadOptions& options,
                      std::string_view key, std::string* value) {
  return FromLevelDb(db.Get(options, ToSlice(key), value),
                     Cat("read \"", leveldb_keys::Printable(key), "\""));
}

absl::StatusOr<bool> Exists(leveldb::DB& db,
                            const leveldb::ReadOptions& options,
                            std::string_view key) {
  std::string value;
  absl::Status status = GetValue(db, options, key, &value);
  if (absl::IsNotFound(status)) return false;
  if (!status.ok()) return status;
  return true;
}

absl::Status AddDeliveryState(const Delivery& delivery,
                              std::optional<absl::Time> due, bool manual,
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
  batch->Put(leveldb_keys::DeliveryKey(delivery.id()), value);

  const std::string queue_key = leveldb_keys::QueueKey(delivery.id());
  if (!due.has_value()) {
    batch->Delete(queue_key);
    return absl::OkStatus();
  }
  if (delivery.endpoint_id().empty()) {
    return absl::InvalidArgumentError(
        Cat("queued delivery ", delivery.id(), " has no endpoint"));
  }
  QueueEntryRecord entry;
  entry.set_endpoint_id(delivery.endpoint_id());
  entry.set_due_unix_micros(absl::ToUnixMicros(*due));
  entry.set_manual(manual);
  entry.set_test(delivery.test());
  batch->Put(queue_key, entry.SerializeAsString());
  return absl::OkStatus();
}

}  // namespace webhookd::leveldb_internal
