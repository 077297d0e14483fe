// The private PostgreSQL server the PostgreSQL backend's tests run against:
// real databases, reached through libpq, that go away when stopped or
// killed and come back with their data.

#include "tests/support/postgres_server.h"

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libpq-fe.h"

namespace webhookd::testing {
namespace {

// One libpq connection, closed when the object goes.
class Connection {
 public:
  explicit Connection(const std::string& connection_string)
      : connection_(PQconnectdb(connection_string.c_str())) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { PQfinish(connection_); }

  bool ok() const { return PQstatus(connection_) == CONNECTION_OK; }
  std::string error() const { return PQerrorMessage(connection_); }

  // The first column of the first row `sql` returns.
  absl::StatusOr<std::string> Value(const std::string& sql) {
    PGresult* result = PQexec(connection_, sql.c_str());
    absl::StatusOr<std::string> value;
    if (PQresultStatus(result) != PGRES_TUPLES_OK) {
      value = absl::UnknownError(absl::StrCat(sql, ": ", error()));
    } else if (PQntuples(result) < 1 || PQnfields(result) < 1) {
      value = absl::NotFoundError(absl::StrCat(sql, ": no rows"));
    } else {
      value = std::string(PQgetisnull(result, 0, 0) ? "NULL"
                                                    : PQgetvalue(result, 0, 0));
    }
    PQclear(result);
    return value;
  }

  // Runs `sql`, which returns no rows.
  absl::Status Execute(const std::string& sql) {
    PGresult* result = PQexec(connection_, sql.c_str());
    absl::Status status;
    if (PQresultStatus(result) != PGRES_COMMAND_OK) {
      status = absl::UnknownError(absl::StrCat(sql, ": ", error()));
    }
    PQclear(result);
    return status;
  }

 private:
  PGconn* const connection_;
};

// A database name not used before in this process, even with
// --gtest_repeat.
std::string NewName(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return absl::StrCat(prefix, "_", ++counter);
}

class PostgresServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<PostgresServer*> server = SharedPostgresServer();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *server;
    // A test that failed between Stop and StartAgain must not fail the
    // tests after it.
    if (!server_->running()) {
      ASSERT_TRUE(server_->StartAgain().ok());
    }
  }

  // A new database holding one committed row in table t.
  std::string DatabaseWithRow(const std::string& prefix) {
    absl::StatusOr<std::string> database =
        server_->CreateDatabase(NewName(prefix));
    EXPECT_TRUE(database.ok()) << database.status();
    if (!database.ok()) return "";
    Connection connection(*database);
    EXPECT_TRUE(connection.ok()) << connection.error();
    EXPECT_TRUE(connection.Execute("CREATE TABLE t (v text)").ok());
    EXPECT_TRUE(connection.Execute("INSERT INTO t VALUES ('kept')").ok());
    return *database;
  }

  PostgresServer* server_ = nullptr;
};

TEST_F(PostgresServerTest, CreatedDatabasesAnswerQueriesAndAreDistinct) {
  const std::string name_a = NewName("distinct_a");
  const std::string name_b = NewName("distinct_b");
  absl::StatusOr<std::string> a = server_->CreateDatabase(name_a);
  absl::StatusOr<std::string> b = server_->CreateDatabase(name_b);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*a, server_->ConnectionString(name_a));
  EXPECT_EQ(*a, absl::StrCat("host=127.0.0.1 port=", server_->port(),
                             " user=postgres dbname=", name_a));
  EXPECT_NE(*a, *b);

  Connection to_a(*a);
  Connection to_b(*b);
  ASSERT_TRUE(to_a.ok()) << to_a.error();
  ASSERT_TRUE(to_b.ok()) << to_b.error();
  EXPECT_EQ(to_a.Value("SELECT 1").value_or("error"), "1");
  EXPECT_EQ(to_b.Value("SELECT 1").value_or("error"), "1");
  EXPECT_EQ(to_a.Value("SELECT current_database()").value_or("error"), name_a);
  EXPECT_EQ(to_b.Value("SELECT current_database()").value_or("error"), name_b);
  // A table made in one is not in the other.
  ASSERT_TRUE(to_a.Execute("CREATE TABLE only_in_a (v int)").ok());
  EXPECT_EQ(
      to_a.Value("SELECT to_regclass('only_in_a') IS NULL").value_or("error"),
      "f");
  EXPECT_EQ(
      to_b.Value("SELECT to_regclass('only_in_a') IS NULL").value_or("error"),
      "t");
}

TEST_F(PostgresServerTest, CreateExistingDatabaseReturnsAlreadyExists) {
  const std::string name = NewName("twice");
  ASSERT_TRUE(server_->CreateDatabase(name).ok());
  EXPECT_EQ(server_->CreateDatabase(name).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(PostgresServerTest, StoppedServerRefusesConnectionsUntilStartedAgain) {
  const std::string database = DatabaseWithRow("stopped");
  ASSERT_FALSE(database.empty());
  const int port = server_->port();

  ASSERT_TRUE(server_->Stop().ok());
  EXPECT_FALSE(server_->running());
  EXPECT_FALSE(Connection(database).ok());
  EXPECT_EQ(server_->CreateDatabase(NewName("while_stopped")).status().code(),
            absl::StatusCode::kUnavailable);

  absl::Status started = server_->StartAgain();
  ASSERT_TRUE(started.ok()) << started;
  EXPECT_EQ(server_->port(), port);
  Connection connection(database);
  ASSERT_TRUE(connection.ok()) << connection.error();
  EXPECT_EQ(connection.Value("SELECT 1").value_or("error"), "1");
  EXPECT_EQ(connection.Value("SELECT v FROM t").value_or("error"), "kept");
}

TEST_F(PostgresServerTest, KilledServerRecoversCommittedRowsWhenStartedAgain) {
  const std::string database = DatabaseWithRow("killed");
  ASSERT_FALSE(database.empty());
  Connection open_during_kill(database);
  ASSERT_TRUE(open_during_kill.ok()) << open_during_kill.error();

  absl::Status killed = server_->Kill();
  ASSERT_TRUE(killed.ok()) << killed;
  EXPECT_FALSE(server_->running());
  EXPECT_FALSE(open_during_kill.Value("SELECT 1").ok());
  EXPECT_FALSE(Connection(database).ok());

  absl::Status started = server_->StartAgain();
  ASSERT_TRUE(started.ok()) << started;
  Connection connection(database);
  ASSERT_TRUE(connection.ok()) << connection.error();
  EXPECT_EQ(connection.Value("SELECT v FROM t").value_or("error"), "kept");
}

TEST(PrivatePostgresServerTest, RunsBesideTheSharedOneAndIsGoneWhenDestroyed) {
  absl::StatusOr<PostgresServer*> shared = SharedPostgresServer();
  ASSERT_TRUE(shared.ok()) << shared.status();
  absl::StatusOr<std::unique_ptr<PostgresServer>> server =
      PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_NE((*server)->port(), (*shared)->port());
  const std::string postgres = (*server)->ConnectionString("postgres");
  EXPECT_TRUE(Connection(postgres).ok());
  const std::string dir = (*server)->dir();
  ASSERT_TRUE(std::filesystem::exists(dir + "/data/PG_VERSION"));

  server->reset();
  EXPECT_FALSE(Connection(postgres).ok());
  EXPECT_FALSE(std::filesystem::exists(dir));
}

}  // namespace
}  // namespace webhookd::testing
