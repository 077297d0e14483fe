#include "server/delivery/endpoint_manager.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "server/common/ids.h"
#include "server/common/logging.h"
#include "server/common/paging.h"
#include "server/common/status_macros.h"
#include "server/common/time_util.h"
#include "server/delivery/event_types.h"
#include "server/delivery/retry_policy.h"
#include "server/delivery/signing.h"
#include "server/security/signature.h"
#include "server/security/target_url.h"

namespace webhookd {
namespace {

using Headers = google::protobuf::RepeatedPtrField<webhook::v1::Header>;

absl::Status EndpointNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("endpoint \"", id, "\" not found"));
}

// Endpoints stored before internationalized host names were converted at
// creation keep the UTF-8 or percent-encoded host they were given, which
// libcurl cannot resolve: every attempt would fail with "malformed URL".
// Rewrites such a URL to the ASCII ("xn--") form creation stores today;
// returns whether it did.
bool ConvertLegacyIdnHost(Endpoint& endpoint) {
  const std::string& url = endpoint.url();
  const bool maybe_idn = std::any_of(url.begin(), url.end(), [](char c) {
    return c == '%' || static_cast<unsigned char>(c) >= 0x80;
  });
  if (!maybe_idn) return false;
  absl::StatusOr<ParsedUrl> parsed = ParseTargetUrl(url);
  if (!parsed.ok() || parsed->url == url) return false;
  endpoint.set_url(std::move(parsed->url));
  return true;
}

}  // namespace

EndpointManager::EndpointManager(Store& store, const Clock& clock,
                                 TargetPolicy policy, Scheduler& scheduler,
                                 ChangeBus& bus, Metrics& metrics)
    : store_(store),
      clock_(clock),
      policy_(policy),
      scheduler_(scheduler),
      bus_(bus),
      metrics_(metrics) {}

absl::Status EndpointManager::Load() {
  absl::MutexLock write_lock(&write_mu_);
  WEBHOOKD_ASSIGN_OR_RETURN(std::vector<Endpoint> endpoints,
                            store_.LoadEndpoints());
  absl::flat_hash_set<std::string> stored;
  stored.reserve(endpoints.size());
  for (const Endpoint& endpoint : endpoints) stored.insert(endpoint.id());
  std::vector<EndpointPtr> gone;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, endpoint] : by_id_) {
      if (!stored.contains(id)) gone.push_back(endpoint);
    }
  }
  for (const EndpointPtr& endpoint : gone) CacheErase(*endpoint);
  for (Endpoint& endpoint : endpoints) {
    // One node alone writes the converted URL back once. Nodes sharing a
    // store only convert their cached copy (CachePut), lest a node starting
    // up overwrite an update another node just made; the next update of the
    // endpoint stores the ASCII form.
    if (store_.shared_queue() == nullptr && ConvertLegacyIdnHost(endpoint)) {
      const absl::Status written = store_.PutEndpoint(endpoint);
      if (written.ok()) {
        Log(LogLevel::kInfo, "endpoint URL host stored in its ASCII form",
            {{"endpoint_id", endpoint.id()}});
      } else {
        Log(LogLevel::kWarning,
            "endpoint URL host converted to its ASCII form in memory only",
            {{"endpoint_id", endpoint.id()}, {"error", written.ToString()}});
      }
    }
    CachePut(std::move(endpoint));
  }
  return absl::OkStatus();
}

absl::Status EndpointManager::Refresh(const std::string& id) {
  absl::MutexLock write_lock(&write_mu_);
  absl::StatusOr<Endpoint> stored = store_.GetEndpoint(id);
  if (absl::IsNotFound(stored.status())) {
    if (EndpointPtr cached = Find(id); cached != nullptr) CacheErase(*cached);
    return absl::OkStatus();
  }
  if (!stored.ok()) return stored.status();
  CachePut(*std::move(stored));
  return absl::OkStatus();
}

Endpoint EndpointManager::Redacted(const Endpoint& endpoint) const {
  Endpoint out = endpoint;
  out.set_has_secret(!endpoint.secret().empty());
  out.clear_secret();
  out.clear_previous_secret();
  out.set_has_previous_secret(PreviousSecretActive(endpoint, clock_.Now()));
  if (!out.has_previous_secret()) out.clear_previous_secret_expire_time();
  if (out.signature_scheme() == webhook::v1::SIGNATURE_SCHEME_UNSPECIFIED) {
    out.set_signature_scheme(webhook::v1::SIGNATURE_SCHEME_HUB_SIGNATURE_256);
  }
  for (webhook::v1::Header& header : *out.mutable_headers()) {
    if (IsSensitiveHeader(header.name())) header.set_value(kMaskedHeaderValue);
  }
  return out;
}

