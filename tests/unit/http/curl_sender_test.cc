#include "server/http/curl_sender.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/http_receiver.h"
#include "tests/unit/http/drop_second_request_server.h"

namespace webhookd {
namespace {

using testing::UnusedPort;

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::webhookd::testing::DropSecondRequestServer;
using ::webhookd::testing::HttpReceiver;
using ::webhookd::testing::ReceivedRequest;

constexpr absl::Duration kWait = absl::Seconds(10);
constexpr char kUserAgent[] = "webhookd-test/1.0";

// Collects results of sends; shared with the callbacks so that a callback
// arriving after a failed wait is harmless.
class Results {
 public:
  HttpSender::Callback Callback() {
    return [this](HttpResult result) {
      absl::MutexLock lock(&mu_);
      results_.push_back(std::move(result));
    };
  }

  bool WaitFor(size_t n, absl::Duration timeout = kWait) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return results_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

  size_t size() const {
    absl::MutexLock lock(&mu_);
    return results_.size();
  }

  std::vector<HttpResult> Get() const {
    absl::MutexLock lock(&mu_);
    return results_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<HttpResult> results_ ABSL_GUARDED_BY(mu_);
};

HttpRequest Post(std::string url, std::string body = "{}") {
  HttpRequest request;
  request.url = std::move(url);
  request.headers = {{"Content-Type", "application/json"}};
  request.body = std::move(body);
  request.timeout = kWait;
  return request;
}

CurlSenderOptions TestOptions() {
  CurlSenderOptions options;
  options.user_agent = kUserAgent;
  return options;
}

// Sends one request and waits for its result.
HttpResult SendAndWait(HttpSender& sender, HttpRequest request) {
  auto results = std::make_shared<Results>();
  sender.Send(std::move(request),
              [results](HttpResult result) { results->Callback()(result); });
  if (!results->WaitFor(1, kWait + absl::Seconds(5))) {
    ADD_FAILURE() << "no result";
    return HttpResult();
  }
  return results->Get()[0];
}

// Accepts one connection and keeps the request's raw bytes, which
// HttpReceiver (httplib sorts headers by name) cannot show.
class RawCapture {
 public:
  RawCapture() {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    listen(listener_, 1);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { raw_ = Serve(); });
  }
  ~RawCapture() {
    if (thread_.joinable()) thread_.join();
    close(listener_);
  }

  std::string Url() const { return absl::StrCat("http://127.0.0.1:", port_); }

  // Waits for the exchange to end.
  std::string Raw() {
    if (thread_.joinable()) thread_.join();
    return raw_;
  }

 private:
  static bool WaitReadable(int fd, absl::Time deadline) {
    pollfd entry{fd, POLLIN, 0};
    int ms =
        static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    return ms > 0 && poll(&entry, 1, ms) == 1;
  }

  std::string Serve() {
    const absl::Time deadline = absl::Now() + kWait;
    if (!WaitReadable(listener_, deadline)) return "";
    int fd = accept(listener_, nullptr, nullptr);
    if (fd < 0) return "";
    std::string raw;
    size_t wanted = std::string::npos;
    while (raw.size() < wanted && WaitReadable(fd, deadline)) {
      char buffer[65536];
      ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n <= 0) break;
      raw.append(buffer, n);
      size_t end = raw.find("\r\n\r\n");
      if (wanted == std::string::npos && end != std::string::npos) {
        size_t body_length = 0;
        std::string head = absl::AsciiStrToLower(raw.substr(0, end));
        size_t at = head.find("\r\ncontent-length:");
        if (at != std::string::npos) {
          size_t from = at + strlen("\r\ncontent-length:");
          std::string value = head.substr(from, head.find("\r\n", from) - from);
          (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(value),
                                 &body_length);
        }
        wanted = end + 4 + body_length;
      }
    }
    constexpr absl::string_view kResponse =
        "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
    (void)!write(fd, kResponse.data(), kResponse.size());
    close(fd);
    return raw;
  }

  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::string raw_;
};

TEST(CurlSenderCreateTest, NoFileDescriptorLeftIsAnErrorStatus) {
  // libcurl's one-time global set-up happens here, with descriptors to spare.
  ASSERT_TRUE(CurlSender::Create(TestOptions()).ok());
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit none = saved;
  none.rlim_cur = 0;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &none), 0);

  absl::StatusOr<std::unique_ptr<CurlSender>> sender =
      CurlSender::Create(TestOptions());

  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_EQ(sender.status().code(), absl::StatusCode::kResourceExhausted)
      << sender.status();
}

