// Command-line parsing shared by webhookd's programs (webhookd,
// webhook-bench, queue-bench): absl flags, with a --help that names the
// program instead of a build path and exits 0, as asking for help is no
// error (absl exits 1).
//
// Header-only, so that server/common itself does not link absl's flag
// libraries; its users link absl::flags_parse and absl::flags_usage.

#ifndef WEBHOOKD_SERVER_COMMON_COMMAND_LINE_H_
#define WEBHOOKD_SERVER_COMMON_COMMAND_LINE_H_

#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/flags/internal/parse.h"
#include "absl/flags/internal/usage.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace webhookd {

// Parses the flags defined in the source file ending in `source` (e.g.
// "server/app/main.cc"), shown as `program` in --help; `usage` opens the
// help. --help, --helpfull and --version print and exit 0.
inline void ParseCommandLineOrExit(int argc, char** argv,
                                   absl::string_view program,
                                   absl::string_view source,
                                   absl::string_view version,
                                   absl::string_view usage) {
  static std::string* const name = new std::string(program);
  static std::string* const file = new std::string(source);
  static std::string* const version_line =
      new std::string(absl::StrCat(program, " ", version, "\n"));
  absl::FlagsUsageConfig config;
  config.normalize_filename = [](absl::string_view path) {
    return absl::EndsWith(path, *file) ? *name : std::string(path);
  };
  config.contains_help_flags = [](absl::string_view path) {
    return path == *name || absl::EndsWith(path, *file);
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  config.version_string = [] { return *version_line; };
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
  absl::flags_internal::ParseCommandLineImpl(
      argc, argv, absl::flags_internal::ArgvListAction::kRemoveParsedArgs,
      absl::flags_internal::UsageFlagsAction::kIgnoreUsage,
      absl::flags_internal::OnUndefinedFlag::kAbortIfUndefined);
  if (absl::flags_internal::HandleUsageFlags(
          std::cout, absl::ProgramUsageMessage()) >= 0) {
    std::exit(0);
  }
}

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_COMMON_COMMAND_LINE_H_
