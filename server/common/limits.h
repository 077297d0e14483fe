// Every limit on what clients send, in one place: validation, the RPC
// handlers and the documentation (README "Limits") refer to these.

#ifndef WEBHOOKD_SERVER_COMMON_LIMITS_H_
#define WEBHOOKD_SERVER_COMMON_LIMITS_H_

#include <cstddef>

namespace webhookd {

// Endpoint configuration.
inline constexpr int kMaxNameChars = 200;
inline constexpr int kMaxUrlBytes = 2048;
inline constexpr int kMaxThreadIdBytes = 256;
inline constexpr int kMaxSecretBytes = 1024;
// Ids are a prefix and 32 hex digits (ids.h); longer ones are refused
// before any lookup, so that no error echoes an unbounded id.
inline constexpr size_t kMaxIdBytes = 64;
inline constexpr int kMaxHeaders = 50;
inline constexpr int kMaxHeaderNameBytes = 256;
inline constexpr int kMaxHeaderValueBytes = 4096;
// Entries of Endpoint.event_types; each is at most kMaxEventTypeBytes.
inline constexpr int kMaxEventTypeFilters = 50;

// Events.
inline constexpr size_t kMaxIdempotencyKeyBytes = 255;
inline constexpr size_t kMaxEventTypeBytes = 128;
// Default of --max_payload_bytes: the largest rendered payload accepted.
inline constexpr size_t kDefaultMaxPayloadBytes = 256 * 1024;
// Events of one SubmitEvents call.
inline constexpr int kMaxEventsPerBatch = 1000;

// List calls (AIP-158): page_size 0 means the default, larger values are
// lowered to the maximum.
inline constexpr int kDefaultPageSize = 50;
inline constexpr int kMaxPageSize = 1000;

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_COMMON_LIMITS_H_
