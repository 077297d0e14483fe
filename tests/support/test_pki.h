// Throwaway certificates for TLS tests, made with the openssl CLI.

#ifndef WEBHOOKD_TESTS_SUPPORT_TEST_PKI_H_
#define WEBHOOKD_TESTS_SUPPORT_TEST_PKI_H_

#include <string>

namespace webhookd::testing {

// PEM files of a test CA, a server certificate it signed (valid for
// 127.0.0.1, ::1, localhost and rebind.test), a client certificate it
// signed, and a client certificate signed by another, untrusted CA. EC
// P-256 keys, valid for two days.
struct TestPki {
  std::string ca_cert;
  std::string server_cert;
  std::string server_key;
  std::string client_cert;
  std::string client_key;
  std::string untrusted_client_cert;
  std::string untrusted_client_key;
};

// Writes a TestPki into `dir` (which must exist); fails the current test
// and returns false if openssl fails.
bool MakeTestPki(const std::string& dir, TestPki* pki);

// The whole content of a file ("" if unreadable).
std::string ReadWholeFile(const std::string& path);

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_TEST_PKI_H_
