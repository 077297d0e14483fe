// The LevelDB backend beyond the Store contract, which
// store_conformance_test.cc tests for every backend: its key layout, the
// records earlier releases wrote, its options, opening, locking and
// corruption of its directory, write faults and the offline repair.

#include "storage/leveldb/leveldb_store.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leveldb/db.h"
#include "leveldb/env.h"
#include "leveldb/options.h"
#include "server/common/time_util.h"
#include "storage/leveldb/repair.h"
#include "tests/support/fault_env.h"
#include "tests/support/store_test_util.h"
#include "tests/support/test_dir.h"

namespace webhookd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using webhook::v1::DELIVERY_STATUS_FAILED;
using webhook::v1::DELIVERY_STATUS_PENDING;
using webhook::v1::DELIVERY_STATUS_RETRYING;
using webhook::v1::DELIVERY_STATUS_SUCCESS;
using webhookd::testing::Finished;
using webhookd::testing::ForStatus;
using webhookd::testing::Ids;
using webhookd::testing::kBaseMicros;
using webhookd::testing::ListAllDeliveries;
using webhookd::testing::MakeDelivery;
using webhookd::testing::MakeEndpoint;
using webhookd::testing::MakeEvent;
using webhookd::testing::OfThread;
using webhookd::testing::Submit;
using webhookd::testing::SubmitDeliveriesToList;

// Replaces the contents of path with bytes that are no valid LevelDB data.
void OverwriteWithGarbage(const std::filesystem::path& path) {
  const auto size = std::filesystem::file_size(path);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << std::string(size > 64 ? size : 64, '\xa5');
}

std::filesystem::path FindFile(const std::string& dir,
                               const std::string& suffix_or_prefix) {
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(suffix_or_prefix) ||
        name.ends_with(suffix_or_prefix)) {
      return entry.path();
    }
  }
  return {};
}

class LevelDbStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen(const LevelDbStoreOptions& options = {}) {
    store_.reset();
    absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
        LevelDbStore::Open(path_, options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  webhookd::testing::TestDir dir_;
  const std::string path_ = dir_.Sub("db");
  std::unique_ptr<LevelDbStore> store_;
};

// --- Key layout and records of earlier releases
// --------------------------------

// Index keys length-prefix thread ids (keys.h), so that ids holding '/' or
// NUL cannot mix. The domain stores only printable thread ids (its
// ValidateThreadId), so this guards the key layout, not the Store contract.
TEST_F(LevelDbStoreTest, ThreadIdsWithSeparatorBytesDoNotMix) {
  const std::string with_nul("a\0b", 3);
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "a")));
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_2", with_nul)));
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_3", "a/b")));

  absl::StatusOr<EndpointPage> a = store_->ListEndpoints(OfThread("a"), 10, "");
  ASSERT_OK(a);
  EXPECT_THAT(Ids(a->endpoints), ElementsAre("ep_1"));
  absl::StatusOr<EndpointPage> nul =
      store_->ListEndpoints(OfThread(with_nul), 10, "");
  ASSERT_OK(nul);
  EXPECT_THAT(Ids(nul->endpoints), ElementsAre("ep_2"));
}

