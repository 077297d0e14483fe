#include "tests/support/fault_env.h"

#include <memory>
#include <utility>

#include "absl/strings/match.h"

namespace webhookd::testing {

class FaultInjectionEnv::File final : public leveldb::WritableFile {
 public:
  File(FaultInjectionEnv& env, std::string name,
       std::unique_ptr<leveldb::WritableFile> file)
      : env_(env), name_(std::move(name)), file_(std::move(file)) {}

  leveldb::Status Append(const leveldb::Slice& data) override {
    leveldb::Status s = env_.Check(name_);
    return s.ok() ? file_->Append(data) : s;
  }
  leveldb::Status Close() override { return file_->Close(); }
  leveldb::Status Flush() override {
    leveldb::Status s = env_.Check(name_);
    return s.ok() ? file_->Flush() : s;
  }
  leveldb::Status Sync() override {
    env_.BeforeSync(name_);
    leveldb::Status s = env_.Check(name_);
    return s.ok() ? file_->Sync() : s;
  }

 private:
  FaultInjectionEnv& env_;
  const std::string name_;
  std::unique_ptr<leveldb::WritableFile> file_;
};

FaultInjectionEnv::FaultInjectionEnv() : EnvWrapper(leveldb::Env::Default()) {}

void FaultInjectionEnv::SetWriteFault(Fault fault) {
  absl::MutexLock lock(&mu_);
  fault_ = fault;
}

void FaultInjectionEnv::HoldSyncs(bool hold) {
  absl::MutexLock lock(&mu_);
  hold_syncs_ = hold;
}

void FaultInjectionEnv::BeforeSync(const std::string& name) {
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](bool* held) { return !*held; }, &hold_syncs_));
  }
  if (absl::EndsWith(name, ".log")) ++log_syncs_;
}

leveldb::Status FaultInjectionEnv::Check(const std::string& what) {
  Fault fault;
  {
    absl::MutexLock lock(&mu_);
    fault = fault_;
  }
  switch (fault) {
    case Fault::kNone:
      return leveldb::Status::OK();
    case Fault::kNoSpace:
      ++injected_;
      return leveldb::Status::IOError(what, "No space left on device");
    case Fault::kIoError:
      ++injected_;
      return leveldb::Status::IOError(what, "Input/output error");
  }
  return leveldb::Status::OK();
}

leveldb::Status FaultInjectionEnv::NewWritableFile(
    const std::string& name, leveldb::WritableFile** result) {
  *result = nullptr;
  if (leveldb::Status s = Check(name); !s.ok()) return s;
  leveldb::WritableFile* file = nullptr;
  leveldb::Status s = target()->NewWritableFile(name, &file);
  if (s.ok()) {
    *result =
        new File(*this, name, std::unique_ptr<leveldb::WritableFile>(file));
  }
  return s;
}

leveldb::Status FaultInjectionEnv::NewAppendableFile(
    const std::string& name, leveldb::WritableFile** result) {
  *result = nullptr;
  if (leveldb::Status s = Check(name); !s.ok()) return s;
  leveldb::WritableFile* file = nullptr;
  leveldb::Status s = target()->NewAppendableFile(name, &file);
  if (s.ok()) {
    *result =
        new File(*this, name, std::unique_ptr<leveldb::WritableFile>(file));
  }
  return s;
}

}  // namespace webhookd::testing
