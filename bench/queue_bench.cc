// queue-bench: the memory and speed of DeliveryQueue alone.
//
// Fills a queue with --entries deliveries spread over --endpoints endpoints,
// with ids of the form NewId("dlv_") makes and due times scattered over an
// hour, then reports the heap bytes per entry (mallinfo2), the RSS growth
// and the time per Schedule, TakeDue and Remove. Then, unless --cap=0, a
// run with a per-endpoint in-flight cap where --hanging endpoints never
// finish an attempt while the others keep flowing.
//
// Every loop is bounded by --entries or --rounds.

#include <malloc.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "server/common/command_line.h"
#include "server/common/version.h"
#include "server/delivery/delivery_queue.h"
#include "storage/store.h"

ABSL_FLAG(int64_t, entries, 1'000'000, "Deliveries queued by the fill run.");
ABSL_FLAG(int64_t, endpoints, 1'000,
          "Endpoints the deliveries are spread over.");
ABSL_FLAG(int64_t, take_batch, 256, "`max` of each TakeDue call.");
ABSL_FLAG(int64_t, cap, 8,
          "max_in_flight_per_endpoint of the capped run; 0 skips that run.");
ABSL_FLAG(int64_t, hanging, 100,
          "Endpoints of the capped run whose attempts never finish.");
ABSL_FLAG(int64_t, backlog, 2'000,
          "Due deliveries queued behind each hanging endpoint.");
