#include "server/rest/stream_call.h"

#include "server/rest/grpc_bytes.h"

namespace webhookd {

StreamCall::StreamCall(
    grpc::GenericStub& stub, const std::string& method,
    const std::string& request,
    const std::vector<std::pair<std::string, std::string>>& metadata,
    size_t max_queued)
    : max_queued_(max_queued), request_(ToByteBuffer(request)) {
  for (const auto& [key, value] : metadata) context_.AddMetadata(key, value);
  stub.PrepareBidiStreamingCall(&context_, method, grpc::StubOptions(), this);
  // The one request message, then the half-close: a server-streaming call.
  StartWriteLast(&request_, grpc::WriteOptions());
  StartRead(&incoming_);
  StartCall();
}

StreamCall::~StreamCall() {
  Cancel();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&done_));
}

bool StreamCall::WaitStarted() {
  absl::MutexLock lock(&mu_);
  auto started_or_done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return started_ || done_;
  };
  mu_.Await(absl::Condition(&started_or_done));
  return !done_;
}

std::optional<std::string> StreamCall::Next(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !messages_.empty() || done_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  // Once it fell behind, what is queued is no longer worth sending.
  if (messages_.empty() || fell_behind_) return std::nullopt;
  std::string message = std::move(messages_.front());
  messages_.pop_front();
  return message;
}

bool StreamCall::done() const {
  absl::MutexLock lock(&mu_);
  return done_;
}

bool StreamCall::fell_behind() const {
  absl::MutexLock lock(&mu_);
  return fell_behind_;
}

grpc::Status StreamCall::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

void StreamCall::Cancel() { context_.TryCancel(); }

void StreamCall::OnReadInitialMetadataDone(bool ok) {
  // A call ended at once has a response of trailers only, which reads as
  // empty initial metadata: only headers the server sent count as started.
  const bool sent = ok && !context_.GetServerInitialMetadata().empty();
  absl::MutexLock lock(&mu_);
  started_ = sent;
}

void StreamCall::OnReadDone(bool ok) {
  if (!ok) return;  // The stream has ended; OnDone follows.
  std::string message = FromByteBuffer(incoming_);
  bool cancel = false;
  {
    absl::MutexLock lock(&mu_);
    if (messages_.size() >= max_queued_) {
      fell_behind_ = true;
      cancel = true;
    } else {
      messages_.push_back(std::move(message));
    }
  }
  if (cancel) {
    Cancel();
    return;
  }
  StartRead(&incoming_);
}

void StreamCall::OnDone(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  status_ = status;
  done_ = true;
}

}  // namespace webhookd
