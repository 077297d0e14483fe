#include "storage/leveldb/leveldb_store.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leveldb/db.h"
#include "leveldb/env.h"
#include "leveldb/options.h"
#include "server/common/time_util.h"
#include "storage/leveldb/repair.h"
#include "tests/support/fault_env.h"
#include "tests/support/test_dir.h"

namespace webhookd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;
using webhook::v1::DELIVERY_STATUS_FAILED;
using webhook::v1::DELIVERY_STATUS_PENDING;
using webhook::v1::DELIVERY_STATUS_RETRYING;
using webhook::v1::DELIVERY_STATUS_SUCCESS;

const absl::Status& StatusOf(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

#define ASSERT_OK(expr)                                       \
  do {                                                        \
    const auto& result_ = (expr);                             \
    ASSERT_TRUE(StatusOf(result_).ok()) << StatusOf(result_); \
  } while (false)

constexpr int64_t kBaseMicros = 1'700'000'000'000'000;

google::protobuf::Timestamp ProtoTime(int64_t unix_micros) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(unix_micros / 1'000'000);
  ts.set_nanos(static_cast<int32_t>(unix_micros % 1'000'000) * 1000);
  return ts;
}

Endpoint MakeEndpoint(std::string id, std::string thread_id,
                      int64_t user_id = 7) {
  Endpoint endpoint;
  endpoint.set_id(std::move(id));
  endpoint.set_thread_id(std::move(thread_id));
  endpoint.set_user_id(user_id);
  endpoint.set_name("receiver");
  endpoint.set_url("https://example.com/hook");
  endpoint.set_enabled(true);
  return endpoint;
}

Delivery MakeDelivery(std::string id, std::string event_id,
                      std::string endpoint_id, std::string thread_id,
                      int64_t create_micros, int64_t user_id = 7) {
  Delivery delivery;
  delivery.set_id(std::move(id));
  delivery.set_event_id(std::move(event_id));
  delivery.set_endpoint_id(std::move(endpoint_id));
  delivery.set_thread_id(std::move(thread_id));
  delivery.set_user_id(user_id);
  delivery.set_event_type("execution.completed");
  delivery.set_status(DELIVERY_STATUS_PENDING);
  delivery.set_max_attempts(4);
  *delivery.mutable_create_time() = ProtoTime(create_micros);
  *delivery.mutable_next_attempt_time() = ProtoTime(create_micros);
  return delivery;
}

EventRecord MakeEvent(std::string id, std::string thread_id,
                      const std::vector<Delivery>& deliveries,
                      std::string idempotency_key = "", int64_t user_id = 7) {
  EventRecord event;
  event.set_id(std::move(id));
  event.set_thread_id(std::move(thread_id));
  event.set_user_id(user_id);
  event.set_event_type("execution.completed");
  event.set_payload(R"({"event":"execution.completed"})");
  event.set_create_time_unix_micros(kBaseMicros);
  event.set_idempotency_key(std::move(idempotency_key));
  for (const Delivery& delivery : deliveries) {
    event.add_delivery_ids(delivery.id());
  }
  return event;
}

EndpointFilter OfThread(std::string thread_id, int64_t user_id = 0) {
  EndpointFilter filter;
  filter.thread_id = std::move(thread_id);
  filter.user_id = user_id;
  return filter;
}

EndpointFilter OfUser(int64_t user_id) {
  EndpointFilter filter;
  filter.user_id = user_id;
  return filter;
}

DeliveryFilter ForEndpoint(std::string endpoint_id,
                           std::string thread_id = "") {
  DeliveryFilter filter;
  filter.endpoint_id = std::move(endpoint_id);
  filter.thread_id = std::move(thread_id);
  return filter;
}

DeliveryFilter ForThread(
    std::string thread_id,
    DeliveryStatus status = webhook::v1::DELIVERY_STATUS_UNSPECIFIED) {
  DeliveryFilter filter;
  filter.thread_id = std::move(thread_id);
  filter.status = status;
  return filter;
}

DeliveryFilter ForStatus(DeliveryStatus status) {
  DeliveryFilter filter;
  filter.status = status;
  return filter;
}

DeliveryFilter ForUser(int64_t user_id) {
  DeliveryFilter filter;
  filter.user_id = user_id;
  return filter;
}

// A new state without a finished attempt, out of the queue.
DeliveryChange Change(Delivery delivery) {
  DeliveryChange change;
  change.delivery = std::move(delivery);
  return change;
}

// A new state without a finished attempt, queued for its next_attempt_time.
DeliveryChange Queued(Delivery delivery) {
  DeliveryChange change;
  change.next_due = FromProtoTime(delivery.next_attempt_time());
  change.delivery = std::move(delivery);
  return change;
}

// A finished attempt, as the delivery engine reports it: counted as a
// success on a 2xx.
DeliveryChange Finished(Delivery delivery, int response_code,
                        int64_t response_time_ms) {
  DeliveryAttempt attempt;
  attempt.set_attempt(delivery.attempts() + 1);
  attempt.set_response_code(response_code);
  attempt.set_response_time_ms(response_time_ms);
  delivery.set_attempts(attempt.attempt());
  delivery.set_response_code(response_code);
  delivery.set_response_time_ms(response_time_ms);
  *delivery.add_attempt_history() = attempt;
  const bool success = response_code >= 200 && response_code < 300;
  if (success) {
    delivery.set_status(DELIVERY_STATUS_SUCCESS);
    delivery.clear_next_attempt_time();
  } else {
    delivery.set_status(DELIVERY_STATUS_RETRYING);
  }
  DeliveryChange change =
      success ? Change(std::move(delivery)) : Queued(std::move(delivery));
  change.counted_attempt =
      CountedAttempt{.success = success, .response_time_ms = response_time_ms};
  return change;
}

std::vector<std::string> Ids(const std::vector<Endpoint>& endpoints) {
  std::vector<std::string> ids;
  for (const Endpoint& endpoint : endpoints) ids.push_back(endpoint.id());
  return ids;
}

std::vector<std::string> Ids(const std::vector<Delivery>& deliveries) {
  std::vector<std::string> ids;
  for (const Delivery& delivery : deliveries) ids.push_back(delivery.id());
  return ids;
}

// Replaces the contents of path with bytes that are no valid LevelDB data.
void OverwriteWithGarbage(const std::filesystem::path& path) {
  const auto size = std::filesystem::file_size(path);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << std::string(size > 64 ? size : 64, '\xa5');
}

std::filesystem::path FindFile(const std::string& dir,
                               const std::string& suffix_or_prefix) {
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(suffix_or_prefix) ||
        name.ends_with(suffix_or_prefix)) {
      return entry.path();
    }
  }
  return {};
}

class LevelDbStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen(const LevelDbStoreOptions& options = {}) {
    store_.reset();
    absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
        LevelDbStore::Open(path_, options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  // Inserts one event with one delivery per endpoint, created at micros.
  std::vector<Delivery> Submit(const std::string& event_id,
                               const std::string& thread_id,
                               const std::vector<std::string>& endpoint_ids,
                               int64_t micros, int64_t user_id = 7) {
    std::vector<Delivery> deliveries;
    for (const std::string& endpoint_id : endpoint_ids) {
      deliveries.push_back(
          MakeDelivery(absl::StrCat("dlv_", event_id, "_", endpoint_id),
                       event_id, endpoint_id, thread_id, micros, user_id));
    }
    absl::Status status = store_->InsertEvent(
        MakeEvent(event_id, thread_id, deliveries, "", user_id), deliveries);
    EXPECT_TRUE(status.ok()) << status;
    return deliveries;
  }

  webhookd::testing::TestDir dir_;
  const std::string path_ = dir_.Sub("db");
  std::unique_ptr<LevelDbStore> store_;
};

// --- Endpoints
// ----------------------------------------------------------------

TEST_F(LevelDbStoreTest, PutThenGetEndpointRoundTripsIncludingSecret) {
  Endpoint endpoint = MakeEndpoint("ep_1", "thread-a");
  endpoint.set_secret("s3cret");
  endpoint.set_has_secret(true);
  webhook::v1::Header* header = endpoint.add_headers();
  header->set_name("Authorization");
  header->set_value("Bearer x");
  ASSERT_OK(store_->PutEndpoint(endpoint));

  absl::StatusOr<Endpoint> got = store_->GetEndpoint("ep_1");
  ASSERT_OK(got);
  EXPECT_EQ(got->SerializeAsString(), endpoint.SerializeAsString());
  EXPECT_EQ(got->secret(), "s3cret");
}

TEST_F(LevelDbStoreTest, GetMissingEndpointReturnsNotFound) {
  absl::StatusOr<Endpoint> got = store_->GetEndpoint("ep_missing");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(got.status().message(), HasSubstr("ep_missing"));
}

TEST_F(LevelDbStoreTest, PutEndpointReplacesItAndMovesItToItsNewThread) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  Endpoint moved = MakeEndpoint("ep_1", "thread-b");
  moved.set_name("renamed");
  ASSERT_OK(store_->PutEndpoint(moved));

