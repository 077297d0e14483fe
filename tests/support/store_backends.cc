#include "tests/support/store_backends.h"

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/leveldb/leveldb_store.h"
#include "storage/postgres/pg.h"
#include "storage/postgres/postgres_store.h"
#include "tests/support/postgres_server.h"

namespace webhookd::testing {

void PrintTo(const StoreBackendType& type, std::ostream* os) {
  *os << type.name;
}

std::vector<StoreBackendType> AllStoreBackends() {
  return {
      {LevelDbBackend::kName, &LevelDbBackend::Create},
      {PostgresBackend::kName, &PostgresBackend::Create},
  };
}

absl::StatusOr<std::unique_ptr<StoreBackend>> LevelDbBackend::Create() {
  // The constructor is private, so not through std::make_unique.
  return std::unique_ptr<StoreBackend>(new LevelDbBackend());
}

absl::StatusOr<std::unique_ptr<Store>> LevelDbBackend::Open() {
  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(dir_.Sub("db"));
  if (!store.ok()) return store.status();
  return std::unique_ptr<Store>(*std::move(store));
}

absl::StatusOr<std::unique_ptr<StoreBackend>> PostgresBackend::Create() {
  absl::StatusOr<PostgresServer*> server = SharedPostgresServer();
  if (!server.ok()) return server.status();
  // Unique in the binary; the server is the binary's own.
  static std::atomic<int> next{0};
  std::string database = absl::StrCat("conformance_", next.fetch_add(1));
  absl::StatusOr<std::string> conninfo = (*server)->CreateDatabase(database);
  if (!conninfo.ok()) return conninfo.status();
  return std::unique_ptr<StoreBackend>(
      new PostgresBackend(std::move(database), *std::move(conninfo)));
}

PostgresBackend::~PostgresBackend() {
  absl::StatusOr<PostgresServer*> server = SharedPostgresServer();
  if (!server.ok()) return;
  absl::StatusOr<std::unique_ptr<pg::Connection>> admin =
      pg::Connection::Open((*server)->ConnectionString("postgres"));
  if (admin.ok()) {
    (void)(*admin)->ExecScript(
        absl::StrCat("DROP DATABASE IF EXISTS ", database_, " WITH (FORCE)"));
  }
}

absl::StatusOr<std::unique_ptr<Store>> PostgresBackend::Open() {
  PostgresStoreOptions options;
  options.conninfo = conninfo_;
  absl::StatusOr<std::unique_ptr<PostgresStore>> store =
      PostgresStore::Open(options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<Store>(*std::move(store));
}

}  // namespace webhookd::testing
