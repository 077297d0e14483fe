// Errors of the HTTP/JSON API: a status code and Google's JSON error body,
// {"error":{"code":404,"message":"...","status":"NOT_FOUND"}}.

#ifndef WEBHOOKD_SERVER_REST_HTTP_ERROR_H_
#define WEBHOOKD_SERVER_REST_HTTP_ERROR_H_

#include <string>

#include "absl/status/status.h"

namespace webhookd {

// The HTTP status of a canonical (gRPC or absl) status code, as
// google/rpc/code.proto maps them: INVALID_ARGUMENT, FAILED_PRECONDITION and
// OUT_OF_RANGE 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND
// 404, ALREADY_EXISTS and ABORTED 409, RESOURCE_EXHAUSTED 429, CANCELLED
// 499, UNIMPLEMENTED 501, UNAVAILABLE 503, DEADLINE_EXCEEDED 504, OK 200,
// any other 500.
int HttpStatusOf(absl::StatusCode code);

// An error answered over HTTP.
struct HttpError {
  // The HTTP status; usually HttpStatusOf(code), but the transport's own
  // errors (405, 413, 415) have no code of their own.
  int http_status = 500;
  absl::StatusCode code = absl::StatusCode::kInternal;
  std::string message;

  // The error of a failed `status` (not OK), with its mapped HTTP status.
  static HttpError FromStatus(const absl::Status& status);

  // Google's JSON error form: {"error":{"code":<http_status>,"message":...,
  // "status":"<CODE_NAME>"}}.
  std::string ToJson() const;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_REST_HTTP_ERROR_H_
