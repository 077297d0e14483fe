// Tests of real webhookd processes: signals, start-up errors and crashes,
// on LevelDB and, where the storage matters, on PostgreSQL too (a real
// server the test binary starts).

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/eventually.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/log_capture.h"
#include "tests/support/postgres_server.h"
#include "tests/support/test_dir.h"
#include "tests/support/webhookd_process.h"

namespace webhookd {
namespace {

using testing::CreateEndpoint;
using testing::Eventually;
using testing::ExampleEvent;
using testing::ExitedWith;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using testing::JsonLogLines;
using testing::MakeEndpoint;
using ::testing::Not;
using testing::ReceivedRequest;
using testing::ReceiverResponse;
using testing::Submit;
using testing::TestDir;
using testing::WaitFinished;
using testing::WaitForDelivery;
using testing::WebhookdProcess;

class ProcessTest : public ::testing::Test {
 protected:
  std::unique_ptr<WebhookdProcess> StartServer(
      std::vector<std::string> extra = {}) {
    return WebhookdProcess::StartServer(dir_.Sub("data"), dir_.path(),
                                        std::move(extra));
  }

  TestDir dir_;
};

TEST_F(ProcessTest, SigtermShutsDownGracefullyWithExitZero) {
  auto server = StartServer();
  ASSERT_TRUE(server->status().ok()) << server->status();
  server->Signal(SIGTERM);
  const int status = server->Wait(absl::Seconds(20));
  EXPECT_TRUE(ExitedWith(status, 0)) << server->Log();
  EXPECT_THAT(server->Log(), HasSubstr("shutting down"));
}

TEST_F(ProcessTest, SigintShutsDownGracefullyWithExitZero) {
  auto server = StartServer();
  ASSERT_TRUE(server->status().ok()) << server->status();
  server->Signal(SIGINT);
  EXPECT_TRUE(ExitedWith(server->Wait(absl::Seconds(20)), 0)) << server->Log();
}

TEST_F(ProcessTest, SecondProcessOnSameDataDirFailsClearly) {
  auto first = StartServer();
  ASSERT_TRUE(first->status().ok()) << first->status();
  WebhookdProcess second(
      {"--listen=127.0.0.1:0", "--data_dir=" + dir_.Sub("data")},
      dir_.Sub("second.log"));
  const int status = second.Wait(absl::Seconds(20));
  ASSERT_NE(status, -1) << "the second process must exit by itself";
  EXPECT_TRUE(WIFEXITED(status)) << "exit, not a crash";
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_THAT(second.Log(), HasSubstr("in use"));
  // The first one is unaffected.
  webhook::v1::ListEndpointsResponse list;
  grpc::ClientContext context;
  EXPECT_TRUE(first->stub().ListEndpoints(&context, {}, &list).ok());
}

TEST_F(ProcessTest, BadListenAddressStopsStartUpNamingTheFlag) {
  int run = 0;
  for (const auto& [listen, why] :
       std::vector<std::pair<std::string, std::string>>{
           {"localhost:99999", "port 99999 is out of range (0 to 65535)"},
           {"127.0.0.1", "no port"},
           {"::1:50051", "an IPv6 address must be in brackets"}}) {
    WebhookdProcess bad(
        {"--listen=" + listen, "--data_dir=" + dir_.Sub("data")},
        dir_.Sub("bad-listen-" + std::to_string(++run) + ".log"));
    const int status = bad.Wait(absl::Seconds(20));
    ASSERT_NE(status, -1) << listen << ": the process must exit by itself";
    EXPECT_TRUE(ExitedWith(status, 1)) << bad.Log();
    EXPECT_THAT(bad.Log(), HasSubstr("--listen=" + listen + ": " + why));
    EXPECT_THAT(bad.Log(), Not(HasSubstr("serving on")));
  }
}

TEST_F(ProcessTest, HelpListsEveryFlag) {
  WebhookdProcess help({"--help"}, dir_.Sub("help.log"));
  EXPECT_TRUE(ExitedWith(help.Wait(absl::Seconds(10)), 0)) << help.Log();
  const std::string text = help.Log();
  EXPECT_THAT(text, ::testing::StartsWith("webhookd: durable, signed"));
  EXPECT_THAT(text, Not(HasSubstr("webhookd: webhookd")));
  EXPECT_THAT(text, Not(HasSubstr("main.cc"))) << "no build path";
  EXPECT_THAT(text, HasSubstr("--flagfile"));
  for (const char* flag : {"--listen",
                           "--data_dir",
                           "--allow_insecure_targets",
                           "--retry_schedule",
                           "--attempt_timeout",
                           "--http_workers",
                           "--max_in_flight",
                           "--max_in_flight_per_endpoint",
                           "--max_payload_bytes",
                           "--shutdown_grace",
                           "--port_file",
                           "--max_queued_deliveries",
                           "--log_retention",
                           "--repair",
                           "--grpc_max_concurrent_streams",
                           "--grpc_memory_limit_mb",
                           "--postgres",
                           "--secrets_key_file",
                           "--secrets_old_key_files",
                           "--reencrypt_secrets",
                           "--log_level",
                           "--log_format",
                           "--trace_new_events",
                           "--metrics_listen",
                           "--metrics_port_file",
                           "--http_listen",
                           "--http_port_file"}) {
    EXPECT_THAT(text, HasSubstr(flag));
  }
}

// The permission bits of `path` (-1 if it cannot be read).
int Mode(const std::string& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) return -1;
  return static_cast<int>(info.st_mode & 07777);
}

// Writes `text` to `path` with `mode`.
void WriteFile(const std::string& path, const std::string& text, int mode) {
  std::ofstream(path) << text;
  chmod(path.c_str(), static_cast<mode_t>(mode));
}

constexpr char kKeyFileText[] =
    "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n";

TEST_F(ProcessTest, DataDirectoryAndFilesAreTheUsersAlone) {
  auto server = StartServer();
  ASSERT_TRUE(server->status().ok()) << server->status();
  HttpReceiver receiver;
  CreateEndpoint(server->stub(), MakeEndpoint("thread-1", receiver.Url()));
  server->Signal(SIGTERM);
  ASSERT_TRUE(ExitedWith(server->Wait(absl::Seconds(20)), 0)) << server->Log();

  EXPECT_EQ(Mode(dir_.Sub("data")), 0700);
  int files = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(dir_.Sub("data"))) {
    if (!entry.is_regular_file()) continue;
    ++files;
    EXPECT_EQ(Mode(entry.path()) & 077, 0)
        << entry.path() << " has mode " << std::oct << Mode(entry.path());
  }
  EXPECT_GT(files, 2);
}

