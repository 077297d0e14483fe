#include "storage/postgres/postgres_store.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "server/common/ids.h"
#include "server/common/status_macros.h"
#include "server/common/string_view.h"
#include "server/common/time_util.h"
#include "storage/endpoint_counts.h"
#include "storage/postgres/cluster_feed.h"
#include "storage/postgres/migrations.h"

namespace webhookd {
namespace {

using pg::Param;
using pg::Result;
using pg::Statement;

// Transactions PostgreSQL aborted for a deadlock or a serialization failure
// are run again up to this many times in all.
constexpr int kTransactionAttempts = 3;

// Queued deliveries ScanQueue reads per query.
constexpr int kScanBatch = 10000;

// pg_advisory_xact_lock key of retention: the bytes of "whdprune".
constexpr int64_t kPruneLockKey = 0x7768647072756e65;

constexpr std::string_view kUpsertDelivery = R"sql(
INSERT INTO deliveries (id, event_id, endpoint_id, thread_id, user_id, status,
                        create_us, record, due_us, manual, test)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (id) DO UPDATE SET
  event_id = EXCLUDED.event_id, endpoint_id = EXCLUDED.endpoint_id,
  thread_id = EXCLUDED.thread_id, user_id = EXCLUDED.user_id,
  status = EXCLUDED.status, create_us = EXCLUDED.create_us,
  record = EXCLUDED.record, due_us = EXCLUDED.due_us,
  manual = EXCLUDED.manual, test = EXCLUDED.test)sql";

// Adds counts to an endpoint's totals and applies endings to its failure
// streak; `rows` yields (endpoint_id, attempts, successes, answered,
// response_time_ms_sum, deliveries_succeeded, deliveries_failed,
// deliveries_in_progress, streak_failures, streak_first_failure_us), and
// `reset` is a boolean expression: whether the streak starts again from the
// row's (a delivery ended SUCCESS) rather than adding to it.
std::string AddStatsSql(std::string_view rows, std::string_view reset) {
  std::string sql = absl::StrCat(
      "INSERT INTO endpoint_stats (endpoint_id, attempts, successes, answered, "
      "response_time_ms_sum, deliveries_succeeded, deliveries_failed, "
      "deliveries_in_progress, streak_failures, streak_first_failure_us) ",
      AsAbsl(rows), " ON CONFLICT (endpoint_id) DO UPDATE SET ");
  for (std::string_view column :
       {"attempts", "successes", "answered", "response_time_ms_sum",
        "deliveries_succeeded", "deliveries_failed",
        "deliveries_in_progress"}) {
    absl::StrAppend(&sql, AsAbsl(column), " = endpoint_stats.", AsAbsl(column),
                    " + EXCLUDED.", AsAbsl(column), ", ");
  }
  absl::StrAppend(
      &sql, "streak_failures = CASE WHEN ", AsAbsl(reset),
      " THEN EXCLUDED.streak_failures "
      "ELSE endpoint_stats.streak_failures + EXCLUDED.streak_failures END, "
      "streak_first_failure_us = CASE WHEN ",
      AsAbsl(reset),
      " THEN EXCLUDED.streak_first_failure_us "
      "ELSE COALESCE(endpoint_stats.streak_first_failure_us, "
      "EXCLUDED.streak_first_failure_us) END");
  return sql;
}

// Appends the parameters of AddStatsSql's row for `delta`: the seven
// counts, then the streak's reset, failures and first failure. Placed from
// $<first>, the row's columns are ColumnsOf(first), its reset
// ResetOf(first).
void AppendDeltaParams(const CountsDelta& delta, std::vector<Param>& params) {
  const EndpointCounts& counts = delta.counts;
  for (int64_t count :
       {counts.attempts, counts.successes, counts.answered,
        counts.response_time_ms_sum, counts.deliveries_succeeded,
        counts.deliveries_failed, counts.deliveries_in_progress}) {
    params.push_back(Param::Int64(count));
  }
  const StreakChange& streak = delta.streak;
  params.push_back(Param::Bool(streak.reset));
  params.push_back(Param::Int64(streak.failures));
  params.push_back(streak.first_us.has_value() ? Param::Int64(*streak.first_us)
                                               : Param::Null());
}

// The counts and streak columns of AddStatsSql's rows, for parameters from
// $<first> as AppendDeltaParams lays them out.
std::string ColumnsOf(int first) {
  std::string columns;
  for (int i : {0, 1, 2, 3, 4, 5, 6, 8, 9}) {
    absl::StrAppend(&columns, ", $", first + i, "::bigint");
  }
  return columns;
}
std::string ResetOf(int first) {
  return absl::StrCat("$", first + 7, "::boolean");
}

int64_t Micros(const google::protobuf::Timestamp& time) {
  return absl::ToUnixMicros(FromProtoTime(time));
}

template <typename Message>
absl::Status Parse(std::string_view bytes, std::string_view what,
                   Message* message) {
  if (!message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(
        absl::StrCat("PostgreSQL: unreadable ", AsAbsl(what), " record"));
  }
  return absl::OkStatus();
}

// Reads the record in the first column of the one row `statement` finds,
// or NotFound "<what> "<id>" not found".
template <typename Message>
absl::StatusOr<Message> ReadRecord(pg::Pool& pool, const Statement& statement,
                                   std::string_view what, std::string_view id) {
  WEBHOOKD_ASSIGN_OR_RETURN(Result result, pool.Exec(statement));
  if (result.rows() == 0) {
    return absl::NotFoundError(
        absl::StrCat(AsAbsl(what), " \"", AsAbsl(id), "\" not found"));
  }
  Message message;
  WEBHOOKD_RETURN_IF_ERROR(Parse(result.Bytes(0, 0), what, &message));
  return message;
}

// The database's clock in microseconds, for leases.
constexpr std::string_view kDbNowMicros =
    "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

// The statement writing a delivery's state (see DeliveryChange): its record
// without payload, queued exactly while `due` is set. Adds its report for
// the other nodes to `reports`.
absl::StatusOr<Statement> DeliveryState(const Delivery& delivery,
                                        std::optional<absl::Time> due,
                                        bool manual, DeliveryReports& reports,
                                        bool claimed = false) {
  if (delivery.id().empty()) {
    return absl::InvalidArgumentError("delivery without an id");
  }
  if (due.has_value() && delivery.endpoint_id().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("queued delivery ", delivery.id(), " has no endpoint"));
  }
  std::string record;
  if (delivery.payload().empty()) {
    delivery.SerializeToString(&record);
  } else {
    Delivery stored = delivery;
    stored.clear_payload();
    stored.SerializeToString(&record);
  }
  // A delivery claimed as it is written is no work for other nodes.
  reports.Add(delivery.id(), record, due.has_value() && !claimed);
  return Statement{
      "upsert_delivery",
      std::string(kUpsertDelivery),
      {Param::Text(delivery.id()), Param::Text(delivery.event_id()),
       Param::Text(delivery.endpoint_id()), Param::Text(delivery.thread_id()),
       Param::Int64(delivery.user_id()), Param::Int64(delivery.status()),
       Param::Int64(Micros(delivery.create_time())), Param::Bytes(record),
       due.has_value() ? Param::Int64(absl::ToUnixMicros(*due)) : Param::Null(),
       Param::Bool(manual), Param::Bool(due.has_value() && delivery.test())}};
}

