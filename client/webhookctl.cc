// webhookctl: the command-line client of webhookd. Every RPC as a
// subcommand, tables for people and protobuf JSON (--output json) for
// scripts, a live view of deliveries (deliveries watch) and a local receiver
// for development (listen).

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/webhook_client.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "server/common/version.h"
#include "server/security/signature.h"

namespace webhookd {
namespace {

using webhook::v1::Delivery;
using webhook::v1::DeliveryStatus;
using webhook::v1::Endpoint;

constexpr char kDefaultServer[] = "127.0.0.1:50051";
// Exit codes: 0 success, 1 the call failed, 2 bad usage (CLI11's too).
constexpr int kCallFailed = 1;
constexpr int kUsage = 2;

// Options shared by every subcommand.
struct Globals {
  std::string server = kDefaultServer;
  std::string output = "table";
  double timeout_seconds = 10;
  std::string api_key;
  bool tls = false;
  std::string tls_ca_file;

  bool json() const { return output == "json"; }
};

// ---- Output ----------------------------------------------------------------

void Flush() { std::fflush(stdout); }

std::string ToJson(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.add_whitespace = pretty;
  std::string out;
  // Fails only for Any fields of unknown types; the API has none.
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

void PrintJson(const google::protobuf::Message& message) {
  std::string json = ToJson(message, /*pretty=*/true);
  if (json.empty() || json.back() != '\n') json += '\n';
  std::fputs(json.c_str(), stdout);
  Flush();
}

// Left-aligned columns, two spaces apart; the last column is not padded.
void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 0);
  auto measure = [&width](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  };
  measure(header);
  for (const auto& row : rows) measure(row);
  auto print = [&width](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line.append(width[i] - row[i].size() + 2, ' ');
      }
    }
    std::puts(line.c_str());
  };
  print(header);
  for (const auto& row : rows) print(row);
  Flush();
}

// "name   value" lines.
void PrintFields(
    const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t width = 0;
  for (const auto& [name, value] : fields) width = std::max(width, name.size());
  for (const auto& [name, value] : fields) {
    std::printf("%s%s  %s\n", name.c_str(),
                std::string(width - name.size(), ' ').c_str(), value.c_str());
  }
  Flush();
}

std::string Time(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return "-";
  return google::protobuf::util::TimeUtil::ToString(time);
}

std::string StatusName(DeliveryStatus status) {
  absl::string_view name = webhook::v1::DeliveryStatus_Name(status);
  absl::ConsumePrefix(&name, "DELIVERY_STATUS_");
  return std::string(name);
}

std::string YesNo(bool value) { return value ? "yes" : "no"; }

std::string Headers(const Endpoint& endpoint) {
  std::vector<std::string> headers;
  for (const auto& header : endpoint.headers()) {
    headers.push_back(absl::StrCat(header.name(), ": ", header.value()));
  }
  return headers.empty() ? "-" : absl::StrJoin(headers, "; ");
}

// "hub-signature-256" or "standard-webhooks", as --signature-scheme takes it.
std::string SchemeName(webhook::v1::SignatureScheme scheme) {
  return scheme == webhook::v1::SIGNATURE_SCHEME_STANDARD_WEBHOOKS
             ? "standard-webhooks"
             : "hub-signature-256";
}

std::string PreviousSecret(const Endpoint& endpoint) {
  return endpoint.has_previous_secret()
             ? absl::StrCat("valid until ",
                            Time(endpoint.previous_secret_expire_time()))
             : "none";
}

// "yes", or "no" with why: "no (manual)", "no (failing)", "no (gone)".
std::string Enabled(const Endpoint& endpoint) {
  if (endpoint.enabled()) return "yes";
  if (endpoint.disabled_reason() == webhook::v1::DISABLED_REASON_UNSPECIFIED) {
    return "no";
  }
  absl::string_view reason =
      webhook::v1::DisabledReason_Name(endpoint.disabled_reason());
  absl::ConsumePrefix(&reason, "DISABLED_REASON_");
  return absl::StrCat("no (", absl::AsciiStrToLower(reason), ")");
}

// When and why the endpoint was disabled; "-" while enabled.
std::string Disabled(const Endpoint& endpoint) {
  if (endpoint.enabled() || !endpoint.has_disable_time()) return "-";
  return endpoint.disabled_detail().empty()
             ? Time(endpoint.disable_time())
             : absl::StrCat(Time(endpoint.disable_time()), ": ",
                            endpoint.disabled_detail());
}

// The endpoint's event type filter; "all" when it has none.
std::string EventTypes(const Endpoint& endpoint) {
  return endpoint.event_types().empty()
             ? "all"
             : absl::StrJoin(endpoint.event_types(), ", ");
}

void PrintEndpoint(const Endpoint& endpoint) {
  PrintFields({{"id", endpoint.id()},
               {"name", endpoint.name()},
               {"thread", endpoint.thread_id()},
               {"user", absl::StrCat(endpoint.user_id())},
               {"url", endpoint.url()},
               {"enabled", Enabled(endpoint)},
               {"disabled", Disabled(endpoint)},
               {"secret", endpoint.has_secret() ? "set" : "none"},
               {"signature", SchemeName(endpoint.signature_scheme())},
               {"previous secret", PreviousSecret(endpoint)},
               {"headers", Headers(endpoint)},
               {"event types", EventTypes(endpoint)},
               {"created", Time(endpoint.create_time())},
               {"updated", Time(endpoint.update_time())}});
}

std::string Attempts(const Delivery& delivery) {
  return absl::StrCat(delivery.attempts(), "/", delivery.max_attempts());
}

std::string Code(int code) { return code == 0 ? "-" : absl::StrCat(code); }

std::vector<std::string> DeliveryRow(const Delivery& d) {
  return {d.id(),          StatusName(d.status()),
          Attempts(d),     Code(d.response_code()),
          d.endpoint_id(), d.thread_id(),
          d.event_type(),  Time(d.create_time())};
}

const std::vector<std::string>& DeliveryHeader() {
  static const auto* const kHeader =
      new std::vector<std::string>{"ID",       "STATUS", "ATTEMPTS", "CODE",
                                   "ENDPOINT", "THREAD", "EVENT",    "CREATED"};
  return *kHeader;
}

// The span id of a W3C traceparent ("00-<trace>-<span>-<flags>"), or "-".
std::string SpanId(const std::string& traceparent) {
  constexpr size_t kSpanOffset = 36;
  constexpr size_t kSpanDigits = 16;
  return traceparent.size() < kSpanOffset + kSpanDigits
             ? "-"
             : traceparent.substr(kSpanOffset, kSpanDigits);
}

