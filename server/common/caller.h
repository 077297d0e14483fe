// Who is calling the API, as the domain classes see it.

#ifndef WEBHOOKD_SERVER_COMMON_CALLER_H_
#define WEBHOOKD_SERVER_COMMON_CALLER_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace webhookd {

// The identity a request acts with, established once at the RPC edge (see
// server/auth.h) and passed to every domain method that reads or changes
// what users own. Without API keys there is no identity and every caller
// may see and change everything; with them, a caller acts as one user and
// what other users own does not exist for it.
struct Caller {
  // The authenticated user; unset when the server does not authenticate.
  std::optional<int64_t> user_id;

  // A caller that may see and change everything (no authentication).
  static Caller Unrestricted() { return Caller(); }
  // A caller acting as `user_id`.
  static Caller User(int64_t user_id) {
    Caller caller;
    caller.user_id = user_id;
    return caller;
  }

  // Whether the caller may see and change what `owner` owns.
  bool CanAccess(int64_t owner) const {
    return !user_id.has_value() || *user_id == owner;
  }

  // The owner to record for a request that names `requested` in `field`
  // (0: not given): the caller's own user, or PermissionDenied if the
  // request names another. Unrestricted callers get `requested`.
  absl::StatusOr<int64_t> OwnerFor(int64_t requested,
                                   absl::string_view field) const {
    if (!user_id.has_value()) return requested;
    if (requested != 0 && requested != *user_id) {
      return absl::PermissionDeniedError(absl::StrCat(
          field, ": ", requested, " is not the user of your API key (",
          *user_id, "); leave it 0 or set it to ", *user_id));
    }
    return *user_id;
  }
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_COMMON_CALLER_H_
