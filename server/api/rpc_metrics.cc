#include "server/api/rpc_metrics.h"

#include "google/protobuf/descriptor.h"

namespace webhookd {
namespace {

class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(
      Metrics& metrics,
      std::shared_ptr<const std::pair<std::string, std::string>> labels)
      : metrics_(metrics), labels_(std::move(labels)) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_.RpcFinished(labels_->first, labels_->second,
                           methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  Metrics& metrics_;
  const std::shared_ptr<const std::pair<std::string, std::string>> labels_;
};

}  // namespace

std::pair<std::string, std::string> RpcLabels(const std::string& full_method) {
  const size_t slash = full_method.rfind('/');
  if (slash != std::string::npos && slash > 1 && full_method[0] == '/') {
    std::string service = full_method.substr(1, slash - 1);
    std::string method = full_method.substr(slash + 1);
    // The health service is built without a protobuf descriptor.
    const bool health = service == "grpc.health.v1.Health" &&
                        (method == "Check" || method == "Watch");
    if (health ||
        google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
            service + "." + method) != nullptr) {
      return {std::move(service), std::move(method)};
    }
  }
  return {"unknown", "unknown"};
}

grpc::experimental::Interceptor*
RpcMetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  const std::string full_method = info->method();
  std::shared_ptr<const Labels> labels;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto found = labels_.find(full_method);
    if (found != labels_.end()) labels = found->second;
  }
  if (labels == nullptr) {
    auto parsed = std::make_shared<const Labels>(RpcLabels(full_method));
    absl::MutexLock lock(&mu_);
    // Only known methods are kept, so that the map stays bounded too.
    if (parsed->first != "unknown") labels_.try_emplace(full_method, parsed);
    labels = std::move(parsed);
  }
  return new RpcMetricsInterceptor(metrics_, std::move(labels));
}

}  // namespace webhookd
