// Fuzzes the conversion of API requests into what webhookd stores and
// sends: SubmitEventRequest -> payload JSON, Endpoint -> validation, and
// test payloads.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "nlohmann/json.hpp"
#include "server/delivery/payload.h"
#include "server/delivery/validation.h"
#include "webhook/v1/webhook_service.pb.h"

namespace {

void Check(bool invariant) {
  if (!invariant) std::abort();
}

void FuzzSubmit(const uint8_t* data, size_t size) {
  webhook::v1::SubmitEventRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return;
  const absl::StatusOr<std::string> payload =
      webhookd::RenderEventPayload(request);
  if (!payload.ok()) {
    Check(payload.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  // Always one valid UTF-8 JSON object with the documented keys.
  Check(webhookd::IsValidUtf8(*payload));
  Check(webhookd::ValidateJsonObject(*payload, "payload").ok());
  const nlohmann::json json = nlohmann::json::parse(*payload, nullptr, false);
  Check(json.is_object());
  for (const char* key : {"event", "triggerId", "triggerName", "execution",
                          "threadId", "userId"}) {
    Check(json.contains(key));
  }
  Check(json["userId"].is_number_integer());
  Check(json["userId"].get<int64_t>() == request.user_id());
}

void FuzzEndpoint(const uint8_t* data, size_t size) {
  webhook::v1::Endpoint endpoint;
  if (!endpoint.ParseFromArray(data, static_cast<int>(size))) return;
  webhookd::TargetPolicy secure;
  webhookd::TargetPolicy insecure;
  insecure.allow_insecure_targets = true;
  const absl::Status strict = webhookd::ValidateEndpoint(endpoint, secure);
  const absl::Status lax = webhookd::ValidateEndpoint(endpoint, insecure);
  Check(!strict.ok() || lax.ok());
  for (const absl::Status& status : {strict, lax}) {
    if (!status.ok()) {
      Check(status.code() == absl::StatusCode::kInvalidArgument);
      Check(status.message().rfind("endpoint.", 0) == 0);
      // Errors never echo the secret.
      if (endpoint.secret().size() >= 8) {
        Check(std::string(status.message()).find(endpoint.secret()) ==
              std::string::npos);
      }
    }
  }
}

void FuzzTestPayload(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (!webhookd::ValidateJsonObject(text, "payload_json").ok()) return;
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  Check(json.is_object());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the conversion; the rest is its input.
  switch (data[0] % 3) {
    case 0:
      FuzzSubmit(data + 1, size - 1);
      break;
    case 1:
      FuzzEndpoint(data + 1, size - 1);
      break;
    default:
      FuzzTestPayload(data + 1, size - 1);
      break;
  }
  return 0;
}
