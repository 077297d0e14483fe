#include "server/app/listen_address.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/common/host_port.h"
#include "server/common/string_view.h"

namespace webhookd {

absl::Status ValidateListenAddress(std::string_view listen_std) {
  const absl::string_view listen = AsAbsl(listen_std);
  for (absl::string_view scheme : {"unix:", "unix-abstract:"}) {
    absl::string_view path = listen;
    if (absl::ConsumePrefix(&path, scheme)) {
      if (path.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--listen=", listen, ": no socket path after ", scheme));
      }
      return absl::OkStatus();
    }
  }
  return ParseHostPort(listen_std, "--listen",
                       "; expected host:port, e.g. 127.0.0.1:50051, "
                       "[::1]:50051 or unix:/path/to.sock (port 0 picks a "
                       "free one)")
      .status();
}

}  // namespace webhookd
