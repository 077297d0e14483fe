// Identifiers of endpoints, events and deliveries.

#ifndef WEBHOOKD_SERVER_COMMON_IDS_H_
#define WEBHOOKD_SERVER_COMMON_IDS_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace webhookd {

// Returns `prefix` followed by 32 lowercase hex digits, e.g. "ep_0193...":
// 12 of the creation time in milliseconds, then 20 of 80 random bits from a
// cryptographic generator. Ids made later sort after earlier ones, so the
// records keyed by them are written in key order: LevelDB then compacts
// new records without rewriting old ones (see BENCHMARKS.md). 80 random bits
// keep them unguessable and, within one millisecond, unique.
std::string NewId(std::string_view prefix);

// Returns 2 * `bytes` lowercase hex digits of cryptographically random bits,
// never all zeros (e.g. W3C trace and span ids).
std::string RandomHex(size_t bytes);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_COMMON_IDS_H_
