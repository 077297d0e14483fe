// hot-path-bench: the CPU of the per-event and per-delivery steps that are
// webhookd's own code (no network, no disk), with Google Benchmark.
//
// webhook-bench measures the whole server; this isolates the parts a change
// to the hot path touches, so their cost can be compared before and after
// on a noisy machine: rendering an event's payload, signing a body, and
// making a new id. Inputs are the documented example event with a message
// of 40 bytes to 64 KiB. BENCHMARKS.md has its figures.

#include <cstdio>
#include <cstdlib>
#include <string>

#include "benchmark/benchmark.h"
#include "server/common/ids.h"
#include "server/delivery/payload.h"
#include "server/security/signature.h"

namespace webhookd {
namespace {

void BM_RenderEventPayload(benchmark::State& state) {
  const webhook::v1::SubmitEventRequest request = DocumentedExampleEvent(
      std::string(static_cast<size_t>(state.range(0)), 'x'));
  // Checked once outside the loop: a failure is a broken renderer, and the
  // smoke test must see it (Google Benchmark's errors keep exit code 0).
  if (!RenderEventPayload(request).ok()) {
    std::fprintf(stderr, "RenderEventPayload failed on the example event\n");
    std::abort();
  }
  size_t bytes = 0;
  for (auto _ : state) {
    absl::StatusOr<std::string> payload = RenderEventPayload(request);
    bytes += payload->size();
    benchmark::DoNotOptimize(payload);
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_RenderEventPayload)->Arg(40)->Arg(4096)->Arg(65536);

void BM_SignatureHex(benchmark::State& state) {
  const std::string secret = "whsec-benchmark-secret-0123456789";
  const std::string body(static_cast<size_t>(state.range(0)), 'b');
  for (auto _ : state) {
    std::string signature = SignatureHex(secret, body);
    benchmark::DoNotOptimize(signature);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_SignatureHex)->Arg(800)->Arg(65536);

void BM_NewId(benchmark::State& state) {
  for (auto _ : state) {
    std::string id = NewId("dlv_");
    benchmark::DoNotOptimize(id);
  }
}
BENCHMARK(BM_NewId);

}  // namespace
}  // namespace webhookd

BENCHMARK_MAIN();
