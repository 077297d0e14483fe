#!/usr/bin/env python3
"""Fails when a layer includes what it must not (README "Architecture").

Each folder of the server is one layer. Reading every #include of every
source file, this checks that dependencies point one way:

    common <- security, http, storage <- delivery <- api <- app
    common <- metrics <- app
    common <- rest <- app (rest reaches api only through a gRPC channel)
    console <- rest (the web console's files, served by rest)

and that gRPC, libcurl, LevelDB and libpq stay where they belong: grpcpp
only in server/api, server/app and client; curl only in server/http and
server/security (its URL parser); libidn2 only in server/security;
leveldb only in storage/leveldb and server/app; libpq only in
storage/postgres (and in tests/, which no rule here covers); prometheus-cpp
only in server/metrics and server/app (the other layers report through
server/common/metrics.h). Usage: tests/layers/check_layers.py [project root]
"""

import pathlib
import re
import sys

# Folder -> the project folders its files may include from. A folder may
# always include its own files.
ALLOWED = {
    "server/common": [],
    "server/security": ["server/common"],
    "server/http": ["server/common"],
    "storage": ["server/common"],
    "storage/leveldb": ["server/common", "storage"],
    # The PostgreSQL backend (to come); its tests start a private server
    # (tests/support/postgres_server.h).
    "storage/postgres": ["server/common", "storage"],
    "server/delivery": ["server/common", "server/security", "server/http",
                        "storage"],
    "server/api": ["server/common", "server/security", "server/delivery",
                   "storage"],
    # Metrics for Prometheus; the layers report through the Metrics
    # interface of server/common.
    "server/metrics": ["server/common"],
    # The HTTP/JSON API: it calls the service through a gRPC channel, so it
    # needs none of the layers below api, nor api itself.
    "server/rest": ["server/common", "server/console"],
    # The web console's files, compiled in; they need nothing of the server.
    "server/console": [],
    "server/app": ["server/common", "server/security", "server/http",
                   "server/delivery", "server/api", "server/metrics",
                   "server/rest",
                   "storage",
                   "storage/leveldb", "storage/postgres"],
    # The client links the signature and nothing else of the server; it
    # shares the version number (a header of constants).
    "client": ["server/security/signature.h", "server/common/version.h"],
}

# Library include prefixes -> the folders that may use them.
LIBRARIES = {
    "grpcpp/": ["server/api", "server/rest", "server/app", "client"],
    "grpc/": ["server/api", "server/rest", "server/app", "client"],
    "httplib.h": ["server/rest", "client"],
    "curl/": ["server/http", "server/security"],
    # libidn2: the target URL parser turns IDN hosts into ASCII.
    "idn2.h": ["server/security"],
    "leveldb/": ["storage/leveldb", "server/app"],
    # libpq, included as pkg-config has it ("libpq-fe.h") or by its
    # /usr/include path; "libpq/" holds its other public headers.
    "libpq-fe.h": ["storage/postgres"],
    "libpq/": ["storage/postgres"],
    "postgresql/": ["storage/postgres"],
    "prometheus/": ["server/metrics", "server/app"],
    # Generated gRPC stubs; the messages (.pb.h) are fine everywhere.
    ".grpc.pb.h": ["server/api", "server/app", "client"],
}

PROJECT_PREFIXES = ("server/", "storage/", "client/")
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def layer_of(path):
    """The most specific folder of ALLOWED that holds `path`, or None."""
    best = None
    for folder in ALLOWED:
        if path.startswith(folder + "/") and (best is None or
                                               len(folder) > len(best)):
            best = folder
    return best


def allowed_project_include(layer, header):
    """Whether `layer` may include `header` (a project path), by folder or,
    for the client, by file."""
    target = layer_of(header)
    return target == layer or target in ALLOWED[layer] or \
        header in ALLOWED[layer]


def library_allowed(layer, header):
    for marker, folders in LIBRARIES.items():
        hit = header.endswith(marker) if marker.startswith(".") else \
            header.startswith(marker)
        if hit and layer not in folders:
            return marker
    return None


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                        pathlib.Path(__file__).resolve().parents[2])
    problems = []
    checked = 0
    for path in sorted(root.glob("**/*")):
        if path.suffix not in (".h", ".cc"):
            continue
        rel = path.relative_to(root).as_posix()
        layer = layer_of(rel)
        if layer is None:
            continue
        checked += 1
        for header in INCLUDE.findall(path.read_text(errors="replace")):
            if header.startswith(PROJECT_PREFIXES):
                if not allowed_project_include(layer, header):
                    problems.append(f"{rel}: {layer} must not include "
                                    f'"{header}"')
            marker = library_allowed(layer, header)
            if marker is not None:
                problems.append(f"{rel}: {layer} must not include "
                                f'"{header}" ({marker} belongs to '
                                f"{', '.join(LIBRARIES[marker])})")
    if checked == 0:
        print(f"no source files found under {root}")
        return 1
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} include(s) break the layering "
              '(README "Architecture").')
        return 1
    print(f"{checked} files: every include follows the layering.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
