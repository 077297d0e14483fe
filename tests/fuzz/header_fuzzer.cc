// Fuzzes custom header validation: whatever it accepts must be safe to hand
// to libcurl as is (no injection, no reserved or duplicate names, limits).

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "server/delivery/validation.h"
#include "webhook/v1/webhook_service.pb.h"

namespace {

void Check(bool invariant) {
  if (!invariant) std::abort();
}

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::string("!#$%&'*+-.^_`|~").find(c) != std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider input(data, size);
  webhook::v1::Endpoint endpoint;
  const int count = input.ConsumeIntegralInRange(0, 60);
  for (int i = 0; i < count && input.remaining_bytes() > 0; ++i) {
    webhook::v1::Header* header = endpoint.add_headers();
    header->set_name(input.ConsumeRandomLengthString(300));
    // Now and then a long value, to reach the length limit.
    const size_t max_value = input.ConsumeBool() ? 5000 : 64;
    header->set_value(input.ConsumeRandomLengthString(max_value));
  }

  const absl::Status status =
      webhookd::ValidateHeaders(endpoint.headers(), "endpoint.headers");
  for (const webhook::v1::Header& header : endpoint.headers()) {
    const std::string lower = absl::AsciiStrToLower(header.name());
    const std::string upper = absl::AsciiStrToUpper(header.name());
    Check(webhookd::IsReservedHeader(lower) ==
          webhookd::IsReservedHeader(upper));
  }
  if (!status.ok()) {
    Check(status.code() == absl::StatusCode::kInvalidArgument);
    Check(status.message().rfind("endpoint.headers", 0) == 0);
    return 0;
  }
  Check(endpoint.headers_size() <= webhookd::kMaxHeaders);
  absl::flat_hash_set<std::string> names;
  for (const webhook::v1::Header& header : endpoint.headers()) {
    const std::string& name = header.name();
    Check(!name.empty() && name.size() <= webhookd::kMaxHeaderNameBytes);
    for (char c : name) Check(IsTokenChar(c));
    Check(!webhookd::IsReservedHeader(name));
    Check(names.insert(absl::AsciiStrToLower(name)).second);
    const std::string& value = header.value();
    Check(value.size() <= webhookd::kMaxHeaderValueBytes);
    for (char c : value) {
      const auto byte = static_cast<unsigned char>(c);
      Check(c == '\t' || (byte >= 0x20 && byte < 0x7f));
    }
  }
  return 0;
}