class CurlSenderTest : public ::testing::Test {
 protected:
  static std::unique_ptr<CurlSender> MakeSender(
      const CurlSenderOptions& options = TestOptions()) {
    absl::StatusOr<std::unique_ptr<CurlSender>> sender =
        CurlSender::Create(options);
    EXPECT_TRUE(sender.ok()) << sender.status();
    return sender.ok() ? *std::move(sender) : nullptr;
  }

  HttpReceiver receiver_;
};

TEST_F(CurlSenderTest, PostDeliversBinaryBodyExactly) {
  std::string body("a\0b\r\n\0", 6);
  for (int i = 0; i < 256; ++i) body.push_back(static_cast<char>(i));
  auto sender = MakeSender();

  HttpResult result = SendAndWait(*sender, Post(receiver_.Url(), body));

  EXPECT_EQ(result.status_code, 200);
  EXPECT_THAT(result.error, IsEmpty());
  std::vector<ReceivedRequest> requests = receiver_.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path, "/hook");
  EXPECT_EQ(requests[0].body, body);
}

TEST_F(CurlSenderTest, PostDeliversMebibyteBodyWithoutExpectContinue) {
  // Just over 1 MiB, where libcurl would otherwise ask for 100-continue.
  std::string body((1 << 20) + 100, '\0');
  for (size_t i = 0; i < body.size(); ++i) {
    body[i] = static_cast<char>((i * 2654435761u) >> 13);
  }
  auto sender = MakeSender();

  HttpResult result = SendAndWait(*sender, Post(receiver_.Url(), body));

  EXPECT_EQ(result.status_code, 200);
  EXPECT_THAT(result.error, IsEmpty());
  std::vector<ReceivedRequest> requests = receiver_.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_TRUE(requests[0].body == body) << "body differs";
  EXPECT_EQ(requests[0].Header("Content-Length"), "1048676");
  EXPECT_FALSE(requests[0].HasHeader("Expect"));
}

TEST_F(CurlSenderTest, CustomHeadersArriveExactlyAndInOrder) {
  RawCapture capture;
  HttpRequest request = Post(capture.Url() + "/in", R"({"a":1})");
  request.headers = {{"X-Webhook-Id", "msg_123"},
                     {"Content-Type", "application/json"},
                     {"x-lower-case", "Value With  Two Spaces"},
                     {"X-Empty", ""},
                     {"X-Repeated", "first"},
                     {"X-Repeated", "second"},
                     {"A-Last", "z"}};
  auto sender = MakeSender();

  HttpResult result = SendAndWait(*sender, request);

  EXPECT_EQ(result.status_code, 204);
  EXPECT_THAT(result.error, IsEmpty());
  std::string raw = capture.Raw();
  EXPECT_TRUE(absl::StartsWith(raw, "POST /in HTTP/1.1\r\n")) << raw;
  size_t previous = 0;
  for (const char* line :
       {"X-Webhook-Id: msg_123\r\n", "Content-Type: application/json\r\n",
        "x-lower-case: Value With  Two Spaces\r\n", "X-Empty:\r\n",
        "X-Repeated: first\r\n", "X-Repeated: second\r\n", "A-Last: z\r\n"}) {
    size_t at = raw.find(line);
    ASSERT_NE(at, std::string::npos) << "missing " << line << " in " << raw;
    EXPECT_GT(at, previous) << line << " out of order in " << raw;
    previous = at;
  }
  EXPECT_THAT(raw, HasSubstr(absl::StrCat("User-Agent: ", kUserAgent, "\r\n")));
  EXPECT_THAT(raw, ::testing::Not(HasSubstr("Expect:")));
  EXPECT_TRUE(absl::EndsWith(raw, "\r\n\r\n{\"a\":1}")) << raw;
}

TEST_F(CurlSenderTest, PostWithoutContentTypeSendsNone) {
  HttpRequest request = Post(receiver_.Url());
  request.headers.clear();
  auto sender = MakeSender();

  SendAndWait(*sender, request);

  ASSERT_TRUE(receiver_.WaitForRequests(1, kWait));
  EXPECT_FALSE(receiver_.Requests()[0].HasHeader("Content-Type"));
}

