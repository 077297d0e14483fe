#include "server/rest/transcoder.h"

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/api/annotations.pb.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "server/common/string_view.h"

namespace webhookd {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::MethodDescriptor;
using google::protobuf::Reflection;

// The field of `type` called `name` in the .proto file or in JSON
// (lowerCamelCase), or nullptr.
const FieldDescriptor* FieldNamed(const Descriptor& type,
                                  std::string_view name) {
  const std::string key(name);
  if (const FieldDescriptor* field = type.FindFieldByName(key)) return field;
  for (int i = 0; i < type.field_count(); ++i) {
    if (type.field(i)->json_name() == key) return type.field(i);
  }
  return nullptr;
}

// Well-known types whose JSON form is a string (Timestamp, Duration,
// FieldMask, the wrappers of strings and numbers): they may be given in a
// path or a query parameter like a scalar.
bool IsStringyMessage(const FieldDescriptor& field) {
  return field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
         field.message_type()->file()->package() == "google.protobuf" &&
         field.message_type()->well_known_type() !=
             Descriptor::WELLKNOWNTYPE_UNSPECIFIED &&
         field.message_type()->well_known_type() !=
             Descriptor::WELLKNOWNTYPE_STRUCT &&
         field.message_type()->well_known_type() !=
             Descriptor::WELLKNOWNTYPE_LISTVALUE &&
         field.message_type()->well_known_type() !=
             Descriptor::WELLKNOWNTYPE_ANY;
}

// A field path resolved in a message type: the fields from the top down.
struct FieldPath {
  std::vector<const FieldDescriptor*> fields;
  // The path by proto names ("endpoint.id"), whatever names it was given
  // with.
  std::string canonical;
};

// Resolves "a.b.c" (proto or JSON names) in `type`: every field but the
// last a singular message, the last one a scalar, an enum or a stringy
// well-known type (repeated when `allow_repeated`). InvalidArgument naming
// `what` otherwise.
absl::StatusOr<FieldPath> ResolvePath(const Descriptor& type,
                                      std::string_view path,
                                      bool allow_repeated,
                                      std::string_view what) {
  FieldPath result;
  const Descriptor* current = &type;
  std::vector<std::string> names;
  for (absl::string_view part : absl::StrSplit(AsAbsl(path), '.')) {
    if (current == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown ", AsAbsl(what), " \"", AsAbsl(path), "\""));
    }
    const FieldDescriptor* field =
        FieldNamed(*current, std::string_view(part.data(), part.size()));
    if (field == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown ", AsAbsl(what), " \"", AsAbsl(path), "\""));
    }
    result.fields.push_back(field);
    names.push_back(field->name());
    const bool nested = field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
                        !field->is_repeated() && !IsStringyMessage(*field);
    current = nested ? field->message_type() : nullptr;
  }
  result.canonical = absl::StrJoin(names, ".");
  const FieldDescriptor& leaf = *result.fields.back();
  if (leaf.is_map() ||
      (leaf.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
       !IsStringyMessage(leaf)) ||
      (leaf.is_repeated() && !allow_repeated)) {
    return absl::InvalidArgumentError(absl::StrCat(
        AsAbsl(what), " \"", AsAbsl(path), "\" names ", result.canonical,
        ", which cannot be given as text: send it in a JSON body"));
  }
  return result;
}

// The message that holds the last field of `path`, created on the way.
Message* MutableHolder(Message& message, const FieldPath& path) {
  Message* holder = &message;
  for (size_t i = 0; i + 1 < path.fields.size(); ++i) {
    holder = holder->GetReflection()->MutableMessage(holder, path.fields[i]);
  }
  return holder;
}

// The message that holds the last field of `path`, or nullptr if an
// enclosing message is unset.
const Message* Holder(const Message& message, const FieldPath& path) {
  const Message* holder = &message;
  for (size_t i = 0; i + 1 < path.fields.size(); ++i) {
    const Reflection& reflection = *holder->GetReflection();
    if (!reflection.HasField(*holder, path.fields[i])) return nullptr;
    holder = &reflection.GetMessage(*holder, path.fields[i]);
  }
  return holder;
}

// What a value of `field` must be, for errors.
std::string Expected(const FieldDescriptor& field) {
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return "a 32-bit integer";
    case FieldDescriptor::CPPTYPE_INT64:
      return "an integer";
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return "an unsigned integer";
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return "a number";
    case FieldDescriptor::CPPTYPE_BOOL:
      return "true or false";
    case FieldDescriptor::CPPTYPE_ENUM:
      return absl::StrCat("a value of ", field.enum_type()->full_name());
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return absl::StrCat("a ", field.message_type()->full_name(),
                          " in its JSON form");
    case FieldDescriptor::CPPTYPE_STRING:
      break;
  }
  return field.type() == FieldDescriptor::TYPE_BYTES ? "base64" : "UTF-8 text";
}

