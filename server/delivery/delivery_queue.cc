#include "server/delivery/delivery_queue.h"

#include <cstring>
#include <limits>
#include <utility>

#include "absl/hash/hash.h"
#include "server/common/string_view.h"

// Memory: a backlog of a million deliveries is what this is sized for. An
// entry costs about 74 bytes there (queue-bench): 40 in the entry table
// (chunks, so that growing never copies it), about 10 in the index (a 4-byte
// slot number per hash slot, rather than the id), and about 23 in the
// schedule's B-tree (a 16-byte key per value, no node per entry). Endpoint
// ids are kept once per endpoint, delivery ids of webhookd's own form as 16
// bytes. Parked entries cost 16 bytes more while parked.

namespace webhookd {
namespace {

// NewId("dlv_") makes these: the prefix and 32 lowercase hex digits. They
// are kept as the 128 bits (16 bytes rather than a 37-byte string on the
// heap); any other id is kept as it is.
constexpr std::string_view kIdPrefix = "dlv_";
constexpr size_t kIdHexDigits = 32;
constexpr char kHexDigits[] = "0123456789abcdef";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // Uppercase too: it would not come back the same.
}

// A due time in whole microseconds, rounded up so that an entry is never
// taken before its time: NextDue() is then never earlier than the time
// asked for, and TakeDue at that time takes the entry.
int64_t DueMicros(absl::Time due) {
  int64_t micros = absl::ToUnixMicros(due);  // Rounds down.
  if (absl::FromUnixMicros(micros) < due &&
      micros != std::numeric_limits<int64_t>::max()) {
    ++micros;
  }
  return micros;
}

constexpr int64_t kMinDue = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxDue = std::numeric_limits<int64_t>::max();

}  // namespace

DeliveryQueue::DeliveryQueue(size_t max_in_flight_per_endpoint)
    : cap_(max_in_flight_per_endpoint),
      index_(0, SlotHash{this}, SlotEq{this}) {}

DeliveryQueue::IdKey DeliveryQueue::ParseId(std::string_view id) {
  if (id.size() == kIdPrefix.size() + kIdHexDigits &&
      id.substr(0, kIdPrefix.size()) == kIdPrefix) {
    uint64_t halves[2] = {0, 0};
    bool hex = true;
    for (size_t i = 0; i < kIdHexDigits && hex; ++i) {
      const int value = HexValue(id[kIdPrefix.size() + i]);
      hex = value >= 0;
      halves[i / 16] = halves[i / 16] << 4 | static_cast<uint64_t>(value);
    }
    if (hex) return IdKey{true, halves[0], halves[1], {}};
  }
  return IdKey{false, 0, 0, id};
}

DeliveryQueue::IdKey DeliveryQueue::KeyOf(Slot slot) const {
  const Entry& e = At(slot);
  if (e.compact_id) return IdKey{true, e.id_high, e.id_low, {}};
  return IdKey{false, 0, 0, long_ids_.find(slot)->second};
}

std::string DeliveryQueue::IdOf(Slot slot) const {
  const Entry& e = At(slot);
  if (!e.compact_id) return long_ids_.find(slot)->second;
  std::string id(kIdPrefix.size() + kIdHexDigits, '\0');
  std::memcpy(id.data(), kIdPrefix.data(), kIdPrefix.size());
  char* hex = id.data() + kIdPrefix.size();
  for (int i = 0; i < 16; ++i) {
    hex[i] = kHexDigits[(e.id_high >> (60 - 4 * i)) & 0xf];
    hex[16 + i] = kHexDigits[(e.id_low >> (60 - 4 * i)) & 0xf];
  }
  return id;
}

size_t DeliveryQueue::SlotHash::operator()(Slot slot) const {
  return (*this)(queue->KeyOf(slot));
}

size_t DeliveryQueue::SlotHash::operator()(const IdKey& key) const {
  if (key.compact) {
    return absl::Hash<std::pair<uint64_t, uint64_t>>()({key.high, key.low});
  }
  return absl::Hash<std::string_view>()(key.text);
}

