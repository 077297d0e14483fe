// New deliveries handed from the submit pipeline to the dispatcher in
// memory, so that a first attempt does not read back (and parse) the record
// written a moment earlier, and the fan-out of one event shares one copy of
// its payload.

#ifndef WEBHOOKD_SERVER_DELIVERY_FRESH_DELIVERIES_H_
#define WEBHOOKD_SERVER_DELIVERY_FRESH_DELIVERIES_H_

#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "storage/store.h"

namespace webhookd {

// A delivery as stored, without payload, and its event's payload.
struct FreshDelivery {
  Delivery delivery;
  std::shared_ptr<const std::string> payload;
};

// FreshDeliveries is safe for concurrent use. It is a cache, bounded by
// count: when full, the oldest entry goes, and its delivery is read from
// the store when its turn comes, as after a restart. Only deliveries not yet
// attempted belong here (their stored state cannot change before their
// first attempt, except by ending, which takes them out of the queue).
class FreshDeliveries {
 public:
  explicit FreshDeliveries(size_t capacity) : capacity_(capacity) {}
  FreshDeliveries(const FreshDeliveries&) = delete;
  FreshDeliveries& operator=(const FreshDeliveries&) = delete;

  void Put(FreshDelivery fresh);
  // Takes the entry of `delivery_id`, or nullopt if there is none.
  std::optional<FreshDelivery> Take(const std::string& delivery_id);

  size_t size() const;

 private:
  const size_t capacity_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, FreshDelivery> entries_ ABSL_GUARDED_BY(mu_);
  // Ids in the order they were put; taken ones stay until they reach the
  // front.
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_FRESH_DELIVERIES_H_
