#!/usr/bin/env bash
# Fails when the Bazel build has drifted from CMake: a .cc file under server/,
# storage/, client/, tests/ or bench/ listed by a CMakeLists.txt but by no
# BUILD.bazel (or the reverse), or a CMake target with no Bazel target of the
# same name.
# Grep-based: it reads file names and target names, not the build graph.
# tests/fuzz is left out: a separate clang-only CMake project (libFuzzer).
# Usage: tests/bazel/check_in_step.sh [project root]
set -euo pipefail
cd "${1:-$(dirname "$0")/../..}"

# Prints <dir>/<file>.cc for each .cc file named in the build files $1 (a file
# name such as CMakeLists.txt) below the source dirs, comments removed.
sources() {
  local file dir
  find server storage client tests bench -name "$1" -not -path 'tests/fuzz/*' |
    sort | while read -r file; do
    dir=$(dirname "$file")
    sed 's/#.*//' "$file" |
      grep -oE '[A-Za-z0-9_./${}-]+\.cc\b' |
      sed -E 's|^.*\}/||; s|^\./||' |
      sed "s|^|$dir/|" || true
  done | sort -u
}

# Prints the names of the targets a CMakeLists.txt defines.
cmake_targets() {
  find protos server storage client tests bench -name CMakeLists.txt \
    -not -path 'tests/fuzz/*' | sort |
    xargs cat | sed 's/#.*//' | tr '\n' ' ' |
    grep -oE '(add_library|add_executable)\( *[A-Za-z0-9_]+|(webhookd_test|webhookd_proto_library)\( *NAME +[A-Za-z0-9_]+' |
    grep -oE '[A-Za-z0-9_]+$' | sort -u || true
}

bazel_targets() {
  find protos server storage client tests bench -name BUILD.bazel | sort |
    xargs cat | grep -oE '^ *name = "[^"]+"' | cut -d'"' -f2 | sort -u || true
}

status=0
cmake_srcs=$(sources CMakeLists.txt)
bazel_srcs=$(sources BUILD.bazel)
only_cmake=$(comm -23 <(echo "$cmake_srcs") <(echo "$bazel_srcs"))
only_bazel=$(comm -13 <(echo "$cmake_srcs") <(echo "$bazel_srcs"))
if [[ -n $only_cmake ]]; then
  echo "In CMake but in no BUILD.bazel:"
  sed 's/^/  /' <<<"$only_cmake"
  status=1
fi
if [[ -n $only_bazel ]]; then
  echo "In a BUILD.bazel but in no CMakeLists.txt:"
  sed 's/^/  /' <<<"$only_bazel"
  status=1
fi
missing_targets=$(comm -23 <(cmake_targets) <(bazel_targets))
if [[ -n $missing_targets ]]; then
  echo "CMake targets with no Bazel target of the same name:"
  sed 's/^/  /' <<<"$missing_targets"
  status=1
fi
if ((status)); then
  echo "Update the BUILD.bazel files beside the CMakeLists.txt (README: Building with Bazel)."
else
  echo "Bazel and CMake list the same $(wc -l <<<"$cmake_srcs") .cc files and targets."
fi
exit "$status"
