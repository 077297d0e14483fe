// Receivers that fail in every way the issue lists: each attempt is recorded
// with the right error, Retry-After is honoured within bounds, and
// deliveries to healthy endpoints carry on meanwhile.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/time_util.h"
#include "tests/support/eventually.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/raw_server.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using testing::UnusedPort;

using testing::Context;
using testing::CreateEndpoint;
using testing::ExampleEvent;
using testing::Hang;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using testing::kEventuallyTimeout;
using testing::MakeEndpoint;
using testing::RawServer;
using testing::ReceivedRequest;
using testing::ReceiverResponse;
using testing::ResetMidResponse;
using ::testing::SizeIs;
using testing::SlowDrip;
using testing::Submit;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::WaitFinished;
using testing::WaitForDelivery;

bool HasAttempts(const Delivery& delivery, int n) {
  return delivery.attempts() >= n;
}

// Expects the next attempt of `delivery`, which the test read at `read`,
// due `wait` after its first attempt ended. The server counts from when it
// recorded the attempt: no earlier than the attempt's start plus its
// response time, no later than `read`.
void ExpectRetryDueAfter(const Delivery& delivery, absl::Time read,
                         absl::Duration wait) {
  ASSERT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_RETRYING);
  ASSERT_THAT(delivery.attempt_history(), SizeIs(1));
  const DeliveryAttempt& attempt = delivery.attempt_history(0);
  const absl::Time ended_no_earlier =
      FromProtoTime(attempt.start_time()) +
      absl::Milliseconds(attempt.response_time_ms());
  const absl::Time due = FromProtoTime(delivery.next_attempt_time());
  EXPECT_GE(due, ended_no_earlier + wait);
  EXPECT_LE(due, read + wait);
}

class FaultyReceiverTest : public ::testing::Test {
 protected:
  // Attempts time out after `attempt_timeout`; retries follow 50ms, 150ms,
  // 600ms.
  void StartServer(absl::Duration attempt_timeout = absl::Seconds(2)) {
    server_.options().engine.attempt_timeout = attempt_timeout;
    server_.Start();
  }

  webhook::v1::WebhookService::Stub& stub() { return server_.stub(); }

  // One endpoint posting to url, and one event submitted to it: returns the
  // delivery id.
  std::string SubmitTo(const std::string& url) {
    CreateEndpoint(stub(), MakeEndpoint("thread-1", url));
    webhook::v1::SubmitEventResponse response =
        Submit(stub(), ExampleEvent("thread-1"));
    EXPECT_THAT(response.delivery_ids(), SizeIs(1));
    return response.delivery_ids().empty() ? "" : response.delivery_ids(0);
  }

  Delivery Get(const std::string& id) {
    webhook::v1::GetDeliveryRequest request;
    request.set_id(id);
    webhook::v1::GetDeliveryResponse response;
    grpc::Status status =
        stub().GetDelivery(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.delivery();
  }

  TestDir dir_;
  TestServer server_{TestServerOptions(dir_.Sub("data"))};
};

TEST_F(FaultyReceiverTest, ServerErrorIsRecordedAndRetriedUntilAttemptsRunOut) {
  HttpReceiver receiver;
  receiver.SetDefaultResponse(500, "boom");
  StartServer();

  Delivery delivery = WaitFinished(stub(), SubmitTo(receiver.Url()));

  EXPECT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_FAILED);
  ASSERT_THAT(delivery.attempt_history(), SizeIs(4));
  for (const DeliveryAttempt& attempt : delivery.attempt_history()) {
    EXPECT_EQ(attempt.response_code(), 500);
    EXPECT_EQ(attempt.error(), "HTTP 500");
    EXPECT_EQ(attempt.response_body(), "boom");
  }
  EXPECT_EQ(receiver.RequestCount(), 4u);
}

TEST_F(FaultyReceiverTest, TooManyRequestsWaitsForRetryAfterSeconds) {
  HttpReceiver receiver;
  // Long enough that the retry is still ahead when the test reads it.
  receiver.PushResponse(429, "slow down", {{"Retry-After", "300"}});
  StartServer();

  const Delivery delivery =
      WaitForDelivery(stub(), SubmitTo(receiver.Url()),
                      [](const Delivery& d) { return HasAttempts(d, 1); });
  const absl::Time read = absl::Now();

  ASSERT_THAT(delivery.attempt_history(), SizeIs(1));
  const DeliveryAttempt& first = delivery.attempt_history(0);
  EXPECT_EQ(first.response_code(), 429);
  EXPECT_EQ(first.error(), "HTTP 429 (Retry-After 5m)");
  // The schedule says 50 ms; the receiver asked for five minutes.
  ExpectRetryDueAfter(delivery, read, absl::Minutes(5));
  EXPECT_EQ(receiver.RequestCount(), 1u);
}

