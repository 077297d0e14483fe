#include "tests/support/server_backends.h"

#include "tests/support/postgres_server.h"
#include "tests/support/test_server.h"

namespace webhookd::testing {

std::string ServerBackendName(
    const ::testing::TestParamInfo<ServerBackend>& info) {
  return info.param == ServerBackend::kLevelDb ? "LevelDb" : "Postgres";
}

absl::StatusOr<ServerOptions> BackendServerOptions(
    ServerBackend backend, const std::string& data_dir,
    std::string_view database_prefix) {
  ServerOptions options = TestServerOptions(data_dir);
  if (backend == ServerBackend::kPostgres) {
    absl::StatusOr<std::string> conninfo = NewSharedDatabase(database_prefix);
    if (!conninfo.ok()) return conninfo.status();
    options.postgres = *std::move(conninfo);
  }
  return options;
}

}  // namespace webhookd::testing