// The statements adding `deltas` to their endpoints' totals, one per
// endpoint, in endpoint order so that concurrent transactions lock the rows
// in the same order.
std::vector<Statement> StatsUpdates(const CountsDeltas& deltas) {
  static const std::string* const kAddStats = new std::string(
      AddStatsSql(absl::StrCat("VALUES ($1", ColumnsOf(2), ")"), ResetOf(2)));
  std::vector<Statement> statements;
  for (const auto& [endpoint_id, delta] : deltas.by_endpoint()) {
    std::vector<Param> params = {Param::Text(endpoint_id)};
    AppendDeltaParams(delta, params);
    statements.push_back(Statement{"add_stats", *kAddStats, std::move(params)});
  }
  return statements;
}

void Append(std::vector<Statement>& statements, std::vector<Statement> more) {
  for (Statement& statement : more) statements.push_back(std::move(statement));
}

// Appends the statements writing `changes` (their states, then the
// endpoints' stats, counting the new deliveries `created` too); their
// reports go to `reports`.
absl::Status AppendChanges(absl::Span<const DeliveryChange> changes,
                           DeliveryReports& reports,
                           std::vector<Statement>& statements,
                           absl::Span<const Delivery> created = {}) {
  for (const DeliveryChange& change : changes) {
    WEBHOOKD_ASSIGN_OR_RETURN(
        Statement statement,
        DeliveryState(change.delivery, change.next_due,
                      change.next_attempt_manual, reports));
    statements.push_back(std::move(statement));
  }
  Append(statements, StatsUpdates(DeltasOf(created, changes)));
  return absl::OkStatus();
}

// Reads a queued delivery from columns 0 to 4 of a row: id, endpoint_id,
// due_us, manual, test. A delivery that is not queued (ClaimOne) is due at
// absl::InfiniteFuture(): never.
void ReadQueued(const Result& result, int row, QueuedDelivery* queued) {
  queued->delivery_id.assign(result.Bytes(row, 0));
  queued->endpoint_id.assign(result.Bytes(row, 1));
  queued->due = result.IsNull(row, 2)
                    ? absl::InfiniteFuture()
                    : absl::FromUnixMicros(result.Int64(row, 2));
  queued->manual = result.Bool(row, 3);
  queued->test = result.Bool(row, 4);
}

// Reads a claim from columns 0 to 6 of a row: those of ReadQueued, then
// claim_token and claim_until_us.
Claim ReadClaim(const Result& result, int row) {
  Claim claim;
  ReadQueued(result, row, &claim.entry);
  claim.token = result.Int64(row, 5);
  claim.lease_until = absl::FromUnixMicros(result.Int64(row, 6));
  return claim;
}

// Parses the records in column 0 of the first min(rows, page_size) rows of
// a listing (which asks for page_size + 1, to know whether more follow);
// returns how many it parsed.
template <typename Message>
absl::StatusOr<int> ParsePage(const Result& result, int page_size,
                              std::string_view what,
                              std::vector<Message>* out) {
  const int shown = result.rows() < page_size ? result.rows() : page_size;
  out->resize(static_cast<size_t>(shown));
  for (int row = 0; row < shown; ++row) {
    WEBHOOKD_RETURN_IF_ERROR(Parse(result.Bytes(row, 0), what, &(*out)[row]));
  }
  return shown;
}

// --- Page tokens -------------------------------------------------------------
//
// A token is the web-safe base64 of "<length>:<listing><cursor>": the
// listing (which filter it pages) and the position after the last row
// returned. A token is only valid for the listing that made it, and it only
// ever holds the position of a row the caller was shown.

std::string EncodeToken(std::string_view listing, std::string_view cursor) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(listing.size(), ":", AsAbsl(listing), AsAbsl(cursor)));
}

absl::StatusOr<std::string> DecodeToken(std::string_view token,
                                        std::string_view listing) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(AsAbsl(token), &raw)) {
    return absl::InvalidArgumentError("page_token: malformed");
  }
  const size_t colon = raw.find(':');
  size_t length = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(raw).substr(0, colon), &length) ||
      raw.size() - colon - 1 < length) {
    return absl::InvalidArgumentError("page_token: malformed");
  }
  if (std::string_view(raw).substr(colon + 1, length) != listing) {
    return absl::InvalidArgumentError(
        "page_token: belongs to another listing (its filter differs)");
  }
  return raw.substr(colon + 1 + length);
}