TEST_F(FaultyReceiverTest, ServiceUnavailableWaitsForRetryAfterHttpDate) {
  // The first request is answered 503 with a Retry-After date 2 to 3 s
  // after it arrived (HTTP-dates have whole seconds), the next 200.
  absl::Mutex mu;
  std::optional<absl::Time> retry_at;
  HttpReceiver receiver;
  receiver.SetHandler([&](const ReceivedRequest& request) {
    ReceiverResponse response;
    absl::MutexLock lock(&mu);
    if (retry_at.has_value()) return response;
    retry_at = absl::FromUnixSeconds(
        absl::ToUnixSeconds(request.arrival + absl::Seconds(3)));
    response.status = 503;
    response.headers = {
        {"Retry-After", absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", *retry_at,
                                         absl::UTCTimeZone())}};
    return response;
  });
  StartServer();

  const Delivery delivery = WaitFinished(stub(), SubmitTo(receiver.Url()));

  EXPECT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  ASSERT_THAT(delivery.attempt_history(), SizeIs(2));
  EXPECT_THAT(delivery.attempt_history(0).error(),
              HasSubstr("HTTP 503 (Retry-After"));
  // The schedule says 50 ms; the retry waited for the date, however late
  // the server ran (a retry is never early, only late).
  absl::MutexLock lock(&mu);
  ASSERT_TRUE(retry_at.has_value());
  EXPECT_GE(FromProtoTime(delivery.attempt_history(1).start_time()), *retry_at);
}

TEST_F(FaultyReceiverTest, RetryAfterIsClampedToTenMinutes) {
  HttpReceiver receiver;
  receiver.SetDefaultResponse(503, "", {{"Retry-After", "86400"}});
  StartServer();

  const Delivery delivery =
      WaitForDelivery(stub(), SubmitTo(receiver.Url()),
                      [](const Delivery& d) { return HasAttempts(d, 1); });
  const absl::Time read = absl::Now();

  // Ten minutes, not a day.
  ExpectRetryDueAfter(delivery, read, absl::Minutes(10));
  EXPECT_EQ(receiver.RequestCount(), 1u);
}

TEST_F(FaultyReceiverTest, ConnectionResetMidResponseIsAFailedAttempt) {
  RawServer receiver(ResetMidResponse());
  StartServer();

  Delivery delivery =
      WaitForDelivery(stub(), SubmitTo(receiver.Url()),
                      [](const Delivery& d) { return HasAttempts(d, 1); });

  const DeliveryAttempt& attempt = delivery.attempt_history(0);
  EXPECT_EQ(attempt.response_code(), 0) << "a partial response is no answer";
  EXPECT_THAT(attempt.error(), HasSubstr("connection broken"));
  EXPECT_THAT(attempt.error(), HasSubstr("after a partial HTTP 200 response"));
  EXPECT_NE(delivery.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
}

TEST_F(FaultyReceiverTest, NothingListeningIsConnectionRefused) {
  StartServer();

  Delivery delivery = WaitForDelivery(
      stub(), SubmitTo(absl::StrCat("http://127.0.0.1:", UnusedPort(), "/")),
      [](const Delivery& d) { return HasAttempts(d, 1); });

  const DeliveryAttempt& attempt = delivery.attempt_history(0);
  EXPECT_EQ(attempt.response_code(), 0);
  EXPECT_THAT(attempt.error(), HasSubstr("connection refused"));
  EXPECT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_RETRYING);
}

TEST_F(FaultyReceiverTest, HangingReceiverTimesOut) {
  RawServer receiver(Hang());
  StartServer(absl::Milliseconds(500));

  Delivery delivery =
      WaitForDelivery(stub(), SubmitTo(receiver.Url()),
                      [](const Delivery& d) { return HasAttempts(d, 1); });

  const DeliveryAttempt& attempt = delivery.attempt_history(0);
  EXPECT_EQ(attempt.response_code(), 0);
  EXPECT_THAT(attempt.error(), HasSubstr("timed out after 500 ms"));
  EXPECT_GE(attempt.response_time_ms(), 450);
}

TEST_F(FaultyReceiverTest, SlowDripTimesOut) {
  RawServer receiver(SlowDrip(absl::Milliseconds(100)));
  StartServer(absl::Milliseconds(500));

  Delivery delivery =
      WaitForDelivery(stub(), SubmitTo(receiver.Url()),
                      [](const Delivery& d) { return HasAttempts(d, 1); });

  const DeliveryAttempt& attempt = delivery.attempt_history(0);
  EXPECT_EQ(attempt.response_code(), 0);
  EXPECT_THAT(attempt.error(), HasSubstr("timed out after 500 ms"));
  EXPECT_THAT(attempt.error(), HasSubstr("after a partial HTTP 200 response"));
}

TEST_F(FaultyReceiverTest, HugeResponseBodyIsCutToFourKiB) {
  HttpReceiver receiver;
  receiver.SetDefaultResponse(200, std::string(8 << 20, 'x'));
  StartServer();

  Delivery delivery = WaitFinished(stub(), SubmitTo(receiver.Url()));

  EXPECT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  ASSERT_THAT(delivery.attempt_history(), SizeIs(1));
  EXPECT_EQ(delivery.attempt_history(0).response_code(), 200);
  EXPECT_EQ(delivery.attempt_history(0).error(), "");
  EXPECT_EQ(delivery.attempt_history(0).response_body(),
            std::string(4096, 'x'));
}

