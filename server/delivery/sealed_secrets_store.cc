#include "server/delivery/sealed_secrets_store.h"

#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/common/string_view.h"
#include "server/delivery/validation.h"

namespace webhookd {
namespace {

// What a sealed value is bound to: its endpoint and its field. Header names
// are compared case-insensitively elsewhere, hence lowercased here.
std::string SecretData(std::string_view endpoint_id) {
  return absl::StrCat("webhookd endpoint ", AsAbsl(endpoint_id), " secret");
}

// The previous secret of a rotation is a field of its own, so that it cannot
// be swapped with the current one.
std::string PreviousSecretData(std::string_view endpoint_id) {
  return absl::StrCat("webhookd endpoint ", AsAbsl(endpoint_id),
                      " previous secret");
}

std::string HeaderData(std::string_view endpoint_id, std::string_view name) {
  return absl::StrCat("webhookd endpoint ", AsAbsl(endpoint_id), " header ",
                      absl::AsciiStrToLower(AsAbsl(name)));
}

// `status` with the endpoint and field it concerns in front.
absl::Status About(const absl::Status& status, std::string_view endpoint_id,
                   std::string_view field) {
  return absl::Status(status.code(),
                      absl::StrCat("endpoint \"", AsAbsl(endpoint_id), "\" ",
                                   AsAbsl(field), ": ", status.message()));
}

}  // namespace

SealedSecretsStore::SealedSecretsStore(std::unique_ptr<Store> inner,
                                       SecretsKeyring keyring)
    : inner_(std::move(inner)), keyring_(std::move(keyring)) {}

absl::StatusOr<Endpoint> SealedSecretsStore::Sealed(
    const Endpoint& endpoint) const {
  Endpoint sealed = endpoint;
  if (!keyring_.has_current()) return sealed;
  if (!sealed.secret().empty()) {
    WEBHOOKD_ASSIGN_OR_RETURN(
        *sealed.mutable_secret(),
        keyring_.Seal(sealed.secret(), SecretData(sealed.id())));
  }
  if (!sealed.previous_secret().empty()) {
    WEBHOOKD_ASSIGN_OR_RETURN(*sealed.mutable_previous_secret(),
                              keyring_.Seal(sealed.previous_secret(),
                                            PreviousSecretData(sealed.id())));
  }
  for (webhook::v1::Header& header : *sealed.mutable_headers()) {
    if (!IsSensitiveHeader(header.name())) continue;
    WEBHOOKD_ASSIGN_OR_RETURN(
        *header.mutable_value(),
        keyring_.Seal(header.value(), HeaderData(sealed.id(), header.name())));
  }
  return sealed;
}

absl::Status SealedSecretsStore::Open(Endpoint& endpoint) const {
  if (SecretsKeyring::IsSealed(endpoint.secret())) {
    absl::StatusOr<std::string> secret =
        keyring_.Open(endpoint.secret(), SecretData(endpoint.id()));
    if (!secret.ok()) return About(secret.status(), endpoint.id(), "secret");
    endpoint.set_secret(*std::move(secret));
  }
  if (SecretsKeyring::IsSealed(endpoint.previous_secret())) {
    absl::StatusOr<std::string> previous = keyring_.Open(
        endpoint.previous_secret(), PreviousSecretData(endpoint.id()));
    if (!previous.ok()) {
      return About(previous.status(), endpoint.id(), "previous secret");
    }
    endpoint.set_previous_secret(*std::move(previous));
  }
  for (webhook::v1::Header& header : *endpoint.mutable_headers()) {
    if (!SecretsKeyring::IsSealed(header.value())) continue;
    absl::StatusOr<std::string> value =
        keyring_.Open(header.value(), HeaderData(endpoint.id(), header.name()));
    if (!value.ok()) {
      return About(value.status(), endpoint.id(),
                   absl::StrCat("header ", header.name()));
    }
    header.set_value(*std::move(value));
  }
  return absl::OkStatus();
}

bool SealedSecretsStore::NeedsReseal(const Endpoint& endpoint) const {
  const std::string current = keyring_.current_id();
  auto stale = [&current](std::string_view value) {
    return SecretsKeyring::KeyIdOf(value).value_or("") != current;
  };
  if (!endpoint.secret().empty() && stale(endpoint.secret())) return true;
  if (!endpoint.previous_secret().empty() &&
      stale(endpoint.previous_secret())) {
    return true;
  }
  for (const webhook::v1::Header& header : endpoint.headers()) {
    if (IsSensitiveHeader(header.name()) && stale(header.value())) return true;
  }
  return false;
}

absl::StatusOr<size_t> SealedSecretsStore::ResealEndpoints() {
  if (!keyring_.has_current()) {
    return absl::FailedPreconditionError(
        "re-encrypting secrets needs --secrets_key_file");
  }
  WEBHOOKD_ASSIGN_OR_RETURN(std::vector<Endpoint> stored,
                            inner_->LoadEndpoints());
  size_t rewritten = 0;
  for (Endpoint& endpoint : stored) {
    if (!NeedsReseal(endpoint)) continue;
    WEBHOOKD_RETURN_IF_ERROR(Open(endpoint));
    WEBHOOKD_RETURN_IF_ERROR(PutEndpoint(endpoint));
    ++rewritten;
  }
  if (rewritten > 0) WEBHOOKD_RETURN_IF_ERROR(inner_->Compact());
  return rewritten;
}

absl::Status SealedSecretsStore::PutEndpoint(const Endpoint& endpoint) {
  WEBHOOKD_ASSIGN_OR_RETURN(Endpoint sealed, Sealed(endpoint));
  return inner_->PutEndpoint(sealed);
}

absl::StatusOr<Endpoint> SealedSecretsStore::GetEndpoint(std::string_view id) {
  WEBHOOKD_ASSIGN_OR_RETURN(Endpoint endpoint, inner_->GetEndpoint(id));
  WEBHOOKD_RETURN_IF_ERROR(Open(endpoint));
  return endpoint;
}

absl::StatusOr<EndpointPage> SealedSecretsStore::ListEndpoints(
    const EndpointFilter& filter, int page_size, std::string_view page_token) {
  WEBHOOKD_ASSIGN_OR_RETURN(
      EndpointPage page, inner_->ListEndpoints(filter, page_size, page_token));
  for (Endpoint& endpoint : page.endpoints) {
    WEBHOOKD_RETURN_IF_ERROR(Open(endpoint));
  }
  return page;
}

absl::StatusOr<std::vector<Endpoint>> SealedSecretsStore::LoadEndpoints() {
  WEBHOOKD_ASSIGN_OR_RETURN(std::vector<Endpoint> endpoints,
                            inner_->LoadEndpoints());
  for (Endpoint& endpoint : endpoints) {
    WEBHOOKD_RETURN_IF_ERROR(Open(endpoint));
  }
  return endpoints;
}

absl::Status SealedSecretsStore::DeleteEndpoint(
    std::string_view id, absl::Span<const DeliveryChange> changes) {
  return inner_->DeleteEndpoint(id, changes);
}

absl::Status SealedSecretsStore::InsertEvents(
    absl::Span<const NewEvent> events) {
  return inner_->InsertEvents(events);
}

absl::Status SealedSecretsStore::AddDeliveries(
    absl::Span<const Delivery> deliveries,
    absl::Span<const DeliveryChange> changes) {
  return inner_->AddDeliveries(deliveries, changes);
}

absl::StatusOr<Submission> SealedSecretsStore::FindSubmission(
    int64_t user_id, std::string_view idempotency_key) {
  return inner_->FindSubmission(user_id, idempotency_key);
}

absl::StatusOr<EventRecord> SealedSecretsStore::GetEvent(std::string_view id) {
  return inner_->GetEvent(id);
}

absl::StatusOr<Delivery> SealedSecretsStore::GetDelivery(std::string_view id) {
  return inner_->GetDelivery(id);
}

absl::StatusOr<DeliveryPage> SealedSecretsStore::ListDeliveries(
    const DeliveryFilter& filter, int page_size, std::string_view page_token) {
  return inner_->ListDeliveries(filter, page_size, page_token);
}

absl::Status SealedSecretsStore::UpdateDeliveries(
    absl::Span<const DeliveryChange> changes, Durability durability) {
  return inner_->UpdateDeliveries(changes, durability);
}

absl::Status SealedSecretsStore::ScanQueue(
    const std::function<void(const QueuedDelivery&)>& visit) {
  return inner_->ScanQueue(visit);
}

absl::StatusOr<FailureStreak> SealedSecretsStore::GetFailureStreak(
    std::string_view endpoint_id) {
  return inner_->GetFailureStreak(endpoint_id);
}

absl::Status SealedSecretsStore::ResetFailureStreak(
    std::string_view endpoint_id) {
  return inner_->ResetFailureStreak(endpoint_id);
}

absl::StatusOr<EndpointCounts> SealedSecretsStore::GetEndpointCounts(
    std::string_view endpoint_id) {
  return inner_->GetEndpointCounts(endpoint_id);
}

absl::Status SealedSecretsStore::Compact() { return inner_->Compact(); }

absl::StatusOr<std::string> SealedSecretsStore::SettingOrInsert(
    std::string_view name, std::string_view value) {
  return inner_->SettingOrInsert(name, value);
}

absl::StatusOr<PruneResult> SealedSecretsStore::PruneBefore(
    absl::Time cutoff, absl::Time idempotency_cutoff, size_t max_records) {
  return inner_->PruneBefore(cutoff, idempotency_cutoff, max_records);
}

}  // namespace webhookd
