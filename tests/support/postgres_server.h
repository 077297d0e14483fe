// PostgresServer: a private PostgreSQL server for the tests of the
// PostgreSQL backend, never the machine's own cluster. Each server is a
// cluster made by initdb in a temporary directory and run by pg_ctl on a
// free port of 127.0.0.1, with the superuser "postgres" and trust
// authentication. As root (CI), the PostgreSQL programs run as the system
// user "postgres", since PostgreSQL refuses to run as root. pg_ctl detaches
// the server from the test: if the test binary dies without destroying the
// object (a crash, Ctrl-C), a reaper process it leaves behind stops the
// server and removes the directory.
//
// Most tests share one server per test binary (SharedPostgresServer) and
// create a database of their own: a tenth to a half of a second, where a
// new cluster takes one to three seconds. Without GoogleTest, so that a
// benchmark can use it too.

#ifndef WEBHOOKD_TESTS_SUPPORT_POSTGRES_SERVER_H_
#define WEBHOOKD_TESTS_SUPPORT_POSTGRES_SERVER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/support/subprocess.h"

namespace webhookd::testing {

// Thread-compatible: one thread at a time, except that ConnectionString,
// port() and dir() may be called from any thread.
class PostgresServer {
 public:
  // Makes a cluster in a new temporary directory and starts a server on it,
  // returning once the server accepts connections (pg_ctl -w). NotFoundError
  // if PostgreSQL is not installed (scripts/setup.sh installs it);
  // UnavailableError, with the end of the server log, if it does not start.
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;
  // Stops the server if it runs and removes the directory. After Kill,
  // starts and stops the server once, which frees the shared memory the
  // killed server left.
  ~PostgresServer();

  // The port on 127.0.0.1; the same after StartAgain.
  int port() const { return port_; }
  // The temporary directory: data/ (the cluster), pg.log (the server log)
  // and the server's Unix socket.
  const std::string& dir() const { return dir_; }

  // A libpq connection string for database `db` as the superuser:
  // "host=127.0.0.1 port=<port> user=postgres dbname=<db>".
  std::string ConnectionString(std::string_view db) const;

  // Creates an empty database `name` and returns ConnectionString(name).
  // AlreadyExistsError if it exists; UnavailableError if the server cannot
  // be reached.
  absl::StatusOr<std::string> CreateDatabase(std::string_view name);

  // Whether the server runs: started, and neither stopped nor killed since.
  bool running() const { return running_; }

  // Shuts the server down cleanly (pg_ctl stop -m fast: open sessions are
  // ended, a checkpoint is written) and waits until it has exited. The data
  // stay for StartAgain. OK if the server was not running.
  absl::Status Stop();
  // Kills the server as a crash would: SIGKILL to the postmaster and every
  // one of its processes, then waits until all have gone. Committed
  // transactions survive (fsync is on); StartAgain recovers them. OK if the
  // server was not running.
  absl::Status Kill();
  // Starts the server again on the same data and port after Stop or Kill,
  // returning once it accepts connections (after crash recovery, if it was
  // killed). FailedPreconditionError if it runs.
  absl::Status StartAgain();

  // The server log so far.
  std::string Log() const;

 private:
  PostgresServer() = default;
  // initdb into dir_/data, then the settings for tests.
  absl::Status MakeCluster();
  // pg_ctl start on port_; sets running_.
  absl::Status StartServer();
  // The argv that runs a PostgreSQL program from bin_dir_, as the user
  // "postgres" when this process is root.
  std::vector<std::string> Command(const std::string& program,
                                   std::vector<std::string> args) const;
  RunResult RunProgram(const std::string& program,
                       std::vector<std::string> args) const;

  std::string bin_dir_;
  std::string dir_;
  std::string data_dir_;
  std::string log_path_;
  int port_ = 0;
  bool as_postgres_user_ = false;
  bool running_ = false;
  // Killed and not started again since.
  bool killed_ = false;
  // Stops the server and removes dir_ if this process ends without
  // destroying the object (a crash, an abort, Ctrl-C).
  std::unique_ptr<Subprocess> reaper_;
};

// One server for the whole test binary: started by the first call (from
// any thread), stopped and removed when the binary exits. Each test should
// create its own database on it. If the server could not be started, every
// call returns why. A test that stops or kills it must start it again.
absl::StatusOr<PostgresServer*> SharedPostgresServer();

// A new database on the shared server, named `prefix` and a number unique
// in this binary: its connection string.
absl::StatusOr<std::string> NewSharedDatabase(std::string_view prefix);

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_POSTGRES_SERVER_H_
