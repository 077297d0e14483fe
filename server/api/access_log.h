// The access log of gRPC calls (--access_log): one info line per finished
// call (README "Logging").

#ifndef WEBHOOKD_SERVER_API_ACCESS_LOG_H_
#define WEBHOOKD_SERVER_API_ACCESS_LOG_H_

#include "grpcpp/support/server_interceptor.h"
#include "server/api/auth.h"

namespace webhookd {

// Makes a server interceptor per call that logs, at info level when the
// call ends: method, peer, the API key's user when the call carries a
// valid one, status code and duration (microseconds). A call that starts
// while info lines are off gets no interceptor. Never logs metadata values or
// messages.
class AccessLogInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // `auth` must outlive the server.
  explicit AccessLogInterceptorFactory(const Authenticator& auth)
      : auth_(auth) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  const Authenticator& auth_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_API_ACCESS_LOG_H_