TEST_F(LevelDbStoreTest, StatsRecordsOfEarlierReleasesReadAndStayReadable) {
  // Queued deliveries, one of them a test.
  Submit(*store_, "evt_0", "thread-a", {"ep_1"}, kBaseMicros);
  Delivery test = MakeDelivery("dlv_test", "evt_test", "ep_1", "", kBaseMicros);
  test.set_test(true);
  ASSERT_OK(store_->InsertEvent(MakeEvent("evt_test", "", {test}), {test}));
  store_.reset();
  const auto open_raw = [this] {
    leveldb::DB* raw = nullptr;
    EXPECT_TRUE(leveldb::DB::Open(leveldb::Options(), path_, &raw).ok());
    return std::unique_ptr<leveldb::DB>(raw);
  };
  {
    // As the release that computed rates in the store wrote it.
    storage::StatsRecord old;
    old.set_total(4);
    old.set_successful(3);
    old.set_failed(1);
    old.set_response_time_ms_sum(100);
    std::unique_ptr<leveldb::DB> raw = open_raw();
    ASSERT_TRUE(
        raw->Put(leveldb::WriteOptions(), "st/ep_1", old.SerializeAsString())
            .ok());
    // Earlier releases kept neither answered nor delivery counts.
    ASSERT_TRUE(
        raw->Delete(leveldb::WriteOptions(), "meta/counts_version").ok());
  }
  Reopen();
  absl::StatusOr<EndpointCounts> counts = store_->GetEndpointCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 4);
  EXPECT_EQ(counts->successes, 3);
  EXPECT_EQ(counts->response_time_ms_sum, 100);
  // Every earlier attempt added its time; the queued delivery is in
  // progress, the test one is not counted.
  EXPECT_EQ(counts->answered, 4);
  EXPECT_EQ(counts->deliveries_in_progress, 1);
  EXPECT_EQ(counts->deliveries_succeeded, 0);
  // Set up once: a second open changes nothing.
  Reopen();
  counts = store_->GetEndpointCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->answered, 4);
  EXPECT_EQ(counts->deliveries_in_progress, 1);

  std::vector<Delivery> deliveries =
      Submit(*store_, "evt_1", "thread-a", {"ep_1"}, kBaseMicros);
  ASSERT_OK(store_->UpdateDeliveries({Finished(deliveries[0], 500, 20)},
                                     Durability::kSynced));
  store_.reset();

  // An earlier release reading it back finds every field it read.
  std::string value;
  ASSERT_TRUE(open_raw()->Get(leveldb::ReadOptions(), "st/ep_1", &value).ok());
  storage::StatsRecord now;
  ASSERT_TRUE(now.ParseFromString(value));
  EXPECT_EQ(now.total(), 5);
  EXPECT_EQ(now.successful(), 3);
  EXPECT_EQ(now.failed(), 2);
  EXPECT_EQ(now.response_time_ms_sum(), 120);
}

// --- Listing deliveries
// -----------------------------------------------------------

// The deliveries of the conformance suite's ListDeliveriesTest.
class ListDeliveriesTest : public LevelDbStoreTest {
 protected:
  void SetUp() override {
    LevelDbStoreTest::SetUp();
    if (HasFatalFailure()) return;
    SubmitDeliveriesToList(*store_);
  }
};

TEST_F(ListDeliveriesTest, BoundsTheRowsOneCallExamines) {
  absl::StatusOr<Delivery> oldest = store_->GetDelivery("dlv_e1_ep_2");
  ASSERT_OK(oldest);
  ASSERT_OK(store_->UpdateDeliveries({Finished(*oldest, 200, 1)},
                                     Durability::kSynced));
  LevelDbStoreOptions options;
  options.max_scan_per_list = 2;
  Reopen(options);

  // Only the oldest of five rows matches: the first call examines two rows,
  // finds nothing and hands back a token that continues the scan.
  absl::StatusOr<DeliveryPage> first =
      store_->ListDeliveries(ForStatus(DELIVERY_STATUS_SUCCESS), 10, "");
  ASSERT_OK(first);
  EXPECT_THAT(first->deliveries, IsEmpty());
  EXPECT_FALSE(first->next_page_token.empty());
  EXPECT_THAT(
      ListAllDeliveries(*store_, ForStatus(DELIVERY_STATUS_SUCCESS), 10),
      ElementsAre("dlv_e1_ep_2"));
}

// --- Durability and opening
// ----------------------------------------------------------

TEST_F(LevelDbStoreTest, OpenCreatesMissingDirectories) {
  const std::string nested = dir_.Sub("a/b/c");
  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(nested);
  ASSERT_OK(store);
  EXPECT_TRUE(std::filesystem::exists(nested + "/CURRENT"));
}

TEST_F(LevelDbStoreTest, SecondOpenOfSameDirectoryFailsWithFailedPrecondition) {
  absl::StatusOr<std::unique_ptr<LevelDbStore>> second =
      LevelDbStore::Open(path_);
  ASSERT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition)
      << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("in use"));
  EXPECT_THAT(second.status().message(), HasSubstr("lock"));
  EXPECT_THAT(second.status().message(), HasSubstr(path_));
  // The first store is unaffected.
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
}

