"""Generates the webhookd gRPC stubs from protos/ at run time and imports them.

Uses Debian's protoc and grpc_python_plugin (packages protobuf-compiler and
protobuf-compiler-grpc), so nothing generated is kept in the repository.
"""

import atexit
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTO = "webhook/v1/webhook_service.proto"


def load():
    """Returns (webhook_service_pb2, webhook_service_pb2_grpc)."""
    out = tempfile.mkdtemp(prefix="webhookd-stubs-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    subprocess.run(
        [
            "protoc",
            "-I" + os.path.join(REPO, "protos"),
            "--python_out=" + out,
            "--grpc_out=" + out,
            "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
            PROTO,
            # Imported by PROTO for its HTTP routes (google.api.http); no
            # Debian package has their Python modules.
            "google/api/annotations.proto",
            "google/api/http.proto",
        ],
        check=True,
    )
    sys.path.insert(0, out)
    pb2 = importlib.import_module("webhook.v1.webhook_service_pb2")
    pb2_grpc = importlib.import_module("webhook.v1.webhook_service_pb2_grpc")
    return pb2, pb2_grpc
