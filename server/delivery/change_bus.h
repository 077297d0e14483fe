// The change bus: tells listeners (the live delivery stream) about every
// delivery that is created or changes.

#ifndef WEBHOOKD_SERVER_DELIVERY_CHANGE_BUS_H_
#define WEBHOOKD_SERVER_DELIVERY_CHANGE_BUS_H_

#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "storage/store.h"

namespace webhookd {

// Told about every delivery that is created or changes.
class DeliveryListener {
 public:
  virtual ~DeliveryListener() = default;
  // Whether the listener wants changes now (e.g. a stream is open). When no
  // listener does, Publish copies nothing.
  virtual bool Listening() const { return true; }
  // Runs on an engine thread with the delivery's new state: one immutable
  // copy shared by every listener, without payload and attempt_history
  // (what the delivery log lists; GetDelivery has the rest). Must return
  // quickly and must not call back into the engine.
  virtual void OnDeliveryChanged(
      const std::shared_ptr<const Delivery>& delivery) = 0;
};

// ChangeBus is safe for concurrent use.
class ChangeBus {
 public:
  ChangeBus() = default;
  ChangeBus(const ChangeBus&) = delete;
  ChangeBus& operator=(const ChangeBus&) = delete;

  // `listener` must stay valid until removed.
  void AddListener(DeliveryListener* listener);
  void RemoveListener(DeliveryListener* listener);

  // Tells every listening listener about `delivery`'s new state.
  void Publish(const Delivery& delivery);

  // The shape listeners see: `delivery` without payload and
  // attempt_history.
  static Delivery ListedView(const Delivery& delivery);

 private:
  absl::Mutex mu_;
  std::vector<DeliveryListener*> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_DELIVERY_CHANGE_BUS_H_