// Migration 2 added endpoints.enabled, which only the records knew:
// filled here from them (once; later writes set it).
absl::Status FillEndpointsEnabled(pg::Connection& connection) {
  WEBHOOKD_ASSIGN_OR_RETURN(
      Result rows, connection.Exec(Statement{
                       nullptr,
                       "SELECT id, record FROM endpoints WHERE enabled IS NULL",
                       {}}));
  std::vector<Statement> updates;
  for (int row = 0; row < rows.rows(); ++row) {
    Endpoint endpoint;
    WEBHOOKD_RETURN_IF_ERROR(Parse(rows.Bytes(row, 1), "endpoint", &endpoint));
    updates.push_back(Statement{
        nullptr,
        "UPDATE endpoints SET enabled = $2 WHERE id = $1 AND "
        "enabled IS NULL",
        {Param::Text(rows.Bytes(row, 0)), Param::Bool(endpoint.enabled())}});
  }
  if (updates.empty()) return absl::OkStatus();
  return connection.Transaction(updates).status();
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(
    const PostgresStoreOptions& options) {
  WEBHOOKD_ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> connection,
                            pg::Connection::Open(options.conninfo));
  WEBHOOKD_RETURN_IF_ERROR(pg::Migrate(*connection));
  WEBHOOKD_RETURN_IF_ERROR(FillEndpointsEnabled(*connection));
  // The pool makes its own connections.
  connection.reset();
  return std::unique_ptr<PostgresStore>(new PostgresStore(options));
}

PostgresStore::PostgresStore(const PostgresStoreOptions& options)
    : node_id_(NewId("node_")),
      conninfo_(options.conninfo),
      pool_(options.conninfo, options.max_connections) {}

PostgresStore::~PostgresStore() { StopWatching(); }

absl::StatusOr<std::vector<Result>> PostgresStore::Transaction(
    absl::Span<const Statement> statements, bool synced) {
  absl::StatusOr<std::vector<Result>> results;
  for (int attempt = 0; attempt < kTransactionAttempts; ++attempt) {
    results = pool_.Transaction(statements, synced);
    if (!absl::IsAborted(results.status())) break;
  }
  return results;
}

// --- Endpoints ---------------------------------------------------------------

absl::Status PostgresStore::PutEndpoint(const Endpoint& endpoint) {
  if (endpoint.id().empty()) {
    return absl::InvalidArgumentError("endpoint without an id");
  }
  const Statement statements[] = {
      Statement{
          "put_endpoint",
          "INSERT INTO endpoints (id, user_id, thread_id, record, enabled) "
          "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET "
          "user_id = EXCLUDED.user_id, thread_id = EXCLUDED.thread_id, "
          "record = EXCLUDED.record, enabled = EXCLUDED.enabled",
          {Param::Text(endpoint.id()), Param::Int64(endpoint.user_id()),
           Param::Text(endpoint.thread_id()),
           Param::Bytes(endpoint.SerializeAsString()),
           Param::Bool(endpoint.enabled())}},
      NotifyEndpointChanged(node_id_, endpoint.id())};
  return Transaction(statements).status();
}

absl::StatusOr<Endpoint> PostgresStore::GetEndpoint(std::string_view id) {
  return ReadRecord<Endpoint>(
      pool_,
      Statement{"get_endpoint",
                "SELECT record FROM endpoints WHERE id = $1",
                {Param::Text(id)}},
      "endpoint", id);
}

absl::StatusOr<EndpointPage> PostgresStore::ListEndpoints(
    const EndpointFilter& filter, int page_size, std::string_view page_token) {
  page_size = ClampPageSize(page_size);
  const std::string listing =
      absl::StrCat("endpoints\n", filter.thread_id.size(), ":",
                   filter.thread_id, "\n", filter.user_id);
  std::string after;
  if (!page_token.empty()) {
    WEBHOOKD_ASSIGN_OR_RETURN(after, DecodeToken(page_token, listing));
  }
  std::string sql = "SELECT record, id FROM endpoints WHERE id > $1";
  std::vector<Param> params = {Param::Text(after)};
  if (!filter.thread_id.empty()) {
    params.push_back(Param::Text(filter.thread_id));
    absl::StrAppend(&sql, " AND thread_id = $", params.size());
  }
  if (filter.user_id != 0) {
    params.push_back(Param::Int64(filter.user_id));
    absl::StrAppend(&sql, " AND user_id = $", params.size());
  }
  params.push_back(Param::Int64(page_size + 1));
  absl::StrAppend(&sql, " ORDER BY id LIMIT $", params.size());
  WEBHOOKD_ASSIGN_OR_RETURN(Result result,
                            pool_.Exec(Statement{nullptr, sql, params}));
  EndpointPage page;
  WEBHOOKD_ASSIGN_OR_RETURN(
      const int shown,
      ParsePage(result, page_size, "endpoint", &page.endpoints));
  if (result.rows() > page_size) {
    page.next_page_token = EncodeToken(listing, result.Bytes(shown - 1, 1));
  }
  return page;
}

absl::StatusOr<std::vector<Endpoint>> PostgresStore::LoadEndpoints() {
  WEBHOOKD_ASSIGN_OR_RETURN(
      Result result,
      pool_.Exec(Statement{nullptr, "SELECT record FROM endpoints", {}}));
  std::vector<Endpoint> endpoints(static_cast<size_t>(result.rows()));
  for (int row = 0; row < result.rows(); ++row) {
    WEBHOOKD_RETURN_IF_ERROR(
        Parse(result.Bytes(row, 0), "endpoint", &endpoints[row]));
  }
  return endpoints;
}

absl::Status PostgresStore::DeleteEndpoint(
    std::string_view id, absl::Span<const DeliveryChange> changes) {
  std::vector<Statement> statements;
  statements.push_back(Statement{
      nullptr, "DELETE FROM endpoints WHERE id = $1", {Param::Text(id)}});
  DeliveryReports reports(node_id_);
  for (const DeliveryChange& change : changes) {
    WEBHOOKD_ASSIGN_OR_RETURN(
        Statement statement,
        DeliveryState(change.delivery, change.next_due,
                      change.next_attempt_manual, reports));
    statements.push_back(std::move(statement));
  }
  Append(statements, StatsUpdates(DeltasOf({}, changes)));
  statements.push_back(NotifyEndpointChanged(node_id_, id));
  Append(statements, reports.Notifies());
  // Checked first, so that a missing endpoint changes nothing. Another node
  // may delete it in between: then its queued deliveries are ended twice,
  // the same way, and the caller is told NotFound.
  WEBHOOKD_RETURN_IF_ERROR(GetEndpoint(id).status());
  WEBHOOKD_ASSIGN_OR_RETURN(std::vector<Result> results,
                            Transaction(statements));
  if (results.front().affected() == 0) {
    return absl::NotFoundError(
        absl::StrCat("endpoint \"", AsAbsl(id), "\" not found"));
  }
  return absl::OkStatus();
}