TEST_F(LevelDbStoreTest, OpenOfDirectoryLockedByAnotherProcessFails) {
  store_.reset();
  // A child process holds the LOCK file's POSIX lock, as a running webhookd
  // would.
  int ready[2];
  int release[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(release), 0);
  const std::string lock_path = path_ + "/LOCK";
  const pid_t child = fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    alarm(60);  // Never outlive a parent that failed to release us.
    close(ready[0]);
    close(release[1]);
    int fd = open(lock_path.c_str(), O_RDWR | O_CREAT, 0644);
    struct flock lock = {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    char ok = (fd >= 0 && fcntl(fd, F_SETLK, &lock) == 0) ? '1' : '0';
    (void)!write(ready[1], &ok, 1);
    char ignored;
    (void)!read(release[0], &ignored, 1);  // Until the parent is done.
    _exit(0);
  }
  close(ready[1]);
  close(release[0]);
  char locked = '0';
  EXPECT_EQ(read(ready[0], &locked, 1), 1);
  EXPECT_EQ(locked, '1');

  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(path_);

  const char done = 'x';
  EXPECT_EQ(write(release[1], &done, 1), 1);
  close(release[1]);
  int wait_status = 0;
  EXPECT_EQ(waitpid(child, &wait_status, 0), child);
  close(ready[0]);
  ASSERT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition)
      << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("another webhookd process"));
  // Once the other process is gone, the directory opens.
  Reopen();
}

TEST_F(LevelDbStoreTest, OpenWithCorruptedCurrentFileReturnsDataLoss) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  store_.reset();
  OverwriteWithGarbage(path_ + "/CURRENT");

  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("corrupt"));
}

TEST_F(LevelDbStoreTest, OpenWithCorruptedManifestReturnsDataLoss) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  store_.reset();
  const std::filesystem::path manifest = FindFile(path_, "MANIFEST-");
  ASSERT_FALSE(manifest.empty());
  OverwriteWithGarbage(manifest);

  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("corrupt"));
}

TEST_F(LevelDbStoreTest, OpenWithBitFlipInLogReturnsDataLoss) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  store_.reset();
  const std::filesystem::path log = FindFile(path_, ".log");
  ASSERT_FALSE(log.empty());
  ASSERT_GT(std::filesystem::file_size(log), 40u);
  {
    // Inside the payload of the first record (after its 7-byte header), so
    // its checksum no longer matches.
    std::fstream file(log, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(20);
    char byte = 0;
    file.get(byte);
    file.seekp(20);
    file.put(static_cast<char>(byte ^ 0x40));
  }

  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
}

TEST_F(LevelDbStoreTest, ReadOfCorruptedTableReturnsDataLoss) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  // Reopening moves the log into a table file.
  Reopen();
  store_.reset();
  const std::filesystem::path table = FindFile(path_, ".ldb");
  ASSERT_FALSE(table.empty());
  OverwriteWithGarbage(table);

  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(path_);
  absl::Status status = store.status();
  if (store.ok()) status = (*store)->GetEndpoint("ep_1").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(status.message(), HasSubstr("orrupt"));
}

TEST_F(LevelDbStoreTest, OpenOfUnknownSchemaVersionFails) {
  store_.reset();
  {
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(leveldb::Options(), path_, &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    ASSERT_TRUE(
        db->Put(leveldb::WriteOptions(), "meta/schema_version", "99").ok());
  }
  absl::StatusOr<std::unique_ptr<LevelDbStore>> store =
      LevelDbStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition)
      << store.status();
}

// Fails Sync of every file once armed, as a full or failing disk would.
class FailingSyncEnv : public leveldb::EnvWrapper {
 public:
  FailingSyncEnv() : EnvWrapper(leveldb::Env::Default()) {}

  void FailSyncs() { fail_syncs_ = true; }

  leveldb::Status NewWritableFile(const std::string& name,
                                  leveldb::WritableFile** result) override {
    leveldb::WritableFile* file = nullptr;
    leveldb::Status s = target()->NewWritableFile(name, &file);
    if (s.ok())
      *result =
          new File(std::unique_ptr<leveldb::WritableFile>(file), fail_syncs_);
    return s;
  }

