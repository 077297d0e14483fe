// main() of every test binary: GoogleTest's, after one setting for gRPC.

#include <stdlib.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

int main(int argc, char** argv) {
  // A webhookd stopping gracefully waits until each client connection acks
  // its shutdown ping, and an idle client channel reads its socket only
  // when gRPC's backup poller runs: every 5 s by default. Poll more often,
  // so that tests that stop a server they talked to do not wait for it.
  // Set before any gRPC call reads its configuration.
  setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100",
         /*overwrite=*/0);
  ::testing::InitGoogleMock(&argc, argv);
  return RUN_ALL_TESTS();
}
