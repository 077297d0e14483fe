// Idempotency keys through the real gRPC server, on LevelDB and on a real
// PostgreSQL, with a real receiver on loopback: the same request again is a
// replay of the first response, a different one is ALREADY_EXISTS and
// stores nothing, also across a restart and when both race.

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/server_backends.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using testing::Context;
using testing::CreateEndpoint;
using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using testing::MakeEndpoint;
using ::testing::SizeIs;
using testing::Submit;
using testing::TestDir;
using testing::TestServer;
using testing::WaitFinished;

class IdempotencyTest
    : public ::testing::TestWithParam<testing::ServerBackend> {
 protected:
  void SetUp() override {
    absl::StatusOr<ServerOptions> options = testing::BackendServerOptions(
        GetParam(), dir_.Sub("data"), "idempotency");
    ASSERT_TRUE(options.ok()) << options.status();
    server_ = std::make_unique<TestServer>(*options);
    server_->Start();
    endpoint_id_ =
        CreateEndpoint(stub(), MakeEndpoint("thread-1", receiver_.Url())).id();
  }

  webhook::v1::WebhookService::Stub& stub() { return server_->stub(); }

  static webhook::v1::SubmitEventRequest Keyed(const std::string& key,
                                               const std::string& trigger) {
    webhook::v1::SubmitEventRequest request = ExampleEvent("thread-1");
    request.set_idempotency_key(key);
    request.set_trigger_name(trigger);
    return request;
  }

  // Submits; returns the status, the response and whether the trailing
  // metadata said idempotent-replayed: true.
  grpc::Status Call(const webhook::v1::SubmitEventRequest& request,
                    webhook::v1::SubmitEventResponse* response,
                    bool* replayed_header = nullptr,
                    const std::string& traceparent = "") {
    std::unique_ptr<grpc::ClientContext> context = Context();
    if (!traceparent.empty()) context->AddMetadata("traceparent", traceparent);
    grpc::Status status = stub().SubmitEvent(context.get(), request, response);
    if (replayed_header != nullptr) {
      const auto& trailers = context->GetServerTrailingMetadata();
      auto it = trailers.find("idempotent-replayed");
      *replayed_header = it != trailers.end() && it->second == "true";
    }
    return status;
  }

  size_t RequestsAfterBarrier() {
    return testing::RequestsAfterBarrier(stub(), receiver_, "thread-1");
  }
  size_t DeliveriesOfEndpoint() {
    return testing::CountDeliveries(stub(), endpoint_id_);
  }

  HttpReceiver receiver_;
  TestDir dir_;
  std::unique_ptr<TestServer> server_;
  std::string endpoint_id_;
};

TEST_P(IdempotencyTest, SameRequestAgainIsAReplayOfTheFirstResponse) {
  const webhook::v1::SubmitEventRequest request = Keyed("run-1", "Nightly");
  webhook::v1::SubmitEventResponse first, again;
  bool first_header = true, again_header = false;
  ASSERT_TRUE(Call(request, &first, &first_header).ok());
  EXPECT_FALSE(first.replayed());
  EXPECT_FALSE(first_header);
  // Another trace context is still the same request.
  ASSERT_TRUE(Call(request, &again, &again_header,
                   "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
                  .ok());
  EXPECT_TRUE(again.replayed());
  EXPECT_TRUE(again_header);
  EXPECT_EQ(again.event_id(), first.event_id());
  EXPECT_THAT(again.delivery_ids(),
              ::testing::ElementsAreArray(first.delivery_ids()));
  WaitFinished(stub(), first.delivery_ids(0));
  EXPECT_EQ(RequestsAfterBarrier(), 1u);
}

TEST_P(IdempotencyTest,
       DifferentRequestWithTheKeyIsAlreadyExistsAndStoresNothing) {
  webhook::v1::SubmitEventResponse first, second;
  ASSERT_TRUE(Call(Keyed("run-1", "Nightly"), &first).ok());
  const grpc::Status conflict = Call(Keyed("run-1", "Weekly"), &second);
  EXPECT_EQ(conflict.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(conflict.error_message(),
              HasSubstr("idempotency_key: \"run-1\""));
  EXPECT_THAT(conflict.error_message(), HasSubstr("different request"));
  EXPECT_THAT(conflict.error_message(), HasSubstr(first.event_id()));
  EXPECT_EQ(DeliveriesOfEndpoint(), 1u);
  WaitFinished(stub(), first.delivery_ids(0));
  EXPECT_EQ(RequestsAfterBarrier(), 1u);
  // The first request still replays.
  webhook::v1::SubmitEventResponse again;
  ASSERT_TRUE(Call(Keyed("run-1", "Nightly"), &again).ok());
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.event_id(), first.event_id());
}

TEST_P(IdempotencyTest, ReplaysAndConflictsSurviveRestart) {
  webhook::v1::SubmitEventResponse first;
  ASSERT_TRUE(Call(Keyed("run-1", "Nightly"), &first).ok());
  // Let the attempt finish: one cut short by Stop() would be re-sent.
  WaitFinished(stub(), first.delivery_ids(0));
  server_->Stop();
  server_->Start();

  webhook::v1::SubmitEventResponse again, other;
  ASSERT_TRUE(Call(Keyed("run-1", "Nightly"), &again).ok());
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.event_id(), first.event_id());
  EXPECT_EQ(Call(Keyed("run-1", "Weekly"), &other).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(RequestsAfterBarrier(), 1u);
}

TEST_P(IdempotencyTest, RacingDifferentRequestsWithOneKeyMakeOneEvent) {
  constexpr int kKeys = 10;
  grpc::Status status[2][kKeys];
  webhook::v1::SubmitEventResponse response[2][kKeys];
  std::vector<std::thread> submitters;
  for (int i = 0; i < 2; ++i) {
    submitters.emplace_back([&, i] {
      for (int k = 0; k < kKeys; ++k) {
        status[i][k] =
            Call(Keyed(absl::StrCat("key-", k), absl::StrCat("trigger-", i)),
                 &response[i][k]);
      }
    });
  }
  for (std::thread& submitter : submitters) submitter.join();
  for (int k = 0; k < kKeys; ++k) {
    const int ok = status[0][k].ok() + status[1][k].ok();
    EXPECT_EQ(ok, 1) << k;
    for (int i = 0; i < 2; ++i) {
      if (status[i][k].ok()) {
        EXPECT_FALSE(response[i][k].replayed());
        ASSERT_THAT(response[i][k].delivery_ids(), SizeIs(1));
        WaitFinished(stub(), response[i][k].delivery_ids(0));
      } else {
        EXPECT_EQ(status[i][k].error_code(), grpc::StatusCode::ALREADY_EXISTS)
            << status[i][k].error_message();
      }
    }
  }
  EXPECT_EQ(RequestsAfterBarrier(), static_cast<size_t>(kKeys));
}

INSTANTIATE_TEST_SUITE_P(Backends, IdempotencyTest,
                         testing::AllServerBackends(),
                         testing::ServerBackendName);

}  // namespace
}  // namespace webhookd
