// API keys and tenant isolation: the key parser, the authenticator, and
// every RPC through a real server with --api_keys_file.

#include "server/api/auth.h"

#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/app/webhook_server.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"
#include "tests/support/webhookd_process.h"

namespace webhookd {
namespace {

using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using ::testing::IsEmpty;
using testing::IsFinished;
using testing::MakeEndpoint;
using ::testing::Not;
using ::testing::SizeIs;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using webhook::v1::WebhookService;

constexpr char kKeyOne[] = "key-of-user-one-9f8e7d6c5b4a";
constexpr char kKeyTwo[] = "key-of-user-two-0a1b2c3d4e5f";
constexpr char kWrongKey[] = "key-of-nobody-at-all-1234567";

constexpr char kKeysFile[] =
    "# webhookd API keys\n"
    "\n"
    "key-of-user-one-9f8e7d6c5b4a 1\n"
    "  key-of-user-two-0a1b2c3d4e5f\t2  \r\n";

// --- ApiKeys ----------------------------------------------------------------

TEST(ApiKeysTest, ParsesKeysCommentsAndBlankLines) {
  absl::StatusOr<ApiKeys> keys = ApiKeys::Parse(kKeysFile);
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->size(), 2u);
  EXPECT_EQ(keys->Find(kKeyOne), 1);
  EXPECT_EQ(keys->Find(kKeyTwo), 2);
}

TEST(ApiKeysTest, FindsOnlyExactKeys) {
  const ApiKeys keys = *ApiKeys::Parse(kKeysFile);
  EXPECT_EQ(keys.Find(kWrongKey), std::nullopt);
  EXPECT_EQ(keys.Find(""), std::nullopt);
  const std::string one = kKeyOne;
  EXPECT_EQ(keys.Find(one.substr(0, one.size() - 1)), std::nullopt);
  EXPECT_EQ(keys.Find(one + "x"), std::nullopt);
  EXPECT_EQ(keys.Find(absl::AsciiStrToUpper(one)), std::nullopt);
}

TEST(ApiKeysTest, RefusesBadLinesNamingTheLineButNeverTheKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"short-key-12345 1\n", "shorter than 16"},
      {"# ok\nkey-of-user-one-9f8e7d6c5b4a\n", "line 2"},
      {"key-of-user-one-9f8e7d6c5b4a 1 extra\n", "expected"},
      {"key-of-user-one-9f8e7d6c5b4a 0\n", "positive"},
      {"key-of-user-one-9f8e7d6c5b4a -4\n", "positive"},
      {"key-of-user-one-9f8e7d6c5b4a abc\n", "positive"},
      {"key-of-user-one-9f8e7d6c5b4a 99999999999999999999\n", "positive"},
      {"key-of-user-one-9f8e7d6c5b4a 1\nkey-of-user-one-9f8e7d6c5b4a 2\n",
       "line 1"},
      {"key-of-user-\x01ne-9f8e7d6c5b4a 1\n", "visible ASCII"},
      {"key-of-user-\xc3\xa9ne-9f8e7d6c5b4a 1\n", "visible ASCII"},
      {std::string(2000, 'k') + " 1\n", "longer than"},
      {"", "no API keys"},
      {"# only a comment\n\n", "no API keys"},
  };
  for (const auto& [text, reason] : cases) {
    absl::StatusOr<ApiKeys> keys = ApiKeys::Parse(text);
    EXPECT_EQ(keys.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(keys.status().message(), HasSubstr(reason)) << text;
    EXPECT_THAT(keys.status().message(), Not(HasSubstr("key-of-user")));
    EXPECT_THAT(keys.status().message(), Not(HasSubstr("short-key")));
  }
}

TEST(ApiKeysTest, LoadNamesTheUnreadableFile) {
  absl::StatusOr<ApiKeys> keys = ApiKeys::Load("/nonexistent/keys.txt");
  EXPECT_FALSE(keys.ok());
  EXPECT_THAT(keys.status().message(), HasSubstr("/nonexistent/keys.txt"));
}

// --- Authenticator ----------------------------------------------------------

TEST(AuthenticatorTest, WithoutKeysEveryCallerIsUnrestricted) {
  const Authenticator open;
  EXPECT_FALSE(open.enabled());
  absl::StatusOr<Caller> caller = open.AuthenticateHeader({});
  ASSERT_TRUE(caller.ok());
  EXPECT_FALSE(caller->user_id.has_value());
}

