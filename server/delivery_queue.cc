#include "server/delivery_queue.h"

namespace webhookd {

bool DeliveryQueue::Schedule(const QueuedDelivery& entry) {
  auto [it, inserted] = entries_.try_emplace(entry.delivery_id);
  Entry& e = it->second;
  if (!inserted) {
    switch (e.state) {
      case State::kInFlight:
        return false;
      case State::kScheduled:
        schedule_.erase({e.due, entry.delivery_id});
        break;
      case State::kHeld:
        --held_;
        break;
    }
  }
  e.endpoint_id = entry.endpoint_id;
  e.due = entry.due;
  e.manual = entry.manual;
  e.test = entry.test;
  e.state = State::kScheduled;
  schedule_.emplace(e.due, entry.delivery_id);
  return true;
}

std::vector<QueuedDelivery> DeliveryQueue::TakeDue(
    absl::Time now, size_t max,
    const std::function<bool(const std::string&)>& is_held) {
  std::vector<QueuedDelivery> due;
  while (!schedule_.empty() && due.size() < max) {
    auto first = schedule_.begin();
    if (first->first > now) break;
    Entry& e = entries_.at(first->second);
    if (!e.test && is_held(e.endpoint_id)) {
      e.state = State::kHeld;
      ++held_;
    } else {
      e.state = State::kInFlight;
      ++in_flight_;
      due.push_back(
          QueuedDelivery{first->second, e.endpoint_id, e.due, e.manual});
    }
    schedule_.erase(first);
  }
  return due;
}

void DeliveryQueue::Remove(const std::string& delivery_id) {
  auto it = entries_.find(delivery_id);
  if (it == entries_.end()) return;
  switch (it->second.state) {
    case State::kScheduled:
      schedule_.erase({it->second.due, delivery_id});
      break;
    case State::kHeld:
      --held_;
      break;
    case State::kInFlight:
      --in_flight_;
      break;
  }
  entries_.erase(it);
}

void DeliveryQueue::Release(const std::string& endpoint_id) {
  for (auto& [id, e] : entries_) {
    if (e.state != State::kHeld || e.endpoint_id != endpoint_id) continue;
    e.state = State::kScheduled;
    --held_;
    schedule_.emplace(e.due, id);
  }
}

std::vector<std::string> DeliveryQueue::RemoveEndpoint(
    const std::string& endpoint_id) {
  std::vector<std::string> removed;
  for (const auto& [id, e] : entries_) {
    if (e.endpoint_id == endpoint_id && e.state != State::kInFlight) {
      removed.push_back(id);
    }
  }
  for (const std::string& id : removed) Remove(id);
  return removed;
}

std::optional<absl::Time> DeliveryQueue::NextDue() const {
  if (schedule_.empty()) return std::nullopt;
  return schedule_.begin()->first;
}

bool DeliveryQueue::Contains(const std::string& delivery_id) const {
  return entries_.contains(delivery_id);
}

bool DeliveryQueue::InFlight(const std::string& delivery_id) const {
  auto it = entries_.find(delivery_id);
  return it != entries_.end() && it->second.state == State::kInFlight;
}

}  // namespace webhookd
