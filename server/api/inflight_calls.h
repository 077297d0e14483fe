// InflightCalls: counts the gRPC calls a server is running, so that a
// shutdown can wait for calls rather than for connections.
//
// gRPC's Server::Shutdown(deadline) lets running calls finish, but it also
// waits until every client has closed its connection, and a client that
// keeps an idle channel open may not close it before the deadline. Knowing
// when the last call has ended lets the server close idle connections at
// once instead.

#ifndef WEBHOOKD_SERVER_API_INFLIGHT_CALLS_H_
#define WEBHOOKD_SERVER_API_INFLIGHT_CALLS_H_

#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/support/server_interceptor.h"

namespace webhookd {

// InflightCalls is safe for concurrent use. It must outlive the server
// whose interceptor factory it made.
class InflightCalls {
 public:
  InflightCalls() = default;
  InflightCalls(const InflightCalls&) = delete;
  InflightCalls& operator=(const InflightCalls&) = delete;

  // An interceptor factory for grpc::ServerBuilder::
  // experimental().SetInterceptorCreators: every call counts from its start
  // until gRPC has destroyed it.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  NewInterceptorFactory();

  // Calls running now.
  int64_t Count() const;

  // Waits until no call runs or `deadline` passes; returns whether none
  // runs.
  bool WaitUntilIdle(absl::Time deadline) const;

 private:
  class Factory;
  class Interceptor;

  void Add(int64_t delta);

  mutable absl::Mutex mu_;
  int64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_API_INFLIGHT_CALLS_H_