TEST_F(ProcessTest, LooseDataDirectoryIsNarrowedWithAWarning) {
  const std::string data = dir_.Sub("data");
  std::filesystem::create_directories(data);
  chmod(data.c_str(), 0755);
  WriteFile(data + "/notes.txt", "old log\n", 0644);
  auto server = StartServer();
  ASSERT_TRUE(server->status().ok()) << server->status();
  EXPECT_THAT(server->Log(), HasSubstr("narrowed to 0700"));
  EXPECT_EQ(Mode(data), 0700);
  EXPECT_EQ(Mode(data + "/notes.txt"), 0600);
}

TEST_F(ProcessTest, KeyAndApiKeysFilesReadableByOthersAreWarnedAbout) {
  WriteFile(dir_.Sub("secrets.key"), kKeyFileText, 0644);
  WriteFile(dir_.Sub("api.keys"), "key-of-user-one-9f8e7d6c5b4a 1\n", 0640);
  auto server = StartServer({"--secrets_key_file=" + dir_.Sub("secrets.key"),
                             "--api_keys_file=" + dir_.Sub("api.keys")});
  ASSERT_TRUE(server->status().ok()) << server->status();
  const std::string log = server->Log();
  EXPECT_THAT(log, HasSubstr("--secrets_key_file " + dir_.Sub("secrets.key") +
                             " is readable by group or others"));
  EXPECT_THAT(log, HasSubstr("--api_keys_file " + dir_.Sub("api.keys") +
                             " is readable by group or others"));
  EXPECT_THAT(log, HasSubstr("stored encrypted under key id"));
}

