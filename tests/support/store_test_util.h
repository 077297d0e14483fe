// Records, filters and changes for tests of a Store, shared by the
// conformance suite (tests/unit/storage/store_conformance_test.cc) and the
// tests of one backend (tests/unit/storage/leveldb_store_test.cc).
//
// Every record belongs to user 7 unless a test says otherwise, and every
// event carries the same payload, R"({"event":"execution.completed"})".

#ifndef WEBHOOKD_TESTS_SUPPORT_STORE_TEST_UTIL_H_
#define WEBHOOKD_TESTS_SUPPORT_STORE_TEST_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/timestamp.pb.h"
#include "gtest/gtest.h"
#include "storage/store.h"

namespace webhookd::testing {

inline const absl::Status& StatusOf(const absl::Status& status) {
  return status;
}
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// Asserts that an absl::Status or absl::StatusOr is OK, printing it if not.
#define ASSERT_OK(expr)                                      \
  do {                                                       \
    const auto& result_ = (expr);                            \
    ASSERT_TRUE(::webhookd::testing::StatusOf(result_).ok()) \
        << ::webhookd::testing::StatusOf(result_);           \
  } while (false)

// The create time of every event, and of the deliveries of most tests.
inline constexpr int64_t kBaseMicros = 1'700'000'000'000'000;

google::protobuf::Timestamp ProtoTime(int64_t unix_micros);

// An enabled endpoint with a URL and a name.
Endpoint MakeEndpoint(std::string id, std::string thread_id,
                      int64_t user_id = 7);

// A PENDING delivery of up to 4 attempts, due when it is created.
Delivery MakeDelivery(std::string id, std::string event_id,
                      std::string endpoint_id, std::string thread_id,
                      int64_t create_micros, int64_t user_id = 7);

// An event created at kBaseMicros listing the ids of `deliveries`.
EventRecord MakeEvent(std::string id, std::string thread_id,
                      const std::vector<Delivery>& deliveries,
                      std::string idempotency_key = "", int64_t user_id = 7);

EndpointFilter OfThread(std::string thread_id, int64_t user_id = 0);
EndpointFilter OfUser(int64_t user_id);
DeliveryFilter ForEndpoint(std::string endpoint_id, std::string thread_id = "");
DeliveryFilter ForThread(
    std::string thread_id,
    DeliveryStatus status = webhook::v1::DELIVERY_STATUS_UNSPECIFIED);
DeliveryFilter ForStatus(DeliveryStatus status);
DeliveryFilter ForUser(int64_t user_id);

// A new state without a finished attempt, out of the queue.
DeliveryChange Change(Delivery delivery);

// A new state without a finished attempt, queued for its next_attempt_time.
DeliveryChange Queued(Delivery delivery);

// A finished attempt, as the delivery engine reports it: counted as a
// success on a 2xx.
DeliveryChange Finished(Delivery delivery, int response_code,
                        int64_t response_time_ms);

std::vector<std::string> Ids(const std::vector<Endpoint>& endpoints);
std::vector<std::string> Ids(const std::vector<Delivery>& deliveries);

// Inserts one event with one delivery per endpoint, created at micros; the
// delivery for endpoint E of event V is "dlv_V_E". Fails the test (without
// aborting it) if the insert fails.
std::vector<Delivery> Submit(Store& store, const std::string& event_id,
                             const std::string& thread_id,
                             const std::vector<std::string>& endpoint_ids,
                             int64_t micros, int64_t user_id = 7);

// Submits the deliveries the ListDeliveries tests list. Oldest first:
// e1 (thread-a: ep_1, ep_2), e2 (thread-b: ep_3), e3 (thread-a: ep_1,
// user 9), e4 (thread-a: ep_2), created at kBaseMicros + 1 to + 4.
void SubmitDeliveriesToList(Store& store);

// The ids of every delivery matching the filter, following the page tokens
// page_size at a time; fails the test if a page fails, is larger than
// page_size or the pages never end.
std::vector<std::string> ListAllDeliveries(Store& store,
                                           const DeliveryFilter& filter,
                                           int page_size);

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_STORE_TEST_UTIL_H_
