#include "bench/load_generator.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "bench/proc_stats.h"
#include "server/delivery/payload.h"

namespace webhookd::bench {
namespace {

std::chrono::system_clock::time_point Deadline(absl::Duration timeout) {
  return std::chrono::system_clock::now() +
         std::chrono::nanoseconds(absl::ToInt64Nanoseconds(timeout));
}

}  // namespace

std::vector<std::shared_ptr<grpc::Channel>> OpenChannels(
    const std::string& address, int count) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < std::max(count, 1); ++i) {
    grpc::ChannelArguments args;
    // Distinct arguments and a local subchannel pool: one connection each.
    args.SetInt("webhook_bench.channel", i);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
    channels.push_back(grpc::CreateCustomChannel(
        address, grpc::InsecureChannelCredentials(), args));
  }
  return channels;
}

struct LoadGenerator::Call {
  grpc::ClientContext context;
  webhook::v1::SubmitEventResponse response;
};

LoadGenerator::LoadGenerator(
    const std::vector<std::shared_ptr<grpc::Channel>>& channels,
    const std::vector<webhook::v1::SubmitEventRequest>& requests)
    : requests_(requests) {
  for (const auto& channel : channels) {
    stubs_.push_back(webhook::v1::WebhookService::NewStub(channel));
  }
}

std::vector<EventOutcome> LoadGenerator::Run(const LoadPlan& plan,
                                             int64_t start_ns) {
  const double rate = std::max(plan.rate, 0.001);
  const int64_t end_ns = start_ns + absl::ToInt64Nanoseconds(plan.duration);
  // A call may start this late after the end of the schedule (a scheduler
  // hiccup must not drop the last event).
  const int64_t send_end_ns = end_ns + 100000000;
  int64_t count =
      static_cast<int64_t>(absl::ToDoubleSeconds(plan.duration) * rate + 0.5);
  if (plan.max_events > 0) count = std::min(count, plan.max_events);
  count = std::max<int64_t>(count, 1);
  outcomes_.assign(count, EventOutcome());
  const int64_t templates = static_cast<int64_t>(requests_.size());
  for (int64_t i = 0; i < count; ++i) {
    outcomes_[i].scheduled_ns =
        start_ns + static_cast<int64_t>(static_cast<double>(i) * 1e9 / rate);
    outcomes_[i].request = static_cast<int32_t>(i % templates);
  }

  const int64_t batch = std::max(plan.batch, 1);
  for (int64_t i = 0; i < count; i += batch) {
    const int64_t events = std::min(batch, count - i);
    // A batch goes out once its last event is due.
    const int64_t due = outcomes_[i + events - 1].scheduled_ns;
    const int64_t now = NowNanos();
    if (due > now) {
      std::this_thread::sleep_for(std::chrono::nanoseconds(due - now));
    }
    if (NowNanos() > send_end_ns) break;  // Behind schedule at the end.
    {
      absl::MutexLock lock(&mu_);
      auto has_room = [this, &plan]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return outstanding_ < plan.max_outstanding;
      };
      const absl::Duration left = absl::Nanoseconds(send_end_ns - NowNanos());
      if (!mu_.AwaitWithTimeout(absl::Condition(&has_room), left)) break;
      ++outstanding_;
    }
    Send(i, events, plan);
  }

  // Every call carries a deadline, so each one is answered; the bound here
  // only guards against a broken gRPC runtime.
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return outstanding_ == 0;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&idle),
                            plan.rpc_deadline + absl::Seconds(30))) {
    std::fprintf(stderr, "webhook-bench: %d calls never completed\n",
                 outstanding_);
    std::abort();
  }
  return std::move(outcomes_);
}

void LoadGenerator::Done() {
  absl::MutexLock lock(&mu_);
  --outstanding_;
}

struct LoadGenerator::BatchCall {
  grpc::ClientContext context;
  webhook::v1::SubmitEventsRequest request;
  webhook::v1::SubmitEventsResponse response;
};

