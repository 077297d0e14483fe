#include "server/delivery/request_fingerprint.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/delivery/payload.h"

namespace webhookd {
namespace {

using ::testing::HasSubstr;

webhook::v1::SubmitEventRequest Request() {
  webhook::v1::SubmitEventRequest request = DocumentedExampleEvent("hi");
  request.set_idempotency_key("key-1");
  return request;
}

TEST(RequestFingerprintTest, IsTheSha256OfTheRequestWithoutItsKey) {
  const std::string fingerprint = RequestFingerprint(Request());
  EXPECT_EQ(fingerprint.size(), 32u);
  EXPECT_EQ(RequestFingerprint(Request()), fingerprint);
  webhook::v1::SubmitEventRequest other_key = Request();
  other_key.set_idempotency_key("key-2");
  EXPECT_EQ(RequestFingerprint(other_key), fingerprint);
}

TEST(RequestFingerprintTest, AnyOtherFieldChangesIt) {
  const std::string fingerprint = RequestFingerprint(Request());
  webhook::v1::SubmitEventRequest renamed = Request();
  renamed.set_trigger_name("Another trigger");
  EXPECT_NE(RequestFingerprint(renamed), fingerprint);
  webhook::v1::SubmitEventRequest other_user = Request();
  other_user.set_user_id(43);
  EXPECT_NE(RequestFingerprint(other_user), fingerprint);
  webhook::v1::SubmitEventRequest other_message = Request();
  (*other_message.mutable_execution()
        ->mutable_run()
        ->mutable_messages(0)
        ->mutable_fields())["content"]
      .set_string_value("bye");
  EXPECT_NE(RequestFingerprint(other_message), fingerprint);
}

TEST(RequestFingerprintTest, StructKeysInAnyInsertionOrderGiveTheSame) {
  webhook::v1::SubmitEventRequest a = Request();
  webhook::v1::SubmitEventRequest b = Request();
  auto& fields_a =
      *a.mutable_execution()->mutable_run()->add_messages()->mutable_fields();
  auto& fields_b =
      *b.mutable_execution()->mutable_run()->add_messages()->mutable_fields();
  for (int i = 0; i < 20; ++i) {
    fields_a[std::to_string(i)].set_number_value(i);
    fields_b[std::to_string(19 - i)].set_number_value(19 - i);
  }
  EXPECT_EQ(RequestFingerprint(a), RequestFingerprint(b));
}

EventRecord EventWith(const std::string& fingerprint) {
  EventRecord event;
  event.set_id("evt_2");
  event.set_idempotency_key("key-1");
  event.set_request_fingerprint(fingerprint);
  return event;
}

Submission First(const std::string& fingerprint) {
  Submission first;
  first.response.set_event_id("evt_1");
  first.response.add_delivery_ids("dlv_1");
  first.request_fingerprint = fingerprint;
  return first;
}

TEST(AnswerRepeatedKeyTest, SameRequestGetsTheFirstResponseMarkedReplayed) {
  absl::StatusOr<SubmitEventResponse> answer =
      AnswerRepeatedKey(EventWith("same"), First("same"));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->event_id(), "evt_1");
  EXPECT_THAT(answer->delivery_ids(), ::testing::ElementsAre("dlv_1"));
  EXPECT_TRUE(answer->replayed());
}

TEST(AnswerRepeatedKeyTest, DifferentRequestIsAlreadyExistsNamingTheKey) {
  absl::StatusOr<SubmitEventResponse> answer =
      AnswerRepeatedKey(EventWith("one"), First("other"));
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(answer.status().message()),
              HasSubstr("idempotency_key: \"key-1\""));
  EXPECT_THAT(std::string(answer.status().message()),
              HasSubstr("different request"));
  EXPECT_THAT(std::string(answer.status().message()), HasSubstr("evt_1"));
}

TEST(AnswerRepeatedKeyTest, RecordWithoutFingerprintMatchesAnyRequest) {
  absl::StatusOr<SubmitEventResponse> answer =
      AnswerRepeatedKey(EventWith("one"), First(""));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_TRUE(answer->replayed());
}

}  // namespace
}  // namespace webhookd