TEST_F(FaultyReceiverTest, HealthyEndpointDeliversWhileOthersMisbehave) {
  HttpReceiver healthy;
  HttpReceiver failing;
  failing.SetDefaultResponse(500);
  RawServer hanging(Hang());
  RawServer dripping(SlowDrip(absl::Milliseconds(200)));
  RawServer resetting(ResetMidResponse());
  // The hanging and dripping attempts last until the test ends.
  StartServer(absl::Minutes(10));
  const std::string healthy_id =
      CreateEndpoint(stub(), MakeEndpoint("thread-1", healthy.Url())).id();
  const std::string hanging_id =
      CreateEndpoint(stub(), MakeEndpoint("thread-1", hanging.Url())).id();
  const std::string dripping_id =
      CreateEndpoint(stub(), MakeEndpoint("thread-1", dripping.Url())).id();
  for (const std::string& url :
       {failing.Url(), resetting.Url(),
        absl::StrCat("http://127.0.0.1:", UnusedPort(), "/")}) {
    CreateEndpoint(stub(), MakeEndpoint("thread-1", url));
  }
  constexpr int kEvents = 10;
  std::map<std::string, std::vector<std::string>> by_endpoint;
  for (int i = 0; i < kEvents; ++i) {
    const webhook::v1::SubmitEventResponse response =
        Submit(stub(), ExampleEvent("thread-1"));
    for (const std::string& id : response.delivery_ids()) {
      by_endpoint[Get(id).endpoint_id()].push_back(id);
    }
  }
  ASSERT_THAT(by_endpoint, SizeIs(6));

  for (const std::string& id : by_endpoint[healthy_id]) {
    Delivery delivery = WaitFinished(stub(), id);
    EXPECT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_SUCCESS);
  }

  // Every healthy delivery is done while the hanging and dripping
  // receivers still hold their first attempts.
  EXPECT_EQ(healthy.RequestCount(), static_cast<size_t>(kEvents));
  for (const std::string& endpoint : {hanging_id, dripping_id}) {
    for (const std::string& id : by_endpoint[endpoint]) {
      Delivery delivery = Get(id);
      EXPECT_EQ(delivery.status(), webhook::v1::DELIVERY_STATUS_PENDING);
      EXPECT_EQ(delivery.attempts(), 0);
    }
  }
  EXPECT_TRUE(hanging.WaitForRequests(kEvents, kEventuallyTimeout));
}

TEST_F(FaultyReceiverTest, HangingEndpointsCannotTakeEverySlot) {
  // Three endpoints hang; each may hold only 2 of the 8 attempt slots, so
  // the healthy endpoint keeps 2 and delivers everything meanwhile. The
  // hanging endpoints' other deliveries wait their turn, parked.
  server_.options().engine.limits.max_in_flight = 8;
  server_.options().engine.limits.max_in_flight_per_endpoint = 2;
  HttpReceiver healthy;
  // The hanging attempts end (503) only when the test releases them.
  absl::Notification release;
  RawServer hanging(Hang(&release));
  StartServer(absl::Minutes(10));
  std::vector<std::string> hanging_endpoints;
  for (int i = 0; i < 3; ++i) {
    hanging_endpoints.push_back(
        CreateEndpoint(stub(), MakeEndpoint("thread-hang", hanging.Url()))
            .id());
  }
  CreateEndpoint(stub(), MakeEndpoint("thread-ok", healthy.Url()));
  std::vector<std::string> hanging_ids;
  for (int i = 0; i < 5; ++i) {
    const webhook::v1::SubmitEventResponse response =
        Submit(stub(), ExampleEvent("thread-hang"));
    hanging_ids.insert(hanging_ids.end(), response.delivery_ids().begin(),
                       response.delivery_ids().end());
  }
  ASSERT_THAT(hanging_ids, SizeIs(15));
  ASSERT_TRUE(hanging.WaitForRequests(6, kEventuallyTimeout));

  constexpr int kHealthy = 10;
  for (int i = 0; i < kHealthy; ++i) {
    const std::string id =
        Submit(stub(), ExampleEvent("thread-ok")).delivery_ids(0);
    EXPECT_EQ(WaitFinished(stub(), id).status(),
              webhook::v1::DELIVERY_STATUS_SUCCESS);
  }
  // Meanwhile no hanging attempt has ended, and no endpoint got more than
  // its 2 slots.
  EXPECT_EQ(hanging.requests(), 6u);
  for (const std::string& id : hanging_ids) {
    EXPECT_EQ(Get(id).attempts(), 0) << id;
  }
  // When the first attempts end, parked deliveries get their slots.
  release.Notify();
  EXPECT_TRUE(hanging.WaitForRequests(7, kEventuallyTimeout));
}

}  // namespace
}  // namespace webhookd