TEST_F(ProcessTest, OwnerOnlyKeyFilesGetNoWarning) {
  WriteFile(dir_.Sub("secrets.key"), kKeyFileText, 0600);
  auto server = StartServer({"--secrets_key_file=" + dir_.Sub("secrets.key")});
  ASSERT_TRUE(server->status().ok()) << server->status();
  EXPECT_THAT(server->Log(), Not(HasSubstr("readable by group or others")));
}

TEST_F(ProcessTest, MalformedKeyFileStopsStartUpNamingTheFlag) {
  WriteFile(dir_.Sub("bad.key"), "c2hvcnQ=\n", 0600);
  WebhookdProcess server(
      {"--listen=127.0.0.1:0", "--data_dir=" + dir_.Sub("data"),
       "--secrets_key_file=" + dir_.Sub("bad.key")},
      dir_.Sub("bad.log"));
  const int status = server.Wait(absl::Seconds(20));
  ASSERT_NE(status, -1) << "it must exit by itself";
  EXPECT_TRUE(ExitedWith(status, 1)) << server.Log();
  EXPECT_THAT(server.Log(), HasSubstr("--secrets_key_file"));
  EXPECT_THAT(server.Log(), HasSubstr("openssl rand -base64 32"));
}

TEST_F(ProcessTest, ReencryptSecretsRewritesAndExits) {
  auto server = StartServer();
  ASSERT_TRUE(server->status().ok()) << server->status();
  HttpReceiver receiver;
  CreateEndpoint(server->stub(), MakeEndpoint("thread-1", receiver.Url()));
  server->Signal(SIGTERM);
  ASSERT_TRUE(ExitedWith(server->Wait(absl::Seconds(20)), 0)) << server->Log();

  WriteFile(dir_.Sub("secrets.key"), kKeyFileText, 0600);
  WebhookdProcess reencrypt(
      {"--reencrypt_secrets", "--data_dir=" + dir_.Sub("data"),
       "--secrets_key_file=" + dir_.Sub("secrets.key")},
      dir_.Sub("reencrypt.log"));
  EXPECT_TRUE(ExitedWith(reencrypt.Wait(absl::Seconds(20)), 0))
      << reencrypt.Log();
  EXPECT_THAT(reencrypt.Log(),
              HasSubstr("re-encrypted the secrets of 1 endpoint(s)"));

  WebhookdProcess without_key(
      {"--reencrypt_secrets", "--data_dir=" + dir_.Sub("data")},
      dir_.Sub("without_key.log"));
  EXPECT_TRUE(ExitedWith(without_key.Wait(absl::Seconds(20)), 1))
      << without_key.Log();
  EXPECT_THAT(without_key.Log(), HasSubstr("needs --secrets_key_file"));
}

// The storage a webhookd of BackendProcessTest runs on.
enum class Backend { kLevelDb, kPostgres };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kLevelDb ? "LevelDb" : "Postgres";
}

// GoogleTest (and CTest's test names) print a parameter with this.
void PrintTo(Backend backend, std::ostream* os) {
  *os << (backend == Backend::kLevelDb ? "LevelDb" : "Postgres");
}

// Flags that put a webhookd on a new PostgreSQL database of the binary's
// shared server; empty (with a test failure) if it cannot be had.
std::vector<std::string> PostgresFlags(const std::string& database) {
  absl::StatusOr<testing::PostgresServer*> server =
      testing::SharedPostgresServer();
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return {};
  absl::StatusOr<std::string> conninfo = (*server)->CreateDatabase(database);
  EXPECT_TRUE(conninfo.ok()) << conninfo.status();
  if (!conninfo.ok()) return {};
  return {"--postgres=" + *conninfo};
}

class BackendProcessTest : public ProcessTest,
                           public ::testing::WithParamInterface<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kPostgres) {
      backend_flags_ = PostgresFlags("kill_nine");
      ASSERT_FALSE(backend_flags_.empty());
    }
  }

  std::vector<std::string> backend_flags_;
};

