#include "server/delivery/claimer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace webhookd {
namespace {

// How soon a round is made again after the store failed.
constexpr absl::Duration kRetryAfterStoreFailure = absl::Seconds(1);

}  // namespace

Claimer::Claimer(SharedQueue& queue, Scheduler& scheduler,
                 ClaimerOptions options)
    : queue_(queue), scheduler_(scheduler), options_(options) {}

void Claimer::Add(absl::Span<const Claim> claims, absl::Time requested_at) {
  absl::MutexLock lock(&mu_);
  for (const Claim& claim : claims) {
    // A new claim of a delivery whose older claim ran out while in flight
    // here: the attempt is recorded with the new token.
    orphaned_.erase(claim.entry.delivery_id);
    held_.insert_or_assign(
        claim.entry.delivery_id,
        Held{claim, generation_, requested_at + options_.lease});
  }
}

absl::StatusOr<size_t> Claimer::Insert(absl::Span<const NewEvent> events,
                                       absl::Time now, bool claim_all) {
  const size_t held = scheduler_.size();
  const size_t room =
      claim_all ? SIZE_MAX
                : (held >= options_.max_held ? 0 : options_.max_held - held);
  absl::StatusOr<std::vector<Claim>> claims =
      queue_.InsertClaimed(events, options_.lease, room);
  if (!claims.ok()) return claims.status();
  Add(*claims, now);
  if (claims->size() >= room) {
    // Some may have been left for any node: this one too, once it has room.
    Wake();
  }
  return claims->size();
}

std::optional<int64_t> Claimer::Take(const std::string& delivery_id) {
  absl::MutexLock lock(&mu_);
  if (auto held = held_.find(delivery_id); held != held_.end()) {
    const int64_t token = held->second.claim.token;
    held_.erase(held);
    return token;
  }
  if (auto orphan = orphaned_.find(delivery_id); orphan != orphaned_.end()) {
    const int64_t token = orphan->second;
    orphaned_.erase(orphan);
    return token;
  }
  return std::nullopt;
}

absl::Status Claimer::GiveBack(const std::string& delivery_id) {
  Claim claim;
  {
    absl::MutexLock lock(&mu_);
    auto held = held_.find(delivery_id);
    if (held == held_.end()) return absl::OkStatus();
    claim = std::move(held->second.claim);
    held_.erase(held);
  }
  return queue_.ReleaseClaims({&claim, 1});
}

bool Claimer::CoversAttempt(const std::string& delivery_id,
                            absl::Time now) const {
  absl::MutexLock lock(&mu_);
  auto held = held_.find(delivery_id);
  return held != held_.end() &&
         now + options_.attempt_timeout < held->second.until;
}

size_t Claimer::size() const {
  absl::MutexLock lock(&mu_);
  return held_.size() + orphaned_.size();
}

void Claimer::ExpireLocked(absl::Time now) {
  for (auto it = held_.begin(); it != held_.end();) {
    auto current = it++;
    if (now < current->second.until) continue;
    const Claim& claim = current->second.claim;
    if (scheduler_.Withdraw(claim.entry.delivery_id) ==
        Scheduler::Withdrawal::kInFlight) {
      orphaned_.emplace(claim.entry.delivery_id, claim.token);
    } else {
      lost_.push_back(claim);
    }
    held_.erase(current);
  }
}

bool Claimer::ReleaseLost() {
  std::vector<Claim> lost;
  {
    absl::MutexLock lock(&mu_);
    lost.swap(lost_);
  }
  if (lost.empty()) return true;
  if (absl::Status released = queue_.ReleaseClaims(lost); !released.ok()) {
    Log(LogLevel::kError, absl::StrCat("giving back ", lost.size(),
                                       " lost claims: ", released.ToString()));
    absl::MutexLock lock(&mu_);
    lost_.insert(lost_.end(), lost.begin(), lost.end());
    return false;
  }
  Log(LogLevel::kWarning,
      absl::StrCat("gave back ", lost.size(),
                   " claims whose leases ran out before they were renewed"));
  return true;
}