  absl::StatusOr<EndpointPage> old_thread =
      store_->ListEndpoints(OfThread("thread-a"), 10, "");
  ASSERT_OK(old_thread);
  EXPECT_THAT(old_thread->endpoints, IsEmpty());
  absl::StatusOr<EndpointPage> new_thread =
      store_->ListEndpoints(OfThread("thread-b"), 10, "");
  ASSERT_OK(new_thread);
  ASSERT_EQ(new_thread->endpoints.size(), 1u);
  EXPECT_EQ(new_thread->endpoints[0].name(), "renamed");
}

TEST_F(LevelDbStoreTest, ListEndpointsOfThreadPagesInIdOrder) {
  for (const char* id : {"ep_4", "ep_2", "ep_5", "ep_1", "ep_3"}) {
    ASSERT_OK(store_->PutEndpoint(MakeEndpoint(id, "thread-a")));
  }
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_0", "thread-b")));
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_9", "thread-b")));

  std::vector<std::string> ids;
  std::string token;
  int pages = 0;
  do {
    absl::StatusOr<EndpointPage> page =
        store_->ListEndpoints(OfThread("thread-a"), 2, token);
    ASSERT_OK(page);
    EXPECT_LE(page->endpoints.size(), 2u);
    for (const Endpoint& endpoint : page->endpoints) {
      ids.push_back(endpoint.id());
    }
    token = page->next_page_token;
    ++pages;
  } while (!token.empty() && pages < 10);

  EXPECT_EQ(pages, 3);
  EXPECT_THAT(ids, ElementsAre("ep_1", "ep_2", "ep_3", "ep_4", "ep_5"));
}

TEST_F(LevelDbStoreTest, ListAllEndpointsPagesInIdOrder) {
  for (const char* id : {"ep_c", "ep_a", "ep_b"}) {
    ASSERT_OK(store_->PutEndpoint(MakeEndpoint(id, id)));
  }
  absl::StatusOr<EndpointPage> first = store_->ListEndpoints({}, 2, "");
  ASSERT_OK(first);
  EXPECT_THAT(Ids(first->endpoints), ElementsAre("ep_a", "ep_b"));
  ASSERT_FALSE(first->next_page_token.empty());
  absl::StatusOr<EndpointPage> second =
      store_->ListEndpoints({}, 2, first->next_page_token);
  ASSERT_OK(second);
  EXPECT_THAT(Ids(second->endpoints), ElementsAre("ep_c"));
  EXPECT_EQ(second->next_page_token, "");
}

TEST_F(LevelDbStoreTest, ListEndpointsRejectsMalformedPageToken) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  for (const char* token : {"%%%not-base64%%%", "Zm9vYmFy"}) {
    absl::StatusOr<EndpointPage> page =
        store_->ListEndpoints(OfThread("thread-a"), 2, token);
    EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument)
        << token;
  }
}

TEST_F(LevelDbStoreTest, ListEndpointsRejectsTokenOfAnotherFilter) {
  for (const char* id : {"ep_1", "ep_2", "ep_3"}) {
    ASSERT_OK(store_->PutEndpoint(MakeEndpoint(id, "thread-a")));
  }
  absl::StatusOr<EndpointPage> page =
      store_->ListEndpoints(OfThread("thread-a"), 1, "");
  ASSERT_OK(page);
  ASSERT_FALSE(page->next_page_token.empty());

  absl::StatusOr<EndpointPage> other =
      store_->ListEndpoints(OfThread("thread-b"), 1, page->next_page_token);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LevelDbStoreTest, ListEndpointsFiltersByUser) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a", 1)));
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_2", "thread-a", 2)));
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_3", "thread-b", 2)));

  absl::StatusOr<EndpointPage> of_user =
      store_->ListEndpoints(OfUser(2), 10, "");
  ASSERT_OK(of_user);
  EXPECT_THAT(Ids(of_user->endpoints), ElementsAre("ep_2", "ep_3"));
  absl::StatusOr<EndpointPage> of_user_and_thread =
      store_->ListEndpoints(OfThread("thread-a", /*user_id=*/2), 10, "");
  ASSERT_OK(of_user_and_thread);
  EXPECT_THAT(Ids(of_user_and_thread->endpoints), ElementsAre("ep_2"));
}

TEST_F(LevelDbStoreTest, ListEndpointsDefaultsToFiftyPerPage) {
  for (int i = 0; i < 51; ++i) {
    ASSERT_OK(store_->PutEndpoint(
        MakeEndpoint(absl::StrCat("ep_", 100 + i), "thread-a")));
  }
  absl::StatusOr<EndpointPage> page =
      store_->ListEndpoints(OfThread("thread-a"), 0, "");
  ASSERT_OK(page);
  EXPECT_EQ(page->endpoints.size(), 50u);
  EXPECT_FALSE(page->next_page_token.empty());
}

TEST_F(LevelDbStoreTest, ThreadIdsWithSeparatorBytesDoNotMix) {
  const std::string with_nul("a\0b", 3);
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "a")));
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_2", with_nul)));
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_3", "a/b")));

  absl::StatusOr<EndpointPage> a = store_->ListEndpoints(OfThread("a"), 10, "");
  ASSERT_OK(a);
  EXPECT_THAT(Ids(a->endpoints), ElementsAre("ep_1"));
  absl::StatusOr<EndpointPage> nul =
      store_->ListEndpoints(OfThread(with_nul), 10, "");
  ASSERT_OK(nul);
  EXPECT_THAT(Ids(nul->endpoints), ElementsAre("ep_2"));
}

TEST_F(LevelDbStoreTest, LoadEndpointsReturnsEveryEndpoint) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_2", "thread-b")));
  absl::StatusOr<std::vector<Endpoint>> endpoints = store_->LoadEndpoints();
  ASSERT_OK(endpoints);
  EXPECT_THAT(Ids(*endpoints), UnorderedElementsAre("ep_1", "ep_2"));
}

TEST_F(LevelDbStoreTest, DeleteEndpointRemovesItAndKeepsItsDeliveries) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  std::vector<Delivery> deliveries =
      Submit("evt_1", "thread-a", {"ep_1"}, kBaseMicros);
  Delivery ended = deliveries[0];
  ended.set_status(DELIVERY_STATUS_FAILED);
  ended.clear_next_attempt_time();
  ended.set_last_error("endpoint deleted");

  ASSERT_OK(store_->DeleteEndpoint("ep_1", {Change(ended)}));

  EXPECT_EQ(store_->GetEndpoint("ep_1").status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<EndpointPage> listed =
      store_->ListEndpoints(OfThread("thread-a"), 10, "");
  ASSERT_OK(listed);
  EXPECT_THAT(listed->endpoints, IsEmpty());
  absl::StatusOr<Delivery> delivery = store_->GetDelivery(ended.id());
  ASSERT_OK(delivery);
  EXPECT_EQ(delivery->status(), DELIVERY_STATUS_FAILED);
  absl::StatusOr<DeliveryPage> log =
      store_->ListDeliveries(ForEndpoint("ep_1"), 10, "");
  ASSERT_OK(log);
  EXPECT_THAT(Ids(log->deliveries), ElementsAre(ended.id()));
  absl::StatusOr<std::vector<QueuedDelivery>> queue = store_->LoadQueue();
  ASSERT_OK(queue);
  EXPECT_THAT(*queue, IsEmpty());
}

