// Reading a Prometheus text exposition, for the metrics tests: a scrape
// over HTTP and the value of one series.

#ifndef WEBHOOKD_TESTS_SUPPORT_METRICS_SCRAPE_H_
#define WEBHOOKD_TESTS_SUPPORT_METRICS_SCRAPE_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace webhookd::testing {

// GET http://127.0.0.1:<port><path>: the body of a 200 answer, or why not.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

// The exposition served on http://127.0.0.1:<port>/metrics.
absl::StatusOr<std::string> ScrapeMetrics(int port);

// The value of `series` in `exposition`: the sample whose name and labels
// are exactly `series` as the exposition prints it, e.g.
// webhookd_attempts_total{outcome="success",response_class="2xx"}.
// nullopt when no such sample is there.
std::optional<double> MetricValue(const std::string& exposition,
                                  const std::string& series);

// MetricValue of a fresh scrape; nullopt when the scrape fails too.
std::optional<double> ScrapedValue(int port, const std::string& series);

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_METRICS_SCRAPE_H_
