#include "storage/leveldb/repair.h"

#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "leveldb/db.h"
#include "leveldb/env.h"
#include "leveldb/options.h"
#include "leveldb/write_batch.h"
#include "server/common/status_macros.h"
#include "server/common/time_util.h"
#include "storage/leveldb/keys.h"
#include "storage/leveldb/record_io.h"

namespace webhookd {

using leveldb_internal::AddDeliveryState;
using leveldb_internal::Cat;
using leveldb_internal::Exists;
using leveldb_internal::FromLevelDb;
using leveldb_internal::OpenError;
using leveldb_internal::ParseValue;
using leveldb_internal::ReadView;
using leveldb_internal::ScanAll;
using leveldb_internal::ToSlice;
using webhookd::storage::IdempotencyRecord;
using webhookd::storage::QueueEntryRecord;
using webhookd::storage::StatsRecord;
namespace keys = ::webhookd::leveldb_keys;

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
  WEBHOOKD_RETURN_IF_ERROR(count(keys::kEndpointPrefix, &counts.endpoints));
  WEBHOOKD_RETURN_IF_ERROR(count(keys::kEventPrefix, &counts.events));
  WEBHOOKD_RETURN_IF_ERROR(count(keys::kDeliveryPrefix, &counts.deliveries));
  WEBHOOKD_RETURN_IF_ERROR(count(keys::kQueuePrefix, &counts.queued));
  return counts;
}

absl::StatusOr<std::unique_ptr<leveldb::DB>> OpenForRepair(
    const std::string& dir, const leveldb::Options& options) {
  leveldb::DB* raw = nullptr;
  leveldb::Status s = leveldb::DB::Open(options, dir, &raw);
  if (!s.ok()) return OpenError(dir, s);
  return std::unique_ptr<leveldb::DB>(raw);
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
  WEBHOOKD_RETURN_IF_ERROR(
      DropUnreadable<Endpoint>(db, read, keys::kEndpointPrefix, &batch, n));
  WEBHOOKD_RETURN_IF_ERROR(
      DropUnreadable<EventRecord>(db, read, keys::kEventPrefix, &batch, n));
  WEBHOOKD_RETURN_IF_ERROR(DropUnreadable<IdempotencyRecord>(
      db, read, keys::kIdempotencyPrefix, &batch, n));
  WEBHOOKD_RETURN_IF_ERROR(
      DropUnreadable<Delivery>(db, read, keys::kDeliveryPrefix, &batch, n));
  WEBHOOKD_RETURN_IF_ERROR(DropUnreadable<QueueEntryRecord>(
      db, read, keys::kQueuePrefix, &batch, n));
  WEBHOOKD_RETURN_IF_ERROR(
      DropUnreadable<StatsRecord>(db, read, keys::kStatsPrefix, &batch, n));
  leveldb::WriteOptions write;
  write.sync = true;
  return FromLevelDb(db.Write(write, &batch), "remove damaged records");
}

// The placeholder of the lost event of `delivery`, without delivery ids.
EventRecord PlaceholderEventOf(const Delivery& delivery) {
  EventRecord event;
  event.set_id(delivery.event_id());
  event.set_thread_id(delivery.thread_id());
  event.set_user_id(delivery.user_id());
  event.set_event_type(delivery.event_type());
  if (delivery.has_create_time()) {
    event.set_create_time_unix_micros(
        absl::ToUnixMicros(FromProtoTime(delivery.create_time())));
  }
  event.set_payload_lost(true);
  return event;
}

