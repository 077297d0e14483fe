#include "server/delivery/auto_disable.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "server/common/logging.h"
#include "server/common/time_util.h"
#include "server/delivery/payload.h"

namespace webhookd {
namespace {

constexpr int kGone = 410;

std::string TimeText(absl::Time time) {
  return FormatTimestampMillis(absl::ToUnixMillis(time));
}

}  // namespace

std::optional<std::string> FailingDetail(const FailureStreak& streak,
                                         absl::Time now,
                                         const AutoDisableOptions& options) {
  if (options.after <= absl::ZeroDuration() || streak.failures == 0 ||
      streak.failures < options.min_failures ||
      now - streak.first_failure < options.after) {
    return std::nullopt;
  }
  return absl::StrCat(streak.failures, " deliveries in a row failed since ",
                      TimeText(streak.first_failure), " (",
                      absl::FormatDuration(absl::Trunc(
                          now - streak.first_failure, absl::Minutes(1))),
                      " ago; limits: ", options.min_failures, " deliveries, ",
                      absl::FormatDuration(options.after), ")");
}

AutoDisabler::AutoDisabler(Store& store, EndpointManager& endpoints,
                           AutoDisableOptions options)
    : store_(store), endpoints_(endpoints), options_(options) {}

void AutoDisabler::Check(absl::Span<const DeliveryChange> changes,
                         const std::vector<bool>& applied, absl::Time now) {
  absl::flat_hash_set<std::string> gone;
  absl::flat_hash_set<std::string> failed;
  for (size_t i = 0; i < changes.size(); ++i) {
    if (i < applied.size() && !applied[i]) continue;
    const Delivery& delivery = changes[i].delivery;
    if (delivery.test()) continue;
    const int attempts = delivery.attempt_history_size();
    if (options_.disable_on_410 && changes[i].counted_attempt.has_value() &&
        attempts > 0 &&
        delivery.attempt_history(attempts - 1).response_code() == kGone) {
      if (gone.insert(delivery.endpoint_id()).second) {
        Disable(delivery.endpoint_id(), webhook::v1::DISABLED_REASON_GONE,
                absl::StrCat("answered 410 Gone to delivery ", delivery.id(),
                             " at ", TimeText(changes[i].end_time)));
      }
      continue;
    }
    if (changes[i].ending == Ending::kFailed) {
      failed.insert(delivery.endpoint_id());
    }
  }
  if (options_.after <= absl::ZeroDuration()) return;
  for (const std::string& endpoint_id : failed) {
    if (gone.contains(endpoint_id)) continue;
    absl::StatusOr<FailureStreak> streak = store_.GetFailureStreak(endpoint_id);
    if (!streak.ok()) {
      Log(LogLevel::kError,
          absl::StrCat("reading the failure streak of endpoint ", endpoint_id,
                       ": ", streak.status().ToString()));
      continue;
    }
    std::optional<std::string> detail = FailingDetail(*streak, now, options_);
    if (detail.has_value()) {
      Disable(endpoint_id, webhook::v1::DISABLED_REASON_FAILING, *detail);
    }
  }
}

void AutoDisabler::Disable(const std::string& endpoint_id,
                           webhook::v1::DisabledReason reason,
                           const std::string& detail) {
  absl::StatusOr<bool> disabled =
      endpoints_.AutoDisable(endpoint_id, reason, detail);
  if (!disabled.ok()) {
    Log(LogLevel::kError,
        absl::StrCat("disabling endpoint ", endpoint_id, " (", detail,
                     "): ", disabled.status().ToString()));
  }
}

}  // namespace webhookd