ABSL_FLAG(int64_t, rounds, 2'000, "TakeDue rounds of the capped run.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the ids and due times.");

namespace webhookd {
namespace {

const absl::Time kBase = absl::FromUnixSeconds(1'774'774'800);

int64_t NowNanos() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

// Bytes of heap in use, as malloc counts them (chunk overhead included):
// allocated chunks (uordblks) and the large blocks malloc maps on their own
// (hblkhd), such as the table of a big hash map.
int64_t HeapInUse() {
  const struct mallinfo2 info = mallinfo2();
  return static_cast<int64_t>(info.uordblks + info.hblkhd);
}

// VmRSS of this process, in bytes.
int64_t Rss() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    int64_t kb = 0;
    std::string digits;
    for (char c : line) {
      if (c >= '0' && c <= '9') digits += c;
    }
    if (absl::SimpleAtoi(digits, &kb)) return kb * 1024;
  }
  return 0;
}

// An id of the form NewId makes: a prefix and 32 lowercase hex digits.
std::string RandomId(std::mt19937_64& random, const char* prefix) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(prefix);
  for (int half = 0; half < 2; ++half) {
    const uint64_t bits = random();
    for (int shift = 60; shift >= 0; shift -= 4)
      id += kHex[(bits >> shift) & 0xf];
  }
  return id;
}

double NanosPer(int64_t nanos, int64_t ops) {
  return ops == 0 ? 0 : static_cast<double>(nanos) / static_cast<double>(ops);
}

bool NeverHeld(const std::string&) { return false; }

// Fills, drains and empties one queue; returns false if the queue lost
// count.
bool RunFill(int64_t entries, int64_t endpoints, size_t batch,
             std::mt19937_64& random) {
  std::vector<std::string> endpoint_ids;
  for (int64_t i = 0; i < endpoints; ++i) {
    endpoint_ids.push_back(RandomId(random, "ep_"));
  }
  std::vector<QueuedDelivery> deliveries(static_cast<size_t>(entries));
  std::uniform_int_distribution<int64_t> due_micros(0, 3'600'000'000);
  for (int64_t i = 0; i < entries; ++i) {
    QueuedDelivery& d = deliveries[static_cast<size_t>(i)];
    d.delivery_id = RandomId(random, "dlv_");
    d.endpoint_id = endpoint_ids[static_cast<size_t>(i % endpoints)];
    d.due = kBase + absl::Microseconds(due_micros(random));
  }

  DeliveryQueue queue;
  malloc_trim(0);
  const int64_t heap_before = HeapInUse();
  const int64_t rss_before = Rss();
  int64_t start = NowNanos();
  for (const QueuedDelivery& d : deliveries) queue.Schedule(d);
  const int64_t schedule_nanos = NowNanos() - start;
  const int64_t heap_after = HeapInUse();
  const int64_t rss_after = Rss();
  if (queue.size() != deliveries.size()) {
    std::printf("FAIL: size %zu after %lld Schedule calls\n", queue.size(),
                static_cast<long long>(entries));
    return false;
  }

  const absl::Time end = kBase + absl::Hours(2);
  int64_t taken = 0;
  start = NowNanos();
  for (int64_t round = 0; round <= entries; ++round) {
    const size_t got = queue.TakeDue(end, batch, NeverHeld).size();
    if (got == 0) break;
    taken += static_cast<int64_t>(got);
  }
  const int64_t take_nanos = NowNanos() - start;

  start = NowNanos();
  for (const QueuedDelivery& d : deliveries) queue.Remove(d.delivery_id);
  const int64_t remove_nanos = NowNanos() - start;
  const int64_t heap_left = HeapInUse() - heap_before;

  std::printf("fill: %lld entries over %lld endpoints\n",
              static_cast<long long>(entries),
              static_cast<long long>(endpoints));
  std::printf("  heap  %.1f bytes/entry (mallinfo2 uordblks + hblkhd)\n",
              static_cast<double>(heap_after - heap_before) /
                  static_cast<double>(entries));
  std::printf("  rss   %.1f bytes/entry (VmRSS growth)\n",
              static_cast<double>(rss_after - rss_before) /
                  static_cast<double>(entries));
  std::printf("  Schedule %.0f ns/op\n", NanosPer(schedule_nanos, entries));
  std::printf("  TakeDue  %.0f ns/entry (batches of %zu, %lld taken)\n",
              NanosPer(take_nanos, taken), batch,
              static_cast<long long>(taken));
  std::printf("  Remove   %.0f ns/op\n", NanosPer(remove_nanos, entries));
  std::printf("  heap still held when empty: %lld bytes\n",
              static_cast<long long>(heap_left));
  if (taken != entries || queue.size() != 0) {
    std::printf("FAIL: took %lld, %zu left\n", static_cast<long long>(taken),
                queue.size());
    return false;
  }
  return true;
}

// `endpoints` endpoints, of which `hanging` never finish an attempt and have
// `backlog` due deliveries each, queued first; the others finish every
// attempt at once and get a new delivery, due at once, for it. Returns false
// if the cap was broken or the healthy endpoints did not get full batches.
bool RunCapped(int64_t endpoints, int64_t hanging, int64_t backlog,
               int64_t rounds, size_t cap, size_t batch,
               std::mt19937_64& random) {
  DeliveryQueue queue(cap);
  std::vector<std::string> endpoint_ids;
  absl::flat_hash_map<std::string, int64_t> index_of;
  for (int64_t i = 0; i < endpoints; ++i) {
    endpoint_ids.push_back(RandomId(random, "ep_"));
    index_of[endpoint_ids.back()] = i;
  }
  absl::Time now = kBase + absl::Hours(1);
  int64_t step = 0;  // The initial due times increase by 1 us per delivery.
  auto schedule = [&](int64_t endpoint, absl::Time due) {
    queue.Schedule(QueuedDelivery{RandomId(random, "dlv_"),
                                  endpoint_ids[static_cast<size_t>(endpoint)],
                                  due, false, false});
  };
  for (int64_t i = 0; i < hanging * backlog; ++i) {
    schedule(i % hanging, kBase + absl::Microseconds(step++));
  }
  for (int64_t i = hanging; i < endpoints; ++i) {
    for (size_t j = 0; j < cap; ++j) {
      schedule(i, kBase + absl::Microseconds(step++));
    }
  }

  const size_t expect_parked = static_cast<size_t>(hanging * backlog) -
                               static_cast<size_t>(hanging) * cap;
  std::vector<int64_t> in_flight(static_cast<size_t>(endpoints), 0);
  // The rounds until the hanging endpoints' backlog is parked, then the
  // steady state measured.
  int64_t warmup_rounds = 0;
  int64_t slowest_warmup_nanos = 0;
  int64_t steady_rounds = 0;
  int64_t delivered = 0;
  int64_t take_nanos = 0;
  int64_t finish_nanos = 0;
  int64_t short_rounds = 0;
  bool ok = true;
  for (int64_t round = 0; round < rounds; ++round) {
    const bool steady = queue.parked() == expect_parked;
    now += absl::Milliseconds(1);
    int64_t start = NowNanos();
    const std::vector<QueuedDelivery> due =
        queue.TakeDue(now, batch, NeverHeld);
    const int64_t took = NowNanos() - start;
    if (steady) {
      take_nanos += took;
      ++steady_rounds;
      if (due.size() < batch) ++short_rounds;
    } else {
      slowest_warmup_nanos = std::max(slowest_warmup_nanos, took);
      ++warmup_rounds;
    }
    start = NowNanos();
    for (const QueuedDelivery& d : due) {
      const int64_t endpoint = index_of[d.endpoint_id];
      if (++in_flight[static_cast<size_t>(endpoint)] >
          static_cast<int64_t>(cap)) {
        ok = false;
      }
      if (endpoint < hanging) continue;
      queue.Remove(d.delivery_id);
      --in_flight[static_cast<size_t>(endpoint)];
      schedule(endpoint, now);
      if (steady) ++delivered;
    }
    if (steady) finish_nanos += NowNanos() - start;
  }
  std::printf(
      "capped: cap %zu, %lld endpoints, %lld hanging with %lld due each\n", cap,
      static_cast<long long>(endpoints), static_cast<long long>(hanging),
      static_cast<long long>(backlog));
  std::printf("  %lld rounds to park the backlog, slowest TakeDue %.1f ms\n",
              static_cast<long long>(warmup_rounds),
              static_cast<double>(slowest_warmup_nanos) / 1e6);
  std::printf("  then %lld healthy deliveries in %lld rounds, %lld short\n",
              static_cast<long long>(delivered),
              static_cast<long long>(steady_rounds),
              static_cast<long long>(short_rounds));
  std::printf("  TakeDue %.0f ns per delivery taken\n",
              NanosPer(take_nanos, delivered));
  std::printf("  Remove+Schedule %.0f ns per delivery finished\n",
              NanosPer(finish_nanos, delivered));
  std::printf("  queue time %.2f us per delivery: %.0f deliveries/s\n",
              NanosPer(take_nanos + finish_nanos, delivered) / 1000,
              delivered == 0
                  ? 0.0
                  : 1e9 * static_cast<double>(delivered) /
                        static_cast<double>(take_nanos + finish_nanos));
  std::printf("  parked %zu (expected %zu), in flight %zu\n", queue.parked(),
              expect_parked, queue.in_flight());
  if (!ok) std::printf("FAIL: an endpoint went over the cap\n");
  if (queue.parked() != expect_parked) {
    std::printf("FAIL: parked count\n");
    ok = false;
  }
  if (steady_rounds == 0 || short_rounds > 0) {
    std::printf("FAIL: healthy endpoints did not get full batches\n");
    ok = false;
  }
  return ok;
}

}  // namespace
}  // namespace webhookd

