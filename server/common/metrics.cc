#include "server/common/metrics.h"

namespace webhookd {
namespace {

class DiscardingMetrics final : public Metrics {
 public:
  void EventsSubmitted(size_t, size_t) override {}
  void AttemptFinished(ResponseClass, absl::Duration) override {}
  void DeliveryFinished(DeliveryOutcome, absl::Duration) override {}
  void RetryScheduled() override {}
  void EndpointAutoDisabled() override {}
  void SubmitAdmission(AdmissionOutcome) override {}
  void StorageWriteFinished(StorageWrite, absl::Duration) override {}
  void RpcFinished(absl::string_view, absl::string_view, int) override {}
};

}  // namespace

Metrics& NoMetrics() {
  static DiscardingMetrics* const metrics = new DiscardingMetrics();
  return *metrics;
}

ResponseClass ClassifyResponse(int status_code, bool timed_out) {
  if (status_code == 0) {
    return timed_out ? ResponseClass::kTimeout
                     : ResponseClass::kConnectionError;
  }
  switch (status_code / 100) {
    case 2:
      return ResponseClass::k2xx;
    case 3:
      return ResponseClass::k3xx;
    case 4:
      return ResponseClass::k4xx;
    case 5:
      return ResponseClass::k5xx;
    default:
      return ResponseClass::kOtherStatus;
  }
}

}  // namespace webhookd
