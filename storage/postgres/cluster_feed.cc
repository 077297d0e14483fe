#include "storage/postgres/cluster_feed.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/string_view.h"
#include "storage/postgres/pg.h"

namespace webhookd {
namespace {

constexpr std::string_view kEndpointKind = "E";
constexpr std::string_view kDeliveriesKind = "D";
constexpr std::string_view kQueuedKind = "Q";
// Starts an item that holds the delivery's id, not its record (base64 has
// no "!").
constexpr char kByIdMark = '!';

constexpr int kFirstBackoffMs = 100;
constexpr int kMaxBackoffMs = 2000;

std::string Base64(std::string_view bytes) {
  return absl::Base64Escape(AsAbsl(bytes));
}

const std::string& NotifySql() {
  static const std::string* const sql = new std::string(
      absl::StrCat("SELECT pg_notify('", AsAbsl(kFeedChannel), "', $1)"));
  return *sql;
}

}  // namespace

pg::Statement NotifyEndpointChanged(std::string_view node_id,
                                    std::string_view endpoint_id) {
  return pg::Statement{
      "notify",
      NotifySql(),
      {pg::Param::Text(absl::StrCat(AsAbsl(node_id), " ", AsAbsl(kEndpointKind),
                                    " ", AsAbsl(endpoint_id)))}};
}

// --- DeliveryReports ---------------------------------------------------------

DeliveryReports::DeliveryReports(std::string_view node_id)
    : prefix_(absl::StrCat(AsAbsl(node_id), " ")) {}

void DeliveryReports::Add(std::string_view delivery_id, std::string_view record,
                          bool queued) {
  // What a payload holding this item alone would take: prefix, kind, space.
  const size_t room = kMaxFeedPayloadBytes - prefix_.size() - 2;
  std::string item = Base64(record);
  if (item.size() > room) {
    item = absl::StrCat(std::string(1, kByIdMark), Base64(delivery_id));
  }
  ids_.emplace_back(delivery_id);
  items_.push_back(std::move(item));
  queued_.push_back(queued);
}

std::vector<std::vector<size_t>> DeliveryReports::Batches() const {
  std::vector<std::vector<size_t>> batches;
  size_t size = 0;
  for (size_t i = 0; i < items_.size(); ++i) {
    const size_t added = 1 + items_[i].size();
    if (batches.empty() || size + added > kMaxFeedPayloadBytes) {
      batches.emplace_back();
      size = prefix_.size() + 1;
    }
    batches.back().push_back(i);
    size += added;
  }
  return batches;
}

std::vector<std::string> DeliveryReports::Payloads() const {
  std::vector<std::string> payloads;
  for (const std::vector<size_t>& batch : Batches()) {
    const bool any_queued = std::any_of(batch.begin(), batch.end(),
                                        [&](size_t i) { return queued_[i]; });
    std::string payload = absl::StrCat(
        prefix_, AsAbsl(any_queued ? kQueuedKind : kDeliveriesKind));
    for (size_t i : batch) absl::StrAppend(&payload, " ", items_[i]);
    payloads.push_back(std::move(payload));
  }
  return payloads;
}

std::vector<pg::Statement> DeliveryReports::Notifies() const {
  std::vector<pg::Statement> statements;
  for (std::string& payload : Payloads()) {
    statements.push_back(
        pg::Statement{"notify", NotifySql(), {pg::Param::Text(payload)}});
  }
  return statements;
}

std::vector<pg::Statement> DeliveryReports::FencedNotifies(
    absl::Span<const int64_t> tokens) const {
  // The payload is put together from the updated rows' items, in the order
  // added; a batch none of whose updates was made sends nothing (HAVING
  // filters the aggregate's one row out before pg_notify runs).
  static const std::string* const sql = new std::string(absl::StrCat(
      "SELECT pg_notify('", AsAbsl(kFeedChannel), "', $1 || CASE WHEN ",
      "bool_or(r.queued) THEN '", AsAbsl(kQueuedKind), "' ELSE '",
      AsAbsl(kDeliveriesKind), "' END || string_agg(' ' || r.item, '' ",
      "ORDER BY r.n)) FROM unnest($2::text[], $3::bigint[], $4::text[], ",
      "$5::boolean[]) WITH ORDINALITY AS r(id, token, item, queued, n) ",
      "JOIN deliveries d ON d.id = r.id AND d.claim_token = r.token ",
      "HAVING count(*) > 0"));
  std::vector<pg::Statement> statements;
  for (const std::vector<size_t>& batch : Batches()) {
    std::vector<std::string> ids, batch_tokens, items, queued;
    for (size_t i : batch) {
      ids.push_back(ids_[i]);
      batch_tokens.push_back(std::to_string(tokens[i]));
      items.push_back(items_[i]);
      queued.push_back(queued_[i] ? "t" : "f");
    }
    statements.push_back(pg::Statement{
        nullptr,  // Joins `deliveries`: planned per batch (pg::Statement).
        *sql,
        {pg::Param::Text(prefix_), pg::Param::Text(pg::ArrayLiteral(ids)),
         pg::Param::Text(pg::ArrayLiteral(batch_tokens)),
         pg::Param::Text(pg::ArrayLiteral(items)),
         pg::Param::Text(pg::ArrayLiteral(queued))}});
  }
  return statements;
}

// --- Parsing -----------------------------------------------------------------

absl::StatusOr<FeedReport> ParseFeedReport(std::string_view payload) {
  const std::vector<absl::string_view> words =
      absl::StrSplit(AsAbsl(payload), ' ');
  if (words.size() < 2 || words[0].empty()) {
    return absl::InvalidArgumentError("cluster feed: malformed report");
  }
  FeedReport report;
  report.node_id = std::string(words[0]);
  const absl::string_view kind = words[1];
  if (kind == AsAbsl(kEndpointKind)) {
    // The id is the rest of the payload, whatever it holds.
    const size_t start = words[0].size() + 3;
    if (payload.size() < start) {
      return absl::InvalidArgumentError("cluster feed: endpoint without id");
    }
    report.kind = FeedReport::Kind::kEndpoint;
    report.endpoint_id = std::string(payload.substr(start));
    return report;
  }
  if (kind != AsAbsl(kDeliveriesKind) && kind != AsAbsl(kQueuedKind)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster feed: unknown report kind ", words[1]));
  }
  report.kind = FeedReport::Kind::kDeliveries;
  report.queued = kind == AsAbsl(kQueuedKind);
  report.deliveries.resize(words.size() - 2);
  for (size_t w = 2; w < words.size(); ++w) {
    absl::string_view item = words[w];
    Delivery& delivery = report.deliveries[w - 2];
    const bool by_id = !item.empty() && item[0] == kByIdMark;
    if (by_id) item.remove_prefix(1);
    std::string bytes;
    if (!absl::Base64Unescape(item, &bytes)) {
      return absl::InvalidArgumentError("cluster feed: malformed item");
    }
    if (by_id) {
      delivery.set_id(std::move(bytes));
      report.unread.push_back(w - 2);
    } else if (!delivery.ParseFromString(bytes)) {
      return absl::InvalidArgumentError("cluster feed: unreadable delivery");
    }
  }
  return report;
}

// --- FeedListener ------------------------------------------------------------

absl::StatusOr<std::unique_ptr<FeedListener>> FeedListener::Start(
    std::string conninfo, std::string node_id, ClusterWatcher* watcher,
    DeliveryReader read_delivery) {
  const int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    return absl::InternalError(
        absl::StrCat("cluster feed: eventfd: ", std::strerror(errno)));
  }
  std::unique_ptr<FeedListener> listener(
      new FeedListener(std::move(conninfo), std::move(node_id), watcher,
                       std::move(read_delivery), wake_fd));
  listener->thread_ = std::thread([raw = listener.get()] { raw->Run(); });
  return listener;
}

