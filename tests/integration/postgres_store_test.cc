// What the PostgreSQL backend does beyond the Store contract (which the
// conformance suite checks for every backend): migrations, the exclusive
// lock, a database that goes away and comes back, and what it logs.
// Against a real PostgreSQL started by the test binary.

#include "storage/postgres/postgres_store.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/postgres/migrations.h"
#include "storage/postgres/pg.h"
#include "tests/support/postgres_server.h"

namespace webhookd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A fresh database on the binary's shared server, named after the test.
std::string FreshDatabase() {
  absl::StatusOr<testing::PostgresServer*> server =
      testing::SharedPostgresServer();
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return "";
  const ::testing::TestInfo* test =
      ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name =
      absl::AsciiStrToLower(absl::StrCat("pgstore_", test->name()));
  absl::StatusOr<std::string> conninfo = (*server)->CreateDatabase(name);
  EXPECT_TRUE(conninfo.ok()) << conninfo.status();
  return conninfo.ok() ? *conninfo : "";
}

std::unique_ptr<pg::Connection> Connect(const std::string& conninfo) {
  absl::StatusOr<std::unique_ptr<pg::Connection>> connection =
      pg::Connection::Open(conninfo);
  EXPECT_TRUE(connection.ok()) << connection.status();
  return connection.ok() ? *std::move(connection) : nullptr;
}

Endpoint MakeEndpoint(const std::string& id) {
  Endpoint endpoint;
  endpoint.set_id(id);
  endpoint.set_user_id(7);
  endpoint.set_thread_id("thread-1");
  endpoint.set_url("https://example.com/hook");
  return endpoint;
}

TEST(PostgresMigrationsTest, OpenCreatesTheSchemaAtTheLastVersion) {
  const std::string conninfo = FreshDatabase();
  ASSERT_FALSE(conninfo.empty());
  std::unique_ptr<pg::Connection> connection = Connect(conninfo);
  ASSERT_NE(connection, nullptr);
  EXPECT_EQ(*pg::SchemaVersion(*connection), 0);

  PostgresStoreOptions options;
  options.conninfo = conninfo;
  ASSERT_TRUE(PostgresStore::Open(options).ok());
  EXPECT_EQ(*pg::SchemaVersion(*connection), pg::Migrations().back().version);
  // Opening again applies nothing and keeps what was written.
  {
    absl::StatusOr<std::unique_ptr<PostgresStore>> store =
        PostgresStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->PutEndpoint(MakeEndpoint("ep_1")).ok());
  }
  absl::StatusOr<std::unique_ptr<PostgresStore>> again =
      PostgresStore::Open(options);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE((*again)->GetEndpoint("ep_1").ok());
  absl::StatusOr<pg::Result> rows = connection->Exec(pg::Statement{
      nullptr, "SELECT count(*)::bigint FROM webhookd_schema_migrations", {}});
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->Int64(0, 0), static_cast<int64_t>(pg::Migrations().size()));
}

TEST(PostgresMigrationsTest, NodesStartingTogetherMigrateOnce) {
  const std::string conninfo = FreshDatabase();
  ASSERT_FALSE(conninfo.empty());
  constexpr int kNodes = 6;
  std::vector<absl::Status> results(kNodes);
  std::vector<std::thread> nodes;
  for (int i = 0; i < kNodes; ++i) {
    nodes.emplace_back([&, i] {
      std::unique_ptr<pg::Connection> connection = Connect(conninfo);
      results[i] = connection == nullptr
                       ? absl::UnavailableError("no connection")
                       : pg::Migrate(*connection);
    });
  }
  for (std::thread& node : nodes) node.join();
  for (const absl::Status& status : results) EXPECT_TRUE(status.ok()) << status;
  std::unique_ptr<pg::Connection> connection = Connect(conninfo);
  ASSERT_NE(connection, nullptr);
  EXPECT_EQ(*pg::SchemaVersion(*connection), pg::Migrations().back().version);
}

TEST(PostgresMigrationsTest, NewerSchemaIsRefused) {
  const std::string conninfo = FreshDatabase();
  ASSERT_FALSE(conninfo.empty());
  std::unique_ptr<pg::Connection> connection = Connect(conninfo);
  ASSERT_NE(connection, nullptr);
  ASSERT_TRUE(pg::Migrate(*connection).ok());
  ASSERT_TRUE(
      connection
          ->ExecScript("INSERT INTO webhookd_schema_migrations "
                       "(version, name) VALUES (999, 'from the future')")
          .ok());
  PostgresStoreOptions options;
  options.conninfo = conninfo;
  absl::StatusOr<std::unique_ptr<PostgresStore>> store =
      PostgresStore::Open(options);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("version 999"));
}