void PrintDelivery(const Delivery& d) {
  PrintFields({{"id", d.id()},
               {"status", StatusName(d.status())},
               {"attempts", Attempts(d)},
               {"response code", Code(d.response_code())},
               {"response time", absl::StrCat(d.response_time_ms(), " ms")},
               {"endpoint", d.endpoint_id()},
               {"thread", d.thread_id()},
               {"user", absl::StrCat(d.user_id())},
               {"event", absl::StrCat(d.event_id(), " (", d.event_type(), ")")},
               {"test", YesNo(d.test())},
               {"created", Time(d.create_time())},
               {"next attempt", Time(d.next_attempt_time())},
               {"last error", d.last_error().empty() ? "-" : d.last_error()},
               {"traceparent", d.traceparent().empty() ? "-" : d.traceparent()},
               {"resent from", d.resent_from().empty() ? "-" : d.resent_from()},
               {"resent by", d.resent_by().empty() ? "-" : d.resent_by()}});
  if (d.attempt_history_size() > 0) {
    std::puts("");
    std::vector<std::vector<std::string>> rows;
    for (const auto& a : d.attempt_history()) {
      rows.push_back({absl::StrCat(a.attempt()), Time(a.start_time()),
                      Code(a.response_code()),
                      absl::StrCat(a.response_time_ms()), YesNo(a.manual()),
                      SpanId(a.traceparent()),
                      a.error().empty() ? "-" : a.error()});
    }
    PrintTable({"ATTEMPT", "STARTED", "CODE", "MS", "MANUAL", "SPAN", "ERROR"},
               rows);
  }
  if (!d.payload().empty()) std::printf("\npayload\n%s\n", d.payload().c_str());
  Flush();
}

// The --server address, for the hint on connection errors.
std::string& ServerAddress() {
  static std::string* const address = new std::string();
  return *address;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "webhookctl: %s: %s\n",
               absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str());
  // gRPC says "failed to connect to all addresses" (or "Connection
  // refused") when nothing answers: most often, no server runs there.
  if (absl::IsUnavailable(status) &&
      absl::StrContains(absl::AsciiStrToLower(status.message()), "connect")) {
    std::fprintf(stderr,
                 "webhookctl: is webhookd running on %s? Start it, or give "
                 "its address with --server or $WEBHOOKCTL_SERVER.\n",
                 ServerAddress().c_str());
  }
  return kCallFailed;
}

int UsageError(const std::string& message) {
  std::fprintf(stderr, "webhookctl: %s\n", message.c_str());
  return kUsage;
}

// ---- Parsing helpers
// ---------------------------------------------------------

// "Name: value" (or "Name=value").
bool ParseHeader(const std::string& text, webhook::v1::Header* header) {
  size_t split = text.find(':');
  if (split == std::string::npos) split = text.find('=');
  if (split == std::string::npos || split == 0) return false;
  header->set_name(
      std::string(absl::StripAsciiWhitespace(text.substr(0, split))));
  header->set_value(
      std::string(absl::StripAsciiWhitespace(text.substr(split + 1))));
  return true;
}

bool ParseStatus(const std::string& text, DeliveryStatus* status) {
  std::string upper = absl::AsciiStrToUpper(text);
  if (!absl::StartsWith(upper, "DELIVERY_STATUS_")) {
    upper = absl::StrCat("DELIVERY_STATUS_", upper);
  }
  return webhook::v1::DeliveryStatus_Parse(upper, status) &&
         *status != webhook::v1::DELIVERY_STATUS_UNSPECIFIED;
}

