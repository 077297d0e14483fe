#include "bench/calibration.h"

#include <unistd.h>

#include <fstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/support/subprocess.h"

namespace webhookd::bench {
namespace {

// "1.23ms", "456.00us", "1.01s" -> milliseconds; -1 if unreadable.
double ParseWrkDuration(absl::string_view text) {
  double scale = 0;
  if (absl::ConsumeSuffix(&text, "us")) {
    scale = 1e-3;
  } else if (absl::ConsumeSuffix(&text, "ms")) {
    scale = 1;
  } else if (absl::ConsumeSuffix(&text, "s")) {
    scale = 1e3;
  } else if (absl::ConsumeSuffix(&text, "m")) {
    scale = 60e3;
  }
  double value = 0;
  if (scale == 0 || !absl::SimpleAtod(text, &value)) return -1;
  return value * scale;
}

}  // namespace

absl::StatusOr<Calibration> Calibrate(const CalibrationOptions& options) {
  const std::string script =
      absl::StrCat(options.work_dir, "/calibrate-", getpid(), ".lua");
  {
    std::ofstream lua(script);
    // The headers a delivery carries (README "What a delivery looks like").
    lua << "wrk.method = \"POST\"\n"
        << "wrk.body = string.rep(\"x\", " << options.body_bytes << ")\n"
        << "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
        << "wrk.headers[\"User-Agent\"] = \"webhookd/0.1.0\"\n"
        << "wrk.headers[\"X-Webhook-Id\"] = "
           "\"dlv_00000000000000000000000000000000\"\n"
        << "wrk.headers[\"X-Webhook-Event\"] = \"execution.completed\"\n"
        << "wrk.headers[\"X-Webhook-Attempt\"] = \"1\"\n"
        << "wrk.headers[\"X-Hub-Signature-256\"] = string.rep(\"a\", 64)\n"
        << "wrk.headers[\"X-Source\"] = \"gpt-workbench\"\n";
    if (!lua) return absl::UnavailableError("cannot write " + script);
  }
  std::vector<std::string> args = {
      options.wrk,
      absl::StrCat("-t", options.threads),
      absl::StrCat("-c", options.connections),
      absl::StrCat("-d", absl::ToInt64Milliseconds(options.duration) / 1000.0,
                   "s"),
      "--latency",
      "-s",
      script,
      options.url};
  Calibration result;
  result.command = absl::StrJoin(args, " ");
  // wrk ends by itself after the duration; the output is small.
  testing::Subprocess::Options run_options;
  run_options.kill_with_parent = true;
  const testing::RunResult run = testing::Subprocess::Run(
      args, options.duration + absl::Seconds(60), run_options);
  unlink(script.c_str());
  result.output = run.out + run.err;
  if (run.exit_code != 0) {
    return absl::UnavailableError(absl::StrCat(
        "wrk failed (is the Debian package wrk installed?): ", result.output));
  }
  for (absl::string_view line : absl::StrSplit(result.output, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() == 2 && fields[0] == "Requests/sec:") {
      absl::SimpleAtod(fields[1], &result.requests_per_second);
    } else if (fields.size() == 2 && fields[0] == "50%") {
      result.p50_ms = ParseWrkDuration(fields[1]);
    } else if (fields.size() == 2 && fields[0] == "99%") {
      result.p99_ms = ParseWrkDuration(fields[1]);
    }
  }
  if (result.requests_per_second <= 0) {
    return absl::DataLossError("no Requests/sec in wrk output: " +
                               result.output);
  }
  if (absl::StrContains(result.output, "Non-2xx")) {
    return absl::DataLossError("the sink answered wrk with errors: " +
                               result.output);
  }
  return result;
}

}  // namespace webhookd::bench
