#include "server/api/delivery_stream.h"

#include <algorithm>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/server_context.h"
#include "server/api/grpc_status.h"

namespace webhookd {

using webhook::v1::StreamDeliveriesRequest;
using webhook::v1::StreamDeliveriesResponse;

// One StreamDeliveries call. gRPC holds it as a reactor; it keeps itself
// alive through `self_` until OnDone, and the hub and replay tasks hold
// shared pointers, so it is never freed under them. Every gRPC operation
// (StartWrite, Finish) happens under `mu_` and only before `finished_` is
// set; after Finish, nothing touches the call, so OnDone can come any time.
//
// Holding `mu_` while calling into gRPC is safe because gRPC never runs a
// server streaming reaction inline in StartWrite or Finish (they go to its
// executor), as grpc's own health Watch reactor relies on too.
class DeliveryHub::Stream final : public DeliveryHub::Reactor {
 public:
  using Message = std::shared_ptr<const StreamDeliveriesResponse>;

  Stream(DeliveryHub& hub, const StreamDeliveriesRequest& request,
         const Caller& caller, size_t buffer)
      : hub_(hub),
        request_(request),
        caller_(caller),
        buffer_(buffer),
        replaying_(request.replay_recent() > 0) {}

  // Called once, right after construction, with the owning pointer.
  void Start(std::shared_ptr<Stream> self) {
    absl::MutexLock lock(&mu_);
    self_ = std::move(self);
  }

  const StreamDeliveriesRequest& request() const { return request_; }

  bool Matches(const Delivery& delivery) const {
    return caller_.CanAccess(delivery.user_id()) &&
           (request_.endpoint_id().empty() ||
            request_.endpoint_id() == delivery.endpoint_id()) &&
           (request_.thread_id().empty() ||
            request_.thread_id() == delivery.thread_id());
  }

  // Sends the response headers, so that a client can tell it is subscribed.
  void SendHeaders() {
    absl::MutexLock lock(&mu_);
    if (!finished_) StartSendInitialMetadata();
  }

  // Queues a live update. Returns false if the stream has ended, possibly
  // just now because its buffer overflowed; the hub then drops it.
  bool Offer(const Message& message) {
    absl::MutexLock lock(&mu_);
    if (finished_) return false;
    live_.push_back(message);
    if (live_.size() > buffer_) {
      FinishLocked(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("the stream fell more than ", buffer_,
                       " updates behind; reconnect (replay_recent can catch "
                       "up on what was missed)")));
      return false;
    }
    WriteNextLocked();
    return true;
  }

  // Ends the stream with `status` unless it has ended already.
  void End(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    FinishLocked(status);
  }

  // Takes the result of the replay read (newest first) and starts writing:
  // the replay oldest first, then the live updates that came meanwhile.
  void Replay(absl::StatusOr<DeliveryPage> page) {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (!page.ok()) {
      FinishLocked(ToGrpcStatus(page.status()));
      return;
    }
    // Live updates that arrived during the read and that the read already
    // reflects would be duplicates, or even older states: drop them.
    absl::flat_hash_map<std::string, const Delivery*> replayed;
    for (auto it = page->deliveries.rbegin(); it != page->deliveries.rend();
         ++it) {
      auto message = std::make_shared<StreamDeliveriesResponse>();
      *message->mutable_delivery() = std::move(*it);
      replayed[message->delivery().id()] = &message->delivery();
      replay_.push_back(std::move(message));
    }
    std::erase_if(live_, [&replayed](const Message& message) {
      auto it = replayed.find(message->delivery().id());
      if (it == replayed.end()) return false;
      const Delivery& seen = *it->second;
      const Delivery& live = message->delivery();
      return live.attempts() < seen.attempts() ||
             (live.attempts() == seen.attempts() &&
              live.status() == seen.status());
    });
    replaying_ = false;
    WriteNextLocked();
  }

