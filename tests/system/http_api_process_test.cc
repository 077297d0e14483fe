// The HTTP/JSON API of a real webhookd process: --http_listen and
// --http_port_file serve it, an address in use or an unauthenticated
// non-loopback one stops start-up, and SIGTERM does not wait for open
// event streams.

#include <signal.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/support/eventually.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/test_dir.h"
#include "tests/support/webhookd_process.h"

namespace webhookd {
namespace {

using testing::ExitedWith;
using ::testing::HasSubstr;
using testing::kEventuallyTimeout;
using testing::TestDir;
using testing::WebhookdProcess;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class HttpApiProcessTest : public ::testing::Test {
 protected:
  // A server with the HTTP/JSON API on a free port; sets http_port_.
  std::unique_ptr<WebhookdProcess> StartServer() {
    const std::string port_file = dir_.Sub("http_port");
    auto server = WebhookdProcess::StartServer(
        dir_.Sub("data"), dir_.path(),
        {"--http_listen=127.0.0.1:0", "--http_port_file=" + port_file});
    EXPECT_TRUE(server->status().ok()) << server->status();
    http_port_ =
        std::stoi(std::string(absl::StripAsciiWhitespace(ReadFile(port_file))));
    return server;
  }

  TestDir dir_;
  int http_port_ = 0;
};

TEST_F(HttpApiProcessTest, HttpListenServesTheApiBesideGrpc) {
  auto server = StartServer();
  ASSERT_GT(http_port_, 0);
  EXPECT_THAT(server->Log(), HasSubstr("HTTP/JSON API on 127.0.0.1:0 (port"));
  httplib::Client client("127.0.0.1", http_port_);
  httplib::Result created =
      client.Post("/v1/endpoints",
                  R"({"endpoint": {"threadId": "t1", "name": "n",
          "url": "https://hooks.example.com/h"}})",
                  "application/json");
  ASSERT_TRUE(created);
  EXPECT_EQ(created->status, 200) << created->body;
  // The same endpoint over gRPC: one service behind both.
  EXPECT_EQ(testing::ListAllEndpoints(server->stub()).size(), 1u);
  httplib::Result listed = client.Get("/v1/endpoints?threadId=t1");
  ASSERT_TRUE(listed);
  EXPECT_THAT(listed->body, HasSubstr("hooks.example.com"));
}

TEST_F(HttpApiProcessTest, HttpAddressInUseStopsStartUp) {
  auto first = StartServer();
  ASSERT_GT(http_port_, 0);
  WebhookdProcess second(
      {"--listen=127.0.0.1:0", "--data_dir=" + dir_.Sub("data2"),
       absl::StrCat("--http_listen=127.0.0.1:", http_port_)},
      dir_.Sub("second.log"));
  const int status = second.Wait(absl::Seconds(60));
  ASSERT_NE(status, -1) << "the second process must exit by itself";
  EXPECT_TRUE(ExitedWith(status, 1)) << second.Log();
  EXPECT_THAT(second.Log(),
              HasSubstr(absl::StrCat("cannot listen on 127.0.0.1:", http_port_,
                                     " (--http_listen)")));
}

TEST_F(HttpApiProcessTest, BadOrUnauthenticatedHttpListenStopsStartUp) {
  for (const auto& [flag, why] :
       std::vector<std::pair<std::string, std::string>>{
           {"--http_listen=127.0.0.1", "--http_listen=127.0.0.1: "},
           {"--http_listen=0.0.0.0:0",
            "refusing to serve an unauthenticated HTTP/JSON API"},
           {"--http_port_file=" + dir_.Sub("p"),
            "--http_port_file needs --http_listen"}}) {
    WebhookdProcess bad(
        {"--listen=127.0.0.1:0", "--data_dir=" + dir_.Sub("data"), flag},
        dir_.Sub("bad.log"));
    const int status = bad.Wait(absl::Seconds(60));
    ASSERT_NE(status, -1) << flag;
    EXPECT_TRUE(ExitedWith(status, 1)) << flag << "\n" << bad.Log();
    EXPECT_THAT(bad.Log(), HasSubstr(why)) << flag;
  }
}

TEST_F(HttpApiProcessTest, SigtermEndsAnOpenEventStreamAndExitsPromptly) {
  auto server = StartServer();
  ASSERT_GT(http_port_, 0);
  absl::Mutex mu;
  std::string text;
  bool started = false;
  bool ended = false;
  std::thread reader([&] {
    httplib::Client client("127.0.0.1", http_port_);
    client.set_read_timeout(60, 0);
    client.Get(
        "/v1/deliveries:stream",
        [&](const httplib::Response&) {
          absl::MutexLock lock(&mu);
          started = true;  // Headers come once the stream is subscribed.
          return true;
        },
        [&](const char* data, size_t length) {
          absl::MutexLock lock(&mu);
          text.append(data, length);
          return true;
        });
    absl::MutexLock lock(&mu);
    ended = true;
  });
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(
        mu.AwaitWithTimeout(absl::Condition(&started), kEventuallyTimeout));
  }
  const absl::Time signalled = absl::Now();
  server->Signal(SIGTERM);
  // Far less than a heartbeat (15 s) or the shutdown grace: nothing waits
  // for the stream.
  EXPECT_TRUE(ExitedWith(server->Wait(absl::Seconds(10)), 0)) << server->Log();
  EXPECT_LT(absl::Now() - signalled, absl::Seconds(10));
  {
    absl::MutexLock lock(&mu);
    EXPECT_TRUE(
        mu.AwaitWithTimeout(absl::Condition(&ended), kEventuallyTimeout));
    EXPECT_THAT(text, HasSubstr("event: error"));
    EXPECT_THAT(text, HasSubstr("shutting down"));
  }
  reader.join();
}

}  // namespace
}  // namespace webhookd
