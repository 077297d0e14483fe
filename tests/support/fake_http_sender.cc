#include "tests/support/fake_http_sender.h"

#include <utility>

#include "absl/strings/match.h"

namespace webhookd::testing {

HttpResult Response(int status_code, absl::Duration elapsed) {
  HttpResult result;
  result.status_code = status_code;
  result.elapsed = elapsed;
  return result;
}

HttpResult NetworkError(const std::string& error) {
  HttpResult result;
  result.error = error;
  result.elapsed = absl::Milliseconds(3);
  return result;
}

void FakeHttpSender::Send(HttpRequest request, Callback done) {
  {
    absl::MutexLock lock(&mu_);
    sent_.push_back(request);
    if (!shut_down_) {
      open_.push_back({std::move(request), std::move(done)});
      return;
    }
  }
  HttpResult aborted;
  aborted.aborted = true;
  aborted.error = "aborted by shutdown";
  done(std::move(aborted));
}

void FakeHttpSender::Shutdown(absl::Duration /*grace*/) {
  std::vector<Open> open;
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    open.swap(open_);
  }
  for (Open& request : open) {
    HttpResult aborted;
    aborted.aborted = true;
    aborted.error = "aborted by shutdown";
    request.done(std::move(aborted));
  }
}

std::vector<HttpRequest> FakeHttpSender::sent() const {
  absl::MutexLock lock(&mu_);
  return sent_;
}

size_t FakeHttpSender::open() const {
  absl::MutexLock lock(&mu_);
  return open_.size();
}

std::string FakeHttpSender::Header(size_t index,
                                   const std::string& name) const {
  absl::MutexLock lock(&mu_);
  if (index >= sent_.size()) return "";
  for (const auto& [key, value] : sent_[index].headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

bool FakeHttpSender::AnswerOldest(HttpResult result) {
  Open oldest;
  {
    absl::MutexLock lock(&mu_);
    if (open_.empty()) return false;
    oldest = std::move(open_.front());
    open_.erase(open_.begin());
  }
  oldest.done(std::move(result));
  return true;
}

size_t FakeHttpSender::AnswerAll(const HttpResult& result) {
  std::vector<Open> open;
  {
    absl::MutexLock lock(&mu_);
    open.swap(open_);
  }
  for (Open& request : open) request.done(result);
  return open.size();
}

}  // namespace webhookd::testing
