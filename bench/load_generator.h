// The open-loop load generator: SubmitEvent calls (or SubmitEvents calls of
// a fixed number of events) at a fixed arrival rate
// over asynchronous (callback API) stubs. Each call is timed from the moment
// the schedule says it should start, not from when it could start, so a slow
// server shows as latency instead of silently lowering the rate
// (no coordinated omission).

#ifndef WEBHOOKD_BENCH_LOAD_GENERATOR_H_
#define WEBHOOKD_BENCH_LOAD_GENERATOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "webhook/v1/webhook_service.grpc.pb.h"

namespace webhookd::bench {

// One scheduled event.
struct EventOutcome {
  // NowNanos() values; sent_ns and done_ns are 0 if it did not happen.
  int64_t scheduled_ns = 0;
  int64_t sent_ns = 0;
  int64_t done_ns = 0;
  // grpc::StatusCode of the answer (in a batch: the call's, or the event's
  // result code when the call was OK); -1 while unanswered or unsent.
  int code = -1;
  // Index of the request template (the thread) it used.
  int32_t request = 0;
  std::vector<std::string> delivery_ids;
};

struct LoadPlan {
  // Arrival rate, events per second.
  double rate = 1000;
  // At most this many events (0: no limit besides the duration).
  int64_t max_events = 0;
  // The schedule ends after this long.
  absl::Duration duration = absl::Seconds(10);
  // Calls open at once; when reached, the next call waits (still timed from
  // its scheduled time).
  int max_outstanding = 1000;
  absl::Duration rpc_deadline = absl::Seconds(60);
  // Events per call: 1 sends SubmitEvent calls; more sends SubmitEvents
  // calls of this many consecutive events, each call at the scheduled time
  // of its last event (as a client that fills a batch, then sends it). Each
  // event is still timed from its own scheduled time, and max_outstanding
  // counts calls.
  int batch = 1;
};

// Opens `count` channels to `address`, each its own HTTP/2 connection.
std::vector<std::shared_ptr<grpc::Channel>> OpenChannels(
    const std::string& address, int count);

// Runs one schedule. Requests rotate over `requests` (event i uses request
// i % size). Not reusable.
class LoadGenerator {
 public:
  // `requests` must outlive the generator.
  LoadGenerator(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                const std::vector<webhook::v1::SubmitEventRequest>& requests);
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  // Sends the events scheduled from `start_ns` on and returns once every
  // call sent has been answered. Events that could not be sent before the
  // schedule's end are returned with sent_ns == 0.
  std::vector<EventOutcome> Run(const LoadPlan& plan, int64_t start_ns);

 private:
  struct Call;
  struct BatchCall;
  // Sends events [index, index + count): one SubmitEvent call when the
  // plan's batch is 1, one SubmitEvents call otherwise.
  void Send(int64_t index, int64_t count, const LoadPlan& plan);
  void SendBatch(int64_t index, int64_t count, const LoadPlan& plan);
  // One call answered.
  void Done();

  const std::vector<webhook::v1::SubmitEventRequest>& requests_;
  std::vector<std::unique_ptr<webhook::v1::WebhookService::Stub>> stubs_;
  std::vector<EventOutcome> outcomes_;

  absl::Mutex mu_;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
};

// Creates `endpoints` with at most `concurrency` calls open at once and
// returns their ids in the same order.
absl::StatusOr<std::vector<std::string>> CreateEndpoints(
    webhook::v1::WebhookService::Stub& stub,
    const std::vector<webhook::v1::Endpoint>& endpoints, int concurrency);

// The documented example event (as the workbench submits it) for `thread`.
webhook::v1::SubmitEventRequest ExampleEvent(const std::string& thread);

}  // namespace webhookd::bench

#endif  // WEBHOOKD_BENCH_LOAD_GENERATOR_H_