bool Claimer::RenewIfDue(absl::Time now) {
  uint64_t covered;
  std::vector<int64_t> tokens;
  {
    absl::MutexLock lock(&mu_);
    if (held_.empty()) return true;
    if (now < renewed_at_ + options_.lease / 3) return true;
    covered = generation_++;
    // Only the claims this node knows of: any other it may hold in the
    // store (made by a write whose answer was lost) runs out, and another
    // node takes it.
    tokens.reserve(held_.size());
    for (const auto& [id, held] : held_) tokens.push_back(held.claim.token);
  }
  absl::StatusOr<absl::Time> renewed =
      queue_.RenewClaims(tokens, options_.lease);
  if (!renewed.ok()) {
    Log(LogLevel::kError,
        absl::StrCat("renewing claims: ", renewed.status().ToString()));
    return false;
  }
  absl::MutexLock lock(&mu_);
  renewed_at_ = now;
  for (auto& [id, held] : held_) {
    if (held.generation <= covered) {
      held.until = std::max(held.until, now + options_.lease);
    }
  }
  return true;
}

size_t Claimer::Step(absl::Time now) {
  {
    absl::MutexLock lock(&mu_);
    woken_ = false;
    if (wake_at_ <= now) wake_at_ = absl::InfiniteFuture();
    last_step_ = now;
    ExpireLocked(now);
  }
  // Lost claims go back before any renewal, which would extend them too.
  bool ok = ReleaseLost() && RenewIfDue(now);
  size_t claimed = 0;
  while (ok) {
    const size_t held = scheduler_.size();
    if (held >= options_.max_held) break;
    const size_t want = std::min(options_.batch, options_.max_held - held);
    absl::StatusOr<std::vector<Claim>> claims =
        queue_.ClaimDue(now, options_.lease, want);
    if (!claims.ok()) {
      Log(LogLevel::kError,
          absl::StrCat("claiming deliveries: ", claims.status().ToString()));
      ok = false;
      break;
    }
    Add(*claims, now);
    std::vector<QueuedDelivery> entries;
    entries.reserve(claims->size());
    for (const Claim& claim : *claims) entries.push_back(claim.entry);
    scheduler_.Schedule(entries);
    claimed += claims->size();
    {
      // Oldest due first: the last one claimed is the newest.
      absl::MutexLock lock(&mu_);
      backlogged_ = claims->size() == want;
      if (backlogged_) lag_from_ = claims->back().entry.due;
    }
    if (claims->size() < want) break;
  }
  absl::MutexLock lock(&mu_);
  store_failed_ = !ok;
  return claimed;
}

absl::Duration Claimer::Lag(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  if (!backlogged_ || lag_from_ >= now) return absl::ZeroDuration();
  return now - lag_from_;
}

void Claimer::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
  cv_.Signal();
}

void Claimer::WakeAt(absl::Time due) {
  absl::MutexLock lock(&mu_);
  if (due < wake_at_) {
    wake_at_ = due;
    cv_.Signal();
  }
}

bool Claimer::Wait(const Clock& clock) {
  absl::MutexLock lock(&mu_);
  while (!closed_ && !woken_) {
    absl::Time next = wake_at_;
    if (store_failed_) {
      next = std::min(next, last_step_ + kRetryAfterStoreFailure);
    } else {
      next = std::min(next, last_step_ + options_.poll);
      if (!held_.empty()) {
        next = std::min(next, renewed_at_ + options_.lease / 3);
      }
    }
    const absl::Time now = clock.Now();
    if (next <= now) break;
    // Bounded, so that a jump of the wall clock is noticed.
    cv_.WaitWithTimeout(&mu_, std::min(next - now, options_.poll));
  }
  return !closed_;
}

void Claimer::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  cv_.SignalAll();
}

absl::Status Claimer::ReleaseAll() {
  std::vector<Claim> lost;
  {
    absl::MutexLock lock(&mu_);
    lost.swap(lost_);
    for (auto& [id, held] : held_) lost.push_back(held.claim);
    held_.clear();
    // An orphaned claim's attempt was recorded by now, or never will be.
    for (auto& [id, token] : orphaned_) {
      Claim& claim = lost.emplace_back();
      claim.entry.delivery_id = id;
      claim.token = token;
    }
    orphaned_.clear();
  }
  if (lost.empty()) return absl::OkStatus();
  return queue_.ReleaseClaims(lost);
}

}  // namespace webhookd
