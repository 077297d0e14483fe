#include "tests/support/metrics_scrape.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "httplib.h"

namespace webhookd::testing {

absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(10);
  client.set_read_timeout(10);
  httplib::Result result = client.Get(path);
  if (!result) {
    return absl::UnavailableError(
        absl::StrCat("GET ", path, " on port ", port, ": ",
                     httplib::to_string(result.error())));
  }
  if (result->status != 200) {
    return absl::UnavailableError(absl::StrCat("GET ", path, " on port ", port,
                                               ": HTTP ", result->status, " ",
                                               result->body));
  }
  return result->body;
}

absl::StatusOr<std::string> ScrapeMetrics(int port) {
  return HttpGet(port, "/metrics");
}

std::optional<double> MetricValue(const std::string& exposition,
                                  const std::string& series) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (line.size() <= series.size() || line[series.size()] != ' ' ||
        line.substr(0, series.size()) != series) {
      continue;
    }
    double value = 0;
    if (absl::SimpleAtod(line.substr(series.size() + 1), &value)) return value;
  }
  return std::nullopt;
}

std::optional<double> ScrapedValue(int port, const std::string& series) {
  absl::StatusOr<std::string> exposition = ScrapeMetrics(port);
  if (!exposition.ok()) return std::nullopt;
  return MetricValue(*exposition, series);
}

}  // namespace webhookd::testing
