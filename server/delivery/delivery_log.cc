#include "server/delivery/delivery_log.h"

#include <cstdint>

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
                              const EndpointCounts& counts) {
  EndpointStats stats;
  stats.set_endpoint_id(endpoint_id);
  stats.set_total_deliveries(counts.attempts);
  stats.set_successful_deliveries(counts.successes);
  stats.set_failed_deliveries(counts.attempts - counts.successes);
  const auto percent = [](int64_t part, int64_t whole) {
    return whole > 0
               ? 100.0 * static_cast<double>(part) / static_cast<double>(whole)
               : 0.0;
  };
  stats.set_success_rate(percent(counts.successes, counts.attempts));
  if (counts.answered > 0) {
    stats.set_avg_response_time_ms(
        static_cast<double>(counts.response_time_ms_sum) /
        static_cast<double>(counts.answered));
  }
  stats.set_attempts_without_response(counts.attempts - counts.answered);
  stats.set_deliveries_succeeded(counts.deliveries_succeeded);
  stats.set_deliveries_failed(counts.deliveries_failed);
  stats.set_deliveries_in_progress(counts.deliveries_in_progress);
  stats.set_delivery_success_rate(
      percent(counts.deliveries_succeeded,
              counts.deliveries_succeeded + counts.deliveries_failed));
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
  WEBHOOKD_ASSIGN_OR_RETURN(EndpointCounts counts,
                            store_.GetEndpointCounts(endpoint_id));
  if (counts.attempts == 0 && counts.deliveries_in_progress == 0 &&
      counts.deliveries_failed == 0 && endpoint == nullptr) {
    return EndpointNotFound(endpoint_id);
  }
  return StatsFromCounts(endpoint_id, counts);
}

}  // namespace webhookd
