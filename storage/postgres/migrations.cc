#include "storage/postgres/migrations.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/common/string_view.h"

namespace webhookd::pg {
namespace {

// pg_advisory_lock key of the migrations: the bytes of "webhookd".
constexpr std::string_view kLockKey =
    "8603390863846894436";  // 0x776562686f6f6b64

// Records are the same protobuf messages LevelDB stores (storage/records
// .proto, webhook/v1), in bytea columns; what queries filter or order on is
// in columns of its own. Times are microseconds since the Unix epoch, as
// in the records.
constexpr Migration kMigrations[] = {
    {1, "initial schema", R"sql(
CREATE TABLE endpoints (
  id text PRIMARY KEY,
  user_id bigint NOT NULL,
  thread_id text NOT NULL,
  record bytea NOT NULL  -- webhook.v1.Endpoint, secret included
);
CREATE INDEX endpoints_by_thread ON endpoints (thread_id, id);
CREATE INDEX endpoints_by_user ON endpoints (user_id, id);

CREATE TABLE events (
  id text PRIMARY KEY,
  create_us bigint NOT NULL,
  record bytea NOT NULL  -- webhookd.storage.EventRecord, payload included
);
CREATE INDEX events_by_time ON events (create_us);

CREATE TABLE deliveries (
  id text PRIMARY KEY,
  event_id text NOT NULL,
  endpoint_id text NOT NULL,
  thread_id text NOT NULL,
  user_id bigint NOT NULL,
  status integer NOT NULL,
  create_us bigint NOT NULL,
  record bytea NOT NULL,  -- webhook.v1.Delivery without payload
  -- Set exactly while the delivery awaits an attempt.
  due_us bigint,
  manual boolean NOT NULL DEFAULT false,
  test boolean NOT NULL DEFAULT false
);
CREATE INDEX deliveries_by_time ON deliveries (create_us DESC, id);
CREATE INDEX deliveries_by_endpoint
  ON deliveries (endpoint_id, create_us DESC, id);
CREATE INDEX deliveries_by_thread
  ON deliveries (thread_id, create_us DESC, id);
CREATE INDEX deliveries_by_user ON deliveries (user_id, create_us DESC, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id);
CREATE INDEX deliveries_queued ON deliveries (due_us) WHERE due_us IS NOT NULL;
CREATE INDEX deliveries_finished_by_time
  ON deliveries (create_us) WHERE due_us IS NULL;

CREATE TABLE submissions (
  user_id bigint NOT NULL,
  idempotency_key text NOT NULL,
  create_us bigint NOT NULL,
  response bytea NOT NULL,  -- webhook.v1.SubmitEventResponse
  PRIMARY KEY (user_id, idempotency_key)
);
CREATE INDEX submissions_by_time ON submissions (create_us);

CREATE TABLE endpoint_stats (
  endpoint_id text PRIMARY KEY,
  attempts bigint NOT NULL,
  successes bigint NOT NULL,
  response_time_ms_sum bigint NOT NULL
);
)sql"},
    {2, "claims", R"sql(
-- Several nodes share the queue: a queued delivery is attempted by the node
-- whose claim holds it (claim_owner until claim_until_us, by the database's
-- clock), and only a write carrying its claim_token records the outcome.
ALTER TABLE deliveries
  ADD COLUMN claim_owner text,
  ADD COLUMN claim_until_us bigint,
  ADD COLUMN claim_token bigint NOT NULL DEFAULT 0;
CREATE SEQUENCE claim_tokens;
DROP INDEX deliveries_queued;
CREATE INDEX deliveries_queued ON deliveries (due_us, claim_until_us)
  WHERE due_us IS NOT NULL;
CREATE INDEX deliveries_claimed ON deliveries (claim_owner)
  WHERE claim_owner IS NOT NULL;
-- Whether the endpoint is enabled, for claims; NULL until PostgresStore
-- fills it from the record at start-up (records written before this).
ALTER TABLE endpoints ADD COLUMN enabled boolean;
)sql"},
    {3, "settings", R"sql(
-- Values every node must agree on, made once by the first node that needs
-- them (Store::SettingOrInsert), such as the page tokens' key.
CREATE TABLE settings (
  name text PRIMARY KEY,
  value bytea NOT NULL
);
)sql"},
    {4, "failure streaks", R"sql(
-- The failure streak of each endpoint (Store::FailureStreak): deliveries
-- ended FAILED since the last that ended SUCCESS, and when the first of
-- them ended (NULL when there is none). Kept in the same write as the
-- delivery change that ends each delivery.
ALTER TABLE endpoint_stats
  ADD COLUMN streak_failures bigint NOT NULL DEFAULT 0,
  ADD COLUMN streak_first_failure_us bigint;
)sql"},
    {5, "submission fingerprints", R"sql(
-- webhookd.storage.EventRecord.request_fingerprint of the first request
-- with the key; NULL in rows written before (they match any request).
ALTER TABLE submissions ADD COLUMN request_fingerprint bytea;
)sql"},
    {6, "delivery counts", R"sql(
-- Store::EndpointCounts: the attempts answered with an HTTP status (from
-- now on only they add their response time; every attempt counted before
-- did), and the deliveries ended SUCCESS, ended FAILED and in progress,
-- kept in the same write as what they count. Deliveries that ended before
-- this migration are not counted; those in progress are those queued now,
-- test deliveries aside.
ALTER TABLE endpoint_stats
  ADD COLUMN answered bigint NOT NULL DEFAULT 0,
  ADD COLUMN deliveries_succeeded bigint NOT NULL DEFAULT 0,
  ADD COLUMN deliveries_failed bigint NOT NULL DEFAULT 0,
  ADD COLUMN deliveries_in_progress bigint NOT NULL DEFAULT 0;
UPDATE endpoint_stats SET answered = attempts;
INSERT INTO endpoint_stats
  (endpoint_id, attempts, successes, response_time_ms_sum,
   deliveries_in_progress)
SELECT endpoint_id, 0, 0, 0, count(*) FROM deliveries
WHERE due_us IS NOT NULL AND NOT test GROUP BY endpoint_id
ON CONFLICT (endpoint_id) DO UPDATE
  SET deliveries_in_progress = EXCLUDED.deliveries_in_progress;
)sql"},
};

constexpr std::string_view kCreateVersionTable = R"sql(
CREATE TABLE IF NOT EXISTS webhookd_schema_migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
))sql";

