#include "server/rest/http_error.h"

#include "nlohmann/json.hpp"

namespace webhookd {

int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

HttpError HttpError::FromStatus(const absl::Status& status) {
  HttpError error;
  error.code = status.code();
  error.http_status = HttpStatusOf(status.code());
  error.message = std::string(status.message());
  return error;
}

std::string HttpError::ToJson() const {
  nlohmann::ordered_json body;
  body["error"]["code"] = http_status;
  body["error"]["message"] = message;
  body["error"]["status"] = absl::StatusCodeToString(code);
  // Messages quote what callers sent, which need not be valid UTF-8.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace webhookd
