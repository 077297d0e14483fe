// DescribeCurlFailure: the HttpResult::error wording of a failed transfer.

#include "server/http/curl_error.h"

#include <curl/curl.h>

#include <cerrno>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace webhookd {
namespace {

CurlFailure Failure(CURLcode code, std::string detail = "libcurl detail") {
  CurlFailure failure;
  failure.code = code;
  failure.detail = std::move(detail);
  failure.timeout = absl::Seconds(30);
  return failure;
}

TEST(DescribeCurlFailureTest, RefusedConnectionIsConnectionRefused) {
  CurlFailure failure = Failure(
      CURLE_COULDNT_CONNECT,
      "Failed to connect to 127.0.0.1 port 9 after 0 ms: Connection refused");
  failure.os_errno = ECONNREFUSED;

  EXPECT_EQ(DescribeCurlFailure(failure),
            "connection refused: Failed to connect to 127.0.0.1 port 9 after "
            "0 ms: Connection refused");
}

TEST(DescribeCurlFailureTest, UnreachableNetworkOrHostIsHostUnreachable) {
  for (int os_errno : {ENETUNREACH, EHOSTUNREACH}) {
    CurlFailure failure = Failure(CURLE_COULDNT_CONNECT);
    failure.os_errno = os_errno;

    EXPECT_EQ(DescribeCurlFailure(failure), "host unreachable: libcurl detail")
        << os_errno;
  }
}

TEST(DescribeCurlFailureTest, OtherConnectFailureIsCouldNotConnect) {
  CurlFailure failure = Failure(CURLE_COULDNT_CONNECT);
  failure.os_errno = EACCES;

  EXPECT_EQ(DescribeCurlFailure(failure), "could not connect: libcurl detail");
}

TEST(DescribeCurlFailureTest, BlockedAddressReplacesTheConnectFailure) {
  CurlFailure failure = Failure(CURLE_COULDNT_CONNECT);
  failure.blocked = "blocked address 10.0.0.1: private address";

  EXPECT_EQ(DescribeCurlFailure(failure),
            "blocked address 10.0.0.1: private address");
}

TEST(DescribeCurlFailureTest, BlockedAddressDoesNotExplainOtherFailures) {
  CurlFailure failure = Failure(CURLE_COULDNT_RESOLVE_HOST);
  failure.blocked = "blocked address 10.0.0.1: private address";

  EXPECT_EQ(DescribeCurlFailure(failure),
            "could not resolve host: libcurl detail");
}

TEST(DescribeCurlFailureTest, TimeoutNamesTheRequestTimeout) {
  CurlFailure failure = Failure(
      CURLE_OPERATION_TIMEDOUT,
      "Operation timed out after 200 milliseconds with 0 bytes received");
  failure.timeout = absl::Milliseconds(200);

  EXPECT_EQ(DescribeCurlFailure(failure),
            "timed out after 200 ms: Operation timed out after 200 "
            "milliseconds with 0 bytes received");
}

TEST(DescribeCurlFailureTest, ConnectTimeoutNamesTheConnectTimeout) {
  CurlFailure failure =
      Failure(CURLE_OPERATION_TIMEDOUT,
              "Connection timed out after 10001 milliseconds");
  failure.timeout = absl::Seconds(10);
  failure.timed_out_connecting = true;

  EXPECT_EQ(DescribeCurlFailure(failure),
            "could not connect within 10000 ms: Connection timed out after "
            "10001 milliseconds");
}

TEST(DescribeCurlFailureTest, TlsHandshakeFailure) {
  EXPECT_EQ(DescribeCurlFailure(Failure(CURLE_SSL_CONNECT_ERROR)),
            "TLS handshake failed: libcurl detail");
}

TEST(DescribeCurlFailureTest, CertificateFailuresAreVerificationFailures) {
  for (CURLcode code :
       {CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE,
        CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS}) {
    EXPECT_EQ(DescribeCurlFailure(Failure(code)),
              "TLS certificate verification failed: libcurl detail")
        << code;
  }
}

TEST(DescribeCurlFailureTest, UrlProblemsAreNamed) {
  EXPECT_EQ(DescribeCurlFailure(Failure(CURLE_UNSUPPORTED_PROTOCOL)),
            "unsupported protocol: libcurl detail");
  EXPECT_EQ(DescribeCurlFailure(Failure(CURLE_URL_MALFORMAT)),
            "malformed URL: libcurl detail");
}

TEST(DescribeCurlFailureTest, ConnectionClosedWithoutAnyReplyIsEmptyReply) {
  EXPECT_EQ(DescribeCurlFailure(Failure(CURLE_GOT_NOTHING)),
            "empty reply from server: libcurl detail");
}

TEST(DescribeCurlFailureTest, MalformedResponsesAreInvalidHttpResponse) {
  for (CURLcode code :
       {CURLE_WEIRD_SERVER_REPLY, CURLE_HTTP2, CURLE_HTTP2_STREAM}) {
    EXPECT_EQ(DescribeCurlFailure(Failure(code)),
              "invalid HTTP response: libcurl detail")
        << code;
  }
}

TEST(DescribeCurlFailureTest, SendAndReceiveErrorsAreConnectionBroken) {
  for (CURLcode code :
       {CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_PARTIAL_FILE}) {
    EXPECT_EQ(DescribeCurlFailure(Failure(code)),
              "connection broken: libcurl detail")
        << code;
  }
}

TEST(DescribeCurlFailureTest, RefusedResendSaysTheRequestWasNotSentAgain) {
  CurlFailure failure = Failure(CURLE_ABORTED_BY_CALLBACK,
                                "operation aborted by pre-request callback");
  failure.resend_refused = true;

  EXPECT_EQ(DescribeCurlFailure(failure),
            "connection closed before a response; not re-sent (the next "
            "attempt follows the retry schedule)");
}

TEST(DescribeCurlFailureTest, OtherCodesUseLibcurlsName) {
  EXPECT_EQ(DescribeCurlFailure(Failure(CURLE_OUT_OF_MEMORY)),
            absl::StrCat(curl_easy_strerror(CURLE_OUT_OF_MEMORY),
                         ": libcurl detail"));
}

TEST(DescribeCurlFailureTest, TrailingWhitespaceOfTheDetailIsDropped) {
  EXPECT_EQ(DescribeCurlFailure(Failure(CURLE_RECV_ERROR, "reset by peer\n ")),
            "connection broken: reset by peer");
}

TEST(DescribeCurlFailureTest, EmptyDetailFallsBackToLibcurlsName) {
  for (const char* detail : {"", " \n"}) {
    EXPECT_EQ(DescribeCurlFailure(Failure(CURLE_RECV_ERROR, detail)),
              absl::StrCat("connection broken: ",
                           curl_easy_strerror(CURLE_RECV_ERROR)));
  }
}

TEST(DescribeCurlFailureTest, ResponseCutShortNamesItsStatus) {
  CurlFailure failure = Failure(CURLE_PARTIAL_FILE);
  failure.partial_status = 200;

  EXPECT_EQ(DescribeCurlFailure(failure),
            "connection broken: libcurl detail (after a partial HTTP 200 "
            "response)");
}

TEST(DescribeCurlFailureTest, TimeoutDuringResponseNamesItsStatus) {
  CurlFailure failure = Failure(CURLE_OPERATION_TIMEDOUT);
  failure.timeout = absl::Seconds(2);
  failure.partial_status = 503;

  EXPECT_EQ(DescribeCurlFailure(failure),
            "timed out after 2000 ms: libcurl detail (after a partial HTTP "
            "503 response)");
}

}  // namespace
}  // namespace webhookd
