#include "tests/support/test_pki.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace webhookd::testing {
namespace {

bool Run(const std::string& dir, const std::string& command) {
  const std::string line =
      absl::StrCat("cd '", dir, "' && (", command, ") >>openssl.log 2>&1");
  const int status = std::system(line.c_str());
  if (status != 0) {
    ADD_FAILURE() << "failed (" << status << "): " << command << "\n"
                  << ReadWholeFile(dir + "/openssl.log");
    return false;
  }
  return true;
}

constexpr char kNewKey[] =
    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

bool MakeCa(const std::string& dir, const std::string& name) {
  return Run(dir,
             absl::StrCat("openssl req -x509 -newkey ec -pkeyopt "
                          "ec_paramgen_curve:prime256v1 -nodes -days 2 "
                          "-subj /CN=",
                          name, " -keyout ", name, ".key -out ", name,
                          ".crt -addext basicConstraints=critical,CA:TRUE "
                          "-addext keyUsage=critical,keyCertSign,cRLSign"));
}

bool MakeLeaf(const std::string& dir, const std::string& ca,
              const std::string& name, const std::string& extensions) {
  return Run(dir, absl::StrCat("printf '", extensions, "' >", name, ".ext")) &&
         Run(dir, absl::StrCat(kNewKey, " -subj /CN=", name, " -keyout ", name,
                               ".key -out ", name, ".csr")) &&
         Run(dir, absl::StrCat("openssl x509 -req -days 2 -in ", name,
                               ".csr -CA ", ca, ".crt -CAkey ", ca,
                               ".key -CAcreateserial -extfile ", name,
                               ".ext -out ", name, ".crt"));
}

}  // namespace

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool MakeTestPki(const std::string& dir, TestPki* pki) {
  const bool ok =
      MakeCa(dir, "ca") && MakeCa(dir, "other-ca") &&
      MakeLeaf(dir, "ca", "server",
               "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,"
               "DNS:rebind.test\\nextendedKeyUsage=serverAuth\\n") &&
      MakeLeaf(dir, "ca", "client", "extendedKeyUsage=clientAuth\\n") &&
      MakeLeaf(dir, "other-ca", "intruder", "extendedKeyUsage=clientAuth\\n");
  if (!ok) return false;
  pki->ca_cert = dir + "/ca.crt";
  pki->server_cert = dir + "/server.crt";
  pki->server_key = dir + "/server.key";
  pki->client_cert = dir + "/client.crt";
  pki->client_key = dir + "/client.key";
  pki->untrusted_client_cert = dir + "/intruder.crt";
  pki->untrusted_client_key = dir + "/intruder.key";
  return true;
}

}  // namespace webhookd::testing
