// A Store decorator that keeps endpoint secrets and the values of sensitive
// custom headers (IsSensitiveHeader) encrypted at rest. Backends stay
// unaware: they store the sealed values as they store any string.

#ifndef WEBHOOKD_SERVER_DELIVERY_SEALED_SECRETS_STORE_H_
#define WEBHOOKD_SERVER_DELIVERY_SEALED_SECRETS_STORE_H_

#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/security/secrets_keyring.h"
#include "storage/store.h"

namespace webhookd {

// Endpoints are written with their secret, the previous secret of a
// rotation and their sensitive header values
// sealed under the keyring's current key (in clear without one), and read
// back opened, whichever configured key sealed them; a value sealed under a
// key the keyring lacks fails the read (FailedPrecondition naming the
// endpoint and the key id), never reads as empty. The associated data of
// each value is the endpoint id and the field, so a sealed value moved to
// another endpoint or field fails to open (DataLoss). Everything else is
// passed through. As safe for concurrent use as the wrapped store.
class SealedSecretsStore final : public Store {
 public:
  SealedSecretsStore(std::unique_ptr<Store> inner, SecretsKeyring keyring);

  // Rewrites every endpoint whose sensitive values are not all sealed under
  // the current key (in clear, or under an old key), then compacts the
  // store so that the former values are gone from its files; returns how
  // many. FailedPrecondition without a current key.
  absl::StatusOr<size_t> ResealEndpoints();

  const SecretsKeyring& keyring() const { return keyring_; }

  // Store
  absl::Status PutEndpoint(const Endpoint& endpoint) override;
  absl::StatusOr<Endpoint> GetEndpoint(std::string_view id) override;
  absl::StatusOr<EndpointPage> ListEndpoints(
      const EndpointFilter& filter, int page_size,
      std::string_view page_token) override;
  absl::StatusOr<std::vector<Endpoint>> LoadEndpoints() override;
  absl::Status DeleteEndpoint(
      std::string_view id, absl::Span<const DeliveryChange> changes) override;
  absl::Status InsertEvents(absl::Span<const NewEvent> events) override;
  absl::Status AddDeliveries(absl::Span<const Delivery> deliveries,
                             absl::Span<const DeliveryChange> changes) override;
  absl::StatusOr<Submission> FindSubmission(
      int64_t user_id, std::string_view idempotency_key) override;
  absl::StatusOr<EventRecord> GetEvent(std::string_view id) override;
  absl::StatusOr<Delivery> GetDelivery(std::string_view id) override;
  absl::StatusOr<DeliveryPage> ListDeliveries(
      const DeliveryFilter& filter, int page_size,
      std::string_view page_token) override;
  absl::Status UpdateDeliveries(absl::Span<const DeliveryChange> changes,
                                Durability durability) override;
  absl::Status ScanQueue(
      const std::function<void(const QueuedDelivery&)>& visit) override;
  absl::StatusOr<EndpointCounts> GetEndpointCounts(
      std::string_view endpoint_id) override;
  absl::StatusOr<FailureStreak> GetFailureStreak(
      std::string_view endpoint_id) override;
  absl::Status ResetFailureStreak(std::string_view endpoint_id) override;
  absl::StatusOr<PruneResult> PruneBefore(absl::Time cutoff,
                                          absl::Time idempotency_cutoff,
                                          size_t max_records) override;
  absl::Status Compact() override;
  absl::StatusOr<std::string> SettingOrInsert(std::string_view name,
                                              std::string_view value) override;
  SharedQueue* shared_queue() override { return inner_->shared_queue(); }

 private:
  absl::StatusOr<Endpoint> Sealed(const Endpoint& endpoint) const;
  absl::Status Open(Endpoint& endpoint) const;
  // Whether a stored endpoint has a sensitive value not sealed under the
  // current key.
  bool NeedsReseal(const Endpoint& endpoint) const;

  const std::unique_ptr<Store> inner_;
  const SecretsKeyring keyring_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_SEALED_SECRETS_STORE_H_
