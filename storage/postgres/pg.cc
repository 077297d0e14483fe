#include "storage/postgres/pg.h"

#include <endian.h>
#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/common/string_view.h"

namespace webhookd::pg {
namespace {

constexpr int kBinary = 1;

// SQLSTATE classes and codes (PostgreSQL manual, appendix A).
bool IsConnectionState(std::string_view state) {
  return state.starts_with("08") ||  // connection exception
         state == "57P01" ||         // admin_shutdown
         state == "57P02" ||         // crash_shutdown
         state == "57P03" ||         // cannot_connect_now
         state.starts_with("53");    // insufficient resources
}

std::string Trimmed(const char* message) {
  std::string out = message == nullptr ? "" : message;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
    out.pop_back();
  }
  return out;
}

}  // namespace

Param Param::Int64(int64_t value) {
  return Param(std::to_string(value), false);
}

// --- Result ----------------------------------------------------------------

Result::Result(pg_result* result) : result_(result) {}

Result::Result(Result&& other) noexcept
    : result_(std::exchange(other.result_, nullptr)) {}

Result& Result::operator=(Result&& other) noexcept {
  if (this != &other) {
    if (result_ != nullptr) PQclear(result_);
    result_ = std::exchange(other.result_, nullptr);
  }
  return *this;
}

Result::~Result() {
  if (result_ != nullptr) PQclear(result_);
}

int Result::rows() const { return result_ == nullptr ? 0 : PQntuples(result_); }

int64_t Result::affected() const {
  if (result_ == nullptr) return 0;
  const char* tuples = PQcmdTuples(result_);
  return tuples == nullptr || *tuples == '\0' ? 0 : std::stoll(tuples);
}

bool Result::IsNull(int row, int column) const {
  return PQgetisnull(result_, row, column) != 0;
}

std::string_view Result::Bytes(int row, int column) const {
  return std::string_view(PQgetvalue(result_, row, column),
                          PQgetlength(result_, row, column));
}

int64_t Result::Int64(int row, int column) const {
  const std::string_view bytes = Bytes(row, column);
  if (bytes.size() == 8) {
    uint64_t value;
    std::memcpy(&value, bytes.data(), 8);
    return static_cast<int64_t>(be64toh(value));
  }
  if (bytes.size() == 4) {
    uint32_t value;
    std::memcpy(&value, bytes.data(), 4);
    return static_cast<int32_t>(be32toh(value));
  }
  if (bytes.size() == 2) {
    uint16_t value;
    std::memcpy(&value, bytes.data(), 2);
    return static_cast<int16_t>(be16toh(value));
  }
  return 0;
}

bool Result::Bool(int row, int column) const {
  const std::string_view bytes = Bytes(row, column);
  return !bytes.empty() && bytes[0] != 0;
}

// --- Connection ------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(
    const std::string& conninfo) {
  // Defaults first: the expanded connection string overrides them.
  static constexpr const char* kKeywords[] = {"connect_timeout",
                                              "keepalives",
                                              "keepalives_idle",
                                              "keepalives_interval",
                                              "keepalives_count",
                                              "dbname",
                                              nullptr};
  const char* values[] = {"10", "1", "10", "5", "3", conninfo.c_str(), nullptr};
  pg_conn* conn = PQconnectdbParams(kKeywords, values, /*expand_dbname=*/1);
  if (conn == nullptr) {
    return absl::ResourceExhaustedError("PostgreSQL: out of memory");
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    absl::Status error = absl::UnavailableError(absl::StrCat(
        "cannot connect to PostgreSQL: ", Trimmed(PQerrorMessage(conn))));
    PQfinish(conn);
    return error;
  }
  return std::unique_ptr<Connection>(new Connection(conn));
}

std::string Connection::Option(std::string_view keyword) const {
  PQconninfoOption* options = PQconninfo(conn_);
  std::string value;
  for (PQconninfoOption* option = options;
       option != nullptr && option->keyword != nullptr; ++option) {
    if (keyword == option->keyword && option->val != nullptr) {
      value = option->val;
    }
  }
  PQconninfoFree(options);
  return value;
}

