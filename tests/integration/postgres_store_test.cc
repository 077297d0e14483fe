// What the PostgreSQL backend does beyond the Store contract (which the
// conformance suite checks for every backend): migrations, several stores
// on one database, a database that goes away and comes back, what it logs, and
// the SharedQueue of several nodes (claims and the cluster feed). Against a
// real PostgreSQL started by the test binary.

#include "storage/postgres/postgres_store.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "storage/postgres/migrations.h"
#include "storage/postgres/pg.h"
#include "tests/support/eventually.h"
#include "tests/support/postgres_server.h"
#include "tests/support/store_test_util.h"

namespace webhookd {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;

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
  return testing::MakeEndpoint(id, "thread-1");
}

// A store on `conninfo`, which others may share.
std::unique_ptr<PostgresStore> OpenShared(const std::string& conninfo) {
  PostgresStoreOptions options;
  options.conninfo = conninfo;
  absl::StatusOr<std::unique_ptr<PostgresStore>> store =
      PostgresStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

std::vector<std::string> ClaimedIds(const std::vector<Claim>& claims) {
  std::vector<std::string> ids;
  for (const Claim& claim : claims) ids.push_back(claim.entry.delivery_id);
  return ids;
}

const absl::Time kNow = absl::FromUnixMicros(testing::kBaseMicros);

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

TEST(PostgresStoreTest, SeveralStoresShareOneDatabase) {
  const std::string conninfo = FreshDatabase();
  ASSERT_FALSE(conninfo.empty());
  std::unique_ptr<PostgresStore> first = OpenShared(conninfo);
  std::unique_ptr<PostgresStore> second = OpenShared(conninfo);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_NE(first->node_id(), second->node_id());
  ASSERT_TRUE(first->PutEndpoint(MakeEndpoint("ep_shared")).ok());
  absl::StatusOr<Endpoint> read = second->GetEndpoint("ep_shared");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->id(), "ep_shared");
}