// Releases the session's advisory lock however Migrate returns.
class MigrationLock {
 public:
  explicit MigrationLock(Connection& connection) : connection_(connection) {}
  absl::Status Lock() {
    absl::Status status = connection_.ExecScript(
        absl::StrCat("SELECT pg_advisory_lock(", AsAbsl(kLockKey), ")"));
    locked_ = status.ok();
    return status;
  }
  ~MigrationLock() {
    if (locked_) {
      (void)connection_.ExecScript(
          absl::StrCat("SELECT pg_advisory_unlock(", AsAbsl(kLockKey), ")"));
    }
  }

 private:
  Connection& connection_;
  bool locked_ = false;
};

}  // namespace

absl::Span<const Migration> Migrations() { return kMigrations; }

absl::StatusOr<int> SchemaVersion(Connection& connection) {
  WEBHOOKD_ASSIGN_OR_RETURN(
      Result exists,
      connection.Exec(Statement{
          nullptr,
          "SELECT to_regclass('webhookd_schema_migrations') IS NOT NULL",
          {}}));
  if (!exists.Bool(0, 0)) return 0;
  WEBHOOKD_ASSIGN_OR_RETURN(
      Result version,
      connection.Exec(Statement{nullptr,
                                "SELECT COALESCE(max(version), 0)::bigint "
                                "FROM webhookd_schema_migrations",
                                {}}));
  return static_cast<int>(version.Int64(0, 0));
}

absl::Status Migrate(Connection& connection,
                     absl::Span<const Migration> migrations) {
  MigrationLock lock(connection);
  WEBHOOKD_RETURN_IF_ERROR(lock.Lock());
  WEBHOOKD_RETURN_IF_ERROR(connection.ExecScript(kCreateVersionTable));
  WEBHOOKD_ASSIGN_OR_RETURN(const int current, SchemaVersion(connection));
  const int known = migrations.empty() ? 0 : migrations.back().version;
  if (current > known) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the PostgreSQL database is at webhookd schema version ", current,
        "; this webhookd knows versions up to ", known,
        ": run a webhookd at least as new as the one that upgraded it"));
  }
  for (const Migration& migration : migrations) {
    if (migration.version <= current) continue;
    const std::string script = absl::StrCat(
        "BEGIN;\n", AsAbsl(migration.sql),
        "\nINSERT INTO webhookd_schema_migrations (version, name) VALUES (",
        migration.version, ", '", AsAbsl(migration.name), "');\nCOMMIT;");
    absl::Status applied = connection.ExecScript(script);
    if (!applied.ok()) {
      (void)connection.ExecScript("ROLLBACK");
      return absl::FailedPreconditionError(
          absl::StrCat("PostgreSQL schema migration ", migration.version, " (",
                       AsAbsl(migration.name),
                       ") failed and was rolled back: ", applied.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace webhookd::pg
