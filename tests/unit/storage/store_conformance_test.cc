// The Store contract (storage/store.h), tested against every backend that
// tests/support/store_backends.h registers. A test here uses nothing but the
// Store interface; tests of one backend's internals (its files, its key
// layout, its options, its faults) stay in that backend's own test.

#include <atomic>
#include <cstdint>
#include <memory>
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
#include "storage/store.h"
#include "tests/support/store_backends.h"
#include "tests/support/store_test_util.h"

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
using webhookd::testing::AllStoreBackends;
using webhookd::testing::Change;
using webhookd::testing::Finished;
using webhookd::testing::ForEndpoint;
using webhookd::testing::ForStatus;
using webhookd::testing::ForThread;
using webhookd::testing::ForUser;
using webhookd::testing::Ids;
using webhookd::testing::kBaseMicros;
using webhookd::testing::ListAllDeliveries;
using webhookd::testing::MakeDelivery;
using webhookd::testing::MakeEndpoint;
using webhookd::testing::MakeEvent;
using webhookd::testing::OfThread;
using webhookd::testing::OfUser;
using webhookd::testing::ProtoTime;
using webhookd::testing::Queued;
using webhookd::testing::StoreBackend;
using webhookd::testing::StoreBackendType;
using webhookd::testing::Submit;
using webhookd::testing::SubmitDeliveriesToList;

// Each test gets a new, empty store of the backend it runs against.
class StoreTest : public ::testing::TestWithParam<StoreBackendType> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<StoreBackend>> backend = GetParam().create();
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = *std::move(backend);
    Reopen();
  }

  // Closes the store and opens it again.
  void Reopen() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<Store>> store = backend_->Open();
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  std::unique_ptr<StoreBackend> backend_;
  std::unique_ptr<Store> store_;  // Destroyed before backend_.
};

// Starts with the deliveries of SubmitDeliveriesToList.
class ListDeliveriesTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    if (HasFatalFailure()) return;
    SubmitDeliveriesToList(*store_);
  }
};

// --- Settings ----------------------------------------------------------------

TEST_P(StoreTest, SettingOrInsertKeepsTheFirstValueAcrossReopens) {
  absl::StatusOr<std::string> first = store_->SettingOrInsert("key", "one");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, "one");
  absl::StatusOr<std::string> again = store_->SettingOrInsert("key", "two");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, "one");
  // Binary values, and each name its own.
  const std::string binary("\0\xff\x01", 3);
  absl::StatusOr<std::string> other = store_->SettingOrInsert("other", binary);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(*other, binary);
  Reopen();
  absl::StatusOr<std::string> reopened =
      store_->SettingOrInsert("key", "three");
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ(*reopened, "one");
  reopened = store_->SettingOrInsert("other", "x");
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ(*reopened, binary);
}

// --- Endpoints ---------------------------------------------------------------

