// StreamDeliveries: a live view of the delivery log over a server stream.
//
// The DeliveryHub listens to the delivery engine and fans every change out to
// the open streams whose filter matches. It only enqueues: each stream has a
// bounded buffer and at most one write in flight, and a stream that falls
// more than its buffer behind is finished with RESOURCE_EXHAUSTED, so a slow
// reader never holds up the engine or other streams. No thread per stream.

#ifndef WEBHOOKD_SERVER_API_DELIVERY_STREAM_H_
#define WEBHOOKD_SERVER_API_DELIVERY_STREAM_H_

#include <atomic>
#include <cstddef>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/server_callback.h"
#include "server/common/caller.h"
#include "server/common/thread_pool.h"
#include "server/delivery/change_bus.h"
#include "server/delivery/delivery_log.h"
#include "webhook/v1/webhook_service.pb.h"

namespace webhookd {

// Most deliveries a stream may replay (StreamDeliveriesRequest.replay_recent).
inline constexpr int kMaxReplayRecent = 1000;

struct DeliveryStreamOptions {
  // Live updates a stream may have waiting to be written before it is ended
  // with RESOURCE_EXHAUSTED. Replayed deliveries do not count.
  size_t buffer = 1000;
};

// DeliveryHub is safe for concurrent use.
class DeliveryHub final : public DeliveryListener {
 public:
  using Reactor =
      grpc::ServerWriteReactor<webhook::v1::StreamDeliveriesResponse>;

  // `log` and `blocking` (which runs the replay reads) must outlive the hub,
  // and the hub must outlive the gRPC server whose streams it serves.
  DeliveryHub(DeliveryLog& log, ThreadPool& blocking,
              DeliveryStreamOptions options);
  DeliveryHub(const DeliveryHub&) = delete;
  DeliveryHub& operator=(const DeliveryHub&) = delete;
  ~DeliveryHub() override;

  // Starts serving one StreamDeliveries call; returns its reactor (owned by
  // gRPC). INVALID_ARGUMENT for a replay_recent outside 0..1000, UNAVAILABLE
  // after Shutdown(). The stream shows only deliveries `caller` may access.
  Reactor* Open(grpc::CallbackServerContext* context,
                const webhook::v1::StreamDeliveriesRequest* request,
                const Caller& caller);

  // Finishes every open stream with UNAVAILABLE, and every later one at
  // once. Call before shutting the gRPC server down, which otherwise waits
  // for open streams until its deadline. Idempotent.
  void Shutdown();

  // Streams subscribed to live updates.
  size_t StreamCount() const;

  // DeliveryListener
  bool Listening() const override;
  void OnDeliveryChanged(
      const std::shared_ptr<const Delivery>& delivery) override;

 private:
  class Stream;

  void Unsubscribe(const Stream* stream);

  DeliveryLog& log_;
  ThreadPool& blocking_;
  const DeliveryStreamOptions options_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<const Stream*, std::shared_ptr<Stream>> streams_
      ABSL_GUARDED_BY(mu_);
  // !streams_.empty(), readable without the lock on every change.
  std::atomic<bool> listening_ = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_API_DELIVERY_STREAM_H_
