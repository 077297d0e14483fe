#include "server/delivery/fresh_deliveries.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace webhookd {
namespace {

FreshDelivery Fresh(const std::string& id,
                    std::shared_ptr<const std::string> payload) {
  FreshDelivery fresh;
  fresh.delivery.set_id(id);
  fresh.payload = std::move(payload);
  return fresh;
}

TEST(FreshDeliveriesTest, TakeReturnsWhatWasPutOnce) {
  FreshDeliveries fresh(4);
  auto payload = std::make_shared<const std::string>("{}");
  fresh.Put(Fresh("dlv_1", payload));
  std::optional<FreshDelivery> taken = fresh.Take("dlv_1");
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->delivery.id(), "dlv_1");
  EXPECT_EQ(taken->payload.get(), payload.get());  // Shared, not copied.
  EXPECT_FALSE(fresh.Take("dlv_1").has_value());
  EXPECT_FALSE(fresh.Take("dlv_2").has_value());
}

TEST(FreshDeliveriesTest, FullCacheForgetsTheOldestEntry) {
  FreshDeliveries fresh(2);
  auto payload = std::make_shared<const std::string>("{}");
  fresh.Put(Fresh("dlv_1", payload));
  fresh.Put(Fresh("dlv_2", payload));
  fresh.Put(Fresh("dlv_3", payload));
  EXPECT_EQ(fresh.size(), 2u);
  EXPECT_FALSE(fresh.Take("dlv_1").has_value());
  EXPECT_TRUE(fresh.Take("dlv_2").has_value());
  EXPECT_TRUE(fresh.Take("dlv_3").has_value());
}

TEST(FreshDeliveriesTest, StaysBoundedWhenEntriesAreNeverTaken) {
  FreshDeliveries fresh(100);
  auto payload = std::make_shared<const std::string>("{}");
  for (int i = 0; i < 10'000; ++i) {
    fresh.Put(Fresh("dlv_" + std::to_string(i), payload));
  }
  EXPECT_EQ(fresh.size(), 100u);
  EXPECT_TRUE(fresh.Take("dlv_9999").has_value());
  EXPECT_FALSE(fresh.Take("dlv_9899").has_value());
}

TEST(FreshDeliveriesTest, ZeroCapacityKeepsNothing) {
  FreshDeliveries fresh(0);
  fresh.Put(Fresh("dlv_1", std::make_shared<const std::string>("{}")));
  EXPECT_EQ(fresh.size(), 0u);
  EXPECT_FALSE(fresh.Take("dlv_1").has_value());
}

}  // namespace
}  // namespace webhookd
