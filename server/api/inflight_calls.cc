#include "server/api/inflight_calls.h"

namespace webhookd {

// Lives exactly as long as its call: gRPC creates it when the call starts
// and destroys it with the call.
class InflightCalls::Interceptor final
    : public grpc::experimental::Interceptor {
 public:
  explicit Interceptor(InflightCalls& calls) : calls_(calls) { calls_.Add(1); }
  ~Interceptor() override { calls_.Add(-1); }

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  InflightCalls& calls_;
};

class InflightCalls::Factory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(InflightCalls& calls) : calls_(calls) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* /*info*/) override {
    return new Interceptor(calls_);
  }

 private:
  InflightCalls& calls_;
};

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
InflightCalls::NewInterceptorFactory() {
  return std::make_unique<Factory>(*this);
}

int64_t InflightCalls::Count() const {
  absl::MutexLock lock(&mu_);
  return count_;
}

bool InflightCalls::WaitUntilIdle(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto idle = [this]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return count_ == 0; };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

void InflightCalls::Add(int64_t delta) {
  absl::MutexLock lock(&mu_);
  count_ += delta;
}

}  // namespace webhookd