TEST_P(StoreTest, PutThenGetEndpointRoundTripsIncludingSecret) {
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

TEST_P(StoreTest, GetMissingEndpointReturnsNotFound) {
  absl::StatusOr<Endpoint> got = store_->GetEndpoint("ep_missing");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(got.status().message(), HasSubstr("ep_missing"));
}

TEST_P(StoreTest, PutEndpointReplacesItAndMovesItToItsNewThread) {
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

TEST_P(StoreTest, ListEndpointsOfThreadPagesInIdOrder) {
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

TEST_P(StoreTest, ListAllEndpointsPagesInIdOrder) {
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

TEST_P(StoreTest, ListEndpointsRejectsMalformedPageToken) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  for (const char* token : {"%%%not-base64%%%", "Zm9vYmFy"}) {
    absl::StatusOr<EndpointPage> page =
        store_->ListEndpoints(OfThread("thread-a"), 2, token);
    EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument)
        << token;
  }
}

TEST_P(StoreTest, ListEndpointsRejectsTokenOfAnotherFilter) {
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

TEST_P(StoreTest, ListEndpointsFiltersByUser) {
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

TEST_P(StoreTest, ListEndpointsDefaultsToFiftyPerPage) {
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

TEST_P(StoreTest, LoadEndpointsReturnsEveryEndpoint) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_2", "thread-b")));
  absl::StatusOr<std::vector<Endpoint>> endpoints = store_->LoadEndpoints();
  ASSERT_OK(endpoints);
  EXPECT_THAT(Ids(*endpoints), UnorderedElementsAre("ep_1", "ep_2"));
}

TEST_P(StoreTest, DeleteEndpointRemovesItAndKeepsItsDeliveries) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  std::vector<Delivery> deliveries =
      Submit(*store_, "evt_1", "thread-a", {"ep_1"}, kBaseMicros);
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

TEST_P(StoreTest, DeleteMissingEndpointReturnsNotFound) {
  EXPECT_EQ(store_->DeleteEndpoint("ep_missing", {}).code(),
            absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, DeleteEndpointKeepsItsStats) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  std::vector<Delivery> deliveries =
      Submit(*store_, "evt_1", "thread-a", {"ep_1"}, kBaseMicros);
  ASSERT_OK(store_->UpdateDeliveries({Finished(deliveries[0], 200, 30)},
                                     Durability::kSynced));
  ASSERT_OK(store_->DeleteEndpoint("ep_1", {}));

  absl::StatusOr<EndpointCounts> counts = store_->GetEndpointCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 1);
}

// --- Events and deliveries ---------------------------------------------------

TEST_P(StoreTest, InsertEventThenGetDeliveryJoinsPayload) {
  std::vector<Delivery> deliveries =
      Submit(*store_, "evt_1", "thread-a", {"ep_1", "ep_2"}, kBaseMicros);

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

TEST_P(StoreTest, TraceContextIsKeptWithTheEventAndItsAttempts) {
  constexpr char kParent[] =
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  constexpr char kAttempt[] =
      "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01";
  Delivery delivery =
      MakeDelivery("dlv_1", "evt_1", "ep_1", "thread-a", kBaseMicros);
  delivery.set_traceparent(kParent);
  delivery.set_tracestate("congo=t61rcWkgMzE");
  EventRecord event = MakeEvent("evt_1", "thread-a", {delivery});
  event.set_traceparent(kParent);
  event.set_tracestate("congo=t61rcWkgMzE");
  ASSERT_OK(store_->InsertEvent(event, {delivery}));
  DeliveryChange attempt = Finished(delivery, 500, 3);
  attempt.delivery.mutable_attempt_history(0)->set_traceparent(kAttempt);
  ASSERT_OK(store_->UpdateDeliveries({attempt}, Durability::kSynced));
  Reopen();

  absl::StatusOr<EventRecord> stored_event = store_->GetEvent("evt_1");
  ASSERT_OK(stored_event);
  EXPECT_EQ(stored_event->traceparent(), kParent);
  EXPECT_EQ(stored_event->tracestate(), "congo=t61rcWkgMzE");
  absl::StatusOr<Delivery> stored = store_->GetDelivery("dlv_1");
  ASSERT_OK(stored);
  EXPECT_EQ(stored->traceparent(), kParent);
  EXPECT_EQ(stored->tracestate(), "congo=t61rcWkgMzE");
  ASSERT_EQ(stored->attempt_history_size(), 1);
  EXPECT_EQ(stored->attempt_history(0).traceparent(), kAttempt);
}

TEST_P(StoreTest, GetMissingDeliveryAndEventReturnNotFound) {
  EXPECT_EQ(store_->GetDelivery("dlv_missing").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetEvent("evt_missing").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, InsertEventQueuesNewDeliveries) {
  std::vector<Delivery> deliveries =
      Submit(*store_, "evt_1", "thread-a", {"ep_1", "ep_2"}, kBaseMicros);

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

TEST_P(StoreTest, SuccessfulAttemptRemovesDeliveryFromQueue) {
  std::vector<Delivery> deliveries =
      Submit(*store_, "evt_1", "thread-a", {"ep_1", "ep_2"}, kBaseMicros);
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

TEST_P(StoreTest, RetryingDeliveryIsQueuedForItsNextAttemptTime) {
  std::vector<Delivery> deliveries =
      Submit(*store_, "evt_1", "thread-a", {"ep_1"}, kBaseMicros);
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

TEST_P(StoreTest, QueueFollowsTheChangeNotTheStatus) {
  std::vector<Delivery> deliveries =
      Submit(*store_, "evt_1", "thread-a", {"ep_1", "ep_2"}, kBaseMicros);
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

TEST_P(StoreTest, InsertEventQueuesEveryNewDeliveryWhateverItsStatus) {
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

TEST_P(StoreTest, UpdateDeliveriesDoesNotStorePayload) {
  std::vector<Delivery> deliveries =
      Submit(*store_, "evt_1", "thread-a", {"ep_1"}, kBaseMicros);
  DeliveryChange change = Finished(deliveries[0], 200, 5);
  change.delivery.set_payload("a different body");
  ASSERT_OK(store_->UpdateDeliveries({change}, Durability::kSynced));

  absl::StatusOr<Delivery> delivery = store_->GetDelivery(deliveries[0].id());
  ASSERT_OK(delivery);
  EXPECT_EQ(delivery->payload(), R"({"event":"execution.completed"})");
}

TEST_P(StoreTest, FindSubmissionReturnsFirstResponse) {
  std::vector<Delivery> deliveries = {
      MakeDelivery("dlv_1", "evt_1", "ep_1", "thread-a", kBaseMicros)};
  ASSERT_OK(store_->InsertEvent(
      MakeEvent("evt_1", "thread-a", deliveries, "key-1"), deliveries));

  absl::StatusOr<Submission> found = store_->FindSubmission(7, "key-1");
  ASSERT_OK(found);
  EXPECT_EQ(found->response.event_id(), "evt_1");
  EXPECT_THAT(found->response.delivery_ids(), ElementsAre("dlv_1"));
  EXPECT_EQ(found->request_fingerprint, "") << "written without one";
}

TEST_P(StoreTest, FindSubmissionReturnsTheRequestFingerprintAfterReopen) {
  std::vector<Delivery> deliveries = {
      MakeDelivery("dlv_1", "evt_1", "ep_1", "thread-a", kBaseMicros)};
  EventRecord event = MakeEvent("evt_1", "thread-a", deliveries, "key-1");
  std::string fingerprint(32, '\xab');
  fingerprint[0] = '\0';  // Bytes, not text.
  event.set_request_fingerprint(fingerprint);
  ASSERT_OK(store_->InsertEvent(event, deliveries));
  Reopen();

  absl::StatusOr<Submission> found = store_->FindSubmission(7, "key-1");
  ASSERT_OK(found);
  EXPECT_EQ(found->response.event_id(), "evt_1");
  EXPECT_EQ(found->request_fingerprint, fingerprint);
}

TEST_P(StoreTest, FindSubmissionIsPerUser) {
  std::vector<Delivery> deliveries = {
      MakeDelivery("dlv_1", "evt_1", "ep_1", "thread-a", kBaseMicros)};
  ASSERT_OK(store_->InsertEvent(
      MakeEvent("evt_1", "thread-a", deliveries, "key-1"), deliveries));

  EXPECT_EQ(store_->FindSubmission(8, "key-1").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->FindSubmission(7, "key-2").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, IdempotencyRecordIsFoundAfterReopen) {
  std::vector<Delivery> deliveries = {
      MakeDelivery("dlv_1", "evt_1", "ep_1", "thread-a", kBaseMicros)};
  ASSERT_OK(store_->InsertEvent(
      MakeEvent("evt_1", "thread-a", deliveries, "key-1"), deliveries));
  Reopen();

  absl::StatusOr<Submission> found = store_->FindSubmission(7, "key-1");
  ASSERT_OK(found);
  EXPECT_EQ(found->response.event_id(), "evt_1");
}

// --- Stats -------------------------------------------------------------------

TEST_P(StoreTest, CountsAccumulateCountedAttemptsOnly) {
  std::vector<Delivery> deliveries =
      Submit(*store_, "evt_1", "thread-a", {"ep_1"}, kBaseMicros);
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

  absl::StatusOr<EndpointCounts> counts = store_->GetEndpointCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 2);
  EXPECT_EQ(counts->successes, 1);
  EXPECT_EQ(counts->response_time_ms_sum, 150);
}

TEST_P(StoreTest, CountsFollowTheChangeNotTheResponseCode) {
  std::vector<Delivery> deliveries =
      Submit(*store_, "evt_1", "thread-a", {"ep_1"}, kBaseMicros);
  // The store judges no response: what the domain counts is what it keeps.
  DeliveryChange server_error = Finished(deliveries[0], 500, 7);
  server_error.counted_attempt->success = true;
  DeliveryChange not_found = Finished(deliveries[0], 404, 9);
  not_found.counted_attempt->success = true;
  DeliveryChange no_content = Finished(deliveries[0], 204, 11);
  no_content.counted_attempt->success = false;

  ASSERT_OK(store_->UpdateDeliveries({server_error, not_found, no_content},
                                     Durability::kSynced));

  absl::StatusOr<EndpointCounts> counts = store_->GetEndpointCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 3);
  EXPECT_EQ(counts->successes, 2);
  EXPECT_EQ(counts->response_time_ms_sum, 27);
}

TEST_P(StoreTest, CountsAddOnlyTheAnsweredAttemptsResponseTimes) {
  std::vector<Delivery> deliveries =
      Submit(*store_, "evt_1", "thread-a", {"ep_1"}, kBaseMicros);
  // Refused, then timed out (no status), then answered.
  ASSERT_OK(store_->UpdateDeliveries(
      {Finished(deliveries[0], 0, 1), Finished(deliveries[0], 0, 30000),
       Finished(deliveries[0], 503, 40)},
      Durability::kSynced));
  absl::StatusOr<EndpointCounts> counts = store_->GetEndpointCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 3);
  EXPECT_EQ(counts->answered, 1);
  EXPECT_EQ(counts->response_time_ms_sum, 40);
}

// A change ending `delivery` (Ending) at `micros`.
DeliveryChange Ended(const Delivery& delivery, Ending ending, int64_t micros) {
  DeliveryChange change =
      Finished(delivery, ending == Ending::kSucceeded ? 200 : 500, 5);
  change.ending = ending;
  change.end_time = absl::FromUnixMicros(micros);
  return change;
}

// A change ending `delivery` as `ending`, without an attempt.
DeliveryChange EndedUnattempted(Delivery delivery, Ending ending) {
  delivery.set_status(DELIVERY_STATUS_FAILED);
  DeliveryChange change = Change(std::move(delivery));
  change.ending = ending;
  return change;
}

TEST_P(StoreTest, DeliveriesCountFromCreationToTheirEnd) {
  std::vector<Delivery> a =
      Submit(*store_, "evt_a", "t", {"ep_1", "ep_2"}, kBaseMicros);
  std::vector<Delivery> b =
      Submit(*store_, "evt_b", "t", {"ep_1"}, kBaseMicros);
  std::vector<Delivery> c =
      Submit(*store_, "evt_c", "t", {"ep_1"}, kBaseMicros);
  // A test delivery is never counted.
  Delivery test = MakeDelivery("dlv_test", "evt_test", "ep_1", "", kBaseMicros);
  test.set_test(true);
  ASSERT_OK(store_->InsertEvent(MakeEvent("evt_test", "", {test}), {test}));
  auto counts_of = [&](const std::string& endpoint_id) {
    absl::StatusOr<EndpointCounts> counts =
        store_->GetEndpointCounts(endpoint_id);
    EXPECT_TRUE(counts.ok()) << counts.status();
    return counts.value_or(EndpointCounts());
  };
  EXPECT_EQ(counts_of("ep_1").deliveries_in_progress, 3);
  EXPECT_EQ(counts_of("ep_2").deliveries_in_progress, 1);

  // A retry scheduled ends nothing; then one success, one failure and one
  // cancellation (its endpoint deleted) in one write.
  ASSERT_OK(store_->UpdateDeliveries({Finished(a[0], 500, 5)},
                                     Durability::kBuffered));
  EXPECT_EQ(counts_of("ep_1").deliveries_in_progress, 3);
  ASSERT_OK(store_->UpdateDeliveries(
      {Ended(a[0], Ending::kSucceeded, 100), Ended(b[0], Ending::kFailed, 200),
       EndedUnattempted(c[0], Ending::kCancelled)},
      Durability::kSynced));
  Reopen();
  EndpointCounts one = counts_of("ep_1");
  EXPECT_EQ(one.deliveries_succeeded, 1);
  EXPECT_EQ(one.deliveries_failed, 2);
  EXPECT_EQ(one.deliveries_in_progress, 0);
  EXPECT_EQ(one.attempts, 3);
  // A cancellation leaves the failure streak alone.
  absl::StatusOr<FailureStreak> streak = store_->GetFailureStreak("ep_1");
  ASSERT_OK(streak);
  EXPECT_EQ(streak->failures, 1);

  // A resend is a new delivery in progress; the original's change (marked
  // resent) ends nothing.
  Delivery resend = b[0];
  resend.set_id("dlv_resend");
  resend.set_status(DELIVERY_STATUS_PENDING);
  resend.clear_attempts();
  Delivery original = b[0];
  original.set_resent_by("dlv_resend");
  ASSERT_OK(store_->AddDeliveries({resend}, {Change(original)}));
  EXPECT_EQ(counts_of("ep_1").deliveries_in_progress, 1);
  EXPECT_EQ(counts_of("ep_1").deliveries_failed, 2);

  // Deleting an endpoint ends its queued deliveries in the same write.
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_2", "t")));
  ASSERT_OK(store_->DeleteEndpoint(
      "ep_2", {EndedUnattempted(a[1], Ending::kCancelled)}));
  EndpointCounts two = counts_of("ep_2");
  EXPECT_EQ(two.deliveries_failed, 1);
  EXPECT_EQ(two.deliveries_in_progress, 0);
}

TEST_P(StoreTest, CountsOfEndpointWithoutAttemptsAreZero) {
  absl::StatusOr<EndpointCounts> counts = store_->GetEndpointCounts("ep_none");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 0);
  EXPECT_EQ(counts->successes, 0);
  EXPECT_EQ(counts->response_time_ms_sum, 0);
}

TEST_P(StoreTest, ConcurrentUpdatesGiveExactCounts) {
  constexpr int kThreads = 4;
  constexpr int kUpdatesPerThread = 250;
  std::vector<Delivery> deliveries =
      Submit(*store_, "evt_1", "thread-a", {"ep_1", "ep_2"}, kBaseMicros);

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
  absl::StatusOr<EndpointCounts> one = store_->GetEndpointCounts("ep_1");
  ASSERT_OK(one);
  EXPECT_EQ(one->attempts, kThreads * kUpdatesPerThread);
  EXPECT_EQ(one->successes, kThreads * kUpdatesPerThread / 2);
  EXPECT_EQ(one->response_time_ms_sum, 10 * kThreads * kUpdatesPerThread);
  absl::StatusOr<EndpointCounts> two = store_->GetEndpointCounts("ep_2");
  ASSERT_OK(two);
  EXPECT_EQ(two->attempts, kThreads * kUpdatesPerThread);
  EXPECT_EQ(two->successes, kThreads * kUpdatesPerThread);
  // t = 0..3, kUpdatesPerThread times each.
  EXPECT_EQ(two->response_time_ms_sum, (0 + 1 + 2 + 3) * kUpdatesPerThread);
}

// --- Listing deliveries ------------------------------------------------------

TEST_P(ListDeliveriesTest, ListsAllNewestFirst) {
  EXPECT_THAT(ListAllDeliveries(*store_, {}, 50),
              ElementsAre("dlv_e4_ep_2", "dlv_e3_ep_1", "dlv_e2_ep_3",
                          "dlv_e1_ep_1", "dlv_e1_ep_2"));
}

TEST_P(ListDeliveriesTest, PagesNewestFirstWithPageSizeTwo) {
  absl::StatusOr<DeliveryPage> first = store_->ListDeliveries({}, 2, "");
  ASSERT_OK(first);
  EXPECT_THAT(Ids(first->deliveries),
              ElementsAre("dlv_e4_ep_2", "dlv_e3_ep_1"));
  EXPECT_THAT(ListAllDeliveries(*store_, {}, 2),
              ElementsAre("dlv_e4_ep_2", "dlv_e3_ep_1", "dlv_e2_ep_3",
                          "dlv_e1_ep_1", "dlv_e1_ep_2"));
}

TEST_P(ListDeliveriesTest, FiltersByEndpoint) {
  EXPECT_THAT(ListAllDeliveries(*store_, ForEndpoint("ep_1"), 1),
              ElementsAre("dlv_e3_ep_1", "dlv_e1_ep_1"));
}

TEST_P(ListDeliveriesTest, FiltersByThread) {
  EXPECT_THAT(
      ListAllDeliveries(*store_, ForThread("thread-a"), 2),
      ElementsAre("dlv_e4_ep_2", "dlv_e3_ep_1", "dlv_e1_ep_1", "dlv_e1_ep_2"));
}

TEST_P(ListDeliveriesTest, FiltersByEndpointAndThread) {
  EXPECT_THAT(ListAllDeliveries(*store_, ForEndpoint("ep_3", "thread-a"), 10),
              IsEmpty());
  EXPECT_THAT(ListAllDeliveries(*store_, ForEndpoint("ep_3", "thread-b"), 10),
              ElementsAre("dlv_e2_ep_3"));
}

TEST_P(ListDeliveriesTest, FiltersByStatus) {
  absl::StatusOr<Delivery> delivery = store_->GetDelivery("dlv_e1_ep_2");
  ASSERT_OK(delivery);
  ASSERT_OK(store_->UpdateDeliveries({Finished(*delivery, 200, 1)},
                                     Durability::kSynced));

  EXPECT_THAT(ListAllDeliveries(*store_, ForStatus(DELIVERY_STATUS_SUCCESS), 2),
              ElementsAre("dlv_e1_ep_2"));
  EXPECT_THAT(ListAllDeliveries(
                  *store_, ForThread("thread-a", DELIVERY_STATUS_PENDING), 2),
              ElementsAre("dlv_e4_ep_2", "dlv_e3_ep_1", "dlv_e1_ep_1"));
}

TEST_P(ListDeliveriesTest, FiltersByUser) {
  EXPECT_THAT(ListAllDeliveries(*store_, ForUser(9), 2),
              ElementsAre("dlv_e3_ep_1"));
}

TEST_P(ListDeliveriesTest, OmitsPayloadAndAttemptHistory) {
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

TEST_P(ListDeliveriesTest, RejectsMalformedPageToken) {
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

// --- Durability --------------------------------------------------------------

TEST_P(StoreTest, AddDeliveriesJoinsTheEventQueuesAndMarksTheOriginal) {
  std::vector<Delivery> deliveries =
      Submit(*store_, "evt_1", "thread-a", {"ep_1"}, kBaseMicros);
  DeliveryChange failed = Finished(deliveries[0], 500, 10);
  failed.delivery.set_status(DELIVERY_STATUS_FAILED);
  ASSERT_OK(store_->UpdateDeliveries({failed}, Durability::kSynced));
  Delivery resend = MakeDelivery("dlv_resend", "evt_1", "ep_1", "thread-a",
                                 kBaseMicros + 1'000'000);
  resend.set_resent_from(deliveries[0].id());
  DeliveryChange marked = Change(failed.delivery);
  marked.delivery.set_resent_by("dlv_resend");

  ASSERT_OK(store_->AddDeliveries({resend}, {marked}));
  Reopen();

  absl::StatusOr<Delivery> added = store_->GetDelivery("dlv_resend");
  ASSERT_OK(added);
  EXPECT_EQ(added->payload(), R"({"event":"execution.completed"})");
  EXPECT_EQ(added->resent_from(), deliveries[0].id());
  absl::StatusOr<Delivery> original = store_->GetDelivery(deliveries[0].id());
  ASSERT_OK(original);
  EXPECT_EQ(original->resent_by(), "dlv_resend");
  EXPECT_THAT(original->attempt_history(), SizeIs(1));
  absl::StatusOr<EventRecord> event = store_->GetEvent("evt_1");
  ASSERT_OK(event);
  EXPECT_THAT(event->delivery_ids(),
              ElementsAre(deliveries[0].id(), "dlv_resend"));
  absl::StatusOr<std::vector<QueuedDelivery>> queue = store_->LoadQueue();
  ASSERT_OK(queue);
  ASSERT_THAT(*queue, SizeIs(1));
  EXPECT_EQ((*queue)[0].delivery_id, "dlv_resend");
  EXPECT_THAT(ListAllDeliveries(*store_, ForEndpoint("ep_1"), 10),
              ElementsAre("dlv_resend", deliveries[0].id()));
}

TEST_P(StoreTest, AddDeliveriesToAMissingEventWritesNothing) {
  Delivery orphan = MakeDelivery("dlv_orphan", "evt_missing", "ep_1",
                                 "thread-a", kBaseMicros);

  EXPECT_EQ(store_->AddDeliveries({orphan}, {}).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetDelivery("dlv_orphan").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, PruneKeepsAnEventWhileAnAddedDeliveryRemains) {
  const int64_t old = kBaseMicros - 48LL * 3600 * 1'000'000;
  std::vector<Delivery> deliveries =
      Submit(*store_, "ev_1", "thread-a", {"ep_1"}, old);
  ASSERT_OK(store_->UpdateDeliveries({Finished(deliveries[0], 500, 5)},
                                     Durability::kSynced));
  Delivery resend =
      MakeDelivery("dlv_resend", "ev_1", "ep_1", "thread-a", kBaseMicros);
  ASSERT_OK(store_->AddDeliveries({resend}, {}));
  ASSERT_OK(store_->UpdateDeliveries({Finished(resend, 200, 5)},
                                     Durability::kSynced));

  ASSERT_OK(store_->PruneBefore(absl::FromUnixMicros(kBaseMicros),
                                absl::FromUnixMicros(kBaseMicros), 100));

  absl::StatusOr<Delivery> kept = store_->GetDelivery("dlv_resend");
  ASSERT_OK(kept);
  EXPECT_EQ(kept->payload(), R"({"event":"execution.completed"})");
}

TEST_P(StoreTest, FailureStreakCountsFailuresSinceTheLastSuccess) {
  std::vector<Delivery> a =
      Submit(*store_, "evt_a", "t", {"ep_1"}, kBaseMicros);
  std::vector<Delivery> b =
      Submit(*store_, "evt_b", "t", {"ep_1"}, kBaseMicros);
  std::vector<Delivery> c =
      Submit(*store_, "evt_c", "t", {"ep_1"}, kBaseMicros);
  std::vector<Delivery> d =
      Submit(*store_, "evt_d", "t", {"ep_1"}, kBaseMicros);
  absl::StatusOr<FailureStreak> streak = store_->GetFailureStreak("ep_1");
  ASSERT_OK(streak);
  EXPECT_EQ(streak->failures, 0);

  // Failed, then succeeded and failed twice in one write (in that order).
  ASSERT_OK(store_->UpdateDeliveries({Ended(a[0], Ending::kFailed, 100)},
                                     Durability::kBuffered));
  ASSERT_OK(store_->UpdateDeliveries(
      {Ended(b[0], Ending::kSucceeded, 200), Ended(c[0], Ending::kFailed, 300),
       Ended(d[0], Ending::kFailed, 400)},
      Durability::kBuffered));
  streak = store_->GetFailureStreak("ep_1");
  ASSERT_OK(streak);
  EXPECT_EQ(streak->failures, 2);
  EXPECT_EQ(streak->first_failure, absl::FromUnixMicros(300));
  // A change without an ending (a retry scheduled) leaves it alone.
  std::vector<Delivery> e =
      Submit(*store_, "evt_e", "t", {"ep_1"}, kBaseMicros);
  ASSERT_OK(store_->UpdateDeliveries({Finished(e[0], 500, 5)},
                                     Durability::kBuffered));
  Reopen();
  streak = store_->GetFailureStreak("ep_1");
  ASSERT_OK(streak);
  EXPECT_EQ(streak->failures, 2);
  EXPECT_EQ(streak->first_failure, absl::FromUnixMicros(300));
  // The attempts still count as before.
  absl::StatusOr<EndpointCounts> counts = store_->GetEndpointCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 5);
  EXPECT_EQ(counts->successes, 1);

  ASSERT_OK(store_->ResetFailureStreak("ep_1"));
  streak = store_->GetFailureStreak("ep_1");
  ASSERT_OK(streak);
  EXPECT_EQ(streak->failures, 0);
  ASSERT_OK(store_->UpdateDeliveries({Ended(e[0], Ending::kFailed, 900)},
                                     Durability::kSynced));
  streak = store_->GetFailureStreak("ep_1");
  ASSERT_OK(streak);
  EXPECT_EQ(streak->failures, 1);
  EXPECT_EQ(streak->first_failure, absl::FromUnixMicros(900));
  ASSERT_OK(store_->ResetFailureStreak("ep_unknown"));
}

TEST_P(StoreTest, CloseAndReopenKeepsEverything) {
  Endpoint endpoint = MakeEndpoint("ep_1", "thread-a");
  endpoint.set_secret("s3cret");
  ASSERT_OK(store_->PutEndpoint(endpoint));
  std::vector<Delivery> deliveries =
      Submit(*store_, "evt_1", "thread-a", {"ep_1"}, kBaseMicros);
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
  absl::StatusOr<EndpointCounts> counts = store_->GetEndpointCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 1);
  EXPECT_EQ(counts->successes, 0);
  absl::StatusOr<DeliveryPage> log =
      store_->ListDeliveries(ForThread("thread-a"), 10, "");
  ASSERT_OK(log);
  EXPECT_EQ(log->deliveries.size(), 1u);
}

// --- Retention ---------------------------------------------------------------

constexpr int64_t kHourMicros = 3600LL * 1'000'000;

TEST_P(StoreTest, PruneRemovesOldFinishedDeliveriesWithTheirIndexes) {
  const int64_t old = kBaseMicros - 48 * kHourMicros;
  std::vector<Delivery> pruned =
      Submit(*store_, "ev_old", "thread-a", {"ep_1"}, old);
  std::vector<Delivery> kept =
      Submit(*store_, "ev_new", "thread-a", {"ep_1"}, kBaseMicros);
  ASSERT_OK(store_->UpdateDeliveries(
      {Finished(pruned[0], 200, 5), Finished(kept[0], 200, 5)},
      Durability::kSynced));
  absl::StatusOr<EndpointCounts> counts_before =
      store_->GetEndpointCounts("ep_1");
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
  absl::StatusOr<EndpointCounts> counts = store_->GetEndpointCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 2);
  EXPECT_EQ(counts->attempts, counts_before->attempts);
}

TEST_P(StoreTest, PruneNeverRemovesQueuedDeliveries) {
  const int64_t old = kBaseMicros - 48 * kHourMicros;
  std::vector<Delivery> queued =
      Submit(*store_, "ev_1", "thread-a", {"ep_1"}, old);
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

TEST_P(StoreTest, PruneKeepsExactlyTheQueuedDeliveries) {
  const int64_t old = kBaseMicros - 48 * kHourMicros;
  std::vector<Delivery> deliveries =
      Submit(*store_, "ev_1", "thread-a", {"ep_1", "ep_2"}, old);
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

TEST_P(StoreTest, PruneKeepsEventUntilItsLastDeliveryGoes) {
  const int64_t old = kBaseMicros - 48 * kHourMicros;
  std::vector<Delivery> deliveries =
      Submit(*store_, "ev_1", "thread-a", {"ep_1", "ep_2"}, old);
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

TEST_P(StoreTest, PruneStopsAtMaxRecordsOldestFirst) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    std::vector<Delivery> d =
        Submit(*store_, absl::StrCat("ev_", i), "thread-a", {"ep_1"},
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

TEST_P(StoreTest, PruneRemovesOldIdempotencyRecordsAndLoneEvents) {
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

std::string BackendName(
    const ::testing::TestParamInfo<StoreBackendType>& info) {
  return std::string(info.param.name);
}

INSTANTIATE_TEST_SUITE_P(Conformance, StoreTest,
                         ::testing::ValuesIn(AllStoreBackends()), BackendName);
INSTANTIATE_TEST_SUITE_P(Conformance, ListDeliveriesTest,
                         ::testing::ValuesIn(AllStoreBackends()), BackendName);

}  // namespace
}  // namespace webhookd
