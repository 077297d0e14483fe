// The delivery queue: order by due time, held endpoints, the per-endpoint
// in-flight cap with its parked entries, and ids of any form.

#include "server/delivery/delivery_queue.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/ids.h"
#include "server/delivery/scheduler.h"
#include "storage/store.h"

namespace webhookd {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Optional;
using ::testing::UnorderedElementsAre;

const absl::Time kT0 = absl::FromUnixSeconds(1'774'774'800);  // 2026-03-29.

absl::Time At(int seconds) { return kT0 + absl::Seconds(seconds); }

QueuedDelivery Entry(const std::string& id, const std::string& endpoint,
                     int due_second) {
  return QueuedDelivery{id, endpoint, At(due_second), false, false};
}

QueuedDelivery TestEntry(const std::string& id, const std::string& endpoint,
                         int due_second) {
  return QueuedDelivery{id, endpoint, At(due_second), false, true};
}

std::vector<std::string> Ids(const std::vector<QueuedDelivery>& entries) {
  std::vector<std::string> ids;
  for (const QueuedDelivery& entry : entries) ids.push_back(entry.delivery_id);
  return ids;
}

bool NotHeld(const std::string&) { return false; }

// Takes everything due at `now`.
std::vector<std::string> TakeAll(DeliveryQueue& queue, absl::Time now) {
  return Ids(queue.TakeDue(now, 1000, NotHeld));
}

TEST(DeliveryQueueTest, TakesDueEntriesEarliestFirst) {
  DeliveryQueue queue;
  queue.Schedule(Entry("c", "ep1", 30));
  queue.Schedule(Entry("a", "ep2", 10));
  queue.Schedule(Entry("b", "ep1", 20));
  queue.Schedule(Entry("d", "ep2", 40));

  EXPECT_THAT(TakeAll(queue, At(30)), ElementsAre("a", "b", "c"));
  EXPECT_EQ(queue.size(), 4u);
  EXPECT_EQ(queue.in_flight(), 3u);
  EXPECT_THAT(queue.NextDue(), Optional(At(40)));
}

TEST(DeliveryQueueTest, TakeDueStopsAtMax) {
  DeliveryQueue queue;
  for (int i = 0; i < 5; ++i)
    queue.Schedule(Entry(absl::StrCat("d", i), "ep", i));

  EXPECT_THAT(Ids(queue.TakeDue(At(10), 2, NotHeld)), ElementsAre("d0", "d1"));
  EXPECT_THAT(queue.NextDue(), Optional(At(2)));
  EXPECT_THAT(Ids(queue.TakeDue(At(10), 0, NotHeld)), IsEmpty());
}

TEST(DeliveryQueueTest, NextDueIsEmptyWithNothingScheduled) {
  DeliveryQueue queue;
  EXPECT_EQ(queue.NextDue(), std::nullopt);
  queue.Schedule(Entry("a", "ep", 5));
  TakeAll(queue, At(5));
  EXPECT_EQ(queue.NextDue(), std::nullopt);
}

TEST(DeliveryQueueTest, TakenEntryKeepsItsFields) {
  DeliveryQueue queue;
  queue.Schedule(QueuedDelivery{"a", "ep", At(3), /*manual=*/true, false});
  queue.Schedule(TestEntry("t", "ep", 4));

  std::vector<QueuedDelivery> due = queue.TakeDue(At(4), 10, NotHeld);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].delivery_id, "a");
  EXPECT_EQ(due[0].endpoint_id, "ep");
  EXPECT_EQ(due[0].due, At(3));
  EXPECT_TRUE(due[0].manual);
  EXPECT_FALSE(due[0].test);
  EXPECT_EQ(due[1].delivery_id, "t");
  EXPECT_FALSE(due[1].manual);
  EXPECT_TRUE(due[1].test);
}

TEST(DeliveryQueueTest, DueTimesRoundUpToTheMicrosecond) {
  DeliveryQueue queue;
  queue.Schedule(
      QueuedDelivery{"a", "ep", kT0 + absl::Nanoseconds(1500), false, false});

  EXPECT_THAT(queue.NextDue(), Optional(kT0 + absl::Microseconds(2)));
  EXPECT_THAT(TakeAll(queue, kT0 + absl::Nanoseconds(1999)), IsEmpty());
  EXPECT_THAT(TakeAll(queue, kT0 + absl::Microseconds(2)), ElementsAre("a"));
}

TEST(DeliveryQueueTest, ScheduleReplacesQueuedEntry) {
  DeliveryQueue queue;
  queue.Schedule(Entry("a", "ep1", 10));
  queue.Schedule(Entry("b", "ep1", 20));
  EXPECT_TRUE(queue.Schedule(Entry("a", "ep2", 30)));

  EXPECT_EQ(queue.size(), 2u);
  EXPECT_THAT(queue.NextDue(), Optional(At(20)));
  std::vector<QueuedDelivery> due = queue.TakeDue(At(30), 10, NotHeld);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].delivery_id, "b");
  EXPECT_EQ(due[1].delivery_id, "a");
  EXPECT_EQ(due[1].endpoint_id, "ep2");
  EXPECT_EQ(due[1].due, At(30));
}

