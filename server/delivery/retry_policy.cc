#include "server/delivery/retry_policy.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/common/time_util.h"

namespace webhookd {

absl::StatusOr<RetryPolicy> RetryPolicy::Parse(const std::string& schedule) {
  std::vector<absl::Duration> delays;
  for (absl::string_view part :
       absl::StrSplit(schedule, ',', absl::SkipWhitespace())) {
    part = absl::StripAsciiWhitespace(part);
    absl::Duration delay;
    if (!absl::ParseDuration(part, &delay) || delay < absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("retry schedule: \"", part,
                       "\" is not a duration like 5s, 150ms or 1m"));
    }
    delays.push_back(delay);
  }
  return RetryPolicy(std::move(delays));
}

absl::Duration RetryPolicy::DelayAfter(int attempt) const {
  if (delays_.empty()) return absl::ZeroDuration();
  size_t index = attempt < 1 ? 0 : static_cast<size_t>(attempt - 1);
  if (index >= delays_.size()) index = delays_.size() - 1;
  return delays_[index];
}

absl::Duration RetryDelay(absl::Duration scheduled, const HttpResult& result) {
  if (!result.retry_after.has_value() ||
      (result.status_code != 429 && result.status_code != 503)) {
    return scheduled;
  }
  return std::max(scheduled, std::min(*result.retry_after, kMaxRetryAfter));
}

std::optional<absl::Time> NextAttemptDue(const Delivery& delivery) {
  if (delivery.status() != webhook::v1::DELIVERY_STATUS_PENDING &&
      delivery.status() != webhook::v1::DELIVERY_STATUS_RETRYING) {
    return std::nullopt;
  }
  return FromProtoTime(delivery.has_next_attempt_time()
                           ? delivery.next_attempt_time()
                           : delivery.create_time());
}

Delivery EndedDelivery(Delivery delivery, const std::string& why) {
  delivery.clear_payload();
  delivery.set_status(webhook::v1::DELIVERY_STATUS_FAILED);
  delivery.set_last_error(why);
  delivery.clear_next_attempt_time();
  return delivery;
}

DeliveryChange EndedChange(Delivery delivery, const std::string& why) {
  DeliveryChange change;
  if (!delivery.test()) change.ending = Ending::kCancelled;
  change.delivery = EndedDelivery(std::move(delivery), why);
  return change;
}

absl::StatusOr<bool> PayloadLost(Store& store, const Delivery& delivery) {
  if (!delivery.payload().empty()) return false;
  absl::StatusOr<EventRecord> event = store.GetEvent(delivery.event_id());
  if (!event.ok()) return event.status();
  return event->payload_lost();
}

DeliveryChange ApplyAttempt(const Delivery& delivery,
                            const AttemptOutcome& outcome,
                            const RetryPolicy& policy,
                            size_t max_response_body_bytes) {
  DeliveryChange change;
  Delivery& next = change.delivery;
  next = delivery;
  next.clear_payload();

  const HttpResult& result = outcome.result;
  const int attempt_number = delivery.attempts() + 1;
  const bool success = Delivered(result);
  std::string error = result.error;
  if (error.empty() && !success) {
    error = absl::StrCat("HTTP ", result.status_code,
                         result.status_code >= 300 && result.status_code < 400
                             ? " (redirects are not followed)"
                             : "");
    if (result.retry_after.has_value()) {
      absl::StrAppend(&error, " (Retry-After ",
                      absl::FormatDuration(*result.retry_after), ")");
    }
  }

  DeliveryAttempt& attempt = *next.add_attempt_history();
  attempt.set_attempt(attempt_number);
  *attempt.mutable_start_time() = ToProtoTime(outcome.start_time);
  attempt.set_response_code(result.status_code);
  attempt.set_response_time_ms(absl::ToInt64Milliseconds(result.elapsed));
  attempt.set_error(error);
  attempt.set_response_body(result.body.substr(
      0, std::min(result.body.size(), max_response_body_bytes)));
  attempt.set_manual(outcome.manual);
  attempt.set_traceparent(outcome.traceparent);
  if (!delivery.test()) {
    change.counted_attempt =
        CountedAttempt{.success = success,
                       .answered = result.status_code != 0,
                       .response_time_ms = attempt.response_time_ms()};
  }

  next.set_attempts(attempt_number);
  next.set_response_code(result.status_code);
  next.set_response_time_ms(attempt.response_time_ms());
  next.clear_next_attempt_time();
  const absl::Time end =
      std::max(outcome.start_time + result.elapsed, outcome.finish_time);
  change.end_time = end;
  if (success) {
    next.set_status(webhook::v1::DELIVERY_STATUS_SUCCESS);
    next.clear_last_error();
    change.next_due = NextAttemptDue(next);
    if (!delivery.test()) change.ending = Ending::kSucceeded;
    return change;
  }
  next.set_last_error(outcome.endpoint_deleted
                          ? absl::StrCat(error, "; endpoint was deleted")
                          : error);
  if (!outcome.endpoint_deleted && attempt_number < next.max_attempts()) {
    next.set_status(webhook::v1::DELIVERY_STATUS_RETRYING);
    *next.mutable_next_attempt_time() = ToProtoTime(
        end + RetryDelay(policy.DelayAfter(attempt_number), result));
  } else {
    next.set_status(webhook::v1::DELIVERY_STATUS_FAILED);
    // A delivery to a deleted endpoint says nothing of the receiver.
    if (!delivery.test()) {
      change.ending =
          outcome.endpoint_deleted ? Ending::kCancelled : Ending::kFailed;
    }
  }
  change.next_due = NextAttemptDue(next);
  return change;
}

}  // namespace webhookd