TEST_F(LevelDbStoreTest, DeleteMissingEndpointReturnsNotFound) {
  EXPECT_EQ(store_->DeleteEndpoint("ep_missing", {}).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(LevelDbStoreTest, DeleteEndpointKeepsItsStats) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  std::vector<Delivery> deliveries =
      Submit("evt_1", "thread-a", {"ep_1"}, kBaseMicros);
  ASSERT_OK(store_->UpdateDeliveries({Finished(deliveries[0], 200, 30)},
                                     Durability::kSynced));
  ASSERT_OK(store_->DeleteEndpoint("ep_1", {}));

  absl::StatusOr<AttemptCounts> counts = store_->GetAttemptCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 1);
}

// --- Events and deliveries
// ------------------------------------------------------

TEST_F(LevelDbStoreTest, InsertEventThenGetDeliveryJoinsPayload) {
  std::vector<Delivery> deliveries =
      Submit("evt_1", "thread-a", {"ep_1", "ep_2"}, kBaseMicros);

  absl::StatusOr<Delivery> delivery = store_->GetDelivery(deliveries[1].id());
  ASSERT_OK(delivery);
  EXPECT_EQ(delivery->endpoint_id(), "ep_2");
  EXPECT_EQ(delivery->payload(), R"({"event":"execution.completed"})");
  EXPECT_EQ(delivery->create_time().seconds(), kBaseMicros / 1'000'000);

  absl::StatusOr<EventRecord> event = store_->GetEvent("evt_1");
  ASSERT_OK(event);
  EXPECT_THAT(event->delivery_ids(),
              ElementsAre(deliveries[0].id(), deliveries[1].id()));
}

TEST_F(LevelDbStoreTest, GetMissingDeliveryAndEventReturnNotFound) {
  EXPECT_EQ(store_->GetDelivery("dlv_missing").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetEvent("evt_missing").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(LevelDbStoreTest, InsertEventQueuesNewDeliveries) {
  std::vector<Delivery> deliveries =
      Submit("evt_1", "thread-a", {"ep_1", "ep_2"}, kBaseMicros);

  absl::StatusOr<std::vector<QueuedDelivery>> queue = store_->LoadQueue();
  ASSERT_OK(queue);
  ASSERT_EQ(queue->size(), 2u);
  for (const QueuedDelivery& queued : *queue) {
    EXPECT_EQ(queued.due, absl::FromUnixMicros(kBaseMicros));
    EXPECT_FALSE(queued.manual);
    EXPECT_EQ(queued.delivery_id,
              absl::StrCat("dlv_evt_1_", queued.endpoint_id));
  }
}

TEST_F(LevelDbStoreTest, SuccessfulAttemptRemovesDeliveryFromQueue) {
  std::vector<Delivery> deliveries =
      Submit("evt_1", "thread-a", {"ep_1", "ep_2"}, kBaseMicros);
  ASSERT_OK(store_->UpdateDeliveries({Finished(deliveries[0], 204, 12)},
                                     Durability::kBuffered));

  absl::StatusOr<std::vector<QueuedDelivery>> queue = store_->LoadQueue();
  ASSERT_OK(queue);
  ASSERT_EQ(queue->size(), 1u);
  EXPECT_EQ((*queue)[0].delivery_id, deliveries[1].id());
  absl::StatusOr<Delivery> delivery = store_->GetDelivery(deliveries[0].id());
  ASSERT_OK(delivery);
  EXPECT_EQ(delivery->status(), DELIVERY_STATUS_SUCCESS);
  ASSERT_EQ(delivery->attempt_history_size(), 1);
  EXPECT_EQ(delivery->attempt_history(0).response_code(), 204);
}

TEST_F(LevelDbStoreTest, RetryingDeliveryIsQueuedForItsNextAttemptTime) {
  std::vector<Delivery> deliveries =
      Submit("evt_1", "thread-a", {"ep_1"}, kBaseMicros);
  DeliveryChange change = Finished(deliveries[0], 500, 40);
  const int64_t due = kBaseMicros + 5'000'000;
  *change.delivery.mutable_next_attempt_time() = ProtoTime(due);
  change.next_due = absl::FromUnixMicros(due);
  change.next_attempt_manual = true;
  ASSERT_OK(store_->UpdateDeliveries({change}, Durability::kSynced));

  absl::StatusOr<std::vector<QueuedDelivery>> queue = store_->LoadQueue();
  ASSERT_OK(queue);
  ASSERT_EQ(queue->size(), 1u);
  EXPECT_EQ((*queue)[0].delivery_id, deliveries[0].id());
  EXPECT_EQ((*queue)[0].endpoint_id, "ep_1");
  EXPECT_EQ((*queue)[0].due, absl::FromUnixMicros(due));
  EXPECT_TRUE((*queue)[0].manual);
}

TEST_F(LevelDbStoreTest, QueueFollowsTheChangeNotTheStatus) {
  std::vector<Delivery> deliveries =
      Submit("evt_1", "thread-a", {"ep_1", "ep_2"}, kBaseMicros);
  // The store decides nothing from a status: a RETRYING delivery the change
  // does not queue leaves the queue, a SUCCESS one it queues is queued.
  Delivery retrying = deliveries[0];
  retrying.set_status(DELIVERY_STATUS_RETRYING);
  Delivery succeeded = deliveries[1];
  succeeded.set_status(DELIVERY_STATUS_SUCCESS);
  DeliveryChange queued = Change(succeeded);
  const int64_t due = kBaseMicros + 7'000'000;
  queued.next_due = absl::FromUnixMicros(due);

  ASSERT_OK(store_->UpdateDeliveries({Change(retrying), queued},
                                     Durability::kSynced));

  absl::StatusOr<std::vector<QueuedDelivery>> queue = store_->LoadQueue();
  ASSERT_OK(queue);
  ASSERT_THAT(*queue, SizeIs(1));
  EXPECT_EQ((*queue)[0].delivery_id, succeeded.id());
  EXPECT_EQ((*queue)[0].due, absl::FromUnixMicros(due));
}

TEST_F(LevelDbStoreTest, InsertEventQueuesEveryNewDeliveryWhateverItsStatus) {
  Delivery delivery =
      MakeDelivery("dlv_1", "evt_1", "ep_1", "thread-a", kBaseMicros);
  delivery.set_status(DELIVERY_STATUS_FAILED);
  *delivery.mutable_next_attempt_time() = ProtoTime(kBaseMicros + 3);
  ASSERT_OK(store_->InsertEvent(MakeEvent("evt_1", "thread-a", {delivery}),
                                {delivery}));

  absl::StatusOr<std::vector<QueuedDelivery>> queue = store_->LoadQueue();
  ASSERT_OK(queue);
  ASSERT_THAT(*queue, SizeIs(1));
  EXPECT_EQ((*queue)[0].due, absl::FromUnixMicros(kBaseMicros + 3));
}

TEST_F(LevelDbStoreTest, UpdateDeliveriesDoesNotStorePayload) {
  std::vector<Delivery> deliveries =
      Submit("evt_1", "thread-a", {"ep_1"}, kBaseMicros);
  DeliveryChange change = Finished(deliveries[0], 200, 5);
  change.delivery.set_payload("a different body");
  ASSERT_OK(store_->UpdateDeliveries({change}, Durability::kSynced));

  absl::StatusOr<Delivery> delivery = store_->GetDelivery(deliveries[0].id());
  ASSERT_OK(delivery);
  EXPECT_EQ(delivery->payload(), R"({"event":"execution.completed"})");
}

TEST_F(LevelDbStoreTest, FindSubmissionReturnsFirstResponse) {
  std::vector<Delivery> deliveries = {
      MakeDelivery("dlv_1", "evt_1", "ep_1", "thread-a", kBaseMicros)};
  ASSERT_OK(store_->InsertEvent(
      MakeEvent("evt_1", "thread-a", deliveries, "key-1"), deliveries));

  absl::StatusOr<SubmitEventResponse> found =
      store_->FindSubmission(7, "key-1");
  ASSERT_OK(found);
  EXPECT_EQ(found->event_id(), "evt_1");
  EXPECT_THAT(found->delivery_ids(), ElementsAre("dlv_1"));
}

TEST_F(LevelDbStoreTest, FindSubmissionIsPerUser) {
  std::vector<Delivery> deliveries = {
      MakeDelivery("dlv_1", "evt_1", "ep_1", "thread-a", kBaseMicros)};
  ASSERT_OK(store_->InsertEvent(
      MakeEvent("evt_1", "thread-a", deliveries, "key-1"), deliveries));

  EXPECT_EQ(store_->FindSubmission(8, "key-1").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->FindSubmission(7, "key-2").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(LevelDbStoreTest, IdempotencyRecordIsFoundAfterReopen) {
  std::vector<Delivery> deliveries = {
      MakeDelivery("dlv_1", "evt_1", "ep_1", "thread-a", kBaseMicros)};
  ASSERT_OK(store_->InsertEvent(
      MakeEvent("evt_1", "thread-a", deliveries, "key-1"), deliveries));
  Reopen();

  absl::StatusOr<SubmitEventResponse> found =
      store_->FindSubmission(7, "key-1");
  ASSERT_OK(found);
  EXPECT_EQ(found->event_id(), "evt_1");
}

// --- Stats
// ----------------------------------------------------------------------

TEST_F(LevelDbStoreTest, CountsAccumulateCountedAttemptsOnly) {
  std::vector<Delivery> deliveries =
      Submit("evt_1", "thread-a", {"ep_1"}, kBaseMicros);
  Delivery test = MakeDelivery("dlv_test", "evt_test", "ep_1", "", kBaseMicros);
  test.set_test(true);
  ASSERT_OK(store_->InsertEvent(MakeEvent("evt_test", "", {test}), {test}));

  DeliveryChange failed = Finished(deliveries[0], 500, 100);
  ASSERT_OK(store_->UpdateDeliveries({failed}, Durability::kBuffered));
  // The domain counts no attempt of a test delivery.
  DeliveryChange uncounted = Finished(test, 500, 1000);
  uncounted.counted_attempt.reset();
  ASSERT_OK(store_->UpdateDeliveries(
      {Finished(failed.delivery, 200, 50), uncounted}, Durability::kSynced));
  // Nor a change without a finished attempt (a manual retry queued).
  ASSERT_OK(store_->UpdateDeliveries({Queued(test)}, Durability::kBuffered));

  absl::StatusOr<AttemptCounts> counts = store_->GetAttemptCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 2);
  EXPECT_EQ(counts->successes, 1);
  EXPECT_EQ(counts->response_time_ms_sum, 150);
}

TEST_F(LevelDbStoreTest, CountsFollowTheChangeNotTheResponseCode) {
  std::vector<Delivery> deliveries =
      Submit("evt_1", "thread-a", {"ep_1"}, kBaseMicros);
  // The store judges no response: what the domain counts is what it keeps.
  DeliveryChange server_error = Finished(deliveries[0], 500, 7);
  server_error.counted_attempt->success = true;
  DeliveryChange not_found = Finished(deliveries[0], 404, 9);
  not_found.counted_attempt->success = true;
  DeliveryChange no_content = Finished(deliveries[0], 204, 11);
  no_content.counted_attempt->success = false;

  ASSERT_OK(store_->UpdateDeliveries({server_error, not_found, no_content},
                                     Durability::kSynced));

  absl::StatusOr<AttemptCounts> counts = store_->GetAttemptCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 3);
  EXPECT_EQ(counts->successes, 2);
  EXPECT_EQ(counts->response_time_ms_sum, 27);
}

TEST_F(LevelDbStoreTest, CountsOfEndpointWithoutAttemptsAreZero) {
  absl::StatusOr<AttemptCounts> counts = store_->GetAttemptCounts("ep_none");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 0);
  EXPECT_EQ(counts->successes, 0);
  EXPECT_EQ(counts->response_time_ms_sum, 0);
}

TEST_F(LevelDbStoreTest, StatsRecordsOfEarlierReleasesReadAndStayReadable) {
  store_.reset();
  const auto open_raw = [this] {
    leveldb::DB* raw = nullptr;
    EXPECT_TRUE(leveldb::DB::Open(leveldb::Options(), path_, &raw).ok());
    return std::unique_ptr<leveldb::DB>(raw);
  };
  {
    // As the release that computed rates in the store wrote it.
    storage::StatsRecord old;
    old.set_total(4);
    old.set_successful(3);
    old.set_failed(1);
    old.set_response_time_ms_sum(100);
    ASSERT_TRUE(
        open_raw()
            ->Put(leveldb::WriteOptions(), "st/ep_1", old.SerializeAsString())
            .ok());
  }
  Reopen();
  absl::StatusOr<AttemptCounts> counts = store_->GetAttemptCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 4);
  EXPECT_EQ(counts->successes, 3);
  EXPECT_EQ(counts->response_time_ms_sum, 100);

  std::vector<Delivery> deliveries =
      Submit("evt_1", "thread-a", {"ep_1"}, kBaseMicros);
  ASSERT_OK(store_->UpdateDeliveries({Finished(deliveries[0], 500, 20)},
                                     Durability::kSynced));
  store_.reset();

  // An earlier release reading it back finds every field it read.
  std::string value;
  ASSERT_TRUE(open_raw()->Get(leveldb::ReadOptions(), "st/ep_1", &value).ok());
  storage::StatsRecord now;
  ASSERT_TRUE(now.ParseFromString(value));
  EXPECT_EQ(now.total(), 5);
  EXPECT_EQ(now.successful(), 3);
  EXPECT_EQ(now.failed(), 2);
  EXPECT_EQ(now.response_time_ms_sum(), 120);
}

