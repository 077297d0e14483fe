// Eventually: the one way tests wait for a state nothing tells them about.
// Where the code under test offers an event (a condition variable, a
// message, a stream update), wait on that instead.

#ifndef WEBHOOKD_TESTS_SUPPORT_EVENTUALLY_H_
#define WEBHOOKD_TESTS_SUPPORT_EVENTUALLY_H_

#include <functional>

#include "absl/time/time.h"

namespace webhookd::testing {

// How long Eventually waits unless told otherwise: far longer than anything
// takes on a loaded machine, so that only a broken test runs into it.
inline constexpr absl::Duration kEventuallyTimeout = absl::Seconds(30);

// Returns true as soon as `condition` holds, checking it at once and then
// after short pauses (1 ms, doubling up to 20 ms); false if it still does
// not hold after `timeout`. `condition` runs on the calling thread.
bool Eventually(const std::function<bool()>& condition,
                absl::Duration timeout = kEventuallyTimeout);

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_EVENTUALLY_H_
