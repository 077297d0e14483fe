// The time source of the server, injected so that tests can control it.

#ifndef WEBHOOKD_SERVER_COMMON_CLOCK_H_
#define WEBHOOKD_SERVER_COMMON_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace webhookd {

// Clock is safe for concurrent use.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// The wall clock.
class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_COMMON_CLOCK_H_