TEST_F(LevelDbStoreTest, ConcurrentUpdatesGiveExactCounts) {
  constexpr int kThreads = 4;
  constexpr int kUpdatesPerThread = 250;
  std::vector<Delivery> deliveries =
      Submit("evt_1", "thread-a", {"ep_1", "ep_2"}, kBaseMicros);

  std::vector<std::thread> threads;
  std::atomic<int> errors = 0;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kUpdatesPerThread; ++i) {
        // Each batch counts one attempt on each endpoint.
        const int code = (i % 2 == 0) ? 200 : 503;
        absl::Status status =
            store_->UpdateDeliveries({Finished(deliveries[0], code, 10),
                                      Finished(deliveries[1], 200, t)},
                                     Durability::kBuffered);
        if (!status.ok()) ++errors;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  EXPECT_EQ(errors.load(), 0);
  absl::StatusOr<AttemptCounts> one = store_->GetAttemptCounts("ep_1");
  ASSERT_OK(one);
  EXPECT_EQ(one->attempts, kThreads * kUpdatesPerThread);
  EXPECT_EQ(one->successes, kThreads * kUpdatesPerThread / 2);
  EXPECT_EQ(one->response_time_ms_sum, 10 * kThreads * kUpdatesPerThread);
  absl::StatusOr<AttemptCounts> two = store_->GetAttemptCounts("ep_2");
  ASSERT_OK(two);
  EXPECT_EQ(two->attempts, kThreads * kUpdatesPerThread);
  EXPECT_EQ(two->successes, kThreads * kUpdatesPerThread);
  // t = 0..3, kUpdatesPerThread times each.
  EXPECT_EQ(two->response_time_ms_sum, (0 + 1 + 2 + 3) * kUpdatesPerThread);
}

// --- Listing deliveries
// -----------------------------------------------------------