TEST(DeliveryQueueTest, ScheduleOfInFlightIdIsRefused) {
  DeliveryQueue queue;
  queue.Schedule(Entry("a", "ep", 10));
  ASSERT_THAT(TakeAll(queue, At(10)), ElementsAre("a"));

  EXPECT_FALSE(queue.Schedule(Entry("a", "ep", 20)));
  EXPECT_TRUE(queue.InFlight("a"));
  EXPECT_EQ(queue.size(), 1u);
  EXPECT_EQ(queue.NextDue(), std::nullopt);
}

TEST(DeliveryQueueTest, RemoveEndsQueuedAndInFlightEntries) {
  DeliveryQueue queue;
  queue.Schedule(Entry("a", "ep", 10));
  queue.Schedule(Entry("b", "ep", 20));
  TakeAll(queue, At(10));

  queue.Remove("a");
  queue.Remove("b");
  queue.Remove("unknown");
  EXPECT_EQ(queue.size(), 0u);
  EXPECT_EQ(queue.in_flight(), 0u);
  EXPECT_FALSE(queue.Contains("a"));
  EXPECT_FALSE(queue.Contains("b"));
  EXPECT_EQ(queue.NextDue(), std::nullopt);
}

TEST(DeliveryQueueTest, RetryAfterAttemptIsRemoveThenSchedule) {
  DeliveryQueue queue;
  queue.Schedule(Entry("a", "ep", 10));
  TakeAll(queue, At(10));

  queue.Remove("a");
  EXPECT_TRUE(queue.Schedule(Entry("a", "ep", 40)));
  EXPECT_FALSE(queue.InFlight("a"));
  EXPECT_THAT(queue.NextDue(), Optional(At(40)));
  EXPECT_THAT(TakeAll(queue, At(40)), ElementsAre("a"));
}

TEST(DeliveryQueueTest, HeldEntriesWaitForRelease) {
  DeliveryQueue queue;
  queue.Schedule(Entry("a", "off", 10));
  queue.Schedule(Entry("b", "on", 20));
  queue.Schedule(Entry("c", "off", 30));
  auto is_held = [](const std::string& endpoint) { return endpoint == "off"; };

  EXPECT_THAT(Ids(queue.TakeDue(At(30), 10, is_held)), ElementsAre("b"));
  EXPECT_EQ(queue.held(), 2u);
  EXPECT_EQ(queue.size(), 3u);
  EXPECT_TRUE(queue.Contains("a"));
  EXPECT_FALSE(queue.InFlight("a"));
  EXPECT_EQ(queue.NextDue(), std::nullopt);

  queue.Release("off");
  EXPECT_EQ(queue.held(), 0u);
  EXPECT_THAT(queue.NextDue(), Optional(At(10)));
  EXPECT_THAT(TakeAll(queue, At(30)), ElementsAre("a", "c"));
}

TEST(DeliveryQueueTest, ReleaseLeavesOtherEndpointsHeld) {
  DeliveryQueue queue;
  queue.Schedule(Entry("a", "off1", 10));
  queue.Schedule(Entry("b", "off2", 10));
  queue.TakeDue(At(10), 10, [](const std::string&) { return true; });
  ASSERT_EQ(queue.held(), 2u);

  queue.Release("off2");
  queue.Release("unknown");
  EXPECT_EQ(queue.held(), 1u);
  EXPECT_THAT(TakeAll(queue, At(10)), ElementsAre("b"));
}

TEST(DeliveryQueueTest, TestDeliveryIsNotHeld) {
  DeliveryQueue queue;
  queue.Schedule(TestEntry("t", "off", 10));
  queue.Schedule(Entry("a", "off", 10));

  EXPECT_THAT(
      Ids(queue.TakeDue(At(10), 10, [](const std::string&) { return true; })),
      ElementsAre("t"));
  EXPECT_EQ(queue.held(), 1u);
}

TEST(DeliveryQueueTest, HeldEntryCanBeRemovedAndRescheduled) {
  DeliveryQueue queue;
  queue.Schedule(Entry("a", "off", 10));
  queue.Schedule(Entry("b", "off", 10));
  queue.TakeDue(At(10), 10, [](const std::string&) { return true; });

  queue.Remove("a");
  EXPECT_TRUE(queue.Schedule(Entry("b", "off", 20)));
  EXPECT_EQ(queue.held(), 0u);
  EXPECT_EQ(queue.size(), 1u);
  EXPECT_THAT(queue.NextDue(), Optional(At(20)));
}