TEST_F(CurlSenderTest, RequestUserAgentReplacesConfiguredOne) {
  HttpRequest request = Post(receiver_.Url());
  request.headers.emplace_back("User-Agent", "custom/2");
  auto sender = MakeSender();

  SendAndWait(*sender, request);

  ASSERT_TRUE(receiver_.WaitForRequests(1, kWait));
  EXPECT_THAT(receiver_.Requests()[0].HeaderValues("user-agent"),
              ::testing::ElementsAre("custom/2"));
}

TEST_F(CurlSenderTest, ReturnsStatusCodeAndBodyOfAnyResponse) {
  auto sender = MakeSender();
  for (int status : {200, 201, 202, 400, 404, 410, 429, 500, 503}) {
    receiver_.PushResponse(status, absl::StrCat("answer ", status));

    HttpResult result = SendAndWait(*sender, Post(receiver_.Url()));

    EXPECT_EQ(result.status_code, status);
    EXPECT_THAT(result.error, IsEmpty()) << status;
    EXPECT_EQ(result.body, absl::StrCat("answer ", status));
  }
}

TEST_F(CurlSenderTest, RedirectIsReturnedAndNotFollowed) {
  HttpReceiver target;
  auto sender = MakeSender();
  for (int status : {301, 302, 307, 308}) {
    receiver_.PushResponse(status, "", {{"Location", target.Url("/moved")}});

    HttpResult result = SendAndWait(*sender, Post(receiver_.Url()));

    EXPECT_EQ(result.status_code, status);
    EXPECT_THAT(result.error, IsEmpty());
  }
  EXPECT_EQ(target.RequestCount(), 0u);
}

TEST_F(CurlSenderTest, KeepsOnlyTheFirstBytesOfLargeResponseBody) {
  std::string body(1 << 20, 'x');
  for (size_t i = 0; i < body.size(); ++i) body[i] = 'a' + i % 26;
  receiver_.PushResponse(200, body);
  auto sender = MakeSender();

  HttpResult result = SendAndWait(*sender, Post(receiver_.Url()));

  EXPECT_EQ(result.status_code, 200);
  EXPECT_THAT(result.error, IsEmpty());
  EXPECT_EQ(result.body, body.substr(0, 4096));
}

TEST_F(CurlSenderTest, ResponseSlightlyOverLimitKeepsConnectionAlive) {
  auto sender = MakeSender();
  for (int i = 0; i < 3; ++i) {
    receiver_.PushResponse(200, std::string(20000, 'b'));
    HttpResult result = SendAndWait(*sender, Post(receiver_.Url()));
    EXPECT_EQ(result.status_code, 200);
    EXPECT_EQ(result.body.size(), 4096u);
  }

  std::set<int> ports;
  for (const ReceivedRequest& request : receiver_.Requests()) {
    ports.insert(request.remote_port);
  }
  EXPECT_EQ(ports.size(), 1u);
}

TEST_F(CurlSenderTest, ConnectionRefusedReportsErrorWithoutStatus) {
  auto sender = MakeSender();

  HttpResult result = SendAndWait(
      *sender, Post(absl::StrCat("http://127.0.0.1:", UnusedPort(), "/hook")));

  EXPECT_EQ(result.status_code, 0);
  EXPECT_THAT(result.error, HasSubstr("refused"));
}

TEST_F(CurlSenderTest, HttpsToPlainHttpServerReportsTlsFailure) {
  auto sender = MakeSender();

  HttpResult result = SendAndWait(
      *sender, Post(absl::StrCat("https://127.0.0.1:", receiver_.port())));

  EXPECT_EQ(result.status_code, 0);
  EXPECT_THAT(result.error, HasSubstr("TLS"));
}

TEST_F(CurlSenderTest, SlowResponseTimesOutAfterRequestTimeout) {
  receiver_.PushResponse(200, "late", {}, absl::Seconds(2));
  HttpRequest request = Post(receiver_.Url());
  request.timeout = absl::Milliseconds(200);
  auto sender = MakeSender();

  HttpResult result = SendAndWait(*sender, request);

  EXPECT_EQ(result.status_code, 0);
  EXPECT_THAT(result.error, HasSubstr("timed out after 200 ms"));
  EXPECT_GE(result.elapsed, absl::Milliseconds(190));
  EXPECT_LT(result.elapsed, absl::Milliseconds(1500));
}