// --- Events and deliveries ---------------------------------------------------

namespace {

// The statements writing `events` (see Store::InsertEvents); their reports
// go to `reports`, as work for other nodes but for the first `claimed`
// deliveries.
absl::StatusOr<std::vector<Statement>> InsertStatements(
    absl::Span<const NewEvent> events, DeliveryReports& reports,
    size_t claimed) {
  std::vector<Statement> statements;
  CountsDeltas deltas;
  size_t written = 0;
  for (const NewEvent& insert : events) {
    const EventRecord& event = *insert.event;
    if (event.id().empty()) {
      return absl::InvalidArgumentError("event without an id");
    }
    statements.push_back(Statement{
        "insert_event",
        "INSERT INTO events (id, create_us, record) VALUES ($1, $2, $3)",
        {Param::Text(event.id()), Param::Int64(event.create_time_unix_micros()),
         Param::Bytes(event.SerializeAsString())}});
    for (const Delivery& delivery : insert.deliveries) {
      WEBHOOKD_ASSIGN_OR_RETURN(
          Statement statement,
          DeliveryState(delivery, FirstDue(delivery),
                        /*manual=*/false, reports, written++ < claimed));
      statements.push_back(std::move(statement));
      deltas.AddNew(delivery);
    }
    if (!event.idempotency_key().empty()) {
      SubmitEventResponse response;
      response.set_event_id(event.id());
      for (const Delivery& delivery : insert.deliveries) {
        response.add_delivery_ids(delivery.id());
      }
      statements.push_back(Statement{
          "insert_submission",
          "INSERT INTO submissions (user_id, idempotency_key, create_us, "
          "response, request_fingerprint) VALUES ($1, $2, $3, $4, $5)",
          {Param::Int64(event.user_id()), Param::Text(event.idempotency_key()),
           Param::Int64(event.create_time_unix_micros()),
           Param::Bytes(response.SerializeAsString()),
           Param::Bytes(event.request_fingerprint())}});
    }
  }
  Append(statements, StatsUpdates(deltas));
  return statements;
}

}  // namespace

absl::Status PostgresStore::InsertEvents(absl::Span<const NewEvent> events) {
  DeliveryReports reports(node_id_);
  WEBHOOKD_ASSIGN_OR_RETURN(std::vector<Statement> statements,
                            InsertStatements(events, reports, 0));
  if (statements.empty()) return absl::OkStatus();
  Append(statements, reports.Notifies());
  return Transaction(statements).status();
}

absl::Status PostgresStore::AddDeliveries(
    absl::Span<const Delivery> deliveries,
    absl::Span<const DeliveryChange> changes) {
  if (deliveries.empty() && changes.empty()) return absl::OkStatus();
  std::vector<std::string_view> event_ids;
  for (const Delivery& delivery : deliveries) {
    event_ids.push_back(delivery.event_id());
  }
  if (!event_ids.empty()) {
    WEBHOOKD_ASSIGN_OR_RETURN(
        Result missing,
        pool_.Exec(Statement{
            nullptr,
            "SELECT x.id FROM unnest($1::text[]) AS x(id) WHERE NOT EXISTS "
            "(SELECT 1 FROM events e WHERE e.id = x.id) LIMIT 1",
            {Param::Text(pg::ArrayLiteral(event_ids))}}));
    if (missing.rows() > 0) {
      return absl::NotFoundError(absl::StrCat(
          "event \"", AsAbsl(missing.Bytes(0, 0)), "\" not found"));
    }
  }
  DeliveryReports reports(node_id_);
  std::vector<Statement> statements;
  for (const Delivery& delivery : deliveries) {
    // Appending a serialized repeated field to a record appends to that
    // field when it is parsed: the event's delivery_ids gain the new id in
    // one statement, whatever other writers do meanwhile.
    EventRecord added;
    added.add_delivery_ids(delivery.id());
    statements.push_back(
        Statement{"add_event_delivery",
                  "UPDATE events SET record = record || $2 WHERE id = $1",
                  {Param::Text(delivery.event_id()),
                   Param::Bytes(added.SerializeAsString())}});
    WEBHOOKD_ASSIGN_OR_RETURN(
        Statement statement,
        DeliveryState(delivery, FirstDue(delivery), /*manual=*/false, reports));
    statements.push_back(std::move(statement));
  }
  WEBHOOKD_RETURN_IF_ERROR(
      AppendChanges(changes, reports, statements, deliveries));
  Append(statements, reports.Notifies());
  return Transaction(statements).status();
}

absl::StatusOr<std::vector<Claim>> PostgresStore::InsertClaimed(
    absl::Span<const NewEvent> events, absl::Duration lease,
    size_t max_claims) {
  DeliveryReports reports(node_id_);
  WEBHOOKD_ASSIGN_OR_RETURN(std::vector<Statement> statements,
                            InsertStatements(events, reports, max_claims));
  std::vector<std::string_view> ids;  // Of the deliveries claimed.
  for (const NewEvent& insert : events) {
    for (const Delivery& delivery : insert.deliveries) {
      if (ids.size() < max_claims) ids.push_back(delivery.id());
    }
  }
  if (ids.empty()) {
    if (!statements.empty()) {
      Append(statements, reports.Notifies());
      WEBHOOKD_RETURN_IF_ERROR(Transaction(statements).status());
    }
    return std::vector<Claim>();
  }
  const size_t claim_index = statements.size();
  static const std::string* const kClaimNew = new std::string(absl::StrCat(
      "WITH db AS (SELECT ", AsAbsl(kDbNowMicros),
      " AS now_us) UPDATE deliveries SET claim_owner = $1, "
      "claim_until_us = (SELECT now_us FROM db) + $2, "
      "claim_token = nextval('claim_tokens') WHERE id = ANY($3::text[]) "
      "RETURNING id, endpoint_id, due_us, manual, test, claim_token, "
      "claim_until_us"));
  // Not prepared, like the other claims: planned for the table as it is
  // now (see pg::Statement).
  statements.push_back(Statement{
      nullptr,
      *kClaimNew,
      {Param::Text(node_id_), Param::Int64(absl::ToInt64Microseconds(lease)),
       Param::Text(pg::ArrayLiteral(ids))}});
  Append(statements, reports.Notifies());
  WEBHOOKD_ASSIGN_OR_RETURN(std::vector<Result> results,
                            Transaction(statements));
  const Result& rows = results[claim_index];
  absl::flat_hash_map<std::string, Claim> by_id;
  for (int row = 0; row < rows.rows(); ++row) {
    Claim claim = ReadClaim(rows, row);
    std::string id = claim.entry.delivery_id;
    by_id.emplace(std::move(id), std::move(claim));
  }
  std::vector<Claim> claims;
  claims.reserve(ids.size());
  for (std::string_view id : ids) {
    auto claim = by_id.find(AsAbsl(id));
    if (claim == by_id.end()) {
      return absl::InternalError(
          absl::StrCat("delivery \"", AsAbsl(id), "\" was written unclaimed"));
    }
    claims.push_back(std::move(claim->second));
  }
  return claims;
}