TEST(DeliveryQueueTest, RemoveEndpointRemovesAllButInFlight) {
  DeliveryQueue queue;
  queue.Schedule(Entry("flying", "ep", 9));
  queue.Schedule(Entry("held", "ep", 10));
  queue.Schedule(Entry("later", "ep", 50));
  queue.Schedule(Entry("other", "ep2", 50));
  queue.TakeDue(At(10), 1, NotHeld);
  queue.TakeDue(At(10), 10, [](const std::string&) { return true; });
  ASSERT_TRUE(queue.InFlight("flying"));
  ASSERT_EQ(queue.held(), 1u);

  EXPECT_THAT(queue.RemoveEndpoint("ep"),
              UnorderedElementsAre("held", "later"));
  EXPECT_EQ(queue.size(), 2u);
  EXPECT_EQ(queue.held(), 0u);
  EXPECT_TRUE(queue.InFlight("flying"));
  EXPECT_TRUE(queue.Contains("other"));
  EXPECT_THAT(queue.RemoveEndpoint("unknown"), IsEmpty());
}

TEST(DeliveryQueueCapTest, ZeroCapIsUnlimited) {
  DeliveryQueue queue(0);
  for (int i = 0; i < 100; ++i)
    queue.Schedule(Entry(absl::StrCat("d", i), "ep", i));

  EXPECT_EQ(TakeAll(queue, At(100)).size(), 100u);
  EXPECT_EQ(queue.parked(), 0u);
  EXPECT_EQ(queue.max_in_flight_per_endpoint(), 0u);
}

TEST(DeliveryQueueCapTest, EntriesPastTheCapAreParked) {
  DeliveryQueue queue(2);
  for (int i = 0; i < 5; ++i)
    queue.Schedule(Entry(absl::StrCat("d", i), "ep", i));

  EXPECT_THAT(TakeAll(queue, At(10)), ElementsAre("d0", "d1"));
  EXPECT_EQ(queue.in_flight(), 2u);
  EXPECT_EQ(queue.parked(), 3u);
  EXPECT_EQ(queue.size(), 5u);
  EXPECT_TRUE(queue.Contains("d4"));
  EXPECT_FALSE(queue.InFlight("d4"));
  // Parked entries wait for a slot, not for a time.
  EXPECT_EQ(queue.NextDue(), std::nullopt);
  EXPECT_THAT(TakeAll(queue, At(20)), IsEmpty());
}

TEST(DeliveryQueueCapTest, FreedSlotBringsBackTheEarliestParkedEntry) {
  DeliveryQueue queue(1);
  queue.Schedule(Entry("a1", "a", 1));
  queue.Schedule(Entry("a3", "a", 3));
  queue.Schedule(Entry("a2", "a", 2));
  queue.Schedule(Entry("b5", "b", 5));
  ASSERT_THAT(TakeAll(queue, At(4)), ElementsAre("a1"));
  ASSERT_EQ(queue.parked(), 2u);

  queue.Remove("a1");
  EXPECT_EQ(queue.parked(), 1u);
  // With its own due time: before b5.
  EXPECT_THAT(queue.NextDue(), Optional(At(2)));
  std::vector<QueuedDelivery> due = queue.TakeDue(At(10), 10, NotHeld);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].delivery_id, "a2");
  EXPECT_EQ(due[0].due, At(2));
  EXPECT_EQ(due[1].delivery_id, "b5");
  EXPECT_EQ(queue.parked(), 1u);
  EXPECT_TRUE(queue.Contains("a3"));
}

TEST(DeliveryQueueCapTest, RetryOfInFlightEntryFreesItsSlot) {
  DeliveryQueue queue(1);
  queue.Schedule(Entry("a1", "a", 1));
  queue.Schedule(Entry("a2", "a", 2));
  TakeAll(queue, At(2));
  ASSERT_EQ(queue.parked(), 1u);

  // The engine re-queues a retry as Remove, then Schedule.
  queue.Remove("a1");
  queue.Schedule(Entry("a1", "a", 60));
  EXPECT_THAT(TakeAll(queue, At(59)), ElementsAre("a2"));
  EXPECT_THAT(TakeAll(queue, At(60)), IsEmpty());
  EXPECT_EQ(queue.parked(), 1u);
  queue.Remove("a2");
  EXPECT_THAT(TakeAll(queue, At(60)), ElementsAre("a1"));
}

TEST(DeliveryQueueCapTest, EndpointAtTheCapDoesNotBlockOthers) {
  DeliveryQueue queue(1);
  for (int i = 0; i < 50; ++i)
    queue.Schedule(Entry(absl::StrCat("a", i), "a", i));
  queue.Schedule(Entry("b", "b", 60));
  queue.Schedule(Entry("c", "c", 61));

  EXPECT_THAT(Ids(queue.TakeDue(At(100), 3, NotHeld)),
              ElementsAre("a0", "b", "c"));
  EXPECT_EQ(queue.parked(), 49u);
}

