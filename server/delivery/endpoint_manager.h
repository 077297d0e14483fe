// Endpoint configuration: validation, persistence and an in-memory cache
// that the delivery engine reads on every delivery.

#ifndef WEBHOOKD_SERVER_DELIVERY_ENDPOINT_MANAGER_H_
#define WEBHOOKD_SERVER_DELIVERY_ENDPOINT_MANAGER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "google/protobuf/field_mask.pb.h"
#include "server/common/caller.h"
#include "server/common/clock.h"
#include "server/common/metrics.h"
#include "server/delivery/change_bus.h"
#include "server/delivery/scheduler.h"
#include "server/delivery/validation.h"
#include "storage/store.h"

namespace webhookd {

// The outcome of EndpointManager::RotateSecret.
struct RotatedSecret {
  Endpoint endpoint;  // Redacted.
  // The secret the server generated; empty when the caller gave one.
  std::string generated_secret;
};

// EndpointManager owns the whole endpoint lifecycle: create, update, enable
// and disable (holding and releasing queued deliveries), delete (ending
// them). It is safe for concurrent use. Endpoints returned by the public
// methods are redacted for callers (no secret, sensitive header values
// masked); the engine's accessors return the full configuration. Methods
// taking a Caller enforce ownership: another user's endpoint is NotFound.
class EndpointManager {
 public:
  // Every reference must outlive the manager.
  // Every reference must outlive the manager; queued deliveries ended by a
  // deletion are reported to `metrics`.
  EndpointManager(Store& store, const Clock& clock, TargetPolicy policy,
                  Scheduler& scheduler, ChangeBus& bus,
                  Metrics& metrics = NoMetrics());
  EndpointManager(const EndpointManager&) = delete;
  EndpointManager& operator=(const EndpointManager&) = delete;

  // Fills the cache from the store: once before use, and again when it may
  // have missed changes made by other nodes sharing the store.
  absl::Status Load();
  // Reads one endpoint again from the store into the cache, or drops it
  // from the cache if it is gone: another node changed it.
  absl::Status Refresh(const std::string& id);

  // Validates and stores a new endpoint, enabled unless `disabled`, with a
  // fresh id, owned by the caller's user (PermissionDenied if
  // request.user_id names another).
  absl::StatusOr<Endpoint> Create(const Caller& caller, const Endpoint& request,
                                  bool disabled = false);
  // Returns NotFound if the endpoint does not exist.
  absl::StatusOr<Endpoint> Get(const Caller& caller, const std::string& id);
  // Only the caller's endpoints.
  absl::StatusOr<EndpointPage> List(const Caller& caller, EndpointFilter filter,
                                    int32_t page_size,
                                    const std::string& page_token) const;
  // Replaces the fields named by `mask` with those of `patch`. A sensitive
  // header sent with the placeholder kMaskedHeaderValue keeps its stored
  // value (InvalidArgument if there is none: see RestoreMaskedHeaders).
  absl::StatusOr<Endpoint> Update(const Caller& caller, const Endpoint& patch,
                                  const google::protobuf::FieldMask& mask);
  // Makes `new_secret` (empty: a generated one, GenerateSecret) the
  // endpoint's secret, and keeps the current one as the previous secret,
  // which signs deliveries beside it until `grace` from now (zero:
  // kDefaultRotationGrace; at most kMaxRotationGrace) when the endpoint had
  // a secret. InvalidArgument naming "new_secret" or "grace_period_seconds";
  // NotFound if the endpoint does not exist.
  absl::StatusOr<RotatedSecret> RotateSecret(const Caller& caller,
                                             const std::string& id,
                                             const std::string& new_secret,
                                             absl::Duration grace);
  // Enables or disables the endpoint. A disabled endpoint gets no new
  // deliveries and its queued ones are held; enabling releases them.
  // Returns NotFound if the endpoint does not exist.
  // Disabling records the reason MANUAL and the time; enabling clears
  // them and the endpoint's failure streak (Store::ResetFailureStreak).
  absl::StatusOr<Endpoint> SetEnabled(const Caller& caller,
                                      const std::string& id, bool enabled);
  // Disables an enabled endpoint on webhookd's own decision (auto-disable)
  // for `reason`, `detail` telling people why; counts it in the metrics
  // and logs a warning. Returns whether it did: false if the endpoint is
  // disabled already or does not exist.
  absl::StatusOr<bool> AutoDisable(const std::string& id,
                                   webhook::v1::DisabledReason reason,
                                   const std::string& detail);
  // Removes the endpoint; its queued deliveries end as FAILED ("endpoint
  // was deleted") in the same synced write, and its delivery log stays. An
  // attempt under way is still recorded, and not retried. Returns NotFound
  // if the endpoint does not exist.
  absl::Status Delete(const Caller& caller, const std::string& id);

  // Full configurations, for delivery.
  using EndpointPtr = std::shared_ptr<const Endpoint>;
  // The enabled endpoints of the thread whose event_types admit
  // `event_type` (EventTypeAdmitted).
  std::vector<EndpointPtr> EnabledOfThread(const std::string& thread_id,
                                           std::string_view event_type) const;
  // nullptr if the endpoint does not exist.
  EndpointPtr Find(const std::string& id) const;
  // nullptr if the endpoint does not exist or `caller` may not access it.
  EndpointPtr FindFor(const Caller& caller, const std::string& id) const;

  // What callers may see of an endpoint now: no secrets, sensitive header
  // values masked, the rotation state and the effective signature scheme.
  Endpoint Redacted(const Endpoint& endpoint) const;

 private:
  // The endpoint as callers act on it (NotFound if it does not exist or
  // `caller` may not access it): on a store shared with other nodes, read
  // from the store into the cache; otherwise the cached one.
  absl::StatusOr<EndpointPtr> Current(const Caller& caller,
                                      const std::string& id);
  // Stores `endpoint` (without a previous secret whose grace has ended) and
  // caches it; returns it redacted.
  absl::StatusOr<Endpoint> Replace(Endpoint endpoint)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // `current` enabled or disabled (for `reason`, with `detail`), stored.
  absl::StatusOr<Endpoint> WriteEnabled(const Endpoint& current, bool enabled,
                                        webhook::v1::DisabledReason reason,
                                        const std::string& detail)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  void CachePut(Endpoint endpoint) ABSL_LOCKS_EXCLUDED(mu_);
  void CacheErase(const Endpoint& endpoint) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes `id` from the thread index, dropping the thread when empty.
  void UnindexThread(const std::string& thread_id, const std::string& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Store& store_;
  const Clock& clock_;
  const TargetPolicy policy_;
  Scheduler& scheduler_;
  ChangeBus& bus_;
  Metrics& metrics_;

  // Serialises read-modify-write of endpoints (rare) so updates do not race.
  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, EndpointPtr> by_id_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::btree_set<std::string>> by_thread_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_ENDPOINT_MANAGER_H_