bool ReadInput(const std::string& path, std::string* text) {
  if (path == "-") {
    *text = std::string(std::istreambuf_iterator<char>(std::cin), {});
    return true;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  *text = buffer.str();
  return true;
}

// ---- Signals
// -----------------------------------------------------------------

// Turns SIGINT and SIGTERM into a call of `stop` on a thread of its own, so
// that long-running commands end cleanly on Ctrl-C. Must be created before
// any other thread starts (gRPC's, httplib's), so that all of them inherit
// the blocked signals.
class StopOnSignal {
 public:
  StopOnSignal() {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGINT);
    sigaddset(&signals_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
    std::thread([this] {
      int received = 0;
      sigwait(&signals_, &received);
      absl::MutexLock lock(&mu_);
      stopped_ = true;
      if (stop_) stop_();
    }).detach();
  }
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;

  // `stop` runs on the signal thread (at once if a signal already came).
  void Set(std::function<void()> stop) {
    absl::MutexLock lock(&mu_);
    stop_ = std::move(stop);
    if (stopped_ && stop_) stop_();
  }
  // Unsets the callback before what it refers to goes away.
  void Clear() {
    absl::MutexLock lock(&mu_);
    stop_ = nullptr;
  }
  bool stopped() {
    absl::MutexLock lock(&mu_);
    return stopped_;
  }

 private:
  sigset_t signals_;
  absl::Mutex mu_;
  std::function<void()> stop_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

// The signal thread is detached and may run until the process exits, so the
// object is never destroyed.
StopOnSignal& Signals() {
  static StopOnSignal* const kSignals = new StopOnSignal();
  return *kSignals;
}

// ---- Commands
// ------------------------------------------------------------------

using Action = std::function<int(WebhookClient&, const Globals&)>;

template <typename T>
int Show(const absl::StatusOr<T>& result, const Globals& g,
         const std::function<void(const T&)>& table) {
  if (!result.ok()) return Fail(result.status());
  if (g.json()) {
    PrintJson(*result);
  } else {
    table(*result);
  }
  return 0;
}

struct EndpointFlags {
  std::string thread, name, url, secret, signature_scheme;
  int64_t user = 0;
  std::vector<std::string> headers;
  std::vector<std::string> event_types;
  bool clear_secret = false, clear_headers = false, clear_event_types = false;
  bool disabled = false;
};

void AddEndpointFlags(CLI::App* cmd, EndpointFlags& f, bool create) {
  auto* thread = cmd->add_option("--thread", f.thread,
                                 "Thread whose events the endpoint receives");
  auto* name = cmd->add_option("--name", f.name, "Label, 1 to 200 characters");
  auto* url = cmd->add_option("--url", f.url, "Where deliveries are POSTed");
  cmd->add_option("--secret", f.secret,
                  "Secret of the signature HMAC (a whsec_ secret for "
                  "standard-webhooks; see secret generate)");
  cmd->add_option("--signature-scheme", f.signature_scheme,
                  "How deliveries are signed: hub-signature-256 (the default: "
                  "X-Hub-Signature-256) or standard-webhooks")
      ->check(CLI::IsMember({"hub-signature-256", "standard-webhooks"}));
  cmd->add_option("--header", f.headers,
                  "Custom header \"Name: value\"; repeat for more")
      ->allow_extra_args(false);
  cmd->add_option("--event-type", f.event_types,
                  "Only events of this type (e.g. execution.completed, "
                  "execution.*); repeat for more. Default: every event")
      ->allow_extra_args(false);
  if (create) {
    thread->required();
    name->required();
    url->required();
    cmd->add_option("--user", f.user, "Owning user id (0: the API key's)");
    cmd->add_flag("--disabled", f.disabled,
                  "Create it disabled: no deliveries until enabled");
  } else {
    cmd->add_flag("--clear-secret", f.clear_secret,
                  "Remove the secret (deliveries are then unsigned)");
    cmd->add_flag("--clear-headers", f.clear_headers,
                  "Remove every custom header");
    cmd->add_flag("--clear-event-types", f.clear_event_types,
                  "Remove the event type filter (every event again)");
  }
}

// Fills `endpoint` from the flags given; returns false on a bad header.
bool FillEndpoint(const EndpointFlags& f, Endpoint* endpoint,
                  std::string* error) {
  endpoint->set_thread_id(f.thread);
  endpoint->set_name(f.name);
  endpoint->set_url(f.url);
  endpoint->set_secret(f.secret);
  endpoint->set_user_id(f.user);
  if (f.signature_scheme == "standard-webhooks") {
    endpoint->set_signature_scheme(
        webhook::v1::SIGNATURE_SCHEME_STANDARD_WEBHOOKS);
  } else if (!f.signature_scheme.empty()) {
    endpoint->set_signature_scheme(
        webhook::v1::SIGNATURE_SCHEME_HUB_SIGNATURE_256);
  }
  for (const std::string& type : f.event_types) {
    endpoint->add_event_types(type);
  }
  for (const std::string& text : f.headers) {
    if (!ParseHeader(text, endpoint->add_headers())) {
      *error =
          absl::StrCat("--header \"", text, "\": expected \"Name: value\"");
      return false;
    }
  }
  return true;
}

void AddEndpointCommands(CLI::App& app, Action& action) {
  CLI::App* endpoints =
      app.add_subcommand("endpoints", "Manage webhook endpoints");
  endpoints->require_subcommand(1);

  {
    auto* cmd = endpoints->add_subcommand("create", "Create an endpoint");
    auto f = std::make_shared<EndpointFlags>();
    AddEndpointFlags(cmd, *f, /*create=*/true);
    cmd->callback([&action, f] {
      action = [f](WebhookClient& client, const Globals& g) {
        Endpoint endpoint;
        std::string error;
        if (!FillEndpoint(*f, &endpoint, &error)) return UsageError(error);
        return Show<Endpoint>(client.CreateEndpoint(endpoint, f->disabled), g,
                              PrintEndpoint);
      };
    });
  }
  {
    auto* cmd = endpoints->add_subcommand("get", "Show an endpoint");
    auto id = std::make_shared<std::string>();
    cmd->add_option("id", *id, "Endpoint id")->required();
    cmd->callback([&action, id] {
      action = [id](WebhookClient& client, const Globals& g) {
        return Show<Endpoint>(client.GetEndpoint(*id), g, PrintEndpoint);
      };
    });
  }
  {
    auto* cmd = endpoints->add_subcommand("list", "List endpoints by id");
    auto thread = std::make_shared<std::string>();
    auto page_size = std::make_shared<int>(0);
    auto page_token = std::make_shared<std::string>();
    cmd->add_option("--thread", *thread, "Only endpoints of this thread");
    cmd->add_option("--page-size", *page_size,
                    "Endpoints per page (default 50, at most 1000)");
    cmd->add_option("--page-token", *page_token,
                    "next_page_token of the previous page");
    cmd->callback([&action, thread, page_size, page_token] {
      action = [=](WebhookClient& client, const Globals& g) {
        webhook::v1::ListEndpointsRequest request;
        request.set_thread_id(*thread);
        request.set_page_size(*page_size);
        request.set_page_token(*page_token);
        return Show<webhook::v1::ListEndpointsResponse>(
            client.ListEndpoints(request), g, [](const auto& response) {
              std::vector<std::vector<std::string>> rows;
              for (const Endpoint& e : response.endpoints()) {
                rows.push_back({e.id(), e.thread_id(), Enabled(e),
                                e.has_secret() ? "set" : "none",
                                SchemeName(e.signature_scheme()), EventTypes(e),
                                e.name(), e.url()});
              }
              PrintTable({"ID", "THREAD", "ENABLED", "SECRET", "SIGNATURE",
                          "EVENT TYPES", "NAME", "URL"},
                         rows);
              if (!response.next_page_token().empty()) {
                std::printf("next page: --page-token %s\n",
                            response.next_page_token().c_str());
              }
            });
      };
    });
  }
  {
    auto* cmd = endpoints->add_subcommand(
        "update", "Change the fields given of an endpoint");
    auto id = std::make_shared<std::string>();
    auto f = std::make_shared<EndpointFlags>();
    cmd->add_option("id", *id, "Endpoint id")->required();
    AddEndpointFlags(cmd, *f, /*create=*/false);
    cmd->callback([&action, cmd, id, f] {
      google::protobuf::FieldMask mask;
      for (const char* field : {"thread", "name", "url"}) {
        if (cmd->count(absl::StrCat("--", field)) > 0) {
          mask.add_paths(std::string(field) == "thread" ? "thread_id" : field);
        }
      }
      if (cmd->count("--secret") > 0 || f->clear_secret) {
        mask.add_paths("secret");
      }
      if (cmd->count("--signature-scheme") > 0) {
        mask.add_paths("signature_scheme");
      }
      if (cmd->count("--header") > 0 || f->clear_headers) {
        mask.add_paths("headers");
      }
      if (cmd->count("--event-type") > 0 || f->clear_event_types) {
        mask.add_paths("event_types");
      }
      action = [id, f, mask](WebhookClient& client, const Globals& g) {
        if (mask.paths().empty()) {
          return UsageError(
              "endpoints update: nothing to change; give --thread, --name, "
              "--url, --secret, --clear-secret, --signature-scheme, --header, "
              "--clear-headers, --event-type or --clear-event-types");
        }
        Endpoint endpoint;
        std::string error;
        if (!FillEndpoint(*f, &endpoint, &error)) return UsageError(error);
        endpoint.set_id(*id);
        return Show<Endpoint>(client.UpdateEndpoint(endpoint, mask), g,
                              PrintEndpoint);
      };
    });
  }
  {
    auto* cmd = endpoints->add_subcommand(
        "rotate-secret",
        "Replace an endpoint's secret, keeping the current one valid for a "
        "grace period");
    auto id = std::make_shared<std::string>();
    auto secret = std::make_shared<std::string>();
    auto grace = std::make_shared<std::string>();
    cmd->add_option("id", *id, "Endpoint id")->required();
    cmd->add_option("--secret", *secret,
                    "The new secret (default: the server generates one and "
                    "prints it, once)");
    cmd->add_option("--grace", *grace,
                    "How long the current secret stays valid, e.g. 24h, 90m "
                    "(default 24h, at most 168h)");
    cmd->callback([&action, id, secret, grace] {
      action = [=](WebhookClient& client, const Globals& g) {
        webhook::v1::RotateEndpointSecretRequest request;
        request.set_id(*id);
        request.set_new_secret(*secret);
        if (!grace->empty()) {
          absl::Duration duration;
          if (!absl::ParseDuration(*grace, &duration) ||
              duration < absl::Seconds(1)) {
            return UsageError(absl::StrCat(
                "--grace \"", *grace,
                "\": expected a positive duration such as 24h or 90m"));
          }
          request.set_grace_period_seconds(absl::ToInt64Seconds(duration));
        }
        return Show<webhook::v1::RotateEndpointSecretResponse>(
            client.RotateEndpointSecret(request), g, [](const auto& response) {
              PrintEndpoint(response.endpoint());
              if (!response.new_secret().empty()) {
                // Shown once: the server cannot return it again.
                std::printf("\nnew secret  %s\n",
                            response.new_secret().c_str());
                Flush();
              }
            });
      };
    });
  }
  {
    auto* cmd = endpoints->add_subcommand(
        "delete", "Delete an endpoint (its queued deliveries fail)");
    auto id = std::make_shared<std::string>();
    cmd->add_option("id", *id, "Endpoint id")->required();
    cmd->callback([&action, id] {
      action = [id](WebhookClient& client, const Globals& g) {
        absl::Status status = client.DeleteEndpoint(*id);
        if (!status.ok()) return Fail(status);
        if (g.json()) {
          PrintJson(webhook::v1::DeleteEndpointResponse());
        } else {
          std::printf("deleted %s\n", id->c_str());
        }
        return 0;
      };
    });
  }
  for (bool enable : {true, false}) {
    auto* cmd = endpoints->add_subcommand(
        enable ? "enable" : "disable",
        enable ? "Enable an endpoint; held deliveries resume"
               : "Disable an endpoint; its deliveries are held");
    auto id = std::make_shared<std::string>();
    cmd->add_option("id", *id, "Endpoint id")->required();
    cmd->callback([&action, id, enable] {
      action = [id, enable](WebhookClient& client, const Globals& g) {
        return Show<Endpoint>(
            enable ? client.EnableEndpoint(*id) : client.DisableEndpoint(*id),
            g, PrintEndpoint);
      };
    });
  }
  {
    auto* cmd = endpoints->add_subcommand(
        "recover",
        "Resend every FAILED delivery of an endpoint since a time (once each)");
    auto id = std::make_shared<std::string>();
    auto since = std::make_shared<std::string>();
    cmd->add_option("id", *id, "Endpoint id")->required();
    cmd->add_option("--since", *since,
                    "RFC 3339 time (2026-03-29T09:00:00Z) or a duration back "
                    "from now (24h, 90m)")
        ->required();
    cmd->callback([&action, id, since] {
      action = [id, since](WebhookClient& client, const Globals& g) {
        absl::Time from;
        absl::Duration back;
        std::string error;
        if (absl::ParseDuration(*since, &back)) {
          from = absl::Now() - back;
        } else if (!absl::ParseTime(absl::RFC3339_full, *since, &from,
                                    &error)) {
          return UsageError(absl::StrCat(
              "--since \"", *since,
              "\": expected an RFC 3339 time or a duration such as 24h"));
        }
        // One call resends at most 1000: call until none remain.
        webhook::v1::RecoverDeliveriesResponse all;
        for (;;) {
          absl::StatusOr<webhook::v1::RecoverDeliveriesResponse> part =
              client.RecoverDeliveries(*id, from);
          if (!part.ok()) return Fail(part.status());
          for (const std::string& resent : part->delivery_ids()) {
            all.add_delivery_ids(resent);
          }
          if (!part->more()) break;
        }
        return Show<webhook::v1::RecoverDeliveriesResponse>(
            all, g, [](const auto& response) {
              PrintFields(
                  {{"resent", absl::StrCat(response.delivery_ids_size())},
                   {"new deliveries",
                    response.delivery_ids().empty()
                        ? "none"
                        : absl::StrJoin(response.delivery_ids(), " ")}});
            });
      };
    });
  }
  {
    auto* cmd = endpoints->add_subcommand(
        "test", "Send one signed test delivery and wait for its outcome");
    auto id = std::make_shared<std::string>();
    auto payload = std::make_shared<std::string>();
    cmd->add_option("id", *id, "Endpoint id")->required();
    cmd->add_option("--payload", *payload,
                    "JSON object to send (default: the documented sample)");
    cmd->callback([&action, id, payload] {
      action = [id, payload](WebhookClient& client, const Globals& g) {
        absl::StatusOr<Delivery> delivery =
            client.SendTestDelivery(*id, *payload);
        const int shown = Show<Delivery>(delivery, g, PrintDelivery);
        if (shown != 0) return shown;
        // Scripts can rely on the exit code: 0 only for a delivered test.
        if (delivery->status() != webhook::v1::DELIVERY_STATUS_SUCCESS) {
          const std::string why =
              delivery->last_error().empty()
                  ? absl::StrCat("HTTP ", delivery->response_code())
                  : delivery->last_error();
          std::fprintf(stderr, "webhookctl: the test delivery failed (%s)\n",
                       why.c_str());
          return kCallFailed;
        }
        return 0;
      };
    });
  }
  {
    auto* cmd = endpoints->add_subcommand(
        "stats", "Delivery statistics of an endpoint (tests excluded)");
    auto id = std::make_shared<std::string>();
    cmd->add_option("id", *id, "Endpoint id")->required();
    cmd->callback([&action, id] {
      action = [id](WebhookClient& client, const Globals& g) {
        return Show<webhook::v1::EndpointStats>(
            client.GetEndpointStats(*id), g, [](const auto& s) {
              // Deliveries first (what people mean), then attempts (the
              // documented "Total Deliveries" figures).
              PrintFields(
                  {{"endpoint", s.endpoint_id()},
                   {"deliveries succeeded",
                    absl::StrCat(s.deliveries_succeeded())},
                   {"deliveries failed", absl::StrCat(s.deliveries_failed())},
                   {"deliveries in progress",
                    absl::StrCat(s.deliveries_in_progress())},
                   {"delivery success rate",
                    absl::StrCat(s.delivery_success_rate(), " %")},
                   {"attempts", absl::StrCat(s.total_deliveries())},
                   {"attempts succeeded",
                    absl::StrCat(s.successful_deliveries())},
                   {"attempts failed", absl::StrCat(s.failed_deliveries())},
                   {"attempts without response",
                    absl::StrCat(s.attempts_without_response())},
                   {"attempt success rate",
                    absl::StrCat(s.success_rate(), " %")},
                   {"avg response time",
                    absl::StrCat(s.avg_response_time_ms(),
                                 " ms (attempts answered)")}});
            });
      };
    });
  }
}

// ---- events submit-batch
// ------------------------------------------------------------

// Events per SubmitEvents call, and the size a call stays under (the
// server's gRPC message limit is 4 MiB).
constexpr int kBatchEvents = 1000;
constexpr size_t kBatchBytes = 4 * 1024 * 1024 - 64 * 1024;

// The events of a submit-batch file: a JSON array of SubmitEventRequest
// objects, or one object per line (NDJSON; blank lines skipped).
absl::StatusOr<std::vector<webhook::v1::SubmitEventRequest>> ParseEvents(
    const std::string& text) {
  std::vector<webhook::v1::SubmitEventRequest> events;
  const absl::string_view trimmed = absl::StripLeadingAsciiWhitespace(text);
  google::protobuf::util::JsonParseOptions options;
  if (absl::StartsWith(trimmed, "[")) {
    webhook::v1::SubmitEventsRequest batch;
    auto parsed = google::protobuf::util::JsonStringToMessage(
        absl::StrCat("{\"events\":", trimmed, "}"), &batch, options);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("not a JSON array of SubmitEventRequest: ",
                       parsed.message().as_string()));
    }
    events.assign(std::make_move_iterator(batch.mutable_events()->begin()),
                  std::make_move_iterator(batch.mutable_events()->end()));
    return events;
  }
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    webhook::v1::SubmitEventRequest& event = events.emplace_back();
    auto parsed = google::protobuf::util::JsonStringToMessage(std::string(line),
                                                              &event, options);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number,
          ": not a SubmitEventRequest: ", parsed.message().as_string()));
    }
  }
  return events;
}

