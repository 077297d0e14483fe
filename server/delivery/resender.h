// The resender: sends ended deliveries again as new deliveries of the same
// event (ResendDelivery), one at a time or every FAILED delivery of an
// endpoint since a time (RecoverDeliveries).

#ifndef WEBHOOKD_SERVER_DELIVERY_RESENDER_H_
#define WEBHOOKD_SERVER_DELIVERY_RESENDER_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/caller.h"
#include "server/common/clock.h"
#include "server/delivery/change_bus.h"
#include "server/delivery/claimer.h"
#include "server/delivery/endpoint_manager.h"
#include "server/delivery/scheduler.h"
#include "storage/store.h"

namespace webhookd {

// Deliveries resent by one RecoverDeliveries call at most.
inline constexpr size_t kMaxRecoveredPerCall = 1000;

struct RecoverResult {
  std::vector<std::string> delivery_ids;  // The new deliveries.
  bool more = false;  // FAILED deliveries remain: call again.
};

// Resender is safe for concurrent use. Its methods block on storage.
// Another user's deliveries and endpoints are NotFound.
class Resender {
 public:
  // Every reference must outlive the resender. `claimer`: on a node
  // sharing its store with others, the node's claims (a resend is queued
  // for any node); nullptr otherwise. New deliveries get `max_attempts`.
  Resender(Store& store, EndpointManager& endpoints, Scheduler& scheduler,
           Claimer* claimer, ChangeBus& bus, const Clock& clock,
           int max_attempts);
  Resender(const Resender&) = delete;
  Resender& operator=(const Resender&) = delete;

  // Sends an ended delivery again as a new one (resent_from names the
  // original, whose resent_by names the new one). Returns the new delivery
  // with its payload. NotFound for an unknown delivery; FailedPrecondition
  // for one that has not ended, a test delivery, one whose endpoint was
  // deleted or is disabled, or whose payload was lost in a repair.
  absl::StatusOr<Delivery> Resend(const Caller& caller,
                                  const std::string& delivery_id);

  // Resends the FAILED deliveries of an endpoint created at or after
  // `since` that were never resent (test deliveries aside), newest first,
  // at most kMaxRecoveredPerCall. NotFound for an unknown endpoint;
  // FailedPrecondition for a disabled one. Calls of one node are
  // serialised, so that two calls never resend the same delivery.
  absl::StatusOr<RecoverResult> Recover(const Caller& caller,
                                        const std::string& endpoint_id,
                                        absl::Time since);

 private:
  // Why the endpoint of `delivery_id` cannot receive resends, or OK.
  absl::Status CheckEndpoint(const Caller& caller,
                             const std::string& endpoint_id,
                             const std::string& delivery_id) const;
  // Writes the resends with their originals marked, in one synced write,
  // and queues them. `originals` are without payload.
  absl::Status Write(const std::vector<Delivery>& resends,
                     const std::vector<Delivery>& originals);
  // A new delivery resending `original`, created now.
  Delivery ResendOf(const Delivery& original) const;

  Store& store_;
  EndpointManager& endpoints_;
  Scheduler& scheduler_;
  Claimer* const claimer_;
  ChangeBus& bus_;
  const Clock& clock_;
  const int max_attempts_;

  // Serialises Recover calls.
  absl::Mutex recover_mu_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_RESENDER_H_
