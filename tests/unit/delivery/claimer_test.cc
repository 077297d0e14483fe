// The claimer's rules, against an in-memory shared queue and a fake clock:
// claiming only what the node has room for, renewing leases, starting no
// attempt its claim may not outlast, and giving up claims whose renewals
// did not land. The real PostgreSQL queue is exercised by
// postgres_store_test and the multi-node tests.

#include "server/delivery/claimer.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/delivery/scheduler.h"
#include "tests/support/fake_clock.h"

namespace webhookd {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Optional;
using ::testing::UnorderedElementsAre;

// The queue of one node's view of a shared store: deliveries with a due
// time and at most one claim each, leases by the fake clock.
class FakeSharedQueue : public SharedQueue {
 public:
  explicit FakeSharedQueue(const testing::FakeClock& clock) : clock_(clock) {}

  void Queue(const std::string& id, absl::Time due) {
    rows_[id] = Row{due, 0, absl::InfinitePast()};
  }
  // Whether calls fail, as with the database down.
  void SetDown(bool down) { down_ = down; }
  // Whether a live claim holds the delivery.
  bool Claimed(const std::string& id) const {
    return rows_.at(id).until > clock_.Now();
  }
  // Another node claims the delivery (its lease having run out).
  void ClaimElsewhere(const std::string& id, absl::Duration lease) {
    Row& row = rows_.at(id);
    ASSERT_LE(row.until, clock_.Now());
    row.token = ++last_token_;
    row.until = clock_.Now() + lease;
  }
  const std::vector<std::string>& released() const { return released_; }
  int renewals() const { return renewals_; }

