// The persistence interface of webhookd, in domain terms. Nothing here names
// a storage engine, so another backend (a shared SQL database for several
// nodes, say) can be added without touching the server.
//
// A store records what the domain (server/delivery) decides and decides
// nothing itself: it never reads a delivery's status or an attempt's
// response. Whether a delivery awaits an attempt, and when, comes with each
// write (NewEvent, DeliveryChange), and the store keeps its queue in step
// with that alone. Whether an attempt counts in its endpoint's stats, and
// as a success or not, and whether it ends its delivery, comes with its
// DeliveryChange, and the store keeps raw totals of them (EndpointCounts);
// rates and means are the domain's.

#ifndef WEBHOOKD_STORAGE_STORE_H_
#define WEBHOOKD_STORAGE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/common/limits.h"
#include "server/common/time_util.h"
#include "storage/records.pb.h"
#include "webhook/v1/webhook_service.pb.h"

namespace webhookd {

using webhook::v1::Delivery;
using webhook::v1::DeliveryAttempt;
using webhook::v1::DeliveryStatus;
using webhook::v1::Endpoint;
using webhook::v1::SubmitEventResponse;
using webhookd::storage::EventRecord;

struct EndpointFilter {
  std::string thread_id;  // Empty: any thread.
  int64_t user_id = 0;    // 0: any user.
};

struct EndpointPage {
  std::vector<Endpoint> endpoints;
  std::string next_page_token;  // Empty on the last page.
};

struct DeliveryFilter {
  std::string endpoint_id;  // Empty: any endpoint.
  std::string thread_id;    // Empty: any thread.
  DeliveryStatus status = webhook::v1::DELIVERY_STATUS_UNSPECIFIED;  // Any.
  int64_t user_id = 0;  // 0: any user.
};

struct DeliveryPage {
  std::vector<Delivery> deliveries;  // Newest first, without payload/history.
  std::string next_page_token;       // Empty on the last page.
};

// A delivery waiting for an attempt: what the scheduler keeps in memory.
struct QueuedDelivery {
  std::string delivery_id;
  std::string endpoint_id;
  absl::Time due;
  bool manual = false;  // The attempt was queued by RetryDelivery.
  bool test = false;    // A test delivery: sent even to a disabled endpoint.
};

// An event and its new deliveries, as InsertEvents writes them. Every new
// delivery awaits its first attempt: it is queued, due at its
// next_attempt_time (at its create_time if that is unset).
struct NewEvent {
  const EventRecord* event;
  absl::Span<const Delivery> deliveries;
};

// The first answer to a SubmitEvent with an idempotency key
// (Store::FindSubmission).
struct Submission {
  SubmitEventResponse response;
  // The EventRecord::request_fingerprint of the request that got it; empty
  // for records written before fingerprints were kept.
  std::string request_fingerprint;
};

// One finished attempt, as it counts in its endpoint's stats.
struct CountedAttempt {
  bool success = false;
  // Whether the receiver answered with an HTTP status; only answered
  // attempts add their response time.
  bool answered = false;
  int64_t response_time_ms = 0;
};

// The running totals of an endpoint's counted attempts and deliveries
// (test deliveries are never counted).
struct EndpointCounts {
  int64_t attempts = 0;
  int64_t successes = 0;  // The other attempts failed.
  int64_t answered = 0;   // Attempts with an HTTP status.
  // Of the answered attempts (of every attempt before answered was kept:
  // stores set answered = attempts when they first keep it).
  int64_t response_time_ms_sum = 0;
  // Deliveries that ended SUCCESS, and FAILED (Ending).
  int64_t deliveries_succeeded = 0;
  int64_t deliveries_failed = 0;
  // New deliveries (InsertEvents, AddDeliveries, not tests) not ended yet.
  int64_t deliveries_in_progress = 0;
};

// How a change ends a delivery, as it counts in its endpoint's delivery
// counts (EndpointCounts) and failure streak (FailureStreak). Each
// non-test delivery ends once: a FAILED delivery is never attempted again
// (ResendDelivery makes a new one).
enum class Ending {
  kNone,       // The delivery goes on, or is a test.
  kSucceeded,  // Ended SUCCESS: the streak is reset.
  kFailed,     // Ended FAILED after its last attempt: the streak grows.
  // Ended FAILED for a reason that says nothing of the receiver (its
  // endpoint was deleted, its payload lost): the streak stays as it is.
  kCancelled,
};

// The deliveries of an endpoint that ended FAILED since the last that
// ended SUCCESS (or since the streak was reset).
struct FailureStreak {
  int64_t failures = 0;
  // When the first of them ended; InfinitePast when there is none.
  absl::Time first_failure = absl::InfinitePast();
};

// A new state of a delivery, whether it awaits another attempt and whether
// an attempt counts in its endpoint's stats.
struct DeliveryChange {
  Delivery delivery;  // The whole new state; its payload is not stored.
  // Set while the delivery awaits an attempt: when it is due. The store
  // queues the delivery exactly while this is set; unset removes it from
  // the queue.
  std::optional<absl::Time> next_due;
  // The queued attempt was asked for by RetryDelivery (QueuedDelivery::manual).
  bool next_attempt_manual = false;
  // Set when the change records a finished attempt that counts in the
  // stats of the delivery's endpoint.
  std::optional<CountedAttempt> counted_attempt;
  // Whether the change ends the delivery for its endpoint's failure streak,
  // and when (end_time).
  Ending ending = Ending::kNone;
  absl::Time end_time;
};

// What one PruneBefore call removed.
struct PruneResult {
  size_t deliveries = 0;  // Unqueued deliveries, with their list entries.
  size_t events = 0;      // Events none of whose deliveries remain.
  size_t idempotency_records = 0;
  // The call stopped at max_records deliveries: more may be due.
  bool more = false;
};

enum class Durability {
  kSynced,    // On disk (fsync) before the call returns.
  kBuffered,  // Survives a process crash, may be lost in a machine crash.
};

// A queued delivery claimed by one node of several sharing a store: only
// that node attempts it while the claim holds, and only it can record the
// outcome (UpdateClaimed), by its token. A claim ends when its lease runs
// out (the node stalled or died: another node may claim the delivery), when
// the node records an outcome, or when it releases the claim.
struct Claim {
  QueuedDelivery entry;
  // The fencing token: a new, larger one for every claim of any delivery.
  int64_t token = 0;
  // When the lease runs out, by the store's clock.
  absl::Time lease_until;
};

// What a node learns of the writes of the other nodes sharing its store
// (SharedQueue::Watch), in their commit order, on the store's watch thread.
// Writes of this node are not reported back to it.
class ClusterWatcher {
 public:
  virtual ~ClusterWatcher() = default;
  // New deliveries and new states of deliveries, without payload.
  virtual void DeliveriesChanged(absl::Span<const Delivery> deliveries) = 0;
  // An endpoint was created, replaced or deleted: read it again.
  virtual void EndpointChanged(std::string_view endpoint_id) = 0;
  // Deliveries were queued that may be due now: claim.
  virtual void WorkQueued() = 0;
  // Reports may have been missed (the watch lost its connection and made a
  // new one): read again whatever is cached. Also called once when the
  // watch starts.
  virtual void Resync() = 0;
};

// The delivery queue of a store that several nodes share (PostgreSQL).
// Instead of loading the whole queue (Store::ScanQueue), each node claims
// due deliveries in batches. Safe for concurrent use, also across nodes.
class SharedQueue {
 public:
  virtual ~SharedQueue() = default;

