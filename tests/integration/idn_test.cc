// Endpoint URLs with internationalized host names, end to end: a real gRPC
// server stores them with the host in ASCII ("xn--") form, and a delivery
// reaches a real receiver on loopback by that name (a resolver override
// stands in for DNS, since no IDN resolves here).

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/ids.h"
#include "server/common/time_util.h"
#include "storage/leveldb/leveldb_store.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/raw_server.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using testing::Context;
using testing::CreateEndpoint;
using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::MakeEndpoint;
using testing::RawServer;
using testing::RespondWith;
using ::testing::SizeIs;
using testing::Submit;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::TryCreateEndpoint;
using testing::WaitFinished;
using webhook::v1::DELIVERY_STATUS_SUCCESS;
using webhook::v1::Endpoint;

// "bücher.test" in raw UTF-8, percent-encoded, and in ASCII form.
constexpr char kUtf8Host[] = "b\u00fccher.test";
constexpr char kPercentHost[] = "b%C3%BCcher.test";
constexpr char kAsciiHost[] = "xn--bcher-kva.test";

class IdnTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GT(receiver_.port(), 0);
    // The ASCII form resolves to the receiver; the UTF-8 form is never
    // looked up (libcurl would need a UTF-8 locale to convert it).
    server_.options().test_resolve_overrides = {
        absl::StrCat(kAsciiHost, ":", receiver_.port(), ":127.0.0.1")};
    server_.Start();
  }

  webhook::v1::WebhookService::Stub& stub() { return server_.stub(); }

  Endpoint Get(const std::string& id) {
    return testing::GetEndpoint(stub(), id);
  }

  // Submits an event to `thread` and waits for its only delivery to end.
  webhook::v1::Delivery DeliverOnce(const std::string& thread) {
    const webhook::v1::SubmitEventResponse submitted =
        Submit(stub(), ExampleEvent(thread));
    EXPECT_THAT(submitted.delivery_ids(), SizeIs(1));
    if (submitted.delivery_ids().empty()) return webhook::v1::Delivery();
    return WaitFinished(stub(), submitted.delivery_ids(0));
  }

  TestDir dir_;
  RawServer receiver_{RespondWith(200, "ok")};
  TestServer server_{TestServerOptions(dir_.Sub("data"))};
};

TEST_F(IdnTest, RawUtf8HostIsStoredInAsciiFormAndDelivers) {
  const Endpoint created = CreateEndpoint(
      stub(), MakeEndpoint("thread-1", receiver_.Url(kUtf8Host)));
  EXPECT_EQ(created.url(), receiver_.Url(kAsciiHost));
  EXPECT_EQ(Get(created.id()).url(), receiver_.Url(kAsciiHost));

  const webhook::v1::Delivery delivery = DeliverOnce("thread-1");
  EXPECT_EQ(delivery.status(), DELIVERY_STATUS_SUCCESS)
      << delivery.last_error();
  EXPECT_EQ(delivery.response_code(), 200);
  EXPECT_GE(receiver_.requests(), 1u);
}

TEST_F(IdnTest, PercentEncodedHostIsStoredInAsciiFormAndDelivers) {
  const Endpoint created = CreateEndpoint(
      stub(), MakeEndpoint("thread-1", receiver_.Url(kPercentHost)));
  EXPECT_EQ(created.url(), receiver_.Url(kAsciiHost));

  const webhook::v1::Delivery delivery = DeliverOnce("thread-1");
  EXPECT_EQ(delivery.status(), DELIVERY_STATUS_SUCCESS)
      << delivery.last_error();
}

TEST_F(IdnTest, UpdateStoresIdnHostInAsciiForm) {
  const Endpoint created = CreateEndpoint(
      stub(), MakeEndpoint("thread-1", receiver_.Url("127.0.0.1")));
  webhook::v1::UpdateEndpointRequest request;
  request.mutable_endpoint()->set_id(created.id());
  request.mutable_endpoint()->set_url(receiver_.Url(kUtf8Host));
  request.mutable_update_mask()->add_paths("url");
  webhook::v1::UpdateEndpointResponse response;
  const grpc::Status status =
      stub().UpdateEndpoint(Context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.endpoint().url(), receiver_.Url(kAsciiHost));
  EXPECT_EQ(Get(created.id()).url(), receiver_.Url(kAsciiHost));
}

TEST_F(IdnTest, InvalidIdnHostIsRefusedNamingTheUrl) {
  for (const std::string host : {"b%C3cher.test", "b%FFcher.test"}) {
    const grpc::Status status = TryCreateEndpoint(
        stub(), MakeEndpoint("thread-1", receiver_.Url(host)));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << host;
    EXPECT_THAT(status.error_message(), HasSubstr("endpoint.url")) << host;
    EXPECT_THAT(status.error_message(),
                HasSubstr("not a valid internationalized domain name"))
        << host;
  }
  EXPECT_EQ(receiver_.connections(), 0u);
}

// Before host names were converted at creation, a percent-encoded one was
// stored as given and every attempt failed with "malformed URL". Such an
// endpoint delivers once the server has started, and its stored URL is
// rewritten to the ASCII form.
TEST_F(IdnTest, EndpointStoredWithPercentEncodedHostDeliversAfterStartUp) {
  server_.Stop();
  Endpoint legacy = MakeEndpoint("thread-1", receiver_.Url(kPercentHost));
  legacy.set_id(NewId("ep_"));
  legacy.set_enabled(true);
  *legacy.mutable_create_time() = ToProtoTime(absl::Now());
  *legacy.mutable_update_time() = legacy.create_time();
  {
    absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
        LevelDbStore::Open(dir_.Sub("data"));
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->PutEndpoint(legacy).ok());
  }
  server_.Start();

  EXPECT_EQ(Get(legacy.id()).url(), receiver_.Url(kAsciiHost));
  const webhook::v1::Delivery delivery = DeliverOnce("thread-1");
  EXPECT_EQ(delivery.status(), DELIVERY_STATUS_SUCCESS)
      << delivery.last_error();

  server_.Stop();
  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(dir_.Sub("data"));
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<Endpoint> stored = (*store)->GetEndpoint(legacy.id());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->url(), receiver_.Url(kAsciiHost));
}

}  // namespace
}  // namespace webhookd
