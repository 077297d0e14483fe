// Log retention: removes delivery records older than a cutoff in the
// background, so that the disk does not fill.

#ifndef WEBHOOKD_SERVER_DELIVERY_LOG_RETENTION_H_
#define WEBHOOKD_SERVER_DELIVERY_LOG_RETENTION_H_

#include <cstddef>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "storage/store.h"

namespace webhookd {

struct LogRetentionOptions {
  // Finished deliveries created longer ago than this are removed. Zero or
  // less keeps them forever (Start() then does nothing).
  absl::Duration retention = absl::Hours(24 * 30);
  // Idempotency records are kept for max(retention, this), so that a
  // repeated submit is recognised for at least a day.
  absl::Duration min_idempotency_retention = absl::Hours(24);
  // Time between passes; the first runs at Start().
  absl::Duration interval = absl::Minutes(1);
  // Deliveries removed per Store::PruneBefore call (one write each).
  size_t batch = 1000;
};

// LogRetention is safe for concurrent use. Endpoint stats are cumulative:
// removing old deliveries does not change them.
class LogRetention {
 public:
  // `store` and `clock` must outlive the object.
  LogRetention(Store& store, const Clock& clock, LogRetentionOptions options);
  LogRetention(const LogRetention&) = delete;
  LogRetention& operator=(const LogRetention&) = delete;
  // Calls Stop().
  ~LogRetention();

  // Starts the background thread: a pass now, then one every interval.
  void Start();
  // Stops and joins the thread, ending a pass between two batches.
  // Idempotent.
  void Stop();

  // One pass: prunes batch after batch until nothing older than the cutoff
  // is left (or Stop() is called). Returns what it removed in total.
  absl::StatusOr<PruneResult> RunOnce();

 private:
  void Loop();
  bool stopping() const;

  Store& store_;
  const Clock& clock_;
  const LogRetentionOptions options_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;  // Stop() was called.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_LOG_RETENTION_H_