TEST(DeliveryQueueCapTest, ParkedEntriesAreNotLookedAtAgain) {
  DeliveryQueue queue(1);
  for (int i = 0; i < 100; ++i)
    queue.Schedule(Entry(absl::StrCat("a", i), "a", i));
  int looked_at = 0;
  auto count = [&looked_at](const std::string&) {
    ++looked_at;
    return false;
  };

  EXPECT_EQ(queue.TakeDue(At(100), 10, count).size(), 1u);
  EXPECT_EQ(looked_at, 100);
  queue.Schedule(Entry("b", "b", 100));
  EXPECT_EQ(queue.TakeDue(At(100), 10, count).size(), 1u);
  EXPECT_EQ(looked_at, 101);
  // A freed slot brings back one entry, looked at once.
  queue.Remove("a0");
  EXPECT_THAT(Ids(queue.TakeDue(At(100), 10, count)), ElementsAre("a1"));
  EXPECT_EQ(looked_at, 102);
}

TEST(DeliveryQueueCapTest, RemovedParkedEntryIsGone) {
  DeliveryQueue queue(1);
  queue.Schedule(Entry("a1", "a", 1));
  queue.Schedule(Entry("a2", "a", 2));
  queue.Schedule(Entry("a3", "a", 3));
  TakeAll(queue, At(3));

  queue.Remove("a2");
  EXPECT_EQ(queue.parked(), 1u);
  EXPECT_EQ(queue.size(), 2u);
  EXPECT_FALSE(queue.Contains("a2"));
  queue.Remove("a1");
  EXPECT_THAT(TakeAll(queue, At(3)), ElementsAre("a3"));
}

TEST(DeliveryQueueCapTest, ScheduleOfParkedIdMovesItBackToTheSchedule) {
  DeliveryQueue queue(1);
  queue.Schedule(Entry("a1", "a", 1));
  queue.Schedule(Entry("a2", "a", 2));
  TakeAll(queue, At(2));
  ASSERT_EQ(queue.parked(), 1u);

  EXPECT_TRUE(queue.Schedule(Entry("a2", "a", 30)));
  EXPECT_EQ(queue.parked(), 0u);
  EXPECT_EQ(queue.size(), 2u);
  EXPECT_THAT(queue.NextDue(), Optional(At(30)));
  // Still capped when it is due again.
  EXPECT_THAT(TakeAll(queue, At(30)), IsEmpty());
  EXPECT_EQ(queue.parked(), 1u);
}

TEST(DeliveryQueueCapTest,
     UnparkedEntryRemovedBeforeItsAttemptPassesTheSlotOn) {
  DeliveryQueue queue(1);
  queue.Schedule(Entry("a1", "a", 1));
  queue.Schedule(Entry("a2", "a", 2));
  queue.Schedule(Entry("a3", "a", 3));
  TakeAll(queue, At(3));
  queue.Remove("a1");  // a2 is scheduled again, holding the slot.
  ASSERT_EQ(queue.parked(), 1u);

  queue.Remove("a2");
  EXPECT_EQ(queue.parked(), 0u);
  EXPECT_THAT(TakeAll(queue, At(3)), ElementsAre("a3"));
}

TEST(DeliveryQueueCapTest, ParkedEntriesSurviveRelease) {
  DeliveryQueue queue(1);
  queue.Schedule(Entry("a1", "a", 1));
  queue.Schedule(Entry("a2", "a", 2));
  TakeAll(queue, At(2));

  queue.Release("a");
  EXPECT_EQ(queue.parked(), 1u);
  EXPECT_EQ(queue.held(), 0u);
  EXPECT_THAT(TakeAll(queue, At(2)), IsEmpty());
  queue.Remove("a1");
  EXPECT_THAT(TakeAll(queue, At(2)), ElementsAre("a2"));
}

TEST(DeliveryQueueCapTest, HeldEndpointHoldsItsParkedEntries) {
  DeliveryQueue queue(1);
  queue.Schedule(Entry("a1", "a", 1));
  queue.Schedule(Entry("a2", "a", 2));
  queue.Schedule(Entry("a3", "a", 3));
  TakeAll(queue, At(3));
  ASSERT_EQ(queue.parked(), 2u);
  auto is_held = [](const std::string& endpoint) { return endpoint == "a"; };

  // The endpoint is disabled while a1 is in flight; a1 ends.
  queue.Remove("a1");
  EXPECT_THAT(Ids(queue.TakeDue(At(3), 10, is_held)), IsEmpty());
  EXPECT_EQ(queue.held(), 2u);
  EXPECT_EQ(queue.parked(), 0u);
  EXPECT_EQ(queue.size(), 2u);

  queue.Release("a");
  EXPECT_THAT(TakeAll(queue, At(3)), ElementsAre("a2"));
  EXPECT_EQ(queue.parked(), 1u);
}

TEST(DeliveryQueueCapTest, RemoveEndpointRemovesParkedEntries) {
  DeliveryQueue queue(1);
  queue.Schedule(Entry("a1", "a", 1));
  queue.Schedule(Entry("a2", "a", 2));
  queue.Schedule(Entry("a3", "a", 3));
  queue.Schedule(Entry("a9", "a", 9));
  queue.Schedule(Entry("b1", "b", 1));
  TakeAll(queue, At(3));
  ASSERT_EQ(queue.parked(), 2u);

  EXPECT_THAT(queue.RemoveEndpoint("a"),
              UnorderedElementsAre("a2", "a3", "a9"));
  EXPECT_EQ(queue.parked(), 0u);
  EXPECT_EQ(queue.size(), 2u);
  EXPECT_EQ(queue.in_flight(), 2u);
  // The attempt in flight still ends normally, and new entries flow.
  queue.Remove("a1");
  queue.Schedule(Entry("a4", "a", 4));
  EXPECT_THAT(TakeAll(queue, At(4)), ElementsAre("a4"));
}

