// Early-return helpers for absl::Status (Debian's Abseil has none). Inside
// webhookd errors are absl::Status; grpc::Status appears only at the RPC edge
// (server/api/grpc_status.h).

#ifndef WEBHOOKD_SERVER_COMMON_STATUS_MACROS_H_
#define WEBHOOKD_SERVER_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"

// Returns from the enclosing function if `expr` is not OK.
#define WEBHOOKD_RETURN_IF_ERROR(expr)                                \
  do {                                                                \
    if (absl::Status _status = (expr); !_status.ok()) return _status; \
  } while (0)

#define WEBHOOKD_CONCAT_INNER(a, b) a##b
#define WEBHOOKD_CONCAT(a, b) WEBHOOKD_CONCAT_INNER(a, b)

// `lhs = value of expr`, or returns its status from the enclosing function.
#define WEBHOOKD_ASSIGN_OR_RETURN(lhs, expr)                                \
  WEBHOOKD_ASSIGN_OR_RETURN_IMPL(WEBHOOKD_CONCAT(_statusor, __LINE__), lhs, \
                                 expr)
#define WEBHOOKD_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()

#endif  // WEBHOOKD_SERVER_COMMON_STATUS_MACROS_H_