class ListDeliveriesTest : public LevelDbStoreTest {
 protected:
  void SetUp() override {
    LevelDbStoreTest::SetUp();
    // Oldest first: e1 (thread-a: ep_1, ep_2), e2 (thread-b: ep_3),
    // e3 (thread-a: ep_1, user 9), e4 (thread-a: ep_2).
    Submit("e1", "thread-a", {"ep_1", "ep_2"}, kBaseMicros + 1);
    Submit("e2", "thread-b", {"ep_3"}, kBaseMicros + 2);
    Submit("e3", "thread-a", {"ep_1"}, kBaseMicros + 3, /*user_id=*/9);
    Submit("e4", "thread-a", {"ep_2"}, kBaseMicros + 4);
  }

  std::vector<std::string> ListAll(const DeliveryFilter& filter,
                                   int page_size) {
    std::vector<std::string> ids;
    std::string token;
    for (int pages = 0; pages < 100; ++pages) {
      absl::StatusOr<DeliveryPage> page =
          store_->ListDeliveries(filter, page_size, token);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      EXPECT_LE(page->deliveries.size(), static_cast<size_t>(page_size));
      for (const Delivery& delivery : page->deliveries) {
        ids.push_back(delivery.id());
      }
      token = page->next_page_token;
      if (token.empty()) break;
    }
    EXPECT_EQ(token, "") << "pagination did not end";
    return ids;
  }
};

TEST_F(ListDeliveriesTest, ListsAllNewestFirst) {
  EXPECT_THAT(ListAll({}, 50),
              ElementsAre("dlv_e4_ep_2", "dlv_e3_ep_1", "dlv_e2_ep_3",
                          "dlv_e1_ep_1", "dlv_e1_ep_2"));
}

TEST_F(ListDeliveriesTest, PagesNewestFirstWithPageSizeTwo) {
  absl::StatusOr<DeliveryPage> first = store_->ListDeliveries({}, 2, "");
  ASSERT_OK(first);
  EXPECT_THAT(Ids(first->deliveries),
              ElementsAre("dlv_e4_ep_2", "dlv_e3_ep_1"));
  EXPECT_THAT(ListAll({}, 2),
              ElementsAre("dlv_e4_ep_2", "dlv_e3_ep_1", "dlv_e2_ep_3",
                          "dlv_e1_ep_1", "dlv_e1_ep_2"));
}

TEST_F(ListDeliveriesTest, FiltersByEndpoint) {
  EXPECT_THAT(ListAll(ForEndpoint("ep_1"), 1),
              ElementsAre("dlv_e3_ep_1", "dlv_e1_ep_1"));
}

TEST_F(ListDeliveriesTest, FiltersByThread) {
  EXPECT_THAT(
      ListAll(ForThread("thread-a"), 2),
      ElementsAre("dlv_e4_ep_2", "dlv_e3_ep_1", "dlv_e1_ep_1", "dlv_e1_ep_2"));
}

TEST_F(ListDeliveriesTest, FiltersByEndpointAndThread) {
  EXPECT_THAT(ListAll(ForEndpoint("ep_3", "thread-a"), 10), IsEmpty());
  EXPECT_THAT(ListAll(ForEndpoint("ep_3", "thread-b"), 10),
              ElementsAre("dlv_e2_ep_3"));
}

TEST_F(ListDeliveriesTest, FiltersByStatus) {
  absl::StatusOr<Delivery> delivery = store_->GetDelivery("dlv_e1_ep_2");
  ASSERT_OK(delivery);
  ASSERT_OK(store_->UpdateDeliveries({Finished(*delivery, 200, 1)},
                                     Durability::kSynced));

  EXPECT_THAT(ListAll(ForStatus(DELIVERY_STATUS_SUCCESS), 2),
              ElementsAre("dlv_e1_ep_2"));
  EXPECT_THAT(ListAll(ForThread("thread-a", DELIVERY_STATUS_PENDING), 2),
              ElementsAre("dlv_e4_ep_2", "dlv_e3_ep_1", "dlv_e1_ep_1"));
}

TEST_F(ListDeliveriesTest, FiltersByUser) {
  EXPECT_THAT(ListAll(ForUser(9), 2), ElementsAre("dlv_e3_ep_1"));
}

TEST_F(ListDeliveriesTest, OmitsPayloadAndAttemptHistory) {
  absl::StatusOr<Delivery> delivery = store_->GetDelivery("dlv_e4_ep_2");
  ASSERT_OK(delivery);
  ASSERT_OK(store_->UpdateDeliveries({Finished(*delivery, 500, 1)},
                                     Durability::kSynced));

  absl::StatusOr<DeliveryPage> page = store_->ListDeliveries({}, 1, "");
  ASSERT_OK(page);
  ASSERT_EQ(page->deliveries.size(), 1u);
  EXPECT_EQ(page->deliveries[0].id(), "dlv_e4_ep_2");
  EXPECT_EQ(page->deliveries[0].attempts(), 1);
  EXPECT_EQ(page->deliveries[0].payload(), "");
  EXPECT_EQ(page->deliveries[0].attempt_history_size(), 0);
}

TEST_F(ListDeliveriesTest, RejectsMalformedPageToken) {
  EXPECT_EQ(store_->ListDeliveries({}, 2, "!!").status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<DeliveryPage> page =
      store_->ListDeliveries(ForEndpoint("ep_1"), 1, "");
  ASSERT_OK(page);
  ASSERT_FALSE(page->next_page_token.empty());
  EXPECT_EQ(
      store_->ListDeliveries({}, 2, page->next_page_token).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(ListDeliveriesTest, BoundsTheRowsOneCallExamines) {
  absl::StatusOr<Delivery> oldest = store_->GetDelivery("dlv_e1_ep_2");
  ASSERT_OK(oldest);
  ASSERT_OK(store_->UpdateDeliveries({Finished(*oldest, 200, 1)},
                                     Durability::kSynced));
  LevelDbStoreOptions options;
  options.max_scan_per_list = 2;
  Reopen(options);

  // Only the oldest of five rows matches: the first call examines two rows,
  // finds nothing and hands back a token that continues the scan.
  absl::StatusOr<DeliveryPage> first =
      store_->ListDeliveries(ForStatus(DELIVERY_STATUS_SUCCESS), 10, "");
  ASSERT_OK(first);
  EXPECT_THAT(first->deliveries, IsEmpty());
  EXPECT_FALSE(first->next_page_token.empty());
  EXPECT_THAT(ListAll(ForStatus(DELIVERY_STATUS_SUCCESS), 10),
              ElementsAre("dlv_e1_ep_2"));
}

// --- Durability and opening
// ----------------------------------------------------------

TEST_F(LevelDbStoreTest, CloseAndReopenKeepsEverything) {
  Endpoint endpoint = MakeEndpoint("ep_1", "thread-a");
  endpoint.set_secret("s3cret");
  ASSERT_OK(store_->PutEndpoint(endpoint));
  std::vector<Delivery> deliveries =
      Submit("evt_1", "thread-a", {"ep_1"}, kBaseMicros);
  ASSERT_OK(store_->UpdateDeliveries({Finished(deliveries[0], 500, 20)},
                                     Durability::kBuffered));
  Reopen();

  absl::StatusOr<Endpoint> got = store_->GetEndpoint("ep_1");
  ASSERT_OK(got);
  EXPECT_EQ(got->secret(), "s3cret");
  absl::StatusOr<Delivery> delivery = store_->GetDelivery(deliveries[0].id());
  ASSERT_OK(delivery);
  EXPECT_EQ(delivery->status(), DELIVERY_STATUS_RETRYING);
  EXPECT_EQ(delivery->payload(), R"({"event":"execution.completed"})");
  absl::StatusOr<std::vector<QueuedDelivery>> queue = store_->LoadQueue();
  ASSERT_OK(queue);
  EXPECT_EQ(queue->size(), 1u);
  absl::StatusOr<AttemptCounts> counts = store_->GetAttemptCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 1);
  EXPECT_EQ(counts->successes, 0);
  absl::StatusOr<DeliveryPage> log =
      store_->ListDeliveries(ForThread("thread-a"), 10, "");
  ASSERT_OK(log);
  EXPECT_EQ(log->deliveries.size(), 1u);
}

TEST_F(LevelDbStoreTest, OpenCreatesMissingDirectories) {
  const std::string nested = dir_.Sub("a/b/c");
  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(nested);
  ASSERT_OK(store);
  EXPECT_TRUE(std::filesystem::exists(nested + "/CURRENT"));
}

TEST_F(LevelDbStoreTest, SecondOpenOfSameDirectoryFailsWithFailedPrecondition) {
  absl::StatusOr<std::unique_ptr<LevelDbStore>> second =
      LevelDbStore::Open(path_);
  ASSERT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition)
      << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("in use"));
  EXPECT_THAT(second.status().message(), HasSubstr("lock"));
  EXPECT_THAT(second.status().message(), HasSubstr(path_));
  // The first store is unaffected.
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
}

