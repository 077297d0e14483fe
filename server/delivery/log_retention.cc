#include "server/delivery/log_retention.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace webhookd {
namespace {

// Bounds one pass, however much is due: the next pass goes on.
constexpr int kMaxBatchesPerPass = 10000;

}  // namespace

LogRetention::LogRetention(Store& store, const Clock& clock,
                           LogRetentionOptions options)
    : store_(store), clock_(clock), options_(std::move(options)) {}

LogRetention::~LogRetention() { Stop(); }

void LogRetention::Start() {
  if (options_.retention <= absl::ZeroDuration()) return;
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void LogRetention::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

bool LogRetention::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

absl::StatusOr<PruneResult> LogRetention::RunOnce() {
  const absl::Time now = clock_.Now();
  const absl::Time cutoff = now - options_.retention;
  const absl::Time idempotency_cutoff =
      now - std::max(options_.retention, options_.min_idempotency_retention);
  PruneResult total;
  for (int i = 0; i < kMaxBatchesPerPass && !stopping(); ++i) {
    absl::StatusOr<PruneResult> result = store_.PruneBefore(
        cutoff, idempotency_cutoff, std::max<size_t>(1, options_.batch));
    if (!result.ok()) return result.status();
    total.deliveries += result->deliveries;
    total.events += result->events;
    total.idempotency_records += result->idempotency_records;
    total.more = result->more;
    if (!result->more) break;
  }
  return total;
}

void LogRetention::Loop() {
  while (true) {
    absl::StatusOr<PruneResult> result = RunOnce();
    if (!result.ok()) {
      Log(LogLevel::kError,
          absl::StrCat("log retention: ", result.status().ToString()));
    } else if (result->deliveries + result->events +
                   result->idempotency_records >
               0) {
      Log(LogLevel::kInfo,
          absl::StrCat("log retention: removed ", result->deliveries,
                       " deliveries, ", result->events, " events and ",
                       result->idempotency_records,
                       " idempotency records older than ",
                       absl::FormatDuration(options_.retention)));
    }
    absl::MutexLock lock(&mu_);
    const absl::Time next = absl::Now() + options_.interval;
    while (!stopping_ && absl::Now() < next) {
      cv_.WaitWithDeadline(&mu_, next);
    }
    if (stopping_) return;
  }
}

}  // namespace webhookd