TEST(AuthenticatorTest, AcceptsOnlyOneBearerKey) {
  const Authenticator auth(*ApiKeys::Parse(kKeysFile));
  const std::string one = kKeyOne;
  for (const std::string& header :
       {"Bearer " + one, "bearer " + one, "BEARER  " + one, "Bearer\t" + one,
        "Bearer " + one + " "}) {
    absl::StatusOr<Caller> caller = auth.AuthenticateHeader({header});
    ASSERT_TRUE(caller.ok()) << header;
    EXPECT_EQ(caller->user_id, 1) << header;
  }
  for (const std::vector<std::string>& given :
       std::vector<std::vector<std::string>>{
           {},
           {""},
           {"Bearer"},
           {"Bearer "},
           {one},
           {"Bearer" + one},
           {"Basic " + one},
           {"Bearer " + std::string(kWrongKey)},
           {"Bearer " + one, "Bearer " + one}}) {
    const std::vector<absl::string_view> headers(given.begin(), given.end());
    absl::StatusOr<Caller> caller = auth.AuthenticateHeader(headers);
    EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(caller.status().message(), Not(HasSubstr("key-of")));
  }
}

TEST(CallerTest, OwnerForRefusesAnotherUser) {
  EXPECT_EQ(Caller::User(7).OwnerFor(0, "user_id").value(), 7);
  EXPECT_EQ(Caller::User(7).OwnerFor(7, "user_id").value(), 7);
  absl::StatusOr<int64_t> other = Caller::User(7).OwnerFor(8, "user_id");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(other.status().message(), HasSubstr("user_id"));
  EXPECT_EQ(Caller::Unrestricted().OwnerFor(8, "user_id").value(), 8);
  EXPECT_TRUE(Caller::Unrestricted().CanAccess(3));
  EXPECT_FALSE(Caller::User(7).CanAccess(3));
}

// --- Listen address ----------------------------------------------------------

TEST(ListenAddressTest, OnlyLoopbackAndUnixSocketsCountAsLocal) {
  for (const char* listen :
       {"127.0.0.1:50051", "127.0.0.1:0", "127.9.9.9:1", "[::1]:50051",
        "localhost:50051", "LOCALHOST:1", "unix:/tmp/webhookd.sock",
        "unix-abstract:webhookd", "[::ffff:127.0.0.1]:1"}) {
    EXPECT_TRUE(IsLoopbackListenAddress(listen)) << listen;
  }
  for (const char* listen :
       {"0.0.0.0:50051", "[::]:50051", ":50051", "50051", "10.0.0.1:1",
        "example.com:50051", "::1:50051", "[::1]", "localhost.example.com:1",
        "192.168.1.1:1"}) {
    EXPECT_FALSE(IsLoopbackListenAddress(listen)) << listen;
  }
}

TEST(ListenAddressTest, ServerWithoutKeysRefusesNonLoopbackListen) {
  TestDir dir;
  // (":0" is refused before: --listen needs a host.)
  for (const char* listen : {"0.0.0.0:0", "[::]:0"}) {
    ServerOptions options = TestServerOptions(dir.Sub("data"));
    options.listen = listen;
    absl::StatusOr<std::unique_ptr<WebhookServer>> server =
        WebhookServer::Start(options);
    EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition)
        << listen;
    EXPECT_THAT(server.status().message(), HasSubstr("--api_keys_file"));
  }
}

// --- Through gRPC -----------------------------------------------------------

// A context with a deadline and, unless empty, "authorization: <value>".
std::unique_ptr<grpc::ClientContext> Ctx(const std::string& authorization) {
  std::unique_ptr<grpc::ClientContext> context = testing::Context();
  if (!authorization.empty()) {
    context->AddMetadata("authorization", authorization);
  }
  return context;
}

std::string Bearer(const std::string& key) { return "Bearer " + key; }

// One call of every WebhookService method, with an empty request.
struct Rpc {
  std::string name;
  std::function<grpc::Status(WebhookService::Stub&, grpc::ClientContext*)> call;
};

