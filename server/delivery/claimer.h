// The claimer: on a node of several sharing a store, brings due deliveries
// from the shared queue into this node's scheduler, keeps their leases and
// gives back the claims the node can no longer honour.

#ifndef WEBHOOKD_SERVER_DELIVERY_CLAIMER_H_
#define WEBHOOKD_SERVER_DELIVERY_CLAIMER_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/common/clock.h"
#include "server/delivery/scheduler.h"
#include "storage/store.h"

namespace webhookd {

struct ClaimerOptions {
  // How long a claim holds without renewal. Longer than the attempt timeout:
  // an attempt starts only while the leases outlast it.
  absl::Duration lease = absl::Seconds(45);
  // The longest attempt (DeliveryEngineOptions::attempt_timeout).
  absl::Duration attempt_timeout = absl::Seconds(30);
  // Deliveries claimed by one query at most.
  size_t batch = 512;
  // Deliveries this node holds at most (queued here or in flight): the
  // scheduler's max_in_flight, so that claimed work is not left waiting.
  size_t max_held = 4096;
  // How often the queue is looked at when nothing wakes the claimer.
  absl::Duration poll = absl::Seconds(1);
};

// Claimer is safe for concurrent use. Step() is one thread's step (the
// engine's claim thread, or a test).
//
// Leases are kept by this node's clock: a renewal sent at t makes every
// claim of the node hold until at least t + lease, whatever the store's
// clock says. If no renewal lands in time, every claim is taken as lost:
// the deliveries not in flight leave the scheduler and their claims are
// given back once the store answers again (ReleaseClaims skips those
// another node took meanwhile); an attempt in flight is recorded with its
// token, which the store refuses if another node claimed the delivery.
class Claimer {
 public:
  // Every reference must outlive the claimer.
  Claimer(SharedQueue& queue, Scheduler& scheduler, ClaimerOptions options);
  Claimer(const Claimer&) = delete;
  Claimer& operator=(const Claimer&) = delete;

  // Adds claims made outside Step() (new deliveries claimed as they are
  // written) by a request sent at `requested_at`. The caller
  // schedules them.
  void Add(absl::Span<const Claim> claims, absl::Time requested_at);
  // Writes events (Store::InsertEvents) by a request sent at `now`, with
  // their first deliveries claimed by this node: as many as it has room for
  // (all of them if `claim_all`); the others are queued for any node.
  // Returns how many were claimed: the caller schedules those.
  absl::StatusOr<size_t> Insert(absl::Span<const NewEvent> events,
                                absl::Time now, bool claim_all = false);
  // Ends a claim here (its outcome is being recorded): returns its token,
  // or nullopt if this node does not hold it.
  std::optional<int64_t> Take(const std::string& delivery_id);
  // Ends this node's claim of `delivery_id` and gives it back to the store
  // (the delivery stays queued for any node). OK if it held none.
  absl::Status GiveBack(const std::string& delivery_id);
  // Whether an attempt of `delivery_id` started at `now` ends while its
  // claim holds.
  bool CoversAttempt(const std::string& delivery_id, absl::Time now) const;
  // Claims held here.
  size_t size() const;
  absl::Duration lease() const { return options_.lease; }

  // One round at `now`: gives back lost claims, renews the leases when a
  // third of the lease has passed since the last renewal, and claims due
  // deliveries while this node has room, queueing them in the scheduler.
  // Returns how many deliveries were claimed. A store error is logged; the
  // round is made again within a second.
  size_t Step(absl::Time now);

  // How long due deliveries have been waiting in the shared queue at `now`,
  // as far as this node can tell: zero when its last claim query found
  // fewer than it asked for (the queue was drained), otherwise the time
  // since the due time of the newest delivery it claimed then (those still
  // waiting were due no later).
  absl::Duration Lag(absl::Time now) const;

  // Asks for a round at once (work was queued) or at `due` (a retry).
  void Wake();
  void WakeAt(absl::Time due);
  // Blocks until a round is asked for, the poll period has passed, the
  // leases need renewing, or Close(). Returns false once closed.
  bool Wait(const Clock& clock);
  void Close();

  // Gives back every claim held here (at shutdown, after the last attempt
  // was recorded), so that other nodes take the deliveries at once.
  absl::Status ReleaseAll();

 private:
  struct Held {
    Claim claim;
    // Renewals sent after this one was added cover it (it was in the
    // store before they were sent).
    uint64_t generation;
    absl::Time until;  // When it ends at the earliest, by this node's clock.
  };

  // Gives up the claims that ended by `now`: withdraws their deliveries
  // from the scheduler and moves them to lost_; those in flight move to
  // orphaned_, for the recorder.
  void ExpireLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives back lost claims; false if the store failed.
  bool ReleaseLost();
  // Renews the leases if due; false if the store failed.
  bool RenewIfDue(absl::Time now);

  SharedQueue& queue_;
  Scheduler& scheduler_;
  const ClaimerOptions options_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  absl::flat_hash_map<std::string, Held> held_ ABSL_GUARDED_BY(mu_);
  // Set while the last claim query returned as many as asked for: then
  // deliveries due since lag_from_ may still wait in the shared queue.
  bool backlogged_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time lag_from_ ABSL_GUARDED_BY(mu_);
  // Claims whose lease ran out while their attempt was in flight: the
  // recorder still records the attempt with the token.
  absl::flat_hash_map<std::string, int64_t> orphaned_ ABSL_GUARDED_BY(mu_);
  // Claims given up and not yet given back to the store.
  std::vector<Claim> lost_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time renewed_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_step_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool store_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time wake_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_CLAIMER_H_