 private:
  class File : public leveldb::WritableFile {
   public:
    File(std::unique_ptr<leveldb::WritableFile> file,
         const std::atomic<bool>& fail_syncs)
        : file_(std::move(file)), fail_syncs_(fail_syncs) {}
    leveldb::Status Append(const leveldb::Slice& data) override {
      return file_->Append(data);
    }
    leveldb::Status Close() override { return file_->Close(); }
    leveldb::Status Flush() override { return file_->Flush(); }
    leveldb::Status Sync() override {
      if (fail_syncs_) return leveldb::Status::IOError("injected sync failure");
      return file_->Sync();
    }

   private:
    std::unique_ptr<leveldb::WritableFile> file_;
    const std::atomic<bool>& fail_syncs_;
  };

  std::atomic<bool> fail_syncs_ = false;
};

TEST_F(LevelDbStoreTest, FailedSyncReturnsUnavailable) {
  store_.reset();
  FailingSyncEnv env;
  LevelDbStoreOptions options;
  options.env = &env;
  Reopen(options);
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));

  env.FailSyncs();
  absl::Status status = store_->PutEndpoint(MakeEndpoint("ep_2", "thread-a"));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("injected sync failure"));
  store_.reset();  // Before env goes away.
}

// --- Write faults
// --------------------------------------------------------------

using webhookd::testing::FaultInjectionEnv;

class LevelDbStoreFaultTest : public LevelDbStoreTest {
 protected:
  void SetUp() override {
    options_.env = &env_;
    Reopen(options_);
  }
  void TearDown() override { store_.reset(); }  // Before env_ goes away.

  FaultInjectionEnv env_;
  LevelDbStoreOptions options_;
};

TEST_F(LevelDbStoreFaultTest, FullDiskFailsWritesWithUnavailable) {
  env_.SetWriteFault(FaultInjectionEnv::Fault::kNoSpace);

  Delivery delivery =
      MakeDelivery("dlv_1", "ev_1", "ep_1", "thread-a", kBaseMicros);
  absl::Status status = store_->InsertEvent(
      MakeEvent("ev_1", "thread-a", {delivery}), {delivery});

  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("No space left on device"));
  // And every write after it, until the disk works again.
  status = store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a"));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_GT(env_.injected_failures(), 0);
}

TEST_F(LevelDbStoreFaultTest, WritesWorkAgainOnceTheDiskRecovers) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  env_.SetWriteFault(FaultInjectionEnv::Fault::kIoError);
  EXPECT_EQ(store_->PutEndpoint(MakeEndpoint("ep_2", "thread-a")).code(),
            absl::StatusCode::kUnavailable);
  // Reads may fail while the database cannot be reopened, but never crash.
  (void)store_->GetEndpoint("ep_1");

  env_.SetWriteFault(FaultInjectionEnv::Fault::kNone);

  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_3", "thread-a")));
  ASSERT_OK(store_->GetEndpoint("ep_1"));
  ASSERT_OK(store_->GetEndpoint("ep_3"));
  EXPECT_EQ(store_->GetEndpoint("ep_2").status().code(),
            absl::StatusCode::kNotFound);
  // What was written after the fault survives a restart: the log is intact
  // and passes the paranoid checks.
  Reopen(options_);
  ASSERT_OK(store_->GetEndpoint("ep_1"));
  ASSERT_OK(store_->GetEndpoint("ep_3"));
}

TEST_F(LevelDbStoreFaultTest, FailedBufferedWriteIsRetriableAfterRecovery) {
  std::vector<Delivery> deliveries =
      Submit(*store_, "ev_1", "thread-a", {"ep_1"}, kBaseMicros);
  env_.SetWriteFault(FaultInjectionEnv::Fault::kNoSpace);
  EXPECT_EQ(store_
                ->UpdateDeliveries({Finished(deliveries[0], 200, 5)},
                                   Durability::kBuffered)
                .code(),
            absl::StatusCode::kUnavailable);
  env_.SetWriteFault(FaultInjectionEnv::Fault::kNone);

  ASSERT_OK(store_->UpdateDeliveries({Finished(deliveries[0], 200, 5)},
                                     Durability::kBuffered));

  absl::StatusOr<Delivery> delivery = store_->GetDelivery(deliveries[0].id());
  ASSERT_OK(delivery);
  EXPECT_EQ(delivery->status(), DELIVERY_STATUS_SUCCESS);
  absl::StatusOr<EndpointCounts> counts = store_->GetEndpointCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->attempts, 1) << "the failed write counted none";
}