std::vector<Rpc> EveryRpc() {
  using namespace webhook::v1;  // NOLINT: many request/response types.
  return {
      {"CreateEndpoint",
       [](WebhookService::Stub& s, grpc::ClientContext* c) {
         CreateEndpointResponse r;
         return s.CreateEndpoint(c, {}, &r);
       }},
      {"GetEndpoint",
       [](WebhookService::Stub& s, grpc::ClientContext* c) {
         GetEndpointResponse r;
         return s.GetEndpoint(c, {}, &r);
       }},
      {"ListEndpoints",
       [](WebhookService::Stub& s, grpc::ClientContext* c) {
         ListEndpointsResponse r;
         return s.ListEndpoints(c, {}, &r);
       }},
      {"UpdateEndpoint",
       [](WebhookService::Stub& s, grpc::ClientContext* c) {
         UpdateEndpointResponse r;
         return s.UpdateEndpoint(c, {}, &r);
       }},
      {"DeleteEndpoint",
       [](WebhookService::Stub& s, grpc::ClientContext* c) {
         DeleteEndpointResponse r;
         return s.DeleteEndpoint(c, {}, &r);
       }},
      {"EnableEndpoint",
       [](WebhookService::Stub& s, grpc::ClientContext* c) {
         EnableEndpointResponse r;
         return s.EnableEndpoint(c, {}, &r);
       }},
      {"DisableEndpoint",
       [](WebhookService::Stub& s, grpc::ClientContext* c) {
         DisableEndpointResponse r;
         return s.DisableEndpoint(c, {}, &r);
       }},
      {"GetEndpointStats",
       [](WebhookService::Stub& s, grpc::ClientContext* c) {
         GetEndpointStatsResponse r;
         return s.GetEndpointStats(c, {}, &r);
       }},
      {"SubmitEvent",
       [](WebhookService::Stub& s, grpc::ClientContext* c) {
         SubmitEventResponse r;
         return s.SubmitEvent(c, ExampleEvent("thread-1"), &r);
       }},
      {"SubmitEvents",
       [](WebhookService::Stub& s, grpc::ClientContext* c) {
         SubmitEventsRequest q;
         *q.add_events() = ExampleEvent("thread-1");
         SubmitEventsResponse r;
         return s.SubmitEvents(c, q, &r);
       }},
      {"SendTestDelivery",
       [](WebhookService::Stub& s, grpc::ClientContext* c) {
         SendTestDeliveryResponse r;
         return s.SendTestDelivery(c, {}, &r);
       }},
      {"GetDelivery",
       [](WebhookService::Stub& s, grpc::ClientContext* c) {
         GetDeliveryResponse r;
         return s.GetDelivery(c, {}, &r);
       }},
      {"ListDeliveries",
       [](WebhookService::Stub& s, grpc::ClientContext* c) {
         ListDeliveriesResponse r;
         return s.ListDeliveries(c, {}, &r);
       }},
      {"RetryDelivery",
       [](WebhookService::Stub& s, grpc::ClientContext* c) {
         RetryDeliveryResponse r;
         return s.RetryDelivery(c, {}, &r);
       }},
      {"StreamDeliveries",
       [](WebhookService::Stub& s, grpc::ClientContext* c) {
         // An accepted stream stays open: end it soon.
         c->set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(500));
         auto reader = s.StreamDeliveries(c, {});
         StreamDeliveriesResponse r;
         while (reader->Read(&r)) {
         }
         return reader->Finish();
       }},
  };
}

