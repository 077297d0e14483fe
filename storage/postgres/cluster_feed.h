// The cluster feed: how the nodes sharing a PostgreSQL database learn of
// one another's writes (SharedQueue::Watch), by NOTIFY on one channel.
//
// A write that the other nodes must learn of sends its reports with
// pg_notify inside its own transaction: PostgreSQL delivers them on commit,
// in commit order, and never for a write rolled back. A report is a text
// payload that starts with the writer's node id, so that a node skips its
// own:
//
//   <node_id> E <endpoint_id>        the endpoint was created, replaced or
//                                    deleted
//   <node_id> D <item> <item> ...    deliveries were written
//   <node_id> Q <item> <item> ...    the same, and some of them are queued
//
// An item is the base64 of the delivery's record (webhook.v1.Delivery
// without payload, the bytes the deliveries table keeps), or "!" and the
// base64 of its id when the record would not fit in one payload: the
// reader then reads the record from the table. PostgreSQL refuses payloads
// of 8000 bytes or more; the reports of one transaction are packed into
// payloads of up to kMaxFeedPayloadBytes, so that a write sends one NOTIFY
// per ~7.5 KB of records rather than one per delivery.

#ifndef WEBHOOKD_STORAGE_POSTGRES_CLUSTER_FEED_H_
#define WEBHOOKD_STORAGE_POSTGRES_CLUSTER_FEED_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "storage/postgres/pg.h"
#include "storage/store.h"

namespace webhookd {

// The channel every report goes to (a literal in the SQL that sends them).
inline constexpr std::string_view kFeedChannel = "webhookd";
// The largest payload sent, under PostgreSQL's 8000-byte limit.
inline constexpr size_t kMaxFeedPayloadBytes = 7500;

// The statement reporting that node `node_id` changed an endpoint.
pg::Statement NotifyEndpointChanged(std::string_view node_id,
                                    std::string_view endpoint_id);

// The reports of the delivery writes of one transaction, packed into as few
// payloads as fit.
class DeliveryReports {
 public:
  explicit DeliveryReports(std::string_view node_id);

  // A delivery written with `record` (without payload); `queued` if the
  // write queued it.
  void Add(std::string_view delivery_id, std::string_view record, bool queued);
  bool empty() const { return items_.empty(); }

  // The payloads reporting every delivery added, in the order added.
  std::vector<std::string> Payloads() const;
  // The statements sending Payloads().
  std::vector<pg::Statement> Notifies() const;
  // For UpdateClaimed, whose updates are fenced: the statements reporting
  // only the deliveries whose update was made, which are those that carry
  // tokens[i] (the i-th added's) as their claim_token once the updates ran
  // earlier in the same transaction.
  std::vector<pg::Statement> FencedNotifies(
      absl::Span<const int64_t> tokens) const;

 private:
  // The deliveries added (by their index), in groups whose payload
  // (prefix, kind and " <item>" each) fits in kMaxFeedPayloadBytes, in the
  // order they were added.
  std::vector<std::vector<size_t>> Batches() const;

  // "<node_id> ", with which every payload starts.
  const std::string prefix_;
  std::vector<std::string> ids_;
  std::vector<std::string> items_;
  std::vector<bool> queued_;
};

// One report, as read from a payload.
struct FeedReport {
  std::string node_id;  // The writer.
  enum class Kind { kEndpoint, kDeliveries } kind = Kind::kEndpoint;
  std::string endpoint_id;  // kEndpoint.
  // kDeliveries, in the order written. Those sent by id alone hold only
  // their id; their indexes are in `unread`.
  std::vector<Delivery> deliveries;
  std::vector<size_t> unread;
  bool queued = false;  // kDeliveries: some of them were queued.
};

// InvalidArgument if `payload` is not a report.
absl::StatusOr<FeedReport> ParseFeedReport(std::string_view payload);

// Listens to the feed on a connection of its own, from a thread of its
// own, and reports the other nodes' writes to a watcher. Reconnects with a
// backoff (100 ms doubling to 2 s) until stopped, calling Resync once
// LISTEN is in place, first and after every reconnect.
class FeedListener {
 public:
  // Reads a delivery's record (for items sent by id); NotFound if it is
  // gone.
  using DeliveryReader =
      std::function<absl::StatusOr<Delivery>(std::string_view id)>;

  // Starts listening. `watcher` must outlive the listener.
  static absl::StatusOr<std::unique_ptr<FeedListener>> Start(
      std::string conninfo, std::string node_id, ClusterWatcher* watcher,
      DeliveryReader read_delivery);
  FeedListener(const FeedListener&) = delete;
  FeedListener& operator=(const FeedListener&) = delete;
  // Wakes the thread (blocked on its connection or in a backoff) and joins
  // it. A connection attempt under way is waited for.
  ~FeedListener();

 private:
  FeedListener(std::string conninfo, std::string node_id,
               ClusterWatcher* watcher, DeliveryReader read_delivery,
               int wake_fd);
  void Run();
  // Reports the payloads received at once; WorkQueued once at the end.
  void Dispatch(const std::vector<std::string>& payloads);
  // Waits `timeout` or until woken; true if woken.
  bool WaitForWake(int timeout_ms);

  const std::string conninfo_;
  const std::string node_id_;
  ClusterWatcher* const watcher_;
  const DeliveryReader read_delivery_;
  // An eventfd that the destructor makes readable: it is in every poll of
  // the thread, so that the thread stops at once.
  const int wake_fd_;
  std::thread thread_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_STORAGE_POSTGRES_CLUSTER_FEED_H_