int main(int argc, char** argv) {
  webhookd::ParseCommandLineOrExit(
      argc, argv, "queue-bench", "bench/queue_bench.cc", webhookd::kVersion,
      "measures DeliveryQueue: bytes per entry and time per operation.");
  const int64_t entries = std::max<int64_t>(1, absl::GetFlag(FLAGS_entries));
  const int64_t endpoints =
      std::max<int64_t>(1, absl::GetFlag(FLAGS_endpoints));
  const size_t batch = static_cast<size_t>(
      std::max<int64_t>(1, absl::GetFlag(FLAGS_take_batch)));
  std::mt19937_64 random(absl::GetFlag(FLAGS_seed));
  bool ok = webhookd::RunFill(entries, endpoints, batch, random);
  const int64_t cap = absl::GetFlag(FLAGS_cap);
  if (cap > 0) {
    ok = webhookd::RunCapped(
             endpoints,
             std::clamp<int64_t>(absl::GetFlag(FLAGS_hanging), 0, endpoints),
             std::max<int64_t>(absl::GetFlag(FLAGS_backlog), cap),
             std::max<int64_t>(1, absl::GetFlag(FLAGS_rounds)),
             static_cast<size_t>(cap), batch, random) &&
         ok;
  }
  return ok ? 0 : 1;
}
