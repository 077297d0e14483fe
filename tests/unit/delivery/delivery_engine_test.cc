// The delivery engine stepped by hand: a fake clock, a fake sender that the
// test answers, a real LevelDB in a temporary directory, and no engine
// threads (DeliveryEngineOptions::run_threads = false). Nothing here sleeps
// or opens a socket; each test reads as one rule of the engine.

#include "server/delivery/delivery_engine.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/caller.h"
#include "server/common/time_util.h"
#include "server/delivery/auto_disable.h"
#include "server/delivery/endpoint_manager.h"
#include "server/delivery/payload.h"
#include "server/delivery/retry_policy.h"
#include "server/security/signature.h"
#include "storage/leveldb/leveldb_store.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_http_sender.h"
#include "tests/support/test_dir.h"

namespace webhookd {
namespace {

using ::testing::HasSubstr;
using ::webhookd::testing::FakeClock;
using ::webhookd::testing::FakeHttpSender;
using ::webhookd::testing::NetworkError;
using ::webhookd::testing::Response;
using ::webhookd::testing::TestDir;

constexpr char kThread[] = "thread-1";

class DeliveryEngineTest : public ::testing::Test {
 protected:
  void SetUp() override { OpenStore(); }

  // Opens the store; a second call reopens it (the engine must be stopped).
  void OpenStore() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
        LevelDbStore::Open(dir_.Sub("db"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  void TearDown() override { StopEngine(); }

  // Starts an engine over the store; a second call is a restart.
  void StartEngine(DeliveryEngineOptions options = {}) {
    StopEngine();
    TargetPolicy policy;
    policy.allow_insecure_targets = true;
    options.run_threads = false;
    scheduler_ = std::make_unique<Scheduler>(options.limits);
    endpoints_ = std::make_unique<EndpointManager>(*store_, clock_, policy,
                                                   *scheduler_, bus_);
    ASSERT_TRUE(endpoints_->Load().ok());
    sender_ = std::make_unique<FakeHttpSender>();
    engine_ = std::make_unique<DeliveryEngine>(
        *store_, *endpoints_, *scheduler_, bus_, *sender_, clock_, options);
    ASSERT_TRUE(engine_->Start().ok());
  }

  // Stops the engine with its attempts still open: like a crash, the
  // store keeps the state before them.
  void StopEngine() {
    if (engine_ != nullptr) engine_->Stop(absl::ZeroDuration());
    engine_.reset();
    endpoints_.reset();
    scheduler_.reset();
    sender_.reset();
  }

  std::string AddEndpoint(const std::string& secret = "",
                          const std::string& thread = kThread) {
    Endpoint request;
    request.set_thread_id(thread);
    request.set_name("receiver");
    request.set_url("http://127.0.0.1:9/hook");
    request.set_secret(secret);
    absl::StatusOr<Endpoint> created =
        endpoints_->Create(Caller::Unrestricted(), request);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->id() : "";
  }

  // Submits one event to kThread and commits it; returns the result.
  absl::StatusOr<SubmitEventResponse> Submit() {
    webhook::v1::SubmitEventRequest request;
    request.set_thread_id(kThread);
    request.set_user_id(42);
    request.mutable_execution()->set_prompt("Generate today's summary");
    std::optional<absl::StatusOr<SubmitEventResponse>> answer;
    engine_->SubmitAsync(Caller::Unrestricted(), request,
                         [&answer](absl::StatusOr<SubmitEventResponse> r) {
                           answer = std::move(r);
                         });
    engine_->CommitPending();
    if (!answer.has_value()) return absl::InternalError("no answer");
    return *std::move(answer);
  }

  // Submits one event to `thread` without committing it: the answer, set
  // when it comes.
  using LaterAnswer = std::optional<absl::StatusOr<SubmitEventResponse>>;
  std::shared_ptr<LaterAnswer> SubmitLater(
      const std::string& thread = kThread) {
    webhook::v1::SubmitEventRequest request;
    request.set_thread_id(thread);
    request.set_user_id(42);
    auto answer = std::make_shared<LaterAnswer>();
    engine_->SubmitAsync(Caller::Unrestricted(), request,
                         [answer](absl::StatusOr<SubmitEventResponse> r) {
                           *answer = std::move(r);
                         });
    return answer;
  }

  // Submits one event expected to create exactly one delivery.
  std::string SubmitOne() {
    absl::StatusOr<SubmitEventResponse> response = Submit();
    EXPECT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response.ok() ? response->delivery_ids_size() : 0, 1);
    return response.ok() && response->delivery_ids_size() == 1
               ? response->delivery_ids(0)
               : "";
  }

  // Every delivery stored.
  std::vector<Delivery> ListDeliveries() {
    absl::StatusOr<DeliveryPage> page =
        store_->ListDeliveries(DeliveryFilter(), 1000, "");
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? page->deliveries : std::vector<Delivery>();
  }

  Delivery Get(const std::string& id) {
    absl::StatusOr<Delivery> delivery = store_->GetDelivery(id);
    EXPECT_TRUE(delivery.ok()) << delivery.status();
    return delivery.ok() ? *delivery : Delivery();
  }

  // With the engine stopped: replaces the event of delivery `id` by the
  // placeholder webhookd --repair writes for a lost event whose delivery
  // survived (storage/leveldb/repair.h), and reopens the store, whose
  // payload cache still holds the payload.
  void LosePayloadOf(const std::string& id) {
    const Delivery delivery = Get(id);
    EventRecord placeholder;
    placeholder.set_id(delivery.event_id());
    placeholder.set_thread_id(delivery.thread_id());
    placeholder.set_user_id(delivery.user_id());
    placeholder.set_event_type(delivery.event_type());
    placeholder.set_payload_lost(true);
    placeholder.add_delivery_ids(id);
    ASSERT_TRUE(store_->InsertEvent(placeholder, {}).ok());
    OpenStore();
  }

  // Answers the oldest open attempt and records it at the current time.
  void Answer(HttpResult result) {
    ASSERT_TRUE(sender_->AnswerOldest(std::move(result)));
    ASSERT_EQ(engine_->RecordCompleted(clock_.Now()), 1u);
  }

  size_t DispatchAt(absl::Time when) { return engine_->DispatchDue(when); }

  TestDir dir_;
  FakeClock clock_;
  std::unique_ptr<LevelDbStore> store_;
  ChangeBus bus_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<EndpointManager> endpoints_;
  std::unique_ptr<FakeHttpSender> sender_;
  std::unique_ptr<DeliveryEngine> engine_;
};

TEST_F(DeliveryEngineTest, FirstAttemptIsSignedAndASuccessEndsTheDelivery) {
  StartEngine();
  AddEndpoint("s3cret");
  const std::string id = SubmitOne();
  EXPECT_EQ(Get(id).status(), webhook::v1::DELIVERY_STATUS_PENDING);

  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  const HttpRequest sent = sender_->sent().at(0);
  EXPECT_EQ(sender_->Header(0, "X-Hub-Signature-256"),
            SignatureHex("s3cret", sent.body));
  EXPECT_EQ(sender_->Header(0, "X-Webhook-Id"), id);
  EXPECT_EQ(sender_->Header(0, "X-Webhook-Attempt"), "1");
  EXPECT_THAT(sent.body, HasSubstr("Generate today's summary"));

  Answer(Response(204));
  const Delivery done = Get(id);
  EXPECT_EQ(done.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(done.attempts(), 1);
  EXPECT_EQ(done.response_code(), 204);
  EXPECT_EQ(engine_->QueuedCount(), 0u);
}

TEST_F(DeliveryEngineTest, RotationGraceIsDecidedByTheTimeOfEachAttempt) {
  StartEngine();
  const std::string endpoint = AddEndpoint("old-s3cret");
  absl::StatusOr<RotatedSecret> rotated = endpoints_->RotateSecret(
      Caller::Unrestricted(), endpoint, "new-s3cret", absl::Seconds(10));
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_TRUE(rotated->endpoint.has_previous_secret());
  EXPECT_EQ(FromProtoTime(rotated->endpoint.previous_secret_expire_time()),
            clock_.Now() + absl::Seconds(10));
  SubmitOne();

  // Within the grace: the documented header under the previous secret.
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  const std::string body = sender_->sent().at(0).body;
  EXPECT_EQ(sender_->Header(0, "X-Hub-Signature-256"),
            SignatureHex("old-s3cret", body));
  EXPECT_EQ(sender_->Header(0, "X-Hub-Signature-256-Next"),
            SignatureHex("new-s3cret", body));
  Answer(Response(500));

  // The retry, 6 s after the rotation, is still within it; the next one,
  // 22 s after it, is past it: the new secret alone.
  clock_.Advance(absl::Seconds(6));
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  EXPECT_EQ(sender_->Header(1, "X-Hub-Signature-256"),
            SignatureHex("old-s3cret", body));
  Answer(Response(500));
  clock_.Advance(absl::Seconds(16));
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  EXPECT_EQ(sender_->Header(2, "X-Hub-Signature-256"),
            SignatureHex("new-s3cret", body));
  EXPECT_EQ(sender_->Header(2, "X-Hub-Signature-256-Next"), "");

  // The endpoint no longer shows it, and its next write drops it.
  absl::StatusOr<Endpoint> shown =
      endpoints_->Get(Caller::Unrestricted(), endpoint);
  ASSERT_TRUE(shown.ok());
  EXPECT_FALSE(shown->has_previous_secret());
  EXPECT_FALSE(shown->has_previous_secret_expire_time());
  EXPECT_EQ(store_->GetEndpoint(endpoint)->previous_secret(), "old-s3cret");
  ASSERT_TRUE(
      endpoints_->SetEnabled(Caller::Unrestricted(), endpoint, false).ok());
  EXPECT_EQ(store_->GetEndpoint(endpoint)->previous_secret(), "");
}

TEST_F(DeliveryEngineTest, RetriesFollowTheScheduleCountedFromEachOutcome) {
  StartEngine();
  AddEndpoint();
  const std::string id = SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);

  const absl::Duration kSchedule[] = {absl::Seconds(5), absl::Seconds(15),
                                      absl::Seconds(60)};
  for (int retry = 0; retry < 3; ++retry) {
    clock_.Advance(absl::Milliseconds(250));  // The attempt takes a while.
    Answer(Response(500));
    const Delivery retrying = Get(id);
    EXPECT_EQ(retrying.status(), webhook::v1::DELIVERY_STATUS_RETRYING);
    EXPECT_EQ(retrying.attempts(), retry + 1);
    const absl::Time due = clock_.Now() + kSchedule[retry];
    EXPECT_EQ(FromProtoTime(retrying.next_attempt_time()), due);

    EXPECT_EQ(DispatchAt(due - absl::Milliseconds(1)), 0u) << "retry " << retry;
    clock_.Advance(kSchedule[retry]);
    ASSERT_EQ(DispatchAt(clock_.Now()), 1u) << "retry " << retry;
    EXPECT_EQ(sender_->Header(retry + 1, "X-Webhook-Attempt"),
              std::to_string(retry + 2));
  }
  Answer(NetworkError("connection refused"));
  const Delivery failed = Get(id);
  EXPECT_EQ(failed.status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_EQ(failed.attempts(), 4);
  EXPECT_EQ(failed.max_attempts(), 4);
  EXPECT_THAT(failed.last_error(), HasSubstr("connection refused"));
  EXPECT_EQ(DispatchAt(clock_.Now() + absl::Hours(1)), 0u);
  EXPECT_EQ(sender_->sent().size(), 4u);
}

TEST_F(DeliveryEngineTest, RetryAfterIsClampedToTenMinutes) {
  StartEngine();
  AddEndpoint();
  const std::string id = SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  HttpResult busy = Response(503);
  busy.retry_after = absl::Hours(2);
  clock_.Advance(absl::Seconds(1));  // Longer than the response took.
  Answer(busy);

  const absl::Time due = clock_.Now() + absl::Minutes(10);
  EXPECT_EQ(FromProtoTime(Get(id).next_attempt_time()), due);
  EXPECT_EQ(DispatchAt(due - absl::Milliseconds(1)), 0u);
  EXPECT_EQ(DispatchAt(due), 1u);
}

TEST_F(DeliveryEngineTest, RetryAfterShorterThanTheScheduleKeepsTheSchedule) {
  StartEngine();
  AddEndpoint();
  const std::string id = SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  HttpResult limited = Response(429);
  limited.retry_after = absl::Seconds(1);
  clock_.Advance(absl::Seconds(1));  // Longer than the response took.
  Answer(limited);

  EXPECT_EQ(FromProtoTime(Get(id).next_attempt_time()),
            clock_.Now() + absl::Seconds(5));
  EXPECT_EQ(DispatchAt(clock_.Now() + absl::Seconds(1)), 0u);
}

TEST_F(DeliveryEngineTest, SubmitBeyondTheQueueLimitIsRefusedAndStoresNothing) {
  DeliveryEngineOptions options;
  options.limits.max_queued_deliveries = 2;
  StartEngine(options);
  for (int i = 0; i < 3; ++i) AddEndpoint();

  absl::StatusOr<SubmitEventResponse> refused = Submit();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("--max_queued_deliveries"));
  absl::StatusOr<DeliveryPage> stored = store_->ListDeliveries({}, 100, "");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_TRUE(stored->deliveries.empty());
  EXPECT_EQ(engine_->QueuedCount(), 0u);
  EXPECT_EQ(DispatchAt(clock_.Now()), 0u);
}

TEST_F(DeliveryEngineTest, PerEndpointCapParksTheRestUntilAnAttemptEnds) {
  DeliveryEngineOptions options;
  options.limits.max_in_flight_per_endpoint = 2;
  StartEngine(options);
  AddEndpoint();
  for (int i = 0; i < 5; ++i) SubmitOne();

  EXPECT_EQ(DispatchAt(clock_.Now()), 2u);
  EXPECT_EQ(DispatchAt(clock_.Now()), 0u);
  Answer(Response(200));
  EXPECT_EQ(DispatchAt(clock_.Now()), 1u);
  EXPECT_EQ(sender_->open(), 2u);
}

TEST_F(DeliveryEngineTest, MaxInFlightBoundsAttemptsAcrossEndpoints) {
  DeliveryEngineOptions options;
  options.limits.max_in_flight = 3;
  StartEngine(options);
  AddEndpoint();
  AddEndpoint();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Submit().ok());

