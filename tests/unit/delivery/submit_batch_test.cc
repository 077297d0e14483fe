// SubmitEvents in the delivery layer: BatchAnswers on its own, and batches
// through the engine stepped by hand (a real LevelDB in a temporary
// directory, a fake clock and a fake sender, no engine threads), where a
// counting Metrics shows how many synced writes a batch took.

#include "server/delivery/submit_batch.h"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/caller.h"
#include "server/common/limits.h"
#include "server/common/metrics.h"
#include "server/delivery/delivery_engine.h"
#include "server/delivery/endpoint_manager.h"
#include "storage/leveldb/leveldb_store.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_http_sender.h"
#include "tests/support/test_dir.h"

namespace webhookd {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::webhook::v1::SubmitEventRequest;
using ::webhook::v1::SubmitEventsRequest;
using ::webhook::v1::SubmitEventsResponse;
using ::webhookd::testing::FakeClock;
using ::webhookd::testing::FakeHttpSender;
using ::webhookd::testing::Response;
using ::webhookd::testing::TestDir;

constexpr char kThread[] = "thread-1";

// What the engine reports about submits.
class CountingMetrics final : public Metrics {
 public:
  void EventsSubmitted(size_t events, size_t deliveries) override {
    events_ += events;
    deliveries_ += deliveries;
  }
  void AttemptFinished(ResponseClass, absl::Duration) override {}
  void DeliveryFinished(DeliveryOutcome, absl::Duration) override {}
  void RetryScheduled() override {}
  void EndpointAutoDisabled() override {}
  void SubmitAdmission(AdmissionOutcome) override {}
  void StorageWriteFinished(StorageWrite what, absl::Duration) override {
    if (what == StorageWrite::kSubmit) ++submit_writes_;
  }
  void RpcFinished(absl::string_view, absl::string_view, int) override {}

  std::atomic<size_t> events_{0};
  std::atomic<size_t> deliveries_{0};
  std::atomic<size_t> submit_writes_{0};
};

SubmitEventResponse Accepted(const std::string& event_id) {
  SubmitEventResponse response;
  response.set_event_id(event_id);
  return response;
}

TEST(ValidateBatchSizeTest, AcceptsOneToTheLimit) {
  EXPECT_TRUE(ValidateBatchSize(1).ok());
  EXPECT_TRUE(ValidateBatchSize(kMaxEventsPerBatch).ok());
}

TEST(ValidateBatchSizeTest, RefusesAnEmptyBatchNamingEvents) {
  const absl::Status status = ValidateBatchSize(0);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("events:"));
}

TEST(ValidateBatchSizeTest, RefusesMoreThanTheLimitNamingEvents) {
  const absl::Status status = ValidateBatchSize(kMaxEventsPerBatch + 1);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("events: 1001 events; at most 1000"));
}

