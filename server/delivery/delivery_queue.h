// The in-memory schedule of deliveries waiting for an attempt. The store
// holds the durable copy; this is rebuilt from it at start-up.

#ifndef WEBHOOKD_SERVER_DELIVERY_DELIVERY_QUEUE_H_
#define WEBHOOKD_SERVER_DELIVERY_DELIVERY_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "storage/store.h"

namespace webhookd {

// DeliveryQueue is not thread-safe: its owner serialises access.
//
// A delivery is in one of four places: scheduled (ordered by due time),
// held (its endpoint is disabled), parked (its endpoint has as many entries
// in flight as the per-endpoint cap allows) or in flight (an attempt is
// running).
//
// Test deliveries are never held or parked, but they count in flight: while
// a test attempt runs, its endpoint has one slot fewer for the others.
//
// Due times are kept to the microsecond, rounded up.
class DeliveryQueue {
 public:
  // At most `max_in_flight_per_endpoint` entries of one endpoint are in
  // flight at once, test deliveries aside; 0 means no limit.
  explicit DeliveryQueue(size_t max_in_flight_per_endpoint = 0);
  DeliveryQueue(const DeliveryQueue&) = delete;
  DeliveryQueue& operator=(const DeliveryQueue&) = delete;

  // Schedules a delivery, replacing any entry with the same id that is not
  // in flight. Returns false (and changes nothing) if it is in flight.
  bool Schedule(const QueuedDelivery& entry);

  // Takes up to `max` entries due at or before `now`, earliest first, and
  // marks them in flight. Entries whose endpoint `is_held` are moved aside
  // until Release() instead, except test deliveries, and so are the parked
  // entries of that endpoint. Entries of an endpoint at the cap are parked
  // until one of its entries leaves flight.
  std::vector<QueuedDelivery> TakeDue(
      absl::Time now, size_t max,
      const std::function<bool(const std::string& endpoint_id)>& is_held);

  // Ends an in-flight, scheduled, held or parked entry. When it was in
  // flight, the earliest parked entry of its endpoint is scheduled again
  // (with its due time, so that it comes first).
  void Remove(const std::string& delivery_id);

  // Moves held entries of an endpoint back to the schedule.
  void Release(const std::string& endpoint_id);

  // Removes every entry of an endpoint that is not in flight and returns
  // their ids, in no particular order.
  std::vector<std::string> RemoveEndpoint(const std::string& endpoint_id);

  // The earliest due time of a scheduled entry (held and parked entries
  // wait for something else than time).
  std::optional<absl::Time> NextDue() const;
  // Scheduled entries due at or before `now`: those waiting for an attempt
  // slot rather than for their time. Amortised O(1): each entry is counted
  // once as time passes it. `now` going back counts from the latest given.
  size_t Ready(absl::Time now);

  // Tells how an attempt of `endpoint_id` ended at `now`: whether its
  // receiver answered with success, and how long it took. Kept while the
  // endpoint has entries; ignored for an endpoint without any.
  void RecordAttempt(std::string_view endpoint_id, absl::Time now,
                     absl::Duration elapsed, bool succeeded);
  // Parked entries of endpoints that keep up: whose last attempt succeeded
  // and ended within `quick` of `now`, and whose attempts take `quick` or
  // less on average. They wait for the service to make attempts, not for a
  // slow, hanging or failing receiver. O(endpoints with entries).
  size_t ParkedBehindQuickEndpoints(absl::Time now, absl::Duration quick) const;

  bool Contains(const std::string& delivery_id) const;
  bool InFlight(const std::string& delivery_id) const;

  // Entries in any of the four places.
  size_t size() const { return index_.size(); }
  size_t in_flight() const { return in_flight_; }
  size_t held() const { return held_; }
  size_t parked() const { return parked_.size(); }
  size_t max_in_flight_per_endpoint() const { return cap_; }

 private:
  // Where an entry is kept: an index into the entry table.
  using Slot = uint32_t;
  static constexpr Slot kNoSlot = ~Slot{0};

  enum class State : uint8_t { kScheduled, kHeld, kParked, kInFlight };

  // One delivery: 40 bytes. Ids of the form NewId("dlv_") makes are kept as
  // their 128 bits; others are in long_ids_.
  struct Entry {
    uint64_t id_high;
    uint64_t id_low;
    int64_t due;  // Unix microseconds.
    uint32_t endpoint;
    Slot prev;  // The entries of the endpoint, a doubly linked list.
    Slot next;  // Also the free list.
    State state;
    bool compact_id : 1;
    bool manual : 1;
    bool test : 1;
    // Scheduled again from parked: holds a slot of its endpoint.
    bool unparked : 1;
  };
  static_assert(sizeof(Entry) == 40);

