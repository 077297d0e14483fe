// Page sizes of list calls (AIP-158): 0 means the default, larger values
// are lowered to the maximum, negative ones are refused.

#ifndef WEBHOOKD_SERVER_COMMON_PAGING_H_
#define WEBHOOKD_SERVER_COMMON_PAGING_H_

#include <algorithm>
#include <cstdint>

#include "absl/status/statusor.h"
#include "server/common/limits.h"

namespace webhookd {

inline absl::StatusOr<int> NormalizePageSize(int32_t page_size) {
  if (page_size < 0) {
    return absl::InvalidArgumentError("page_size: must not be negative");
  }
  if (page_size == 0) return kDefaultPageSize;
  return std::min<int>(page_size, kMaxPageSize);
}

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_COMMON_PAGING_H_