// `message` of the event at `index` of its call, naming it by its
// `position` in the file instead ("events[3]." for the file's fourth).
std::string InFile(const std::string& message, int index, size_t position) {
  const std::string prefix = absl::StrCat("events[", index, "].");
  if (!absl::StartsWith(message, prefix)) return message;
  return absl::StrCat("events[", position, "].",
                      absl::string_view(message).substr(prefix.size()));
}

// Prints the result of the file's event `position` (`index` in its call);
// returns whether the event was refused.
bool PrintResult(webhook::v1::SubmitEventResult result, int index,
                 size_t position, const Globals& g) {
  result.set_message(InFile(result.message(), index, position));
  if (g.json()) {
    std::printf("%s\n", ToJson(result, /*pretty=*/false).c_str());
    return result.code() != 0;
  }
  if (result.code() != 0) {
    std::printf(
        "%zu  %s  %s\n", position,
        absl::StatusCodeToString(static_cast<absl::StatusCode>(result.code()))
            .c_str(),
        result.message().c_str());
    return true;
  }
  const webhook::v1::SubmitEventResponse& response = result.response();
  const std::string deliveries =
      response.delivery_ids().empty()
          ? "(no delivery)"
          : absl::StrJoin(response.delivery_ids(), " ");
  std::printf("%zu  %s  %s  %s\n", position,
              response.replayed() ? "REPLAYED" : "OK",
              response.event_id().c_str(), deliveries.c_str());
  return false;
}

