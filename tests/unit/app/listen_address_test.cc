#include "server/app/listen_address.h"

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace webhookd {
namespace {

MATCHER_P(IsInvalidSaying, why, "") {
  return arg.code() == absl::StatusCode::kInvalidArgument &&
         absl::StrContains(arg.message(), "--listen=") &&
         absl::StrContains(arg.message(), why);
}

TEST(ListenAddressTest, AcceptsHostAndPort) {
  for (const char* listen :
       {"127.0.0.1:50051", "127.0.0.1:0", "localhost:65535", "0.0.0.0:1",
        "webhookd.internal:443", "[::1]:50051", "[::]:0",
        "[::ffff:127.0.0.1]:8080"}) {
    EXPECT_TRUE(ValidateListenAddress(listen).ok()) << listen;
  }
}

TEST(ListenAddressTest, AcceptsUnixSockets) {
  EXPECT_TRUE(ValidateListenAddress("unix:/run/webhookd.sock").ok());
  EXPECT_TRUE(ValidateListenAddress("unix-abstract:webhookd").ok());
  EXPECT_THAT(ValidateListenAddress("unix:"), IsInvalidSaying("socket path"));
}

TEST(ListenAddressTest, PortOutOfRangeIsRefused) {
  EXPECT_THAT(ValidateListenAddress("localhost:99999"),
              IsInvalidSaying("port 99999 is out of range (0 to 65535)"));
  EXPECT_THAT(ValidateListenAddress("localhost:65536"),
              IsInvalidSaying("out of range"));
  EXPECT_THAT(ValidateListenAddress("127.0.0.1:123456"),
              IsInvalidSaying("not a number from 0 to 65535"));
}

TEST(ListenAddressTest, MissingPortIsNamed) {
  EXPECT_THAT(ValidateListenAddress("127.0.0.1"), IsInvalidSaying("no port"));
  EXPECT_THAT(ValidateListenAddress("127.0.0.1:"), IsInvalidSaying("no port"));
  EXPECT_THAT(ValidateListenAddress("[::1]"),
              IsInvalidSaying("no port after the IPv6 address"));
  EXPECT_THAT(ValidateListenAddress("127.0.0.1"),
              IsInvalidSaying("expected host:port"));
}

TEST(ListenAddressTest, PortMustBeANumber) {
  EXPECT_THAT(ValidateListenAddress("localhost:http"),
              IsInvalidSaying("port \"http\" is not a number"));
  EXPECT_THAT(ValidateListenAddress("localhost:-1"),
              IsInvalidSaying("not a number"));
  EXPECT_THAT(ValidateListenAddress("localhost: 80"),
              IsInvalidSaying("not a number"));
}

TEST(ListenAddressTest, Ipv6NeedsBrackets) {
  EXPECT_THAT(ValidateListenAddress("::1:50051"),
              IsInvalidSaying("must be in brackets"));
  EXPECT_THAT(ValidateListenAddress("[::1:50051"), IsInvalidSaying("']'"));
  EXPECT_THAT(ValidateListenAddress("[localhost]:50051"),
              IsInvalidSaying("not an IPv6 address"));
}

TEST(ListenAddressTest, HostIsRequiredAndPlain) {
  EXPECT_THAT(ValidateListenAddress(":50051"), IsInvalidSaying("no host"));
  EXPECT_THAT(ValidateListenAddress(""), IsInvalidSaying("empty"));
  EXPECT_THAT(ValidateListenAddress("local host:50051"),
              IsInvalidSaying("is not a host name or address"));
}

}  // namespace
}  // namespace webhookd
