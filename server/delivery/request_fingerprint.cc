#include "server/delivery/request_fingerprint.h"

#include <openssl/evp.h>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace webhookd {

std::string RequestFingerprint(const webhook::v1::SubmitEventRequest& request) {
  webhook::v1::SubmitEventRequest keyless = request;
  keyless.clear_idempotency_key();
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    // Map entries (in google.protobuf.Struct) in key order, so that equal
    // requests always give equal bytes.
    coded.SetSerializationDeterministic(true);
    keyless.SerializeToCodedStream(&coded);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(),
                 nullptr) != 1) {
    // Only when OpenSSL runs out of memory: no fingerprint, which matches
    // any request, as those recorded before fingerprints were kept.
    return "";
  }
  return std::string(reinterpret_cast<const char*>(digest), size);
}

absl::StatusOr<SubmitEventResponse> AnswerRepeatedKey(const EventRecord& event,
                                                      const Submission& first) {
  if (!event.request_fingerprint().empty() &&
      !first.request_fingerprint.empty() &&
      event.request_fingerprint() != first.request_fingerprint) {
    // AlreadyExists rather than FailedPrecondition: what the key names
    // (the event) exists, made by another request; retrying cannot help.
    return absl::AlreadyExistsError(absl::StrCat(
        "idempotency_key: \"", event.idempotency_key(),
        "\" was already used with a different request (it made event ",
        first.response.event_id(),
        "); send the same request to get that response again, or use a new "
        "key for a new event"));
  }
  SubmitEventResponse response = first.response;
  response.set_replayed(true);
  return response;
}

}  // namespace webhookd
