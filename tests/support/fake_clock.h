// A clock that moves only when the test moves it.

#ifndef WEBHOOKD_TESTS_SUPPORT_FAKE_CLOCK_H_
#define WEBHOOKD_TESTS_SUPPORT_FAKE_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/clock.h"

namespace webhookd::testing {

// FakeClock is safe for concurrent use.
class FakeClock final : public Clock {
 public:
  // Starts at a fixed, round moment, so that failures read the same on
  // every run.
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'800'000'000))
      : now_(start) {}

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration by) {
    absl::MutexLock lock(&mu_);
    now_ += by;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_FAKE_CLOCK_H_
