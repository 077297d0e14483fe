// Reads of the delivery log and of endpoint statistics.

#ifndef WEBHOOKD_SERVER_DELIVERY_DELIVERY_LOG_H_
#define WEBHOOKD_SERVER_DELIVERY_DELIVERY_LOG_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/common/caller.h"
#include "server/delivery/endpoint_manager.h"
#include "storage/store.h"

namespace webhookd {

using webhook::v1::EndpointStats;

// The stats of an endpoint from the totals of its counted attempts: failed
// attempts, the success rate in percent and the mean response time in
// milliseconds; rate and mean are 0 when there was no attempt.
EndpointStats StatsFromCounts(const std::string& endpoint_id,
                              const EndpointCounts& counts);

// DeliveryLog is safe for concurrent use. A caller sees only its own
// deliveries and stats; another user's are NotFound.
class DeliveryLog {
 public:
  // `store` and `endpoints` must outlive the log.
  DeliveryLog(Store& store, const EndpointManager& endpoints)
      : store_(store), endpoints_(endpoints) {}

  // Returns the delivery with payload and attempt history, or NotFound.
  absl::StatusOr<Delivery> Get(const Caller& caller,
                               const std::string& id) const;
  // Newest first, without payload and history; only the caller's.
  absl::StatusOr<DeliveryPage> List(const Caller& caller, DeliveryFilter filter,
                                    int32_t page_size,
                                    const std::string& page_token) const;
  // NotFound if the endpoint never existed (a deleted endpoint keeps its
  // stats, visible to a user who had deliveries to it).
  absl::StatusOr<EndpointStats> Stats(const Caller& caller,
                                      const std::string& endpoint_id) const;

 private:
  Store& store_;
  const EndpointManager& endpoints_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_DELIVERY_LOG_H_
