"""C++ (and gRPC) code from .proto files with the system protoc.

cc_grpc_proto_library() is the Bazel twin of CMake's webhookd_proto_library()
in cmake/proto.cmake: a genrule runs /usr/bin/protoc (with
/usr/bin/grpc_cpp_plugin when grpc = True) and a cc_library compiles the
result. It needs neither rules_proto nor a protobuf source repository, so the
build stays offline. Well-known types (google/protobuf/*.proto) come from
protoc's own include path.
"""

load("@rules_cc//cc:defs.bzl", "cc_library")

_PROTOC = "/usr/bin/protoc"
_GRPC_CPP_PLUGIN = "/usr/bin/grpc_cpp_plugin"

def _join(*parts):
    return "/".join([p for p in parts if p not in ("", ".")])

def cc_grpc_proto_library(
        name,
        srcs,
        proto_root = None,
        grpc = False,
        import_dirs = [],
        proto_deps = [],
        deps = [],
        visibility = None):
    """Generates and compiles C++ for `srcs`.

    Args:
      name: the cc_library; `<name>_srcs` is a filegroup of the .proto files
        for other libraries' `proto_deps`.
      srcs: .proto files of this package.
      proto_root: the import root, relative to the workspace root, that the
        files are imported by (default: this package). Generated headers are
        included by the path below it: with proto_root = "protos",
        protos/webhook/v1/x.proto gives "webhook/v1/x.pb.h".
      grpc: also generate gRPC service code (.grpc.pb.{h,cc}) and, as
        cmake/proto.cmake does, gMock stubs for tests (_mock.grpc.pb.h).
      import_dirs: further import roots, for the imports of `proto_deps`.
      proto_deps: .proto files (filegroups) that `srcs` import.
      deps: cc_library targets of `proto_deps`.
      visibility: of the cc_library and the filegroup.
    """
    package = native.package_name()
    if proto_root == None:
        proto_root = package
    if proto_root not in ("", package) and not package.startswith(proto_root + "/"):
        fail("package %s must lie under proto_root %s" % (package, proto_root))

    # The generated files' paths, relative to this package.
    outs = []
    hdrs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.cc", base + ".pb.h"]
        hdrs.append(base + ".pb.h")
        if grpc:
            outs += [
                base + ".grpc.pb.cc",
                base + ".grpc.pb.h",
                base + "_mock.grpc.pb.h",
            ]
            hdrs += [base + ".grpc.pb.h", base + "_mock.grpc.pb.h"]

    out_dir = _join("$(GENDIR)", proto_root)
    args = ["-I" + (d if d else ".") for d in [proto_root] + import_dirs]
    args.append("--cpp_out=" + out_dir)
    if grpc:
        args += [
            "--plugin=protoc-gen-grpc=" + _GRPC_CPP_PLUGIN,
            "--grpc_out=generate_mock_code=true:" + out_dir,
        ]

    native.filegroup(
        name = name + "_srcs",
        srcs = srcs,
        visibility = visibility,
    )
    native.genrule(
        name = name + "_gen",
        srcs = [":%s_srcs" % name] + proto_deps,
        outs = outs,
        cmd = " ".join([_PROTOC] + args + ["$(locations :%s_srcs)" % name]),
        message = "protoc %s" % _join(package, name),
    )

    # Headers are included relative to proto_root, which `includes` puts on
    # the include path (as -isystem, so generated code raises no warnings).
    # The workspace root needs nothing: Bazel always searches it.
    includes = []
    if proto_root != "":
        depth = len(package.split("/")) - len(proto_root.split("/"))
        includes = ["/".join([".."] * depth) if depth else "."]
    cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = hdrs,
        includes = includes,
        deps = deps + ["@system_libs//:protobuf"] +
               (["@system_libs//:grpc++"] if grpc else []),
        visibility = visibility,
    )