  // Claims up to `max` deliveries that are queued and due at `now` and that
  // no live claim holds, earliest due first, for `lease` (by the store's
  // clock, so that nodes with skewed clocks agree on leases). Deliveries of
  // disabled endpoints are left alone, test deliveries aside. Claimers
  // running at once get disjoint batches.
  virtual absl::StatusOr<std::vector<Claim>> ClaimDue(absl::Time now,
                                                      absl::Duration lease,
                                                      size_t max) = 0;
  // Extends to `lease` from now those of this node's claims that still hold
  // one of `tokens`; returns the new end of the leases. Claims not named run
  // out: those of a write whose answer was lost, for one, which the node
  // never learnt of.
  virtual absl::StatusOr<absl::Time> RenewClaims(
      absl::Span<const int64_t> tokens, absl::Duration lease) = 0;
  // Ends claims without recording an attempt (the delivery stays queued,
  // claimable at once). Claims that are no longer this node's are skipped.
  virtual absl::Status ReleaseClaims(absl::Span<const Claim> claims) = 0;
  // UpdateDeliveries for claimed deliveries: applies changes[i] (and counts
  // its attempt) only if its delivery is still claimed with tokens[i], and
  // ends that claim. Returns the ids of the changes not applied: their
  // claim was lost (it ran out and another node claimed the delivery), so
  // the other node's record stands.
  virtual absl::StatusOr<std::vector<std::string>> UpdateClaimed(
      absl::Span<const DeliveryChange> changes,
      absl::Span<const int64_t> tokens, Durability durability) = 0;
  // InsertEvents, with the first `max_claims` new deliveries (in the order
  // of the events and of their deliveries) claimed by this node for `lease`
  // as they are written, so that no other node attempts them first; the
  // others are queued for any node to claim. Returns the claims, in order.
  virtual absl::StatusOr<std::vector<Claim>> InsertClaimed(
      absl::Span<const NewEvent> events, absl::Duration lease,
      size_t max_claims) = 0;
  // Claims one delivery, queued or not, for `lease`, so that its state can
  // be rewritten (RetryDelivery) with UpdateClaimed. NotFound if there is no
  // such delivery; FailedPrecondition if a live claim holds it (an attempt
  // is under way on some node). The entry of a delivery that is not queued
  // is due at absl::InfiniteFuture().
  virtual absl::StatusOr<Claim> ClaimOne(std::string_view delivery_id,
                                         absl::Duration lease) = 0;
  // The queued deliveries of an endpoint, claimed or not (to end them when
  // it is deleted).
  virtual absl::StatusOr<std::vector<QueuedDelivery>> QueuedOf(
      std::string_view endpoint_id) = 0;

