#include "tests/support/postgres_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "libpq-fe.h"
#include "tests/support/eventually.h"

namespace webhookd::testing {
namespace {

// initdb, pg_ctl start and pg_ctl stop each take a second or two; these
// bounds only stop a hung program from hanging the test.
constexpr absl::Duration kProgramTimeout = absl::Seconds(120);
constexpr int kPgCtlWaitSeconds = 60;
// Another process may take the free port before the server binds it.
constexpr int kStartAttempts = 5;

// sh -c kReaperScript sh PID DIR COMMAND...: once process PID has ended,
// runs COMMAND and removes DIR. SIGTERM ends it without doing either. If
// tail fails while PID still runs, it does nothing.
constexpr char kReaperScript[] = R"(p=$1 d=$2; shift 2
tail --pid="$p" -f /dev/null & t=$!
trap 'kill $t 2>/dev/null; exit 0' TERM
wait $t
kill -0 "$p" 2>/dev/null && exit 0
"$@"
rm -rf "$d"
)";

std::string Describe(const RunResult& result) {
  return absl::StrCat(
      "exit code ", result.exit_code, ": ",
      absl::StripTrailingAsciiWhitespace(absl::StrCat(result.out, result.err)));
}

// The bin directory of the newest PostgreSQL installed the Debian way
// (/usr/lib/postgresql/<major>/bin; postgresql-common allows several).
absl::StatusOr<std::string> FindBinDir() {
  constexpr char kRoot[] = "/usr/lib/postgresql";
  std::string best;
  int best_major = -1;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(kRoot, error)) {
    int major = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &major)) continue;
    const std::string bin = entry.path().string() + "/bin";
    if (major > best_major && access((bin + "/initdb").c_str(), X_OK) == 0 &&
        access((bin + "/pg_ctl").c_str(), X_OK) == 0) {
      best = bin;
      best_major = major;
    }
  }
  if (best.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "no PostgreSQL server in ", kRoot,
        "/*/bin: apt-get install postgresql (scripts/setup.sh does)"));
  }
  return best;
}

// Whether a user other than the owner may pass through `path` and each
// directory above it.
bool TraversableByOthers(const std::filesystem::path& path) {
  for (std::filesystem::path p = path;; p = p.parent_path()) {
    struct stat info;
    if (stat(p.c_str(), &info) != 0 || (info.st_mode & S_IXOTH) == 0) {
      return false;
    }
    if (p == p.parent_path()) return true;
  }
}

// Where the server's directory goes: the temporary directory (Bazel's
// TEST_TMPDIR), unless the user "postgres" cannot reach it (under /root) or
// the Unix socket's path would be too long (at most 107 bytes: the
// directory, "/webhookd-pg-XXXXXX" and "/.s.PGSQL.65535"); then /tmp.
std::string BaseDir(bool as_postgres_user) {
  std::error_code error;
  const std::filesystem::path temp =
      std::filesystem::temp_directory_path(error);
  if (error || temp.string().size() > 107 - 35 ||
      (as_postgres_user && !TraversableByOthers(temp))) {
    return "/tmp";
  }
  return temp.string();
}

// A value in a libpq connection string: quoted when it must be.
std::string ConnectionValue(std::string_view value) {
  if (!value.empty() &&
      value.find_first_of(" \t\n\r\f\v'\\") == std::string_view::npos) {
    return std::string(value);
  }
  std::string quoted = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + "'";
}

// A string in postgresql.conf.
std::string ConfigString(std::string_view value) {
  std::string quoted = "'";
  for (char c : value) {
    quoted += c;
    if (c == '\'') quoted += '\'';
  }
  return quoted + "'";
}

// The state and the parent of a process, from /proc/<pid>/stat; false if
// it is gone.
bool ReadProcessStat(pid_t pid, char* state, pid_t* parent) {
  const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  // "pid (comm) state ppid ...", where comm may hold spaces and parentheses.
  const size_t end_of_comm = stat.rfind(')');
  if (end_of_comm == std::string::npos) return false;
  std::vector<absl::string_view> fields = absl::StrSplit(
      absl::string_view(stat).substr(end_of_comm + 1), ' ', absl::SkipEmpty());
  int parent_pid = 0;
  if (fields.size() < 2 || fields[0].size() != 1 ||
      !absl::SimpleAtoi(fields[1], &parent_pid)) {
    return false;
  }
  *state = fields[0][0];
  *parent = parent_pid;
  return true;
}