// Sends `events` in calls of at most kBatchEvents events and kBatchBytes,
// in order, printing each result. Exit code: 0 when every event was
// accepted or replayed, kCallFailed when one was refused or a call failed
// (the events after it are not sent).
int SubmitBatches(WebhookClient& client, const Globals& g,
                  std::vector<webhook::v1::SubmitEventRequest> events) {
  size_t refused = 0;
  size_t next = 0;
  while (next < events.size()) {
    webhook::v1::SubmitEventsRequest request;
    size_t bytes = 0;
    const size_t first = next;
    while (next < events.size() && request.events_size() < kBatchEvents) {
      const size_t size = events[next].ByteSizeLong() + 8;  // With its tag.
      if (request.events_size() > 0 && bytes + size > kBatchBytes) break;
      bytes += size;
      *request.add_events() = std::move(events[next++]);
    }
    absl::StatusOr<webhook::v1::SubmitEventsResponse> response =
        client.SubmitEvents(request);
    if (!response.ok()) {
      Flush();
      if (first > 0) {
        std::fprintf(stderr,
                     "webhookctl: events %zu to %zu were not submitted\n",
                     first, events.size() - 1);
      }
      return Fail(response.status());
    }
    for (int i = 0; i < response->results_size(); ++i) {
      if (PrintResult(std::move(*response->mutable_results(i)), i,
                      first + static_cast<size_t>(i), g)) {
        ++refused;
      }
    }
  }
  Flush();
  if (refused == 0) return 0;
  std::fprintf(stderr, "webhookctl: %zu of %zu events were refused\n", refused,
               events.size());
  return kCallFailed;
}

void AddSubmitBatchCommand(CLI::App& events, Action& action) {
  auto* cmd = events.add_subcommand(
      "submit-batch",
      "Submit many events with SubmitEvents: one result line per event");
  auto file = std::make_shared<std::string>();
  cmd->add_option("--file", *file,
                  "A JSON array of SubmitEventRequest objects, or one per "
                  "line (NDJSON); - for stdin")
      ->required();
  cmd->callback([&action, file] {
    action = [file](WebhookClient& client, const Globals& g) {
      std::string text;
      if (!ReadInput(*file, &text)) {
        return UsageError(absl::StrCat("cannot read ", *file));
      }
      absl::StatusOr<std::vector<webhook::v1::SubmitEventRequest>> parsed =
          ParseEvents(text);
      if (!parsed.ok()) {
        return UsageError(absl::StrCat(*file, ": ", parsed.status().message()));
      }
      if (parsed->empty())
        return UsageError(absl::StrCat(*file, ": no events"));
      return SubmitBatches(client, g, *std::move(parsed));
    };
  });
}

struct EventFlags {
  std::string file, thread, event_type, trigger_id, trigger_name, job_id,
      run_id, prompt, idempotency_key;
  int64_t user = 0;
};