TEST(DeliveryQueueCapTest, TestDeliveriesPassTheCap) {
  DeliveryQueue queue(1);
  queue.Schedule(Entry("a1", "a", 1));
  queue.Schedule(Entry("a2", "a", 2));
  queue.Schedule(TestEntry("t", "a", 3));

  EXPECT_THAT(TakeAll(queue, At(3)), ElementsAre("a1", "t"));
  EXPECT_EQ(queue.in_flight(), 2u);
  EXPECT_EQ(queue.parked(), 1u);
}

TEST(DeliveryQueueCapTest, TestDeliveriesCountTowardTheCap) {
  DeliveryQueue queue(1);
  queue.Schedule(TestEntry("t", "a", 1));
  queue.Schedule(Entry("a2", "a", 2));

  EXPECT_THAT(TakeAll(queue, At(2)), ElementsAre("t"));
  EXPECT_EQ(queue.parked(), 1u);
  queue.Remove("t");
  EXPECT_THAT(TakeAll(queue, At(2)), ElementsAre("a2"));
}

TEST(DeliveryQueueCapTest, CapAppliesToEachEndpointSeparately) {
  DeliveryQueue queue(2);
  for (int i = 0; i < 4; ++i) {
    queue.Schedule(Entry(absl::StrCat("a", i), "a", 2 * i));
    queue.Schedule(Entry(absl::StrCat("b", i), "b", 2 * i + 1));
  }

  EXPECT_THAT(TakeAll(queue, At(10)), ElementsAre("a0", "b0", "a1", "b1"));
  EXPECT_EQ(queue.parked(), 4u);
  queue.Remove("b0");
  queue.Remove("b1");
  EXPECT_THAT(TakeAll(queue, At(10)), ElementsAre("b2", "b3"));
  EXPECT_EQ(queue.parked(), 2u);
}

TEST(DeliveryQueueIdTest, WebhookdIdsRoundTrip) {
  DeliveryQueue queue;
  const std::string id = NewId("dlv_");
  const std::string zeros = "dlv_00000000000000000000000000000000";
  const std::string top = "dlv_ffffffffffffffff0123456789abcdef";
  queue.Schedule(Entry(id, "ep", 1));
  queue.Schedule(Entry(zeros, "ep", 2));
  queue.Schedule(Entry(top, "ep", 3));

  EXPECT_TRUE(queue.Contains(id));
  EXPECT_FALSE(queue.Contains("dlv_10000000000000000000000000000000"));
  EXPECT_THAT(TakeAll(queue, At(3)), ElementsAre(id, zeros, top));
  EXPECT_TRUE(queue.InFlight(top));
}

TEST(DeliveryQueueIdTest, IdsOfAnyFormAreKeptAsTheyAre) {
  DeliveryQueue queue;
  const std::string lower = "dlv_0123456789abcdef0123456789abcdef";
  const std::vector<std::string> others = {
      "",
      "x",
      "dlv_",
      "dlv_0123456789ABCDEF0123456789ABCDEF",  // Uppercase: not the same id.
      "dlv_0123456789abcdef0123456789abcdeg",
      "dlv_0123456789abcdef0123456789abcdef0",
      "evt_0123456789abcdef0123456789abcdef",
      std::string("dlv_\0zz", 7),
  };
  queue.Schedule(Entry(lower, "ep", 0));
  for (size_t i = 0; i < others.size(); ++i) {
    queue.Schedule(Entry(others[i], "ep", static_cast<int>(i) + 1));
  }

  EXPECT_EQ(queue.size(), others.size() + 1);
  std::vector<std::string> expected = {lower};
  expected.insert(expected.end(), others.begin(), others.end());
  EXPECT_EQ(TakeAll(queue, At(100)), expected);
  for (const std::string& id : others) EXPECT_TRUE(queue.InFlight(id)) << id;
  queue.Remove(others[3]);
  EXPECT_TRUE(queue.Contains(lower));
  EXPECT_FALSE(queue.Contains(others[3]));
}

TEST(DeliveryQueueTest, QueueWorksAgainAfterDraining) {
  // Past 1024 entries an emptied queue frees its tables.
  DeliveryQueue queue(3);
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 3000; ++i) {
      queue.Schedule(Entry(absl::StrCat("d", i), absl::StrCat("ep", i % 7), i));
    }
    EXPECT_EQ(TakeAll(queue, At(3000)).size(), 21u);
    EXPECT_EQ(queue.parked(), 2979u);
    EXPECT_EQ(queue.RemoveEndpoint("ep0").size(), 429u - 3);
    for (int i = 0; i < 3000; ++i) queue.Remove(absl::StrCat("d", i));
    EXPECT_EQ(queue.size(), 0u);
    EXPECT_EQ(queue.in_flight(), 0u);
    EXPECT_EQ(queue.parked(), 0u);
    EXPECT_EQ(queue.NextDue(), std::nullopt);
  }
}