bool DeliveryQueue::SlotEq::operator()(Slot a, Slot b) const {
  return a == b || (*this)(a, queue->KeyOf(b));
}

bool DeliveryQueue::SlotEq::operator()(Slot a, const IdKey& b) const {
  const Entry& e = queue->At(a);
  if (e.compact_id != b.compact) return false;
  if (b.compact) return e.id_high == b.high && e.id_low == b.low;
  return queue->long_ids_.find(a)->second == b.text;
}

DeliveryQueue::Slot DeliveryQueue::Find(std::string_view delivery_id) const {
  auto it = index_.find(ParseId(delivery_id));
  return it == index_.end() ? kNoSlot : *it;
}

bool DeliveryQueue::Schedule(const QueuedDelivery& entry) {
  const IdKey key = ParseId(entry.delivery_id);
  if (auto it = index_.find(key); it != index_.end()) {
    if (At(*it).state == State::kInFlight) return false;
    // Replaced as a new entry: its endpoint or due time may differ.
    Erase(*it, /*refill=*/true);
  }
  Add(entry, key);
  return true;
}

DeliveryQueue::Slot DeliveryQueue::Add(const QueuedDelivery& entry,
                                       const IdKey& key) {
  Slot slot;
  if (free_ != kNoSlot) {
    slot = free_;
    free_ = At(slot).next;
  } else {
    if ((used_ >> kChunkBits) == chunks_.size()) {
      chunks_.push_back(std::make_unique<Entry[]>(size_t{1} << kChunkBits));
    }
    slot = used_++;
  }
  const uint32_t endpoint = AcquireEndpoint(entry.endpoint_id);
  EndpointState& ep = endpoints_[endpoint];
  Entry& e = At(slot);
  e.id_high = key.high;
  e.id_low = key.low;
  e.compact_id = key.compact;
  if (!key.compact) long_ids_.emplace(slot, key.text);
  e.due = DueMicros(entry.due);
  e.endpoint = endpoint;
  e.prev = kNoSlot;
  e.next = ep.head;
  if (ep.head != kNoSlot) At(ep.head).prev = slot;
  ep.head = slot;
  e.state = State::kScheduled;
  e.manual = entry.manual;
  e.test = entry.test;
  e.unparked = false;
  index_.insert(slot);
  ScheduleInsert(DueKey{e.due, slot});
  return slot;
}

void DeliveryQueue::Detach(Slot slot) {
  Entry& e = At(slot);
  EndpointState& ep = endpoints_[e.endpoint];
  switch (e.state) {
    case State::kScheduled:
      ScheduleErase(schedule_.find(DueKey{e.due, slot}));
      if (e.unparked) {
        e.unparked = false;
        --ep.unparked;
      }
      break;
    case State::kHeld:
      --held_;
      break;
    case State::kParked:
      parked_.erase(ParkedKey{e.endpoint, slot, e.due});
      --ep.parked;
      break;
    case State::kInFlight:
      --ep.in_flight;
      --in_flight_;
      break;
  }
}

void DeliveryQueue::Erase(Slot slot, bool refill) {
  Detach(slot);
  index_.erase(slot);  // Before the id goes: the index hashes it.
  Entry& e = At(slot);
  if (!e.compact_id) long_ids_.erase(slot);
  const uint32_t endpoint = e.endpoint;
  EndpointState& ep = endpoints_[endpoint];
  if (e.prev != kNoSlot) {
    At(e.prev).next = e.next;
  } else {
    ep.head = e.next;
  }
  if (e.next != kNoSlot) At(e.next).prev = e.prev;
  e.next = free_;
  free_ = slot;
  if (--ep.entries == 0) {
    endpoint_index_.erase(ep.id);
    ep = EndpointState();
    free_endpoints_.push_back(endpoint);
    TrimIfEmpty();
  } else if (refill) {
    Refill(endpoint);
  }
}