// --- Repair
// ---------------------------------------------------------------------

// Rules like the domain's (server/delivery/retry_policy.h), which the
// storage tests do not link.
RepairRules DomainRules() {
  RepairRules rules;
  rules.next_due = [](const Delivery& delivery) -> std::optional<absl::Time> {
    if (delivery.status() != DELIVERY_STATUS_PENDING &&
        delivery.status() != DELIVERY_STATUS_RETRYING) {
      return std::nullopt;
    }
    return FromProtoTime(delivery.next_attempt_time());
  };
  rules.end = [](Delivery delivery, const std::string& why) {
    delivery.set_status(DELIVERY_STATUS_FAILED);
    delivery.set_last_error(why);
    delivery.clear_next_attempt_time();
    return delivery;
  };
  return rules;
}

TEST_F(LevelDbStoreTest, RepairSalvagesCorruptedLogAndReportsLosses) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  for (int i = 0; i < 20; ++i) {
    Submit(*store_, absl::StrCat("ev_", i), "thread-a", {"ep_1"},
           kBaseMicros + i);
  }
  store_.reset();
  const std::filesystem::path log = FindFile(path_, ".log");
  ASSERT_FALSE(log.empty());
  {
    // Damage the middle of the log: the records there are lost.
    const auto size = std::filesystem::file_size(log);
    std::fstream file(log, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(size / 2));
    file << std::string(64, '\x5a');
  }
  ASSERT_EQ(LevelDbStore::Open(path_).status().code(),
            absl::StatusCode::kDataLoss);

  absl::StatusOr<RepairReport> report =
      RepairLevelDbStore(path_, DomainRules());

  ASSERT_OK(report);
  EXPECT_FALSE(report->readable_before);
  EXPECT_THAT(report->error_before, HasSubstr("corrupt"));
  EXPECT_GT(report->deliveries_after, 0u);
  EXPECT_LT(report->deliveries_after, 20u);
  const std::string text = report->ToString();
  // LevelDB's own account names the damaged record it skipped.
  EXPECT_THAT(text, HasSubstr("ignoring Corruption"));
  EXPECT_THAT(text, HasSubstr("After the repair"));
  // The repaired database opens with paranoid checks and lists cleanly.
  Reopen();
  ASSERT_OK(store_->GetEndpoint("ep_1"));
  absl::StatusOr<DeliveryPage> page =
      store_->ListDeliveries(DeliveryFilter(), 1000, "");
  ASSERT_OK(page);
  EXPECT_EQ(page->deliveries.size(), report->deliveries_after);
  for (const Delivery& delivery : page->deliveries) {
    ASSERT_OK(store_->GetDelivery(delivery.id()));
  }
}

