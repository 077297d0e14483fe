// The labels of gRPC calls: only methods the server has, so that callers
// cannot add series.

#include "server/api/rpc_metrics.h"

#include "gtest/gtest.h"
#include "webhook/v1/webhook_service.pb.h"

namespace webhookd {
namespace {

using Labels = std::pair<std::string, std::string>;

TEST(RpcLabelsTest, NamesAMethodOfTheService) {
  // The service's descriptor is there once its file is linked, as in the
  // server.
  ASSERT_NE(webhook::v1::SubmitEventRequest::descriptor(), nullptr);
  EXPECT_EQ(RpcLabels("/webhook.v1.WebhookService/SubmitEvent"),
            Labels("webhook.v1.WebhookService", "SubmitEvent"));
}

TEST(RpcLabelsTest, NamesTheHealthService) {
  EXPECT_EQ(RpcLabels("/grpc.health.v1.Health/Check"),
            Labels("grpc.health.v1.Health", "Check"));
}

TEST(RpcLabelsTest, MethodsTheServerLacksAreUnknown) {
  for (const char* name :
       {"/webhook.v1.WebhookService/NoSuchMethod", "/x.Y/Z", "/", "",
        "webhook.v1.WebhookService/SubmitEvent", "/grpc.health.v1.Health/X"}) {
    EXPECT_EQ(RpcLabels(name), Labels("unknown", "unknown")) << name;
  }
}

}  // namespace
}  // namespace webhookd