  // Starts reporting the other nodes' writes to `watcher` (which must
  // outlive StopWatching) from a thread of the store's; it reconnects by
  // itself after losing the database. One watcher per store.
  virtual absl::Status Watch(ClusterWatcher* watcher) = 0;
  // Stops the reports and joins the thread. Idempotent.
  virtual void StopWatching() = 0;
};

// When a new delivery is due (see NewEvent): at its next_attempt_time, or
// its create_time if that is unset.
inline absl::Time FirstDue(const Delivery& delivery) {
  return FromProtoTime(delivery.has_next_attempt_time()
                           ? delivery.next_attempt_time()
                           : delivery.create_time());
}

// The page size a List call uses for `page_size`: kDefaultPageSize for 0 or
// less, at most kMaxPageSize.
inline int ClampPageSize(int page_size) {
  if (page_size <= 0) return kDefaultPageSize;
  return page_size > kMaxPageSize ? kMaxPageSize : page_size;
}

// Store is safe for concurrent use by multiple threads. Every mutation is
// atomic: all of it is written or none of it.
class Store {
 public:
  Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  virtual ~Store() = default;

  // Endpoints. Stored endpoints include their secret.

  // Creates or replaces an endpoint. Synced.
  virtual absl::Status PutEndpoint(const Endpoint& endpoint) = 0;
  // Returns NotFound if there is no endpoint with this id.
  virtual absl::StatusOr<Endpoint> GetEndpoint(std::string_view id) = 0;
  // Returns endpoints matching the filter ordered by id, page_token being the
  // next_page_token of the previous page. InvalidArgument for a bad token.
  virtual absl::StatusOr<EndpointPage> ListEndpoints(
      const EndpointFilter& filter, int page_size,
      std::string_view page_token) = 0;
  // Returns every endpoint, for caches built at start-up.
  virtual absl::StatusOr<std::vector<Endpoint>> LoadEndpoints() = 0;
  // Removes the endpoint and applies the changes (its queued deliveries,
  // ended) in the same synced write. Its deliveries and stats stay.
  // Returns NotFound if there is no endpoint with this id.
  virtual absl::Status DeleteEndpoint(
      std::string_view id, absl::Span<const DeliveryChange> changes) = 0;

  // Events and deliveries.

