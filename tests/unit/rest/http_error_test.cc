// HttpError: gRPC codes to HTTP statuses as google/rpc/code.proto maps
// them, and Google's JSON error form.

#include "server/rest/http_error.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace webhookd {
namespace {

TEST(HttpErrorTest, CodesMapAsGoogleRpcCodeSays) {
  for (const auto& [code, status] :
       std::vector<std::pair<absl::StatusCode, int>>{
           {absl::StatusCode::kOk, 200},
           {absl::StatusCode::kInvalidArgument, 400},
           {absl::StatusCode::kFailedPrecondition, 400},
           {absl::StatusCode::kOutOfRange, 400},
           {absl::StatusCode::kUnauthenticated, 401},
           {absl::StatusCode::kPermissionDenied, 403},
           {absl::StatusCode::kNotFound, 404},
           {absl::StatusCode::kAlreadyExists, 409},
           {absl::StatusCode::kAborted, 409},
           {absl::StatusCode::kResourceExhausted, 429},
           {absl::StatusCode::kCancelled, 499},
           {absl::StatusCode::kUnimplemented, 501},
           {absl::StatusCode::kUnavailable, 503},
           {absl::StatusCode::kDeadlineExceeded, 504},
           {absl::StatusCode::kInternal, 500},
           {absl::StatusCode::kUnknown, 500},
           {absl::StatusCode::kDataLoss, 500}}) {
    EXPECT_EQ(HttpStatusOf(code), status) << absl::StatusCodeToString(code);
  }
}

TEST(HttpErrorTest, JsonFormHasTheHttpStatusMessageAndCodeName) {
  const HttpError error =
      HttpError::FromStatus(absl::NotFoundError("endpoint \"ep_1\" not found"));
  EXPECT_EQ(error.http_status, 404);
  const nlohmann::json body = nlohmann::json::parse(error.ToJson());
  EXPECT_EQ(body, nlohmann::json::parse(R"({"error": {"code": 404,
      "message": "endpoint \"ep_1\" not found", "status": "NOT_FOUND"}})"));
}

TEST(HttpErrorTest, MessagesThatAreNotUtf8StillMakeValidJson) {
  const HttpError error =
      HttpError::FromStatus(absl::InvalidArgumentError("bad \xff byte"));
  const nlohmann::json body = nlohmann::json::parse(error.ToJson(), nullptr,
                                                    /*allow_exceptions=*/false);
  ASSERT_TRUE(body.is_object()) << error.ToJson();
  EXPECT_EQ(body["error"]["status"], "INVALID_ARGUMENT");
}

}  // namespace
}  // namespace webhookd
