#include "server/rest/path_template.h"

#include <cctype>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/string_view.h"

namespace webhookd {
namespace {

absl::Status Invalid(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("path template \"", AsAbsl(text), "\": ", AsAbsl(why)));
}

bool IsIdent(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) {
    return false;
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

bool IsFieldPath(std::string_view path) {
  for (absl::string_view ident : absl::StrSplit(AsAbsl(path), '.')) {
    if (!IsIdent(std::string_view(ident.data(), ident.size()))) return false;
  }
  return true;
}

// Percent-decodes `text`; "%2F" stays encoded unless `decode_slash`. A "%"
// not followed by two hex digits is kept as it is.
std::string PercentDecode(std::string_view text, bool decode_slash) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() &&
        absl::ascii_isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        absl::ascii_isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      const char c = absl::HexStringToBytes(AsAbsl(text.substr(i + 1, 2)))[0];
      if (c != '/' || decode_slash) {
        out.push_back(c);
        i += 2;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

}  // namespace

absl::StatusOr<PathTemplate> PathTemplate::Parse(std::string_view text) {
  PathTemplate result;
  result.text_ = std::string(text);
  if (text.empty() || text[0] != '/') {
    return Invalid(text, "must start with \"/\"");
  }
  absl::flat_hash_set<std::string> fields;
  size_t pos = 1;
  // Parses one plain segment ("*", "**" or a literal) at `pos`, up to one of
  // `stops`.
  auto plain_segment = [&](std::string_view stops) -> absl::Status {
    const size_t end = text.find_first_of(stops, pos);
    const std::string_view token = text.substr(
        pos, end == std::string_view::npos ? text.size() - pos : end - pos);
    Segment segment;
    if (token == "*") {
      segment.kind = Segment::Kind::kAny;
    } else if (token == "**") {
      segment.kind = Segment::Kind::kRest;
    } else if (token.empty()) {
      return Invalid(text, "empty segment");
    } else if (token.find_first_of("{}*=") != std::string_view::npos) {
      return Invalid(text, absl::StrCat("bad literal \"", AsAbsl(token), "\""));
    } else {
      segment.literal = std::string(token);
    }
    result.segments_.push_back(std::move(segment));
    pos += token.size();
    return absl::OkStatus();
  };
  while (true) {
    if (pos < text.size() && text[pos] == '{') {
      const size_t close = text.find('}', pos);
      if (close == std::string_view::npos) {
        return Invalid(text, "\"{\" without \"}\"");
      }
      const std::string_view inside = text.substr(pos + 1, close - pos - 1);
      const size_t equals = inside.find('=');
      Variable variable;
      variable.field_path = std::string(inside.substr(0, equals));
      if (!IsFieldPath(variable.field_path)) {
        return Invalid(
            text, absl::StrCat("bad field path \"", variable.field_path, "\""));
      }
      if (!fields.insert(variable.field_path).second) {
        return Invalid(text, absl::StrCat(variable.field_path,
                                          " is bound more than once"));
      }
      variable.begin = result.segments_.size();
      if (equals == std::string_view::npos) {
        result.segments_.push_back({Segment::Kind::kAny, ""});
        pos = close + 1;
      } else {
        pos += 1 + equals + 1;
        while (true) {
          if (absl::Status status = plain_segment("/}"); !status.ok()) {
            return status;
          }
          if (text[pos] == '}') break;
          ++pos;  // The '/'.
        }
        pos = close + 1;
      }
      variable.end = result.segments_.size();
      result.variables_.push_back(std::move(variable));
    } else if (absl::Status status = plain_segment("/:"); !status.ok()) {
      return status;
    }
    if (pos == text.size()) break;
    if (text[pos] == ':') {
      result.verb_ = std::string(text.substr(pos + 1));
      if (result.verb_.empty() ||
          result.verb_.find_first_of("/{}*=:") != std::string::npos) {
        return Invalid(text, "bad verb");
      }
      break;
    }
    if (text[pos] != '/') return Invalid(text, "expected \"/\"");
    ++pos;
  }
  for (size_t i = 0; i + 1 < result.segments_.size(); ++i) {
    if (result.segments_[i].kind == Segment::Kind::kRest) {
      return Invalid(text, "\"**\" must be the last segment");
    }
  }
  return result;
}

std::optional<PathTemplate::Bindings> PathTemplate::Match(
    std::string_view path) const {
  if (path.empty() || path[0] != '/') return std::nullopt;
  path.remove_prefix(1);
  if (!verb_.empty()) {
    const std::string suffix = absl::StrCat(":", verb_);
    if (path.size() <= suffix.size() ||
        path.substr(path.size() - suffix.size()) != suffix) {
      return std::nullopt;
    }
    path.remove_suffix(suffix.size());
  }
  std::vector<std::string_view> parts;
  for (absl::string_view part : absl::StrSplit(AsAbsl(path), '/')) {
    parts.emplace_back(part.data(), part.size());
  }
  // Segment i matches part i; a final "**" matches every part left.
  const bool rest =
      !segments_.empty() && segments_.back().kind == Segment::Kind::kRest;
  if (rest ? parts.size() < segments_.size() - 1
           : parts.size() != segments_.size()) {
    return std::nullopt;
  }
  for (size_t i = 0; i < segments_.size(); ++i) {
    const Segment& segment = segments_[i];
    switch (segment.kind) {
      case Segment::Kind::kLiteral:
        if (parts[i] != segment.literal) return std::nullopt;
        break;
      case Segment::Kind::kAny:
        if (parts[i].empty()) return std::nullopt;
        break;
      case Segment::Kind::kRest:
        break;
    }
  }
  Bindings bindings;
  for (const Variable& variable : variables_) {
    const bool to_end = variable.end == segments_.size() && rest;
    const size_t end = to_end ? parts.size() : variable.end;
    std::string raw;
    for (size_t i = variable.begin; i < end; ++i) {
      if (i > variable.begin) raw.push_back('/');
      raw.append(parts[i]);
    }
    const bool single = !to_end && variable.end - variable.begin == 1;
    bindings.emplace_back(variable.field_path,
                          PercentDecode(raw, /*decode_slash=*/single));
  }
  return bindings;
}

std::vector<std::string> PathTemplate::FieldPaths() const {
  std::vector<std::string> paths;
  for (const Variable& variable : variables_) {
    paths.push_back(variable.field_path);
  }
  return paths;
}

}  // namespace webhookd