absl::StatusOr<Endpoint> EndpointManager::Create(const Caller& caller,
                                                 const Endpoint& request,
                                                 bool disabled) {
  WEBHOOKD_ASSIGN_OR_RETURN(
      const int64_t owner,
      caller.OwnerFor(request.user_id(), "endpoint.user_id"));
  WEBHOOKD_RETURN_IF_ERROR(ValidateEndpoint(request, policy_, "endpoint"));
  WEBHOOKD_RETURN_IF_ERROR(ValidateSignatureScheme(request, "endpoint"));
  // Stored with an IDN host in ASCII form, so that it delivers whatever the
  // process's locale (libcurl converts IDNs only under a UTF-8 one).
  WEBHOOKD_ASSIGN_OR_RETURN(
      std::string url, ValidatedUrl(request.url(), policy_, "endpoint.url"));
  // A new endpoint has no stored values, so a masked placeholder is refused.
  WEBHOOKD_ASSIGN_OR_RETURN(
      Headers headers,
      RestoreMaskedHeaders(request.headers(), Headers(), "endpoint.headers"));
  Endpoint endpoint;
  endpoint.set_id(NewId("ep_"));
  endpoint.set_thread_id(request.thread_id());
  endpoint.set_user_id(owner);
  endpoint.set_name(request.name());
  endpoint.set_url(std::move(url));
  endpoint.set_secret(request.secret());
  endpoint.set_signature_scheme(request.signature_scheme());
  *endpoint.mutable_headers() = std::move(headers);
  *endpoint.mutable_event_types() = request.event_types();
  endpoint.set_enabled(!disabled);
  *endpoint.mutable_create_time() = ToProtoTime(clock_.Now());
  *endpoint.mutable_update_time() = endpoint.create_time();
  if (disabled) {
    // As if DisableEndpoint had been called at once.
    endpoint.set_disabled_reason(webhook::v1::DISABLED_REASON_MANUAL);
    *endpoint.mutable_disable_time() = endpoint.create_time();
  }
  absl::MutexLock lock(&write_mu_);
  return Replace(std::move(endpoint));
}

absl::StatusOr<Endpoint> EndpointManager::Get(const Caller& caller,
                                              const std::string& id) {
  WEBHOOKD_ASSIGN_OR_RETURN(EndpointPtr endpoint, Current(caller, id));
  return Redacted(*endpoint);
}

absl::StatusOr<EndpointManager::EndpointPtr> EndpointManager::Current(
    const Caller& caller, const std::string& id) {
  if (store_.shared_queue() != nullptr) {
    // Other nodes change endpoints too, and this node's cache learns of
    // it a moment later: callers get (and change) what is stored.
    absl::StatusOr<Endpoint> stored = store_.GetEndpoint(id);
    if (absl::IsNotFound(stored.status())) {
      if (EndpointPtr cached = Find(id); cached != nullptr) CacheErase(*cached);
    } else if (!stored.ok()) {
      return stored.status();
    } else {
      CachePut(*std::move(stored));
    }
  }
  EndpointPtr endpoint = FindFor(caller, id);
  if (endpoint == nullptr) return EndpointNotFound(id);
  return endpoint;
}

absl::StatusOr<EndpointPage> EndpointManager::List(
    const Caller& caller, EndpointFilter filter, int32_t page_size,
    const std::string& page_token) const {
  if (caller.user_id.has_value()) filter.user_id = *caller.user_id;
  WEBHOOKD_ASSIGN_OR_RETURN(int size, NormalizePageSize(page_size));
  WEBHOOKD_ASSIGN_OR_RETURN(EndpointPage page,
                            store_.ListEndpoints(filter, size, page_token));
  for (Endpoint& endpoint : page.endpoints) endpoint = Redacted(endpoint);
  return page;
}