  struct EndpointState {
    std::string id;
    uint32_t entries = 0;  // In any state; the slot is freed at 0.
    uint32_t in_flight = 0;
    uint32_t parked = 0;
    uint32_t unparked = 0;  // Scheduled entries with `unparked` set.
    Slot head = kNoSlot;    // Of the list of its entries.
    // Its attempts, as RecordAttempt learnt them: when the last ended
    // (Unix microseconds; none yet: the minimum), whether it succeeded, and
    // a moving average of how long they take.
    int64_t last_attempt_end = std::numeric_limits<int64_t>::min();
    bool last_attempt_succeeded = false;
    double mean_attempt_seconds = 0;
  };

  // A delivery id as looked up: 128 bits or, for other ids, the text.
  struct IdKey {
    bool compact;
    uint64_t high;
    uint64_t low;
    std::string_view text;
  };

  // The index holds slots, hashed and compared by the ids they hold, and is
  // searched by IdKey.
  struct SlotHash {
    using is_transparent = void;
    size_t operator()(Slot slot) const;
    size_t operator()(const IdKey& key) const;
    const DeliveryQueue* queue;
  };
  struct SlotEq {
    using is_transparent = void;
    bool operator()(Slot a, Slot b) const;
    bool operator()(Slot a, const IdKey& b) const;
    bool operator()(const IdKey& a, Slot b) const { return (*this)(b, a); }
    const DeliveryQueue* queue;
  };

  struct DueKey {
    int64_t due;
    Slot slot;
    friend bool operator<(const DueKey& a, const DueKey& b) {
      return a.due != b.due ? a.due < b.due : a.slot < b.slot;
    }
  };
  // Parked entries, by endpoint then due time.
  struct ParkedKey {
    uint32_t endpoint;
    Slot slot;
    int64_t due;
    friend bool operator<(const ParkedKey& a, const ParkedKey& b) {
      if (a.endpoint != b.endpoint) return a.endpoint < b.endpoint;
      return a.due != b.due ? a.due < b.due : a.slot < b.slot;
    }
  };

  // Entries are allocated 1024 at once.
  static constexpr int kChunkBits = 10;
  static constexpr Slot kChunkMask = (Slot{1} << kChunkBits) - 1;

  static IdKey ParseId(std::string_view id);
  IdKey KeyOf(Slot slot) const;
  std::string IdOf(Slot slot) const;
  Entry& At(Slot slot) {
    return chunks_[slot >> kChunkBits][slot & kChunkMask];
  }
  const Entry& At(Slot slot) const {
    return chunks_[slot >> kChunkBits][slot & kChunkMask];
  }
  // The slot of an id, or kNoSlot.
  Slot Find(std::string_view delivery_id) const;

  // Adds a scheduled entry; its id must not be in the index.
  Slot Add(const QueuedDelivery& entry, const IdKey& key);
  // Takes the entry out of the schedule, held or parked entries, or flight.
  void Detach(Slot slot);
  // Detaches and frees the entry; then, if `refill`, schedules parked
  // entries of its endpoint that may now go in flight.
  void Erase(Slot slot, bool refill);
  // Schedules the earliest parked entries of an endpoint while it has fewer
  // than cap_ entries in flight or on their way there.
  void Refill(uint32_t endpoint);
  // Moves the parked entries of an endpoint to the held ones.
  void HoldParked(uint32_t endpoint);
  // Finds or adds the endpoint and counts one more entry of it; Erase
  // frees it after its last entry.
  uint32_t AcquireEndpoint(const std::string& endpoint_id);
  // Frees the tables once the queue is empty, so that a drained backlog
  // gives its memory back.
  void TrimIfEmpty();

  const size_t cap_;

  // The entry table, in chunks that never move; free slots are linked by
  // Entry::next.
  std::vector<std::unique_ptr<Entry[]>> chunks_;
  Slot free_ = kNoSlot;
  Slot used_ = 0;  // Slots handed out at least once.
  absl::flat_hash_map<Slot, std::string> long_ids_;
  absl::flat_hash_set<Slot, SlotHash, SlotEq> index_;

  // Every change of schedule_ goes through these two, which keep ready_.
  void ScheduleInsert(DueKey key);
  void ScheduleErase(absl::btree_set<DueKey>::iterator it);

  absl::btree_set<DueKey> schedule_;
  // The entries of schedule_ due at or before ready_until_.
  size_t ready_ = 0;
  int64_t ready_until_ = std::numeric_limits<int64_t>::min();
  absl::btree_set<ParkedKey> parked_;
  size_t in_flight_ = 0;
  size_t held_ = 0;

  // Endpoints with entries, by index; an index is reused once free.
  std::vector<EndpointState> endpoints_;
  std::vector<uint32_t> free_endpoints_;
  absl::flat_hash_map<std::string, uint32_t> endpoint_index_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_DELIVERY_QUEUE_H_
