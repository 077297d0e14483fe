// Idempotency keys: the fingerprint that tells a repeated SubmitEvent from a
// different request sent with the same key, and the answer to a repeat.

#ifndef WEBHOOKD_SERVER_DELIVERY_REQUEST_FINGERPRINT_H_
#define WEBHOOKD_SERVER_DELIVERY_REQUEST_FINGERPRINT_H_

#include <string>

#include "absl/status/statusor.h"
#include "storage/store.h"
#include "webhook/v1/webhook_service.pb.h"

namespace webhookd {

// The SHA-256 (32 raw bytes) of the deterministic protobuf serialization of
// `request` with its idempotency_key cleared. Call metadata (the trace
// context) is not part of it: a retry may well carry a new span.
std::string RequestFingerprint(const webhook::v1::SubmitEventRequest& request);

// The answer to `event`'s submit when its user's idempotency key was first
// used by `first`: first's response with replayed set, or AlreadyExists
// naming the key when the two requests' fingerprints differ. An empty
// fingerprint (a record written before they were kept) matches any.
absl::StatusOr<SubmitEventResponse> AnswerRepeatedKey(const EventRecord& event,
                                                      const Submission& first);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_REQUEST_FINGERPRINT_H_