// Random operations checked against a plain model of what the queue holds:
// no endpoint ever has more than the cap in flight (test deliveries aside),
// an endpoint below the cap never leaves a due entry waiting, and entries
// of an endpoint go in flight earliest first.
TEST(DeliveryQueueCapTest, RandomOperationsKeepTheRules) {
  constexpr size_t kCap = 2;
  constexpr int kEndpoints = 4;
  DeliveryQueue queue(kCap);
  struct Modeled {
    std::string endpoint;
    absl::Time due;
    bool test = false;
    bool in_flight = false;
  };
  std::map<std::string, Modeled> model;
  std::set<std::string> held_endpoints;
  std::mt19937 random(7);
  auto pick = [&random](int n) {
    return std::uniform_int_distribution<int>(0, n - 1)(random);
  };
  auto in_flight_of = [&model](const std::string& endpoint) {
    size_t n = 0;
    for (const auto& [id, m] : model)
      n += m.endpoint == endpoint && m.in_flight;
    return n;
  };
  auto is_held = [&held_endpoints](const std::string& endpoint) {
    return held_endpoints.contains(endpoint);
  };
  absl::Time now = kT0;
  int next_id = 0;
  size_t taken_total = 0;
  size_t max_parked = 0;
  size_t max_held = 0;

  for (int step = 0; step < 20000; ++step) {
    SCOPED_TRACE(step);
    now += absl::Milliseconds(pick(3));
    const int op = pick(10);
    if (op <= 3) {
      // Schedule a new delivery or reschedule a waiting one; ids of both
      // forms. Due times are distinct, to make the order well defined.
      std::string id;
      if (!model.empty() && pick(4) == 0) {
        id = std::next(model.begin(), pick(static_cast<int>(model.size())))
                 ->first;
      } else {
        // Webhookd's form (as NewId makes it, but repeatable) or another.
        id = pick(2) == 0
                 ? absl::StrFormat("dlv_%016x%016x", random(), random())
                 : absl::StrCat("id", next_id);
      }
      ++next_id;
      const std::string endpoint = absl::StrCat("ep", pick(kEndpoints));
      const absl::Time due = now + absl::Milliseconds(pick(50) - 10) +
                             absl::Microseconds(next_id % 1000);
      const bool test = pick(20) == 0;
      const bool flying = model.contains(id) && model[id].in_flight;
      EXPECT_EQ(queue.Schedule(QueuedDelivery{id, endpoint, due, false, test}),
                !flying);
      if (!flying) model[id] = Modeled{endpoint, due, test, false};
    } else if (op <= 5) {
      // Finish an attempt, sometimes as a retry.
      std::vector<std::string> flying;
      for (const auto& [id, m] : model) {
        if (m.in_flight) flying.push_back(id);
      }
      if (flying.empty()) continue;
      const std::string id = flying[pick(static_cast<int>(flying.size()))];
      queue.Remove(id);
      if (pick(2) == 0) {
        model.erase(id);
      } else {
        model[id].in_flight = false;
        model[id].due = now + absl::Milliseconds(pick(20)) +
                        absl::Microseconds(++next_id % 1000);
        EXPECT_TRUE(queue.Schedule(QueuedDelivery{
            id, model[id].endpoint, model[id].due, false, model[id].test}));
      }
    } else if (op == 6) {
      const std::string endpoint = absl::StrCat("ep", pick(kEndpoints));
      if (held_endpoints.erase(endpoint) > 0) {
        queue.Release(endpoint);
      } else {
        held_endpoints.insert(endpoint);
      }
    } else if (op == 7 && pick(10) == 0) {
      const std::string endpoint = absl::StrCat("ep", pick(kEndpoints));
      std::vector<std::string> removed = queue.RemoveEndpoint(endpoint);
      std::vector<std::string> expected;
      for (const auto& [id, m] : model) {
        if (m.endpoint == endpoint && !m.in_flight) expected.push_back(id);
      }
      std::sort(removed.begin(), removed.end());
      EXPECT_EQ(removed, expected);
      for (const std::string& id : expected) model.erase(id);
    } else {
      const size_t max = static_cast<size_t>(pick(6));
      std::vector<QueuedDelivery> due = queue.TakeDue(now, max, is_held);
      EXPECT_LE(due.size(), max);
      taken_total += due.size();
      for (size_t i = 0; i < due.size(); ++i) {
        const QueuedDelivery& taken = due[i];
        ASSERT_TRUE(model.contains(taken.delivery_id));
        Modeled& m = model[taken.delivery_id];
        EXPECT_FALSE(m.in_flight);
        EXPECT_EQ(taken.endpoint_id, m.endpoint);
        EXPECT_EQ(taken.due, m.due);
        EXPECT_LE(m.due, now);
        EXPECT_EQ(taken.test, m.test);
        if (i > 0) {
          EXPECT_LE(due[i - 1].due, taken.due);
        }
        if (!m.test) {
          EXPECT_FALSE(is_held(m.endpoint));
          EXPECT_LT(in_flight_of(m.endpoint), kCap);
          // No earlier due entry of the endpoint is left waiting.
          for (const auto& [id, other] : model) {
            if (other.endpoint == m.endpoint && !other.in_flight &&
                !other.test && other.due < m.due) {
              ADD_FAILURE() << id << " is due before " << taken.delivery_id;
            }
          }
        }
        m.in_flight = true;
      }
      if (due.size() < max) {
        // Nothing due was left behind by an endpoint with a free slot.
        for (const auto& [id, m] : model) {
          if (m.in_flight || m.due > now) continue;
          if (!m.test && is_held(m.endpoint)) continue;
          EXPECT_TRUE(!m.test && in_flight_of(m.endpoint) >= kCap)
              << id << " was left waiting";
        }
      }
    }
    size_t flying = 0;
    for (const auto& [id, m] : model) flying += m.in_flight;
    ASSERT_EQ(queue.size(), model.size());
    ASSERT_EQ(queue.in_flight(), flying);
    ASSERT_LE(queue.held() + queue.parked(), model.size() - flying);
    max_parked = std::max(max_parked, queue.parked());
    max_held = std::max(max_held, queue.held());
    if (step % 100 == 0) {
      for (const auto& [id, m] : model) {
        EXPECT_TRUE(queue.Contains(id));
        EXPECT_EQ(queue.InFlight(id), m.in_flight);
      }
    }
  }
  // The run went through every place.
  EXPECT_GT(next_id, 5000);
  EXPECT_GT(taken_total, 2000u);
  EXPECT_GT(max_parked, 10u);
  EXPECT_GT(max_held, 10u);
}

