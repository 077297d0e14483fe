// PostgresStore: the Store kept in a PostgreSQL database, so that several
// webhookd nodes can share one (webhookd --postgres=<connection string>).
// Its schema is in migrations.h, applied when the store opens.
//
// Durability is PostgreSQL's: a synced write returns once the commit is in
// the server's write-ahead log on disk (synchronous_commit as configured on
// the server, "on" by default); a buffered one (Durability::kBuffered) does
// not wait for that flush. With the database unreachable every call
// returns Unavailable, and the store connects again by itself on the next
// call once the database is back.

#ifndef WEBHOOKD_STORAGE_POSTGRES_POSTGRES_STORE_H_
#define WEBHOOKD_STORAGE_POSTGRES_POSTGRES_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "storage/postgres/pg.h"
#include "storage/store.h"

namespace webhookd {

class FeedListener;

struct PostgresStoreOptions {
  // A libpq connection string: "host=db.internal dbname=webhookd user=..."
  // or "postgresql://user@host/dbname". Passwords are best kept out of it
  // (PGPASSWORD or ~/.pgpass).
  std::string conninfo;
  // Connections the store opens at most; calls beyond wait for one.
  int max_connections = 8;
};

class PostgresStore : public Store, public SharedQueue {
 public:
  // Connects, then creates or upgrades the schema (migrations.h).
  // Unavailable if the database cannot be reached; FailedPrecondition if its
  // schema is newer than this release or a migration fails.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(
      const PostgresStoreOptions& options);
  // Stops the watch, if any.
  ~PostgresStore() override;

  absl::Status PutEndpoint(const Endpoint& endpoint) override;
  absl::StatusOr<Endpoint> GetEndpoint(std::string_view id) override;
  absl::StatusOr<EndpointPage> ListEndpoints(
      const EndpointFilter& filter, int page_size,
      std::string_view page_token) override;
  absl::StatusOr<std::vector<Endpoint>> LoadEndpoints() override;
  absl::Status DeleteEndpoint(
      std::string_view id, absl::Span<const DeliveryChange> changes) override;
  absl::Status InsertEvents(absl::Span<const NewEvent> events) override;
  absl::Status AddDeliveries(absl::Span<const Delivery> deliveries,
                             absl::Span<const DeliveryChange> changes) override;
  absl::StatusOr<Submission> FindSubmission(
      int64_t user_id, std::string_view idempotency_key) override;
  absl::StatusOr<EventRecord> GetEvent(std::string_view id) override;
  absl::StatusOr<Delivery> GetDelivery(std::string_view id) override;
  absl::StatusOr<DeliveryPage> ListDeliveries(
      const DeliveryFilter& filter, int page_size,
      std::string_view page_token) override;
  absl::Status UpdateDeliveries(absl::Span<const DeliveryChange> changes,
                                Durability durability) override;
  absl::Status ScanQueue(
      const std::function<void(const QueuedDelivery&)>& visit) override;
  absl::StatusOr<EndpointCounts> GetEndpointCounts(
      std::string_view endpoint_id) override;
  absl::StatusOr<FailureStreak> GetFailureStreak(
      std::string_view endpoint_id) override;
  absl::Status ResetFailureStreak(std::string_view endpoint_id) override;
  absl::StatusOr<PruneResult> PruneBefore(absl::Time cutoff,
                                          absl::Time idempotency_cutoff,
                                          size_t max_records) override;
  absl::Status Compact() override;
  absl::StatusOr<std::string> SettingOrInsert(std::string_view name,
                                              std::string_view value) override;
  SharedQueue* shared_queue() override { return this; }

  // SharedQueue, as this node (node_id()). The watch (cluster_feed.h) has
  // a connection of its own, besides max_connections; a watcher must not
  // call Watch or StopWatching from its callbacks.
  absl::StatusOr<std::vector<Claim>> ClaimDue(absl::Time now,
                                              absl::Duration lease,
                                              size_t max) override;
  absl::StatusOr<absl::Time> RenewClaims(absl::Span<const int64_t> tokens,
                                         absl::Duration lease) override;
  absl::Status ReleaseClaims(absl::Span<const Claim> claims) override;
  absl::StatusOr<std::vector<std::string>> UpdateClaimed(
      absl::Span<const DeliveryChange> changes,
      absl::Span<const int64_t> tokens, Durability durability) override;
  absl::StatusOr<std::vector<Claim>> InsertClaimed(
      absl::Span<const NewEvent> events, absl::Duration lease,
      size_t max_claims) override;
  absl::StatusOr<Claim> ClaimOne(std::string_view delivery_id,
                                 absl::Duration lease) override;
  absl::StatusOr<std::vector<QueuedDelivery>> QueuedOf(
      std::string_view endpoint_id) override;
  absl::Status Watch(ClusterWatcher* watcher) override;
  void StopWatching() override;

  // This node's name in claims: new for every store opened.
  const std::string& node_id() const { return node_id_; }

 private:
  explicit PostgresStore(const PostgresStoreOptions& options);

  // Runs the statements in one transaction, again if PostgreSQL aborted it
  // for a deadlock or serialization failure (a few times at most).
  absl::StatusOr<std::vector<pg::Result>> Transaction(
      absl::Span<const pg::Statement> statements, bool synced = true);

  const std::string node_id_;
  const std::string conninfo_;
  pg::Pool pool_;

  // Held while the watch starts or stops (and its thread is joined).
  absl::Mutex watch_mu_;
  std::unique_ptr<FeedListener> listener_ ABSL_GUARDED_BY(watch_mu_);
};

}  // namespace webhookd

#endif  // WEBHOOKD_STORAGE_POSTGRES_POSTGRES_STORE_H_
