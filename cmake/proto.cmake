# webhookd_proto_library(NAME <target> PROTOS <files...> [GRPC] [DEPS <targets>])
#
# Compiles .proto files (paths relative to the project root, which is also the
# import root next to protos/) into a static library of C++ messages and, with
# GRPC, service stubs. Generated files go under the binary dir, mirroring the
# source paths, so "#include "webhook/v1/webhook_service.pb.h"" works.
function(webhookd_proto_library)
  cmake_parse_arguments(ARG "GRPC" "NAME" "PROTOS;DEPS" ${ARGN})
  set(out_dir "${PROJECT_BINARY_DIR}/gen")
  file(MAKE_DIRECTORY "${out_dir}")
  set(srcs)
  foreach(proto IN LISTS ARG_PROTOS)
    # Import path: protos/ for the public contract, the root for the rest.
    if(proto MATCHES "^protos/")
      set(import_root "${PROJECT_SOURCE_DIR}/protos")
      string(REGEX REPLACE "^protos/" "" rel "${proto}")
    else()
      set(import_root "${PROJECT_SOURCE_DIR}")
      set(rel "${proto}")
    endif()
    string(REGEX REPLACE "\\.proto$" "" base "${rel}")
    set(outputs "${out_dir}/${base}.pb.cc" "${out_dir}/${base}.pb.h")
    set(plugin_args)
    if(ARG_GRPC)
      # generate_mock_code adds <name>_mock.grpc.pb.h (gmock stubs, tests only).
      list(APPEND outputs "${out_dir}/${base}.grpc.pb.cc"
           "${out_dir}/${base}.grpc.pb.h" "${out_dir}/${base}_mock.grpc.pb.h")
      set(plugin_args "--grpc_out=generate_mock_code=true:${out_dir}"
          "--plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>")
    endif()
    add_custom_command(
      OUTPUT ${outputs}
      COMMAND protobuf::protoc
        "-I${PROJECT_SOURCE_DIR}/protos" "-I${PROJECT_SOURCE_DIR}"
        "--cpp_out=${out_dir}" ${plugin_args}
        "${import_root}/${rel}"
      DEPENDS "${PROJECT_SOURCE_DIR}/${proto}" protobuf::protoc
      COMMENT "protoc ${proto}"
      VERBATIM)
    list(APPEND srcs ${outputs})
  endforeach()
  add_library(${ARG_NAME} STATIC ${srcs})
  target_include_directories(${ARG_NAME} PUBLIC "${out_dir}")
  target_link_libraries(${ARG_NAME} PUBLIC protobuf::libprotobuf ${ARG_DEPS})
  if(ARG_GRPC)
    target_link_libraries(${ARG_NAME} PUBLIC gRPC::grpc++)
  endif()
endfunction()