TEST(DeliveryQueueTest, ReadyCountsTheScheduledEntriesDueByNow) {
  DeliveryQueue queue(/*max_in_flight_per_endpoint=*/1);
  queue.Schedule(Entry("a", "ep1", 10));
  queue.Schedule(Entry("b", "ep1", 20));
  queue.Schedule(Entry("c", "ep2", 30));
  EXPECT_EQ(queue.Ready(At(5)), 0u);
  EXPECT_EQ(queue.Ready(At(20)), 2u);
  // Scheduled behind the mark: counted at once.
  queue.Schedule(Entry("d", "ep3", 1));
  EXPECT_EQ(queue.Ready(At(20)), 3u);
  // Taken (a, d), parked behind ep1's cap (b): no longer waiting for a slot.
  EXPECT_THAT(TakeAll(queue, At(20)), UnorderedElementsAre("d", "a"));
  EXPECT_EQ(queue.Ready(At(20)), 0u);
  EXPECT_EQ(queue.Ready(At(40)), 1u);  // c.
  queue.Remove("c");
  EXPECT_EQ(queue.Ready(At(40)), 0u);
  // a's end unparks b, due long ago.
  queue.Remove("a");
  EXPECT_EQ(queue.Ready(At(40)), 1u);
  // Held entries wait for their endpoint.
  queue.Schedule(Entry("e", "ep4", 40));
  EXPECT_THAT(Ids(queue.TakeDue(At(40), 10,
                                [](const std::string& endpoint) {
                                  return endpoint == "ep4";
                                })),
              ElementsAre("b"));
  EXPECT_EQ(queue.Ready(At(50)), 0u);
  queue.Release("ep4");
  EXPECT_EQ(queue.Ready(At(50)), 1u);
}

// The scheduler's lag: the earliest due entry's wait, or the due entries
// ahead at the rate attempts started, whichever is longer.
TEST(SchedulerTest, LagIsTheLongerOfTheOldestWaitAndTheReadyEntriesAtTheRate) {
  Scheduler scheduler(SchedulerOptions{.max_in_flight = 10});
  EXPECT_EQ(scheduler.Lag(At(0)), absl::ZeroDuration());
  std::vector<QueuedDelivery> entries;
  for (int i = 0; i < 200; ++i) {
    entries.push_back(Entry(absl::StrCat("d", i), absl::StrCat("ep", i), 0));
  }
  scheduler.Schedule(entries);
  // No attempt started yet: no rate, the oldest wait alone.
  EXPECT_EQ(scheduler.Lag(At(2)), absl::Seconds(2));
  // 10 started within the rate window (0.75 s to 1 s long); 190 wait, of
  // which 64 are slack: 126 at 10 to 13 a second, 9.5 s to 12.6 s.
  ASSERT_EQ(scheduler.TakeDue(At(2), NotHeld).size(), 10u);
  const absl::Duration lag = scheduler.Lag(At(2) + absl::Milliseconds(1));
  EXPECT_GT(lag, absl::Seconds(9));
  EXPECT_LT(lag, absl::Seconds(13));
  // Few enough to go in one round: the oldest wait alone.
  std::vector<std::string> ended;
  for (int i = 10; i < 180; ++i) ended.push_back(absl::StrCat("d", i));
  scheduler.Settle(ended, {}, 0);
  EXPECT_EQ(scheduler.Lag(At(3)), absl::Seconds(3));
}