TEST_F(LevelDbStoreTest, OpenOfDirectoryLockedByAnotherProcessFails) {
  store_.reset();
  // A child process holds the LOCK file's POSIX lock, as a running webhookd
  // would.
  int ready[2];
  int release[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(release), 0);
  const std::string lock_path = path_ + "/LOCK";
  const pid_t child = fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    alarm(60);  // Never outlive a parent that failed to release us.
    close(ready[0]);
    close(release[1]);
    int fd = open(lock_path.c_str(), O_RDWR | O_CREAT, 0644);
    struct flock lock = {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    char ok = (fd >= 0 && fcntl(fd, F_SETLK, &lock) == 0) ? '1' : '0';
    (void)!write(ready[1], &ok, 1);
    char ignored;
    (void)!read(release[0], &ignored, 1);  // Until the parent is done.
    _exit(0);
  }
  close(ready[1]);
  close(release[0]);
  char locked = '0';
  EXPECT_EQ(read(ready[0], &locked, 1), 1);
  EXPECT_EQ(locked, '1');

  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(path_);

  const char done = 'x';
  EXPECT_EQ(write(release[1], &done, 1), 1);
  close(release[1]);
  int wait_status = 0;
  EXPECT_EQ(waitpid(child, &wait_status, 0), child);
  close(ready[0]);
  ASSERT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition)
      << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("another webhookd process"));
  // Once the other process is gone, the directory opens.
  Reopen();
}

TEST_F(LevelDbStoreTest, OpenWithCorruptedCurrentFileReturnsDataLoss) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  store_.reset();
  OverwriteWithGarbage(path_ + "/CURRENT");

  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("corrupt"));
}

TEST_F(LevelDbStoreTest, OpenWithCorruptedManifestReturnsDataLoss) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  store_.reset();
  const std::filesystem::path manifest = FindFile(path_, "MANIFEST-");
  ASSERT_FALSE(manifest.empty());
  OverwriteWithGarbage(manifest);

  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("corrupt"));
}

TEST_F(LevelDbStoreTest, OpenWithBitFlipInLogReturnsDataLoss) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  store_.reset();
  const std::filesystem::path log = FindFile(path_, ".log");
  ASSERT_FALSE(log.empty());
  ASSERT_GT(std::filesystem::file_size(log), 40u);
  {
    // Inside the payload of the first record (after its 7-byte header), so
    // its checksum no longer matches.
    std::fstream file(log, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(20);
    char byte = 0;
    file.get(byte);
    file.seekp(20);
    file.put(static_cast<char>(byte ^ 0x40));
  }

  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
}

TEST_F(LevelDbStoreTest, ReadOfCorruptedTableReturnsDataLoss) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  // Reopening moves the log into a table file.
  Reopen();
  store_.reset();
  const std::filesystem::path table = FindFile(path_, ".ldb");
  ASSERT_FALSE(table.empty());
  OverwriteWithGarbage(table);

  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(path_);
  absl::Status status = store.status();
  if (store.ok()) status = (*store)->GetEndpoint("ep_1").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(status.message(), HasSubstr("orrupt"));
}

TEST_F(LevelDbStoreTest, OpenOfUnknownSchemaVersionFails) {
  store_.reset();
  {
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(leveldb::Options(), path_, &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    ASSERT_TRUE(
        db->Put(leveldb::WriteOptions(), "meta/schema_version", "99").ok());
  }
  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition)
      << store.status();
}

// Fails Sync of every file once armed, as a full or failing disk would.
class FailingSyncEnv : public leveldb::EnvWrapper {
 public:
  FailingSyncEnv() : EnvWrapper(leveldb::Env::Default()) {}

  void FailSyncs() { fail_syncs_ = true; }

  leveldb::Status NewWritableFile(const std::string& name,
                                  leveldb::WritableFile** result) override {
    leveldb::WritableFile* file = nullptr;
    leveldb::Status s = target()->NewWritableFile(name, &file);
    if (s.ok())
      *result =
          new File(std::unique_ptr<leveldb::WritableFile>(file), fail_syncs_);
    return s;
  }

 private:
  class File : public leveldb::WritableFile {
   public:
    File(std::unique_ptr<leveldb::WritableFile> file,
         const std::atomic<bool>& fail_syncs)
        : file_(std::move(file)), fail_syncs_(fail_syncs) {}
    leveldb::Status Append(const leveldb::Slice& data) override {
      return file_->Append(data);
    }
    leveldb::Status Close() override { return file_->Close(); }
    leveldb::Status Flush() override { return file_->Flush(); }
    leveldb::Status Sync() override {
      if (fail_syncs_) return leveldb::Status::IOError("injected sync failure");
      return file_->Sync();
    }

   private:
    std::unique_ptr<leveldb::WritableFile> file_;
    const std::atomic<bool>& fail_syncs_;
  };

  std::atomic<bool> fail_syncs_ = false;
};

TEST_F(LevelDbStoreTest, FailedSyncReturnsUnavailable) {
  store_.reset();
  FailingSyncEnv env;
  LevelDbStoreOptions options;
  options.env = &env;
  Reopen(options);
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));

  env.FailSyncs();
  absl::Status status = store_->PutEndpoint(MakeEndpoint("ep_2", "thread-a"));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("injected sync failure"));
  store_.reset();  // Before env goes away.
}

// --- Retention
// ----------------------------------------------------------------

constexpr int64_t kHourMicros = 3600LL * 1'000'000;