Connection::Connection(pg_conn* conn) : conn_(conn) {
  // Notices ("relation ... already exists, skipping") are not errors, and
  // libpq would print them on stderr.
  PQsetNoticeProcessor(
      conn_, [](void*, const char*) {}, nullptr);
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::healthy() const {
  return !broken_ && PQstatus(conn_) == CONNECTION_OK &&
         PQtransactionStatus(conn_) == PQTRANS_IDLE;
}

absl::Status Connection::ConnectionError(std::string_view what) {
  return absl::UnavailableError(absl::StrCat("PostgreSQL ", AsAbsl(what), ": ",
                                             Trimmed(PQerrorMessage(conn_))));
}

absl::Status Connection::ErrorOf(pg_result* result, std::string_view what) {
  if (result == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    broken_ = true;
    return ConnectionError(what);
  }
  const char* state_field = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const std::string state = state_field == nullptr ? "" : state_field;
  std::string message = absl::StrCat("PostgreSQL ", AsAbsl(what), ": ",
                                     Trimmed(PQresultErrorMessage(result)));
  if (state.empty() || IsConnectionState(state)) {
    broken_ = true;
    return absl::UnavailableError(message);
  }
  if (state == "23505") return absl::AlreadyExistsError(message);
  if (state == "40001" || state == "40P01") {
    return absl::AbortedError(message);
  }
  return absl::InternalError(message);
}

absl::StatusOr<int> Connection::Send(const Statement& statement) {
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  values.reserve(statement.params.size());
  lengths.reserve(statement.params.size());
  formats.reserve(statement.params.size());
  for (const Param& param : statement.params) {
    values.push_back(param.null() ? nullptr : param.value().c_str());
    lengths.push_back(static_cast<int>(param.value().size()));
    formats.push_back(param.binary() ? kBinary : 0);
  }
  const int count = static_cast<int>(statement.params.size());
  int results = 1;
  if (statement.name == nullptr) {
    if (PQsendQueryParams(conn_, statement.sql.c_str(), count, nullptr,
                          values.data(), lengths.data(), formats.data(),
                          kBinary) == 0) {
      return ConnectionError("send");
    }
    return results;
  }
  if (!prepared_.contains(statement.name)) {
    if (PQsendPrepare(conn_, statement.name, statement.sql.c_str(), count,
                      nullptr) == 0) {
      return ConnectionError("prepare");
    }
    // Counted now, so the same statement later in this pipeline is not
    // prepared twice; Transaction forgets it if the preparation fails.
    prepared_.insert(statement.name);
    ++results;
  }
  if (PQsendQueryPrepared(conn_, statement.name, count, values.data(),
                          lengths.data(), formats.data(), kBinary) == 0) {
    return ConnectionError("send");
  }
  return results;
}

absl::StatusOr<Result> Connection::Exec(const Statement& statement) {
  WEBHOOKD_ASSIGN_OR_RETURN(std::vector<Result> results,
                            Transaction({&statement, 1}, true));
  return std::move(results.front());
}

absl::Status Connection::ExecScript(std::string_view sql) {
  const std::string text(sql);
  // The simple query protocol runs every statement of the text and stops at
  // the first error, whose result is the one returned.
  pg_result* result = PQexec(conn_, text.c_str());
  const ExecStatusType status =
      result == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result);
  absl::Status error;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK &&
      status != PGRES_EMPTY_QUERY) {
    error = ErrorOf(result, "script");
    if (result == nullptr) broken_ = true;
  }
  if (result != nullptr) PQclear(result);
  return error;
}

absl::StatusOr<std::vector<Result>> Connection::Transaction(
    absl::Span<const Statement> statements, bool synced) {
  if (PQenterPipelineMode(conn_) == 0) {
    broken_ = true;
    return ConnectionError("pipeline");
  }
  // The caller's statements, between BEGIN (and SET LOCAL) and COMMIT when
  // there is more than one.
  std::vector<int> expected;       // Results of each sent statement.
  std::vector<bool> callers;       // Whether a sent statement is the caller's.
  std::vector<const char*> names;  // The statement's name.
  absl::Status error;
  const auto send = [&](const Statement& statement, bool caller) {
    if (!error.ok()) return;
    absl::StatusOr<int> n = Send(statement);
    if (!n.ok()) {
      error = n.status();
      return;
    }
    expected.push_back(*n);
    callers.push_back(caller);
    names.push_back(statement.name);
  };
  const bool block = statements.size() > 1 || !synced;
  if (block) send(Statement{nullptr, "BEGIN", {}}, false);
  if (!synced) {
    send(Statement{nullptr, "SET LOCAL synchronous_commit = off", {}}, false);
  }
  for (const Statement& statement : statements) send(statement, true);
  if (block) send(Statement{nullptr, "COMMIT", {}}, false);
  if (error.ok() && PQpipelineSync(conn_) == 0) error = ConnectionError("sync");
  if (!error.ok()) {
    // Part of a pipeline may have been sent: the connection's state is
    // unknown, so the pool drops it.
    broken_ = true;
    return error;
  }

  std::vector<Result> results;
  results.reserve(statements.size());
  for (size_t i = 0; i < expected.size() && !broken_; ++i) {
    for (int r = 0; r < expected[i]; ++r) {
      pg_result* raw = PQgetResult(conn_);
      if (raw == nullptr) {
        if (error.ok()) error = ConnectionError("result");
        broken_ = true;
        break;
      }
      const ExecStatusType status = PQresultStatus(raw);
      if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK &&
          status != PGRES_PIPELINE_ABORTED && error.ok()) {
        error = ErrorOf(raw, "query");
      }
      // Two results: the first is the statement's preparation (Send counted
      // it as prepared), which outlives the transaction if it succeeded.
      if (expected[i] == 2 && r == 0 && status != PGRES_COMMAND_OK) {
        prepared_.erase(names[i]);
      }
      // Each result of a pipeline is followed by a null.
      if (pg_result* end = PQgetResult(conn_); end != nullptr) PQclear(end);
      if (callers[i] && r == expected[i] - 1) {
        results.emplace_back(raw);
      } else {
        PQclear(raw);
      }
    }
  }
  if (!broken_) {
    pg_result* sync = PQgetResult(conn_);
    if (sync == nullptr || PQresultStatus(sync) != PGRES_PIPELINE_SYNC) {
      if (error.ok()) error = ConnectionError("pipeline sync");
      broken_ = true;
    }
    if (sync != nullptr) PQclear(sync);
    if (!broken_ && PQexitPipelineMode(conn_) == 0) {
      if (error.ok()) error = ConnectionError("pipeline exit");
      broken_ = true;
    }
  }
  if (!error.ok()) return error;
  return results;
}