// `text` as a JSON string literal.
std::string JsonString(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppend(
          &out, "\\u00",
          absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

// Sets (or, if repeated, adds) `field` of `holder` from its text `value`,
// as the proto3 JSON parser reads that value, so that a query parameter
// means what the same value means in a body; `name` is what errors call
// it.
absl::Status SetFromText(Message& holder, const FieldDescriptor& field,
                         std::string_view value, std::string_view name) {
  // Booleans and enum numbers are bare JSON literals; everything else
  // (64-bit integers, timestamps, enum names...) may be a JSON string.
  const bool bare =
      field.cpp_type() == FieldDescriptor::CPPTYPE_BOOL ||
      (field.cpp_type() == FieldDescriptor::CPPTYPE_ENUM && !value.empty() &&
       value.find_first_not_of("-0123456789") == std::string_view::npos);
  const std::string json =
      absl::StrCat("{\"", field.json_name(),
                   "\":", bare ? std::string(value) : JsonString(value), "}");
  std::unique_ptr<Message> scratch(holder.New());
  if ((field.cpp_type() == FieldDescriptor::CPPTYPE_BOOL && value != "true" &&
       value != "false") ||
      !google::protobuf::util::JsonStringToMessage(json, scratch.get()).ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        AsAbsl(name), ": \"", AsAbsl(value), "\" is not ", Expected(field)));
  }
  // The scratch message holds this one field: merging sets it, or appends
  // to a repeated one.
  holder.MergeFrom(*scratch);
  return absl::OkStatus();
}

// The text form of a singular field's value, for comparisons.
std::string ValueText(const Message& message, const FieldDescriptor& field) {
  std::string text;
  google::protobuf::TextFormat::PrintFieldValueToString(message, &field, -1,
                                                        &text);
  return text;
}

// The route of one HttpRule of `method`.
absl::StatusOr<Route> RouteOf(const MethodDescriptor& method,
                              const google::api::HttpRule& rule) {
  Route route;
  route.method = &method;
  route.grpc_method =
      absl::StrCat("/", method.service()->full_name(), "/", method.name());
  std::string path;
  switch (rule.pattern_case()) {
    case google::api::HttpRule::kGet:
      route.http_method = "GET";
      path = rule.get();
      break;
    case google::api::HttpRule::kPut:
      route.http_method = "PUT";
      path = rule.put();
      break;
    case google::api::HttpRule::kPost:
      route.http_method = "POST";
      path = rule.post();
      break;
    case google::api::HttpRule::kDelete:
      route.http_method = "DELETE";
      path = rule.delete_();
      break;
    case google::api::HttpRule::kPatch:
      route.http_method = "PATCH";
      path = rule.patch();
      break;
    case google::api::HttpRule::kCustom:
      route.http_method = rule.custom().kind();
      path = rule.custom().path();
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(method.full_name(), ": google.api.http without a path"));
  }
  absl::StatusOr<PathTemplate> parsed = PathTemplate::Parse(path);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(method.full_name(), ": ", parsed.status().message()));
  }
  route.path = *std::move(parsed);
  for (const std::string& field_path : route.path.FieldPaths()) {
    absl::StatusOr<FieldPath> resolved =
        ResolvePath(*method.input_type(), field_path,
                    /*allow_repeated=*/false, "path field");
    if (!resolved.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(method.full_name(), ": ", resolved.status().message()));
    }
  }
  route.body = rule.body();
  if (!route.body.empty() && route.body != "*") {
    const FieldDescriptor* field =
        method.input_type()->FindFieldByName(route.body);
    if (field == nullptr || field->is_repeated() ||
        field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      return absl::InvalidArgumentError(
          absl::StrCat(method.full_name(), ": body \"", route.body,
                       "\" is not a message field of the request"));
    }
  }
  return route;
}

}  // namespace

absl::StatusOr<Transcoder> Transcoder::Create(
    const google::protobuf::ServiceDescriptor& service) {
  Transcoder transcoder;
  for (int i = 0; i < service.method_count(); ++i) {
    const MethodDescriptor& method = *service.method(i);
    if (!method.options().HasExtension(google::api::http)) continue;
    const google::api::HttpRule& rule =
        method.options().GetExtension(google::api::http);
    std::vector<const google::api::HttpRule*> rules = {&rule};
    for (const google::api::HttpRule& more : rule.additional_bindings()) {
      rules.push_back(&more);
    }
    for (const google::api::HttpRule* each : rules) {
      absl::StatusOr<Route> route = RouteOf(method, *each);
      if (!route.ok()) return route.status();
      transcoder.routes_.push_back(*std::move(route));
    }
  }
  return transcoder;
}

