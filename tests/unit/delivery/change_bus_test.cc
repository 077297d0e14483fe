#include "server/delivery/change_bus.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "storage/leveldb/leveldb_store.h"
#include "tests/support/test_dir.h"

namespace webhookd {
namespace {

using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::util::MessageDifferencer;

class RecordingListener final : public DeliveryListener {
 public:
  bool Listening() const override { return listening; }
  void OnDeliveryChanged(
      const std::shared_ptr<const Delivery>& delivery) override {
    seen.push_back(delivery);
  }

  bool listening = true;
  std::vector<std::shared_ptr<const Delivery>> seen;
};

// A delivery with every field set, so that a field the view forgets shows.
Delivery FullDelivery() {
  Delivery delivery;
  delivery.set_id("dlv_1");
  delivery.set_event_id("evt_1");
  delivery.set_endpoint_id("ep_1");
  delivery.set_thread_id("thread-1");
  delivery.set_event_type("execution.completed");
  delivery.set_status(webhook::v1::DELIVERY_STATUS_RETRYING);
  delivery.set_response_code(503);
  delivery.set_response_time_ms(12);
  delivery.set_attempts(2);
  delivery.set_max_attempts(4);
  delivery.mutable_create_time()->set_seconds(1800000000);
  delivery.mutable_next_attempt_time()->set_seconds(1800000015);
  delivery.set_last_error("HTTP 503");
  delivery.set_test(true);
  delivery.set_payload(R"({"event":"execution.completed"})");
  delivery.add_attempt_history()->set_attempt(1);
  delivery.add_attempt_history()->set_attempt(2);
  delivery.set_user_id(42);
  delivery.set_traceparent(
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  delivery.set_tracestate("congo=t61rcWkgMzE");
  delivery.set_resent_from("dlv_0");
  delivery.set_resent_by("dlv_2");
  return delivery;
}

TEST(ChangeBusTest, FullDeliveryOfTheTestSetsEveryField) {
  // Guards the test itself: a new field of Delivery must be set above.
  const Delivery delivery = FullDelivery();
  const google::protobuf::Descriptor* descriptor = Delivery::descriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    const google::protobuf::Reflection* reflection = delivery.GetReflection();
    const bool set = field->is_repeated()
                         ? reflection->FieldSize(delivery, field) > 0
                         : reflection->HasField(delivery, field);
    EXPECT_TRUE(set) << "FullDelivery() leaves " << field->name() << " unset";
  }
}

TEST(ChangeBusTest, ListedViewKeepsEveryFieldButPayloadAndHistory) {
  const Delivery delivery = FullDelivery();
  Delivery expected = delivery;
  expected.clear_payload();
  expected.clear_attempt_history();
  EXPECT_TRUE(
      MessageDifferencer::Equals(ChangeBus::ListedView(delivery), expected))
      << ChangeBus::ListedView(delivery).DebugString();
}

TEST(ChangeBusTest, EveryListenerGetsTheSameSharedCopy) {
  ChangeBus bus;
  RecordingListener a, b;
  bus.AddListener(&a);
  bus.AddListener(&b);
  bus.Publish(FullDelivery());
  ASSERT_EQ(a.seen.size(), 1u);
  ASSERT_EQ(b.seen.size(), 1u);
  EXPECT_EQ(a.seen[0].get(), b.seen[0].get());
  EXPECT_TRUE(a.seen[0]->payload().empty());
  EXPECT_EQ(a.seen[0]->attempt_history_size(), 0);
  EXPECT_EQ(a.seen[0]->attempts(), 2);
}

TEST(ChangeBusTest, ListenerNotListeningGetsNothing) {
  ChangeBus bus;
  RecordingListener idle, removed;
  idle.listening = false;
  bus.AddListener(&idle);
  bus.AddListener(&removed);
  bus.RemoveListener(&removed);
  bus.Publish(FullDelivery());
  EXPECT_TRUE(idle.seen.empty());
  EXPECT_TRUE(removed.seen.empty());
}

// What a live stream shows (the bus's view of the stored delivery) and
// what a replay shows (ListDeliveries) are the same message.
TEST(ChangeBusTest, LiveViewEqualsTheListedDelivery) {
  testing::TestDir dir;
  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(dir.Sub("db"));
  ASSERT_TRUE(store.ok()) << store.status();
  Delivery delivery = FullDelivery();
  delivery.set_test(false);
  delivery.set_status(webhook::v1::DELIVERY_STATUS_PENDING);
  delivery.clear_attempt_history();
  delivery.set_attempts(0);
  EventRecord event;
  event.set_id(delivery.event_id());
  event.set_thread_id(delivery.thread_id());
  event.set_user_id(delivery.user_id());
  event.set_payload(delivery.payload());
  event.add_delivery_ids(delivery.id());
  ASSERT_TRUE((*store)->InsertEvent(event, {delivery}).ok());

  absl::StatusOr<Delivery> stored = (*store)->GetDelivery(delivery.id());
  ASSERT_TRUE(stored.ok()) << stored.status();
  absl::StatusOr<DeliveryPage> listed = (*store)->ListDeliveries({}, 10, "");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->deliveries.size(), 1u);
  EXPECT_TRUE(MessageDifferencer::Equals(ChangeBus::ListedView(*stored),
                                         listed->deliveries[0]))
      << "live: " << ChangeBus::ListedView(*stored).DebugString()
      << "\nlisted: " << listed->deliveries[0].DebugString();
}

}  // namespace
}  // namespace webhookd
