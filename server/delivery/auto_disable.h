// Auto-disable: webhookd disables an endpoint whose deliveries all fail for
// long enough, or that answers 410 Gone.

#ifndef WEBHOOKD_SERVER_DELIVERY_AUTO_DISABLE_H_
#define WEBHOOKD_SERVER_DELIVERY_AUTO_DISABLE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/delivery/endpoint_manager.h"
#include "storage/store.h"

namespace webhookd {

struct AutoDisableOptions {
  // How long every delivery of an endpoint must have failed
  // (--auto_disable_after); zero turns that rule off.
  absl::Duration after = absl::Hours(120);
  // How many deliveries in a row must have failed at least
  // (--auto_disable_min_failures).
  int64_t min_failures = 10;
  // An attempt answered 410 Gone disables its endpoint at once
  // (--disable_on_410).
  bool disable_on_410 = true;
};

// Why an endpoint with `streak` is to be disabled at `now` under
// `options`, for people; nullopt if it is not.
std::optional<std::string> FailingDetail(const FailureStreak& streak,
                                         absl::Time now,
                                         const AutoDisableOptions& options);

// AutoDisabler is safe for concurrent use; Check blocks on storage.
class AutoDisabler {
 public:
  // Every reference must outlive the disabler.
  AutoDisabler(Store& store, EndpointManager& endpoints,
               AutoDisableOptions options);
  AutoDisabler(const AutoDisabler&) = delete;
  AutoDisabler& operator=(const AutoDisabler&) = delete;

  // After `changes` were stored (those with applied[i] set): disables the
  // endpoints that answered 410 Gone, and those whose failure streak,
  // read from the store, is long enough once a delivery ended FAILED.
  // Errors are logged: the next failure checks again.
  void Check(absl::Span<const DeliveryChange> changes,
             const std::vector<bool>& applied, absl::Time now);

 private:
  void Disable(const std::string& endpoint_id,
               webhook::v1::DisabledReason reason, const std::string& detail);

  Store& store_;
  EndpointManager& endpoints_;
  const AutoDisableOptions options_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_AUTO_DISABLE_H_