absl::StatusOr<Submission> PostgresStore::FindSubmission(
    int64_t user_id, std::string_view idempotency_key) {
  WEBHOOKD_ASSIGN_OR_RETURN(
      Result result,
      pool_.Exec(
          Statement{"find_submission",
                    "SELECT response, request_fingerprint FROM submissions "
                    "WHERE user_id = $1 AND idempotency_key = $2",
                    {Param::Int64(user_id), Param::Text(idempotency_key)}}));
  if (result.rows() == 0) {
    return absl::NotFoundError("no submission with this idempotency key");
  }
  Submission submission;
  WEBHOOKD_RETURN_IF_ERROR(
      Parse(result.Bytes(0, 0), "idempotency", &submission.response));
  // NULL in rows written before schema version 5.
  if (!result.IsNull(0, 1)) {
    submission.request_fingerprint = std::string(result.Bytes(0, 1));
  }
  return submission;
}

absl::StatusOr<EventRecord> PostgresStore::GetEvent(std::string_view id) {
  return ReadRecord<EventRecord>(
      pool_,
      Statement{"get_event",
                "SELECT record FROM events WHERE id = $1",
                {Param::Text(id)}},
      "event", id);
}

absl::StatusOr<Delivery> PostgresStore::GetDelivery(std::string_view id) {
  WEBHOOKD_ASSIGN_OR_RETURN(
      Result result,
      pool_.Exec(Statement{"get_delivery",
                           "SELECT d.record, e.record FROM deliveries d "
                           "LEFT JOIN events e ON e.id = d.event_id "
                           "WHERE d.id = $1",
                           {Param::Text(id)}}));
  if (result.rows() == 0) {
    return absl::NotFoundError(
        absl::StrCat("delivery \"", AsAbsl(id), "\" not found"));
  }
  Delivery delivery;
  WEBHOOKD_RETURN_IF_ERROR(Parse(result.Bytes(0, 0), "delivery", &delivery));
  if (result.IsNull(0, 1)) {
    return absl::DataLossError(absl::StrCat("event \"", delivery.event_id(),
                                            "\" of delivery \"", AsAbsl(id),
                                            "\" is missing"));
  }
  EventRecord event;
  WEBHOOKD_RETURN_IF_ERROR(Parse(result.Bytes(0, 1), "event", &event));
  delivery.set_payload(std::move(*event.mutable_payload()));
  return delivery;
}

absl::StatusOr<DeliveryPage> PostgresStore::ListDeliveries(
    const DeliveryFilter& filter, int page_size, std::string_view page_token) {
  page_size = ClampPageSize(page_size);
  const std::string listing = absl::StrCat(
      "deliveries\n", filter.endpoint_id.size(), ":", filter.endpoint_id, "\n",
      filter.thread_id.size(), ":", filter.thread_id, "\n",
      static_cast<int>(filter.status), "\n", filter.user_id);
  std::string sql = "SELECT record, create_us, id FROM deliveries WHERE true";
  std::vector<Param> params;
  const auto where = [&](std::string_view condition, Param param) {
    params.push_back(std::move(param));
    absl::StrAppend(&sql, " AND ", AsAbsl(condition), " $", params.size());
  };
  if (!page_token.empty()) {
    WEBHOOKD_ASSIGN_OR_RETURN(const std::string cursor,
                              DecodeToken(page_token, listing));
    const std::vector<std::string> parts =
        absl::StrSplit(cursor, absl::MaxSplits(' ', 1));
    int64_t create_us = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &create_us)) {
      return absl::InvalidArgumentError("page_token: malformed");
    }
    params.push_back(Param::Int64(create_us));
    params.push_back(Param::Text(parts[1]));
    // Newest first, and ids ascending within one microsecond.
    absl::StrAppend(&sql, " AND (create_us < $", params.size() - 1,
                    " OR (create_us = $", params.size() - 1, " AND id > $",
                    params.size(), "))");
  }
  if (!filter.endpoint_id.empty()) {
    where("endpoint_id =", Param::Text(filter.endpoint_id));
  }
  if (!filter.thread_id.empty()) {
    where("thread_id =", Param::Text(filter.thread_id));
  }
  if (filter.status != webhook::v1::DELIVERY_STATUS_UNSPECIFIED) {
    where("status =", Param::Int64(filter.status));
  }
  if (filter.user_id != 0) where("user_id =", Param::Int64(filter.user_id));
  params.push_back(Param::Int64(page_size + 1));
  absl::StrAppend(&sql, " ORDER BY create_us DESC, id LIMIT $", params.size());
  WEBHOOKD_ASSIGN_OR_RETURN(Result result,
                            pool_.Exec(Statement{nullptr, sql, params}));
  DeliveryPage page;
  WEBHOOKD_ASSIGN_OR_RETURN(
      const int shown,
      ParsePage(result, page_size, "delivery", &page.deliveries));
  for (Delivery& delivery : page.deliveries) {
    delivery.clear_payload();
    delivery.clear_attempt_history();
  }
  if (result.rows() > page_size) {
    page.next_page_token =
        EncodeToken(listing, absl::StrCat(result.Int64(shown - 1, 1), " ",
                                          AsAbsl(result.Bytes(shown - 1, 2))));
  }
  return page;
}