TEST_F(LevelDbStoreTest, RepairFixesRecordsLeftPointingAtLostOnes) {
  std::vector<Delivery> no_event =
      Submit(*store_, "ev_1", "thread-a", {"ep_1"}, kBaseMicros);
  std::vector<Delivery> lost =
      Submit(*store_, "ev_2", "thread-a", {"ep_1"}, kBaseMicros);
  store_.reset();
  {
    // As if LevelDB's repair had dropped these two records.
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(leveldb::Options(), path_, &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    ASSERT_TRUE(db->Delete(leveldb::WriteOptions(), "ev/ev_1").ok());
    ASSERT_TRUE(db->Delete(leveldb::WriteOptions(), "d/" + lost[0].id()).ok());
  }

  absl::StatusOr<RepairReport> report =
      RepairLevelDbStore(path_, DomainRules());

  ASSERT_OK(report);
  EXPECT_EQ(report->deliveries_without_event, 1u);
  EXPECT_EQ(report->dangling_index_entries, 3u);  // dl/, dle/ and dlt/.
  EXPECT_EQ(report->dangling_queue_entries, 1u);
  EXPECT_EQ(report->events_with_lost_payload, 1u);
  EXPECT_EQ(report->deliveries_with_lost_payload, 1u);
  EXPECT_THAT(report->ToString(),
              HasSubstr("1 queued deliveries whose event was lost"));
  EXPECT_THAT(report->ToString(),
              HasSubstr("1 events lost their payload; their 1 deliveries "
                        "were kept and cannot be retried"));
  Reopen();
  absl::StatusOr<DeliveryPage> page =
      store_->ListDeliveries(DeliveryFilter(), 10, "");
  ASSERT_OK(page);
  ASSERT_THAT(page->deliveries, SizeIs(1));
  EXPECT_EQ(page->deliveries[0].id(), no_event[0].id());
  EXPECT_EQ(page->deliveries[0].status(), DELIVERY_STATUS_FAILED);
  EXPECT_THAT(page->deliveries[0].last_error(),
              HasSubstr("lost in a database repair"));
  absl::StatusOr<std::vector<QueuedDelivery>> queue = store_->LoadQueue();
  ASSERT_OK(queue);
  EXPECT_THAT(*queue, IsEmpty());
  // Neither delivery is in progress any more: counted again from the queue.
  absl::StatusOr<EndpointCounts> counts = store_->GetEndpointCounts("ep_1");
  ASSERT_OK(counts);
  EXPECT_EQ(counts->deliveries_in_progress, 0);
  // The delivery whose event was lost can be read again, without payload,
  // behind a placeholder event.
  absl::StatusOr<Delivery> delivery = store_->GetDelivery(no_event[0].id());
  ASSERT_OK(delivery);
  EXPECT_EQ(delivery->status(), DELIVERY_STATUS_FAILED);
  EXPECT_EQ(delivery->payload(), "");
  absl::StatusOr<EventRecord> placeholder = store_->GetEvent("ev_1");
  ASSERT_OK(placeholder);
  EXPECT_TRUE(placeholder->payload_lost());
  EXPECT_EQ(placeholder->payload(), "");
  EXPECT_EQ(placeholder->thread_id(), "thread-a");
  EXPECT_EQ(placeholder->user_id(), no_event[0].user_id());
  EXPECT_EQ(placeholder->event_type(), no_event[0].event_type());
  EXPECT_EQ(placeholder->create_time_unix_micros(), kBaseMicros);
  EXPECT_THAT(placeholder->delivery_ids(), ElementsAre(no_event[0].id()));
  absl::StatusOr<EventRecord> kept = store_->GetEvent("ev_2");
  ASSERT_OK(kept);
  EXPECT_FALSE(kept->payload_lost());
}

TEST_F(LevelDbStoreTest, RepairKeepsFinishedDeliveriesOfALostEventReadable) {
  // Both deliveries of ev_1 were attempted before the event was lost: one
  // succeeded, one awaits a retry (which the repair ends). Without their
  // event neither could be read.
  std::vector<Delivery> deliveries =
      Submit(*store_, "ev_1", "thread-a", {"ep_1", "ep_2"}, kBaseMicros + 5);
  ASSERT_OK(store_->UpdateDeliveries(
      {Finished(deliveries[0], 200, 5), Finished(deliveries[1], 500, 5)},
      Durability::kSynced));
  Submit(*store_, "ev_2", "thread-a", {"ep_1"}, kBaseMicros + 6);
  store_.reset();
  {
    // As if LevelDB's repair had dropped the event.
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(leveldb::Options(), path_, &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    ASSERT_TRUE(db->Delete(leveldb::WriteOptions(), "ev/ev_1").ok());
  }

  absl::StatusOr<RepairReport> report =
      RepairLevelDbStore(path_, DomainRules());

  ASSERT_OK(report);
  EXPECT_EQ(report->deliveries_without_event, 1u);
  EXPECT_EQ(report->events_with_lost_payload, 1u);
  EXPECT_EQ(report->deliveries_with_lost_payload, 2u);
  EXPECT_EQ(report->events_after, 2u);
  EXPECT_THAT(report->ToString(),
              HasSubstr("1 events lost their payload; their 2 deliveries "
                        "were kept and cannot be retried"));
  Reopen();
  for (const Delivery& before : deliveries) {
    absl::StatusOr<Delivery> delivery = store_->GetDelivery(before.id());
    ASSERT_OK(delivery);
    EXPECT_EQ(delivery->payload(), "");
    EXPECT_EQ(delivery->attempts(), 1);
  }
  EXPECT_EQ(store_->GetDelivery(deliveries[0].id())->status(),
            DELIVERY_STATUS_SUCCESS);
  EXPECT_EQ(store_->GetDelivery(deliveries[1].id())->status(),
            DELIVERY_STATUS_FAILED);
  absl::StatusOr<EventRecord> placeholder = store_->GetEvent("ev_1");
  ASSERT_OK(placeholder);
  EXPECT_TRUE(placeholder->payload_lost());
  EXPECT_EQ(placeholder->create_time_unix_micros(), kBaseMicros + 5);
  EXPECT_THAT(placeholder->delivery_ids(),
              ElementsAre(deliveries[0].id(), deliveries[1].id()));
  // A second repair finds nothing more to fix.
  store_.reset();
  absl::StatusOr<RepairReport> again = RepairLevelDbStore(path_, DomainRules());
  ASSERT_OK(again);
  EXPECT_EQ(again->events_with_lost_payload, 0u);
  EXPECT_THAT(again->ToString(), HasSubstr("nothing that webhookd can tell"));
}

TEST_F(LevelDbStoreTest, RepairOfHealthyDatabaseLosesNothing) {
  ASSERT_OK(store_->PutEndpoint(MakeEndpoint("ep_1", "thread-a")));
  Submit(*store_, "ev_1", "thread-a", {"ep_1"}, kBaseMicros);
  store_.reset();

  absl::StatusOr<RepairReport> report =
      RepairLevelDbStore(path_, DomainRules());

  ASSERT_OK(report);
  EXPECT_TRUE(report->readable_before);
  EXPECT_EQ(report->endpoints_before, 1u);
  EXPECT_EQ(report->endpoints_after, 1u);
  EXPECT_EQ(report->deliveries_before, 1u);
  EXPECT_EQ(report->deliveries_after, 1u);
  EXPECT_EQ(report->queued_after, 1u);
  EXPECT_THAT(report->ToString(), HasSubstr("nothing that webhookd can tell"));
}

TEST_F(LevelDbStoreTest, RepairRequeuesWhatTheRulesSayAwaitsAnAttempt) {
  std::vector<Delivery> deliveries =
      Submit(*store_, "ev_1", "thread-a", {"ep_1", "ep_2"}, kBaseMicros);
  store_.reset();
  {
    // As if LevelDB's repair had dropped both queue entries.
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(leveldb::Options(), path_, &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    for (const Delivery& delivery : deliveries) {
      ASSERT_TRUE(
          db->Delete(leveldb::WriteOptions(), "q/" + delivery.id()).ok());
    }
  }
  // Both are PENDING; the rules say only the first awaits an attempt.
  const std::string first = deliveries[0].id();
  const absl::Time due = absl::FromUnixMicros(kBaseMicros + 42);
  RepairRules rules = DomainRules();
  rules.next_due = [&](const Delivery& delivery) -> std::optional<absl::Time> {
    if (delivery.id() == first) return due;
    return std::nullopt;
  };

  absl::StatusOr<RepairReport> report = RepairLevelDbStore(path_, rules);

  ASSERT_OK(report);
  EXPECT_EQ(report->requeued_deliveries, 1u);
  Reopen();
  absl::StatusOr<std::vector<QueuedDelivery>> queue = store_->LoadQueue();
  ASSERT_OK(queue);
  ASSERT_THAT(*queue, SizeIs(1));
  EXPECT_EQ((*queue)[0].delivery_id, first);
  EXPECT_EQ((*queue)[0].due, due);
}

TEST_F(LevelDbStoreTest, RepairWithoutRulesIsInvalidArgument) {
  store_.reset();
  EXPECT_EQ(RepairLevelDbStore(path_, RepairRules()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LevelDbStoreTest, RepairRefusesADatabaseInUse) {
  absl::StatusOr<RepairReport> report =
      RepairLevelDbStore(path_, DomainRules());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kFailedPrecondition)
      << report.status();
}

}  // namespace
}  // namespace webhookd
