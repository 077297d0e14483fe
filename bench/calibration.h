// The loopback ceiling: the HTTP sink alone, driven by wrk with a POST body
// of the delivery payload's size, so that every figure of a run can be shown
// as a share of what this machine's loopback and sink can carry.

#ifndef WEBHOOKD_BENCH_CALIBRATION_H_
#define WEBHOOKD_BENCH_CALIBRATION_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace webhookd::bench {

struct CalibrationOptions {
  std::string wrk = "wrk";
  // POST target, e.g. the sink's /calib URL.
  std::string url;
  int body_bytes = 700;
  int threads = 1;
  int connections = 64;
  absl::Duration duration = absl::Seconds(5);
  // Where the wrk Lua script is written.
  std::string work_dir;
};

struct Calibration {
  double requests_per_second = 0;
  // Latency percentiles reported by wrk --latency, milliseconds (-1: none).
  double p50_ms = -1;
  double p99_ms = -1;
  std::string command;
  std::string output;
};

// Runs wrk once and parses its "Requests/sec:" line.
absl::StatusOr<Calibration> Calibrate(const CalibrationOptions& options);

}  // namespace webhookd::bench

#endif  // WEBHOOKD_BENCH_CALIBRATION_H_
