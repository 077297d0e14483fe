"""Project-wide Bazel settings and the test macro, twins of the CMake ones."""

load("@rules_cc//cc:defs.bzl", "cc_test")

# Warnings for our code, as add_compile_options() in CMakeLists.txt; errors
# with --define=werror=1 (WEBHOOKD_WERROR in CMake). Generated proto code is
# built without them.
WEBHOOKD_COPTS = ["-Wall", "-Wextra"] + select({
    "//bazel:werror": ["-Werror"],
    "//conditions:default": [],
})

def webhookd_test(name, srcs, deps = [], size = "medium", **kwargs):
    """A GoogleTest binary with the shared test helpers.

    The twin of webhookd_test() in tests/support/CMakeLists.txt. "medium"
    allows 300 s, CTest's TIMEOUT.
    """
    cc_test(
        name = name,
        srcs = srcs,
        copts = WEBHOOKD_COPTS,
        size = size,
        deps = deps + [
            "//tests/support:test_main",
            "//tests/support:test_support",
            "@system_libs//:gmock",
        ],
        **kwargs
    )