absl::StatusOr<Endpoint> EndpointManager::Update(
    const Caller& caller, const Endpoint& patch,
    const google::protobuf::FieldMask& mask) {
  if (mask.paths().empty()) {
    return absl::InvalidArgumentError(
        "update_mask: name at least one field to update");
  }
  absl::MutexLock lock(&write_mu_);
  WEBHOOKD_ASSIGN_OR_RETURN(EndpointPtr current, Current(caller, patch.id()));
  // user_id cannot be updated, but naming another user is still refused.
  WEBHOOKD_RETURN_IF_ERROR(
      caller.OwnerFor(patch.user_id(), "endpoint.user_id").status());
  Endpoint next = *current;
  bool signing_changed = false;
  for (const std::string& path : mask.paths()) {
    const std::string field = absl::StrCat("endpoint.", path);
    if (path == "thread_id") {
      WEBHOOKD_RETURN_IF_ERROR(ValidateThreadId(patch.thread_id(), field));
      next.set_thread_id(patch.thread_id());
    } else if (path == "name") {
      WEBHOOKD_RETURN_IF_ERROR(ValidateName(patch.name(), field));
      next.set_name(patch.name());
    } else if (path == "url") {
      WEBHOOKD_ASSIGN_OR_RETURN(std::string url,
                                ValidatedUrl(patch.url(), policy_, field));
      next.set_url(std::move(url));
    } else if (path == "secret") {
      WEBHOOKD_RETURN_IF_ERROR(ValidateSecret(patch.secret(), field));
      next.set_secret(patch.secret());
      signing_changed = true;
    } else if (path == "signature_scheme") {
      next.set_signature_scheme(patch.signature_scheme());
      signing_changed = true;
    } else if (path == "headers") {
      WEBHOOKD_RETURN_IF_ERROR(ValidateHeaders(patch.headers(), field));
      // Clients write back the masked values they read; keep the real ones.
      WEBHOOKD_ASSIGN_OR_RETURN(
          Headers headers,
          RestoreMaskedHeaders(patch.headers(), current->headers(), field));
      *next.mutable_headers() = std::move(headers);
    } else if (path == "event_types") {
      WEBHOOKD_RETURN_IF_ERROR(
          ValidateEventTypeFilters(patch.event_types(), field));
      *next.mutable_event_types() = patch.event_types();
    } else if (path == "enabled") {
      return absl::InvalidArgumentError(
          "update_mask: \"enabled\" is changed with EnableEndpoint and "
          "DisableEndpoint");
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("update_mask: unknown or read-only path \"", path,
                       "\"; updatable: thread_id, name, url, secret, "
                       "signature_scheme, headers, event_types"));
    }
  }
  if (signing_changed) {
    // Together, as a scheme needs a secret of its kind.
    WEBHOOKD_RETURN_IF_ERROR(ValidateSignatureScheme(next, "endpoint"));
    // An immediate replacement: the previous secret of a rotation stops
    // signing at once (RotateEndpointSecret keeps it for a grace).
    next.clear_previous_secret();
    next.clear_previous_secret_expire_time();
  }
  *next.mutable_update_time() = ToProtoTime(clock_.Now());
  return Replace(std::move(next));
}

absl::StatusOr<RotatedSecret> EndpointManager::RotateSecret(
    const Caller& caller, const std::string& id, const std::string& new_secret,
    absl::Duration grace) {
  if (grace < absl::ZeroDuration() || grace > kMaxRotationGrace) {
    return absl::InvalidArgumentError(absl::StrCat(
        "grace_period_seconds: must be 0 (the default, ",
        absl::ToInt64Seconds(kDefaultRotationGrace), ") to ",
        absl::ToInt64Seconds(kMaxRotationGrace), " seconds (7 days)"));
  }
  if (grace == absl::ZeroDuration()) grace = kDefaultRotationGrace;
  WEBHOOKD_RETURN_IF_ERROR(ValidateSecret(new_secret, "new_secret"));
  absl::MutexLock lock(&write_mu_);
  WEBHOOKD_ASSIGN_OR_RETURN(EndpointPtr current, Current(caller, id));
  RotatedSecret rotated;
  std::string secret = new_secret;
  if (secret.empty()) {
    rotated.generated_secret = GenerateSecret(UsesStandardWebhooks(*current));
    secret = rotated.generated_secret;
  }
  WEBHOOKD_RETURN_IF_ERROR(ValidateSecretForScheme(
      secret, current->signature_scheme(), "new_secret"));
  if (secret == current->secret()) {
    return absl::InvalidArgumentError(
        "new_secret: is the current secret; a rotation needs a new one");
  }
  const absl::Time now = clock_.Now();
  Endpoint next = *current;
  if (current->secret().empty()) {
    // Unsigned until now: no secret to keep.
    next.clear_previous_secret();
    next.clear_previous_secret_expire_time();
  } else {
    // Only one previous secret: a rotation during a grace drops the oldest.
    next.set_previous_secret(current->secret());
    *next.mutable_previous_secret_expire_time() = ToProtoTime(now + grace);
  }
  next.set_secret(std::move(secret));
  *next.mutable_update_time() = ToProtoTime(now);
  WEBHOOKD_ASSIGN_OR_RETURN(rotated.endpoint, Replace(std::move(next)));
  return rotated;
}