Transcoder::Match Transcoder::Find(std::string_view http_method,
                                   std::string_view path) const {
  struct Candidate {
    const Route* route;
    PathTemplate::Bindings bindings;
  };
  std::vector<Candidate> candidates;
  bool any_verb = false;
  for (const Route& route : routes_) {
    std::optional<PathTemplate::Bindings> bindings = route.path.Match(path);
    if (!bindings.has_value()) continue;
    any_verb = any_verb || !route.path.verb().empty();
    candidates.push_back({&route, *std::move(bindings)});
  }
  Match match;
  for (Candidate& candidate : candidates) {
    if (any_verb && candidate.route->path.verb().empty()) continue;
    if (candidate.route->http_method == http_method) {
      match.route = candidate.route;
      match.bindings = std::move(candidate.bindings);
      match.allowed_methods.clear();
      return match;
    }
    const std::string& allowed = candidate.route->http_method;
    if (std::find(match.allowed_methods.begin(), match.allowed_methods.end(),
                  allowed) == match.allowed_methods.end()) {
      match.allowed_methods.push_back(allowed);
    }
  }
  return match;
}

absl::StatusOr<std::unique_ptr<Message>> Transcoder::BuildRequest(
    const Match& match, const QueryParams& query, std::string_view body) const {
  const Route& route = *match.route;
  const Descriptor& type = *route.method->input_type();
  std::unique_ptr<Message> request(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(&type)
          ->New());

  // The body first, so that the path can be checked against it.
  if (route.body.empty()) {
    if (!body.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(route.http_method, " ", route.path.text(),
                       " takes no request body (send fields as query "
                       "parameters)"));
    }
  } else {
    Message* target = request.get();
    if (route.body != "*") {
      target = request->GetReflection()->MutableMessage(
          request.get(), type.FindFieldByName(route.body));
    }
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    const std::string json = body.empty() ? "{}" : std::string(body);
    google::protobuf::util::Status parsed =
        google::protobuf::util::JsonStringToMessage(json, target, options);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("request body: not a valid JSON ",
                       target->GetDescriptor()->name(), ": ",
                       AsAbsl(std::string_view(parsed.message().data(),
                                               parsed.message().size()))));
    }
  }

  absl::flat_hash_set<std::string> from_path;
  for (const auto& [field_path, value] : match.bindings) {
    absl::StatusOr<FieldPath> path =
        ResolvePath(type, field_path, /*allow_repeated=*/false, "path field");
    if (!path.ok()) return path.status();
    const FieldDescriptor& leaf = *path->fields.back();
    const Message* existing = Holder(*request, *path);
    std::string before;
    const bool set_by_body =
        existing != nullptr &&
        existing->GetReflection()->HasField(*existing, &leaf);
    if (set_by_body) before = ValueText(*existing, leaf);
    Message* holder = MutableHolder(*request, *path);
    if (absl::Status status =
            SetFromText(*holder, leaf, value, path->canonical);
        !status.ok()) {
      return status;
    }
    if (set_by_body && ValueText(*holder, leaf) != before) {
      return absl::InvalidArgumentError(
          absl::StrCat(path->canonical, ": the path says \"", value,
                       "\" but the body says ", before));
    }
    from_path.insert(path->canonical);
  }

  absl::flat_hash_set<std::string> from_query;
  for (const auto& [name, value] : query) {
    if (!route.body.empty() && route.body == "*") {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown query parameter \"", name, "\": ", route.http_method, " ",
          route.path.text(), " takes its fields in the JSON body"));
    }
    absl::StatusOr<FieldPath> path =
        ResolvePath(type, name, /*allow_repeated=*/true, "query parameter");
    if (!path.ok()) return path.status();
    if (!route.body.empty() && path->fields.front()->name() == route.body) {
      return absl::InvalidArgumentError(
          absl::StrCat("query parameter \"", name, "\": ", route.body,
                       " is given in the JSON body"));
    }
    if (from_path.contains(path->canonical)) {
      return absl::InvalidArgumentError(absl::StrCat("query parameter \"", name,
                                                     "\": ", path->canonical,
                                                     " is given in the path"));
    }
    const FieldDescriptor& leaf = *path->fields.back();
    if (!leaf.is_repeated() && !from_query.insert(path->canonical).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "query parameter \"", name, "\" is given more than once"));
    }
    if (absl::Status status = SetFromText(*MutableHolder(*request, *path), leaf,
                                          value, path->canonical);
        !status.ok()) {
      return status;
    }
  }
  return request;
}

std::unique_ptr<Message> Transcoder::NewResponse(const Route& route) {
  return std::unique_ptr<Message>(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(route.method->output_type())
          ->New());
}

std::string Transcoder::ToJson(const Message& message) {
  std::string json;
  // Printing a valid message cannot fail.
  (void)google::protobuf::util::MessageToJsonString(message, &json);
  return json;
}

}  // namespace webhookd
