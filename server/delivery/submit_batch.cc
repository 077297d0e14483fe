#include "server/delivery/submit_batch.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/limits.h"

namespace webhookd {

absl::Status ValidateBatchSize(int count) {
  if (count == 0) {
    return absl::InvalidArgumentError("events: at least one event is required");
  }
  if (count > kMaxEventsPerBatch) {
    return absl::InvalidArgumentError(
        absl::StrCat("events: ", count, " events; at most ", kMaxEventsPerBatch,
                     " per call"));
  }
  return absl::OkStatus();
}

bool IsEventError(const absl::Status& status) {
  return absl::IsInvalidArgument(status) || absl::IsPermissionDenied(status) ||
         absl::IsAlreadyExists(status);
}

BatchAnswers::BatchAnswers(size_t size, Callback done)
    : done_(std::move(done)), unanswered_(size) {
  for (size_t i = 0; i < size; ++i) response_.add_results();
}

void BatchAnswers::Answer(size_t index,
                          absl::StatusOr<SubmitEventResponse> answer) {
  if (!answer.ok() && !IsEventError(answer.status())) {
    Fail(answer.status());
    return;
  }
  Callback done;
  webhook::v1::SubmitEventsResponse response;
  {
    absl::MutexLock lock(&mu_);
    if (!done_) return;
    webhook::v1::SubmitEventResult& result =
        *response_.mutable_results(static_cast<int>(index));
    if (answer.ok()) {
      *result.mutable_response() = *std::move(answer);
    } else {
      // google.rpc.Code and absl::StatusCode number the codes alike.
      result.set_code(static_cast<int>(answer.status().code()));
      result.set_message(
          absl::StrCat("events[", index, "].", answer.status().message()));
    }
    if (--unanswered_ > 0) return;
    done = std::exchange(done_, nullptr);
    response = std::move(response_);
  }
  done(std::move(response));
}

void BatchAnswers::Fail(absl::Status status) {
  Callback done;
  {
    absl::MutexLock lock(&mu_);
    if (!done_) return;
    done = std::exchange(done_, nullptr);
  }
  done(std::move(status));
}

}  // namespace webhookd