void AddEventCommands(CLI::App& app, Action& action) {
  CLI::App* events = app.add_subcommand("events", "Submit events");
  events->require_subcommand(1);
  auto* cmd = events->add_subcommand(
      "submit",
      "Submit an event: one delivery per enabled endpoint of its thread");
  auto f = std::make_shared<EventFlags>();
  cmd->add_option("--file", f->file,
                  "SubmitEventRequest as protobuf JSON (- for stdin); the "
                  "flags below override its fields");
  cmd->add_option("--thread", f->thread, "Thread of the event");
  cmd->add_option("--user", f->user, "User id");
  cmd->add_option("--event-type", f->event_type,
                  "Event type (default execution.completed)");
  cmd->add_option("--trigger-id", f->trigger_id, "Trigger id");
  cmd->add_option("--trigger-name", f->trigger_name, "Trigger name");
  cmd->add_option("--job-id", f->job_id, "execution.jobId");
  cmd->add_option("--run-id", f->run_id, "execution.runId");
  cmd->add_option("--prompt", f->prompt, "execution.prompt");
  cmd->add_option("--idempotency-key", f->idempotency_key,
                  "Repeating a key within 24 h returns the first response");
  cmd->callback([&action, cmd, f] {
    auto given = [cmd](const char* flag) { return cmd->count(flag) > 0; };
    auto set = std::make_shared<std::vector<std::string>>();
    for (const char* flag : {"--thread", "--user", "--event-type",
                             "--trigger-id", "--trigger-name", "--job-id",
                             "--run-id", "--prompt", "--idempotency-key"}) {
      if (given(flag)) set->push_back(flag);
    }
    action = [f, set](WebhookClient& client, const Globals& g) {
      webhook::v1::SubmitEventRequest request;
      if (!f->file.empty()) {
        std::string text;
        if (!ReadInput(f->file, &text)) {
          return UsageError(absl::StrCat("cannot read ", f->file));
        }
        google::protobuf::util::JsonParseOptions options;
        auto parsed = google::protobuf::util::JsonStringToMessage(
            text, &request, options);
        if (!parsed.ok()) {
          return UsageError(absl::StrCat(
              f->file,
              ": not a SubmitEventRequest: ", parsed.message().as_string()));
        }
      }
      auto is_set = [&set](const char* flag) {
        return std::find(set->begin(), set->end(), flag) != set->end();
      };
      if (is_set("--thread")) request.set_thread_id(f->thread);
      if (is_set("--user")) request.set_user_id(f->user);
      if (is_set("--event-type")) request.set_event_type(f->event_type);
      if (is_set("--trigger-id")) request.set_trigger_id(f->trigger_id);
      if (is_set("--trigger-name")) request.set_trigger_name(f->trigger_name);
      if (is_set("--job-id"))
        request.mutable_execution()->set_job_id(f->job_id);
      if (is_set("--run-id"))
        request.mutable_execution()->set_run_id(f->run_id);
      if (is_set("--prompt"))
        request.mutable_execution()->set_prompt(f->prompt);
      if (is_set("--idempotency-key")) {
        request.set_idempotency_key(f->idempotency_key);
      }
      return Show<webhook::v1::SubmitEventResponse>(
          client.SubmitEvent(request), g, [](const auto& response) {
            std::vector<std::string> ids(response.delivery_ids().begin(),
                                         response.delivery_ids().end());
            PrintFields(
                {{"event", response.event_id()},
                 {"deliveries", ids.empty() ? "none (no endpoint for it)"
                                            : absl::StrJoin(ids, " ")},
                 {"replayed",
                  response.replayed()
                      ? "yes (the idempotency key was used before: the "
                        "first response, nothing new sent)"
                      : "no"}});
          });
    };
  });
  AddSubmitBatchCommand(*events, action);
}

// Prints one update of `deliveries watch` as a line.
void PrintUpdate(const Delivery& d, const Globals& g) {
  if (g.json()) {
    webhook::v1::StreamDeliveriesResponse response;
    *response.mutable_delivery() = d;
    std::printf("%s\n", ToJson(response, /*pretty=*/false).c_str());
  } else {
    std::printf("%-24s  %-36s  %-8s  %-8s  %-4s  %s  %s%s\n",
                absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                 absl::UTCTimeZone())
                    .c_str(),
                d.id().c_str(), StatusName(d.status()).c_str(),
                Attempts(d).c_str(), Code(d.response_code()).c_str(),
                d.endpoint_id().c_str(), d.thread_id().c_str(),
                d.last_error().empty()
                    ? ""
                    : absl::StrCat("  ", d.last_error()).c_str());
  }
  Flush();
}

int Watch(WebhookClient& client, const Globals& g,
          const webhook::v1::StreamDeliveriesRequest& request) {
  std::unique_ptr<DeliveryWatch> watch = client.WatchDeliveries(request);
  Signals().Set([&watch] { watch->Cancel(); });
  if (!g.json()) {
    std::printf("%-24s  %-36s  %-8s  %-8s  %-4s  %s  %s\n", "SEEN", "DELIVERY",
                "STATUS", "ATTEMPTS", "CODE", "ENDPOINT", "THREAD");
    Flush();
  }
  Delivery delivery;
  while (watch->Next(&delivery)) PrintUpdate(delivery, g);
  absl::Status status = watch->Finish();
  Signals().Clear();
  if (Signals().stopped() && absl::IsCancelled(status)) return 0;
  return status.ok() ? 0 : Fail(status);
}