// Makes the records consistent after LevelDB's repair dropped some of them.
absl::Status FixDanglingRecords(leveldb::DB& db, const RepairRules& rules,
                                RepairReport* report) {
  leveldb::ReadOptions read;
  read.verify_checksums = true;
  ReadView view(db, read);
  leveldb::WriteBatch batch;
  // Deletes each key of the family whose record (named by target(key), or
  // nullopt if the key is malformed) is gone, counting them in *n.
  auto drop_dangling = [&](std::string_view prefix, auto target, size_t* n) {
    return ScanAll(db, view.options(), prefix,
                   [&](std::string_view key, std::string_view) -> absl::Status {
                     const std::optional<std::string> target_key = target(key);
                     bool found = false;
                     if (target_key.has_value()) {
                       absl::StatusOr<bool> exists =
                           Exists(db, view.options(), *target_key);
                       if (!exists.ok()) return exists.status();
                       found = *exists;
                     }
                     if (!found) {
                       batch.Delete(ToSlice(key));
                       ++*n;
                     }
                     return absl::OkStatus();
                   });
  };
  auto delivery_of_index_key =
      [](std::string_view key) -> std::optional<std::string> {
    const std::optional<keys::DeliveryIndexEntry> entry =
        keys::ParseDeliveryIndexKey(key);
    if (!entry.has_value()) return std::nullopt;
    return keys::DeliveryKey(entry->delivery_id);
  };
  WEBHOOKD_RETURN_IF_ERROR(drop_dangling(
      keys::kQueuePrefix,
      [](std::string_view key) -> std::optional<std::string> {
        return keys::DeliveryKey(keys::IdAfter(keys::kQueuePrefix, key));
      },
      &report->dangling_queue_entries));
  for (std::string_view prefix :
       {keys::kDeliveryListPrefix, keys::kDeliveryEndpointPrefix,
        keys::kDeliveryThreadPrefix}) {
    WEBHOOKD_RETURN_IF_ERROR(drop_dangling(prefix, delivery_of_index_key,
                                           &report->dangling_index_entries));
  }
  WEBHOOKD_RETURN_IF_ERROR(drop_dangling(
      keys::kEndpointThreadPrefix,
      [](std::string_view key) -> std::optional<std::string> {
        const std::optional<std::string_view> id =
            keys::ParseEndpointThreadKey(key);
        if (!id.has_value()) return std::nullopt;
        return keys::EndpointKey(*id);
      },
      &report->dangling_endpoint_entries));

  // A delivery whose event was lost cannot be read (GetDelivery reads the
  // payload from the event), so each such event is written again as a
  // placeholder: no payload, marked payload_lost for the domain, which
  // refuses to send it; the rest taken from its surviving deliveries.
  std::map<std::string, EventRecord> placeholders;  // By event id.
  // Deliveries awaiting an attempt (as the domain's rules tell from their
  // state): without their event there is nothing to send; without their
  // queue entry they would never be attempted.
  WEBHOOKD_RETURN_IF_ERROR(ScanAll(
      db, view.options(), keys::kDeliveryPrefix,
      [&](std::string_view key, std::string_view value) -> absl::Status {
        Delivery delivery;
        WEBHOOKD_RETURN_IF_ERROR(ParseValue(key, value, &delivery));
        absl::StatusOr<bool> has_event =
            Exists(db, view.options(), keys::EventKey(delivery.event_id()));
        if (!has_event.ok()) return has_event.status();
        if (!*has_event && !delivery.event_id().empty()) {
          EventRecord& event = placeholders[delivery.event_id()];
          if (event.id().empty()) event = PlaceholderEventOf(delivery);
          event.add_delivery_ids(delivery.id());
        }
        const std::optional<absl::Time> due = rules.next_due(delivery);
        if (!due.has_value()) return absl::OkStatus();
        if (!*has_event) {
          ++report->deliveries_without_event;
          const Delivery ended = rules.end(
              std::move(delivery),
              "its event (the payload) was lost in a database repair");
          return AddDeliveryState(ended, std::nullopt, false, &batch);
        }
        absl::StatusOr<bool> has_entry =
            Exists(db, view.options(), keys::QueueKey(delivery.id()));
        if (!has_entry.ok()) return has_entry.status();
        if (!*has_entry) {
          ++report->requeued_deliveries;
          return AddDeliveryState(delivery, due, false, &batch);
        }
        return absl::OkStatus();
      }));
  for (const auto& [id, event] : placeholders) {
    batch.Put(keys::EventKey(id), event.SerializeAsString());
    ++report->events_with_lost_payload;
    report->deliveries_with_lost_payload += event.delivery_ids_size();
  }
  // Deliveries were ended or lost: the store counts those in progress
  // again from the queue when it next opens (before an upgrade to the
  // counts, it sets them up then anyway).
  absl::StatusOr<bool> counted =
      Exists(db, view.options(), std::string(keys::kCountsVersionKey));
  if (!counted.ok()) return counted.status();
  if (*counted) {
    batch.Put(ToSlice(keys::kCountsVersionKey), ToSlice(keys::kCountsRecount));
  }
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
  if (events_with_lost_payload > 0) {
    lost_any = true;
    out += Cat("  ", std::to_string(events_with_lost_payload),
               " events lost their payload; their ",
               std::to_string(deliveries_with_lost_payload),
               " deliveries were kept and cannot be retried\n");
  }
  lost(deliveries_without_event,
       "queued deliveries whose event was lost (ended, not attempted again)");
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
    const std::string& dir, const RepairRules& rules,
    const LevelDbStoreOptions& options) {
  if (!rules.next_due || !rules.end) {
    return absl::InvalidArgumentError("repair: the delivery rules are unset");
  }
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
  WEBHOOKD_RETURN_IF_ERROR(DropDamagedRecords(**db, &report));
  WEBHOOKD_RETURN_IF_ERROR(FixDanglingRecords(**db, rules, &report));
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
