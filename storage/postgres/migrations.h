// The PostgreSQL schema of webhookd, as numbered migrations applied in
// order at start-up.
//
// Every node runs Migrate() before serving. It takes a transaction-level
// advisory lock first, so nodes starting together apply each migration
// once, one after the other; a node that finds a schema newer than it
// knows refuses to start rather than misread it. A migration that fails
// rolls back entirely and stops the node with its number, name and
// PostgreSQL's message.

#ifndef WEBHOOKD_STORAGE_POSTGRES_MIGRATIONS_H_
#define WEBHOOKD_STORAGE_POSTGRES_MIGRATIONS_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "storage/postgres/pg.h"

namespace webhookd::pg {

struct Migration {
  int version;  // 1, 2, ... with no gaps.
  std::string_view name;
  std::string_view sql;  // Statements, run as one script.
};

// Every migration of this release, oldest first.
absl::Span<const Migration> Migrations();

// Brings the database up to the last of `migrations`, each in its own
// transaction under the advisory lock. FailedPrecondition if the database
// is at a version beyond them; the failing migration's error otherwise.
absl::Status Migrate(Connection& connection,
                     absl::Span<const Migration> migrations = Migrations());

// The version the database is at (0: none applied).
absl::StatusOr<int> SchemaVersion(Connection& connection);

}  // namespace webhookd::pg

#endif  // WEBHOOKD_STORAGE_POSTGRES_MIGRATIONS_H_