// Parked entries count as the service's own backlog only behind endpoints
// that keep up: the last attempt succeeded, recently, and attempts are quick
// on average.
TEST(DeliveryQueueTest, ParkedBehindQuickEndpointsLeavesOutSlowAndFailingOnes) {
  DeliveryQueue queue(/*max_in_flight_per_endpoint=*/1);
  for (const std::string endpoint :
       {"quick", "slow", "failing", "silent", "stale"}) {
    for (int i = 0; i < 3; ++i) {
      queue.Schedule(Entry(absl::StrCat(endpoint, i), endpoint, 0));
    }
  }
  ASSERT_EQ(TakeAll(queue, At(1)).size(), 5u);  // One each; 10 parked.
  ASSERT_EQ(queue.parked(), 10u);
  const absl::Duration quick = absl::Milliseconds(100);
  // No attempt has ended: none is known to keep up.
  EXPECT_EQ(queue.ParkedBehindQuickEndpoints(At(1), quick), 0u);
  const absl::Time now = At(10);
  queue.RecordAttempt("quick", now, absl::Milliseconds(5), true);
  queue.RecordAttempt("slow", now, absl::Seconds(2), true);
  queue.RecordAttempt("failing", now, absl::Milliseconds(5), false);
  queue.RecordAttempt("stale", At(2), absl::Milliseconds(5), true);
  queue.RecordAttempt("unknown", now, absl::Milliseconds(5), true);
  EXPECT_EQ(queue.ParkedBehindQuickEndpoints(now, quick), 2u);
  // The average follows a receiver that turns slow within a few attempts.
  for (int i = 0; i < 8; ++i) {
    queue.RecordAttempt("quick", now, absl::Seconds(1), true);
  }
  EXPECT_EQ(queue.ParkedBehindQuickEndpoints(now, quick), 0u);
  // And one that recovers; a success ends the failing one's exclusion.
  for (int i = 0; i < 12; ++i) {
    queue.RecordAttempt("quick", now, absl::Milliseconds(5), true);
  }
  queue.RecordAttempt("failing", now, absl::Milliseconds(5), true);
  EXPECT_EQ(queue.ParkedBehindQuickEndpoints(now, quick), 4u);
}

// When every endpoint answers quickly but attempts cannot start as fast as
// deliveries come, the backlog is parked behind the per-endpoint caps: it
// is the service's lag. Behind a hanging endpoint it is not.
TEST(SchedulerTest, LagCountsTheBacklogParkedBehindEndpointsThatKeepUp) {
  Scheduler scheduler(
      SchedulerOptions{.max_in_flight = 100, .max_in_flight_per_endpoint = 2});
  std::vector<QueuedDelivery> entries;
  for (int i = 0; i < 100; ++i) {
    entries.push_back(Entry(absl::StrCat("q", i), "quick", 0));
    entries.push_back(Entry(absl::StrCat("h", i), "hanging", 0));
  }
  scheduler.Schedule(entries);
  std::vector<QueuedDelivery> taken = scheduler.TakeDue(At(1), NotHeld);
  ASSERT_EQ(taken.size(), 4u);
  // Nothing ended yet: no endpoint is known to keep up, nothing is behind.
  EXPECT_EQ(scheduler.Lag(At(1) + absl::Milliseconds(1)), absl::ZeroDuration());
  // The quick endpoint's two attempts succeed in 5 ms; the hanging one's
  // time out after 30 s (failed: they neither count nor set the pace).
  std::vector<std::string> ended;
  std::vector<AttemptEnd> attempts;
  const absl::Time end = At(1) + absl::Milliseconds(2);
  for (const QueuedDelivery& entry : taken) {
    ended.push_back(entry.delivery_id);
    const bool quick = entry.endpoint_id == "quick";
    attempts.push_back(
        AttemptEnd{.endpoint_id = entry.endpoint_id,
                   .end = end,
                   .elapsed = quick ? absl::Milliseconds(5) : absl::Seconds(30),
                   .succeeded = quick});
  }
  scheduler.Settle(ended, {}, taken.size(), attempts);
  ASSERT_EQ(scheduler.TakeDue(At(1) + absl::Milliseconds(3), NotHeld).size(),
            4u);
  // 8 attempts started in the window (1.02 s at 0.77 s of it: ~10.4 a
  // second); 96 parked behind the quick endpoint, 64 of them slack: ~3.1 s.
  // The hanging endpoint's 96 would make it ~12.3 s.
  const absl::Duration lag = scheduler.Lag(At(1) + absl::Milliseconds(20));
  EXPECT_GT(lag, absl::Seconds(2));
  EXPECT_LT(lag, absl::Seconds(5));
}

}  // namespace
}  // namespace webhookd
