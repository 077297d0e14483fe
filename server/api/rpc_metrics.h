// Counts every gRPC call the server finishes, by service, method and status
// code, into Metrics (webhookd_grpc_server_handled_total).

#ifndef WEBHOOKD_SERVER_API_RPC_METRICS_H_
#define WEBHOOKD_SERVER_API_RPC_METRICS_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/server_interceptor.h"
#include "server/common/metrics.h"

namespace webhookd {

// The labels of a full gRPC method name ("/package.Service/Method"): the
// service and method when the server has such a method (a generated
// protobuf service, or grpc.health.v1.Health), else "unknown" twice, so
// that callers cannot make labels up.
std::pair<std::string, std::string> RpcLabels(const std::string& full_method);

// Hands each call an interceptor that reports its status to `metrics`,
// which must outlive the server. Safe for concurrent use.
class RpcMetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsInterceptorFactory(Metrics& metrics) : metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  Metrics& metrics_;

  using Labels = std::pair<std::string, std::string>;
  // RpcLabels of each method name seen (unknown ones under "unknown").
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const Labels>> labels_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_API_RPC_METRICS_H_