// Keeps this true of every endpoint: if it has parked entries, it has
// cap_ entries in flight or scheduled from parked (on their way to flight).
// So each parked entry waits for a slot that will be freed, and no more are
// scheduled than can go in flight.
void DeliveryQueue::Refill(uint32_t endpoint) {
  if (cap_ == 0) return;
  EndpointState& ep = endpoints_[endpoint];
  while (ep.parked > 0 && ep.in_flight + ep.unparked < cap_) {
    auto it = parked_.lower_bound(ParkedKey{endpoint, 0, kMinDue});
    const Slot slot = it->slot;
    parked_.erase(it);
    --ep.parked;
    ++ep.unparked;
    Entry& e = At(slot);
    e.state = State::kScheduled;
    e.unparked = true;
    ScheduleInsert(DueKey{e.due, slot});
  }
}

void DeliveryQueue::HoldParked(uint32_t endpoint) {
  EndpointState& ep = endpoints_[endpoint];
  if (ep.parked == 0) return;
  auto first = parked_.lower_bound(ParkedKey{endpoint, 0, kMinDue});
  auto last = parked_.upper_bound(ParkedKey{endpoint, kNoSlot, kMaxDue});
  for (auto it = first; it != last; ++it) At(it->slot).state = State::kHeld;
  parked_.erase(first, last);
  held_ += ep.parked;
  ep.parked = 0;
}

std::vector<QueuedDelivery> DeliveryQueue::TakeDue(
    absl::Time now, size_t max,
    const std::function<bool(const std::string&)>& is_held) {
  const int64_t now_micros = absl::ToUnixMicros(now);
  std::vector<QueuedDelivery> due;
  while (!schedule_.empty() && due.size() < max) {
    auto first = schedule_.begin();
    if (first->due > now_micros) break;
    const Slot slot = first->slot;
    ScheduleErase(first);
    Entry& e = At(slot);
    EndpointState& ep = endpoints_[e.endpoint];
    if (e.unparked) {
      e.unparked = false;
      --ep.unparked;
    }
    if (!e.test && is_held(ep.id)) {
      // Parked entries would wait for a slot that a held endpoint does not
      // free: they are held as well.
      e.state = State::kHeld;
      ++held_;
      HoldParked(e.endpoint);
    } else if (!e.test && cap_ != 0 && ep.in_flight >= cap_) {
      e.state = State::kParked;
      parked_.insert(ParkedKey{e.endpoint, slot, e.due});
      ++ep.parked;
    } else {
      e.state = State::kInFlight;
      ++ep.in_flight;
      ++in_flight_;
      due.push_back(QueuedDelivery{
          IdOf(slot), ep.id, absl::FromUnixMicros(e.due), e.manual, e.test});
    }
  }
  return due;
}

void DeliveryQueue::Remove(const std::string& delivery_id) {
  const Slot slot = Find(delivery_id);
  if (slot != kNoSlot) Erase(slot, /*refill=*/true);
}

void DeliveryQueue::Release(const std::string& endpoint_id) {
  auto it = endpoint_index_.find(endpoint_id);
  if (it == endpoint_index_.end()) return;
  for (Slot slot = endpoints_[it->second].head; slot != kNoSlot;
       slot = At(slot).next) {
    Entry& e = At(slot);
    if (e.state != State::kHeld) continue;
    e.state = State::kScheduled;
    --held_;
    ScheduleInsert(DueKey{e.due, slot});
  }
}

std::vector<std::string> DeliveryQueue::RemoveEndpoint(
    const std::string& endpoint_id) {
  std::vector<std::string> removed;
  auto it = endpoint_index_.find(endpoint_id);
  if (it == endpoint_index_.end()) return removed;
  std::vector<Slot> slots;
  for (Slot slot = endpoints_[it->second].head; slot != kNoSlot;
       slot = At(slot).next) {
    if (At(slot).state != State::kInFlight) slots.push_back(slot);
  }
  removed.reserve(slots.size());
  // No refill: the parked entries go too.
  for (Slot slot : slots) {
    removed.push_back(IdOf(slot));
    Erase(slot, /*refill=*/false);
  }
  return removed;
}

