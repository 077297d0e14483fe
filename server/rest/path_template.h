// The URL path templates of google.api.http rules (google/api/http.proto):
// "/v1/endpoints/{id}:enable" parsed once, then matched against request
// paths.

#ifndef WEBHOOKD_SERVER_REST_PATH_TEMPLATE_H_
#define WEBHOOKD_SERVER_REST_PATH_TEMPLATE_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace webhookd {

// A parsed path template. The grammar of google/api/http.proto:
//
//     Template = "/" Segments [ Verb ] ;
//     Segments = Segment { "/" Segment } ;
//     Segment  = "*" | "**" | LITERAL | Variable ;
//     Variable = "{" FieldPath [ "=" Segments ] "}" ;
//     FieldPath = IDENT { "." IDENT } ;
//     Verb     = ":" LITERAL ;
//
// "**" may only be the last segment. Immutable, so safe for concurrent use.
class PathTemplate {
 public:
  // The request fields a match binds: (field path, value) in template
  // order, values percent-decoded ("%2F" kept in multi-segment variables,
  // as http.proto says).
  using Bindings = std::vector<std::pair<std::string, std::string>>;

  // A template that matches no path, to be assigned a parsed one.
  PathTemplate() = default;

  // InvalidArgument saying what is wrong with `text` otherwise.
  static absl::StatusOr<PathTemplate> Parse(std::string_view text);

  // The bindings if `path` (without its query) matches, nullopt otherwise.
  // A variable or "*" never matches an empty segment.
  std::optional<Bindings> Match(std::string_view path) const;

  const std::string& text() const { return text_; }
  // The custom verb without its colon ("enable"); empty when there is none.
  const std::string& verb() const { return verb_; }
  // The field paths of the variables, in template order.
  std::vector<std::string> FieldPaths() const;

 private:
  struct Segment {
    enum class Kind { kLiteral, kAny, kRest };
    Kind kind = Kind::kLiteral;
    std::string literal;  // kLiteral only.
  };
  struct Variable {
    std::string field_path;
    // The segments it covers, [begin, end).
    size_t begin = 0;
    size_t end = 0;
  };

  std::string text_;
  std::vector<Segment> segments_;
  std::vector<Variable> variables_;
  std::string verb_;
};

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_REST_PATH_TEMPLATE_H_
