// What the sink received, joined with what the server acknowledged, and the
// ledger that closes every run: submitted = acknowledged + failed calls, and
// acknowledged deliveries = received (unique ids) + still queued.

#ifndef WEBHOOKD_BENCH_LEDGER_H_
#define WEBHOOKD_BENCH_LEDGER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"
#include "bench/http_sink.h"
#include "bench/load_generator.h"
#include "tests/support/delivery_ledger.h"
#include "webhook/v1/webhook_service.grpc.pb.h"

namespace webhookd::bench {

// Deliveries answered 2xx by the sink, by id (the DeliveryLedger), and what
// else the sink answered.
class ReceiptIndex : public testing::DeliveryLedger {
 public:
  // Takes new receipts from `sink`.
  void CollectFrom(HttpSink& sink);
  void Add(const std::vector<Receipt>& receipts);

  // Delivery requests answered otherwise (held and released with 503).
  int64_t non_2xx() const { return non_2xx_; }
  // Delivery requests without a well-formed X-Webhook-Id.
  int64_t malformed() const { return malformed_; }
  int64_t body_bytes() const { return body_bytes_; }

 private:
  int64_t non_2xx_ = 0;
  int64_t malformed_ = 0;
  int64_t body_bytes_ = 0;
};

// Acknowledged delivery ids and the event each came from.
struct AckIndex {
  absl::flat_hash_map<absl::uint128, int32_t> event_of;
  int64_t unparsable = 0;
};
AckIndex IndexAcknowledged(const std::vector<EventOutcome>& events);

struct Ledger {
  int64_t scheduled = 0;
  int64_t not_sent = 0;  // Scheduled but not sent before the schedule ended.
  int64_t submitted = 0;
  int64_t acknowledged = 0;
  int64_t failed_rpcs = 0;
  int64_t unanswered_rpcs = 0;
  int64_t acknowledged_deliveries = 0;
  int64_t received = 0;  // Acknowledged ids answered 2xx (unique).
  int64_t queued = 0;    // Acknowledged ids the server still holds.
  int64_t unaccounted = 0;
  int64_t duplicates = 0;  // Extra 2xx answers for an id.
  int64_t unexpected = 0;  // Ids received that no acknowledgement named.
  // How `queued` was established.
  std::string queued_check;
  bool balanced = false;
};

struct LedgerOptions {
  // Above this many unreceived deliveries, they are sampled with
  // GetDelivery instead of listed.
  int64_t list_limit = 100000;
  int64_t samples = 1000;
  absl::Duration list_timeout = absl::Seconds(120);
};

// Closes the ledger after the run has ended: reads the sink once more, lists
// the deliveries the server still holds (PENDING and RETRYING, bounded
// pages) or samples them, and reads the sink again, so that a delivery
// answered while the server was queried counts as received.
absl::StatusOr<Ledger> CloseLedger(webhook::v1::WebhookService::Stub& stub,
                                   const std::vector<EventOutcome>& events,
                                   const AckIndex& acked, HttpSink& sink,
                                   ReceiptIndex& receipts,
                                   const LedgerOptions& options);

// Ledger lines for the report.
std::string FormatLedger(const Ledger& ledger);

}  // namespace webhookd::bench

#endif  // WEBHOOKD_BENCH_LEDGER_H_