TEST_F(CurlSenderTest, HangingEndpointDoesNotHoldUpOthersOnTheSameWorker) {
  HttpReceiver slow;
  slow.SetDefaultResponse(200, "", {}, absl::InfiniteDuration());
  Results slow_results;
  Results fast_results;
  CurlSenderOptions options = TestOptions();
  options.workers = 1;
  auto sender = MakeSender(options);

  sender->Send(Post(slow.Url()), slow_results.Callback());
  ASSERT_TRUE(slow.WaitForRequests(1, kWait));
  for (int i = 0; i < 100; ++i) {
    sender->Send(Post(receiver_.Url()), fast_results.Callback());
  }

  ASSERT_TRUE(fast_results.WaitFor(100));
  EXPECT_EQ(slow_results.size(), 0u);
  for (const HttpResult& result : fast_results.Get()) {
    EXPECT_EQ(result.status_code, 200);
  }
  sender.reset();  // Aborts the hanging request.
  ASSERT_EQ(slow_results.size(), 1u);
  EXPECT_EQ(slow_results.Get()[0].error, "aborted: shutting down");
}

TEST_F(CurlSenderTest, HangingRequestDoesNotHoldUpOthersToTheSameHost) {
  // One receiver: its /slow path hangs, every other path answers at once.
  receiver_.SetHandler([](const testing::ReceivedRequest& request) {
    testing::ReceiverResponse response;
    if (request.path == "/slow") response.delay = absl::InfiniteDuration();
    return response;
  });
  Results slow_results;
  Results fast_results;
  CurlSenderOptions options = TestOptions();
  options.workers = 1;
  auto sender = MakeSender(options);

  sender->Send(Post(receiver_.Url("/slow")), slow_results.Callback());
  ASSERT_TRUE(receiver_.WaitForRequests(1, kWait));
  for (int i = 0; i < 20; ++i) {
    sender->Send(Post(receiver_.Url("/fast")), fast_results.Callback());
  }

  ASSERT_TRUE(fast_results.WaitFor(20));
  EXPECT_EQ(slow_results.size(), 0u);
  for (const HttpResult& result : fast_results.Get()) {
    EXPECT_EQ(result.status_code, 200);
  }
  sender.reset();
  EXPECT_EQ(slow_results.size(), 1u);
}

TEST_F(CurlSenderTest, ThousandsOfConcurrentRequestsEachCompleteOnce) {
  constexpr int kRequests = 2000;
  absl::Mutex mu;
  std::vector<int> calls(kRequests, 0);
  int ok = 0;
  int total = 0;
  CurlSenderOptions options = TestOptions();
  options.workers = 2;
  // Most requests wait in the workers' queues; the connections (one per
  // running transfer) stay within the receiver's threads.
  options.max_transfers_per_worker = 50;
  auto sender = MakeSender(options);

  for (int i = 0; i < kRequests; ++i) {
    sender->Send(Post(receiver_.Url(), absl::StrCat(R"({"n":)", i, "}")),
                 [&, i](HttpResult result) {
                   absl::MutexLock lock(&mu);
                   ++calls[i];
                   ++total;
                   if (result.status_code == 200 && result.error.empty()) ++ok;
                 });
  }
  {
    absl::MutexLock lock(&mu);
    auto all_done = [&]() { return total >= kRequests; };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all_done), kWait));
  }
  sender->Shutdown(absl::Seconds(5));

  absl::MutexLock lock(&mu);
  EXPECT_EQ(total, kRequests);
  EXPECT_EQ(ok, kRequests);
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_EQ(calls[i], 1) << "request " << i;
  }
  EXPECT_EQ(receiver_.RequestCount(), static_cast<size_t>(kRequests));
  EXPECT_EQ(sender->InFlight(), 0u);
}

TEST_F(CurlSenderTest, SequentialRequestsReuseTheConnection) {
  auto sender = MakeSender();
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ(SendAndWait(*sender, Post(receiver_.Url())).status_code, 200);
  }

  std::set<int> ports;
  for (const ReceivedRequest& request : receiver_.Requests()) {
    ports.insert(request.remote_port);
  }
  EXPECT_EQ(receiver_.RequestCount(), 30u);
  EXPECT_EQ(ports.size(), 1u);
}

// libcurl sends a request again, on a fresh connection, when a reused
// keep-alive connection dies before any response (Curl_retry_request): the
// receiver then sees one request more than the results report.
class CurlSenderDroppedConnectionTest
    : public ::testing::TestWithParam<DropSecondRequestServer::Drop> {};

