// gRPC over TLS and mutual TLS: real handshakes on loopback with
// certificates made for each test.

#include <chrono>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "server/app/webhook_server.h"
#include "tests/support/test_dir.h"
#include "tests/support/test_pki.h"
#include "tests/support/test_server.h"
#include "tests/support/webhookd_process.h"

namespace webhookd {
namespace {

using ::testing::HasSubstr;
using testing::ReadWholeFile;
using testing::TestDir;
using testing::TestServerOptions;
using webhook::v1::WebhookService;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::MakeTestPki(dir_.path(), &pki_));
    options_ = TestServerOptions(dir_.Sub("data"));
    options_.tls_cert_file = pki_.server_cert;
    options_.tls_key_file = pki_.server_key;
  }

  void Start() {
    absl::StatusOr<std::unique_ptr<WebhookServer>> server =
        WebhookServer::Start(options_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // A TLS channel trusting `ca`, presenting the client certificate if given.
  std::shared_ptr<grpc::Channel> TlsChannel(const std::string& ca,
                                            const std::string& cert = "",
                                            const std::string& key = "") {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadWholeFile(ca);
    if (!cert.empty()) {
      ssl.pem_cert_chain = ReadWholeFile(cert);
      ssl.pem_private_key = ReadWholeFile(key);
    }
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                               grpc::SslCredentials(ssl));
  }

  // ListEndpoints on `channel`, with a short deadline: a failed handshake
  // shows as UNAVAILABLE.
  grpc::Status Call(const std::shared_ptr<grpc::Channel>& channel) {
    auto stub = WebhookService::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(5));
    webhook::v1::ListEndpointsResponse response;
    return stub->ListEndpoints(&context, {}, &response);
  }

  std::shared_ptr<grpc::Channel> PlaintextChannel() {
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                               grpc::InsecureChannelCredentials());
  }

  TestDir dir_;
  testing::TestPki pki_;
  ServerOptions options_;
  std::unique_ptr<WebhookServer> server_;
};

TEST_F(TlsTest, TlsClientTrustingTheCaIsServed) {
  Start();
  grpc::Status status = Call(TlsChannel(pki_.ca_cert));
  EXPECT_TRUE(status.ok()) << status.error_message();
}

// UNAVAILABLE alone is what a server that is not there gives too: the tests
// of refused clients also make a call that succeeds, on the same server.

