// A LevelDB Env that fails writes on demand, as a full or failing disk
// would, for tests of storage faults (compare leveldb's SpecialEnv in
// db/db_test.cc).

#ifndef WEBHOOKD_TESTS_SUPPORT_FAULT_ENV_H_
#define WEBHOOKD_TESTS_SUPPORT_FAULT_ENV_H_

#include <atomic>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "leveldb/env.h"
#include "leveldb/status.h"

namespace webhookd::testing {

// Thread-safe. Wraps Env::Default(); reads are never failed.
class FaultInjectionEnv final : public leveldb::EnvWrapper {
 public:
  enum class Fault {
    kNone,
    kNoSpace,  // ENOSPC: "No space left on device".
    kIoError,  // EIO: "Input/output error".
  };

  FaultInjectionEnv();

  // From now on every write fails with `fault` (kNone: none does): creating
  // a file for writing, and Append, Flush and Sync of any file written to,
  // including files opened before. A failed Append or Flush writes nothing.
  void SetWriteFault(Fault fault);

  // Writes failed since construction.
  int injected_failures() const { return injected_.load(); }

  // While held, Sync() of every file blocks until released, as on a very
  // slow disk, so that tests can make synced writes pile up.
  void HoldSyncs(bool hold);

  // Sync() calls of LevelDB log files (the synced writes) since
  // construction.
  int log_syncs() const { return log_syncs_.load(); }

  // leveldb::Env
  leveldb::Status NewWritableFile(const std::string& name,
                                  leveldb::WritableFile** result) override;
  leveldb::Status NewAppendableFile(const std::string& name,
                                    leveldb::WritableFile** result) override;

 private:
  class File;

  // The failure to inject now, or OK.
  leveldb::Status Check(const std::string& what);

  // Blocks while syncs are held, then counts the sync.
  void BeforeSync(const std::string& name);

  std::atomic<int> injected_{0};
  std::atomic<int> log_syncs_{0};
  mutable absl::Mutex mu_;
  Fault fault_ ABSL_GUARDED_BY(mu_) = Fault::kNone;
  bool hold_syncs_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_FAULT_ENV_H_