TEST_P(CurlSenderDroppedConnectionTest, ReusedConnectionDroppedIsOneAttempt) {
  DropSecondRequestServer server(GetParam());
  CurlSenderOptions options = TestOptions();
  options.workers = 1;  // One connection cache.
  absl::StatusOr<std::unique_ptr<CurlSender>> sender =
      CurlSender::Create(options);
  ASSERT_TRUE(sender.ok()) << sender.status();

  // The first request opens the connection, the second reuses it.
  HttpResult answered = SendAndWait(**sender, Post(server.Url()));
  HttpResult dropped = SendAndWait(**sender, Post(server.Url()));
  (*sender)->Shutdown(absl::ZeroDuration());
  server.Stop();

  EXPECT_EQ(answered.status_code, 200);
  EXPECT_EQ(dropped.status_code, 0);
  EXPECT_EQ(dropped.error,
            "connection closed before a response; not re-sent (the next "
            "attempt follows the retry schedule)");
  // Two results, so two requests on the wire.
  EXPECT_EQ(server.requests(), 2);
}

INSTANTIATE_TEST_SUITE_P(
    ResetOrClose, CurlSenderDroppedConnectionTest,
    ::testing::Values(DropSecondRequestServer::Drop::kReset,
                      DropSecondRequestServer::Drop::kClose),
    [](const ::testing::TestParamInfo<DropSecondRequestServer::Drop>& info) {
      return info.param == DropSecondRequestServer::Drop::kReset ? "Reset"
                                                                 : "Close";
    });

TEST_F(CurlSenderTest, AddressFilterRefusalBlocksTheConnection) {
  CurlSenderOptions options = TestOptions();
  options.address_filter = [](const sockaddr* address, socklen_t,
                              std::string* why) {
    if (address->sa_family == AF_INET &&
        reinterpret_cast<const sockaddr_in*>(address)->sin_addr.s_addr ==
            htonl(INADDR_LOOPBACK)) {
      *why = "loopback";
      return false;
    }
    return true;
  };
  auto sender = MakeSender(options);

  HttpResult result = SendAndWait(*sender, Post(receiver_.Url()));

  EXPECT_EQ(result.status_code, 0);
  EXPECT_EQ(result.error, "blocked address 127.0.0.1: loopback");
  EXPECT_EQ(receiver_.RequestCount(), 0u);
}

TEST_F(CurlSenderTest, AddressFilterSeesTheAddressAndCanAllowIt) {
  absl::Mutex mu;
  std::vector<std::string> addresses;
  CurlSenderOptions options = TestOptions();
  options.address_filter = [&](const sockaddr* address, socklen_t,
                               std::string*) {
    char text[INET6_ADDRSTRLEN] = "";
    if (address->sa_family == AF_INET) {
      inet_ntop(AF_INET,
                &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text,
                sizeof(text));
    }
    absl::MutexLock lock(&mu);
    addresses.push_back(text);
    return true;
  };
  auto sender = MakeSender(options);

  HttpResult result = SendAndWait(*sender, Post(receiver_.Url()));

  EXPECT_EQ(result.status_code, 200);
  EXPECT_THAT(result.error, IsEmpty());
  absl::MutexLock lock(&mu);
  EXPECT_THAT(addresses, ::testing::ElementsAre("127.0.0.1"));
}

TEST_F(CurlSenderTest, OnlyHttpAndHttpsUrlsAreFetched) {
  auto sender = MakeSender();
  for (const std::string& url :
       {std::string("file:///etc/hostname"),
        absl::StrCat("ftp://127.0.0.1:", receiver_.port(), "/"),
        absl::StrCat("gopher://127.0.0.1:", receiver_.port(), "/")}) {
    HttpResult result = SendAndWait(*sender, Post(url));

    EXPECT_EQ(result.status_code, 0) << url;
    EXPECT_THAT(result.error, HasSubstr("unsupported protocol")) << url;
  }
  EXPECT_EQ(receiver_.RequestCount(), 0u);
}

