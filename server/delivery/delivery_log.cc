#include "server/delivery/delivery_log.h"

#include "absl/strings/str_cat.h"
#include "server/common/paging.h"
#include "server/common/status_macros.h"

namespace webhookd {
namespace {

absl::Status EndpointNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("endpoint \"", id, "\" not found"));
}

}  // namespace

absl::StatusOr<Delivery> DeliveryLog::Get(const Caller& caller,
                                          const std::string& id) const {
  absl::StatusOr<Delivery> delivery = store_.GetDelivery(id);
  if (absl::IsNotFound(delivery.status()) ||
      (delivery.ok() && !caller.CanAccess(delivery->user_id()))) {
    return absl::NotFoundError(absl::StrCat("delivery \"", id, "\" not found"));
  }
  return delivery;
}

absl::StatusOr<DeliveryPage> DeliveryLog::List(
    const Caller& caller, DeliveryFilter filter, int32_t page_size,
    const std::string& page_token) const {
  if (caller.user_id.has_value()) filter.user_id = *caller.user_id;
  WEBHOOKD_ASSIGN_OR_RETURN(int size, NormalizePageSize(page_size));
  return store_.ListDeliveries(filter, size, page_token);
}

absl::StatusOr<EndpointStats> DeliveryLog::Stats(
    const Caller& caller, const std::string& endpoint_id) const {
  EndpointManager::EndpointPtr endpoint = endpoints_.Find(endpoint_id);
  if (endpoint != nullptr && !caller.CanAccess(endpoint->user_id())) {
    return EndpointNotFound(endpoint_id);
  }
  if (endpoint == nullptr && caller.user_id.has_value()) {
    // A deleted endpoint's owner is known only from its deliveries, which
    // are all its owner's.
    DeliveryFilter filter;
    filter.endpoint_id = endpoint_id;
    filter.user_id = *caller.user_id;
    WEBHOOKD_ASSIGN_OR_RETURN(DeliveryPage page,
                              store_.ListDeliveries(filter, 1, ""));
    if (page.deliveries.empty()) return EndpointNotFound(endpoint_id);
  }
  WEBHOOKD_ASSIGN_OR_RETURN(EndpointStats stats,
                            store_.GetEndpointStats(endpoint_id));
  if (stats.total_deliveries() == 0 && endpoint == nullptr) {
    return EndpointNotFound(endpoint_id);
  }
  stats.set_endpoint_id(endpoint_id);
  return stats;
}

}  // namespace webhookd
