#include "server/delivery_log.h"

#include "absl/strings/str_cat.h"
#include "server/paging.h"
#include "server/status_util.h"

namespace webhookd {

absl::StatusOr<Delivery> DeliveryLog::Get(const std::string& id) const {
  absl::StatusOr<Delivery> delivery = store_.GetDelivery(id);
  if (absl::IsNotFound(delivery.status())) {
    return absl::NotFoundError(absl::StrCat("delivery \"", id, "\" not found"));
  }
  return delivery;
}

absl::StatusOr<DeliveryPage> DeliveryLog::List(
    const DeliveryFilter& filter, int32_t page_size,
    const std::string& page_token) const {
  WEBHOOKD_ASSIGN_OR_RETURN(int size, NormalizePageSize(page_size));
  return store_.ListDeliveries(filter, size, page_token);
}

absl::StatusOr<EndpointStats> DeliveryLog::Stats(
    const std::string& endpoint_id) const {
  WEBHOOKD_ASSIGN_OR_RETURN(EndpointStats stats,
                            store_.GetEndpointStats(endpoint_id));
  if (stats.total_deliveries() == 0 &&
      endpoints_.Find(endpoint_id) == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("endpoint \"", endpoint_id, "\" not found"));
  }
  stats.set_endpoint_id(endpoint_id);
  return stats;
}

}  // namespace webhookd