TEST_P(BackendProcessTest, KillNineLosesNoAcknowledgedDelivery) {
  // Until the crash the receiver hangs, so some attempts are in flight and
  // the rest wait in the queue; afterwards it answers 200 at once.
  std::atomic<bool> healthy{false};
  absl::Mutex mu;
  std::set<std::string> delivered;  // Ids answered 200.
  HttpReceiver receiver;
  receiver.SetHandler([&](const ReceivedRequest& request) {
    ReceiverResponse response;
    if (!healthy.load()) {
      response.delay = absl::Seconds(30);
      response.status = 500;
      return response;
    }
    absl::MutexLock lock(&mu);
    delivered.insert(request.Header("X-Webhook-Id"));
    return response;
  });

  std::vector<std::string> flags = {"--max_in_flight=4",
                                    "--retry_schedule=200ms,200ms,200ms",
                                    "--attempt_timeout=20s"};
  flags.insert(flags.end(), backend_flags_.begin(), backend_flags_.end());
  auto server = StartServer(flags);
  ASSERT_TRUE(server->status().ok()) << server->status();
  CreateEndpoint(server->stub(), MakeEndpoint("thread-1", receiver.Url("/a")));
  CreateEndpoint(server->stub(), MakeEndpoint("thread-1", receiver.Url("/b")));
  std::set<std::string> acknowledged;
  for (int i = 0; i < 15; ++i) {
    webhook::v1::SubmitEventResponse response =
        Submit(server->stub(), ExampleEvent("thread-1"));
    acknowledged.insert(response.delivery_ids().begin(),
                        response.delivery_ids().end());
  }
  ASSERT_EQ(acknowledged.size(), 30u);
  ASSERT_TRUE(receiver.WaitForRequests(4, absl::Seconds(10)))
      << server->Log() << "\n"
      << WaitForDelivery(server->stub(), *acknowledged.begin(),
                         [](const webhook::v1::Delivery&) { return true; })
             .DebugString();

  server->Signal(SIGKILL);
  ASSERT_NE(server->Wait(absl::Seconds(10)), -1);
  healthy = true;

  server = StartServer(flags);
  ASSERT_TRUE(server->status().ok()) << server->status();
  // On PostgreSQL the killed node's claims hold until their leases run out
  // (the attempt timeout + 15 s) before the new node takes them.
  Eventually(
      [&] {
        absl::MutexLock lock(&mu);
        return delivered.size() >= acknowledged.size();
      },
      absl::Seconds(35) + testing::kEventuallyTimeout);
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(delivered, acknowledged) << server->Log();
  }
  for (const std::string& id : acknowledged) {
    webhook::v1::Delivery d = WaitFinished(server->stub(), id);
    EXPECT_EQ(d.status(), webhook::v1::DELIVERY_STATUS_SUCCESS) << id;
  }
  receiver.Stop();
}

INSTANTIATE_TEST_SUITE_P(Storage, BackendProcessTest,
                         ::testing::Values(Backend::kLevelDb,
                                           Backend::kPostgres),
                         BackendName);

TEST_F(ProcessTest, PostgresLogsWhereItsDataIsWithoutThePassword) {
  std::vector<std::string> flags = PostgresFlags("startup_log");
  ASSERT_FALSE(flags.empty());
  flags[0] += " password=not-needed-with-trust";
  auto server = StartServer(flags);
  ASSERT_TRUE(server->status().ok()) << server->status();
  EXPECT_THAT(server->Log(),
              HasSubstr("data in PostgreSQL (host=127.0.0.1 port="));
  EXPECT_THAT(server->Log(), ::testing::Not(HasSubstr("not-needed")));
  // It serves from the database: an endpoint survives a restart that uses
  // another --data_dir.
  const std::string id =
      CreateEndpoint(server->stub(),
                     MakeEndpoint("thread-1", "http://127.0.0.1:9/x"))
          .id();
  server->Signal(SIGTERM);
  ASSERT_NE(server->Wait(absl::Seconds(20)), -1);
  server =
      WebhookdProcess::StartServer(dir_.Sub("other-data"), dir_.path(), flags);
  ASSERT_TRUE(server->status().ok()) << server->status();
  webhook::v1::GetEndpointRequest get;
  get.set_id(id);
  webhook::v1::GetEndpointResponse got;
  grpc::ClientContext context;
  EXPECT_TRUE(server->stub().GetEndpoint(&context, get, &got).ok())
      << server->Log();
}