absl::Status PostgresStore::UpdateDeliveries(
    absl::Span<const DeliveryChange> changes, Durability durability) {
  if (changes.empty()) return absl::OkStatus();
  std::vector<Statement> statements;
  statements.reserve(changes.size() + 2);
  DeliveryReports reports(node_id_);
  WEBHOOKD_RETURN_IF_ERROR(AppendChanges(changes, reports, statements));
  Append(statements, reports.Notifies());
  return Transaction(statements, durability == Durability::kSynced).status();
}

absl::Status PostgresStore::ScanQueue(
    const std::function<void(const QueuedDelivery&)>& visit) {
  std::string after;
  QueuedDelivery queued;
  while (true) {
    WEBHOOKD_ASSIGN_OR_RETURN(
        Result result,
        pool_.Exec(Statement{
            "scan_queue",
            "SELECT id, endpoint_id, due_us, manual, test FROM deliveries "
            "WHERE due_us IS NOT NULL AND id > $1 ORDER BY id LIMIT $2",
            {Param::Text(after), Param::Int64(kScanBatch)}}));
    for (int row = 0; row < result.rows(); ++row) {
      ReadQueued(result, row, &queued);
      visit(queued);
    }
    if (result.rows() < kScanBatch) return absl::OkStatus();
    after.assign(result.Bytes(result.rows() - 1, 0));
  }
}

absl::StatusOr<EndpointCounts> PostgresStore::GetEndpointCounts(
    std::string_view endpoint_id) {
  WEBHOOKD_ASSIGN_OR_RETURN(
      Result result,
      pool_.Exec(Statement{"get_stats",
                           "SELECT attempts, successes, answered, "
                           "response_time_ms_sum, deliveries_succeeded, "
                           "deliveries_failed, deliveries_in_progress "
                           "FROM endpoint_stats WHERE endpoint_id = $1",
                           {Param::Text(endpoint_id)}}));
  EndpointCounts counts;
  if (result.rows() > 0) {
    counts.attempts = result.Int64(0, 0);
    counts.successes = result.Int64(0, 1);
    counts.answered = result.Int64(0, 2);
    counts.response_time_ms_sum = result.Int64(0, 3);
    counts.deliveries_succeeded = result.Int64(0, 4);
    counts.deliveries_failed = result.Int64(0, 5);
    counts.deliveries_in_progress = result.Int64(0, 6);
  }
  return counts;
}

absl::StatusOr<FailureStreak> PostgresStore::GetFailureStreak(
    std::string_view endpoint_id) {
  WEBHOOKD_ASSIGN_OR_RETURN(
      Result result,
      pool_.Exec(Statement{"get_streak",
                           "SELECT streak_failures, streak_first_failure_us "
                           "FROM endpoint_stats WHERE endpoint_id = $1",
                           {Param::Text(endpoint_id)}}));
  FailureStreak streak;
  if (result.rows() > 0 && result.Int64(0, 0) > 0 && !result.IsNull(0, 1)) {
    streak.failures = result.Int64(0, 0);
    streak.first_failure = absl::FromUnixMicros(result.Int64(0, 1));
  }
  return streak;
}

absl::Status PostgresStore::ResetFailureStreak(std::string_view endpoint_id) {
  const Statement reset{"reset_streak",
                        "UPDATE endpoint_stats SET streak_failures = 0, "
                        "streak_first_failure_us = NULL WHERE endpoint_id = $1",
                        {Param::Text(endpoint_id)}};
  return Transaction({&reset, 1}).status();
}

// --- Retention ---------------------------------------------------------------

absl::Status PostgresStore::Compact() {
  // Only endpoints hold secrets. VACUUM FULL writes the table anew, without
  // the dead versions of its rows (the write-ahead log keeps them until the
  // server recycles it).
  WEBHOOKD_ASSIGN_OR_RETURN(pg::Pool::Lease connection, pool_.Acquire());
  return connection->ExecScript("VACUUM FULL endpoints");
}

absl::StatusOr<std::string> PostgresStore::SettingOrInsert(
    std::string_view name, std::string_view value) {
  // The insert does nothing if a node stored one first; the select then
  // reads whichever was stored.
  const std::vector<Statement> statements = {
      Statement{nullptr,
                "INSERT INTO settings (name, value) VALUES ($1, $2) "
                "ON CONFLICT (name) DO NOTHING",
                {Param::Text(name), Param::Bytes(value)}},
      Statement{nullptr,
                "SELECT value FROM settings WHERE name = $1",
                {Param::Text(name)}}};
  WEBHOOKD_ASSIGN_OR_RETURN(std::vector<Result> results,
                            pool_.Transaction(statements));
  if (results.back().rows() != 1) {
    return absl::InternalError(
        absl::StrCat("setting ", AsAbsl(name), " missing after its insert"));
  }
  return std::string(results.back().Bytes(0, 0));
}