TEST_F(LevelDbStoreTest, PruneRemovesOldFinishedDeliveriesWithTheirIndexes) {
  const int64_t old = kBaseMicros - 48 * kHourMicros;
  std::vector<Delivery> pruned = Submit("ev_old", "thread-a", {"ep_1"}, old);
  std::vector<Delivery> kept =
      Submit("ev_new", "thread-a", {"ep_1"}, kBaseMicros);
  ASSERT_OK(store_->UpdateDeliveries(
      {Finished(pruned[0], 200, 5), Finished(kept[0], 200, 5)},
      Durability::kSynced));
  absl::StatusOr<AttemptCounts> counts_before =
      store_->GetAttemptCounts("ep_1");
  ASSERT_OK(counts_before);

  absl::StatusOr<PruneResult> result =
      store_->PruneBefore(absl::FromUnixMicros(kBaseMicros - kHourMicros),
                          absl::FromUnixMicros(kBaseMicros - kHourMicros), 100);

  ASSERT_OK(result);
  EXPECT_EQ(result->deliveries, 1u);
  EXPECT_EQ(result->events, 1u);
  EXPECT_FALSE(result->more);
  EXPECT_EQ(store_->GetDelivery(pruned[0].id()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetEvent("ev_old").status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_OK(store_->GetDelivery(kept[0].id()));
  // No list shows it, and none trips over a dangling index entry.
  for (const DeliveryFilter& filter :
       {DeliveryFilter(), ForEndpoint("ep_1"), ForThread("thread-a")}) {
    absl::StatusOr<DeliveryPage> page = store_->ListDeliveries(filter, 10, "");
    ASSERT_OK(page);
    EXPECT_THAT(Ids(page->deliveries), ElementsAre(kept[0].id()));
  }
  // Stats are cumulative: they still count the pruned attempt.
  absl::StatusOr<AttemptCounts> counts = store_->GetAttemptCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 2);
  EXPECT_EQ(counts->attempts, counts_before->attempts);
}

TEST_F(LevelDbStoreTest, PruneNeverRemovesQueuedDeliveries) {
  const int64_t old = kBaseMicros - 48 * kHourMicros;
  std::vector<Delivery> queued = Submit("ev_1", "thread-a", {"ep_1"}, old);
  Delivery retrying = queued[0];
  retrying.set_status(DELIVERY_STATUS_RETRYING);
  ASSERT_OK(store_->UpdateDeliveries({Queued(retrying)}, Durability::kSynced));

  absl::StatusOr<PruneResult> result =
      store_->PruneBefore(absl::FromUnixMicros(kBaseMicros),
                          absl::FromUnixMicros(kBaseMicros), 100);

  ASSERT_OK(result);
  EXPECT_EQ(result->deliveries, 0u);
  ASSERT_OK(store_->GetDelivery(queued[0].id()));
  absl::StatusOr<std::vector<QueuedDelivery>> queue = store_->LoadQueue();
  ASSERT_OK(queue);
  EXPECT_THAT(*queue, SizeIs(1));
}

TEST_F(LevelDbStoreTest, PruneKeepsExactlyTheQueuedDeliveries) {
  const int64_t old = kBaseMicros - 48 * kHourMicros;
  std::vector<Delivery> deliveries =
      Submit("ev_1", "thread-a", {"ep_1", "ep_2"}, old);
  // Whatever their status says: the queue is what the domain last stored.
  Delivery queued = deliveries[0];
  queued.set_status(DELIVERY_STATUS_SUCCESS);
  DeliveryChange still_queued = Change(queued);
  still_queued.next_due = absl::FromUnixMicros(kBaseMicros);
  ASSERT_OK(store_->UpdateDeliveries({still_queued, Change(deliveries[1])},
                                     Durability::kSynced));

  absl::StatusOr<PruneResult> result =
      store_->PruneBefore(absl::FromUnixMicros(kBaseMicros),
                          absl::FromUnixMicros(kBaseMicros), 100);

  ASSERT_OK(result);
  EXPECT_EQ(result->deliveries, 1u);
  ASSERT_OK(store_->GetDelivery(deliveries[0].id()));
  EXPECT_EQ(store_->GetDelivery(deliveries[1].id()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(LevelDbStoreTest, PruneKeepsEventUntilItsLastDeliveryGoes) {
  const int64_t old = kBaseMicros - 48 * kHourMicros;
  std::vector<Delivery> deliveries =
      Submit("ev_1", "thread-a", {"ep_1", "ep_2"}, old);
  // One finished, one still queued.
  ASSERT_OK(store_->UpdateDeliveries({Finished(deliveries[0], 200, 5)},
                                     Durability::kSynced));

  ASSERT_OK(store_->PruneBefore(absl::FromUnixMicros(kBaseMicros),
                                absl::FromUnixMicros(kBaseMicros), 100));
  ASSERT_OK(store_->GetDelivery(deliveries[1].id()));  // Joins the event.

  ASSERT_OK(store_->UpdateDeliveries({Finished(deliveries[1], 200, 5)},
                                     Durability::kSynced));
  absl::StatusOr<PruneResult> result =
      store_->PruneBefore(absl::FromUnixMicros(kBaseMicros),
                          absl::FromUnixMicros(kBaseMicros), 100);
  ASSERT_OK(result);
  EXPECT_EQ(result->deliveries, 1u);
  EXPECT_EQ(result->events, 1u);
  EXPECT_EQ(store_->GetEvent("ev_1").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(LevelDbStoreTest, PruneStopsAtMaxRecordsOldestFirst) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    std::vector<Delivery> d =
        Submit(absl::StrCat("ev_", i), "thread-a", {"ep_1"},
               kBaseMicros - (10 - i) * kHourMicros);
    ASSERT_OK(store_->UpdateDeliveries({Finished(d[0], 200, 5)},
                                       Durability::kSynced));
    ids.push_back(d[0].id());
  }
  const absl::Time cutoff = absl::FromUnixMicros(kBaseMicros);

  absl::StatusOr<PruneResult> first = store_->PruneBefore(cutoff, cutoff, 2);
  ASSERT_OK(first);
  EXPECT_EQ(first->deliveries, 2u);
  EXPECT_TRUE(first->more);
  EXPECT_EQ(store_->GetDelivery(ids[0]).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetDelivery(ids[1]).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_OK(store_->GetDelivery(ids[2]));

  absl::StatusOr<PruneResult> rest = store_->PruneBefore(cutoff, cutoff, 10);
  ASSERT_OK(rest);
  EXPECT_EQ(rest->deliveries, 3u);
  EXPECT_FALSE(rest->more);
}

TEST_F(LevelDbStoreTest, PruneRemovesOldIdempotencyRecordsAndLoneEvents) {
  // An event that had no endpoint, so no delivery, with a key.
  EventRecord lone = MakeEvent("ev_lone", "thread-a", {}, "key-1");
  lone.set_create_time_unix_micros(kBaseMicros - 48 * kHourMicros);
  ASSERT_OK(store_->InsertEvent(lone, {}));
  EventRecord recent = MakeEvent("ev_recent", "thread-a", {}, "key-2");
  ASSERT_OK(store_->InsertEvent(recent, {}));

  absl::StatusOr<PruneResult> result =
      store_->PruneBefore(absl::FromUnixMicros(kBaseMicros - kHourMicros),
                          absl::FromUnixMicros(kBaseMicros - kHourMicros), 100);

  ASSERT_OK(result);
  EXPECT_EQ(result->events, 1u);
  EXPECT_EQ(result->idempotency_records, 1u);
  EXPECT_EQ(store_->GetEvent("ev_lone").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->FindSubmission(7, "key-1").status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_OK(store_->GetEvent("ev_recent"));
  ASSERT_OK(store_->FindSubmission(7, "key-2"));
}

// --- Write faults
// --------------------------------------------------------------

using webhookd::testing::FaultInjectionEnv;

class LevelDbStoreFaultTest : public LevelDbStoreTest {
 protected:
  void SetUp() override {
    options_.env = &env_;
    Reopen(options_);
  }
  void TearDown() override { store_.reset(); }  // Before env_ goes away.

  FaultInjectionEnv env_;
  LevelDbStoreOptions options_;
};

TEST_F(LevelDbStoreFaultTest, FullDiskFailsWritesWithUnavailable) {
  env_.SetWriteFault(FaultInjectionEnv::Fault::kNoSpace);

  Delivery delivery =
      MakeDelivery("dlv_1", "ev_1", "ep_1", "thread-a", kBaseMicros);
  absl::Status status = store_->InsertEvent(
      MakeEvent("ev_1", "thread-a", {delivery}), {delivery});

  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("No space left on device"));
  // And every write after it, until the disk works again.
  status = store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a"));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_GT(env_.injected_failures(), 0);
}

TEST_F(LevelDbStoreFaultTest, WritesWorkAgainOnceTheDiskRecovers) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  env_.SetWriteFault(FaultInjectionEnv::Fault::kIoError);
  EXPECT_EQ(store_->PutEndpoint(MakeEndpoint("ep_2", "thread-a")).code(),
            absl::StatusCode::kUnavailable);
  // Reads may fail while the database cannot be reopened, but never crash.
  (void)store_->GetEndpoint("ep_1");

  env_.SetWriteFault(FaultInjectionEnv::Fault::kNone);

  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_3", "thread-a")));
  ASSERT_OK(store_->GetEndpoint("ep_1"));
  ASSERT_OK(store_->GetEndpoint("ep_3"));
  EXPECT_EQ(store_->GetEndpoint("ep_2").status().code(),
            absl::StatusCode::kNotFound);
  // What was written after the fault survives a restart: the log is intact
  // and passes the paranoid checks.
  Reopen(options_);
  ASSERT_OK(store_->GetEndpoint("ep_1"));
  ASSERT_OK(store_->GetEndpoint("ep_3"));
}

TEST_F(LevelDbStoreFaultTest, FailedBufferedWriteIsRetriableAfterRecovery) {
  std::vector<Delivery> deliveries =
      Submit("ev_1", "thread-a", {"ep_1"}, kBaseMicros);
  env_.SetWriteFault(FaultInjectionEnv::Fault::kNoSpace);
  EXPECT_EQ(store_
                ->UpdateDeliveries({Finished(deliveries[0], 200, 5)},
                                   Durability::kBuffered)
                .code(),
            absl::StatusCode::kUnavailable);
  env_.SetWriteFault(FaultInjectionEnv::Fault::kNone);

  ASSERT_OK(store_->UpdateDeliveries({Finished(deliveries[0], 200, 5)},
                                     Durability::kBuffered));

  absl::StatusOr<Delivery> delivery = store_->GetDelivery(deliveries[0].id());
  ASSERT_OK(delivery);
  EXPECT_EQ(delivery->status(), DELIVERY_STATUS_SUCCESS);
  absl::StatusOr<AttemptCounts> counts = store_->GetAttemptCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 1) << "the failed write counted none";
}

// --- Repair
// ---------------------------------------------------------------------

// Rules like the domain's (server/delivery/retry_policy.h), which the
// storage tests do not link.
RepairRules DomainRules() {
  RepairRules rules;
  rules.next_due = [](const Delivery& delivery) -> std::optional<absl::Time> {
    if (delivery.status() != DELIVERY_STATUS_PENDING &&
        delivery.status() != DELIVERY_STATUS_RETRYING) {
      return std::nullopt;
    }
    return FromProtoTime(delivery.next_attempt_time());
  };
  rules.end = [](Delivery delivery, const std::string& why) {
    delivery.set_status(DELIVERY_STATUS_FAILED);
    delivery.set_last_error(why);
    delivery.clear_next_attempt_time();
    return delivery;
  };
  return rules;
}

TEST_F(LevelDbStoreTest, RepairSalvagesCorruptedLogAndReportsLosses) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  for (int i = 0; i < 20; ++i) {
    Submit(absl::StrCat("ev_", i), "thread-a", {"ep_1"}, kBaseMicros + i);
  }
  store_.reset();
  const std::filesystem::path log = FindFile(path_, ".log");
  ASSERT_FALSE(log.empty());
  {
    // Damage the middle of the log: the records there are lost.
    const auto size = std::filesystem::file_size(log);
    std::fstream file(log, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(size / 2));
    file << std::string(64, '\x5a');
  }
  ASSERT_EQ(LevelDbStore::Open(path_).status().code(),
            absl::StatusCode::kDataLoss);

  absl::StatusOr<RepairReport> report =
      RepairLevelDbStore(path_, DomainRules());

  ASSERT_OK(report);
  EXPECT_FALSE(report->readable_before);
  EXPECT_THAT(report->error_before, HasSubstr("corrupt"));
  EXPECT_GT(report->deliveries_after, 0u);
  EXPECT_LT(report->deliveries_after, 20u);
  const std::string text = report->ToString();
  // LevelDB's own account names the damaged record it skipped.
  EXPECT_THAT(text, HasSubstr("ignoring Corruption"));
  EXPECT_THAT(text, HasSubstr("After the repair"));
  // The repaired database opens with paranoid checks and lists cleanly.
  Reopen();
  ASSERT_OK(store_->GetEndpoint("ep_1"));
  absl::StatusOr<DeliveryPage> page =
      store_->ListDeliveries(DeliveryFilter(), 1000, "");
  ASSERT_OK(page);
  EXPECT_EQ(page->deliveries.size(), report->deliveries_after);
  for (const Delivery& delivery : page->deliveries) {
    ASSERT_OK(store_->GetDelivery(delivery.id()));
  }
}

TEST_F(LevelDbStoreTest, RepairFixesRecordsLeftPointingAtLostOnes) {
  std::vector<Delivery> no_event =
      Submit("ev_1", "thread-a", {"ep_1"}, kBaseMicros);
  std::vector<Delivery> lost =
      Submit("ev_2", "thread-a", {"ep_1"}, kBaseMicros);
  store_.reset();
  {
    // As if LevelDB's repair had dropped these two records.
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(leveldb::Options(), path_, &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    ASSERT_TRUE(db->Delete(leveldb::WriteOptions(), "ev/ev_1").ok());
    ASSERT_TRUE(db->Delete(leveldb::WriteOptions(), "d/" + lost[0].id()).ok());
  }

  absl::StatusOr<RepairReport> report =
      RepairLevelDbStore(path_, DomainRules());

  ASSERT_OK(report);
  EXPECT_EQ(report->deliveries_without_event, 1u);
  EXPECT_EQ(report->dangling_index_entries, 3u);  // dl/, dle/ and dlt/.
  EXPECT_EQ(report->dangling_queue_entries, 1u);
  EXPECT_THAT(report->ToString(),
              HasSubstr("1 queued deliveries whose event was lost"));
  Reopen();
  absl::StatusOr<DeliveryPage> page =
      store_->ListDeliveries(DeliveryFilter(), 10, "");
  ASSERT_OK(page);
  ASSERT_THAT(page->deliveries, SizeIs(1));
  EXPECT_EQ(page->deliveries[0].id(), no_event[0].id());
  EXPECT_EQ(page->deliveries[0].status(), DELIVERY_STATUS_FAILED);
  EXPECT_THAT(page->deliveries[0].last_error(),
              HasSubstr("lost in a database repair"));
  absl::StatusOr<std::vector<QueuedDelivery>> queue = store_->LoadQueue();
  ASSERT_OK(queue);
  EXPECT_THAT(*queue, IsEmpty());
}

TEST_F(LevelDbStoreTest, RepairOfHealthyDatabaseLosesNothing) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  Submit("ev_1", "thread-a", {"ep_1"}, kBaseMicros);
  store_.reset();

  absl::StatusOr<RepairReport> report =
      RepairLevelDbStore(path_, DomainRules());

  ASSERT_OK(report);
  EXPECT_TRUE(report->readable_before);
  EXPECT_EQ(report->endpoints_before, 1u);
  EXPECT_EQ(report->endpoints_after, 1u);
  EXPECT_EQ(report->deliveries_before, 1u);
  EXPECT_EQ(report->deliveries_after, 1u);
  EXPECT_EQ(report->queued_after, 1u);
  EXPECT_THAT(report->ToString(), HasSubstr("nothing that webhookd can tell"));
}

TEST_F(LevelDbStoreTest, RepairRequeuesWhatTheRulesSayAwaitsAnAttempt) {
  std::vector<Delivery> deliveries =
      Submit("ev_1", "thread-a", {"ep_1", "ep_2"}, kBaseMicros);
  store_.reset();
  {
    // As if LevelDB's repair had dropped both queue entries.
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(leveldb::Options(), path_, &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    for (const Delivery& delivery : deliveries) {
      ASSERT_TRUE(
          db->Delete(leveldb::WriteOptions(), "q/" + delivery.id()).ok());
    }
  }
  // Both are PENDING; the rules say only the first awaits an attempt.
  const std::string first = deliveries[0].id();
  const absl::Time due = absl::FromUnixMicros(kBaseMicros + 42);
  RepairRules rules = DomainRules();
  rules.next_due = [&](const Delivery& delivery) -> std::optional<absl::Time> {
    if (delivery.id() == first) return due;
    return std::nullopt;
  };

  absl::StatusOr<RepairReport> report = RepairLevelDbStore(path_, rules);

  ASSERT_OK(report);
  EXPECT_EQ(report->requeued_deliveries, 1u);
  Reopen();
  absl::StatusOr<std::vector<QueuedDelivery>> queue = store_->LoadQueue();
  ASSERT_OK(queue);
  ASSERT_THAT(*queue, SizeIs(1));
  EXPECT_EQ((*queue)[0].delivery_id, first);
  EXPECT_EQ((*queue)[0].due, due);
}

TEST_F(LevelDbStoreTest, RepairWithoutRulesIsInvalidArgument) {
  store_.reset();
  EXPECT_EQ(RepairLevelDbStore(path_, RepairRules()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LevelDbStoreTest, RepairRefusesADatabaseInUse) {
  absl::StatusOr<RepairReport> report =
      RepairLevelDbStore(path_, DomainRules());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kFailedPrecondition)
      << report.status();
}

}  // namespace
}  // namespace webhookd
