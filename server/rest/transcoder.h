// HTTP/JSON <-> protobuf transcoding driven by the google.api.http options
// of a service's methods, read from its descriptors at run time: routes
// are never written by hand.

#ifndef WEBHOOKD_SERVER_REST_TRANSCODER_H_
#define WEBHOOKD_SERVER_REST_TRANSCODER_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "server/rest/path_template.h"

namespace webhookd {

// One HTTP binding of a method.
struct Route {
  const google::protobuf::MethodDescriptor* method = nullptr;
  // "GET", "POST", "PATCH", "PUT", "DELETE" or a custom kind.
  std::string http_method;
  PathTemplate path;
  // "*" (every field not in the path), a top-level field name, or empty
  // (no body: fields not in the path come from query parameters).
  std::string body;
  // "/package.Service/Method", as gRPC names it.
  std::string grpc_method;
};

// Query parameters, percent-decoded, in the order given.
using QueryParams = std::vector<std::pair<std::string, std::string>>;

// Immutable once created, so safe for concurrent use.
class Transcoder {
 public:
  // The routes of every method of `service` that has a google.api.http
  // option (with its additional_bindings). The descriptors must come from
  // the generated pool (messages are made by its factory) and outlive the
  // transcoder. InvalidArgument naming the method if a path template does
  // not parse or names a field the request lacks.
  static absl::StatusOr<Transcoder> Create(
      const google::protobuf::ServiceDescriptor& service);

  // What a request's method and path lead to.
  struct Match {
    // The route, or nullptr when none has this method and path.
    const Route* route = nullptr;
    PathTemplate::Bindings bindings;
    // Without a route: the methods the path has (405 with Allow); empty
    // when the path is unknown (404).
    std::vector<std::string> allowed_methods;
  };
  // Among the routes whose template matches `path`, those with a custom
  // verb (":enable") take precedence over those without, so that
  // "GET /v1/deliveries/x:retry" is a wrong method, not the delivery
  // "x:retry".
  Match Find(std::string_view http_method, std::string_view path) const;

  // The request message of a found route, from its path bindings, query
  // parameters and JSON body (empty: none). InvalidArgument naming what is
  // wrong: a body that is not JSON or has an unknown field, a body given to
  // a route without one, an unknown or repeated query parameter (proto
  // names and lowerCamelCase JSON names are both accepted; "a.b" reaches
  // nested fields; repeated fields take the parameter repeated), a value
  // that does not fit its field, or a field of the path that the body sets
  // to another value.
  absl::StatusOr<std::unique_ptr<google::protobuf::Message>> BuildRequest(
      const Match& match, const QueryParams& query,
      std::string_view body) const;

  // An empty response message of `route`'s method.
  static std::unique_ptr<google::protobuf::Message> NewResponse(
      const Route& route);

  // The proto3 JSON form of `message`: lowerCamelCase names, enums by name,
  // 64-bit integers as strings, timestamps in RFC 3339, and fields at their
  // default value (0, false, "", empty lists, unset messages) left out. So
  // input-only fields such as Endpoint.secret never show up.
  static std::string ToJson(const google::protobuf::Message& message);

  const std::vector<Route>& routes() const { return routes_; }

 private:
  Transcoder() = default;

  std::vector<Route> routes_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_REST_TRANSCODER_H_
