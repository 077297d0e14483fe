#include "bench/proc_stats.h"

#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace webhookd::bench {
namespace {

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::stringstream buffer;
  buffer << in.rdbuf();
  *out = buffer.str();
  return true;
}

// The value of "Name:   123 kB" lines in /proc/<pid>/status, in bytes.
int64_t StatusKilobytes(const std::string& status, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (!absl::ConsumePrefix(&line, name)) continue;
    if (!absl::ConsumePrefix(&line, ":")) continue;
    line = absl::StripAsciiWhitespace(line);
    absl::ConsumeSuffix(&line, "kB");
    int64_t kb = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &kb)) {
      return kb * 1024;
    }
  }
  return 0;
}

// The fields of /proc/<pid>/stat the benchmark reads, in clock ticks.
struct StatFields {
  pid_t ppid = 0;
  int64_t utime = 0;
  int64_t stime = 0;
  int64_t cutime = 0;  // Of the children it has waited for.
  int64_t cstime = 0;
};

std::optional<StatFields> ParseStat(const std::string& stat) {
  // Fields after the command name (which may hold spaces and parentheses):
  // ppid is field 4, utime 14, stime 15, cutime 16 and cstime 17.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 > stat.size()) {
    return std::nullopt;
  }
  std::vector<std::string> fields =
      absl::StrSplit(stat.substr(paren + 2), ' ', absl::SkipEmpty());
  StatFields out;
  int64_t ppid = 0;
  if (fields.size() < 15 || !absl::SimpleAtoi(fields[1], &ppid) ||
      !absl::SimpleAtoi(fields[11], &out.utime) ||
      !absl::SimpleAtoi(fields[12], &out.stime) ||
      !absl::SimpleAtoi(fields[13], &out.cutime) ||
      !absl::SimpleAtoi(fields[14], &out.cstime)) {
    return std::nullopt;
  }
  out.ppid = static_cast<pid_t>(ppid);
  return out;
}

}  // namespace

int64_t NowNanos() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

absl::StatusOr<double> ProcessTreeCpuSeconds(pid_t root) {
  std::string stat;
  if (!ReadFile(absl::StrCat("/proc/", root, "/stat"), &stat)) {
    return absl::NotFoundError(absl::StrCat("process ", root, " is gone"));
  }
  const std::optional<StatFields> fields = ParseStat(stat);
  if (!fields.has_value()) {
    return absl::DataLossError(
        absl::StrCat("unreadable /proc/", root, "/stat"));
  }
  // Children that exited are in the root's cutime and cstime.
  int64_t ticks =
      fields->utime + fields->stime + fields->cutime + fields->cstime;
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    pid_t pid = 0;
    if (!absl::SimpleAtoi(name, &pid) || pid == root) continue;
    if (!ReadFile(entry.path().string() + "/stat", &stat)) continue;
    const std::optional<StatFields> child = ParseStat(stat);
    if (child.has_value() && child->ppid == root) {
      ticks += child->utime + child->stime;
    }
  }
  return static_cast<double>(ticks) / sysconf(_SC_CLK_TCK);
}

absl::StatusOr<ProcessSample> SampleProcess(pid_t pid) {
  const std::string dir = absl::StrCat("/proc/", pid);
  std::string stat;
  if (!ReadFile(dir + "/stat", &stat) || stat.empty()) {
    return absl::NotFoundError(absl::StrCat("process ", pid, " is gone"));
  }
  // Fields after the command name (which may hold spaces and parentheses):
  // state is field 3, utime field 14 and stime field 15.
  const std::optional<StatFields> fields = ParseStat(stat);
  if (!fields.has_value()) {
    return absl::DataLossError(absl::StrCat("unreadable ", dir, "/stat"));
  }
  ProcessSample sample;
  sample.cpu_seconds =
      static_cast<double>(fields->utime + fields->stime) / sysconf(_SC_CLK_TCK);
  std::string status;
  if (ReadFile(dir + "/status", &status)) {
    sample.rss_bytes = StatusKilobytes(status, "VmRSS");
    sample.peak_rss_bytes = StatusKilobytes(status, "VmHWM");
    sample.rss_anon_bytes = StatusKilobytes(status, "RssAnon");
    sample.rss_file_bytes = StatusKilobytes(status, "RssFile");
  }
  std::string io;
  if (ReadFile(dir + "/io", &io)) {
    for (absl::string_view line : absl::StrSplit(io, '\n')) {
      if (absl::ConsumePrefix(&line, "write_bytes:")) {
        int64_t bytes = 0;
        if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &bytes)) {
          sample.write_bytes = bytes;
        }
      }
    }
  }
  return sample;
}

int64_t DirectoryBytes(const std::string& path) {
  std::error_code error;
  int64_t total = 0;
  std::filesystem::recursive_directory_iterator it(path, error);
  if (error) return 0;
  for (; it != std::filesystem::recursive_directory_iterator();
       it.increment(error)) {
    if (error) break;
    std::error_code size_error;
    if (it->is_regular_file(size_error)) {
      const uintmax_t size = it->file_size(size_error);
      if (!size_error) total += static_cast<int64_t>(size);
    }
  }
  return total;
}

std::string LoadAverage() {
  std::string text;
  if (!ReadFile("/proc/loadavg", &text)) return "?";
  std::vector<std::string> fields =
      absl::StrSplit(text, ' ', absl::SkipEmpty());
  if (fields.size() < 3) return "?";
  return absl::StrCat(fields[0], " ", fields[1], " ", fields[2]);
}

std::string FilesystemType(const std::string& path) {
  std::string mounts;
  if (!ReadFile("/proc/mounts", &mounts)) return "?";
  std::error_code error;
  const std::string target =
      std::filesystem::weakly_canonical(path, error).string();
  // The longest mount point that is a prefix of the path.
  std::string best_type = "?";
  size_t best_length = 0;
  for (absl::string_view line : absl::StrSplit(mounts, '\n')) {
    std::vector<std::string> fields =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() < 3) continue;
    const std::string& point = fields[1];
    const bool prefix = target.compare(0, point.size(), point) == 0 &&
                        (point == "/" || target.size() == point.size() ||
                         target[point.size()] == '/');
    if (prefix && point.size() >= best_length) {
      best_length = point.size();
      best_type = fields[2];
    }
  }
  return best_type;
}

MachineInfo DescribeMachine() {
  MachineInfo info;
  info.cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  std::string cpuinfo;
  if (ReadFile("/proc/cpuinfo", &cpuinfo)) {
    for (absl::string_view line : absl::StrSplit(cpuinfo, '\n')) {
      if (absl::StartsWith(line, "model name")) {
        const size_t colon = line.find(':');
        if (colon != absl::string_view::npos) {
          info.cpu_model =
              std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
        }
        break;
      }
    }
  }
  std::string meminfo;
  if (ReadFile("/proc/meminfo", &meminfo)) {
    info.memory_bytes = StatusKilobytes(meminfo, "MemTotal");
  }
  utsname name;
  if (uname(&name) == 0) info.kernel = name.release;
  return info;
}

}  // namespace webhookd::bench