void LoadGenerator::SendBatch(int64_t index, int64_t count,
                              const LoadPlan& plan) {
  auto* call = new BatchCall;
  call->context.set_deadline(Deadline(plan.rpc_deadline));
  call->request.mutable_events()->Reserve(static_cast<int>(count));
  for (int64_t i = index; i < index + count; ++i) {
    *call->request.add_events() = requests_[outcomes_[i].request];
  }
  webhook::v1::WebhookService::Stub& stub =
      *stubs_[static_cast<size_t>(index / plan.batch) % stubs_.size()];
  const int64_t sent_ns = NowNanos();
  for (int64_t i = index; i < index + count; ++i) {
    outcomes_[i].sent_ns = sent_ns;
  }
  stub.async()->SubmitEvents(
      &call->context, &call->request, &call->response,
      [this, call, index, count](grpc::Status status) {
        const int64_t done_ns = NowNanos();
        const bool answered =
            status.ok() && call->response.results_size() == count;
        for (int64_t i = 0; i < count; ++i) {
          EventOutcome& outcome = outcomes_[index + i];
          outcome.done_ns = done_ns;
          if (!answered) {
            outcome.code =
                status.ok() ? grpc::StatusCode::INTERNAL : status.error_code();
            continue;
          }
          webhook::v1::SubmitEventResult& result =
              *call->response.mutable_results(static_cast<int>(i));
          outcome.code = result.code();
          auto* ids = result.mutable_response()->mutable_delivery_ids();
          outcome.delivery_ids.assign(std::make_move_iterator(ids->begin()),
                                      std::make_move_iterator(ids->end()));
        }
        delete call;
        Done();
      });
}

void LoadGenerator::Send(int64_t index, int64_t count, const LoadPlan& plan) {
  if (plan.batch > 1) {
    SendBatch(index, count, plan);
    return;
  }
  EventOutcome& outcome = outcomes_[index];
  auto* call = new Call;
  call->context.set_deadline(Deadline(plan.rpc_deadline));
  webhook::v1::WebhookService::Stub& stub =
      *stubs_[static_cast<size_t>(index) % stubs_.size()];
  outcome.sent_ns = NowNanos();
  stub.async()->SubmitEvent(
      &call->context, &requests_[outcome.request], &call->response,
      [this, call, &outcome](grpc::Status status) {
        outcome.done_ns = NowNanos();
        outcome.code = status.error_code();
        if (status.ok()) {
          auto* ids = call->response.mutable_delivery_ids();
          outcome.delivery_ids.assign(std::make_move_iterator(ids->begin()),
                                      std::make_move_iterator(ids->end()));
        }
        delete call;
        Done();
      });
}

absl::StatusOr<std::vector<std::string>> CreateEndpoints(
    webhook::v1::WebhookService::Stub& stub,
    const std::vector<webhook::v1::Endpoint>& endpoints, int concurrency) {
  struct Create {
    grpc::ClientContext context;
    webhook::v1::CreateEndpointRequest request;
    webhook::v1::CreateEndpointResponse response;
  };
  std::vector<std::string> ids(endpoints.size());
  absl::Mutex mu;
  int outstanding = 0;
  absl::Status first_error;
  for (size_t i = 0; i < endpoints.size(); ++i) {
    {
      absl::MutexLock lock(&mu);
      auto has_room = [&] { return outstanding < std::max(concurrency, 1); };
      mu.Await(absl::Condition(&has_room));
      if (!first_error.ok()) break;
      ++outstanding;
    }
    auto* create = new Create;
    create->context.set_deadline(Deadline(absl::Seconds(60)));
    *create->request.mutable_endpoint() = endpoints[i];
    stub.async()->CreateEndpoint(
        &create->context, &create->request, &create->response,
        [&, create, i](grpc::Status status) {
          std::string id = create->response.endpoint().id();
          delete create;
          absl::MutexLock lock(&mu);
          if (!status.ok() && first_error.ok()) {
            first_error = absl::UnknownError(
                absl::StrCat("CreateEndpoint: ", status.error_message()));
          }
          ids[i] = std::move(id);
          --outstanding;
        });
  }
  absl::MutexLock lock(&mu);
  auto idle = [&] { return outstanding == 0; };
  mu.Await(absl::Condition(&idle));
  if (!first_error.ok()) return first_error;
  return ids;
}

webhook::v1::SubmitEventRequest ExampleEvent(const std::string& thread) {
  // The example of the product documentation (README walk-through).
  webhook::v1::SubmitEventRequest request =
      DocumentedExampleEvent("Sales were up 4%.");
  request.set_thread_id(thread);
  return request;
}

}  // namespace webhookd::bench
