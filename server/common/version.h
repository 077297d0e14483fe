#ifndef WEBHOOKD_SERVER_COMMON_VERSION_H_
#define WEBHOOKD_SERVER_COMMON_VERSION_H_

#define WEBHOOKD_VERSION "0.1.0"

namespace webhookd {

inline constexpr char kVersion[] = WEBHOOKD_VERSION;
// Sent as User-Agent with every delivery.
inline constexpr char kUserAgent[] = "webhookd/" WEBHOOKD_VERSION;

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_COMMON_VERSION_H_
