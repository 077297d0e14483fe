#include "bench/ledger.h"

#include <algorithm>
#include <chrono>
#include <random>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/proc_stats.h"

namespace webhookd::bench {
namespace {

std::chrono::system_clock::time_point Deadline(absl::Duration timeout) {
  return std::chrono::system_clock::now() +
         std::chrono::nanoseconds(absl::ToInt64Nanoseconds(timeout));
}

bool IsQueued(webhook::v1::DeliveryStatus status) {
  return status == webhook::v1::DELIVERY_STATUS_PENDING ||
         status == webhook::v1::DELIVERY_STATUS_RETRYING;
}

// Ids of the deliveries in `status`, by bounded pages. Returns false if the
// bound was reached first.
absl::StatusOr<bool> ListStatus(webhook::v1::WebhookService::Stub& stub,
                                webhook::v1::DeliveryStatus status,
                                int64_t max_pages, int64_t deadline_ns,
                                absl::flat_hash_set<absl::uint128>* ids) {
  webhook::v1::ListDeliveriesRequest request;
  request.set_status(status);
  request.set_page_size(1000);
  for (int64_t page = 0; page < max_pages; ++page) {
    if (NowNanos() > deadline_ns) return false;
    grpc::ClientContext context;
    context.set_deadline(Deadline(absl::Seconds(60)));
    webhook::v1::ListDeliveriesResponse response;
    grpc::Status rpc = stub.ListDeliveries(&context, request, &response);
    if (!rpc.ok()) {
      return absl::UnavailableError(
          absl::StrCat("ListDeliveries: ", rpc.error_message()));
    }
    for (const webhook::v1::Delivery& delivery : response.deliveries()) {
      absl::uint128 id;
      if (testing::ParseDeliveryId(delivery.id(), &id)) {
        ids->insert(id);
      }
    }
    if (response.next_page_token().empty()) return true;
    request.set_page_token(response.next_page_token());
  }
  return false;
}

absl::StatusOr<webhook::v1::DeliveryStatus> GetStatus(
    webhook::v1::WebhookService::Stub& stub, absl::uint128 id) {
  webhook::v1::GetDeliveryRequest request;
  request.set_id(testing::FormatDeliveryId(id));
  grpc::ClientContext context;
  context.set_deadline(Deadline(absl::Seconds(30)));
  webhook::v1::GetDeliveryResponse response;
  grpc::Status rpc = stub.GetDelivery(&context, request, &response);
  if (!rpc.ok()) {
    return absl::UnavailableError(
        absl::StrCat("GetDelivery ", request.id(), ": ", rpc.error_message()));
  }
  return response.delivery().status();
}

}  // namespace

void ReceiptIndex::CollectFrom(HttpSink& sink) {
  std::vector<Receipt> fresh;
  sink.Collect(&fresh);
  Add(fresh);
}

void ReceiptIndex::Add(const std::vector<Receipt>& receipts) {
  for (const Receipt& receipt : receipts) {
    if (receipt.kind != ReceiptKind::kDelivery) continue;
    body_bytes_ += receipt.body_bytes;
    if (receipt.status < 200 || receipt.status >= 300) {
      ++non_2xx_;
      continue;
    }
    if (!receipt.id_ok) {
      ++malformed_;
      continue;
    }
    Record(receipt.id, receipt.answer_ns);
  }
}

AckIndex IndexAcknowledged(const std::vector<EventOutcome>& events) {
  AckIndex index;
  for (size_t i = 0; i < events.size(); ++i) {
    for (const std::string& text : events[i].delivery_ids) {
      absl::uint128 id;
      if (testing::ParseDeliveryId(text, &id)) {
        index.event_of[id] = static_cast<int32_t>(i);
      } else {
        ++index.unparsable;
      }
    }
  }
  return index;
}

absl::StatusOr<Ledger> CloseLedger(webhook::v1::WebhookService::Stub& stub,
                                   const std::vector<EventOutcome>& events,
                                   const AckIndex& acked, HttpSink& sink,
                                   ReceiptIndex& receipts,
                                   const LedgerOptions& options) {
  Ledger ledger;
  ledger.scheduled = static_cast<int64_t>(events.size());
  for (const EventOutcome& event : events) {
    if (event.sent_ns == 0) {
      ++ledger.not_sent;
      continue;
    }
    ++ledger.submitted;
    if (event.code == 0) {
      ++ledger.acknowledged;
      ledger.acknowledged_deliveries +=
          static_cast<int64_t>(event.delivery_ids.size());
    } else if (event.code > 0) {
      ++ledger.failed_rpcs;
    } else {
      ++ledger.unanswered_rpcs;
    }
  }

  receipts.CollectFrom(sink);
  std::vector<absl::uint128> unreceived;
  for (const auto& [id, event] : acked.event_of) {
    if (receipts.Find(id) == nullptr) unreceived.push_back(id);
  }

  absl::flat_hash_set<absl::uint128> listed;
  std::vector<absl::uint128> to_check;  // Neither received nor listed.
  bool sampled = false;
  if (unreceived.empty()) {
    ledger.queued_check =
        "nothing outstanding: every acknowledged id reached "
        "the sink";
  } else if (static_cast<int64_t>(unreceived.size()) <= options.list_limit) {
    const int64_t deadline =
        NowNanos() + absl::ToInt64Nanoseconds(options.list_timeout);
    // The store scans at most a bounded number of rows per page, so a page
    // may hold fewer than 1000 rows; allow for that in the page bound.
    const int64_t max_pages =
        static_cast<int64_t>(unreceived.size()) / 1000 + 200;
    bool complete = true;
    for (auto status : {webhook::v1::DELIVERY_STATUS_PENDING,
                        webhook::v1::DELIVERY_STATUS_RETRYING}) {
      absl::StatusOr<bool> done =
          ListStatus(stub, status, max_pages, deadline, &listed);
      if (!done.ok()) return done.status();
      complete = complete && *done;
    }
    receipts.CollectFrom(sink);
    for (absl::uint128 id : unreceived) {
      if (receipts.Find(id) == nullptr && !listed.contains(id)) {
        to_check.push_back(id);
      }
    }
    ledger.queued_check = absl::StrCat(
        "listed PENDING+RETRYING deliveries (", listed.size(), " ids",
        complete ? "" : ", page bound reached",
        "); ids in neither the sink nor the list checked with GetDelivery");
  } else {
    // Too many to list: every unreceived id counts as queued if a random
    // sample of them all reads as PENDING or RETRYING.
    sampled = true;
    std::mt19937_64 random(12345);
    std::shuffle(unreceived.begin(), unreceived.end(), random);
    to_check.assign(
        unreceived.begin(),
        unreceived.begin() +
            std::min<int64_t>(options.samples,
                              static_cast<int64_t>(unreceived.size())));
    ledger.queued_check = absl::StrCat(
        unreceived.size(), " unreceived ids: a random sample of ",
        to_check.size(), " checked with GetDelivery (PENDING or RETRYING)");
  }

  // GetDelivery for the ids the list did not settle (bounded).
  int64_t checked = 0;
  int64_t not_queued = 0;
  const int64_t check_limit = std::max<int64_t>(options.samples, 1000);
  for (absl::uint128 id : to_check) {
    if (checked >= check_limit) break;
    ++checked;
    absl::StatusOr<webhook::v1::DeliveryStatus> status = GetStatus(stub, id);
    if (!status.ok()) return status.status();
    if (IsQueued(*status)) {
      listed.insert(id);
    } else {
      // It may have been answered since: read the sink once more.
      receipts.CollectFrom(sink);
      if (receipts.Find(id) == nullptr) ++not_queued;
    }
  }
  receipts.CollectFrom(sink);

  for (const auto& [id, event] : acked.event_of) {
    if (receipts.Find(id) != nullptr) {
      ++ledger.received;
    } else if (sampled || listed.contains(id)) {
      ++ledger.queued;
    } else {
      ++ledger.unaccounted;
    }
  }
  if (sampled) {
    // A sampled id found neither queued nor received breaks the ledger.
    ledger.unaccounted += not_queued;
    ledger.queued -= not_queued;
  }
  ledger.unaccounted += acked.unparsable;
  ledger.duplicates = receipts.duplicates();
  for (const auto& [id, entry] : receipts.entries()) {
    if (!acked.event_of.contains(id)) ++ledger.unexpected;
  }
  ledger.balanced =
      ledger.unanswered_rpcs == 0 &&
      ledger.submitted == ledger.acknowledged + ledger.failed_rpcs &&
      ledger.acknowledged_deliveries == ledger.received + ledger.queued &&
      ledger.unaccounted == 0;
  return ledger;
}

std::string FormatLedger(const Ledger& l) {
  std::string text;
  absl::StrAppendFormat(
      &text,
      "  events:     %d scheduled, %d not sent (schedule ended)\n"
      "              %d submitted = %d acknowledged + %d failed RPCs%s\n",
      l.scheduled, l.not_sent, l.submitted, l.acknowledged, l.failed_rpcs,
      l.unanswered_rpcs ? absl::StrCat(" + ", l.unanswered_rpcs, " unanswered")
                        : "");
  absl::StrAppendFormat(
      &text,
      "  deliveries: %d acknowledged = %d received + %d still queued%s\n"
      "              duplicates %d, unexpected ids %d\n"
      "  queued:     %s\n"
      "  ledger:     %s\n",
      l.acknowledged_deliveries, l.received, l.queued,
      l.unaccounted ? absl::StrCat(" + ", l.unaccounted, " UNACCOUNTED") : "",
      l.duplicates, l.unexpected, l.queued_check,
      l.balanced ? "balances" : "DOES NOT BALANCE");
  return text;
}

}  // namespace webhookd::bench