  absl::StatusOr<std::vector<Claim>> ClaimDue(absl::Time now,
                                              absl::Duration lease,
                                              size_t max) override {
    if (down_) return absl::UnavailableError("down");
    std::vector<Claim> claims;
    for (auto& [id, row] : rows_) {
      if (claims.size() == max) break;
      if (row.due > now || row.until > clock_.Now()) continue;
      row.token = ++last_token_;
      row.until = clock_.Now() + lease;
      Claim& claim = claims.emplace_back();
      claim.entry = QueuedDelivery{id, "ep_1", row.due, false, false};
      claim.token = row.token;
      claim.lease_until = row.until;
    }
    return claims;
  }
  absl::StatusOr<absl::Time> RenewClaims(absl::Span<const int64_t> tokens,
                                         absl::Duration lease) override {
    if (down_) return absl::UnavailableError("down");
    ++renewals_;
    for (auto& [id, row] : rows_) {
      if (row.until > clock_.Now() &&
          std::find(tokens.begin(), tokens.end(), row.token) != tokens.end()) {
        row.until = clock_.Now() + lease;
      }
    }
    return clock_.Now() + lease;
  }
  absl::Status ReleaseClaims(absl::Span<const Claim> claims) override {
    if (down_) return absl::UnavailableError("down");
    for (const Claim& claim : claims) {
      Row& row = rows_.at(claim.entry.delivery_id);
      if (row.token != claim.token) continue;
      row.until = absl::InfinitePast();
      released_.push_back(claim.entry.delivery_id);
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<Claim>> InsertClaimed(absl::Span<const NewEvent>,
                                                   absl::Duration,
                                                   size_t) override {
    return absl::UnimplementedError("not used by the claimer's rules");
  }
  absl::StatusOr<std::vector<std::string>> UpdateClaimed(
      absl::Span<const DeliveryChange>, absl::Span<const int64_t>,
      Durability) override {
    return absl::UnimplementedError("not used by the claimer's rules");
  }
  absl::StatusOr<Claim> ClaimOne(std::string_view, absl::Duration) override {
    return absl::UnimplementedError("not used by the claimer's rules");
  }
  absl::StatusOr<std::vector<QueuedDelivery>> QueuedOf(
      std::string_view) override {
    return absl::UnimplementedError("not used by the claimer's rules");
  }
  absl::Status Watch(ClusterWatcher*) override {
    return absl::UnimplementedError("not used by the claimer's rules");
  }
  void StopWatching() override {}

 private:
  struct Row {
    absl::Time due;
    int64_t token;
    absl::Time until;
  };
  const testing::FakeClock& clock_;
  std::map<std::string, Row> rows_;
  int64_t last_token_ = 0;
  bool down_ = false;
  int renewals_ = 0;
  std::vector<std::string> released_;
};

class ClaimerTest : public ::testing::Test {
 protected:
  static ClaimerOptions Options() {
    ClaimerOptions options;
    options.lease = absl::Seconds(45);
    options.attempt_timeout = absl::Seconds(30);
    options.max_held = 3;
    return options;
  }

  // Takes what is due from the scheduler, as the dispatcher does.
  std::vector<std::string> StartDue() {
    std::vector<std::string> ids;
    for (const QueuedDelivery& entry : scheduler_.TakeDue(
             clock_.Now(), [](const std::string&) { return false; })) {
      ids.push_back(entry.delivery_id);
    }
    return ids;
  }

  testing::FakeClock clock_;
  FakeSharedQueue queue_{clock_};
  Scheduler scheduler_{SchedulerOptions{}};
  Claimer claimer_{queue_, scheduler_, Options()};
};

TEST_F(ClaimerTest, ClaimsWhatIsDueWhileTheNodeHasRoom) {
  for (int i = 1; i <= 5; ++i) queue_.Queue(absl::StrCat("d", i), clock_.Now());
  queue_.Queue("later", clock_.Now() + absl::Minutes(1));

  EXPECT_EQ(claimer_.Step(clock_.Now()), 3u);  // max_held.
  EXPECT_EQ(scheduler_.size(), 3u);
  EXPECT_EQ(claimer_.Step(clock_.Now()), 0u);  // No room.

  // One attempt recorded: room for one more.
  const std::vector<std::string> started = StartDue();
  ASSERT_EQ(started.size(), 3u);
  EXPECT_TRUE(claimer_.Take(started[0]).has_value());
  scheduler_.Settle({&started[0], 1}, {}, 1);
  EXPECT_EQ(claimer_.Step(clock_.Now()), 1u);
  EXPECT_FALSE(queue_.Claimed("later"));
}

TEST_F(ClaimerTest, AnAttemptStartsOnlyWhileItsClaimOutlastsIt) {
  queue_.Queue("d1", clock_.Now());
  ASSERT_EQ(claimer_.Step(clock_.Now()), 1u);
  EXPECT_TRUE(claimer_.CoversAttempt("d1", clock_.Now()));
  EXPECT_FALSE(claimer_.CoversAttempt("not-claimed", clock_.Now()));

  // 16 s + a 30 s attempt would end after the 45 s lease.
  clock_.Advance(absl::Seconds(16));
  EXPECT_FALSE(claimer_.CoversAttempt("d1", clock_.Now()));
  // A third of the lease has passed: the round renews it.
  claimer_.Step(clock_.Now());
  EXPECT_EQ(queue_.renewals(), 1);
  EXPECT_TRUE(claimer_.CoversAttempt("d1", clock_.Now()));
  // Not renewed again before another third has passed.
  clock_.Advance(absl::Seconds(1));
  claimer_.Step(clock_.Now());
  EXPECT_EQ(queue_.renewals(), 1);
}

TEST_F(ClaimerTest, GivesUpClaimsWhoseRenewalsDidNotLand) {
  queue_.Queue("d1", clock_.Now());
  queue_.Queue("d2", clock_.Now());
  ASSERT_EQ(claimer_.Step(clock_.Now()), 2u);
  // d1's attempt is under way; d2 waits (say, for a per-endpoint slot).
  std::vector<QueuedDelivery> first = scheduler_.TakeDue(
      clock_.Now(), [](const std::string&) { return false; });
  ASSERT_EQ(first.size(), 2u);
  scheduler_.Settle({}, {&first[1], 1}, 1);  // d2 back in the queue.
  const std::string in_flight = first[0].delivery_id;
  const std::string waiting = first[1].delivery_id;

  queue_.SetDown(true);
  clock_.Advance(absl::Seconds(20));
  claimer_.Step(clock_.Now());  // The renewal fails.
  EXPECT_FALSE(claimer_.CoversAttempt(waiting, clock_.Now()));

  // The leases ran out: the waiting delivery leaves this node, which gives
  // its claim back as soon as the store answers.
  clock_.Advance(absl::Seconds(30));
  claimer_.Step(clock_.Now());
  EXPECT_EQ(scheduler_.size(), 1u);  // Only the attempt in flight.
  EXPECT_THAT(queue_.released(), IsEmpty());
  // Meanwhile another node took the delivery in flight here.
  queue_.ClaimElsewhere(in_flight, absl::Seconds(45));
  queue_.SetDown(false);
  claimer_.Step(clock_.Now());
  EXPECT_THAT(queue_.released(), ElementsAre(waiting));
  EXPECT_TRUE(queue_.Claimed(waiting));  // By this node again, now.
  // The attempt in flight is still recorded with its old token, which the
  // store refuses since another node claimed the delivery.
  EXPECT_THAT(claimer_.Take(in_flight), Optional(in_flight == "d1" ? 1 : 2));
  EXPECT_EQ(claimer_.size(), 1u);  // `waiting`.
}

TEST_F(ClaimerTest, ReleaseAllGivesEveryClaimBack) {
  queue_.Queue("d1", clock_.Now());
  queue_.Queue("d2", clock_.Now());
  ASSERT_EQ(claimer_.Step(clock_.Now()), 2u);
  ASSERT_TRUE(claimer_.ReleaseAll().ok());
  EXPECT_THAT(queue_.released(), UnorderedElementsAre("d1", "d2"));
  EXPECT_EQ(claimer_.size(), 0u);
}

}  // namespace
}  // namespace webhookd
