// Secrets at rest: endpoint secrets and sensitive header values sealed in
// storage (--secrets_key_file), on a real LevelDB and a real PostgreSQL,
// through a real server, with deliveries to a real receiver.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libpq-fe.h"
#include "server/app/webhook_server.h"
#include "server/security/secrets_keyring.h"
#include "server/security/signature.h"
#include "tests/support/grpc_helpers.h"
#include "tests/support/http_receiver.h"
#include "tests/support/postgres_server.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_server.h"

namespace webhookd {
namespace {

using testing::Context;
using testing::CreateEndpoint;
using testing::ExampleEvent;
using ::testing::HasSubstr;
using testing::HttpReceiver;
using testing::Submit;
using testing::TestDir;
using testing::TestServer;
using testing::TestServerOptions;
using testing::WaitFinished;

constexpr char kSecret[] = "whsec-7f3a9c1e5b2d";
constexpr char kApiKeyValue[] = "hdr-4e8b0d2f6a1c";
constexpr char kPlainHeaderValue[] = "plain-9d1f3b5e7a0c";

enum class Backend { kLevelDb, kPostgres };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kLevelDb ? "LevelDb" : "Postgres";
}

class SecretsAtRestTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kPostgres) {
      absl::StatusOr<std::string> conninfo =
          testing::NewSharedDatabase("secrets");
      ASSERT_TRUE(conninfo.ok()) << conninfo.status();
      conninfo_ = *conninfo;
    }
  }

  // Writes a key file of 32 bytes of `fill` and returns its path.
  std::string KeyFile(const std::string& name, char fill) {
    const std::string path = dir_.Sub(name);
    std::ofstream(path) << absl::Base64Escape(std::string(32, fill)) << "\n";
    std::filesystem::permissions(path, std::filesystem::perms::owner_read |
                                           std::filesystem::perms::owner_write);
    return path;
  }

  static std::string KeyId(char fill) {
    return SecretsKey::FromBytes(std::string(32, fill)).id();
  }

  ServerOptions Options(const std::string& key_file = "",
                        std::vector<std::string> old_key_files = {}) {
    ServerOptions options = TestServerOptions(dir_.Sub("data"));
    options.postgres = conninfo_;
    options.secrets_key_file = key_file;
    options.secrets_old_key_files = std::move(old_key_files);
    return options;
  }

  // Creates the test's endpoint (a secret, a sensitive and a plain header)
  // through a server started with `options`, and stops it.
  std::string CreateWith(const ServerOptions& options) {
    TestServer server(options);
    server.Start();
    Endpoint endpoint =
        testing::MakeEndpoint("thread-1", receiver_.Url(), kSecret);
    endpoint.clear_headers();
    webhook::v1::Header* key = endpoint.add_headers();
    key->set_name("X-Api-Key");
    key->set_value(kApiKeyValue);
    webhook::v1::Header* plain = endpoint.add_headers();
    plain->set_name("X-Source");
    plain->set_value(kPlainHeaderValue);
    const std::string id = CreateEndpoint(server.stub(), endpoint).id();
    server.Stop();
    return id;
  }

  // Everything the backend has stored, as bytes: every file of the LevelDB
  // directory, or every endpoint row of PostgreSQL as text (bytea columns
  // as hex, hence FoundInStorage looks for the hex form too).
  std::string Storage() {
    std::string all;
    if (GetParam() == Backend::kLevelDb) {
      for (const auto& entry :
           std::filesystem::recursive_directory_iterator(dir_.Sub("data"))) {
        if (!entry.is_regular_file()) continue;
        std::ifstream in(entry.path(), std::ios::binary);
        std::stringstream bytes;
        bytes << in.rdbuf();
        all += bytes.str();
      }
      return all;
    }
    PGconn* connection = PQconnectdb(conninfo_.c_str());
    EXPECT_EQ(PQstatus(connection), CONNECTION_OK)
        << PQerrorMessage(connection);
    PGresult* result = PQexec(connection, "SELECT e::text FROM endpoints e");
    EXPECT_EQ(PQresultStatus(result), PGRES_TUPLES_OK)
        << PQerrorMessage(connection);
    for (int row = 0; row < PQntuples(result); ++row) {
      all += PQgetvalue(result, row, 0);
    }
    PQclear(result);
    PQfinish(connection);
    return all;
  }

  bool FoundInStorage(const std::string& storage, const std::string& value) {
    return absl::StrContains(storage, value) ||
           absl::StrContains(storage, absl::BytesToHexString(value));
  }

  // Submits an event through a server started with `options` and returns
  // the request the receiver got.
  testing::ReceivedRequest DeliverWith(const ServerOptions& options) {
    TestServer server(options);
    server.Start();
    const size_t before = receiver_.RequestCount();
    const webhook::v1::SubmitEventResponse submitted =
        Submit(server.stub(), ExampleEvent("thread-1"));
    EXPECT_EQ(submitted.delivery_ids_size(), 1);
    if (submitted.delivery_ids_size() != 1) return {};
    EXPECT_EQ(WaitFinished(server.stub(), submitted.delivery_ids(0)).status(),
              webhook::v1::DELIVERY_STATUS_SUCCESS);
    server.Stop();
    EXPECT_EQ(receiver_.RequestCount(), before + 1);
    return receiver_.Requests().back();
  }

  void ExpectSignedWithTheSecret(const testing::ReceivedRequest& request) {
    EXPECT_EQ(request.Header("X-Hub-Signature-256"),
              SignatureHex(kSecret, request.body));
    EXPECT_EQ(request.Header("X-Api-Key"), kApiKeyValue);
    EXPECT_EQ(request.Header("X-Source"), kPlainHeaderValue);
  }

  TestDir dir_;
  std::string conninfo_;
  HttpReceiver receiver_;
};