void AddDeliveryCommands(CLI::App& app, Action& action) {
  CLI::App* deliveries =
      app.add_subcommand("deliveries", "Read, retry and watch deliveries");
  deliveries->require_subcommand(1);
  {
    auto* cmd =
        deliveries->add_subcommand("list", "List deliveries, newest first");
    struct Flags {
      std::string endpoint, thread, status, page_token;
      int page_size = 0;
    };
    auto f = std::make_shared<Flags>();
    cmd->add_option("--endpoint", f->endpoint, "Only this endpoint's");
    cmd->add_option("--thread", f->thread, "Only this thread's");
    cmd->add_option("--status", f->status,
                    "Only this status: pending, retrying, success or failed");
    cmd->add_option("--page-size", f->page_size,
                    "Deliveries per page (default 50, at most 1000)");
    cmd->add_option("--page-token", f->page_token,
                    "next_page_token of the previous page");
    cmd->callback([&action, f] {
      action = [f](WebhookClient& client, const Globals& g) {
        webhook::v1::ListDeliveriesRequest request;
        request.set_endpoint_id(f->endpoint);
        request.set_thread_id(f->thread);
        request.set_page_size(f->page_size);
        request.set_page_token(f->page_token);
        if (!f->status.empty()) {
          DeliveryStatus status;
          if (!ParseStatus(f->status, &status)) {
            return UsageError(absl::StrCat(
                "--status \"", f->status,
                "\": expected pending, retrying, success or failed"));
          }
          request.set_status(status);
        }
        return Show<webhook::v1::ListDeliveriesResponse>(
            client.ListDeliveries(request), g, [](const auto& response) {
              std::vector<std::vector<std::string>> rows;
              for (const Delivery& d : response.deliveries()) {
                rows.push_back(DeliveryRow(d));
              }
              PrintTable(DeliveryHeader(), rows);
              if (!response.next_page_token().empty()) {
                std::printf("next page: --page-token %s\n",
                            response.next_page_token().c_str());
              }
            });
      };
    });
  }
  {
    auto* cmd = deliveries->add_subcommand(
        "get", "Show a delivery with its payload and every attempt");
    auto id = std::make_shared<std::string>();
    cmd->add_option("id", *id, "Delivery id")->required();
    cmd->callback([&action, id] {
      action = [id](WebhookClient& client, const Globals& g) {
        return Show<Delivery>(client.GetDelivery(*id), g, PrintDelivery);
      };
    });
  }
  {
    auto* cmd = deliveries->add_subcommand(
        "retry", "Queue an immediate attempt of a failed delivery");
    auto id = std::make_shared<std::string>();
    cmd->add_option("id", *id, "Delivery id")->required();
    cmd->callback([&action, id] {
      action = [id](WebhookClient& client, const Globals& g) {
        return Show<Delivery>(client.RetryDelivery(*id), g, PrintDelivery);
      };
    });
  }
  {
    auto* cmd = deliveries->add_subcommand(
        "resend",
        "Send an ended delivery again as a new delivery of the same event");
    auto id = std::make_shared<std::string>();
    cmd->add_option("id", *id, "Delivery id (SUCCESS or FAILED)")->required();
    cmd->callback([&action, id] {
      action = [id](WebhookClient& client, const Globals& g) {
        return Show<Delivery>(client.ResendDelivery(*id), g, PrintDelivery);
      };
    });
  }
  {
    auto* cmd = deliveries->add_subcommand(
        "watch",
        "Print deliveries live as they are created and change, until Ctrl-C");
    auto endpoint = std::make_shared<std::string>();
    auto thread = std::make_shared<std::string>();
    auto replay = std::make_shared<int>(0);
    cmd->add_option("--endpoint", *endpoint, "Only this endpoint's");
    cmd->add_option("--thread", *thread, "Only this thread's");
    cmd->add_option("--replay", *replay,
                    "First print up to N recent deliveries (at most 1000)");
    cmd->callback([&action, endpoint, thread, replay] {
      action = [=](WebhookClient& client, const Globals& g) {
        webhook::v1::StreamDeliveriesRequest request;
        request.set_endpoint_id(*endpoint);
        request.set_thread_id(*thread);
        request.set_replay_recent(*replay);
        return Watch(client, g, request);
      };
    });
  }
}

// ---- listen ----------------------------------------------------------------

struct ListenFlags {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string secret;
  int status = 200;
};

// How far a Standard Webhooks timestamp may be from now (the standard's
// receivers allow 5 minutes).
constexpr absl::Duration kTimestampTolerance = absl::Minutes(5);

// The Standard Webhooks verdict of a request carrying webhook-signature,
// with `key` (StandardWebhooksKey of the secret): "valid" when one of its
// space-separated "v1,..." signatures matches and webhook-timestamp is
// within kTimestampTolerance of now, "stale" for an old or future
// timestamp, "invalid" otherwise.
std::string CheckStandardWebhooks(const httplib::Request& request,
                                  const std::string& key) {
  const std::string id = request.get_header_value("webhook-id");
  int64_t timestamp = 0;
  if (id.empty() ||
      !absl::SimpleAtoi(request.get_header_value("webhook-timestamp"),
                        &timestamp)) {
    return "invalid";
  }
  if (absl::AbsDuration(absl::Now() - absl::FromUnixSeconds(timestamp)) >
      kTimestampTolerance) {
    return "stale";
  }
  const std::string expected =
      StandardWebhooksSignature(key, id, timestamp, request.body);
  bool valid = false;
  for (absl::string_view given :
       absl::StrSplit(request.get_header_value("webhook-signature"), ' ',
                      absl::SkipEmpty())) {
    valid |= ConstantTimeEquals(std::string_view(given.data(), given.size()),
                                expected);
  }
  return valid ? "valid" : "invalid";
}

// The signature verdict: "valid", "invalid", "stale" (Standard Webhooks
// only), "missing" (no signature header: the endpoint has no secret), or
// "unchecked" when no secret is set. A whsec_ secret checks Standard
// Webhooks headers when the request has them; otherwise X-Hub-Signature-256
// or, during a rotation grace, X-Hub-Signature-256-Next must match.
std::string CheckSignature(const httplib::Request& request,
                           const std::string& secret) {
  if (secret.empty()) return "unchecked";
  if (request.has_header("webhook-signature")) {
    const std::optional<std::string> key = StandardWebhooksKey(secret);
    return key.has_value() ? CheckStandardWebhooks(request, *key) : "invalid";
  }
  const std::string expected = SignatureHex(secret, request.body);
  bool signed_at_all = false;
  for (const char* header :
       {"X-Hub-Signature-256", "X-Hub-Signature-256-Next"}) {
    if (!request.has_header(header)) continue;
    signed_at_all = true;
    std::string given = request.get_header_value(header);
    // The bare hex digest; also accept GitHub's "sha256=" prefix.
    if (absl::StartsWith(given, "sha256=")) given = given.substr(7);
    if (ConstantTimeEquals(absl::AsciiStrToLower(given), expected)) {
      return "valid";
    }
  }
  return signed_at_all ? "invalid" : "missing";
}

