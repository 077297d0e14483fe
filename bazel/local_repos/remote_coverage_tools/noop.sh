#!/bin/sh
# Coverage is not supported in the offline Bazel build.
exit 0