  // Writes each event, its new deliveries (queued) and, when the event has
  // an idempotency key, the response to return for it with the event's
  // request_fingerprint (a Submission), all in one synced
  // write: every event is stored or none is. Concurrent submits share one
  // disk sync this way (group commit). Each new delivery that is not a test
  // counts in its endpoint's deliveries_in_progress (EndpointCounts), in
  // the same write.
  virtual absl::Status InsertEvents(absl::Span<const NewEvent> events) = 0;
  // InsertEvents of one event.
  absl::Status InsertEvent(const EventRecord& event,
                           absl::Span<const Delivery> deliveries) {
    const NewEvent one{&event, deliveries};
    return InsertEvents(absl::MakeConstSpan(&one, 1));
  }
  // Adds new deliveries to events already stored (resends: each is sent the
  // payload of its event, whose delivery_ids it joins), each queued and
  // counted as InsertEvents does, and applies `changes` (the originals, marked
  // resent) in the same synced write. NotFound if one of the events does
  // not exist; then nothing is written.
  virtual absl::Status AddDeliveries(
      absl::Span<const Delivery> deliveries,
      absl::Span<const DeliveryChange> changes) = 0;
  // Returns the response first given for this key of this user, with the
  // fingerprint of its request, or NotFound.
  virtual absl::StatusOr<Submission> FindSubmission(
      int64_t user_id, std::string_view idempotency_key) = 0;
  // Returns NotFound if there is no event with this id.
  virtual absl::StatusOr<EventRecord> GetEvent(std::string_view id) = 0;

  // Returns the delivery with its payload and attempt history, or NotFound.
  virtual absl::StatusOr<Delivery> GetDelivery(std::string_view id) = 0;
  // Returns deliveries matching the filter, newest first.
  // InvalidArgument for a bad token.
  virtual absl::StatusOr<DeliveryPage> ListDeliveries(
      const DeliveryFilter& filter, int page_size,
      std::string_view page_token) = 0;
  // Applies new states of existing deliveries in one write.
  virtual absl::Status UpdateDeliveries(
      absl::Span<const DeliveryChange> changes, Durability durability) = 0;
  // Calls `visit` with every queued delivery, in no particular order,
  // without holding them all in memory at once.
  virtual absl::Status ScanQueue(
      const std::function<void(const QueuedDelivery&)>& visit) = 0;
  // Returns every queued delivery, in no particular order.
  absl::StatusOr<std::vector<QueuedDelivery>> LoadQueue() {
    std::vector<QueuedDelivery> queue;
    absl::Status status = ScanQueue(
        [&queue](const QueuedDelivery& entry) { queue.push_back(entry); });
    if (!status.ok()) return status;
    return queue;
  }

  // Returns the totals of an endpoint's counted attempts and deliveries,
  // zero if it never had one (including unknown ids: callers check
  // existence).
  virtual absl::StatusOr<EndpointCounts> GetEndpointCounts(
      std::string_view endpoint_id) = 0;

  // Returns the endpoint's failure streak as the endings of its
  // deliveries (DeliveryChange::ending) left it: empty if it never had one
  // (including unknown ids).
  virtual absl::StatusOr<FailureStreak> GetFailureStreak(
      std::string_view endpoint_id) = 0;
  // Empties the endpoint's failure streak (the endpoint was enabled). Synced.
  virtual absl::Status ResetFailureStreak(std::string_view endpoint_id) = 0;

  // Retention.

  // Removes up to max_records deliveries that are not queued, created
  // before `cutoff`, oldest first, with their list index entries and
  // the events none of whose deliveries remain; also part of the old events
  // that never had a delivery and of the idempotency records created before
  // `idempotency_cutoff` (each call sweeps on from where the last stopped).
  // Queued deliveries and endpoint stats (cumulative) are never removed.
  virtual absl::StatusOr<PruneResult> PruneBefore(absl::Time cutoff,
                                                  absl::Time idempotency_cutoff,
                                                  size_t max_records) = 0;

  // Rewrites the stored data so that values overwritten or deleted are gone
  // from its files, not only unreachable (after secrets were re-encrypted:
  // their former copies). Slow: for maintenance commands, not while
  // serving. Backends that never keep such copies do nothing.
  virtual absl::Status Compact() { return absl::OkStatus(); }

  // The value of setting `name` for everyone who shares this store: the one
  // stored, or `value`, stored now if there was none (the first caller's
  // wins, across nodes). For values made once, such as keys every node
  // must agree on.
  virtual absl::StatusOr<std::string> SettingOrInsert(
      std::string_view name, std::string_view value) = 0;

  // Several nodes.

  // The queue shared with other nodes, or nullptr for a store of one node
  // (which loads its queue with ScanQueue).
  virtual SharedQueue* shared_queue() { return nullptr; }
};

}  // namespace webhookd

#endif  // WEBHOOKD_STORAGE_STORE_H_