// Whether a process has exited (a zombie has).
bool Gone(pid_t pid) {
  char state = 0;
  pid_t parent = 0;
  return !ReadProcessStat(pid, &state, &parent) || state == 'Z' || state == 'X';
}

std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> children;
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc", error)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    char state = 0;
    pid_t parent_of_pid = 0;
    if (ReadProcessStat(pid, &state, &parent_of_pid) &&
        parent_of_pid == parent) {
      children.push_back(pid);
    }
  }
  return children;
}

struct ConnectionCloser {
  void operator()(PGconn* connection) const { PQfinish(connection); }
};
struct ResultClearer {
  void operator()(PGresult* result) const { PQclear(result); }
};

std::string ErrorOf(const PGconn* connection) {
  return std::string(
      absl::StripTrailingAsciiWhitespace(PQerrorMessage(connection)));
}

// What exits with the test binary: set by SharedPostgresServer.
PostgresServer* shared_server = nullptr;
pid_t shared_server_owner = 0;

void DestroySharedServer() {
  // Not in a child forked by the binary (a death test) that calls exit().
  if (getpid() == shared_server_owner) delete shared_server;
  shared_server = nullptr;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  absl::StatusOr<std::string> bin_dir = FindBinDir();
  if (!bin_dir.ok()) return bin_dir.status();
  std::unique_ptr<PostgresServer> server(new PostgresServer);
  server->bin_dir_ = *std::move(bin_dir);
  // PostgreSQL refuses to run as root.
  server->as_postgres_user_ = geteuid() == 0;
  const passwd* postgres_user = nullptr;
  if (server->as_postgres_user_) {
    postgres_user = getpwnam("postgres");
    if (postgres_user == nullptr) {
      return absl::FailedPreconditionError(
          "running as root, and there is no user \"postgres\" to run "
          "PostgreSQL as (the postgresql package makes it)");
    }
  }

  std::string pattern =
      BaseDir(server->as_postgres_user_) + "/webhookd-pg-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("mkdtemp ", pattern, ": ", std::strerror(errno)));
  }
  server->dir_ = pattern;
  server->data_dir_ = server->dir_ + "/data";
  server->log_path_ = server->dir_ + "/pg.log";
  // The user "postgres" makes data/, the log and the socket in it; root
  // passes anyway.
  if (server->as_postgres_user_ &&
      chown(server->dir_.c_str(), postgres_user->pw_uid,
            postgres_user->pw_gid) != 0) {
    const int error = errno;
    // EINVAL: a user namespace that does not map the user, as Bazel's
    // linux-sandbox.
    return absl::UnavailableError(absl::StrCat(
        "chown postgres ", server->dir_, ": ", std::strerror(error),
        error == EINVAL ? " (in a sandbox without the user \"postgres\"? "
                          "Bazel: local = True)"
                        : ""));
  }

  // The reaper stops the server (which pg_ctl detached from this process)
  // and removes the directory if this process ends without destroying the
  // object. setsid keeps it out of this process group, which Ctrl-C and
  // some test runners signal.
  std::vector<std::string> reaper = {
      "setsid",    "sh", "-c", kReaperScript, "sh", absl::StrCat(getpid()),
      server->dir_};
  for (std::string& arg : server->Command(
           "pg_ctl", {"-D", server->data_dir_, "-m", "immediate", "stop"})) {
    reaper.push_back(std::move(arg));
  }
  Subprocess::Options reaper_options;
  reaper_options.output_file = "/dev/null";
  absl::StatusOr<std::unique_ptr<Subprocess>> started_reaper =
      Subprocess::Start(reaper, reaper_options);
  if (!started_reaper.ok()) return started_reaper.status();
  server->reaper_ = *std::move(started_reaper);

  if (absl::Status made = server->MakeCluster(); !made.ok()) return made;
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<int> port = FreeLoopbackPort();
    if (!port.ok()) return port.status();
    server->port_ = *port;
    const size_t log_size = server->Log().size();
    absl::Status started = server->StartServer();
    if (started.ok()) break;
    const bool port_taken =
        absl::StrContains(server->Log().substr(log_size), "could not bind");
    if (!port_taken || attempt == kStartAttempts) return started;
  }
  return server;
}