absl::StatusOr<Endpoint> EndpointManager::SetEnabled(const Caller& caller,
                                                     const std::string& id,
                                                     bool enabled) {
  absl::MutexLock lock(&write_mu_);
  WEBHOOKD_ASSIGN_OR_RETURN(EndpointPtr current, Current(caller, id));
  if (current->enabled() == enabled) return Redacted(*current);
  return WriteEnabled(*current, enabled, webhook::v1::DISABLED_REASON_MANUAL,
                      "");
}

absl::StatusOr<bool> EndpointManager::AutoDisable(
    const std::string& id, webhook::v1::DisabledReason reason,
    const std::string& detail) {
  absl::MutexLock lock(&write_mu_);
  absl::StatusOr<EndpointPtr> current = Current(Caller::Unrestricted(), id);
  if (absl::IsNotFound(current.status())) return false;
  if (!current.ok()) return current.status();
  if (!(*current)->enabled()) return false;
  WEBHOOKD_RETURN_IF_ERROR(
      WriteEnabled(**current, false, reason, detail).status());
  metrics_.EndpointAutoDisabled();
  Log(LogLevel::kWarning,
      "endpoint disabled by webhookd; its deliveries are held until it is "
      "enabled",
      {{"endpoint_id", id},
       {"reason", webhook::v1::DisabledReason_Name(reason)},
       {"detail", detail}});
  return true;
}

absl::StatusOr<Endpoint> EndpointManager::WriteEnabled(
    const Endpoint& current, bool enabled, webhook::v1::DisabledReason reason,
    const std::string& detail) {
  const std::string& id = current.id();
  if (enabled) {
    // Auto-disable counts anew. First: should storing the endpoint fail,
    // the endpoint stays disabled and enabling it again resets once more.
    WEBHOOKD_RETURN_IF_ERROR(store_.ResetFailureStreak(id));
  }
  Endpoint next = current;
  next.set_enabled(enabled);
  const absl::Time now = clock_.Now();
  *next.mutable_update_time() = ToProtoTime(now);
  if (enabled) {
    next.clear_disabled_reason();
    next.clear_disable_time();
    next.clear_disabled_detail();
  } else {
    next.set_disabled_reason(reason);
    *next.mutable_disable_time() = ToProtoTime(now);
    next.set_disabled_detail(detail);
  }
  WEBHOOKD_ASSIGN_OR_RETURN(Endpoint updated, Replace(std::move(next)));
  // Held deliveries go out again. (Disabling needs nothing here: the
  // dispatcher holds the deliveries of a disabled endpoint as they come due.)
  if (enabled) {
    scheduler_.Release(id);
    Log(LogLevel::kInfo, "endpoint enabled; its held deliveries resume",
        {{"endpoint_id", id}});
  } else if (reason == webhook::v1::DISABLED_REASON_MANUAL) {
    Log(LogLevel::kWarning,
        "endpoint disabled; its deliveries are held until it is enabled",
        {{"endpoint_id", id}});
  }
  return updated;
}

