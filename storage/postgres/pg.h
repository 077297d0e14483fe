// A small layer over libpq for the PostgreSQL store: connections, results
// read in binary, transactions sent in one round trip (pipeline mode), and a
// pool of connections shared by threads. Nothing here knows webhookd's
// schema.
//
// Errors. A connection that breaks or a server that goes away gives
// Unavailable, and the connection is dropped from the pool so the next call
// connects again: a node recovers by itself when the database returns. A
// unique violation gives AlreadyExists, a serialization failure or deadlock
// Aborted (retry), anything else Internal, each with PostgreSQL's message.

#ifndef WEBHOOKD_STORAGE_POSTGRES_PG_H_
#define WEBHOOKD_STORAGE_POSTGRES_PG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

struct pg_conn;
struct pg_result;

namespace webhookd::pg {

// A query parameter, sent in text form (numbers, text) or binary (bytea).
class Param {
 public:
  static Param Text(std::string_view value) { return Param(value, false); }
  static Param Bytes(std::string_view value) { return Param(value, true); }
  static Param Int64(int64_t value);
  static Param Bool(bool value) { return Text(value ? "t" : "f"); }
  static Param Null() {
    Param p("", false);
    p.null_ = true;
    return p;
  }

  const std::string& value() const { return value_; }
  bool binary() const { return binary_; }
  bool null() const { return null_; }

 private:
  Param(std::string_view value, bool binary) : value_(value), binary_(binary) {}

  std::string value_;
  bool binary_ = false;
  bool null_ = false;
};

// One SQL statement with its parameters ($1, $2, ...). A statement with a
// name is prepared once per connection and then executed by name.
struct Statement {
  // Static storage. nullptr: not prepared, so planned with its parameters
  // at every execution: for statements run once per batch whose best plan
  // depends on the table's size, since a prepared statement's generic plan
  // made while a table was small (a sequential scan) would stay until the
  // next ANALYZE.
  const char* name = nullptr;
  std::string sql;
  std::vector<Param> params;
};

// The rows of one statement, every column in PostgreSQL's binary format.
class Result {
 public:
  Result() = default;
  explicit Result(pg_result* result);
  Result(Result&&) noexcept;
  Result& operator=(Result&&) noexcept;
  ~Result();

  int rows() const;
  // Rows changed by an INSERT, UPDATE or DELETE.
  int64_t affected() const;
  bool IsNull(int row, int column) const;
  // text, bytea: the raw bytes.
  std::string_view Bytes(int row, int column) const;
  // int8 (bigint); int4 and int2 columns are widened.
  int64_t Int64(int row, int column) const;
  bool Bool(int row, int column) const;

 private:
  pg_result* result_ = nullptr;
};

// A notification of a channel the connection LISTENs to.
struct Notification {
  std::string channel;
  std::string payload;
};

// One connection. Not thread-safe: the pool hands it to one thread at a
// time.
class Connection {
 public:
  // Connects with a libpq connection string ("host=... dbname=..." or a
  // postgresql:// URI). Unavailable if the server cannot be reached.
  // Unless the string says otherwise, a connection attempt gives up after
  // 10 s and TCP keepalives find a server gone silent within about 25 s,
  // so that no thread waits on a dead database for minutes.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const std::string& conninfo);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The value of a connection option in use ("connect_timeout"...), or ""
  // if it is unset.
  std::string Option(std::string_view keyword) const;
  ~Connection();

  // Runs one statement outside a transaction (autocommit).
  absl::StatusOr<Result> Exec(const Statement& statement);
  // Runs `sql` (no parameters, may hold several statements) and discards
  // the results.
  absl::Status ExecScript(std::string_view sql);
  // Runs the statements in one transaction, sent in one round trip (a
  // single synced statement without BEGIN and COMMIT: a pipeline runs it in
  // a transaction of its own anyway), and
  // returns their results in order. With synced = false, the commit does
  // not wait for the server's WAL flush (synchronous_commit off): it
  // survives a crash of the node but may be lost if the database server
  // crashes. The first failing statement rolls everything back and its
  // error is returned.
  absl::StatusOr<std::vector<Result>> Transaction(
      absl::Span<const Statement> statements, bool synced = true);

  // For a connection that LISTENs: returns the notifications received, once
  // there are any, or none once `wake_fd` is readable (another thread asks
  // the caller to stop). Unavailable once the connection breaks.
  absl::StatusOr<std::vector<Notification>> AwaitNotifications(int wake_fd);

  // False once the connection broke: the pool drops it.
  bool healthy() const;

 private:
  explicit Connection(pg_conn* conn);
  // Queues `statement` in the pipeline (preparing it first if needed);
  // returns how many results it will produce.
  absl::StatusOr<int> Send(const Statement& statement);
  absl::Status ErrorOf(pg_result* result, std::string_view what);
  absl::Status ConnectionError(std::string_view what);

  pg_conn* conn_;
  bool broken_ = false;
  // Statements prepared on this connection, by name.
  absl::flat_hash_set<std::string> prepared_;
};

// The connection string without secrets, for logs: "host=db port=5432
// dbname=webhookd user=webhookd" (unset parts left out). InvalidArgument if
// libpq cannot parse it.
absl::StatusOr<std::string> DescribeConninfo(const std::string& conninfo);

// A pool of up to max_size connections to one database, opened on demand.
// Thread-safe.
class Pool {
 public:
  Pool(std::string conninfo, int max_size);
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool();

  // A connection for the caller alone until it is destroyed. Waits while
  // all max_size are in use; Unavailable if a new one cannot be opened.
  class Lease {
   public:
    Lease(Lease&&) noexcept;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Connection* operator->() const { return connection_.get(); }
    Connection& operator*() const { return *connection_; }

   private:
    friend class Pool;
    Lease(Pool* pool, std::unique_ptr<Connection> connection);
    Pool* pool_;
    std::unique_ptr<Connection> connection_;
  };
  absl::StatusOr<Lease> Acquire();

  // Shorthands that take a connection for one call.
  absl::StatusOr<Result> Exec(const Statement& statement);
  absl::StatusOr<std::vector<Result>> Transaction(
      absl::Span<const Statement> statements, bool synced = true);

 private:
  void Release(std::unique_ptr<Connection> connection);

  const std::string conninfo_;
  const int max_size_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // Idle and leased.
};

// A PostgreSQL array literal of `values` (strings), for a text[] parameter
// (or another array type, by a cast in the statement).
template <typename Strings>
std::string ArrayLiteral(const Strings& values) {
  std::string literal = "{";
  for (const auto& value : values) {
    if (literal.size() > 1) literal += ',';
    literal += '"';
    for (char c : value) {
      if (c == '"' || c == '\\') literal += '\\';
      literal += c;
    }
    literal += '"';
  }
  literal += '}';
  return literal;
}

}  // namespace webhookd::pg

#endif  // WEBHOOKD_STORAGE_POSTGRES_PG_H_