PostgresServer::~PostgresServer() {
  if (running_ && !Stop().ok()) Kill().IgnoreError();
  // A killed server leaves shared memory behind, which only PostgreSQL
  // knows how to find: a start and a clean stop release it.
  if (killed_ && StartAgain().ok()) Stop().IgnoreError();
  if (reaper_ != nullptr) reaper_->Stop(absl::Seconds(10));
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::vector<std::string> PostgresServer::Command(
    const std::string& program, std::vector<std::string> args) const {
  std::vector<std::string> argv;
  if (as_postgres_user_) {
    // The postgres user may not be able to read the working directory.
    argv = {"runuser", "-u", "postgres", "--", "env", "-C", dir_};
  }
  argv.push_back(absl::StrCat(bin_dir_, "/", program));
  for (std::string& arg : args) argv.push_back(std::move(arg));
  return argv;
}

RunResult PostgresServer::RunProgram(const std::string& program,
                                     std::vector<std::string> args) const {
  return Subprocess::Run(Command(program, std::move(args)), kProgramTimeout);
}

absl::Status PostgresServer::MakeCluster() {
  // --no-sync: the cluster lives as long as the test, and its files need
  // not survive a machine crash (a killed server does not lose the page
  // cache). Saves seconds of fsync per cluster.
  RunResult result =
      RunProgram("initdb", {"-D", data_dir_, "-A", "trust", "-U", "postgres",
                            "--encoding=UTF8", "--locale=C", "--no-sync",
                            "--no-instructions"});
  if (result.exit_code != 0) {
    return absl::UnavailableError(absl::StrCat(
        "initdb -D ", data_dir_, " failed (", Describe(result), ")"));
  }
  // The port comes on pg_ctl's command line, since a retry changes it.
  std::ofstream config(data_dir_ + "/postgresql.conf", std::ios::app);
  config << "\n# webhookd tests (tests/support/postgres_server.cc)\n"
         << "listen_addresses = '127.0.0.1'\n"
         << "unix_socket_directories = " << ConfigString(dir_)
         << "\n"
         // Crash tests count on committed transactions surviving a kill.
         << "fsync = on\n"
         << "max_connections = 200\n"
         << "shared_buffers = 32MB\n";
  config.close();
  if (!config) {
    return absl::UnavailableError(
        absl::StrCat("cannot write ", data_dir_, "/postgresql.conf"));
  }
  return absl::OkStatus();
}

absl::Status PostgresServer::StartServer() {
  RunResult result =
      RunProgram("pg_ctl", {"-D", data_dir_, "-l", log_path_, "-w", "-t",
                            absl::StrCat(kPgCtlWaitSeconds), "-o",
                            absl::StrCat("-p ", port_), "start"});
  if (result.exit_code == 0) {
    running_ = true;
    killed_ = false;
    return absl::OkStatus();
  }
  // pg_ctl gives up waiting on a server that may yet come up: make sure it
  // does not.
  RunProgram("pg_ctl", {"-D", data_dir_, "-m", "immediate", "stop"});
  return absl::UnavailableError(absl::StrCat(
      "PostgreSQL did not start on 127.0.0.1:", port_, " (pg_ctl start ",
      Describe(result), "); the end of ", log_path_, ":\n", LogTail(Log())));
}

std::string PostgresServer::ConnectionString(std::string_view db) const {
  return absl::StrCat("host=127.0.0.1 port=", port_,
                      " user=postgres dbname=", ConnectionValue(db));
}

absl::StatusOr<std::string> PostgresServer::CreateDatabase(
    std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("empty database name");
  std::unique_ptr<PGconn, ConnectionCloser> connection(
      PQconnectdb(ConnectionString("postgres").c_str()));
  if (PQstatus(connection.get()) != CONNECTION_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to PostgreSQL on 127.0.0.1:", port_, ": ",
                     ErrorOf(connection.get())));
  }
  char* identifier =
      PQescapeIdentifier(connection.get(), name.data(), name.size());
  if (identifier == nullptr) {
    return absl::InvalidArgumentError(ErrorOf(connection.get()));
  }
  const std::string sql = absl::StrCat("CREATE DATABASE ", identifier);
  PQfreemem(identifier);
  std::unique_ptr<PGresult, ResultClearer> result(
      PQexec(connection.get(), sql.c_str()));
  if (PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
    const std::string message =
        absl::StrCat(sql, ": ", ErrorOf(connection.get()));
    const char* sql_state = PQresultErrorField(result.get(), PG_DIAG_SQLSTATE);
    // 42P04: duplicate_database.
    if (sql_state != nullptr && std::string_view(sql_state) == "42P04") {
      return absl::AlreadyExistsError(message);
    }
    return absl::UnavailableError(message);
  }
  return ConnectionString(name);
}