FeedListener::FeedListener(std::string conninfo, std::string node_id,
                           ClusterWatcher* watcher,
                           DeliveryReader read_delivery, int wake_fd)
    : conninfo_(std::move(conninfo)),
      node_id_(std::move(node_id)),
      watcher_(watcher),
      read_delivery_(std::move(read_delivery)),
      wake_fd_(wake_fd) {}

FeedListener::~FeedListener() {
  const uint64_t one = 1;
  // Cannot fail short of a bug: the counter is far from overflowing.
  (void)!write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  close(wake_fd_);
}

bool FeedListener::WaitForWake(int timeout_ms) {
  pollfd wake = {wake_fd_, POLLIN, 0};
  int ready;
  do {
    ready = poll(&wake, 1, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  return ready > 0;
}

void FeedListener::Run() {
  int backoff_ms = kFirstBackoffMs;
  while (!WaitForWake(0)) {
    absl::StatusOr<std::unique_ptr<pg::Connection>> connection =
        pg::Connection::Open(conninfo_);
    if (connection.ok() &&
        (*connection)
            ->ExecScript(absl::StrCat("LISTEN ", AsAbsl(kFeedChannel)))
            .ok()) {
      backoff_ms = kFirstBackoffMs;
      // Whatever was written while nobody listened is not reported.
      watcher_->Resync();
      while (true) {
        absl::StatusOr<std::vector<pg::Notification>> notifications =
            (*connection)->AwaitNotifications(wake_fd_);
        if (!notifications.ok()) break;      // Lost: connect again.
        if (notifications->empty()) return;  // Woken: stopping.
        std::vector<std::string> payloads;
        payloads.reserve(notifications->size());
        for (pg::Notification& notification : *notifications) {
          payloads.push_back(std::move(notification.payload));
        }
        Dispatch(payloads);
      }
    }
    if (WaitForWake(backoff_ms)) return;
    backoff_ms = std::min(2 * backoff_ms, kMaxBackoffMs);
  }
}

void FeedListener::Dispatch(const std::vector<std::string>& payloads) {
  bool work_queued = false;
  bool missed = false;
  for (const std::string& payload : payloads) {
    absl::StatusOr<FeedReport> report = ParseFeedReport(payload);
    if (!report.ok()) {
      // Not a report of this release (a newer node's, say): what it said
      // is unknown, so everything cached is suspect.
      missed = true;
      continue;
    }
    if (report->node_id == node_id_) continue;
    if (report->kind == FeedReport::Kind::kEndpoint) {
      watcher_->EndpointChanged(report->endpoint_id);
      continue;
    }
    // Records too large for a payload; a delivery pruned since is left out.
    std::vector<bool> gone(report->deliveries.size(), false);
    for (size_t i : report->unread) {
      Delivery& delivery = report->deliveries[i];
      absl::StatusOr<Delivery> stored = read_delivery_(delivery.id());
      if (stored.ok()) {
        delivery = *std::move(stored);
        delivery.clear_payload();
      } else {
        gone[i] = true;
        missed = missed || !absl::IsNotFound(stored.status());
      }
    }
    if (!report->unread.empty()) {
      size_t kept = 0;
      for (size_t i = 0; i < report->deliveries.size(); ++i) {
        if (gone[i]) continue;
        if (kept != i) {
          report->deliveries[kept] = std::move(report->deliveries[i]);
        }
        ++kept;
      }
      report->deliveries.resize(kept);
    }
    if (!report->deliveries.empty()) {
      watcher_->DeliveriesChanged(report->deliveries);
    }
    work_queued = work_queued || report->queued;
  }
  // One call for all the reports received together: it only says "claim".
  if (work_queued) watcher_->WorkQueued();
  if (missed) watcher_->Resync();
}

}  // namespace webhookd