absl::Status EndpointManager::Delete(const Caller& caller,
                                     const std::string& id) {
  absl::MutexLock lock(&write_mu_);
  WEBHOOKD_ASSIGN_OR_RETURN(EndpointPtr current, Current(caller, id));
  // Out of the queue first, so that no attempt of them starts meanwhile.
  const std::vector<std::string> local = scheduler_.RemoveEndpoint(id);
  std::vector<std::string> queued_ids = local;
  absl::Status status = absl::OkStatus();
  if (SharedQueue* shared = store_.shared_queue(); shared != nullptr) {
    // Most of the endpoint's queue is in the store, claimed by no node or
    // by others (which record an attempt under way, and retry nothing once
    // they learn of the deletion).
    absl::StatusOr<std::vector<QueuedDelivery>> in_store = shared->QueuedOf(id);
    status = in_store.status();
    if (in_store.ok()) {
      const absl::flat_hash_set<std::string> here(local.begin(), local.end());
      for (const QueuedDelivery& entry : *in_store) {
        if (!here.contains(entry.delivery_id)) {
          queued_ids.push_back(entry.delivery_id);
        }
      }
    }
  }
  std::vector<DeliveryChange> changes;
  if (status.ok()) {
    for (const std::string& delivery_id : queued_ids) {
      absl::StatusOr<Delivery> delivery = store_.GetDelivery(delivery_id);
      if (!delivery.ok()) continue;
      changes.push_back(
          EndedChange(*std::move(delivery), "endpoint was deleted"));
    }
    status = store_.DeleteEndpoint(id, changes);
  }
  if (!status.ok()) {
    // Back into this node's queue, as they were.
    std::vector<QueuedDelivery> entries;
    for (const std::string& delivery_id : local) {
      absl::StatusOr<Delivery> delivery = store_.GetDelivery(delivery_id);
      if (delivery.ok()) entries.push_back(QueueEntryOf(*delivery, false));
    }
    scheduler_.Schedule(entries);
    return status;
  }
  CacheErase(*current);
  for (const DeliveryChange& change : changes) {
    if (!change.delivery.test()) {
      metrics_.DeliveryFinished(DeliveryOutcome::kCancelled,
                                absl::ZeroDuration());
    }
    bus_.Publish(change.delivery);
  }
  return absl::OkStatus();
}

absl::StatusOr<Endpoint> EndpointManager::Replace(Endpoint endpoint) {
  // A previous secret past its grace is no longer used: not kept either.
  if (!PreviousSecretActive(endpoint, clock_.Now())) {
    endpoint.clear_previous_secret();
    endpoint.clear_previous_secret_expire_time();
  }
  WEBHOOKD_RETURN_IF_ERROR(store_.PutEndpoint(endpoint));
  Endpoint redacted = Redacted(endpoint);
  CachePut(std::move(endpoint));
  return redacted;
}

void EndpointManager::UnindexThread(const std::string& thread_id,
                                    const std::string& id) {
  auto thread = by_thread_.find(thread_id);
  if (thread == by_thread_.end()) return;
  thread->second.erase(id);
  if (thread->second.empty()) by_thread_.erase(thread);
}

void EndpointManager::CacheErase(const Endpoint& endpoint) {
  absl::MutexLock lock(&mu_);
  UnindexThread(endpoint.thread_id(), endpoint.id());
  by_id_.erase(endpoint.id());
}

void EndpointManager::CachePut(Endpoint endpoint) {
  ConvertLegacyIdnHost(endpoint);
  auto ptr = std::make_shared<const Endpoint>(std::move(endpoint));
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = by_id_.try_emplace(ptr->id(), ptr);
  if (!inserted) {
    if (it->second->thread_id() != ptr->thread_id()) {
      UnindexThread(it->second->thread_id(), ptr->id());
    }
    it->second = ptr;
  }
  by_thread_[ptr->thread_id()].insert(ptr->id());
}

std::vector<EndpointManager::EndpointPtr> EndpointManager::EnabledOfThread(
    const std::string& thread_id, std::string_view event_type) const {
  std::vector<EndpointPtr> out;
  absl::MutexLock lock(&mu_);
  auto thread = by_thread_.find(thread_id);
  if (thread == by_thread_.end()) return out;
  for (const std::string& id : thread->second) {
    const EndpointPtr& endpoint = by_id_.at(id);
    if (endpoint->enabled() &&
        EventTypeAdmitted(endpoint->event_types(), event_type)) {
      out.push_back(endpoint);
    }
  }
  return out;
}

EndpointManager::EndpointPtr EndpointManager::Find(
    const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

EndpointManager::EndpointPtr EndpointManager::FindFor(
    const Caller& caller, const std::string& id) const {
  EndpointPtr endpoint = Find(id);
  if (endpoint == nullptr || !caller.CanAccess(endpoint->user_id())) {
    return nullptr;
  }
  return endpoint;
}

}  // namespace webhookd
