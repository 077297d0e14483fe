#include "server/delivery/sealed_secrets_store.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/leveldb/leveldb_store.h"
#include "tests/support/test_dir.h"

namespace webhookd {
namespace {

using ::testing::HasSubstr;

const SecretsKey kOld = SecretsKey::FromBytes(std::string(32, 'o'));
const SecretsKey kNew = SecretsKey::FromBytes(std::string(32, 'n'));

Endpoint MakeEndpoint(const std::string& id) {
  Endpoint endpoint;
  endpoint.set_id(id);
  endpoint.set_thread_id("thread-1");
  endpoint.set_url("https://example.com/hook");
  endpoint.set_secret("s3cret");
  webhook::v1::Header* token = endpoint.add_headers();
  token->set_name("Authorization");
  token->set_value("Bearer abc");
  webhook::v1::Header* plain = endpoint.add_headers();
  plain->set_name("X-Source");
  plain->set_value("gpt-workbench");
  return endpoint;
}

// A SealedSecretsStore over a real LevelDB store, and a view of what that
// store holds underneath.
class SealedSecretsStoreTest : public ::testing::Test {
 protected:
  // Closes the store (if open) and opens it again with `keyring`.
  void Reopen(SecretsKeyring keyring) {
    store_.reset();
    absl::StatusOr<std::unique_ptr<LevelDbStore>> inner =
        LevelDbStore::Open(dir_.Sub("db"));
    ASSERT_TRUE(inner.ok()) << inner.status();
    raw_ = inner->get();
    store_ = std::make_unique<SealedSecretsStore>(*std::move(inner),
                                                  std::move(keyring));
  }

  Endpoint Raw(const std::string& id) { return *raw_->GetEndpoint(id); }

  testing::TestDir dir_;
  std::unique_ptr<SealedSecretsStore> store_;
  Store* raw_ = nullptr;  // Owned by store_.
};

TEST_F(SealedSecretsStoreTest, SealsSecretAndSensitiveHeadersOnly) {
  Reopen(SecretsKeyring(kNew, {}));
  ASSERT_TRUE(store_->PutEndpoint(MakeEndpoint("ep_1")).ok());
  const Endpoint raw = Raw("ep_1");
  EXPECT_EQ(SecretsKeyring::KeyIdOf(raw.secret()), kNew.id());
  EXPECT_EQ(SecretsKeyring::KeyIdOf(raw.headers(0).value()), kNew.id());
  EXPECT_EQ(raw.headers(1).value(), "gpt-workbench");
  absl::StatusOr<Endpoint> read = store_->GetEndpoint("ep_1");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->secret(), "s3cret");
  EXPECT_EQ(read->headers(0).value(), "Bearer abc");
}

TEST_F(SealedSecretsStoreTest, SealsThePreviousSecretOfARotation) {
  Reopen(SecretsKeyring(kNew, {}));
  Endpoint endpoint = MakeEndpoint("ep_1");
  endpoint.set_previous_secret("0ld-s3cret");
  ASSERT_TRUE(store_->PutEndpoint(endpoint).ok());
  const Endpoint raw = Raw("ep_1");
  EXPECT_EQ(SecretsKeyring::KeyIdOf(raw.previous_secret()), kNew.id());
  EXPECT_THAT(raw.SerializeAsString(), ::testing::Not(HasSubstr("0ld-s3cret")));
  absl::StatusOr<Endpoint> read = store_->GetEndpoint("ep_1");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->previous_secret(), "0ld-s3cret");
  EXPECT_EQ(read->secret(), "s3cret");
  // A field of its own: swapped with the current secret, neither opens.
  Endpoint swapped = raw;
  swapped.set_secret(raw.previous_secret());
  swapped.set_previous_secret(raw.secret());
  ASSERT_TRUE(raw_->PutEndpoint(swapped).ok());
  EXPECT_EQ(store_->GetEndpoint("ep_1").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(SealedSecretsStoreTest, ResealIncludesThePreviousSecret) {
  Reopen(SecretsKeyring(kOld, {}));
  Endpoint endpoint = MakeEndpoint("ep_1");
  endpoint.set_previous_secret("0ld-s3cret");
  ASSERT_TRUE(store_->PutEndpoint(endpoint).ok());
  Reopen(SecretsKeyring(kNew, {kOld}));
  EXPECT_EQ(*store_->ResealEndpoints(), 1u);
  EXPECT_EQ(SecretsKeyring::KeyIdOf(Raw("ep_1").previous_secret()), kNew.id());
  EXPECT_EQ(store_->GetEndpoint("ep_1")->previous_secret(), "0ld-s3cret");
}

TEST_F(SealedSecretsStoreTest, ValueMovedToAnotherEndpointFailsToRead) {
  Reopen(SecretsKeyring(kNew, {}));
  ASSERT_TRUE(store_->PutEndpoint(MakeEndpoint("ep_1")).ok());
  ASSERT_TRUE(store_->PutEndpoint(MakeEndpoint("ep_2")).ok());
  Endpoint second = Raw("ep_2");
  second.set_secret(Raw("ep_1").secret());
  ASSERT_TRUE(raw_->PutEndpoint(second).ok());
  absl::StatusOr<Endpoint> read = store_->GetEndpoint("ep_2");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(read.status().message(), HasSubstr("ep_2"));
  EXPECT_EQ(store_->LoadEndpoints().status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(SealedSecretsStoreTest, WithoutKeyWritesInClearAndRefusesSealed) {
  Reopen(SecretsKeyring());
  ASSERT_TRUE(store_->PutEndpoint(MakeEndpoint("ep_1")).ok());
  EXPECT_EQ(Raw("ep_1").secret(), "s3cret");
  Reopen(SecretsKeyring(kOld, {}));
  ASSERT_TRUE(store_->PutEndpoint(MakeEndpoint("ep_2")).ok());
  Reopen(SecretsKeyring());
  absl::StatusOr<std::vector<Endpoint>> all = store_->LoadEndpoints();
  EXPECT_EQ(all.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(all.status().message(), HasSubstr(kOld.id()));
}

TEST_F(SealedSecretsStoreTest, ResealMovesEverythingToTheCurrentKey) {
  Reopen(SecretsKeyring());
  ASSERT_TRUE(store_->PutEndpoint(MakeEndpoint("ep_plain")).ok());
  Reopen(SecretsKeyring(kOld, {}));
  ASSERT_TRUE(store_->PutEndpoint(MakeEndpoint("ep_old")).ok());
  Reopen(SecretsKeyring(kNew, {kOld}));
  ASSERT_TRUE(store_->PutEndpoint(MakeEndpoint("ep_new")).ok());
  absl::StatusOr<size_t> resealed = store_->ResealEndpoints();
  ASSERT_TRUE(resealed.ok()) << resealed.status();
  EXPECT_EQ(*resealed, 2u);
  Reopen(SecretsKeyring(kNew, {}));
  for (const char* id : {"ep_plain", "ep_old", "ep_new"}) {
    EXPECT_EQ(SecretsKeyring::KeyIdOf(Raw(id).secret()), kNew.id()) << id;
    EXPECT_EQ(store_->GetEndpoint(id)->secret(), "s3cret") << id;
  }
  EXPECT_EQ(*store_->ResealEndpoints(), 0u);
}

TEST_F(SealedSecretsStoreTest, ResealNeedsAKey) {
  Reopen(SecretsKeyring());
  EXPECT_EQ(store_->ResealEndpoints().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace webhookd
