// Debian's Abseil has its own absl::string_view
// (ABSL_OPTION_USE_STD_STRING_VIEW is 0), so absl::StrCat and friends do not
// take a std::string_view: convert it explicitly.

#ifndef WEBHOOKD_SERVER_COMMON_STRING_VIEW_H_
#define WEBHOOKD_SERVER_COMMON_STRING_VIEW_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace webhookd {

inline absl::string_view AsAbsl(std::string_view s) {
  return {s.data(), s.size()};
}

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_COMMON_STRING_VIEW_H_
