// The key schema of LevelDbStore: how its records are laid out in one
// LevelDB database, and the functions that build and parse the keys.
//
// Every key starts with a short family prefix ending in '/'; no prefix is a
// prefix of another, so each family is one contiguous range. Components
// written <len>s are a 4-byte big-endian length followed by the bytes of s,
// so ids that contain '/' or NUL (thread ids are caller-chosen) cannot make
// one key family entry look like another's. <ts> is the 8-byte big-endian
// complement of the order-preserving encoding of a delivery's create_time in
// unix micros, so ascending key order is newest first. <user> is the 8-byte
// big-endian order-preserving encoding of a user id.
//
//   meta/schema_version                  -> "1"
//   meta/setting/<name>                  -> a setting's value
//   meta/counts_version                  -> "2" once st/ records keep
//                                           answered and delivery counts;
//                                           "recount" after a repair
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
//                                           queued
//   st/<endpoint_id>                     -> storage.StatsRecord
//
// A delivery's create_time never changes, so its three list index keys are
// written once, by InsertEvents, and removed only with the delivery, by
// PruneBefore (log retention). Deleting an endpoint keeps its deliveries,
// their index keys and its st/ record.
//
// Page tokens are the web-safe base64 of the last index key a list call
// examined; a token is valid only for the filter that produced it.

#ifndef WEBHOOKD_STORAGE_LEVELDB_KEYS_H_
#define WEBHOOKD_STORAGE_LEVELDB_KEYS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace webhookd::leveldb_keys {

inline constexpr std::string_view kSchemaVersionKey = "meta/schema_version";
inline constexpr std::string_view kSchemaVersion = "1";
// Present once every st/ record keeps answered and the delivery counts
// (LevelDbStore sets them up at the first start of a release that has them).
inline constexpr std::string_view kCountsVersionKey = "meta/counts_version";
inline constexpr std::string_view kCountsVersion = "2";
// Written by a repair over kCountsVersion: the deliveries in progress are
// counted again from the queue at the next open.
inline constexpr std::string_view kCountsRecount = "recount";
// meta/setting/<name> -> its value (Store::SettingOrInsert).
inline constexpr std::string_view kSettingPrefix = "meta/setting/";

inline constexpr std::string_view kEndpointPrefix = "ep/";
inline constexpr std::string_view kEndpointThreadPrefix = "ept/";
inline constexpr std::string_view kEventPrefix = "ev/";
inline constexpr std::string_view kIdempotencyPrefix = "idem/";
inline constexpr std::string_view kDeliveryPrefix = "d/";
inline constexpr std::string_view kDeliveryListPrefix = "dl/";
inline constexpr std::string_view kDeliveryEndpointPrefix = "dle/";
inline constexpr std::string_view kDeliveryThreadPrefix = "dlt/";
inline constexpr std::string_view kQueuePrefix = "q/";
inline constexpr std::string_view kStatsPrefix = "st/";

// The bytes of the <ts> component of the delivery index keys.
inline constexpr size_t kTimeKeyBytes = 8;

std::string EndpointKey(std::string_view endpoint_id);
// The ept/ range of one thread's endpoints.
std::string EndpointThreadPrefix(std::string_view thread_id);
std::string EndpointThreadKey(std::string_view thread_id,
                              std::string_view endpoint_id);
std::string EventKey(std::string_view event_id);
std::string IdempotencyKey(int64_t user_id, std::string_view idempotency_key);
std::string DeliveryKey(std::string_view delivery_id);
// The dle/ range of one endpoint's deliveries.
std::string DeliveryEndpointPrefix(std::string_view endpoint_id);
// The dlt/ range of one thread's deliveries.
std::string DeliveryThreadPrefix(std::string_view thread_id);
// prefix<ts><delivery_id>, prefix being kDeliveryListPrefix or one of the
// ranges above.
std::string DeliveryIndexKey(std::string prefix, int64_t create_micros,
                             std::string_view delivery_id);
std::string QueueKey(std::string_view delivery_id);
std::string StatsKey(std::string_view endpoint_id);

// The parts of a dl/, dle/ or dlt/ key. delivery_id points into the key.
struct DeliveryIndexEntry {
  int64_t create_micros = 0;
  std::string_view delivery_id;
};

// Parses a key of one of the delivery index families; nullopt if it is of
// another family or malformed (too short, or without a delivery id).
std::optional<DeliveryIndexEntry> ParseDeliveryIndexKey(std::string_view key);
// The endpoint id of an ept/ key (it points into the key); nullopt if the
// key is of another family or malformed.
std::optional<std::string_view> ParseEndpointThreadKey(std::string_view key);
// The id that follows `prefix` in key (a d/, q/, ep/, ev/ or st/ key).
// Empty if key does not start with prefix.
std::string_view IdAfter(std::string_view prefix, std::string_view key);

// The first key after every key that starts with prefix ("dl/" -> "dl0").
// prefix must not be empty.
std::string PrefixEnd(std::string_view prefix);

// The page token that continues a list after last_key.
std::string EncodePageToken(std::string_view last_key);
// Returns the key a page token names. InvalidArgument unless it lies in the
// range of prefix (the index the current filter selects) after prefix itself.
absl::StatusOr<std::string> DecodePageToken(std::string_view token,
                                            std::string_view prefix);

// Keys hold binary components; this makes them printable in messages.
std::string Printable(std::string_view key);

}  // namespace webhookd::leveldb_keys

#endif  // WEBHOOKD_STORAGE_LEVELDB_KEYS_H_
