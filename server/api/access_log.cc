#include "server/api/access_log.h"

#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/common/logging.h"

namespace webhookd {
namespace {

using grpc::experimental::InterceptionHookPoints;

constexpr const char* kCodeNames[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char* CodeName(grpc::StatusCode code) {
  const int index = static_cast<int>(code);
  if (index < 0 || index >= static_cast<int>(std::size(kCodeNames))) {
    return "UNKNOWN";
  }
  return kCodeNames[index];
}

class AccessLogInterceptor : public grpc::experimental::Interceptor {
 public:
  AccessLogInterceptor(grpc::experimental::ServerRpcInfo* info,
                       const Authenticator& auth)
      : info_(info), auth_(auth), start_(absl::Now()) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS) &&
        LogEnabled(LogLevel::kInfo)) {
      LogCall(methods->GetSendStatus());
    }
    methods->Proceed();
  }

 private:
  void LogCall(const grpc::Status& status) {
    const int64_t duration_us = absl::ToInt64Microseconds(absl::Now() - start_);
    grpc::ServerContextBase* context = info_->server_context();
    std::string user;
    if (auth_.enabled() && context != nullptr) {
      absl::StatusOr<Caller> caller = auth_.Authenticate(*context);
      if (caller.ok() && caller->user_id.has_value()) {
        user = std::to_string(*caller->user_id);
      }
    }
    std::vector<LogField> fields;
    fields.reserve(6);
    fields.emplace_back("method", info_->method());
    if (context != nullptr) fields.emplace_back("peer", context->peer());
    if (!user.empty()) fields.emplace_back("user", user);
    fields.emplace_back("code", CodeName(status.error_code()));
    fields.emplace_back("duration_us", duration_us);
    Log(LogLevel::kInfo, "grpc call", fields);
  }

  grpc::experimental::ServerRpcInfo* const info_;
  const Authenticator& auth_;
  const absl::Time start_;
};

}  // namespace

grpc::experimental::Interceptor*
AccessLogInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  // While info lines are off, calls carry no interceptor at all (gRPC skips
  // a null one), which spares each call an allocation and its hook calls.
  if (!LogEnabled(LogLevel::kInfo)) return nullptr;
  return new AccessLogInterceptor(info, auth_);
}

}  // namespace webhookd