absl::StatusOr<PruneResult> PostgresStore::PruneBefore(
    absl::Time cutoff, absl::Time idempotency_cutoff, size_t max_records) {
  if (max_records == 0) return PruneResult();
  const Param limit = Param::Int64(static_cast<int64_t>(max_records));
  const Param before = Param::Int64(absl::ToUnixMicros(cutoff));
  const std::vector<Statement> statements = {
      // One node at a time; the others wait, then find less to do.
      Statement{nullptr,
                "SELECT pg_advisory_xact_lock($1)",
                {Param::Int64(kPruneLockKey)}},
      // Finished deliveries, oldest first, and the events none of whose
      // deliveries remain. (The statement sees the table as it was before
      // its own deletes: the deliveries it removes are left out by id.)
      Statement{nullptr,
                "WITH gone AS (DELETE FROM deliveries WHERE id IN ("
                "  SELECT id FROM deliveries"
                "  WHERE due_us IS NULL AND create_us < $1"
                "  ORDER BY create_us LIMIT $2) RETURNING id, event_id),"
                " emptied AS (DELETE FROM events e"
                "  WHERE e.id IN (SELECT event_id FROM gone) AND NOT EXISTS ("
                "    SELECT 1 FROM deliveries d WHERE d.event_id = e.id"
                "    AND d.id NOT IN (SELECT id FROM gone)) RETURNING 1)"
                " SELECT (SELECT count(*) FROM gone),"
                " (SELECT count(*) FROM emptied)",
                {before, limit}},
      // Old events that never had a delivery.
      Statement{nullptr,
                "DELETE FROM events WHERE id IN (SELECT e.id FROM events e "
                "WHERE e.create_us < $1 AND NOT EXISTS "
                "(SELECT 1 FROM deliveries d WHERE d.event_id = e.id) "
                "ORDER BY e.create_us LIMIT $2)",
                {before, limit}},
      Statement{nullptr,
                "DELETE FROM submissions WHERE (user_id, idempotency_key) IN "
                "(SELECT user_id, idempotency_key FROM submissions "
                "WHERE create_us < $1 ORDER BY create_us LIMIT $2)",
                {Param::Int64(absl::ToUnixMicros(idempotency_cutoff)), limit}},
  };
  // Not synced: a prune lost in a crash is simply done again.
  WEBHOOKD_ASSIGN_OR_RETURN(std::vector<Result> results,
                            Transaction(statements, /*synced=*/false));
  PruneResult pruned;
  pruned.deliveries = static_cast<size_t>(results[1].Int64(0, 0));
  pruned.events =
      static_cast<size_t>(results[1].Int64(0, 1) + results[2].affected());
  pruned.idempotency_records = static_cast<size_t>(results[3].affected());
  pruned.more = pruned.deliveries >= max_records;
  return pruned;
}

// --- Several nodes -----------------------------------------------------------

namespace {}  // namespace

absl::StatusOr<std::vector<Claim>> PostgresStore::ClaimDue(absl::Time now,
                                                           absl::Duration lease,
                                                           size_t max) {
  if (max == 0) return std::vector<Claim>();
  const std::string sql =
      absl::StrCat("WITH db AS (SELECT ", AsAbsl(kDbNowMicros),
                   " AS now_us) "
                   "UPDATE deliveries d SET claim_owner = $1, "
                   "claim_until_us = (SELECT now_us FROM db) + $3, "
                   "claim_token = nextval('claim_tokens') "
                   "WHERE d.id IN (SELECT q.id FROM deliveries q "
                   "  WHERE q.due_us IS NOT NULL AND q.due_us <= $2"
                   "  AND (q.claim_until_us IS NULL OR"
                   "       q.claim_until_us <= (SELECT now_us FROM db))"
                   "  AND (q.test OR NOT EXISTS (SELECT 1 FROM endpoints e"
                   "       WHERE e.id = q.endpoint_id AND e.enabled = false))"
                   "  ORDER BY q.due_us LIMIT $4 FOR UPDATE OF q SKIP LOCKED) "
                   "RETURNING d.id, d.endpoint_id, d.due_us, d.manual, d.test, "
                   "d.claim_token, d.claim_until_us");
  // Not prepared: planned for the table as it is now (see pg::Statement).
  const Statement claim{
      nullptr,
      sql,
      {Param::Text(node_id_), Param::Int64(absl::ToUnixMicros(now)),
       Param::Int64(absl::ToInt64Microseconds(lease)),
       Param::Int64(static_cast<int64_t>(max))}};
  WEBHOOKD_ASSIGN_OR_RETURN(std::vector<Result> results,
                            Transaction({&claim, 1}));
  const Result& rows = results.front();
  std::vector<Claim> claims;
  claims.reserve(static_cast<size_t>(rows.rows()));
  for (int row = 0; row < rows.rows(); ++row) {
    claims.push_back(ReadClaim(rows, row));
  }
  return claims;
}

absl::StatusOr<absl::Time> PostgresStore::RenewClaims(
    absl::Span<const int64_t> tokens, absl::Duration lease) {
  std::vector<std::string> token_texts;
  token_texts.reserve(tokens.size());
  for (int64_t token : tokens) token_texts.push_back(absl::StrCat(token));
  // The new end is computed once, so the one returned is the one written.
  // Not prepared: planned for the table as it is now (see pg::Statement).
  const Statement renew{
      nullptr,
      absl::StrCat(
          "WITH db AS (SELECT ", AsAbsl(kDbNowMicros),
          " + $2 AS until_us), renewed AS (UPDATE deliveries "
          "SET claim_until_us = (SELECT until_us FROM db) "
          "WHERE claim_owner = $1 AND claim_token = ANY($3::bigint[])) "
          "SELECT until_us FROM db"),
      {Param::Text(node_id_), Param::Int64(absl::ToInt64Microseconds(lease)),
       Param::Text(pg::ArrayLiteral(token_texts))}};
  WEBHOOKD_ASSIGN_OR_RETURN(std::vector<Result> results,
                            Transaction({&renew, 1}));
  return absl::FromUnixMicros(results.front().Int64(0, 0));
}

absl::Status PostgresStore::ReleaseClaims(absl::Span<const Claim> claims) {
  std::vector<Statement> releases;
  releases.reserve(claims.size());
  for (const Claim& claim : claims) {
    releases.push_back(Statement{
        "release_claim",
        "UPDATE deliveries SET claim_owner = NULL, claim_until_us = NULL "
        "WHERE id = $1 AND claim_token = $2 AND claim_owner = $3",
        {Param::Text(claim.entry.delivery_id), Param::Int64(claim.token),
         Param::Text(node_id_)}});
  }
  if (releases.empty()) return absl::OkStatus();
  return Transaction(releases).status();
}

