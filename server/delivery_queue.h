// The in-memory schedule of deliveries waiting for an attempt. The store
// holds the durable copy; this is rebuilt from it at start-up.

#ifndef WEBHOOKD_SERVER_DELIVERY_QUEUE_H_
#define WEBHOOKD_SERVER_DELIVERY_QUEUE_H_

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "storage/store.h"

namespace webhookd {

// DeliveryQueue is not thread-safe: its owner serialises access.
//
// A delivery is in one of three places: scheduled (ordered by due time),
// held (its endpoint is disabled), or in flight (an attempt is running).
class DeliveryQueue {
 public:
  DeliveryQueue() = default;
  DeliveryQueue(const DeliveryQueue&) = delete;
  DeliveryQueue& operator=(const DeliveryQueue&) = delete;

  // Schedules a delivery, replacing any entry with the same id that is not
  // in flight. Returns false (and changes nothing) if it is in flight.
  bool Schedule(const QueuedDelivery& entry);

  // Takes up to `max` entries due at or before `now`, earliest first, and
  // marks them in flight. Entries whose endpoint `is_held` are moved aside
  // until Release() instead, except test deliveries.
  std::vector<QueuedDelivery> TakeDue(
      absl::Time now, size_t max,
      const std::function<bool(const std::string& endpoint_id)>& is_held);

  // Ends an in-flight or queued entry.
  void Remove(const std::string& delivery_id);

  // Moves held entries of an endpoint back to the schedule.
  void Release(const std::string& endpoint_id);

  // Removes every entry of an endpoint that is not in flight and returns
  // their ids.
  std::vector<std::string> RemoveEndpoint(const std::string& endpoint_id);

  // The earliest due time of a scheduled entry.
  std::optional<absl::Time> NextDue() const;

  bool Contains(const std::string& delivery_id) const;
  bool InFlight(const std::string& delivery_id) const;

  size_t size() const { return entries_.size(); }
  size_t in_flight() const { return in_flight_; }
  size_t held() const { return held_; }

 private:
  enum class State { kScheduled, kHeld, kInFlight };
  struct Entry {
    std::string endpoint_id;
    absl::Time due;
    bool manual = false;
    bool test = false;
    State state = State::kScheduled;
  };

  std::set<std::pair<absl::Time, std::string>> schedule_;
  absl::flat_hash_map<std::string, Entry> entries_;
  size_t in_flight_ = 0;
  size_t held_ = 0;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_QUEUE_H_
