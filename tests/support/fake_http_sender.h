// An HttpSender that sends nothing: it keeps each request until the test
// answers it.

#ifndef WEBHOOKD_TESTS_SUPPORT_FAKE_HTTP_SENDER_H_
#define WEBHOOKD_TESTS_SUPPORT_FAKE_HTTP_SENDER_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/http/http_sender.h"

namespace webhookd::testing {

// Builds a result with a response of `status_code`.
HttpResult Response(int status_code,
                    absl::Duration elapsed = absl::Milliseconds(12));
// Builds a result without a response, failed with `error`.
HttpResult NetworkError(const std::string& error);

// FakeHttpSender is safe for concurrent use. Callbacks run on the thread
// that answers (Answer*, Shutdown), never inside Send().
class FakeHttpSender final : public HttpSender {
 public:
  FakeHttpSender() = default;
  FakeHttpSender(const FakeHttpSender&) = delete;
  FakeHttpSender& operator=(const FakeHttpSender&) = delete;

  // HttpSender
  void Send(HttpRequest request, Callback done) override;
  // Answers every request still open as aborted; later requests too.
  void Shutdown(absl::Duration grace) override;

  // Every request sent so far, in order.
  std::vector<HttpRequest> sent() const;
  // Requests not answered yet.
  size_t open() const;
  // The value of `name` in the `index`th request sent ("" if absent).
  std::string Header(size_t index, const std::string& name) const;

  // Answers the oldest open request. Returns false if none is open.
  bool AnswerOldest(HttpResult result);
  // Answers every open request alike; returns how many.
  size_t AnswerAll(const HttpResult& result);

 private:
  struct Open {
    HttpRequest request;
    Callback done;
  };

  mutable absl::Mutex mu_;
  std::vector<HttpRequest> sent_ ABSL_GUARDED_BY(mu_);
  std::vector<Open> open_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_FAKE_HTTP_SENDER_H_