TEST_F(CurlSenderTest, ShutdownLetsRunningRequestFinishWithinGrace) {
  receiver_.PushResponse(200, "done", {}, absl::Milliseconds(300));
  Results results;
  auto sender = MakeSender();
  sender->Send(Post(receiver_.Url()), results.Callback());
  ASSERT_TRUE(receiver_.WaitForRequests(1, kWait));

  sender->Shutdown(kWait);

  ASSERT_EQ(results.size(), 1u);
  HttpResult result = results.Get()[0];
  EXPECT_EQ(result.status_code, 200);
  EXPECT_THAT(result.error, IsEmpty());
  EXPECT_EQ(result.body, "done");
}

TEST_F(CurlSenderTest, ShutdownAbortsHangingRequestAfterGrace) {
  receiver_.SetDefaultResponse(200, "", {}, absl::InfiniteDuration());
  Results results;
  auto sender = MakeSender();
  sender->Send(Post(receiver_.Url()), results.Callback());
  ASSERT_TRUE(receiver_.WaitForRequests(1, kWait));

  const absl::Time start = absl::Now();
  sender->Shutdown(absl::Milliseconds(200));
  const absl::Duration took = absl::Now() - start;

  EXPECT_GE(took, absl::Milliseconds(190));
  EXPECT_LT(took, absl::Seconds(5));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results.Get()[0].status_code, 0);
  EXPECT_EQ(results.Get()[0].error, "aborted: shutting down");
  sender.reset();
  EXPECT_EQ(results.size(), 1u);
}

TEST_F(CurlSenderTest, QueuedRequestsAreAbortedAtShutdown) {
  receiver_.SetDefaultResponse(200, "", {}, absl::InfiniteDuration());
  Results results;
  CurlSenderOptions options = TestOptions();
  options.workers = 1;
  options.max_transfers_per_worker = 1;
  auto sender = MakeSender(options);
  for (int i = 0; i < 3; ++i) {
    sender->Send(Post(receiver_.Url()), results.Callback());
  }
  ASSERT_TRUE(receiver_.WaitForRequests(1, kWait));
  EXPECT_EQ(sender->InFlight(), 3u);

  sender->Shutdown(absl::ZeroDuration());

  EXPECT_EQ(receiver_.RequestCount(), 1u);
  EXPECT_EQ(sender->InFlight(), 0u);
  ASSERT_EQ(results.size(), 3u);
  for (const HttpResult& result : results.Get()) {
    EXPECT_EQ(result.error, "aborted: shutting down");
  }
}

TEST_F(CurlSenderTest, SendAfterShutdownFailsAtOnce) {
  Results results;
  auto sender = MakeSender();
  sender->Shutdown(absl::ZeroDuration());

  sender->Send(Post(receiver_.Url()), results.Callback());

  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results.Get()[0].status_code, 0);
  EXPECT_EQ(results.Get()[0].error, "sender is shutting down");
  EXPECT_EQ(receiver_.RequestCount(), 0u);
}

TEST_F(CurlSenderTest, ShutdownAbortIsMarkedAbortedNotFailed) {
  receiver_.SetDefaultResponse(200, "", {}, absl::InfiniteDuration());
  Results results;
  auto sender = MakeSender();
  sender->Send(Post(receiver_.Url()), results.Callback());
  ASSERT_TRUE(receiver_.WaitForRequests(1, kWait));

  sender->Shutdown(absl::Milliseconds(50));
  sender->Send(Post(receiver_.Url()), results.Callback());

  ASSERT_EQ(results.size(), 2u);
  for (const HttpResult& result : results.Get()) {
    EXPECT_TRUE(result.aborted) << result.error;
  }
}

TEST_F(CurlSenderTest, FinishedRequestIsNotMarkedAborted) {
  auto sender = MakeSender();

  HttpResult result = SendAndWait(*sender, Post(receiver_.Url()));

  EXPECT_EQ(result.status_code, 200);
  EXPECT_FALSE(result.aborted);
}

TEST_F(CurlSenderTest, RetryAfterHeaderIsReturned) {
  receiver_.PushResponse(503, "", {{"Retry-After", "120"}});
  receiver_.PushResponse(200);
  auto sender = MakeSender();

  HttpResult with = SendAndWait(*sender, Post(receiver_.Url()));
  HttpResult without = SendAndWait(*sender, Post(receiver_.Url()));

  EXPECT_EQ(with.status_code, 503);
  EXPECT_EQ(with.retry_after, absl::Seconds(120));
  EXPECT_EQ(without.retry_after, std::nullopt);
}

}  // namespace
}  // namespace webhookd
