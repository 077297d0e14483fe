#include "server/app/effective_config.h"

#include <string>

#include "absl/flags/flag.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

ABSL_FLAG(std::string, postgres, "",
          "Same name as webhookd's: described without its password.");
ABSL_FLAG(std::string, webhook_secret, "", "Masked: a secret.");
ABSL_FLAG(std::string, db_password, "", "Masked: a password.");
ABSL_FLAG(std::string, secrets_key_file, "", "Shown: a path.");
ABSL_FLAG(int, workers, 2, "Shown.");

namespace webhookd {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

constexpr char kThisFile[] = "tests/unit/app/effective_config_test.cc";

TEST(EffectiveFlagsTest, ListsTheFileFlagsSortedWithSecretsMasked) {
  absl::SetFlag(&FLAGS_postgres,
                "host=db port=5432 dbname=webhookd user=w password=hunter2");
  absl::SetFlag(&FLAGS_webhook_secret, "s3cret");
  absl::SetFlag(&FLAGS_db_password, "hunter2");
  absl::SetFlag(&FLAGS_secrets_key_file, "/etc/webhookd/key");
  EXPECT_THAT(
      EffectiveFlags(kThisFile),
      ElementsAre(Pair("db_password", "********"),
                  Pair("postgres", "host=db port=5432 dbname=webhookd user=w"),
                  Pair("secrets_key_file", "/etc/webhookd/key"),
                  Pair("webhook_secret", "********"), Pair("workers", "2")));
}

TEST(EffectiveFlagsTest, UnsetSecretsShowAsEmptyAndOverridesApply) {
  absl::SetFlag(&FLAGS_webhook_secret, "");
  absl::SetFlag(&FLAGS_postgres, "");
  const FlagValues flags =
      EffectiveFlags(kThisFile, {{"workers", "2,3"}, {"postgres", "x=1"}});
  EXPECT_THAT(flags, ::testing::Contains(Pair("webhook_secret", "")));
  EXPECT_THAT(flags, ::testing::Contains(Pair("workers", "2,3")));
  // An override goes through the same masking; libpq cannot parse this.
  EXPECT_THAT(flags, ::testing::Contains(Pair("postgres", "********")));
}

}  // namespace
}  // namespace webhookd