absl::StatusOr<std::vector<Notification>> Connection::AwaitNotifications(
    int wake_fd) {
  std::vector<Notification> received;
  while (true) {
    // Notifications may already be in libpq's buffer, read along with the
    // results of a statement.
    while (PGnotify* notify = PQnotifies(conn_)) {
      received.push_back(Notification{notify->relname, notify->extra});
      PQfreemem(notify);
    }
    if (!received.empty()) return received;
    pollfd fds[2] = {{PQsocket(conn_), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    if (fds[0].fd < 0) {
      broken_ = true;
      return ConnectionError("listen");
    }
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      broken_ = true;
      return absl::UnavailableError(
          absl::StrCat("PostgreSQL listen: poll: ", std::strerror(errno)));
    }
    if (fds[1].revents != 0) return received;
    // A server shutting down sends an error and closes the connection: the
    // status tells that, the return value only an unreadable socket.
    if (PQconsumeInput(conn_) == 0 || PQstatus(conn_) != CONNECTION_OK) {
      broken_ = true;
      return ConnectionError("listen");
    }
  }
}

absl::StatusOr<std::string> DescribeConninfo(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    absl::Status status = absl::InvalidArgumentError(
        absl::StrCat("PostgreSQL connection string: ",
                     error == nullptr ? "cannot be parsed" : Trimmed(error)));
    PQfreemem(error);
    return status;
  }
  std::string out;
  for (std::string_view wanted :
       {"host", "hostaddr", "port", "dbname", "user"}) {
    for (const PQconninfoOption* option = options; option->keyword != nullptr;
         ++option) {
      if (option->keyword != wanted || option->val == nullptr ||
          *option->val == '\0') {
        continue;
      }
      absl::StrAppend(&out, out.empty() ? "" : " ", option->keyword, "=",
                      option->val);
    }
  }
  PQconninfoFree(options);
  return out.empty() ? std::string("libpq defaults") : out;
}

// --- Pool ------------------------------------------------------------------

Pool::Pool(std::string conninfo, int max_size)
    : conninfo_(std::move(conninfo)), max_size_(max_size < 1 ? 1 : max_size) {}

Pool::~Pool() = default;

Pool::Lease::Lease(Pool* pool, std::unique_ptr<Connection> connection)
    : pool_(pool), connection_(std::move(connection)) {}

Pool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), connection_(std::move(other.connection_)) {}

Pool::Lease::~Lease() {
  if (connection_ != nullptr) pool_->Release(std::move(connection_));
}

absl::StatusOr<Pool::Lease> Pool::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    const auto available = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || open_ < max_size_;
    };
    mu_.Await(absl::Condition(&available));
    if (!idle_.empty()) {
      std::unique_ptr<Connection> connection = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(connection));
    }
    ++open_;
  }
  // Connecting takes a round trip or more: outside the lock.
  absl::StatusOr<std::unique_ptr<Connection>> connection =
      Connection::Open(conninfo_);
  if (!connection.ok()) {
    absl::MutexLock lock(&mu_);
    --open_;
    return connection.status();
  }
  return Lease(this, *std::move(connection));
}

void Pool::Release(std::unique_ptr<Connection> connection) {
  absl::MutexLock lock(&mu_);
  if (connection->healthy()) {
    idle_.push_back(std::move(connection));
  } else {
    --open_;
  }
}

absl::StatusOr<Result> Pool::Exec(const Statement& statement) {
  WEBHOOKD_ASSIGN_OR_RETURN(Lease lease, Acquire());
  return lease->Exec(statement);
}

absl::StatusOr<std::vector<Result>> Pool::Transaction(
    absl::Span<const Statement> statements, bool synced) {
  WEBHOOKD_ASSIGN_OR_RETURN(Lease lease, Acquire());
  return lease->Transaction(statements, synced);
}

}  // namespace webhookd::pg