TEST_P(SecretsAtRestTest, WithAKeySecretsAreNotStoredInClear) {
  CreateWith(Options(KeyFile("key", 'a')));
  const std::string storage = Storage();
  EXPECT_FALSE(FoundInStorage(storage, kSecret));
  EXPECT_FALSE(FoundInStorage(storage, kApiKeyValue));
  // Only sensitive values are sealed: the scan does see what is stored.
  EXPECT_TRUE(FoundInStorage(storage, kPlainHeaderValue));
}

TEST_P(SecretsAtRestTest, WithoutAKeySecretsAreStoredInClear) {
  CreateWith(Options());
  const std::string storage = Storage();
  EXPECT_TRUE(FoundInStorage(storage, kSecret));
  EXPECT_TRUE(FoundInStorage(storage, kApiKeyValue));
}

TEST_P(SecretsAtRestTest, DeliveriesAreSignedWithTheSealedSecret) {
  const ServerOptions options = Options(KeyFile("key", 'a'));
  CreateWith(options);
  // A new start reads the endpoint back from storage.
  ExpectSignedWithTheSecret(DeliverWith(options));
}

TEST_P(SecretsAtRestTest, ThePreviousSecretOfASecretRotationIsSealedToo) {
  const ServerOptions options = Options(KeyFile("key", 'a'));
  const std::string id = CreateWith(options);
  constexpr char kRotated[] = "rotated-2c8e6a4b";
  {
    TestServer server(options);
    server.Start();
    webhook::v1::RotateEndpointSecretRequest request;
    request.set_id(id);
    request.set_new_secret(kRotated);
    webhook::v1::RotateEndpointSecretResponse response;
    const grpc::Status status =
        server.stub().RotateEndpointSecret(Context().get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    server.Stop();
  }
  // Both the previous and the current secret are stored, neither in clear.
  const std::string storage = Storage();
  EXPECT_FALSE(FoundInStorage(storage, kSecret));
  EXPECT_FALSE(FoundInStorage(storage, kRotated));
  // Read back after a restart: both sign.
  const testing::ReceivedRequest request = DeliverWith(options);
  EXPECT_EQ(request.Header("X-Hub-Signature-256"),
            SignatureHex(kSecret, request.body));
  EXPECT_EQ(request.Header("X-Hub-Signature-256-Next"),
            SignatureHex(kRotated, request.body));
}

TEST_P(SecretsAtRestTest, RotationReadsOldKeyThenReencryptsUnderNewKey) {
  const std::string old_key = KeyFile("old.key", 'o');
  const std::string new_key = KeyFile("new.key", 'n');
  CreateWith(Options(old_key));

  // The new key writes, the old one still reads.
  const ServerOptions rotated = Options(new_key, {old_key});
  ExpectSignedWithTheSecret(DeliverWith(rotated));

  absl::StatusOr<size_t> rewritten = ReencryptSecrets(rotated);
  ASSERT_TRUE(rewritten.ok()) << rewritten.status();
  EXPECT_EQ(*rewritten, 1u);
  absl::StatusOr<size_t> again = ReencryptSecrets(rotated);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, 0u);

  // The old key is no longer needed.
  ExpectSignedWithTheSecret(DeliverWith(Options(new_key)));
  const std::string storage = Storage();
  EXPECT_FALSE(FoundInStorage(storage, kSecret));
  EXPECT_FALSE(FoundInStorage(storage, kApiKeyValue));
}

TEST_P(SecretsAtRestTest, PlainRecordsAreReadAndSealedByReencryption) {
  CreateWith(Options());
  const ServerOptions keyed = Options(KeyFile("key", 'a'));
  ExpectSignedWithTheSecret(DeliverWith(keyed));
  absl::StatusOr<size_t> rewritten = ReencryptSecrets(keyed);
  ASSERT_TRUE(rewritten.ok()) << rewritten.status();
  EXPECT_EQ(*rewritten, 1u);
  EXPECT_FALSE(FoundInStorage(Storage(), kSecret));
  ExpectSignedWithTheSecret(DeliverWith(keyed));
}

TEST_P(SecretsAtRestTest, StartWithoutTheSealingKeyFailsNamingIt) {
  CreateWith(Options(KeyFile("old.key", 'o')));
  for (const ServerOptions& options :
       {Options(), Options(KeyFile("other.key", 'x'))}) {
    absl::StatusOr<std::unique_ptr<WebhookServer>> server =
        WebhookServer::Start(options);
    ASSERT_FALSE(server.ok());
    EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(server.status().message(), HasSubstr(KeyId('o')));
    EXPECT_THAT(server.status().message(), HasSubstr("secrets"));
  }
}

TEST_P(SecretsAtRestTest, MalformedKeyFileIsRefused) {
  const std::string path = dir_.Sub("bad.key");
  std::ofstream(path) << "too short\n";
  absl::StatusOr<std::unique_ptr<WebhookServer>> server =
      WebhookServer::Start(Options(path));
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), HasSubstr("--secrets_key_file"));
}

INSTANTIATE_TEST_SUITE_P(Backends, SecretsAtRestTest,
                         ::testing::Values(Backend::kLevelDb,
                                           Backend::kPostgres),
                         BackendName);

}  // namespace
}  // namespace webhookd