  // grpc::ServerWriteReactor
  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_.reset();
    if (!ok) {
      // The call is broken (cancelled or the connection is gone).
      FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                "the stream could not be written"));
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override {
    End(grpc::Status::CANCELLED);
    hub_.Unsubscribe(this);
  }

  void OnDone() override {
    hub_.Unsubscribe(this);
    std::shared_ptr<Stream> self;  // Released last, possibly freeing this.
    absl::MutexLock lock(&mu_);
    finished_ = true;
    self = std::move(self_);
  }

 private:
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || writing_ != nullptr) return;
    std::deque<Message>* queue = &replay_;
    if (queue->empty() && !replaying_) queue = &live_;
    if (queue->empty()) return;
    writing_ = std::move(queue->front());
    queue->pop_front();
    StartWrite(writing_.get());
  }

  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    replay_.clear();
    live_.clear();
    // A write in flight completes first; `writing_` keeps its message alive.
    Finish(status);
  }

  DeliveryHub& hub_;
  const StreamDeliveriesRequest request_;
  const Caller caller_;
  const size_t buffer_;

  absl::Mutex mu_;
  std::shared_ptr<Stream> self_ ABSL_GUARDED_BY(mu_);  // Until OnDone.
  // Waiting for the replay read; live updates wait behind it.
  bool replaying_ ABSL_GUARDED_BY(mu_);
  std::deque<Message> replay_ ABSL_GUARDED_BY(mu_);
  std::deque<Message> live_ ABSL_GUARDED_BY(mu_);
  Message writing_ ABSL_GUARDED_BY(mu_);        // The write in flight, if any.
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish was called.
};

DeliveryHub::DeliveryHub(DeliveryLog& log, ThreadPool& blocking,
                         DeliveryStreamOptions options)
    : log_(log), blocking_(blocking), options_(options) {}

DeliveryHub::~DeliveryHub() = default;

DeliveryHub::Reactor* DeliveryHub::Open(grpc::CallbackServerContext* context,
                                        const StreamDeliveriesRequest* request,
                                        const Caller& caller) {
  auto stream =
      std::make_shared<Stream>(*this, *request, caller, options_.buffer);
  stream->Start(stream);
  const int replay = request->replay_recent();
  if (replay < 0 || replay > kMaxReplayRecent) {
    stream->End(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                     absl::StrCat("replay_recent: must be between 0 and ",
                                  kMaxReplayRecent, ", got ", replay)));
    return stream.get();
  }
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) {
      stream->End(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                               "the server is shutting down"));
      return stream.get();
    }
    // Subscribed before the replay is read, so that no change is missed.
    streams_[stream.get()] = stream;
    listening_.store(true, std::memory_order_relaxed);
  }
  // A header of its own tells a subscribed stream from one ended at once
  // (whose response has no headers but trailers): the HTTP/JSON API waits
  // for it before answering 200.
  context->AddInitialMetadata("webhookd-subscribed", "true");
  stream->SendHeaders();
  if (replay > 0) {
    DeliveryFilter filter;
    filter.endpoint_id = request->endpoint_id();
    filter.thread_id = request->thread_id();
    // The read may block on storage: not on a gRPC thread. Captures the log,
    // not the hub, which the pool may outlive.
    blocking_.Schedule([log = &log_, filter, replay, stream, caller] {
      stream->Replay(log->List(caller, filter, replay, ""));
    });
  }
  return stream.get();
}

void DeliveryHub::Shutdown() {
  absl::flat_hash_map<const Stream*, std::shared_ptr<Stream>> streams;
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    streams.swap(streams_);
    listening_.store(false, std::memory_order_relaxed);
  }
  for (auto& [key, stream] : streams) {
    stream->End(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                             "the server is shutting down"));
  }
}

size_t DeliveryHub::StreamCount() const {
  absl::MutexLock lock(&mu_);
  return streams_.size();
}

bool DeliveryHub::Listening() const {
  return listening_.load(std::memory_order_relaxed);
}

void DeliveryHub::OnDeliveryChanged(
    const std::shared_ptr<const Delivery>& delivery) {
  // One message shared by every matching stream: O(1) work per stream. The
  // bus gives the listed shape (no payload, no attempt_history), the same
  // as the replay's.
  std::shared_ptr<StreamDeliveriesResponse> message;
  std::vector<const Stream*> ended;
  absl::MutexLock lock(&mu_);
  for (auto& [key, stream] : streams_) {
    if (!stream->Matches(*delivery)) continue;
    if (message == nullptr) {
      message = std::make_shared<StreamDeliveriesResponse>();
      *message->mutable_delivery() = *delivery;
    }
    if (!stream->Offer(message)) ended.push_back(key);
  }
  for (const Stream* key : ended) streams_.erase(key);
  listening_.store(!streams_.empty(), std::memory_order_relaxed);
}

void DeliveryHub::Unsubscribe(const Stream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
  listening_.store(!streams_.empty(), std::memory_order_relaxed);
}

}  // namespace webhookd
