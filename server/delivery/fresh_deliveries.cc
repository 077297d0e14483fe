#include "server/delivery/fresh_deliveries.h"

#include <utility>

namespace webhookd {

void FreshDeliveries::Put(FreshDelivery fresh) {
  if (capacity_ == 0) return;
  absl::MutexLock lock(&mu_);
  // Bounded by the ids remembered, taken or not, so that a backlog that is
  // never dispatched cannot grow the deque either.
  while (order_.size() >= capacity_) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
  order_.push_back(fresh.delivery.id());
  entries_.insert_or_assign(fresh.delivery.id(), std::move(fresh));
}

std::optional<FreshDelivery> FreshDeliveries::Take(
    const std::string& delivery_id) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(delivery_id);
  if (it == entries_.end()) return std::nullopt;
  FreshDelivery fresh = std::move(it->second);
  entries_.erase(it);
  return fresh;
}

size_t FreshDeliveries::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

}  // namespace webhookd
