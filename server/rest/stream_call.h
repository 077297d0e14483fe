// A server-streaming gRPC call made through a generic stub with serialized
// messages, read by a thread that waits for each message in turn (the
// thread of an HTTP response that relays them as Server-Sent Events).

#ifndef WEBHOOKD_SERVER_REST_STREAM_CALL_H_
#define WEBHOOKD_SERVER_REST_STREAM_CALL_H_

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/client_callback.h"

namespace webhookd {

// Thread-safe. Messages are read as they come and queued for Next; a
// reader that falls more than `max_queued` messages behind has its call
// cancelled (Next then reports the end, with fell_behind() set), as the
// server ends a stream that falls too far behind.
class StreamCall final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // Starts the call of `method` ("/package.Service/Method") with one
  // serialized request message and the given metadata. `stub` must outlive
  // the call.
  StreamCall(grpc::GenericStub& stub, const std::string& method,
             const std::string& request,
             const std::vector<std::pair<std::string, std::string>>& metadata,
             size_t max_queued);
  StreamCall(const StreamCall&) = delete;
  StreamCall& operator=(const StreamCall&) = delete;
  // Cancels the call if it still runs and waits until gRPC is done with it.
  ~StreamCall() override;

  // Blocks until the server has sent initial metadata of its own (it has
  // accepted the call: a server that ends a call at once sends trailers
  // only) or the call has ended. Returns false if it has ended.
  bool WaitStarted();

  // Waits up to `timeout` for the next message. Returns it, or nullopt on a
  // timeout or once the call has ended (see done()).
  std::optional<std::string> Next(absl::Duration timeout);

  // Whether the call has ended, and with which status.
  bool done() const;
  grpc::Status status() const;
  // Whether it was cancelled because the reader fell behind.
  bool fell_behind() const;

  // Ends the call from this side (TryCancel); Next returns at once.
  void Cancel();

  // grpc::ClientBidiReactor
  void OnReadInitialMetadataDone(bool ok) override;
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  const size_t max_queued_;
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  // Written by gRPC between StartRead and OnReadDone only.
  grpc::ByteBuffer incoming_;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  // Messages read and not yet taken by Next, oldest first.
  std::deque<std::string> messages_ ABSL_GUARDED_BY(mu_);
  bool fell_behind_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_REST_STREAM_CALL_H_