  EXPECT_EQ(DispatchAt(clock_.Now()), 3u);
  EXPECT_EQ(DispatchAt(clock_.Now()), 0u);
  ASSERT_EQ(sender_->AnswerAll(Response(200)), 3u);
  EXPECT_EQ(engine_->RecordCompleted(clock_.Now()), 3u);
  EXPECT_EQ(DispatchAt(clock_.Now()), 3u);
}

TEST_F(DeliveryEngineTest, DisabledEndpointHoldsItsRetriesUntilEnabled) {
  StartEngine();
  const std::string endpoint = AddEndpoint();
  const std::string id = SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  Answer(Response(500));

  ASSERT_TRUE(endpoints_
                  ->SetEnabled(Caller::Unrestricted(), endpoint,
                               /*enabled=*/false)
                  .ok());
  // No attempt could start, so a manual retry is refused, not accepted and
  // then held.
  const absl::StatusOr<Delivery> retried =
      engine_->Retry(Caller::Unrestricted(), id);
  EXPECT_EQ(retried.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(retried.status().message(), HasSubstr("is disabled"));
  clock_.Advance(absl::Minutes(5));
  EXPECT_EQ(DispatchAt(clock_.Now()), 0u);
  EXPECT_EQ(Get(id).status(), webhook::v1::DELIVERY_STATUS_RETRYING);
  EXPECT_EQ(Get(id).attempt_history_size(), 1);
  EXPECT_EQ(engine_->QueuedCount(), 1u);

  ASSERT_TRUE(endpoints_
                  ->SetEnabled(Caller::Unrestricted(), endpoint,
                               /*enabled=*/true)
                  .ok());
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  EXPECT_EQ(sender_->Header(1, "X-Webhook-Attempt"), "2");
}

TEST_F(DeliveryEngineTest, DisabledEndpointGetsNoDeliveryOfNewEvents) {
  StartEngine();
  const std::string endpoint = AddEndpoint();
  ASSERT_TRUE(endpoints_
                  ->SetEnabled(Caller::Unrestricted(), endpoint,
                               /*enabled=*/false)
                  .ok());
  absl::StatusOr<SubmitEventResponse> response = Submit();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->delivery_ids_size(), 0);
  EXPECT_EQ(DispatchAt(clock_.Now()), 0u);
}

TEST_F(DeliveryEngineTest, DeleteDuringAnAttemptRecordsItAndRetriesNoMore) {
  StartEngine();
  const std::string endpoint = AddEndpoint();
  const std::string in_flight = SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  const std::string queued = SubmitOne();  // Not dispatched yet.

  ASSERT_TRUE(endpoints_->Delete(Caller::Unrestricted(), endpoint).ok());
  const Delivery ended = Get(queued);
  EXPECT_EQ(ended.status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_EQ(ended.attempts(), 0);
  EXPECT_EQ(ended.last_error(), "endpoint was deleted");

  Answer(Response(500));  // The attempt under way when it was deleted.
  const Delivery recorded = Get(in_flight);
  EXPECT_EQ(recorded.status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_EQ(recorded.attempts(), 1);
  EXPECT_EQ(recorded.response_code(), 500);
  EXPECT_EQ(DispatchAt(clock_.Now() + absl::Hours(1)), 0u);
  EXPECT_EQ(sender_->sent().size(), 1u);
}

TEST_F(DeliveryEngineTest, AttemptCutShortByACrashIsMadeAgainAfterRestart) {
  StartEngine();
  AddEndpoint();
  const std::string id = SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  StopEngine();  // The attempt never came back.
  EXPECT_EQ(Get(id).status(), webhook::v1::DELIVERY_STATUS_PENDING);
  EXPECT_EQ(Get(id).attempts(), 0);

  clock_.Advance(absl::Seconds(30));
  StartEngine();
  EXPECT_EQ(engine_->QueuedCount(), 1u);
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  EXPECT_EQ(sender_->Header(0, "X-Webhook-Id"), id);
  EXPECT_EQ(sender_->Header(0, "X-Webhook-Attempt"), "1");
  Answer(Response(200));
  EXPECT_EQ(Get(id).status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
}

TEST_F(DeliveryEngineTest, OverdueRetryGoesOutAtOnceAfterRestart) {
  StartEngine();
  AddEndpoint();
  const std::string id = SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  Answer(Response(502));
  StopEngine();

  clock_.Advance(absl::Hours(1));  // Down well past the 5 s retry.
  StartEngine();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  EXPECT_EQ(sender_->Header(0, "X-Webhook-Attempt"), "2");
}

TEST_F(DeliveryEngineTest, ManualRetryOfAFailedDeliveryIsDueAtOnce) {
  StartEngine();
  AddEndpoint();
  const std::string id = SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  Answer(Response(500));

  EXPECT_EQ(engine_->Retry(Caller::Unrestricted(), id).status().code(),
            absl::StatusCode::kOk);
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  Answer(Response(200));
  const Delivery done = Get(id);
  EXPECT_EQ(done.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  ASSERT_EQ(done.attempt_history_size(), 2);
  EXPECT_TRUE(done.attempt_history(1).manual());
}

TEST_F(DeliveryEngineTest, RetryOfAnEndedDeliveryWithAttemptsLeftIsRefused) {
  StartEngine();
  AddEndpoint();
  const std::string id = SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  Answer(Response(500));
  StopEngine();
  // Ended FAILED before its attempts were used (counted so in its
  // endpoint's stats), its endpoint still there.
  ASSERT_TRUE(store_
                  ->UpdateDeliveries({EndedChange(Get(id), "ended early")},
                                     Durability::kSynced)
                  .ok());
  StartEngine();

  const absl::StatusOr<Delivery> retried =
      engine_->Retry(Caller::Unrestricted(), id);

  EXPECT_EQ(retried.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(retried.status().message(), HasSubstr("ResendDelivery"));
  EXPECT_EQ(DispatchAt(clock_.Now() + absl::Hours(1)), 0u);
  EXPECT_EQ(Get(id).status(), webhook::v1::DELIVERY_STATUS_FAILED);
}

TEST_F(DeliveryEngineTest, RetryOfADeliveryWhosePayloadWasLostIsRefused) {
  StartEngine();
  AddEndpoint();
  const std::string id = SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  Answer(Response(500));
  StopEngine();
  // What webhookd --repair leaves when the event was lost: the delivery,
  // which awaited a retry, ended, and its event a placeholder.
  DeliveryChange ended;
  ended.delivery = EndedDelivery(Get(id), std::string(kPayloadLostError));
  ASSERT_TRUE(store_->UpdateDeliveries({ended}, Durability::kSynced).ok());
  LosePayloadOf(id);
  StartEngine();
  ASSERT_EQ(Get(id).payload(), "") << "readable, without payload";

  const absl::StatusOr<Delivery> retried =
      engine_->Retry(Caller::Unrestricted(), id);

  EXPECT_EQ(retried.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(retried.status().message(),
              HasSubstr("\"" + id + "\" was lost in a database repair"));
  EXPECT_EQ(DispatchAt(clock_.Now() + absl::Hours(1)), 0u);
  EXPECT_EQ(sender_->sent().size(), 0u);
  EXPECT_EQ(Get(id).status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_EQ(Get(id).attempts(), 1);
}

TEST_F(DeliveryEngineTest, QueuedDeliveryWhosePayloadWasLostEndsUnsent) {
  StartEngine();
  AddEndpoint();
  const std::string id = SubmitOne();
  StopEngine();  // Still queued for its first attempt.
  LosePayloadOf(id);
  StartEngine();
  ASSERT_EQ(engine_->QueuedCount(), 1u);

  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);

  EXPECT_EQ(sender_->sent().size(), 0u) << "no attempt with an empty body";
  const Delivery ended = Get(id);
  EXPECT_EQ(ended.status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_EQ(ended.attempts(), 0);
  EXPECT_EQ(ended.last_error(), kPayloadLostError);
  EXPECT_EQ(engine_->QueuedCount(), 0u);
  absl::StatusOr<std::vector<QueuedDelivery>> queue = store_->LoadQueue();
  ASSERT_TRUE(queue.ok()) << queue.status();
  EXPECT_TRUE(queue->empty());
}

TEST_F(DeliveryEngineTest, TestDeliveryAnswersWithTheFinishedDelivery) {
  StartEngine();
  const std::string endpoint = AddEndpoint("k");
  std::optional<absl::StatusOr<Delivery>> finished;
  ASSERT_TRUE(engine_
                  ->SendTest(Caller::Unrestricted(), endpoint, R"({"a":1})",
                             [&finished](absl::StatusOr<Delivery> d) {
                               finished = std::move(d);
                             })
                  .ok());
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  EXPECT_EQ(sender_->sent().at(0).body, R"({"a":1})");
  EXPECT_FALSE(finished.has_value());
  Answer(Response(418));
  ASSERT_TRUE(finished.has_value());
  ASSERT_TRUE(finished->ok()) << finished->status();
  EXPECT_EQ((*finished)->status(), webhook::v1::DELIVERY_STATUS_FAILED);
  EXPECT_EQ((*finished)->response_code(), 418);
  EXPECT_EQ((*finished)->max_attempts(), 1);
  EXPECT_EQ(DispatchAt(clock_.Now() + absl::Hours(1)), 0u);
}

// Resend and recover: new deliveries of the same event.

// A delivery that failed for good: one attempt allowed, answered 500.
class ResendTest : public DeliveryEngineTest {
 protected:
  void SetUp() override {
    DeliveryEngineTest::SetUp();
    DeliveryEngineOptions options;
    options.retry_policy = RetryPolicy({});
    StartEngine(options);
    endpoint_ = AddEndpoint("s3cret");
  }

  std::string FailOne() {
    const std::string id = SubmitOne();
    EXPECT_EQ(DispatchAt(clock_.Now()), 1u);
    Answer(Response(500));
    EXPECT_EQ(Get(id).status(), webhook::v1::DELIVERY_STATUS_FAILED);
    return id;
  }

  std::string endpoint_;
};

TEST_F(ResendTest, ResendIsANewDeliveryOfTheSameEventWithTheSamePayload) {
  const std::string original = FailOne();
  clock_.Advance(absl::Minutes(5));

  const absl::StatusOr<Delivery> resent =
      engine_->Resend(Caller::Unrestricted(), original);

  ASSERT_TRUE(resent.ok()) << resent.status();
  EXPECT_NE(resent->id(), original);
  EXPECT_EQ(resent->resent_from(), original);
  EXPECT_EQ(resent->event_id(), Get(original).event_id());
  EXPECT_EQ(resent->status(), webhook::v1::DELIVERY_STATUS_PENDING);
  EXPECT_EQ(resent->attempts(), 0);
  EXPECT_EQ(resent->max_attempts(), 1);
  EXPECT_EQ(FromProtoTime(resent->create_time()), clock_.Now());
  EXPECT_EQ(resent->payload(), Get(original).payload());
  EXPECT_EQ(Get(original).resent_by(), resent->id());
  EXPECT_EQ(Get(original).attempt_history_size(), 1) << "history kept";

  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  EXPECT_EQ(sender_->sent().at(1).body, sender_->sent().at(0).body);
  EXPECT_EQ(sender_->Header(1, "X-Webhook-Id"), resent->id());
  EXPECT_EQ(sender_->Header(1, "X-Hub-Signature-256"),
            sender_->Header(0, "X-Hub-Signature-256"));
  Answer(Response(200));
  EXPECT_EQ(Get(resent->id()).status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
}

TEST_F(ResendTest, ResendOfASuccessfulDeliveryIsAllowedAgainAndAgain) {
  const std::string id = SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  Answer(Response(200));

  const absl::StatusOr<Delivery> first =
      engine_->Resend(Caller::Unrestricted(), id);
  const absl::StatusOr<Delivery> second =
      engine_->Resend(Caller::Unrestricted(), id);

  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(first->id(), second->id());
  EXPECT_EQ(Get(id).resent_by(), second->id()) << "the latest";
  EXPECT_EQ(DispatchAt(clock_.Now()), 2u);
}

TEST_F(ResendTest, ResendOfADeliveryStillBeingAttemptedIsRefused) {
  const std::string id = SubmitOne();  // PENDING.

  const absl::StatusOr<Delivery> resent =
      engine_->Resend(Caller::Unrestricted(), id);

  EXPECT_EQ(resent.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(resent.status().message(), HasSubstr("has not ended"));
}

TEST_F(ResendTest, ResendOfAnotherUsersDeliveryIsNotFound) {
  const std::string id = FailOne();  // User 42's.

  EXPECT_EQ(engine_->Resend(Caller::User(7), id).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(
      engine_->Resend(Caller::Unrestricted(), "dlv_missing").status().code(),
      absl::StatusCode::kNotFound);
  EXPECT_TRUE(Get(id).resent_by().empty());
}

TEST_F(ResendTest, ResendToADisabledOrDeletedEndpointIsRefused) {
  const std::string id = FailOne();
  ASSERT_TRUE(
      endpoints_->SetEnabled(Caller::Unrestricted(), endpoint_, false).ok());
  EXPECT_EQ(engine_->Resend(Caller::Unrestricted(), id).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(endpoints_->Delete(Caller::Unrestricted(), endpoint_).ok());
  const absl::StatusOr<Delivery> resent =
      engine_->Resend(Caller::Unrestricted(), id);
  EXPECT_EQ(resent.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(resent.status().message(), HasSubstr("deleted"));
}

TEST_F(ResendTest, ResendOfATestDeliveryIsRefused) {
  std::optional<Delivery> finished;
  ASSERT_TRUE(engine_
                  ->SendTest(Caller::Unrestricted(), endpoint_, "",
                             [&finished](absl::StatusOr<Delivery> d) {
                               if (d.ok()) finished = *d;
                             })
                  .ok());
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  Answer(Response(200));
  ASSERT_TRUE(finished.has_value());

  const absl::StatusOr<Delivery> resent =
      engine_->Resend(Caller::Unrestricted(), finished->id());

  EXPECT_EQ(resent.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(resent.status().message(), HasSubstr("test delivery"));
}

TEST_F(ResendTest, ResendOfADeliveryWhosePayloadWasLostIsRefused) {
  const std::string id = FailOne();
  StopEngine();
  LosePayloadOf(id);
  DeliveryEngineOptions options;
  options.retry_policy = RetryPolicy({});
  StartEngine(options);

  const absl::StatusOr<Delivery> resent =
      engine_->Resend(Caller::Unrestricted(), id);

  EXPECT_EQ(resent.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(resent.status().message(), HasSubstr("lost"));
}

TEST_F(ResendTest, ResendIsQueuedAfterARestart) {
  const std::string id = FailOne();
  const absl::StatusOr<Delivery> resent =
      engine_->Resend(Caller::Unrestricted(), id);
  ASSERT_TRUE(resent.ok()) << resent.status();
  StopEngine();
  OpenStore();
  DeliveryEngineOptions options;
  options.retry_policy = RetryPolicy({});
  StartEngine(options);

  EXPECT_EQ(engine_->QueuedCount(), 1u);
  EXPECT_EQ(Get(resent->id()).resent_from(), id);
  EXPECT_EQ(Get(id).resent_by(), resent->id());
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  Answer(Response(200));
  EXPECT_EQ(Get(resent->id()).status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
}

TEST_F(ResendTest, RecoverResendsEachFailedDeliveryOfTheEndpointOnce) {
  const absl::Time start = clock_.Now();
  const std::string old = FailOne();
  clock_.Advance(absl::Hours(1));
  const absl::Time since = clock_.Now();
  const std::string a = FailOne();
  const std::string b = FailOne();
  const std::string ok = SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  Answer(Response(200));

  const absl::StatusOr<RecoverResult> first =
      engine_->Recover(Caller::Unrestricted(), endpoint_, since);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->delivery_ids.size(), 2u);
  EXPECT_FALSE(first->more);
  EXPECT_FALSE(Get(a).resent_by().empty());
  EXPECT_FALSE(Get(b).resent_by().empty());
  EXPECT_TRUE(Get(old).resent_by().empty()) << "created before `since`";
  EXPECT_TRUE(Get(ok).resent_by().empty());

  const absl::StatusOr<RecoverResult> again =
      engine_->Recover(Caller::Unrestricted(), endpoint_, start);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->delivery_ids.size(), 1u) << "only the older one is left";
  EXPECT_EQ(Get(again->delivery_ids[0]).resent_from(), old);
  EXPECT_EQ(engine_->QueuedCount(), 3u);
}

TEST_F(ResendTest, RecoverChecksTheEndpoint) {
  FailOne();
  EXPECT_EQ(engine_->Recover(Caller::User(7), endpoint_, absl::InfinitePast())
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(
      endpoints_->SetEnabled(Caller::Unrestricted(), endpoint_, false).ok());
  EXPECT_EQ(
      engine_->Recover(Caller::Unrestricted(), endpoint_, absl::InfinitePast())
          .status()
          .code(),
      absl::StatusCode::kFailedPrecondition);
}

// Auto-disable: the policy alone, then the engine applying it.

TEST(FailingDetailTest, NeedsBothThePeriodAndTheCount) {
  AutoDisableOptions options;
  options.after = absl::Hours(1);
  options.min_failures = 3;
  const absl::Time start = absl::FromUnixSeconds(1'700'000'000);
  FailureStreak streak{3, start};

  EXPECT_FALSE(FailingDetail(streak, start + absl::Minutes(59), options));
  EXPECT_FALSE(
      FailingDetail(FailureStreak{2, start}, start + absl::Hours(2), options));
  EXPECT_FALSE(FailingDetail(FailureStreak{}, start + absl::Hours(2), options));
  const std::optional<std::string> detail =
      FailingDetail(streak, start + absl::Hours(1), options);
  ASSERT_TRUE(detail.has_value());
  EXPECT_THAT(*detail, HasSubstr("3 deliveries in a row failed since "
                                 "2023-11-14T22:13:20.000Z"));
  options.after = absl::ZeroDuration();
  EXPECT_FALSE(FailingDetail(streak, start + absl::Hours(100), options));
}

// One attempt per delivery; disabled after 3 failed deliveries in an hour.
class AutoDisableTest : public DeliveryEngineTest {
 protected:
  void SetUp() override {
    DeliveryEngineTest::SetUp();
    Start();
    endpoint_ = AddEndpoint();
  }

  void Start() {
    DeliveryEngineOptions options;
    options.retry_policy = RetryPolicy({});
    options.auto_disable.after = absl::Hours(1);
    options.auto_disable.min_failures = 3;
    StartEngine(options);
  }

  // Submits one delivery and answers its attempt with `code`.
  std::string Deliver(int code) {
    const std::string id = SubmitOne();
    EXPECT_EQ(DispatchAt(clock_.Now()), 1u);
    Answer(Response(code));
    return id;
  }

  Endpoint Current() {
    absl::StatusOr<Endpoint> endpoint =
        endpoints_->Get(Caller::Unrestricted(), endpoint_);
    EXPECT_TRUE(endpoint.ok()) << endpoint.status();
    return endpoint.ok() ? *endpoint : Endpoint();
  }

  std::string endpoint_;
};

TEST_F(AutoDisableTest, FailingForThePeriodWithEnoughFailuresDisables) {
  const absl::Time first = clock_.Now();
  Deliver(500);
  clock_.Advance(absl::Hours(2));
  Deliver(500);
  EXPECT_TRUE(Current().enabled()) << "2 failures only";
  clock_.Advance(absl::Minutes(1));
  Deliver(503);

  const Endpoint disabled = Current();
  EXPECT_FALSE(disabled.enabled());
  EXPECT_EQ(disabled.disabled_reason(), webhook::v1::DISABLED_REASON_FAILING);
  EXPECT_EQ(FromProtoTime(disabled.disable_time()), clock_.Now());
  EXPECT_THAT(
      disabled.disabled_detail(),
      HasSubstr(
          "3 deliveries in a row failed since " +
          FormatTimestampMillis(absl::ToUnixMillis(first)).substr(0, 19)));
  // Deliveries of new events are not created; queued ones are held.
  absl::StatusOr<SubmitEventResponse> none = Submit();
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->delivery_ids_size(), 0);
}

TEST_F(AutoDisableTest, FailuresWithinThePeriodDoNotDisable) {
  for (int i = 0; i < 5; ++i) {
    Deliver(500);
    clock_.Advance(absl::Minutes(10));
  }
  EXPECT_TRUE(Current().enabled());
}

TEST_F(AutoDisableTest, ASuccessStartsTheStreakAgain) {
  Deliver(500);
  Deliver(500);
  clock_.Advance(absl::Hours(2));
  Deliver(200);
  Deliver(500);
  Deliver(500);
  clock_.Advance(absl::Minutes(30));
  Deliver(500);
  EXPECT_TRUE(Current().enabled()) << "3 failures, but for 30 minutes only";
}

TEST_F(AutoDisableTest, RetriesThatFailAreNotFailedDeliveries) {
  StopEngine();
  DeliveryEngineOptions options;
  options.auto_disable.after = absl::Hours(1);
  options.auto_disable.min_failures = 1;
  options.retry_policy = RetryPolicy({absl::Hours(2)});
  StartEngine(options);
  SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  Answer(Response(500));
  clock_.Advance(absl::Hours(3));
  EXPECT_TRUE(Current().enabled()) << "RETRYING: not ended";
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  Answer(Response(500));
  EXPECT_TRUE(Current().enabled()) << "1 failure only an instant ago";
}

TEST_F(AutoDisableTest, GoneDisablesAtOnceAndHoldsTheRetry) {
  StopEngine();
  DeliveryEngineOptions options;
  options.retry_policy = RetryPolicy({absl::Seconds(5)});
  StartEngine(options);
  const std::string id = SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  Answer(Response(410));

  const Endpoint disabled = Current();
  EXPECT_FALSE(disabled.enabled());
  EXPECT_EQ(disabled.disabled_reason(), webhook::v1::DISABLED_REASON_GONE);
  EXPECT_THAT(disabled.disabled_detail(), HasSubstr("410 Gone"));
  EXPECT_THAT(disabled.disabled_detail(), HasSubstr(id));
  EXPECT_EQ(DispatchAt(clock_.Now() + absl::Minutes(1)), 0u) << "held";
  EXPECT_EQ(Get(id).status(), webhook::v1::DELIVERY_STATUS_RETRYING);
}

TEST_F(AutoDisableTest, GoneIsAnOrdinaryFailureWithoutDisableOn410) {
  StopEngine();
  DeliveryEngineOptions options;
  options.retry_policy = RetryPolicy({});
  options.auto_disable.disable_on_410 = false;
  StartEngine(options);
  Deliver(410);
  EXPECT_TRUE(Current().enabled());
}

TEST_F(AutoDisableTest, EnablingClearsTheReasonAndTheStreak) {
  Deliver(500);
  Deliver(500);
  clock_.Advance(absl::Hours(2));
  Deliver(500);
  ASSERT_FALSE(Current().enabled());

  ASSERT_TRUE(
      endpoints_->SetEnabled(Caller::Unrestricted(), endpoint_, true).ok());
  const Endpoint enabled = Current();
  EXPECT_TRUE(enabled.enabled());
  EXPECT_EQ(enabled.disabled_reason(),
            webhook::v1::DISABLED_REASON_UNSPECIFIED);
  EXPECT_FALSE(enabled.has_disable_time());
  EXPECT_TRUE(enabled.disabled_detail().empty());
  absl::StatusOr<FailureStreak> streak = store_->GetFailureStreak(endpoint_);
  ASSERT_TRUE(streak.ok());
  EXPECT_EQ(streak->failures, 0);
  Deliver(500);
  EXPECT_TRUE(Current().enabled()) << "counting anew";
}

TEST_F(AutoDisableTest, ManualDisableRecordsItsReason) {
  ASSERT_TRUE(
      endpoints_->SetEnabled(Caller::Unrestricted(), endpoint_, false).ok());
  const Endpoint disabled = Current();
  EXPECT_EQ(disabled.disabled_reason(), webhook::v1::DISABLED_REASON_MANUAL);
  EXPECT_EQ(FromProtoTime(disabled.disable_time()), clock_.Now());
}

TEST_F(AutoDisableTest, TheStreakSurvivesARestart) {
  Deliver(500);
  Deliver(500);
  StopEngine();
  OpenStore();
  Start();
  clock_.Advance(absl::Hours(2));
  Deliver(500);
  EXPECT_EQ(Current().disabled_reason(), webhook::v1::DISABLED_REASON_FAILING);
}

}  // namespace
}  // namespace webhookd

namespace webhookd {
namespace {

// Admission control: one attempt at a time, so that a second due delivery
// waits while the first is in flight.
DeliveryEngineOptions AdmissionOptionsForTest() {
  DeliveryEngineOptions options;
  options.limits.max_in_flight = 1;
  options.admission.max_lag = absl::Seconds(1);
  options.admission.max_wait = absl::Seconds(5);
  return options;
}

TEST_F(DeliveryEngineTest,
       SubmitsWaitWhileDeliveryIsBehindAndGoOnOnceItCatchesUp) {
  StartEngine(AdmissionOptionsForTest());
  AddEndpoint();
  SubmitOne();
  SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);  // The other waits for a slot.
  clock_.Advance(absl::Milliseconds(999));
  // Behind, but not past --admission_max_lag: admitted at once.
  SubmitOne();

  clock_.Advance(absl::Seconds(2));
  const auto waiting = SubmitLater();
  engine_->CommitPending();
  EXPECT_FALSE(waiting->has_value()) << "waits for delivery to catch up";
  const size_t stored = ListDeliveries().size();
  EXPECT_EQ(stored, 3u) << "nothing stored while it waits";

  // The attempt in flight ends; the due ones go out: caught up.
  Answer(Response(200));
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  Answer(Response(200));
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  engine_->CommitPending();
  ASSERT_TRUE(waiting->has_value());
  ASSERT_TRUE(waiting->value().ok()) << waiting->value().status();
  EXPECT_EQ(waiting->value()->delivery_ids_size(), 1);
}

TEST_F(DeliveryEngineTest, ASubmitThatWaitedTooLongIsRefusedWithARetryHint) {
  StartEngine(AdmissionOptionsForTest());
  AddEndpoint();
  SubmitOne();
  SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);  // Never answered.
  clock_.Advance(absl::Seconds(3));
  const auto refused = SubmitLater();
  engine_->CommitPending();
  EXPECT_FALSE(refused->has_value());

  clock_.Advance(absl::Seconds(5));  // --admission_max_wait
  engine_->CommitPending();
  ASSERT_TRUE(refused->has_value());
  const absl::Status status = refused->value().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("--admission_max_lag"));
  // Behind by 8 s: try again in 8 s.
  ASSERT_TRUE(status.GetPayload(kRetryAfterMsPayload).has_value());
  EXPECT_EQ(std::string(*status.GetPayload(kRetryAfterMsPayload)), "8000");
  EXPECT_EQ(ListDeliveries().size(), 2u) << "nothing stored";
}

TEST_F(DeliveryEngineTest, HeldDeliveriesOfADisabledEndpointDoNotSlowSubmits) {
  StartEngine(AdmissionOptionsForTest());
  const std::string disabled = AddEndpoint();
  AddEndpoint("", "thread-2");
  for (int i = 0; i < 5; ++i) SubmitOne();
  ASSERT_TRUE(
      endpoints_->SetEnabled(Caller::Unrestricted(), disabled, false).ok());
  // Long due; the dispatcher sets them aside as held.
  clock_.Advance(absl::Minutes(10));
  EXPECT_EQ(DispatchAt(clock_.Now()), 0u);

  const auto admitted = SubmitLater("thread-2");
  engine_->CommitPending();
  ASSERT_TRUE(admitted->has_value());
  EXPECT_TRUE(admitted->value().ok()) << admitted->value().status();
}

TEST_F(DeliveryEngineTest, AdmissionControlOffAdmitsEverySubmit) {
  DeliveryEngineOptions options = AdmissionOptionsForTest();
  options.admission.max_lag = absl::ZeroDuration();
  StartEngine(options);
  AddEndpoint();
  SubmitOne();
  SubmitOne();
  ASSERT_EQ(DispatchAt(clock_.Now()), 1u);
  clock_.Advance(absl::Hours(1));
  SubmitOne();  // Answered at the first commit.
}

}  // namespace
}  // namespace webhookd
