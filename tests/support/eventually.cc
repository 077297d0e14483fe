#include "tests/support/eventually.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace webhookd::testing {

bool Eventually(const std::function<bool()>& condition,
                absl::Duration timeout) {
  constexpr absl::Duration kLongestPause = absl::Milliseconds(20);
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration pause = absl::Milliseconds(1);
  while (!condition()) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    // The only sleep in the test helpers: a poll of what cannot be waited
    // on, never a guess at how long something takes.
    absl::SleepFor(std::min(pause, left));
    pause = std::min(pause * 2, kLongestPause);
  }
  return true;
}

}  // namespace webhookd::testing
