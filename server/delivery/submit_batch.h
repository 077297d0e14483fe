// SubmitEvents: the answers of a batch's events, gathered into the one
// response of the call.

#ifndef WEBHOOKD_SERVER_DELIVERY_SUBMIT_BATCH_H_
#define WEBHOOKD_SERVER_DELIVERY_SUBMIT_BATCH_H_

#include <cstddef>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/store.h"
#include "webhook/v1/webhook_service.pb.h"

namespace webhookd {

// InvalidArgument naming `events` unless a batch of `count` events has 1 to
// kMaxEventsPerBatch of them.
absl::Status ValidateBatchSize(int count);

// Whether `status` refuses one event of a batch (its result says so and the
// other events go on): InvalidArgument, PermissionDenied, AlreadyExists.
// Any other error (storage, no room, shutting down) fails the whole call.
bool IsEventError(const absl::Status& status);

// BatchAnswers is safe for concurrent use. It answers `done` once: with the
// response when each of the batch's events has had its Answer(), or with
// the first error that fails the whole call (Answer() of a status that is
// not IsEventError, or Fail()); later answers are then dropped.
class BatchAnswers {
 public:
  using Callback =
      std::function<void(absl::StatusOr<webhook::v1::SubmitEventsResponse>)>;

  BatchAnswers(size_t size, Callback done);
  BatchAnswers(const BatchAnswers&) = delete;
  BatchAnswers& operator=(const BatchAnswers&) = delete;

  // The answer for event `index` (each answered once): its response, or
  // why it was refused, whose message then gets the prefix "events[index].".
  void Answer(size_t index, absl::StatusOr<SubmitEventResponse> answer);
  // Fails the whole call with `status`, unless it was answered already.
  void Fail(absl::Status status);

 private:
  absl::Mutex mu_;
  // Empty once it has run.
  Callback done_ ABSL_GUARDED_BY(mu_);
  webhook::v1::SubmitEventsResponse response_ ABSL_GUARDED_BY(mu_);
  size_t unanswered_ ABSL_GUARDED_BY(mu_);
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_SUBMIT_BATCH_H_