TEST(PostgresMigrationsTest, FailingMigrationRollsBackAndIsNamed) {
  const std::string conninfo = FreshDatabase();
  ASSERT_FALSE(conninfo.empty());
  std::unique_ptr<pg::Connection> connection = Connect(conninfo);
  ASSERT_NE(connection, nullptr);
  const pg::Migration migrations[] = {
      {1, "first", "CREATE TABLE first_table (id integer);"},
      {2, "broken",
       "CREATE TABLE second_table (id integer);\n"
       "ALTER TABLE no_such_table ADD COLUMN x integer;"},
  };
  const absl::Status status = pg::Migrate(*connection, migrations);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("migration 2 (broken)"));
  EXPECT_THAT(status.message(), HasSubstr("no_such_table"));
  // Migration 1 stays; all of migration 2 was rolled back.
  EXPECT_EQ(*pg::SchemaVersion(*connection), 1);
  absl::StatusOr<pg::Result> tables = connection->Exec(
      pg::Statement{nullptr,
                    "SELECT to_regclass('first_table') IS NOT NULL, "
                    "to_regclass('second_table') IS NOT NULL",
                    {}});
  ASSERT_TRUE(tables.ok()) << tables.status();
  EXPECT_TRUE(tables->Bool(0, 0));
  EXPECT_FALSE(tables->Bool(0, 1));
  // The connection is usable afterwards.
  EXPECT_TRUE(connection->ExecScript("SELECT 1").ok());
}

TEST(PostgresStoreTest, ExclusiveStoreRefusesASecondNodeUntilClosed) {
  const std::string conninfo = FreshDatabase();
  ASSERT_FALSE(conninfo.empty());
  PostgresStoreOptions options;
  options.conninfo = conninfo;
  absl::StatusOr<std::unique_ptr<PostgresStore>> first =
      PostgresStore::Open(options);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<PostgresStore>> second =
      PostgresStore::Open(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("another webhookd node"));
  first->reset();
  second = PostgresStore::Open(options);
  EXPECT_TRUE(second.ok()) << second.status();
}

TEST(PostgresStoreTest, UnreachableDatabaseIsUnavailable) {
  PostgresStoreOptions options;
  // A port nothing listens on: the shared server's, once it is known to be
  // elsewhere, would race; port 1 is privileged and never PostgreSQL here.
  options.conninfo =
      "host=127.0.0.1 port=1 dbname=x user=postgres "
      "connect_timeout=5";
  absl::StatusOr<std::unique_ptr<PostgresStore>> store =
      PostgresStore::Open(options);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable)
      << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("cannot connect"));
}

TEST(PostgresStoreTest, DatabaseGoingAwayIsUnavailableAndRecoveredAlone) {
  // A server of its own: this test stops it.
  absl::StatusOr<std::unique_ptr<testing::PostgresServer>> server =
      testing::PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<std::string> conninfo = (*server)->CreateDatabase("outage");
  ASSERT_TRUE(conninfo.ok()) << conninfo.status();
  PostgresStoreOptions options;
  options.conninfo = *conninfo;
  options.exclusive = false;
  absl::StatusOr<std::unique_ptr<PostgresStore>> store =
      PostgresStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->PutEndpoint(MakeEndpoint("ep_before")).ok());

  ASSERT_TRUE((*server)->Kill().ok());
  const absl::Status during = (*store)->PutEndpoint(MakeEndpoint("ep_during"));
  EXPECT_EQ(during.code(), absl::StatusCode::kUnavailable) << during;
  EXPECT_EQ((*store)->GetEndpoint("ep_before").status().code(),
            absl::StatusCode::kUnavailable);

  ASSERT_TRUE((*server)->StartAgain().ok());
  // The pool dropped the broken connections and connects again.
  EXPECT_TRUE((*store)->PutEndpoint(MakeEndpoint("ep_after")).ok());
  EXPECT_TRUE((*store)->GetEndpoint("ep_before").ok());
  EXPECT_TRUE((*store)->GetEndpoint("ep_after").ok());
  EXPECT_EQ((*store)->GetEndpoint("ep_during").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(PostgresConninfoTest, DescriptionLeavesThePasswordOut) {
  absl::StatusOr<std::string> described = pg::DescribeConninfo(
      "host=db.internal port=5433 dbname=webhookd user=whd password=s3cret");
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_EQ(*described, "host=db.internal port=5433 dbname=webhookd user=whd")
      << *described;
  EXPECT_THAT(*described, Not(HasSubstr("s3cret")));
  described =
      pg::DescribeConninfo("postgresql://whd:s3cret@db.internal:5433/webhookd");
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_THAT(*described, Not(HasSubstr("s3cret")));
  EXPECT_THAT(*described, HasSubstr("host=db.internal"));
  EXPECT_FALSE(pg::DescribeConninfo("host='unterminated").ok());
}

}  // namespace
}  // namespace webhookd