TEST(BatchAnswersTest, AnswersInRequestOrderOnceEveryEventIsAnswered) {
  std::optional<absl::StatusOr<SubmitEventsResponse>> result;
  BatchAnswers answers(3, [&](absl::StatusOr<SubmitEventsResponse> r) {
    result = std::move(r);
  });
  answers.Answer(2, Accepted("evt_c"));
  answers.Answer(0, Accepted("evt_a"));
  EXPECT_FALSE(result.has_value());
  answers.Answer(1, absl::InvalidArgumentError("thread_id: is required"));
  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(result->ok()) << result->status();
  const SubmitEventsResponse& response = **result;
  ASSERT_THAT(response.results(), SizeIs(3));
  EXPECT_EQ(response.results(0).response().event_id(), "evt_a");
  EXPECT_EQ(response.results(0).code(), 0);
  EXPECT_FALSE(response.results(1).has_response());
  EXPECT_EQ(response.results(1).code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(response.results(1).message(), "events[1].thread_id: is required");
  EXPECT_EQ(response.results(2).response().event_id(), "evt_c");
}

TEST(BatchAnswersTest, EventErrorsAreInvalidArgumentPermissionAndConflict) {
  EXPECT_TRUE(IsEventError(absl::InvalidArgumentError("x")));
  EXPECT_TRUE(IsEventError(absl::PermissionDeniedError("x")));
  EXPECT_TRUE(IsEventError(absl::AlreadyExistsError("x")));
  EXPECT_FALSE(IsEventError(absl::UnavailableError("x")));
  EXPECT_FALSE(IsEventError(absl::ResourceExhaustedError("x")));
  EXPECT_FALSE(IsEventError(absl::InternalError("x")));
}

TEST(BatchAnswersTest, StorageErrorFailsTheWholeCallOnce) {
  int calls = 0;
  absl::Status failed;
  BatchAnswers answers(2, [&](absl::StatusOr<SubmitEventsResponse> r) {
    ++calls;
    failed = r.status();
  });
  answers.Answer(0, absl::UnavailableError("disk gone"));
  answers.Answer(1, Accepted("evt_b"));
  answers.Fail(absl::InternalError("later"));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(failed, absl::UnavailableError("disk gone"));
}

class SubmitBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
        LevelDbStore::Open(dir_.Sub("db"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  void TearDown() override {
    if (engine_ != nullptr) engine_->Stop(absl::ZeroDuration());
  }

  void StartEngine(DeliveryEngineOptions options = {}) {
    TargetPolicy policy;
    policy.allow_insecure_targets = true;
    options.run_threads = false;
    scheduler_ = std::make_unique<Scheduler>(options.limits);
    endpoints_ = std::make_unique<EndpointManager>(*store_, clock_, policy,
                                                   *scheduler_, bus_);
    ASSERT_TRUE(endpoints_->Load().ok());
    engine_ = std::make_unique<DeliveryEngine>(*store_, *endpoints_,
                                               *scheduler_, bus_, sender_,
                                               clock_, options, metrics_);
    ASSERT_TRUE(engine_->Start().ok());
  }

  std::string AddEndpoint(int64_t user_id = 0, const std::string& type = "") {
    Endpoint request;
    request.set_thread_id(kThread);
    request.set_name("receiver");
    request.set_url("http://127.0.0.1:9/hook");
    request.set_user_id(user_id);
    if (!type.empty()) request.add_event_types(type);
    absl::StatusOr<Endpoint> created =
        endpoints_->Create(Caller::Unrestricted(), request);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->id() : "";
  }

  static SubmitEventRequest Event(const std::string& key = "",
                                  const std::string& trigger = "Nightly") {
    SubmitEventRequest event;
    event.set_thread_id(kThread);
    event.set_user_id(42);
    event.set_trigger_name(trigger);
    event.set_idempotency_key(key);
    event.mutable_execution()->set_prompt("Generate today's summary");
    return event;
  }

  // Submits the batch and commits it; returns the call's result.
  absl::StatusOr<SubmitEventsResponse> SubmitBatch(
      const SubmitEventsRequest& request,
      const Caller& caller = Caller::Unrestricted()) {
    std::optional<absl::StatusOr<SubmitEventsResponse>> answer;
    engine_->SubmitBatchAsync(
        caller, request, [&answer](absl::StatusOr<SubmitEventsResponse> r) {
          answer = std::move(r);
        });
    engine_->CommitPending();
    if (!answer.has_value()) return absl::InternalError("no answer");
    return *std::move(answer);
  }

  size_t StoredDeliveries() {
    absl::StatusOr<DeliveryPage> stored = store_->ListDeliveries({}, 1000, "");
    EXPECT_TRUE(stored.ok()) << stored.status();
    return stored.ok() ? stored->deliveries.size() : 0;
  }

  TestDir dir_;
  FakeClock clock_;
  std::unique_ptr<LevelDbStore> store_;
  ChangeBus bus_;
  CountingMetrics metrics_;
  FakeHttpSender sender_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<EndpointManager> endpoints_;
  std::unique_ptr<DeliveryEngine> engine_;
};

TEST_F(SubmitBatchTest, BatchIsStoredInOneSyncedWriteAndFannedOut) {
  StartEngine();
  AddEndpoint();
  AddEndpoint();
  SubmitEventsRequest request;
  for (int i = 0; i < 50; ++i) *request.add_events() = Event();

  absl::StatusOr<SubmitEventsResponse> response = SubmitBatch(request);
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_THAT(response->results(), SizeIs(50));
  for (const webhook::v1::SubmitEventResult& result : response->results()) {
    EXPECT_EQ(result.code(), 0) << result.message();
    EXPECT_THAT(result.response().delivery_ids(), SizeIs(2));
    EXPECT_FALSE(result.response().replayed());
  }
  EXPECT_EQ(metrics_.submit_writes_, 1u);
  EXPECT_EQ(metrics_.events_, 50u);
  EXPECT_EQ(metrics_.deliveries_, 100u);
  EXPECT_EQ(StoredDeliveries(), 100u);
  EXPECT_EQ(engine_->QueuedCount(), 100u);
}

TEST_F(SubmitBatchTest, InvalidEventsAreRefusedAndTheOthersStored) {
  StartEngine();
  AddEndpoint();
  SubmitEventsRequest request;
  *request.add_events() = Event();
  SubmitEventRequest* no_thread = request.add_events();
  *no_thread = Event();
  no_thread->clear_thread_id();
  *request.add_events() = Event();
  SubmitEventRequest* bad_type = request.add_events();
  *bad_type = Event();
  bad_type->set_event_type("not a type");

  absl::StatusOr<SubmitEventsResponse> response = SubmitBatch(request);
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_THAT(response->results(), SizeIs(4));
  EXPECT_EQ(response->results(0).code(), 0);
  EXPECT_EQ(response->results(1).code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(response->results(1).message(),
              HasSubstr("events[1].thread_id:"));
  EXPECT_FALSE(response->results(1).has_response());
  EXPECT_EQ(response->results(2).code(), 0);
  EXPECT_THAT(response->results(3).message(),
              HasSubstr("events[3].event_type:"));
  EXPECT_EQ(metrics_.submit_writes_, 1u);
  EXPECT_EQ(StoredDeliveries(), 2u);
}

TEST_F(SubmitBatchTest, BatchOfOnlyInvalidEventsIsAnsweredWithoutAWrite) {
  StartEngine();
  AddEndpoint();
  SubmitEventsRequest request;
  request.add_events()->set_user_id(1);  // No thread.

  std::optional<absl::StatusOr<SubmitEventsResponse>> answer;
  engine_->SubmitBatchAsync(Caller::Unrestricted(), request,
                            [&answer](absl::StatusOr<SubmitEventsResponse> r) {
                              answer = std::move(r);
                            });
  ASSERT_TRUE(answer.has_value());  // Before any commit.
  ASSERT_TRUE(answer->ok()) << answer->status();
  EXPECT_EQ((*answer)->results(0).code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(engine_->CommitPending(), 0u);
  EXPECT_EQ(metrics_.submit_writes_, 0u);
}

TEST_F(SubmitBatchTest, SameKeyTwiceInABatchReplaysOrConflicts) {
  StartEngine();
  AddEndpoint();
  SubmitEventsRequest request;
  *request.add_events() = Event("run-1", "Nightly");
  *request.add_events() = Event("run-1", "Nightly");
  *request.add_events() = Event("run-1", "Weekly");

  absl::StatusOr<SubmitEventsResponse> response = SubmitBatch(request);
  ASSERT_TRUE(response.ok()) << response.status();
  const auto& results = response->results();
  EXPECT_EQ(results[0].code(), 0);
  EXPECT_FALSE(results[0].response().replayed());
  EXPECT_EQ(results[1].code(), 0);
  EXPECT_TRUE(results[1].response().replayed());
  EXPECT_EQ(results[1].response().event_id(), results[0].response().event_id());
  EXPECT_THAT(
      results[1].response().delivery_ids(),
      ::testing::ElementsAreArray(results[0].response().delivery_ids()));
  EXPECT_EQ(results[2].code(),
            static_cast<int>(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(results[2].message(),
              HasSubstr("events[2].idempotency_key: \"run-1\""));
  EXPECT_EQ(StoredDeliveries(), 1u);
}

TEST_F(SubmitBatchTest, KeyOfAnEarlierCallIsReplayedOrConflicts) {
  StartEngine();
  AddEndpoint();
  SubmitEventsRequest first;
  *first.add_events() = Event("run-1", "Nightly");
  absl::StatusOr<SubmitEventsResponse> stored = SubmitBatch(first);
  ASSERT_TRUE(stored.ok()) << stored.status();

  SubmitEventsRequest again;
  *again.add_events() = Event("run-1", "Weekly");
  *again.add_events() = Event("run-1", "Nightly");
  absl::StatusOr<SubmitEventsResponse> response = SubmitBatch(again);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->results(0).code(),
            static_cast<int>(absl::StatusCode::kAlreadyExists));
  EXPECT_TRUE(response->results(1).response().replayed());
  EXPECT_EQ(response->results(1).response().event_id(),
            stored->results(0).response().event_id());
  EXPECT_EQ(StoredDeliveries(), 1u);
}

TEST_F(SubmitBatchTest, BatchWhoseDeliveriesDoNotFitIsRefusedWhole) {
  DeliveryEngineOptions options;
  options.limits.max_queued_deliveries = 4;
  StartEngine(options);
  AddEndpoint();
  SubmitEventsRequest request;
  for (int i = 0; i < 5; ++i) *request.add_events() = Event();

  absl::StatusOr<SubmitEventsResponse> refused = SubmitBatch(request);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("--max_queued_deliveries"));
  EXPECT_EQ(StoredDeliveries(), 0u);
  EXPECT_EQ(metrics_.submit_writes_, 0u);

  // The refused batch's reservations were given back: four fit.
  request.mutable_events()->RemoveLast();
  absl::StatusOr<SubmitEventsResponse> fits = SubmitBatch(request);
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_EQ(StoredDeliveries(), 4u);
}

TEST_F(SubmitBatchTest, EmptyBatchIsRefusedNamingEvents) {
  StartEngine();
  absl::StatusOr<SubmitEventsResponse> refused =
      SubmitBatch(SubmitEventsRequest());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("events:"));
}

TEST_F(SubmitBatchTest, CallerOfAnApiKeyOwnsEveryEventAndReachesOnlyItsOwn) {
  StartEngine();
  const std::string mine = AddEndpoint(7);
  AddEndpoint(8);  // Another user's endpoint on the same thread.
  SubmitEventsRequest request;
  SubmitEventRequest* implicit = request.add_events();
  *implicit = Event();
  implicit->set_user_id(0);
  SubmitEventRequest* other = request.add_events();
  *other = Event();
  other->set_user_id(8);

  absl::StatusOr<SubmitEventsResponse> response =
      SubmitBatch(request, Caller::User(7));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->results(0).code(), 0);
  ASSERT_THAT(response->results(0).response().delivery_ids(), SizeIs(1));
  absl::StatusOr<Delivery> delivery =
      store_->GetDelivery(response->results(0).response().delivery_ids(0));
  ASSERT_TRUE(delivery.ok()) << delivery.status();
  EXPECT_EQ(delivery->endpoint_id(), mine);
  EXPECT_EQ(delivery->user_id(), 7);
  EXPECT_EQ(response->results(1).code(),
            static_cast<int>(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(response->results(1).message(), HasSubstr("events[1].user_id:"));
}

TEST_F(SubmitBatchTest, EventTypeFiltersApplyToEachEvent) {
  StartEngine();
  AddEndpoint(0, "execution.*");
  AddEndpoint(0, "billing.paid");
  SubmitEventsRequest request;
  *request.add_events() = Event();
  SubmitEventRequest* paid = request.add_events();
  *paid = Event();
  paid->set_event_type("billing.paid");
  SubmitEventRequest* none = request.add_events();
  *none = Event();
  none->set_event_type("other.thing");

  absl::StatusOr<SubmitEventsResponse> response = SubmitBatch(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(response->results(0).response().delivery_ids(), SizeIs(1));
  EXPECT_THAT(response->results(1).response().delivery_ids(), SizeIs(1));
  EXPECT_THAT(response->results(2).response().delivery_ids(), IsEmpty());
  EXPECT_FALSE(response->results(2).response().event_id().empty());
}

TEST_F(SubmitBatchTest, TraceContextOfTheCallGoesWithEveryEvent) {
  StartEngine();
  AddEndpoint();
  SubmitEventsRequest request;
  for (int i = 0; i < 2; ++i) *request.add_events() = Event();
  TraceContext trace;
  trace.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  trace.tracestate = "vendor=1";
  std::optional<absl::StatusOr<SubmitEventsResponse>> answer;
  engine_->SubmitBatchAsync(
      Caller::Unrestricted(), request,
      [&answer](absl::StatusOr<SubmitEventsResponse> r) { answer = r; }, trace);
  engine_->CommitPending();
  ASSERT_TRUE(answer.has_value() && answer->ok());
  for (const auto& result : (*answer)->results()) {
    absl::StatusOr<Delivery> delivery =
        store_->GetDelivery(result.response().delivery_ids(0));
    ASSERT_TRUE(delivery.ok()) << delivery.status();
    EXPECT_EQ(delivery->traceparent(), trace.traceparent);
    EXPECT_EQ(delivery->tracestate(), "vendor=1");
  }
}

TEST_F(SubmitBatchTest, WaitingBatchesAreAdmittedWholeOnlyAsDeliveryHasRoom) {
  DeliveryEngineOptions options;
  options.limits.max_in_flight = 1;
  options.admission.max_lag = absl::Seconds(1);
  options.admission.max_wait = absl::Seconds(5);
  StartEngine(options);
  AddEndpoint();
  SubmitEventsRequest two;
  *two.add_events() = Event();
  *two.add_events() = Event();
  ASSERT_TRUE(SubmitBatch(two).ok());
  ASSERT_EQ(engine_->DispatchDue(clock_.Now()), 1u);  // The other waits.
  clock_.Advance(absl::Seconds(3));  // Behind: new submits wait.

  // Three calls of 100 events wait for delivery to catch up.
  SubmitEventsRequest hundred;
  for (int i = 0; i < 100; ++i) *hundred.add_events() = Event();
  std::vector<std::optional<absl::StatusOr<SubmitEventsResponse>>> answers(3);
  for (auto& answer : answers) {
    engine_->SubmitBatchAsync(
        Caller::Unrestricted(), hundred,
        [&answer](absl::StatusOr<SubmitEventsResponse> r) {
          answer = std::move(r);
        });
  }
  engine_->CommitPending();
  for (const auto& answer : answers) ASSERT_FALSE(answer.has_value());

  // Caught up at a start rate of about one attempt a second: room for far
  // fewer than 300 deliveries. The first call is admitted whole, the
  // others keep waiting rather than flood the queue.
  ASSERT_TRUE(sender_.AnswerOldest(Response(200)));
  ASSERT_EQ(engine_->RecordCompleted(clock_.Now()), 1u);
  ASSERT_EQ(engine_->DispatchDue(clock_.Now()), 1u);
  ASSERT_TRUE(sender_.AnswerOldest(Response(200)));
  ASSERT_EQ(engine_->RecordCompleted(clock_.Now()), 1u);
  engine_->CommitPending();
  ASSERT_TRUE(answers[0].has_value());
  ASSERT_TRUE(answers[0]->ok()) << answers[0]->status();
  for (const auto& result : (*answers[0])->results()) {
    EXPECT_EQ(result.code(), 0) << result.message();
  }
  EXPECT_FALSE(answers[1].has_value());
  EXPECT_FALSE(answers[2].has_value());
  EXPECT_EQ(StoredDeliveries(), 102u);
}

TEST_F(SubmitBatchTest, BatchAfterShutdownIsUnavailable) {
  StartEngine();
  AddEndpoint();
  engine_->Stop(absl::ZeroDuration());
  SubmitEventsRequest request;
  *request.add_events() = Event();
  absl::StatusOr<SubmitEventsResponse> refused = SubmitBatch(request);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StoredDeliveries(), 0u);
}

}  // namespace
}  // namespace webhookd
