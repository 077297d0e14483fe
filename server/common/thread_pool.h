// A fixed pool of threads for work that may block (synced storage writes),
// so that gRPC's threads never do.

#ifndef WEBHOOKD_SERVER_COMMON_THREAD_POOL_H_
#define WEBHOOKD_SERVER_COMMON_THREAD_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace webhookd {

// ThreadPool is safe for concurrent use.
class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  // Runs every task already scheduled, then joins the threads.
  ~ThreadPool();

  // Runs `task` on a pool thread. Tasks scheduled after destruction began
  // still run.
  void Schedule(std::function<void()> task);

 private:
  void Work();

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_COMMON_THREAD_POOL_H_