void DeliveryQueue::TrimIfEmpty() {
  // A queue that never held more than one chunk keeps its tables: it would
  // only allocate them again.
  if (!index_.empty() || used_ <= (Slot{1} << kChunkBits)) return;
  chunks_.resize(1);
  free_ = kNoSlot;
  used_ = 0;
  index_ = decltype(index_)(0, SlotHash{this}, SlotEq{this});
  long_ids_ = {};
  endpoints_ = {};
  free_endpoints_ = {};
  endpoint_index_ = {};
}

uint32_t DeliveryQueue::AcquireEndpoint(const std::string& endpoint_id) {
  uint32_t endpoint;
  if (auto it = endpoint_index_.find(endpoint_id);
      it != endpoint_index_.end()) {
    endpoint = it->second;
  } else {
    if (!free_endpoints_.empty()) {
      endpoint = free_endpoints_.back();
      free_endpoints_.pop_back();
    } else {
      endpoint = static_cast<uint32_t>(endpoints_.size());
      endpoints_.emplace_back();
    }
    endpoints_[endpoint].id = endpoint_id;
    endpoint_index_.emplace(endpoint_id, endpoint);
  }
  ++endpoints_[endpoint].entries;
  return endpoint;
}

void DeliveryQueue::ScheduleInsert(DueKey key) {
  schedule_.insert(key);
  if (key.due <= ready_until_) ++ready_;
}

void DeliveryQueue::ScheduleErase(absl::btree_set<DueKey>::iterator it) {
  if (it->due <= ready_until_) --ready_;
  schedule_.erase(it);
}

size_t DeliveryQueue::Ready(absl::Time now) {
  const int64_t now_micros = absl::ToUnixMicros(now);
  if (now_micros > ready_until_) {
    for (auto it = schedule_.upper_bound(DueKey{ready_until_, kNoSlot});
         it != schedule_.end() && it->due <= now_micros; ++it) {
      ++ready_;
    }
    ready_until_ = now_micros;
  }
  return ready_;
}

void DeliveryQueue::RecordAttempt(std::string_view endpoint_id, absl::Time now,
                                  absl::Duration elapsed, bool succeeded) {
  auto it = endpoint_index_.find(AsAbsl(endpoint_id));
  if (it == endpoint_index_.end()) return;
  EndpointState& ep = endpoints_[it->second];
  // The weight of the latest attempt in the average: a few attempts of a
  // receiver that turned slow (or fast again) are enough to tell.
  constexpr double kWeight = 0.25;
  const double seconds = absl::ToDoubleSeconds(elapsed);
  ep.mean_attempt_seconds =
      ep.last_attempt_end == kMinDue
          ? seconds
          : ep.mean_attempt_seconds +
                kWeight * (seconds - ep.mean_attempt_seconds);
  ep.last_attempt_end = absl::ToUnixMicros(now);
  ep.last_attempt_succeeded = succeeded;
}

size_t DeliveryQueue::ParkedBehindQuickEndpoints(absl::Time now,
                                                 absl::Duration quick) const {
  const int64_t since = absl::ToUnixMicros(now - quick);
  const double quick_seconds = absl::ToDoubleSeconds(quick);
  size_t parked = 0;
  for (const EndpointState& ep : endpoints_) {
    if (ep.parked == 0 || !ep.last_attempt_succeeded ||
        ep.last_attempt_end < since ||
        ep.mean_attempt_seconds > quick_seconds) {
      continue;
    }
    parked += ep.parked;
  }
  return parked;
}

std::optional<absl::Time> DeliveryQueue::NextDue() const {
  if (schedule_.empty()) return std::nullopt;
  return absl::FromUnixMicros(schedule_.begin()->due);
}

bool DeliveryQueue::Contains(const std::string& delivery_id) const {
  return Find(delivery_id) != kNoSlot;
}

bool DeliveryQueue::InFlight(const std::string& delivery_id) const {
  const Slot slot = Find(delivery_id);
  return slot != kNoSlot && At(slot).state == State::kInFlight;
}

}  // namespace webhookd