// Calls a unary method with serialized bytes through a generic stub.
grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel,
                          const std::string& method, const std::string& bytes,
                          std::string* response) {
  grpc::GenericStub stub(channel);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer reply;
  std::unique_ptr<grpc::ClientContext> context = testing::Context();
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(context.get(), method, grpc::StubOptions(), &request, &reply,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  if (!done.WaitForNotificationWithTimeout(absl::Seconds(15))) {
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "no answer");
  }
  std::vector<grpc::Slice> slices;
  if (status.ok() && reply.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      response->append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return status;
}

// Sends one request on a bidi stream method and returns the first answer.
grpc::Status RawBidiFirstAnswer(const std::shared_ptr<grpc::Channel>& channel,
                                const std::string& method,
                                const std::string& bytes,
                                std::string* response) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  std::unique_ptr<grpc::ClientContext> context = testing::Context();
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
      stub.PrepareCall(context.get(), method, &cq);
  const auto step = [&cq](intptr_t expected) {
    void* tag = nullptr;
    bool ok = false;
    const auto deadline =
        std::chrono::system_clock::now() + std::chrono::seconds(15);
    return cq.AsyncNext(&tag, &ok, deadline) ==
               grpc::CompletionQueue::GOT_EVENT &&
           reinterpret_cast<intptr_t>(tag) == expected && ok;
  };
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer reply;
  grpc::Status status;
  call->StartCall(reinterpret_cast<void*>(1));
  bool ok = step(1);
  if (ok) {
    call->Write(request, reinterpret_cast<void*>(2));
    ok = step(2);
  }
  if (ok) {
    call->Read(&reply, reinterpret_cast<void*>(3));
    ok = step(3);
  }
  call->WritesDone(reinterpret_cast<void*>(4));
  step(4);
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  std::vector<grpc::Slice> slices;
  if (ok && reply.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      response->append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  cq.Shutdown();
  void* tag;
  bool ignored;
  while (cq.Next(&tag, &ignored)) {
  }
  return status;
}

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_.Sub("keys.txt")) << kKeysFile;
    server_.options().api_keys_file = dir_.Sub("keys.txt");
    server_.Start();
  }

  WebhookService::Stub& stub() { return server_.stub(); }

  Endpoint Create(const std::string& key, Endpoint endpoint) {
    webhook::v1::CreateEndpointRequest request;
    endpoint.set_user_id(0);
    *request.mutable_endpoint() = endpoint;
    webhook::v1::CreateEndpointResponse response;
    grpc::Status status =
        stub().CreateEndpoint(Ctx(Bearer(key)).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.endpoint();
  }

  webhook::v1::SubmitEventResponse Submit(const std::string& key,
                                          const std::string& thread) {
    webhook::v1::SubmitEventRequest request = ExampleEvent(thread);
    request.set_user_id(0);
    webhook::v1::SubmitEventResponse response;
    grpc::Status status =
        stub().SubmitEvent(Ctx(Bearer(key)).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // WaitFinished, calling with `key`.
  Delivery WaitFinished(const std::string& key, const std::string& id) {
    return testing::WaitFinished(stub(), id,
                                 [key] { return Ctx(Bearer(key)); });
  }

  TestDir dir_;
  HttpReceiver receiver_one_;
  HttpReceiver receiver_two_;
  TestServer server_{TestServerOptions(dir_.Sub("data"))};
};

TEST_F(AuthTest, EveryRpcNeedsAValidBearerKey) {
  for (const Rpc& rpc : EveryRpc()) {
    for (const std::string& authorization :
         {std::string(), Bearer(kWrongKey), std::string("Basic ") + kKeyOne,
          std::string(kKeyOne), Bearer(std::string(kKeyOne) + "0")}) {
      grpc::Status status = rpc.call(stub(), Ctx(authorization).get());
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << rpc.name << " with \"" << authorization << "\"";
      EXPECT_THAT(status.error_message(), Not(HasSubstr("key-of")));
    }
    // With a key, the call gets past authentication.
    grpc::Status status = rpc.call(stub(), Ctx(Bearer(kKeyOne)).get());
    EXPECT_NE(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << rpc.name;
  }
  webhook::v1::ListEndpointsResponse list;
  ASSERT_TRUE(stub().ListEndpoints(Ctx(Bearer(kKeyOne)).get(), {}, &list).ok());
  EXPECT_THAT(list.endpoints(), IsEmpty()) << "nothing may be stored";
}

TEST_F(AuthTest, HealthAndReflectionStayOpen) {
  std::string health;
  // grpc.health.v1.HealthCheckRequest{} is empty; SERVING is field 1 = 1.
  grpc::Status status = RawUnaryCall(
      server_.channel(), "/grpc.health.v1.Health/Check", "", &health);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(health, std::string("\x08\x01", 2));

  // ServerReflectionRequest{list_services: "*"} (field 7).
  std::string reflection;
  status = RawBidiFirstAnswer(
      server_.channel(),
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      std::string("\x3a\x01*", 3), &reflection);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(reflection, HasSubstr("webhook.v1.WebhookService"));
}

TEST_F(AuthTest, KeysUserOwnsWhatItCreatesAndSubmits) {
  const Endpoint endpoint =
      Create(kKeyOne, MakeEndpoint("thread-1", receiver_one_.Url()));
  EXPECT_EQ(endpoint.user_id(), 1);
  const webhook::v1::SubmitEventResponse submitted =
      Submit(kKeyOne, "thread-1");
  ASSERT_THAT(submitted.delivery_ids(), SizeIs(1));
  const Delivery delivery = WaitFinished(kKeyOne, submitted.delivery_ids(0));
  EXPECT_EQ(delivery.user_id(), 1);
  ASSERT_TRUE(receiver_one_.WaitForRequests(1, absl::Seconds(10)));
  EXPECT_THAT(receiver_one_.Requests()[0].body, HasSubstr("\"userId\":1}"));
}

TEST_F(AuthTest, NamingAnotherUserIsPermissionDenied) {
  webhook::v1::CreateEndpointRequest create;
  *create.mutable_endpoint() = MakeEndpoint("thread-1", receiver_one_.Url());
  create.mutable_endpoint()->set_user_id(1);
  webhook::v1::CreateEndpointResponse created;
  grpc::Status status =
      stub().CreateEndpoint(Ctx(Bearer(kKeyTwo)).get(), create, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("endpoint.user_id"));

  webhook::v1::SubmitEventRequest event = ExampleEvent("thread-1");
  event.set_user_id(1);
  webhook::v1::SubmitEventResponse submitted;
  status = stub().SubmitEvent(Ctx(Bearer(kKeyTwo)).get(), event, &submitted);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("user_id"));

  const Endpoint own =
      Create(kKeyTwo, MakeEndpoint("thread-1", receiver_two_.Url()));
  webhook::v1::UpdateEndpointRequest update;
  update.mutable_endpoint()->set_id(own.id());
  update.mutable_endpoint()->set_user_id(1);
  update.mutable_endpoint()->set_name("renamed");
  update.mutable_update_mask()->add_paths("name");
  webhook::v1::UpdateEndpointResponse updated;
  status = stub().UpdateEndpoint(Ctx(Bearer(kKeyTwo)).get(), update, &updated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);

  // Its own user id is fine.
  event.set_user_id(2);
  EXPECT_TRUE(
      stub().SubmitEvent(Ctx(Bearer(kKeyTwo)).get(), event, &submitted).ok());
  webhook::v1::ListEndpointsResponse list;
  ASSERT_TRUE(stub().ListEndpoints(Ctx(Bearer(kKeyTwo)).get(), {}, &list).ok());
  ASSERT_THAT(list.endpoints(), SizeIs(1));
  EXPECT_EQ(list.endpoints(0).name(), own.name()) << "the update was refused";
}

TEST_F(AuthTest, BatchEventsAreEachOwnedByTheKeysUser) {
  const Endpoint mine =
      Create(kKeyOne, MakeEndpoint("thread-1", receiver_one_.Url()));
  Create(kKeyTwo, MakeEndpoint("thread-1", receiver_two_.Url()));
  webhook::v1::SubmitEventsRequest request;
  webhook::v1::SubmitEventRequest event = ExampleEvent("thread-1");
  event.set_user_id(0);  // The key's user.
  *request.add_events() = event;
  event.set_user_id(2);  // Another user: refused on its own.
  *request.add_events() = event;
  event.set_user_id(1);
  *request.add_events() = event;
  webhook::v1::SubmitEventsResponse response;
  const grpc::Status status =
      stub().SubmitEvents(Ctx(Bearer(kKeyOne)).get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_THAT(response.results(), SizeIs(3));
  EXPECT_EQ(response.results(1).code(),
            static_cast<int>(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_THAT(response.results(1).message(), HasSubstr("events[1].user_id"));
  for (int i : {0, 2}) {
    ASSERT_EQ(response.results(i).code(), 0) << response.results(i).message();
    // Only user one's endpoint of the thread gets the event.
    ASSERT_THAT(response.results(i).response().delivery_ids(), SizeIs(1));
    const Delivery delivery =
        WaitFinished(kKeyOne, response.results(i).response().delivery_ids(0));
    EXPECT_EQ(delivery.endpoint_id(), mine.id());
    EXPECT_EQ(delivery.user_id(), 1);
  }
  EXPECT_EQ(receiver_two_.RequestCount(), 0u);
  // Another user's key cannot see them.
  webhook::v1::GetDeliveryRequest get;
  get.set_id(response.results(0).response().delivery_ids(0));
  webhook::v1::GetDeliveryResponse got;
  EXPECT_EQ(
      stub().GetDelivery(Ctx(Bearer(kKeyTwo)).get(), get, &got).error_code(),
      grpc::StatusCode::NOT_FOUND);
}

TEST_F(AuthTest, AnotherUsersEndpointsAndDeliveriesAreInvisible) {
  const Endpoint mine =
      Create(kKeyOne, MakeEndpoint("thread-1", receiver_one_.Url()));
  const Endpoint theirs =
      Create(kKeyTwo, MakeEndpoint("thread-1", receiver_two_.Url()));
  // Same thread: user one's event reaches only user one's endpoint.
  const webhook::v1::SubmitEventResponse submitted =
      Submit(kKeyOne, "thread-1");
  ASSERT_THAT(submitted.delivery_ids(), SizeIs(1));
  const std::string delivery_id = submitted.delivery_ids(0);
  const Delivery delivery = WaitFinished(kKeyOne, delivery_id);
  EXPECT_EQ(delivery.endpoint_id(), mine.id());
  EXPECT_EQ(receiver_two_.RequestCount(), 0u);

  const std::string other = Bearer(kKeyTwo);
  const std::string not_found_endpoint =
      absl::StrCat("endpoint \"", mine.id(), "\" not found");
  const std::string not_found_delivery =
      absl::StrCat("delivery \"", delivery_id, "\" not found");
  using namespace webhook::v1;  // NOLINT: many request/response types.
  const std::vector<std::pair<std::string, std::function<grpc::Status()>>>
      calls = {
          {"GetEndpoint",
           [&] {
             GetEndpointRequest q;
             q.set_id(mine.id());
             GetEndpointResponse r;
             return stub().GetEndpoint(Ctx(other).get(), q, &r);
           }},
          {"UpdateEndpoint",
           [&] {
             UpdateEndpointRequest q;
             q.mutable_endpoint()->set_id(mine.id());
             q.mutable_endpoint()->set_name("hijacked");
             q.mutable_update_mask()->add_paths("name");
             UpdateEndpointResponse r;
             return stub().UpdateEndpoint(Ctx(other).get(), q, &r);
           }},
          {"DisableEndpoint",
           [&] {
             DisableEndpointRequest q;
             q.set_id(mine.id());
             DisableEndpointResponse r;
             return stub().DisableEndpoint(Ctx(other).get(), q, &r);
           }},
          {"EnableEndpoint",
           [&] {
             EnableEndpointRequest q;
             q.set_id(mine.id());
             EnableEndpointResponse r;
             return stub().EnableEndpoint(Ctx(other).get(), q, &r);
           }},
          {"GetEndpointStats",
           [&] {
             GetEndpointStatsRequest q;
             q.set_endpoint_id(mine.id());
             GetEndpointStatsResponse r;
             return stub().GetEndpointStats(Ctx(other).get(), q, &r);
           }},
          {"SendTestDelivery",
           [&] {
             SendTestDeliveryRequest q;
             q.set_endpoint_id(mine.id());
             SendTestDeliveryResponse r;
             return stub().SendTestDelivery(Ctx(other).get(), q, &r);
           }},
          {"DeleteEndpoint",
           [&] {
             DeleteEndpointRequest q;
             q.set_id(mine.id());
             DeleteEndpointResponse r;
             return stub().DeleteEndpoint(Ctx(other).get(), q, &r);
           }},
          {"GetDelivery",
           [&] {
             GetDeliveryRequest q;
             q.set_id(delivery_id);
             GetDeliveryResponse r;
             return stub().GetDelivery(Ctx(other).get(), q, &r);
           }},
          {"RetryDelivery",
           [&] {
             RetryDeliveryRequest q;
             q.set_id(delivery_id);
             RetryDeliveryResponse r;
             return stub().RetryDelivery(Ctx(other).get(), q, &r);
           }},
      };
  for (const auto& [name, call] : calls) {
    grpc::Status status = call();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << name;
    EXPECT_THAT(status.error_message(),
                ::testing::AnyOf(not_found_endpoint, not_found_delivery))
        << name << ": the same answer as for an id that does not exist";
  }

  ListEndpointsResponse endpoints;
  ASSERT_TRUE(stub().ListEndpoints(Ctx(other).get(), {}, &endpoints).ok());
  ASSERT_THAT(endpoints.endpoints(), SizeIs(1));
  EXPECT_EQ(endpoints.endpoints(0).id(), theirs.id());

  for (const std::string& endpoint_id : {std::string(), mine.id()}) {
    ListDeliveriesRequest q;
    q.set_endpoint_id(endpoint_id);
    ListDeliveriesResponse deliveries;
    ASSERT_TRUE(stub().ListDeliveries(Ctx(other).get(), q, &deliveries).ok());
    EXPECT_THAT(deliveries.deliveries(), IsEmpty());
  }

  // Nothing of user one changed, and user one still sees it all.
  GetEndpointRequest get;
  get.set_id(mine.id());
  GetEndpointResponse got;
  ASSERT_TRUE(stub().GetEndpoint(Ctx(Bearer(kKeyOne)).get(), get, &got).ok());
  EXPECT_EQ(got.endpoint().name(), mine.name());
  EXPECT_TRUE(got.endpoint().enabled());
  ListDeliveriesResponse own;
  ASSERT_TRUE(stub().ListDeliveries(Ctx(Bearer(kKeyOne)).get(), {}, &own).ok());
  EXPECT_THAT(own.deliveries(), SizeIs(1));
  GetEndpointStatsRequest stats;
  stats.set_endpoint_id(mine.id());
  GetEndpointStatsResponse stats_response;
  ASSERT_TRUE(
      stub()
          .GetEndpointStats(Ctx(Bearer(kKeyOne)).get(), stats, &stats_response)
          .ok());
  EXPECT_EQ(stats_response.stats().total_deliveries(), 1);
}

TEST_F(AuthTest, DeletedEndpointStatsStayWithTheirOwner) {
  const Endpoint mine =
      Create(kKeyOne, MakeEndpoint("thread-1", receiver_one_.Url()));
  WaitFinished(kKeyOne, Submit(kKeyOne, "thread-1").delivery_ids(0));
  webhook::v1::DeleteEndpointRequest remove;
  remove.set_id(mine.id());
  webhook::v1::DeleteEndpointResponse removed;
  ASSERT_TRUE(
      stub().DeleteEndpoint(Ctx(Bearer(kKeyOne)).get(), remove, &removed).ok());

  webhook::v1::GetEndpointStatsRequest request;
  request.set_endpoint_id(mine.id());
  webhook::v1::GetEndpointStatsResponse response;
  EXPECT_TRUE(
      stub()
          .GetEndpointStats(Ctx(Bearer(kKeyOne)).get(), request, &response)
          .ok());
  EXPECT_EQ(response.stats().total_deliveries(), 1);
  EXPECT_EQ(
      stub()
          .GetEndpointStats(Ctx(Bearer(kKeyTwo)).get(), request, &response)
          .error_code(),
      grpc::StatusCode::NOT_FOUND);
}

TEST_F(AuthTest, IdempotencyKeysAreSeparatePerUser) {
  Create(kKeyOne, MakeEndpoint("thread-1", receiver_one_.Url()));
  Create(kKeyTwo, MakeEndpoint("thread-1", receiver_two_.Url()));
  webhook::v1::SubmitEventRequest event = ExampleEvent("thread-1");
  event.set_user_id(0);
  event.set_idempotency_key("run-1");
  webhook::v1::SubmitEventResponse first;
  webhook::v1::SubmitEventResponse second;
  ASSERT_TRUE(
      stub().SubmitEvent(Ctx(Bearer(kKeyOne)).get(), event, &first).ok());
  ASSERT_TRUE(
      stub().SubmitEvent(Ctx(Bearer(kKeyTwo)).get(), event, &second).ok());
  EXPECT_NE(first.event_id(), second.event_id());
  ASSERT_THAT(second.delivery_ids(), SizeIs(1));
  EXPECT_NE(first.delivery_ids(0), second.delivery_ids(0));
}

TEST_F(AuthTest, StreamShowsOnlyTheCallersDeliveries) {
  const Endpoint mine =
      Create(kKeyOne, MakeEndpoint("thread-1", receiver_one_.Url()));
  const Endpoint theirs =
      Create(kKeyTwo, MakeEndpoint("thread-1", receiver_two_.Url()));
  // Finished before the stream opens: only a replay could show it.
  WaitFinished(kKeyOne, Submit(kKeyOne, "thread-1").delivery_ids(0));

  std::unique_ptr<grpc::ClientContext> context = Ctx(Bearer(kKeyTwo));
  webhook::v1::StreamDeliveriesRequest request;
  request.set_replay_recent(10);
  auto reader = stub().StreamDeliveries(context.get(), request);
  // Subscribed once the headers are in; then both users submit.
  reader->WaitForInitialMetadata();
  Submit(kKeyOne, "thread-1");
  const std::string theirs_id = Submit(kKeyTwo, "thread-1").delivery_ids(0);
  webhook::v1::StreamDeliveriesResponse update;
  int seen = 0;
  while (reader->Read(&update)) {
    ++seen;
    EXPECT_EQ(update.delivery().user_id(), 2);
    EXPECT_EQ(update.delivery().endpoint_id(), theirs.id());
    if (update.delivery().id() == theirs_id && IsFinished(update.delivery())) {
      break;
    }
    ASSERT_LT(seen, 100);
  }
  context->TryCancel();
  reader->Finish();
  EXPECT_GT(seen, 0);
}

TEST(AuthProcessTest, WarnsWhenUnauthenticatedAndNotWithKeys) {
  TestDir dir;
  {
    auto process =
        testing::WebhookdProcess::StartServer(dir.Sub("open"), dir.path());
    ASSERT_TRUE(process->status().ok()) << process->status();
    EXPECT_THAT(process->Log(), HasSubstr("no --api_keys_file"));
    EXPECT_THAT(process->Log(), HasSubstr("unauthenticated"));
  }
  std::ofstream(dir.Sub("keys.txt")) << kKeysFile;
  TestDir dir2;
  auto process = testing::WebhookdProcess::StartServer(
      dir2.Sub("data"), dir2.path(),
      {absl::StrCat("--api_keys_file=", dir.Sub("keys.txt"))});
  ASSERT_TRUE(process->status().ok()) << process->status();
  EXPECT_THAT(process->Log(), Not(HasSubstr("no --api_keys_file")));
  EXPECT_THAT(process->Log(), HasSubstr("API keys required"));
  webhook::v1::ListEndpointsResponse list;
  EXPECT_EQ(process->stub()
                .ListEndpoints(testing::Context().get(), {}, &list)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(process->stub()
                  .ListEndpoints(Ctx(Bearer(kKeyOne)).get(), {}, &list)
                  .ok());
  EXPECT_THAT(process->Log(), Not(HasSubstr("key-of")));
}

TEST(AuthProcessTest, RefusesToStartOnPublicAddressWithoutKeys) {
  TestDir dir;
  testing::WebhookdProcess process(
      {"--listen=0.0.0.0:0", absl::StrCat("--data_dir=", dir.Sub("data"))},
      dir.Sub("log"));
  const int status = process.Wait(absl::Seconds(20));
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0);
  EXPECT_THAT(process.Log(), HasSubstr("--api_keys_file"));
  EXPECT_THAT(process.Log(), HasSubstr("0.0.0.0:0"));
}

TEST(AuthProcessTest, BadKeysFileStopsStartUpWithoutShowingKeys) {
  TestDir dir;
  std::ofstream(dir.Sub("keys.txt")) << "short-key-12345 1\n";
  testing::WebhookdProcess process(
      {"--listen=127.0.0.1:0", absl::StrCat("--data_dir=", dir.Sub("data")),
       absl::StrCat("--api_keys_file=", dir.Sub("keys.txt"))},
      dir.Sub("log"));
  const int status = process.Wait(absl::Seconds(20));
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0);
  EXPECT_THAT(process.Log(), HasSubstr("line 1"));
  EXPECT_THAT(process.Log(), Not(HasSubstr("short-key")));
}

}  // namespace
}  // namespace webhookd