TEST(PostgresStoreTest, ConnectionsTimeOutAndKeepAliveUnlessToldOtherwise) {
  const std::string conninfo = FreshDatabase();
  ASSERT_FALSE(conninfo.empty());
  std::unique_ptr<pg::Connection> defaults = Connect(conninfo);
  ASSERT_NE(defaults, nullptr);
  EXPECT_EQ(defaults->Option("connect_timeout"), "10");
  EXPECT_EQ(defaults->Option("keepalives"), "1");
  EXPECT_EQ(defaults->Option("keepalives_idle"), "10");
  // The connection string's own settings win.
  std::unique_ptr<pg::Connection> told =
      Connect(absl::StrCat(conninfo, " connect_timeout=3 keepalives_idle=60"));
  ASSERT_NE(told, nullptr);
  EXPECT_EQ(told->Option("connect_timeout"), "3");
  EXPECT_EQ(told->Option("keepalives_idle"), "60");
  EXPECT_EQ(told->Option("dbname"), defaults->Option("dbname"));
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

// --- Claims: several nodes sharing the queue ---------------------------------

TEST(PostgresClaimsTest, ConcurrentNodesClaimEachDueDeliveryOnce) {
  const std::string conninfo = FreshDatabase();
  ASSERT_FALSE(conninfo.empty());
  std::unique_ptr<PostgresStore> setup = OpenShared(conninfo);
  ASSERT_NE(setup, nullptr);
  std::vector<std::string> all;
  for (int e = 0; e < 60; ++e) {
    for (const Delivery& delivery :
         testing::Submit(*setup, absl::StrCat("ev", e), "thread-1",
                         {"ep_1", "ep_2"}, testing::kBaseMicros - e)) {
      all.push_back(delivery.id());
    }
  }
  constexpr int kNodes = 3;
  std::vector<std::unique_ptr<PostgresStore>> nodes;
  for (int n = 0; n < kNodes; ++n) nodes.push_back(OpenShared(conninfo));
  std::vector<std::vector<std::string>> claimed(kNodes);
  std::vector<std::thread> threads;
  for (int n = 0; n < kNodes; ++n) {
    threads.emplace_back([&, n] {
      // Bounded: 120 deliveries, at least one claimed per non-empty round.
      for (int round = 0; round < 200; ++round) {
        absl::StatusOr<std::vector<Claim>> batch =
            nodes[n]->ClaimDue(kNow, absl::Hours(1), 7);
        ASSERT_TRUE(batch.ok()) << batch.status();
        if (batch->empty()) return;
        for (const Claim& claim : *batch) {
          claimed[n].push_back(claim.entry.delivery_id);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::vector<std::string> union_of_claims;
  for (const auto& ids : claimed) {
    union_of_claims.insert(union_of_claims.end(), ids.begin(), ids.end());
  }
  EXPECT_THAT(union_of_claims, UnorderedElementsAreArray(all));
  EXPECT_EQ(
      std::set<std::string>(union_of_claims.begin(), union_of_claims.end())
          .size(),
      union_of_claims.size())
      << "a delivery was claimed twice";
}

TEST(PostgresClaimsTest, OnlyDueDeliveriesOfEnabledEndpointsAreClaimed) {
  const std::string conninfo = FreshDatabase();
  ASSERT_FALSE(conninfo.empty());
  std::unique_ptr<PostgresStore> node = OpenShared(conninfo);
  ASSERT_NE(node, nullptr);
  Endpoint disabled = testing::MakeEndpoint("ep_off", "thread-1");
  disabled.set_enabled(false);
  ASSERT_OK(node->PutEndpoint(disabled));
  ASSERT_OK(node->PutEndpoint(testing::MakeEndpoint("ep_on", "thread-1")));
  const std::vector<Delivery> now = testing::Submit(
      *node, "ev_now", "thread-1", {"ep_on", "ep_off"}, testing::kBaseMicros);
  testing::Submit(*node, "ev_later", "thread-1", {"ep_on"},
                  testing::kBaseMicros + 60'000'000);
  // A test delivery goes even to a disabled endpoint.
  Delivery test = testing::MakeDelivery("dlv_test", "ev_test", "ep_off",
                                        "thread-1", testing::kBaseMicros);
  test.set_test(true);
  ASSERT_OK(node->InsertEvent(testing::MakeEvent("ev_test", "thread-1", {test}),
                              {test}));

  absl::StatusOr<std::vector<Claim>> claims =
      node->ClaimDue(kNow, absl::Hours(1), 100);
  ASSERT_OK(claims);
  EXPECT_THAT(ClaimedIds(*claims),
              UnorderedElementsAre(now[0].id(), "dlv_test"));
  // Enabling the endpoint makes its delivery claimable.
  Endpoint enabled = disabled;
  enabled.set_enabled(true);
  ASSERT_OK(node->PutEndpoint(enabled));
  claims = node->ClaimDue(kNow, absl::Hours(1), 100);
  ASSERT_OK(claims);
  EXPECT_THAT(ClaimedIds(*claims), ElementsAre(now[1].id()));
}

// Two nodes on a fresh database holding one delivery, due at kNow.
class PostgresTwoNodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conninfo_ = FreshDatabase();
    ASSERT_FALSE(conninfo_.empty());
    a_ = OpenShared(conninfo_);
    b_ = OpenShared(conninfo_);
    ASSERT_NE(a_, nullptr);
    ASSERT_NE(b_, nullptr);
    const std::vector<Delivery> deliveries =
        testing::Submit(*a_, "ev", "thread-1", {"ep_1"}, testing::kBaseMicros);
    ASSERT_EQ(deliveries.size(), 1u);
    delivery_ = deliveries[0];
  }

  std::string conninfo_;
  std::unique_ptr<PostgresStore> a_;
  std::unique_ptr<PostgresStore> b_;
  Delivery delivery_;
};

TEST_F(PostgresTwoNodesTest, ReleasedClaimIsClaimableAtOnce) {
  PostgresStore* a = a_.get();
  PostgresStore* b = b_.get();
  absl::StatusOr<std::vector<Claim>> held =
      a->ClaimDue(kNow, absl::Hours(1), 10);
  ASSERT_OK(held);
  ASSERT_EQ(held->size(), 1u);
  absl::StatusOr<std::vector<Claim>> none =
      b->ClaimDue(kNow, absl::Hours(1), 10);
  ASSERT_OK(none);
  EXPECT_THAT(*none, IsEmpty());
  // Another node cannot release a claim that is not its own.
  ASSERT_OK(b->ReleaseClaims(*held));
  none = b->ClaimDue(kNow, absl::Hours(1), 10);
  ASSERT_OK(none);
  EXPECT_THAT(*none, IsEmpty());

  ASSERT_OK(a->ReleaseClaims(*held));
  absl::StatusOr<std::vector<Claim>> taken =
      b->ClaimDue(kNow, absl::Hours(1), 10);
  ASSERT_OK(taken);
  ASSERT_EQ(taken->size(), 1u);
  EXPECT_GT((*taken)[0].token, (*held)[0].token);
}

TEST_F(PostgresTwoNodesTest, ExpiredClaimIsTakenOverAndTheOldClaimerIsFenced) {
  PostgresStore* stalled = a_.get();
  PostgresStore* other = b_.get();
  const std::vector<Delivery> deliveries = {delivery_};
  absl::StatusOr<std::vector<Claim>> first =
      stalled->ClaimDue(kNow, absl::Milliseconds(1), 10);
  ASSERT_OK(first);
  ASSERT_EQ(first->size(), 1u);
  // Once the 1 ms lease has run out by the database's clock, the other node
  // takes the delivery over.
  std::vector<Claim> second;
  testing::Eventually([&] {
    absl::StatusOr<std::vector<Claim>> claims =
        other->ClaimDue(kNow, absl::Hours(1), 10);
    if (claims.ok()) second = *claims;
    return !second.empty();
  });
  ASSERT_EQ(second.size(), 1u);
  EXPECT_GT(second[0].token, (*first)[0].token);

  // The stalled node wakes up and records its attempt: fenced.
  const DeliveryChange stale = testing::Finished(deliveries[0], 500, 7);
  absl::StatusOr<std::vector<std::string>> lost =
      stalled->UpdateClaimed({stale}, {(*first)[0].token}, Durability::kSynced);
  ASSERT_OK(lost);
  EXPECT_THAT(*lost, ElementsAre(deliveries[0].id()));
  // The node holding the claim records its own.
  const DeliveryChange good = testing::Finished(deliveries[0], 200, 3);
  lost = other->UpdateClaimed({good}, {second[0].token}, Durability::kSynced);
  ASSERT_OK(lost);
  EXPECT_THAT(*lost, IsEmpty());
  // Its record stands, counted once; the claim is over and the delivery is
  // finished, so nobody claims it again.
  absl::StatusOr<Delivery> stored = other->GetDelivery(deliveries[0].id());
  ASSERT_OK(stored);
  EXPECT_EQ(stored->status(), good.delivery.status());
  absl::StatusOr<EndpointCounts> counts = other->GetEndpointCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 1);
  EXPECT_EQ(counts->successes, 1);
  EXPECT_EQ(counts->response_time_ms_sum, 3);
  absl::StatusOr<std::vector<Claim>> after =
      stalled->ClaimDue(kNow + absl::Hours(24), absl::Hours(1), 10);
  ASSERT_OK(after);
  EXPECT_THAT(*after, IsEmpty());
}

TEST_F(PostgresTwoNodesTest, RenewedClaimsOutliveTheirFirstLease) {
  PostgresStore* a = a_.get();
  PostgresStore* b = b_.get();
  const std::string& conninfo = conninfo_;
  absl::StatusOr<std::vector<Claim>> held =
      a->ClaimDue(kNow, absl::Seconds(30), 10);
  ASSERT_OK(held);
  ASSERT_EQ(held->size(), 1u);
  absl::StatusOr<absl::Time> until =
      a->RenewClaims({(*held)[0].token}, absl::Hours(2));
  ASSERT_OK(until);
  EXPECT_GT(*until, (*held)[0].lease_until + absl::Hours(1));
  // The database holds the renewed lease: well past the first one.
  std::unique_ptr<pg::Connection> connection = Connect(conninfo);
  ASSERT_NE(connection, nullptr);
  absl::StatusOr<pg::Result> row = connection->Exec(pg::Statement{
      nullptr,
      "SELECT claim_until_us, claim_owner FROM deliveries WHERE id = $1",
      {pg::Param::Text((*held)[0].entry.delivery_id)}});
  ASSERT_OK(row);
  EXPECT_EQ(absl::FromUnixMicros(row->Int64(0, 0)), *until);
  EXPECT_EQ(row->Bytes(0, 1), a->node_id());
  absl::StatusOr<std::vector<Claim>> none =
      b->ClaimDue(kNow, absl::Hours(1), 10);
  ASSERT_OK(none);
  EXPECT_THAT(*none, IsEmpty());
}

TEST(PostgresClaimsTest, EndpointsWrittenBeforeTheClaimsMigrationGetEnabled) {
  const std::string conninfo = FreshDatabase();
  ASSERT_FALSE(conninfo.empty());
  std::unique_ptr<pg::Connection> connection = Connect(conninfo);
  ASSERT_NE(connection, nullptr);
  // A database at schema 1 with a disabled endpoint in it.
  ASSERT_OK(pg::Migrate(*connection, pg::Migrations().subspan(0, 1)));
  Endpoint disabled = testing::MakeEndpoint("ep_off", "thread-1");
  disabled.set_enabled(false);
  ASSERT_OK(connection->Exec(
      pg::Statement{nullptr,
                    "INSERT INTO endpoints (id, user_id, thread_id, record) "
                    "VALUES ($1, 7, 'thread-1', $2)",
                    {pg::Param::Text("ep_off"),
                     pg::Param::Bytes(disabled.SerializeAsString())}}));
  std::unique_ptr<PostgresStore> node = OpenShared(conninfo);
  ASSERT_NE(node, nullptr);
  testing::Submit(*node, "ev", "thread-1", {"ep_off"}, testing::kBaseMicros);
  absl::StatusOr<std::vector<Claim>> claims =
      node->ClaimDue(kNow, absl::Hours(1), 10);
  ASSERT_OK(claims);
  EXPECT_THAT(*claims, IsEmpty()) << "the endpoint is disabled";
}

TEST(PostgresMigrationsTest, CountsOfEarlierReleasesAreSetUpByMigration6) {
  const std::string conninfo = FreshDatabase();
  ASSERT_FALSE(conninfo.empty());
  std::unique_ptr<pg::Connection> connection = Connect(conninfo);
  ASSERT_NE(connection, nullptr);
  // A database at schema 5 with stats and three deliveries of ep_1: one
  // queued, one queued test, one ended.
  ASSERT_OK(pg::Migrate(*connection, pg::Migrations().subspan(0, 5)));
  ASSERT_OK(connection->ExecScript(
      "INSERT INTO endpoint_stats (endpoint_id, attempts, successes, "
      "response_time_ms_sum) VALUES ('ep_1', 4, 3, 100);"
      "INSERT INTO deliveries (id, event_id, endpoint_id, thread_id, user_id, "
      "status, create_us, record, due_us, test) VALUES "
      "('d1', 'e1', 'ep_1', 't', 7, 1, 1, '', 1, false),"
      "('d2', 'e2', 'ep_1', 't', 7, 1, 1, '', 1, true),"
      "('d3', 'e3', 'ep_1', 't', 7, 3, 1, '', NULL, false),"
      "('d4', 'e4', 'ep_2', 't', 7, 2, 1, '', 5, false)"));
  std::unique_ptr<PostgresStore> node = OpenShared(conninfo);
  ASSERT_NE(node, nullptr);
  absl::StatusOr<EndpointCounts> one = node->GetEndpointCounts("ep_1");
  ASSERT_OK(one);
  EXPECT_EQ(one->attempts, 4);
  EXPECT_EQ(one->answered, 4);
  EXPECT_EQ(one->response_time_ms_sum, 100);
  EXPECT_EQ(one->deliveries_in_progress, 1);
  EXPECT_EQ(one->deliveries_succeeded, 0);
  absl::StatusOr<EndpointCounts> two = node->GetEndpointCounts("ep_2");
  ASSERT_OK(two);
  EXPECT_EQ(two->attempts, 0);
  EXPECT_EQ(two->deliveries_in_progress, 1);
}

// --- ClaimOne and QueuedOf
// ----------------------------------------------------

TEST_F(PostgresTwoNodesTest, ClaimsNotNamedInARenewalRunOut) {
  testing::Submit(*a_, "ev_2", "thread-1", {"ep_1"}, testing::kBaseMicros);
  absl::StatusOr<std::vector<Claim>> held =
      a_->ClaimDue(kNow, absl::Milliseconds(1), 10);
  ASSERT_OK(held);
  ASSERT_EQ(held->size(), 2u);
  // The node renews the one claim it knows of (it never learnt of the
  // other, say): only that one holds.
  ASSERT_OK(a_->RenewClaims({(*held)[0].token}, absl::Hours(1)));
  std::vector<Claim> taken;
  testing::Eventually([&] {
    absl::StatusOr<std::vector<Claim>> claims =
        b_->ClaimDue(kNow, absl::Hours(1), 10);
    if (claims.ok()) taken.insert(taken.end(), claims->begin(), claims->end());
    return !taken.empty();
  });
  EXPECT_THAT(ClaimedIds(taken), ElementsAre((*held)[1].entry.delivery_id));
}

TEST_F(PostgresTwoNodesTest, InsertClaimedClaimsTheFirstDeliveriesInOrder) {
  const std::vector<Delivery> three = {
      testing::MakeDelivery("dlv_n1", "ev_new", "ep_1", "thread-1",
                            testing::kBaseMicros),
      testing::MakeDelivery("dlv_n2", "ev_new", "ep_2", "thread-1",
                            testing::kBaseMicros),
      testing::MakeDelivery("dlv_n3", "ev_new", "ep_3", "thread-1",
                            testing::kBaseMicros)};
  const EventRecord event = testing::MakeEvent("ev_new", "thread-1", three);
  const NewEvent insert{&event, three};
  // Room for two: the third is left for any node.
  absl::StatusOr<std::vector<Claim>> claims =
      a_->InsertClaimed({&insert, 1}, absl::Hours(1), 2);
  ASSERT_OK(claims);
  EXPECT_THAT(ClaimedIds(*claims), ElementsAre("dlv_n1", "dlv_n2"));
  EXPECT_LT((*claims)[0].token, (*claims)[1].token);
  EXPECT_EQ((*claims)[0].entry.endpoint_id, "ep_1");
  absl::StatusOr<std::vector<Claim>> others =
      b_->ClaimDue(kNow, absl::Hours(1), 10);
  ASSERT_OK(others);
  EXPECT_THAT(ClaimedIds(*others),
              UnorderedElementsAre(delivery_.id(), "dlv_n3"));
  // The claims are the writer's: it records with their tokens.
  std::vector<DeliveryChange> done = {testing::Finished(three[0], 200, 5)};
  absl::StatusOr<std::vector<std::string>> lost =
      a_->UpdateClaimed(done, {(*claims)[0].token}, Durability::kSynced);
  ASSERT_OK(lost);
  EXPECT_THAT(*lost, IsEmpty());
}

TEST_F(PostgresTwoNodesTest, TwoNodesPruningAtOnceRemoveEachRecordOnce) {
  // Finished deliveries to prune, written by node a.
  for (int i = 0; i < 40; ++i) {
    const std::vector<Delivery> made =
        testing::Submit(*a_, absl::StrCat("ev_old", i), "thread-1", {"ep_1"},
                        testing::kBaseMicros + i);
    ASSERT_EQ(made.size(), 1u);
    ASSERT_OK(a_->UpdateDeliveries({testing::Finished(made[0], 200, 5)},
                                   Durability::kSynced));
  }
  const absl::Time cutoff = kNow + absl::Hours(1);
  size_t pruned[2] = {0, 0};
  std::vector<std::thread> pruners;
  for (int n = 0; n < 2; ++n) {
    pruners.emplace_back([&, n] {
      PostgresStore* store = n == 0 ? a_.get() : b_.get();
      for (int round = 0; round < 100; ++round) {
        absl::StatusOr<PruneResult> result =
            store->PruneBefore(cutoff, cutoff, 7);
        ASSERT_OK(result);
        pruned[n] += result->deliveries;
        if (!result->more) break;
      }
    });
  }
  for (std::thread& pruner : pruners) pruner.join();
  // Each finished delivery removed once; the queued one kept.
  EXPECT_EQ(pruned[0] + pruned[1], 40u);
  EXPECT_TRUE(a_->GetDelivery(delivery_.id()).ok());
}

TEST_F(PostgresTwoNodesTest, ClaimOneClaimsAQueuedDelivery) {
  absl::StatusOr<Claim> claim = b_->ClaimOne(delivery_.id(), absl::Hours(1));
  ASSERT_OK(claim);
  EXPECT_EQ(claim->entry.delivery_id, delivery_.id());
  EXPECT_EQ(claim->entry.endpoint_id, "ep_1");
  EXPECT_EQ(claim->entry.due, kNow);
  EXPECT_GT(claim->token, 0);
  EXPECT_GT(claim->lease_until, absl::Now() + absl::Minutes(30));
  // The claim holds it against the other node's ClaimDue.
  absl::StatusOr<std::vector<Claim>> none =
      a_->ClaimDue(kNow, absl::Hours(1), 10);
  ASSERT_OK(none);
  EXPECT_THAT(*none, IsEmpty());
}

TEST_F(PostgresTwoNodesTest, ClaimOneClaimsAFinishedDeliveryDueNever) {
  absl::StatusOr<Claim> first = a_->ClaimOne(delivery_.id(), absl::Hours(1));
  ASSERT_OK(first);
  absl::StatusOr<std::vector<std::string>> lost =
      a_->UpdateClaimed({testing::Finished(delivery_, 200, 3)}, {first->token},
                        Durability::kSynced);
  ASSERT_OK(lost);
  ASSERT_THAT(*lost, IsEmpty());

  absl::StatusOr<Claim> again = b_->ClaimOne(delivery_.id(), absl::Hours(1));
  ASSERT_OK(again);
  EXPECT_EQ(again->entry.due, absl::InfiniteFuture());
  EXPECT_GT(again->token, first->token);
}

TEST_F(PostgresTwoNodesTest, ClaimOneOfAMissingDeliveryIsNotFound) {
  absl::StatusOr<Claim> claim = a_->ClaimOne("dlv_missing", absl::Hours(1));
  EXPECT_EQ(claim.status().code(), absl::StatusCode::kNotFound)
      << claim.status();
}

TEST_F(PostgresTwoNodesTest, ClaimOneOfAHeldDeliveryFailsUntilReleased) {
  absl::StatusOr<std::vector<Claim>> held =
      a_->ClaimDue(kNow, absl::Hours(1), 10);
  ASSERT_OK(held);
  ASSERT_EQ(held->size(), 1u);
  absl::StatusOr<Claim> claim = b_->ClaimOne(delivery_.id(), absl::Hours(1));
  EXPECT_EQ(claim.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(claim.status().message(),
              HasSubstr(absl::StrCat("an attempt of delivery \"",
                                     delivery_.id(), "\" is in progress")));

  ASSERT_OK(a_->ReleaseClaims(*held));
  claim = b_->ClaimOne(delivery_.id(), absl::Hours(1));
  ASSERT_OK(claim);
  EXPECT_GT(claim->token, (*held)[0].token);
}

TEST_F(PostgresTwoNodesTest, QueuedOfListsAnEndpointsQueuedDeliveries) {
  const std::vector<Delivery> more = testing::Submit(
      *a_, "ev_more", "thread-1", {"ep_1", "ep_2"}, testing::kBaseMicros + 5);
  const std::vector<Delivery> done = testing::Submit(
      *a_, "ev_done", "thread-1", {"ep_1"}, testing::kBaseMicros + 6);
  ASSERT_OK(a_->UpdateDeliveries({testing::Finished(done[0], 200, 1)},
                                 Durability::kSynced));
  // Claimed or not.
  ASSERT_OK(b_->ClaimOne(delivery_.id(), absl::Hours(1)));

  absl::StatusOr<std::vector<QueuedDelivery>> queued = a_->QueuedOf("ep_1");
  ASSERT_OK(queued);
  std::vector<std::string> ids;
  for (const QueuedDelivery& entry : *queued) {
    EXPECT_EQ(entry.endpoint_id, "ep_1");
    ids.push_back(entry.delivery_id);
  }
  EXPECT_THAT(ids, UnorderedElementsAre(delivery_.id(), more[0].id()));
  queued = a_->QueuedOf("ep_none");
  ASSERT_OK(queued);
  EXPECT_THAT(*queued, IsEmpty());
}

// --- The cluster feed
// ----------------------------------------------------------

// Keeps what a watch reports; tests wait until it has seen what they expect.
class RecordingWatcher : public ClusterWatcher {
 public:
  struct Seen {
    std::vector<Delivery> deliveries;  // Of every report, in order.
    int delivery_reports = 0;          // DeliveriesChanged calls.
    std::vector<std::string> endpoints;
    int work_queued = 0;
    int resyncs = 0;
  };

  // ClusterWatcher
  void DeliveriesChanged(absl::Span<const Delivery> deliveries) override {
    absl::MutexLock lock(&mu_);
    seen_.deliveries.insert(seen_.deliveries.end(), deliveries.begin(),
                            deliveries.end());
    ++seen_.delivery_reports;
  }
  void EndpointChanged(std::string_view endpoint_id) override {
    absl::MutexLock lock(&mu_);
    seen_.endpoints.emplace_back(endpoint_id);
  }
  void WorkQueued() override {
    absl::MutexLock lock(&mu_);
    ++seen_.work_queued;
  }
  void Resync() override {
    absl::MutexLock lock(&mu_);
    ++seen_.resyncs;
  }

  // Waits until `done` holds of what was seen (failing the test if that
  // takes longer than testing::kEventuallyTimeout) and returns it.
  Seen Await(const std::function<bool(const Seen&)>& done) {
    absl::MutexLock lock(&mu_);
    const auto holds = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return done(seen_);
    };
    EXPECT_TRUE(mu_.AwaitWithTimeout(absl::Condition(&holds),
                                     testing::kEventuallyTimeout))
        << "the watch did not report what the test waited for";
    return seen_;
  }

 private:
  absl::Mutex mu_;
  Seen seen_ ABSL_GUARDED_BY(mu_);
};

bool SawEndpoint(const RecordingWatcher::Seen& seen, const std::string& id) {
  return std::find(seen.endpoints.begin(), seen.endpoints.end(), id) !=
         seen.endpoints.end();
}

// PostgresTwoNodesTest with node B watching, its LISTEN in place.
class PostgresFeedTest : public PostgresTwoNodesTest {
 protected:
  void SetUp() override {
    PostgresTwoNodesTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_OK(b_->Watch(&watcher_));
    watcher_.Await(
        [](const RecordingWatcher::Seen& seen) { return seen.resyncs == 1; });
  }
  void TearDown() override {
    if (b_ != nullptr) b_->StopWatching();
  }

  RecordingWatcher watcher_;
};

TEST_F(PostgresFeedTest, WatcherSeesAnotherNodesEndpointWrites) {
  ASSERT_OK(a_->PutEndpoint(MakeEndpoint("ep_9")));
  ASSERT_OK(a_->DeleteEndpoint("ep_9", {}));
  const RecordingWatcher::Seen seen =
      watcher_.Await([](const RecordingWatcher::Seen& seen) {
        return seen.endpoints.size() >= 2;
      });
  EXPECT_THAT(seen.endpoints, ElementsAre("ep_9", "ep_9"));
  EXPECT_THAT(seen.deliveries, IsEmpty());
}

TEST_F(PostgresFeedTest, WatcherSeesAnotherNodesNewDeliveriesAndQueuedWork) {
  const std::vector<Delivery> inserted = testing::Submit(
      *a_, "ev_new", "thread-1", {"ep_1", "ep_2"}, testing::kBaseMicros + 1);
  ASSERT_EQ(inserted.size(), 2u);
  const RecordingWatcher::Seen seen =
      watcher_.Await([](const RecordingWatcher::Seen& seen) {
        return seen.deliveries.size() >= 2 && seen.work_queued >= 1;
      });
  ASSERT_EQ(seen.deliveries.size(), 2u);
  for (size_t i = 0; i < inserted.size(); ++i) {
    Delivery expected = inserted[i];
    expected.clear_payload();
    EXPECT_TRUE(MessageDifferencer::Equals(seen.deliveries[i], expected))
        << seen.deliveries[i].DebugString();
    EXPECT_TRUE(seen.deliveries[i].payload().empty());
  }
  EXPECT_EQ(seen.work_queued, 1);
}

TEST_F(PostgresFeedTest, WatcherSeesClaimedUpdatesButNotFencedOnes) {
  absl::StatusOr<Claim> claim = a_->ClaimOne(delivery_.id(), absl::Hours(1));
  ASSERT_OK(claim);
  const DeliveryChange stale = testing::Finished(delivery_, 500, 7);
  absl::StatusOr<std::vector<std::string>> lost =
      a_->UpdateClaimed({stale}, {claim->token - 1}, Durability::kSynced);
  ASSERT_OK(lost);
  ASSERT_THAT(*lost, ElementsAre(delivery_.id()));
  // Queued again for a retry: work for the others too.
  DeliveryChange retry = testing::Queued(delivery_);
  retry.delivery.set_attempts(1);
  lost = a_->UpdateClaimed({retry}, {claim->token}, Durability::kSynced);
  ASSERT_OK(lost);
  ASSERT_THAT(*lost, IsEmpty());

  const RecordingWatcher::Seen seen =
      watcher_.Await([](const RecordingWatcher::Seen& seen) {
        return !seen.deliveries.empty() && seen.work_queued >= 1;
      });
  // Reports come in commit order: the fenced write, had it been reported,
  // would be first.
  ASSERT_EQ(seen.deliveries.size(), 1u);
  EXPECT_EQ(seen.deliveries[0].id(), delivery_.id());
  EXPECT_EQ(seen.deliveries[0].attempts(), 1);
  EXPECT_EQ(seen.deliveries[0].status(), retry.delivery.status());
}

TEST_F(PostgresFeedTest, WatcherSeesAnotherNodesUpdatesAndDeletions) {
  DeliveryChange finished = testing::Finished(delivery_, 200, 2);
  ASSERT_OK(a_->UpdateDeliveries({finished}, Durability::kBuffered));
  ASSERT_OK(a_->PutEndpoint(MakeEndpoint("ep_1")));
  ASSERT_OK(a_->DeleteEndpoint("ep_1", {testing::Change(delivery_)}));
  const RecordingWatcher::Seen seen =
      watcher_.Await([](const RecordingWatcher::Seen& seen) {
        return seen.deliveries.size() >= 2 && seen.endpoints.size() >= 2;
      });
  EXPECT_THAT(testing::Ids(seen.deliveries),
              ElementsAre(delivery_.id(), delivery_.id()));
  EXPECT_THAT(seen.endpoints, ElementsAre("ep_1", "ep_1"));
  EXPECT_EQ(seen.work_queued, 0) << "nothing was queued";
}

TEST_F(PostgresFeedTest, WatcherIsNotToldOfItsOwnNodesWrites) {
  ASSERT_OK(b_->PutEndpoint(MakeEndpoint("ep_own")));
  testing::Submit(*b_, "ev_own", "thread-1", {"ep_own"},
                  testing::kBaseMicros + 1);
  // A's report comes after B's own would have, in commit order.
  ASSERT_OK(a_->PutEndpoint(MakeEndpoint("ep_marker")));
  const RecordingWatcher::Seen seen =
      watcher_.Await([](const RecordingWatcher::Seen& seen) {
        return SawEndpoint(seen, "ep_marker");
      });
  EXPECT_THAT(seen.endpoints, ElementsAre("ep_marker"));
  EXPECT_THAT(seen.deliveries, IsEmpty());
  EXPECT_EQ(seen.work_queued, 0);
}

TEST_F(PostgresFeedTest, ManyDeliveriesOfOneInsertArriveInFewReports) {
  constexpr int kDeliveries = 500;
  std::vector<Delivery> deliveries;
  for (int i = 0; i < kDeliveries; ++i) {
    deliveries.push_back(testing::MakeDelivery(absl::StrCat("dlv_many_", i),
                                               "ev_many", "ep_1", "thread-1",
                                               testing::kBaseMicros + 1));
  }
  ASSERT_OK(a_->InsertEvent(
      testing::MakeEvent("ev_many", "thread-1", deliveries), deliveries));
  const RecordingWatcher::Seen seen =
      watcher_.Await([](const RecordingWatcher::Seen& seen) {
        return seen.deliveries.size() >= kDeliveries;
      });
  EXPECT_THAT(testing::Ids(seen.deliveries),
              ElementsAreArray(testing::Ids(deliveries)));
  // Packed: several deliveries per NOTIFY, and more than one NOTIFY.
  EXPECT_GT(seen.delivery_reports, 1);
  EXPECT_LT(seen.delivery_reports, kDeliveries / 10);
}

TEST_F(PostgresFeedTest, DeliveryTooLargeForOneReportIsReadFromTheTable) {
  Delivery large = delivery_;
  large.clear_payload();
  for (int i = 0; i < 4; ++i) {
    DeliveryAttempt* attempt = large.add_attempt_history();
    attempt->set_response_body(std::string(4000, 'x'));
  }
  // With a small delivery in the same write, reported in full.
  const std::vector<Delivery> small = testing::Submit(
      *a_, "ev_small", "thread-1", {"ep_2"}, testing::kBaseMicros + 1);
  DeliveryChange change = testing::Change(large);
  ASSERT_OK(a_->UpdateDeliveries({change, testing::Change(small[0])},
                                 Durability::kSynced));
  const RecordingWatcher::Seen seen =
      watcher_.Await([](const RecordingWatcher::Seen& seen) {
        return seen.deliveries.size() >= 3;
      });
  ASSERT_EQ(seen.deliveries.size(), 3u);
  EXPECT_EQ(seen.deliveries[0].id(), small[0].id());  // Its insert.
  EXPECT_TRUE(MessageDifferencer::Equals(seen.deliveries[1], large))
      << "the large record was not read whole";
  EXPECT_EQ(seen.deliveries[2].id(), small[0].id());
}

TEST_F(PostgresFeedTest, WatchTwiceFailsAndStopWatchingIsIdempotent) {
  RecordingWatcher second;
  EXPECT_EQ(b_->Watch(&second).code(), absl::StatusCode::kFailedPrecondition);
  b_->StopWatching();
  b_->StopWatching();
  // Stopped: A's writes are no longer reported.
  ASSERT_OK(a_->PutEndpoint(MakeEndpoint("ep_unseen")));
  ASSERT_OK(b_->Watch(&second));
  second.Await(
      [](const RecordingWatcher::Seen& seen) { return seen.resyncs == 1; });
  ASSERT_OK(a_->PutEndpoint(MakeEndpoint("ep_seen")));
  const RecordingWatcher::Seen seen =
      second.Await([](const RecordingWatcher::Seen& seen) {
        return SawEndpoint(seen, "ep_seen");
      });
  EXPECT_THAT(seen.endpoints, ElementsAre("ep_seen"));
}

TEST(PostgresFeedRestartTest, WatchResyncsAfterTheDatabaseRestarts) {
  // A server of its own: this test stops it.
  absl::StatusOr<std::unique_ptr<testing::PostgresServer>> server =
      testing::PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<std::string> conninfo = (*server)->CreateDatabase("feed");
  ASSERT_OK(conninfo);
  std::unique_ptr<PostgresStore> a = OpenShared(*conninfo);
  std::unique_ptr<PostgresStore> b = OpenShared(*conninfo);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  RecordingWatcher watcher;
  ASSERT_OK(b->Watch(&watcher));
  watcher.Await(
      [](const RecordingWatcher::Seen& seen) { return seen.resyncs == 1; });

  ASSERT_OK((*server)->Stop());
  ASSERT_OK((*server)->StartAgain());
  watcher.Await(
      [](const RecordingWatcher::Seen& seen) { return seen.resyncs == 2; });
  // Listening again.
  ASSERT_OK(a->PutEndpoint(MakeEndpoint("ep_after")));
  const RecordingWatcher::Seen seen =
      watcher.Await([](const RecordingWatcher::Seen& seen) {
        return SawEndpoint(seen, "ep_after");
      });
  EXPECT_THAT(seen.endpoints, ElementsAre("ep_after"));
  b->StopWatching();
}

}  // namespace
}  // namespace webhookd