absl::StatusOr<std::vector<std::string>> PostgresStore::UpdateClaimed(
    absl::Span<const DeliveryChange> changes, absl::Span<const int64_t> tokens,
    Durability durability) {
  if (changes.size() != tokens.size()) {
    return absl::InvalidArgumentError("UpdateClaimed: one token per change");
  }
  // Endpoint order, so that transactions of several nodes take the stats
  // rows' locks in one order.
  std::vector<size_t> order(changes.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return changes[a].delivery.endpoint_id() <
           changes[b].delivery.endpoint_id();
  });
  // The fenced update: parameters $1 to $7 below; with a counted attempt
  // or an ending, its counts and streak ($8 to $17, AppendDeltaParams) are
  // added only if the update was made.
  static constexpr std::string_view kFencedUpdate =
      "WITH updated AS (UPDATE deliveries SET status = $2, record = $3, "
      "due_us = $4, manual = $5, test = $6, claim_owner = NULL, "
      "claim_until_us = NULL WHERE id = $1 AND claim_token = $7 "
      "RETURNING endpoint_id)";
  static const std::string* const kUpdate = new std::string(
      absl::StrCat(AsAbsl(kFencedUpdate), " SELECT count(*) FROM updated"));
  static const std::string* const kUpdateCounted = new std::string(absl::StrCat(
      AsAbsl(kFencedUpdate), ", counted AS (",
      AddStatsSql(
          absl::StrCat("SELECT endpoint_id", ColumnsOf(8), " FROM updated"),
          ResetOf(8)),
      " RETURNING 1) SELECT count(*) FROM updated"));
  std::vector<Statement> statements;
  statements.reserve(changes.size() + 1);
  DeliveryReports reports(node_id_);
  std::vector<int64_t> report_tokens;  // Of each report, in its order.
  report_tokens.reserve(changes.size());
  for (size_t i : order) {
    const DeliveryChange& change = changes[i];
    WEBHOOKD_ASSIGN_OR_RETURN(
        Statement state, DeliveryState(change.delivery, change.next_due,
                                       change.next_attempt_manual, reports));
    report_tokens.push_back(tokens[i]);
    // Of the upsert's parameters, those an update changes: id, status,
    // record, due_us, manual and test; then the token.
    const std::vector<Param>& row = state.params;
    std::vector<Param> params = {row[0],
                                 row[5],
                                 row[7],
                                 row[8],
                                 row[9],
                                 row[10],
                                 Param::Int64(tokens[i])};
    const CountsDeltas deltas = DeltasOf({}, {&change, 1});
    if (!deltas.empty()) {
      AppendDeltaParams(deltas.by_endpoint().begin()->second, params);
      statements.push_back(Statement{"update_claimed_counted", *kUpdateCounted,
                                     std::move(params)});
    } else {
      statements.push_back(
          Statement{"update_claimed", *kUpdate, std::move(params)});
    }
  }
  // Only the updates made are reported: the fenced ones are not the
  // delivery's state.
  Append(statements, reports.FencedNotifies(report_tokens));
  WEBHOOKD_ASSIGN_OR_RETURN(
      std::vector<Result> results,
      Transaction(statements, durability == Durability::kSynced));
  std::vector<std::string> lost;
  for (size_t k = 0; k < order.size(); ++k) {
    if (results[k].Int64(0, 0) == 0) {
      lost.push_back(changes[order[k]].delivery.id());
    }
  }
  return lost;
}

absl::StatusOr<Claim> PostgresStore::ClaimOne(std::string_view delivery_id,
                                              absl::Duration lease) {
  // One statement, so that two claimers cannot both win: the second's update
  // waits for the first's row lock, then finds the row claimed. Its one row
  // also tells a missing delivery from a held one when nothing was claimed.
  static const std::string* const kClaimOne = new std::string(absl::StrCat(
      "WITH db AS (SELECT ", AsAbsl(kDbNowMicros),
      " AS now_us), claimed AS (UPDATE deliveries SET claim_owner = $2, "
      "claim_until_us = (SELECT now_us FROM db) + $3, "
      "claim_token = nextval('claim_tokens') WHERE id = $1 "
      "AND (claim_until_us IS NULL OR "
      "     claim_until_us <= (SELECT now_us FROM db)) "
      "RETURNING id, endpoint_id, due_us, manual, test, claim_token, "
      "claim_until_us) "
      "SELECT c.*, EXISTS (SELECT 1 FROM deliveries WHERE id = $1) "
      "FROM (SELECT 1) AS one LEFT JOIN claimed c ON true"));
  const Statement claim{nullptr,
                        *kClaimOne,
                        {Param::Text(delivery_id), Param::Text(node_id_),
                         Param::Int64(absl::ToInt64Microseconds(lease))}};
  WEBHOOKD_ASSIGN_OR_RETURN(std::vector<Result> results,
                            Transaction({&claim, 1}));
  const Result& row = results.front();
  if (row.IsNull(0, 0)) {
    if (!row.Bool(0, 7)) {
      return absl::NotFoundError(
          absl::StrCat("delivery \"", AsAbsl(delivery_id), "\" not found"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "an attempt of delivery \"", AsAbsl(delivery_id), "\" is in progress"));
  }
  return ReadClaim(row, 0);
}

absl::StatusOr<std::vector<QueuedDelivery>> PostgresStore::QueuedOf(
    std::string_view endpoint_id) {
  WEBHOOKD_ASSIGN_OR_RETURN(
      Result result,
      pool_.Exec(Statement{
          nullptr,
          "SELECT id, endpoint_id, due_us, manual, test FROM deliveries "
          "WHERE endpoint_id = $1 AND due_us IS NOT NULL",
          {Param::Text(endpoint_id)}}));
  std::vector<QueuedDelivery> queued(static_cast<size_t>(result.rows()));
  for (int row = 0; row < result.rows(); ++row) {
    ReadQueued(result, row, &queued[row]);
  }
  return queued;
}

absl::Status PostgresStore::Watch(ClusterWatcher* watcher) {
  absl::MutexLock lock(&watch_mu_);
  if (listener_ != nullptr) {
    return absl::FailedPreconditionError("the store is watched already");
  }
  // Records too large for a report are read as stored: without payload,
  // so without reading the event as GetDelivery does.
  FeedListener::DeliveryReader read = [this](std::string_view id) {
    return ReadRecord<Delivery>(
        pool_,
        Statement{"get_delivery_record",
                  "SELECT record FROM deliveries WHERE id = $1",
                  {Param::Text(id)}},
        "delivery", id);
  };
  WEBHOOKD_ASSIGN_OR_RETURN(
      listener_,
      FeedListener::Start(conninfo_, node_id_, watcher, std::move(read)));
  return absl::OkStatus();
}

void PostgresStore::StopWatching() {
  absl::MutexLock lock(&watch_mu_);
  listener_.reset();
}

}  // namespace webhookd