absl::Status PostgresServer::Stop() {
  if (!running_) return absl::OkStatus();
  RunResult result =
      RunProgram("pg_ctl", {"-D", data_dir_, "-m", "fast", "-w", "-t",
                            absl::StrCat(kPgCtlWaitSeconds), "stop"});
  if (result.exit_code != 0) {
    return absl::UnavailableError(absl::StrCat("pg_ctl stop ", Describe(result),
                                               "; the end of ", log_path_,
                                               ":\n", LogTail(Log())));
  }
  running_ = false;
  return absl::OkStatus();
}

absl::Status PostgresServer::Kill() {
  if (!running_) return absl::OkStatus();
  // The first line of postmaster.pid is the postmaster's pid.
  const std::string lock = ReadFile(data_dir_ + "/postmaster.pid");
  int postmaster = 0;
  if (!absl::SimpleAtoi(lock.substr(0, lock.find('\n')), &postmaster) ||
      postmaster <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("no postmaster pid in ", data_dir_, "/postmaster.pid"));
  }
  // Stopped, the postmaster cannot start a process we would miss, nor see
  // its children die and begin a recovery of its own.
  if (kill(postmaster, SIGSTOP) != 0) {
    return absl::UnavailableError(
        absl::StrCat("kill -STOP ", postmaster, ": ", std::strerror(errno)));
  }
  std::vector<pid_t> processes = ChildrenOf(postmaster);
  processes.push_back(postmaster);
  for (pid_t pid : processes) kill(pid, SIGKILL);
  running_ = false;
  killed_ = true;
  // Until every process has gone, a new server would find the old shared
  // memory in use and refuse to start.
  const bool all_gone = Eventually([&processes] {
    for (pid_t pid : processes) {
      if (!Gone(pid)) return false;
    }
    return true;
  });
  if (!all_gone) {
    return absl::DeadlineExceededError(absl::StrCat(
        "PostgreSQL processes still running after SIGKILL (postmaster ",
        postmaster, ")"));
  }
  // The lock files name the dead postmaster. Left there, a new server
  // would refuse to start while that pid looks alive, and a zombie does
  // until its new parent reaps it (some containers' init takes seconds).
  unlink((data_dir_ + "/postmaster.pid").c_str());
  unlink(absl::StrCat(dir_, "/.s.PGSQL.", port_, ".lock").c_str());
  return absl::OkStatus();
}

absl::Status PostgresServer::StartAgain() {
  if (running_) {
    return absl::FailedPreconditionError(
        absl::StrCat("PostgreSQL already runs on 127.0.0.1:", port_));
  }
  return StartServer();
}

std::string PostgresServer::Log() const { return ReadFile(log_path_); }

absl::StatusOr<PostgresServer*> SharedPostgresServer() {
  // Never destroyed: DestroySharedServer (atexit) stops the server.
  static const absl::StatusOr<PostgresServer*>* const shared =
      []() -> const absl::StatusOr<PostgresServer*>* {
    absl::StatusOr<std::unique_ptr<PostgresServer>> server =
        PostgresServer::Start();
    if (!server.ok()) {
      return new absl::StatusOr<PostgresServer*>(server.status());
    }
    shared_server = server->release();
    shared_server_owner = getpid();
    std::atexit(DestroySharedServer);
    return new absl::StatusOr<PostgresServer*>(shared_server);
  }();
  return *shared;
}

absl::StatusOr<std::string> NewSharedDatabase(std::string_view prefix) {
  static std::atomic<int> databases{0};
  absl::StatusOr<PostgresServer*> server = SharedPostgresServer();
  if (!server.ok()) return server.status();
  std::string name(prefix);
  name += "_" + std::to_string(++databases);
  return (*server)->CreateDatabase(name);
}

}  // namespace webhookd::testing
