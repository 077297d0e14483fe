// Readings of /proc for the benchmark: a process's CPU time, memory and disk
// writes, the machine, and the monotonic clock every timestamp uses.

#ifndef WEBHOOKD_BENCH_PROC_STATS_H_
#define WEBHOOKD_BENCH_PROC_STATS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace webhookd::bench {

// CLOCK_MONOTONIC in nanoseconds: the one clock of generator and sink.
int64_t NowNanos();

// One reading of a process.
struct ProcessSample {
  // utime + stime of all its threads, seconds.
  double cpu_seconds = 0;
  // VmRSS and VmHWM (peak), bytes.
  int64_t rss_bytes = 0;
  int64_t peak_rss_bytes = 0;
  // RssAnon (heap, stacks: what the allocator holds) and RssFile (mapped
  // files: the code, and LevelDB's table files) of VmRSS, bytes.
  int64_t rss_anon_bytes = 0;
  int64_t rss_file_bytes = 0;
  // write_bytes of /proc/<pid>/io; -1 when it cannot be read.
  int64_t write_bytes = -1;
};

// Reads /proc/<pid>/{stat,status,io}. NotFound if the process is gone.
absl::StatusOr<ProcessSample> SampleProcess(pid_t pid);

// utime + stime of `root` and of its children, with those of its children
// that have exited (cutime + cstime), seconds: the CPU of a server made of
// processes, such as PostgreSQL's postmaster and backends.
absl::StatusOr<double> ProcessTreeCpuSeconds(pid_t root);

// Sum of the sizes of the regular files below `path` (0 if missing).
int64_t DirectoryBytes(const std::string& path);

// The first three fields of /proc/loadavg, e.g. "1.20 0.85 0.60".
std::string LoadAverage();

// Filesystem type of `path` ("ext4", "tmpfs", ...), from /proc/mounts.
std::string FilesystemType(const std::string& path);

struct MachineInfo {
  int cpus = 0;
  std::string cpu_model;
  int64_t memory_bytes = 0;
  std::string kernel;
};

MachineInfo DescribeMachine();

}  // namespace webhookd::bench

#endif  // WEBHOOKD_BENCH_PROC_STATS_H_
