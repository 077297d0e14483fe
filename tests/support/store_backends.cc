#include "tests/support/store_backends.h"

#include <utility>

#include "storage/leveldb/leveldb_store.h"

namespace webhookd::testing {

void PrintTo(const StoreBackendType& type, std::ostream* os) {
  *os << type.name;
}

std::vector<StoreBackendType> AllStoreBackends() {
  return {
      {LevelDbBackend::kName, &LevelDbBackend::Create},
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

}  // namespace webhookd::testing
