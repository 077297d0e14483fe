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

EndpointStats StatsFromCounts(const std::string& endpoint_id,
                              const AttemptCounts& counts) {
  EndpointStats stats;
  stats.set_endpoint_id(endpoint_id);
  stats.set_total_deliveries(counts.attempts);
  stats.set_successful_deliveries(counts.successes);
  stats.set_failed_deliveries(counts.attempts - counts.successes);
  if (counts.attempts > 0) {
    const double attempts = static_cast<double>(counts.attempts);
    stats.set_success_rate(100.0 * static_cast<double>(counts.successes) /
                           attempts);
    stats.set_avg_response_time_ms(
        static_cast<double>(counts.response_time_ms_sum) / attempts);
  }
  return stats;
}

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
  WEBHOOKD_ASSIGN_OR_RETURN(AttemptCounts counts,
                            store_.GetAttemptCounts(endpoint_id));
  if (counts.attempts == 0 && endpoint == nullptr) {
    return EndpointNotFound(endpoint_id);
  }
  return StatsFromCounts(endpoint_id, counts);
}

}  // namespace webhookd
