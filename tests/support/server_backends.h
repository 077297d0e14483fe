// The stores a server test runs on, for tests parameterized over them:
// LevelDB in the test's directory, or a new database of the test binary's
// shared PostgreSQL server.

#ifndef WEBHOOKD_TESTS_SUPPORT_SERVER_BACKENDS_H_
#define WEBHOOKD_TESTS_SUPPORT_SERVER_BACKENDS_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "server/app/webhook_server.h"

namespace webhookd::testing {

enum class ServerBackend { kLevelDb, kPostgres };

// Both backends, for INSTANTIATE_TEST_SUITE_P.
inline auto AllServerBackends() {
  return ::testing::Values(ServerBackend::kLevelDb, ServerBackend::kPostgres);
}

// "LevelDb" or "Postgres": the end of each test's name.
std::string ServerBackendName(
    const ::testing::TestParamInfo<ServerBackend>& info);

// TestServerOptions(data_dir), and on kPostgres a new database of the
// shared server whose name starts with `database_prefix`.
absl::StatusOr<ServerOptions> BackendServerOptions(
    ServerBackend backend, const std::string& data_dir,
    std::string_view database_prefix);

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_SERVER_BACKENDS_H_