int Listen(const ListenFlags& f, const Globals& g) {
  Signals();  // Block the signals before httplib starts its threads.
  httplib::Server server;
  // One request per connection: httplib would otherwise serve an idle
  // keep-alive connection (webhookd's curl keeps them) for up to 5 s after
  // stop(), delaying the exit on Ctrl-C and answering meanwhile.
  server.set_keep_alive_max_count(1);
  absl::Mutex print_mu;
  server.Post(".*", [&](const httplib::Request& request,
                        httplib::Response& response) {
    const std::string signature = CheckSignature(request, f.secret);
    const bool refused = signature == "invalid" || signature == "missing" ||
                         signature == "stale";
    response.status = refused ? 401 : f.status;
    response.set_content(refused ? "invalid signature\n" : "", "text/plain");

    nlohmann::ordered_json line;
    line["time"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                    absl::UTCTimeZone());
    line["path"] = request.path;
    line["delivery_id"] = request.get_header_value("X-Webhook-Id");
    if (request.has_header("webhook-id") &&
        !request.has_header("X-Webhook-Id")) {
      line["delivery_id"] = request.get_header_value("webhook-id");
    }
    line["event"] = request.get_header_value("X-Webhook-Event");
    line["attempt"] = request.get_header_value("X-Webhook-Attempt");
    line["signature"] = signature;
    line["status"] = response.status;
    absl::MutexLock lock(&print_mu);
    if (g.json()) {
      // ordered_json keeps the keys in the order they were sent.
      nlohmann::ordered_json body = nlohmann::ordered_json::parse(
          request.body, nullptr, /*allow_exceptions=*/false);
      line["body"] =
          body.is_discarded() ? nlohmann::ordered_json(request.body) : body;
      std::printf("%s\n", line.dump().c_str());
    } else {
      std::printf("%s  POST %s  id=%s event=%s attempt=%s signature=%s -> %d\n",
                  line["time"].get<std::string>().c_str(), request.path.c_str(),
                  line["delivery_id"].get<std::string>().c_str(),
                  line["event"].get<std::string>().c_str(),
                  line["attempt"].get<std::string>().c_str(), signature.c_str(),
                  response.status);
      // The body exactly as received.
      std::printf("%s\n\n", request.body.c_str());
    }
    Flush();
  });

  // SO_REUSEADDR only: cpp-httplib would add SO_REUSEPORT, with which a
  // port already in use (webhookd's, say) is shared without an error.
  server.set_socket_options([](int sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  int port = f.port;
  if (port == 0) {
    port = server.bind_to_any_port(f.host);
  } else if (!server.bind_to_port(f.host, port)) {
    port = -1;
  }
  if (port <= 0) {
    return UsageError(absl::StrCat("cannot listen on ", f.host, ":", f.port,
                                   " (in use, or not an address here?)"));
  }
  const std::string url = absl::StrCat("http://", f.host, ":", port, "/");
  if (g.json()) {
    nlohmann::ordered_json line;
    line["listening"] = url;
    line["signature_check"] = !f.secret.empty();
    std::printf("%s\n", line.dump().c_str());
  } else {
    std::printf("listening on %s (signature check %s); Ctrl-C to stop\n",
                url.c_str(), f.secret.empty() ? "off: no --secret" : "on");
  }
  Flush();
  Signals().Set([&server] { server.stop(); });
  server.listen_after_bind();
  Signals().Clear();
  return 0;
}

void AddSecretCommand(CLI::App& app,
                      std::function<int(const Globals&)>& local) {
  CLI::App* secret = app.add_subcommand("secret", "Endpoint secrets");
  secret->require_subcommand(1);
  auto* cmd = secret->add_subcommand(
      "generate",
      "Print a new strong secret (32 random bytes; calls no server)");
  auto standard = std::make_shared<bool>(false);
  cmd->add_flag("--standard-webhooks", *standard,
                "A whsec_ secret, as standard-webhooks endpoints need "
                "(default: 64 hex digits)");
  cmd->callback([&local, standard] {
    local = [standard](const Globals&) {
      std::printf("%s\n", GenerateSecret(*standard).c_str());
      Flush();
      return 0;
    };
  });
}

void AddListenCommand(CLI::App& app,
                      std::function<int(const Globals&)>& local) {
  auto* cmd = app.add_subcommand(
      "listen",
      "Run a local receiver that verifies signatures and prints deliveries");
  auto f = std::make_shared<ListenFlags>();
  cmd->add_option("--port", f->port, "Port to listen on (0: any free one)")
      ->capture_default_str();
  cmd->add_option("--host", f->host, "Address to bind")->capture_default_str();
  cmd->add_option("--secret", f->secret,
                  "Endpoint secret: answer 401 to a bad or missing "
                  "signature (X-Hub-Signature-256 or its -Next, or with a "
                  "whsec_ secret the Standard Webhooks headers)");
  cmd->add_option("--status", f->status,
                  "HTTP status to answer good deliveries with (e.g. 500 to "
                  "see retries)")
      ->capture_default_str()
      ->check(CLI::Range(200, 599));
  cmd->callback(
      [&local, f] { local = [f](const Globals& g) { return Listen(*f, g); }; });
}

std::shared_ptr<grpc::ChannelCredentials> Credentials(const Globals& g,
                                                      std::string* error) {
  if (!g.tls && g.tls_ca_file.empty()) {
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions options;
  if (!g.tls_ca_file.empty() &&
      !ReadInput(g.tls_ca_file, &options.pem_root_certs)) {
    *error = absl::StrCat("cannot read --tls-ca ", g.tls_ca_file);
    return nullptr;
  }
  return grpc::SslCredentials(options);
}

int Main(int argc, char** argv) {
  CLI::App app(
      "webhookctl: the command-line client of webhookd.\n"
      "Tables by default, protobuf JSON with --output json; exits non-zero "
      "with the gRPC error on failure.",
      "webhookctl");
  app.require_subcommand(1);
  app.fallthrough();  // Global options may also follow the subcommand.
  app.set_version_flag("--version", absl::StrCat("webhookctl ", kVersion));
  Globals g;
  app.add_option("--server,-s", g.server,
                 "webhookd address host:port (env WEBHOOKCTL_SERVER)")
      ->envname("WEBHOOKCTL_SERVER")
      ->capture_default_str();
  app.add_option("--output,-o", g.output, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--timeout", g.timeout_seconds,
                 "Deadline of each call, in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--api-key", g.api_key,
                 "API key sent as \"authorization: Bearer\" (env "
                 "WEBHOOKCTL_API_KEY)")
      ->envname("WEBHOOKCTL_API_KEY");
  app.add_flag("--tls", g.tls, "Connect with TLS (system root certificates)");
  app.add_option("--tls-ca", g.tls_ca_file,
                 "Connect with TLS, trusting the CA certificates in this PEM "
                 "file");

  Action action;
  std::function<int(const Globals&)> local;
  AddEndpointCommands(app, action);
  AddEventCommands(app, action);
  AddDeliveryCommands(app, action);
  AddListenCommand(app, local);
  AddSecretCommand(app, local);

  // CLI11 reports parse errors (and --help) by throwing; this is the one
  // place they are caught, as CLI11_PARSE would, but with one exit code for
  // every usage error.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kUsage;
  }

  if (local) return local(g);
  ServerAddress() = g.server;
  if (!action) return UsageError("no command given; see --help");
  const bool watching =
      app.got_subcommand("deliveries") &&
      app.get_subcommand("deliveries")->got_subcommand("watch");
  if (watching) Signals();  // Before gRPC starts its threads.
  std::string error;
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      Credentials(g, &error);
  if (credentials == nullptr) return UsageError(error);
  WebhookClientOptions options;
  options.timeout = absl::Seconds(g.timeout_seconds);
  options.test_delivery_timeout = std::max(options.timeout, absl::Seconds(45));
  options.api_key = g.api_key;
  std::unique_ptr<WebhookClient> client =
      WebhookClient::Connect(g.server, credentials, options);
  return action(*client, g);
}

}  // namespace
}  // namespace webhookd

int main(int argc, char** argv) { return webhookd::Main(argc, argv); }