TEST_F(ProcessTest, StartUpLogsTheEffectiveConfigurationWithoutThePassword) {
  std::vector<std::string> flags = PostgresFlags("effective_config");
  ASSERT_FALSE(flags.empty());
  flags[0] += " password=pg-password-never-logged";
  flags.push_back("--log_format=json");
  flags.push_back("--retry_schedule=1s,2s");
  flags.push_back("--max_in_flight=77");
  auto server = StartServer(flags);
  ASSERT_TRUE(server->status().ok()) << server->status();
  const std::string log = server->Log();
  EXPECT_THAT(log, ::testing::Not(HasSubstr("pg-password-never-logged")));

  const std::vector<nlohmann::json> config =
      JsonLogLines(log, "effective configuration");
  ASSERT_EQ(config.size(), 1u) << log;
  EXPECT_EQ(config[0]["level"], "info");
  EXPECT_EQ(config[0]["listen"], "127.0.0.1:0");
  EXPECT_EQ(config[0]["max_in_flight"], "77");
  EXPECT_EQ(config[0]["retry_schedule"], "1s,2s");
  EXPECT_EQ(config[0]["log_format"], "json");
  EXPECT_EQ(config[0]["attempt_timeout"], "30s") << "defaults are listed too";
  EXPECT_THAT(config[0]["postgres"].get<std::string>(),
              HasSubstr("host=127.0.0.1 port="));

  const std::vector<nlohmann::json> schedule =
      JsonLogLines(log, "retry schedule");
  ASSERT_EQ(schedule.size(), 1u) << log;
  EXPECT_EQ(schedule[0]["attempts"], 3);
  EXPECT_EQ(schedule[0]["retry_delays"], "1s,2s");
}

TEST_F(ProcessTest, BadLogFlagsStopStartUpNamingTheFlag) {
  for (const std::string flag : {"--log_level=loud", "--log_format=xml"}) {
    WebhookdProcess bad(
        {"--listen=127.0.0.1:0", "--data_dir=" + dir_.Sub("bad"), flag},
        dir_.Sub("bad.log"));
    const int status = bad.Wait(absl::Seconds(20));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << flag;
    EXPECT_THAT(bad.Log(), HasSubstr(flag.substr(0, flag.find('='))));
  }
}

TEST_F(ProcessTest, TwoNodesOnOnePostgresDatabaseServeTheSameEndpoints) {
  const std::vector<std::string> flags = PostgresFlags("two_nodes");
  ASSERT_FALSE(flags.empty());
  auto first = StartServer(flags);
  ASSERT_TRUE(first->status().ok()) << first->status();
  const std::string second_dir = dir_.Sub("second");
  std::filesystem::create_directories(second_dir);
  auto second =
      WebhookdProcess::StartServer(dir_.Sub("data2"), second_dir, flags);
  ASSERT_TRUE(second->status().ok()) << second->status();
  const webhook::v1::Endpoint created = CreateEndpoint(
      first->stub(), MakeEndpoint("thread-1", "http://127.0.0.1:9/"));
  webhook::v1::GetEndpointRequest get;
  get.set_id(created.id());
  webhook::v1::GetEndpointResponse got;
  grpc::ClientContext context;
  ASSERT_TRUE(second->stub().GetEndpoint(&context, get, &got).ok())
      << second->Log();
  EXPECT_EQ(got.endpoint().url(), "http://127.0.0.1:9/");
}

TEST_F(ProcessTest, UnreachablePostgresStopsStartUpClearly) {
  WebhookdProcess server(
      {"--listen=127.0.0.1:0", "--data_dir=" + dir_.Sub("data"),
       "--postgres=host=127.0.0.1 port=1 dbname=x connect_timeout=5"},
      dir_.Sub("unreachable.log"));
  const int status = server.Wait(absl::Seconds(30));
  ASSERT_NE(status, -1) << "webhookd must exit by itself";
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_THAT(server.Log(), HasSubstr("cannot connect to PostgreSQL"));
}

}  // namespace
}  // namespace webhookd