TEST_F(TlsTest, PlaintextClientIsRefused) {
  Start();
  EXPECT_EQ(Call(PlaintextChannel()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  grpc::Status trusted = Call(TlsChannel(pki_.ca_cert));
  EXPECT_TRUE(trusted.ok())
      << "the server serves TLS: " << trusted.error_message();
}

TEST_F(TlsTest, ClientNotTrustingTheServerCertificateFails) {
  Start();
  // other-ca.crt did not sign the server's certificate: the handshake
  // fails on the client's check of the certificate the server presented.
  grpc::Status untrusted = Call(TlsChannel(dir_.Sub("other-ca.crt")));
  EXPECT_EQ(untrusted.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(untrusted.error_message(), HasSubstr("certificate verify"));
  grpc::Status trusted = Call(TlsChannel(pki_.ca_cert));
  EXPECT_TRUE(trusted.ok())
      << "the server serves TLS: " << trusted.error_message();
}

TEST_F(TlsTest, MutualTlsRequiresATrustedClientCertificate) {
  options_.tls_client_ca_file = pki_.ca_cert;
  Start();
  EXPECT_EQ(Call(TlsChannel(pki_.ca_cert)).error_code(),
            grpc::StatusCode::UNAVAILABLE)
      << "no client certificate";
  EXPECT_EQ(Call(TlsChannel(pki_.ca_cert, pki_.untrusted_client_cert,
                            pki_.untrusted_client_key))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE)
      << "a certificate from another CA";
  EXPECT_EQ(Call(PlaintextChannel()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  grpc::Status status =
      Call(TlsChannel(pki_.ca_cert, pki_.client_cert, pki_.client_key));
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(TlsTest, BadTlsConfigurationIsRefusedClearly) {
  struct Case {
    std::string cert, key, client_ca, expected;
  };
  const std::string missing = dir_.Sub("missing.pem");
  std::ofstream(dir_.Sub("garbage.pem")) << "not a certificate\n";
  const std::vector<Case> cases = {
      {pki_.server_cert, "", "", "together"},
      {"", pki_.server_key, "", "together"},
      {"", "", pki_.ca_cert, "--tls_client_ca needs"},
      {missing, pki_.server_key, "", "missing.pem"},
      {pki_.server_cert, missing, "", "missing.pem"},
      {pki_.server_cert, pki_.server_key, missing, "missing.pem"},
      {dir_.Sub("garbage.pem"), pki_.server_key, "", "no PEM certificate"},
      {pki_.server_cert, dir_.Sub("garbage.pem"), "", "no PEM private key"},
      {pki_.server_cert, pki_.client_key, "", "not the private key"},
  };
  for (const Case& c : cases) {
    options_.tls_cert_file = c.cert;
    options_.tls_key_file = c.key;
    options_.tls_client_ca_file = c.client_ca;
    absl::StatusOr<std::unique_ptr<WebhookServer>> server =
        WebhookServer::Start(options_);
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument)
        << c.expected;
    EXPECT_THAT(server.status().message(), HasSubstr(c.expected));
  }
}

TEST_F(TlsTest, FlagsServeMutualTlsWithApiKeys) {
  std::ofstream(dir_.Sub("keys.txt")) << "tls-test-key-0123456789 5\n";
  auto process = testing::WebhookdProcess::StartServer(
      dir_.Sub("process-data"), dir_.path(),
      {absl::StrCat("--tls_cert=", pki_.server_cert),
       absl::StrCat("--tls_key=", pki_.server_key),
       absl::StrCat("--tls_client_ca=", pki_.ca_cert),
       absl::StrCat("--api_keys_file=", dir_.Sub("keys.txt"))});
  ASSERT_TRUE(process->status().ok()) << process->status();
  EXPECT_THAT(process->Log(), HasSubstr("over mutual TLS"));
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadWholeFile(pki_.ca_cert);
  ssl.pem_cert_chain = ReadWholeFile(pki_.client_cert);
  ssl.pem_private_key = ReadWholeFile(pki_.client_key);
  auto stub = WebhookService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", process->port()), grpc::SslCredentials(ssl)));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  context.AddMetadata("authorization", "Bearer tls-test-key-0123456789");
  webhook::v1::ListEndpointsResponse response;
  grpc::Status status = stub->ListEndpoints(&context, {}, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

// The HTTP/JSON API of --http_listen is HTTPS with the same certificate.
class HttpsTest : public TlsTest {
 protected:
  void StartHttps() {
    options_.http_listen = "127.0.0.1:0";
    Start();
    ASSERT_GT(server_->http_port(), 0);
  }

  // GET /v1/endpoints over HTTPS trusting the test CA, presenting the
  // client certificate if given; the status, or -1 if no answer came.
  int HttpsGet(const std::string& cert = "", const std::string& key = "") {
    httplib::SSLClient client("127.0.0.1", server_->http_port(), cert, key);
    client.set_ca_cert_path(pki_.ca_cert.c_str());
    client.enable_server_certificate_verification(true);
    client.set_connection_timeout(5, 0);
    httplib::Result result = client.Get("/v1/endpoints");
    return result ? result->status : -1;
  }
};

TEST_F(HttpsTest, HttpApiIsServedOverTlsOnly) {
  StartHttps();
  EXPECT_EQ(HttpsGet(), 200);
  httplib::Client plaintext("127.0.0.1", server_->http_port());
  plaintext.set_read_timeout(5, 0);
  httplib::Result result = plaintext.Get("/v1/endpoints");
  EXPECT_FALSE(result && result->status == 200) << "plain HTTP is refused";
}

TEST_F(HttpsTest, ClientCaRequiresATrustedClientCertificate) {
  options_.tls_client_ca_file = pki_.ca_cert;
  StartHttps();
  EXPECT_EQ(HttpsGet(), -1) << "no client certificate";
  EXPECT_EQ(HttpsGet(pki_.untrusted_client_cert, pki_.untrusted_client_key), -1)
      << "a certificate from another CA";
  EXPECT_EQ(HttpsGet(pki_.client_cert, pki_.client_key), 200);
}

}  // namespace
}  // namespace webhookd
