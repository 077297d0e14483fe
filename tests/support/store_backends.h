// The Store backends the conformance suite
// (tests/unit/storage/store_conformance_test.cc) runs every test against.
//
// A StoreBackend holds one test's store. Made before the test, it opens the
// store, empty the first time, and opens the same store again once the test
// has destroyed the previous instance (the tests of what survives a
// reopen); destroyed after the test, it removes the store (a directory, a
// database). What a whole test binary shares, such as a database server the
// binary starts, a backend starts on its first Create and keeps until the
// binary exits.
//
// Adding a backend takes a class like LevelDbBackend and its line in
// AllStoreBackends() (store_backends.cc).

#ifndef WEBHOOKD_TESTS_SUPPORT_STORE_BACKENDS_H_
#define WEBHOOKD_TESTS_SUPPORT_STORE_BACKENDS_H_

#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/store.h"
#include "tests/support/test_dir.h"

namespace webhookd::testing {

// Not thread-safe: a test uses its backend from its main thread (the stores
// it opens are thread-safe, as every Store is).
class StoreBackend {
 public:
  StoreBackend() = default;
  StoreBackend(const StoreBackend&) = delete;
  StoreBackend& operator=(const StoreBackend&) = delete;
  // Removes the store. Every Store that Open returned must be gone.
  virtual ~StoreBackend() = default;

  // The backend's name, as its StoreBackendType has it.
  virtual std::string_view name() const = 0;

  // Opens the store: empty the first time, afterwards with everything
  // written to it before. One instance at a time: the previous one must be
  // destroyed first.
  virtual absl::StatusOr<std::unique_ptr<Store>> Open() = 0;
};

// A registered backend: its name, needed before any backend is made
// (GoogleTest names the tests when the binary starts), and how to make one
// for a test.
struct StoreBackendType {
  // Letters and digits only: it ends the name of each test.
  std::string_view name;
  // A backend with a new, empty store, or why none could be set up.
  absl::StatusOr<std::unique_ptr<StoreBackend>> (*create)();
};

// GoogleTest prints a parameter with this: its name.
void PrintTo(const StoreBackendType& type, std::ostream* os);

// Every registered backend, each once.
std::vector<StoreBackendType> AllStoreBackends();

// A LevelDbStore in a new temporary directory, removed with the backend.
class LevelDbBackend final : public StoreBackend {
 public:
  static constexpr std::string_view kName = "LevelDb";
  static absl::StatusOr<std::unique_ptr<StoreBackend>> Create();

  // StoreBackend
  std::string_view name() const override { return kName; }
  absl::StatusOr<std::unique_ptr<Store>> Open() override;

 private:
  LevelDbBackend() = default;

  TestDir dir_;
};

// A PostgresStore on a new database of the test binary's shared PostgreSQL
// server (SharedPostgresServer), started by the first Create. The database
// is dropped with the backend.
class PostgresBackend final : public StoreBackend {
 public:
  static constexpr std::string_view kName = "Postgres";
  static absl::StatusOr<std::unique_ptr<StoreBackend>> Create();
  ~PostgresBackend() override;

  // StoreBackend
  std::string_view name() const override { return kName; }
  absl::StatusOr<std::unique_ptr<Store>> Open() override;

 private:
  explicit PostgresBackend(std::string database, std::string conninfo)
      : database_(std::move(database)), conninfo_(std::move(conninfo)) {}

  std::string database_;
  std::string conninfo_;
};

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_STORE_BACKENDS_H_
