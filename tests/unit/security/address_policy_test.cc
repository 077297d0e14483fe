#include "server/security/address_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/delivery/validation.h"

namespace webhookd {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

IpAddress Ip(const std::string& text) {
  std::optional<IpAddress> address = ParseIpLiteral(text);
  EXPECT_TRUE(address.has_value()) << text;
  return address.value_or(IpAddress());
}

AddressPolicy Allowing(const std::vector<std::string>& cidrs) {
  absl::StatusOr<AddressPolicy> policy = AddressPolicy::FromCidrs(cidrs);
  EXPECT_TRUE(policy.ok()) << policy.status();
  return policy.value_or(AddressPolicy());
}

TargetPolicy Secure(const std::vector<std::string>& allow_cidrs = {}) {
  TargetPolicy policy;
  policy.addresses = Allowing(allow_cidrs);
  return policy;
}

// The address spellings REFERENCE.md lists, each as the host of an https
// URL; all name non-public addresses.
const std::vector<std::string>& HostileHosts() {
  static const auto* hosts = new std::vector<std::string>{
      "127.1",
      "2130706433",
      "0x7f.1",
      "0177.0.0.1",
      "0.0.0.0",
      "0",
      "10.0.0.1",
      "10.255.255.255",
      "172.16.0.1",
      "172.31.255.254",
      "192.168.1.1",
      "100.64.0.1",
      "100.100.100.200",
      "169.254.169.254",
      "169.254.0.1",
      "198.18.0.1",
      "198.19.255.255",
      "240.0.0.1",
      "255.255.255.255",
      "224.0.0.1",
      "192.0.0.8",
      "192.0.2.1",
      "198.51.100.7",
      "203.0.113.9",
      "127.0.0.1.",
      "0x7f000001",
      "017700000001",
      "127.000.000.001",
      "%31%32%37.0.0.1",
      "[::]",
      "[::1]",
      "[::ffff:127.0.0.1]",
      "[::ffff:7f00:1]",
      "[0:0:0:0:0:ffff:a9fe:a9fe]",
      "[::127.0.0.1]",
      "[fe80::1]",
      "[fc00::1]",
      "[fd00:ec2::254]",
      "[64:ff9b::a9fe:a9fe]",
      "[64:ff9b::7f00:1]",
      "[64:ff9b:1::1]",
      "[2002:a9fe:a9fe::]",
      "[2002:7f00:1::1]",
      "[2001::1]",
      "[2001:db8::1]",
      "[ff02::1]",
      "[fec0::1]",
      "[100::1]",
      "[4000::1]",
      "localhost",
      "LOCALHOST",
      "localhost.",
      "api.localhost",
  };
  return *hosts;
}

// --- ParseCidr --------------------------------------------------------------

TEST(ParseCidrTest, ParsesIpv4AndIpv6Ranges) {
  absl::StatusOr<Cidr> cidr = ParseCidr("10.0.0.0/8");
  ASSERT_TRUE(cidr.ok()) << cidr.status();
  EXPECT_EQ(cidr->prefix_length, 8);
  EXPECT_EQ(cidr->ToString(), "10.0.0.0/8");

  cidr = ParseCidr("fd00::/8");
  ASSERT_TRUE(cidr.ok()) << cidr.status();
  EXPECT_TRUE(cidr->network.v6);
  EXPECT_EQ(cidr->ToString(), "fd00::/8");
}

TEST(ParseCidrTest, SingleAddressIsAFullLengthPrefix) {
  absl::StatusOr<Cidr> cidr = ParseCidr("192.0.2.1");
  ASSERT_TRUE(cidr.ok()) << cidr.status();
  EXPECT_EQ(cidr->prefix_length, 32);
  cidr = ParseCidr("::1");
  ASSERT_TRUE(cidr.ok()) << cidr.status();
  EXPECT_EQ(cidr->prefix_length, 128);
}

TEST(ParseCidrTest, RefusesMalformedRanges) {
  for (const char* text :
       {"", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8x",
        "10/8", "10.1/16", "0x0a.0.0.0/8", "example.com/8", "::/129",
        "[::1]/128", "10.0.0.0/0008", "10.0.0.0 /8"}) {
    absl::StatusOr<Cidr> cidr = ParseCidr(text);
    EXPECT_EQ(cidr.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
}

TEST(ParseCidrTest, RefusesHostBitsAndSuggestsTheNetwork) {
  absl::StatusOr<Cidr> cidr = ParseCidr("10.1.2.3/8");
  EXPECT_EQ(cidr.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(cidr.status().message(), HasSubstr("10.0.0.0/8"));
  EXPECT_FALSE(ParseCidr("fd00::1/8").ok());
}

TEST(CidrTest, ContainsOnlyItsRangeAndFamily) {
  const Cidr cidr = *ParseCidr("172.16.0.0/12");
  EXPECT_TRUE(cidr.Contains(Ip("172.16.0.0")));
  EXPECT_TRUE(cidr.Contains(Ip("172.31.255.255")));
  EXPECT_FALSE(cidr.Contains(Ip("172.15.255.255")));
  EXPECT_FALSE(cidr.Contains(Ip("172.32.0.0")));
  EXPECT_FALSE(cidr.Contains(Ip("::ffff:172.16.0.1")));
  EXPECT_TRUE(ParseCidr("0.0.0.0/0")->Contains(Ip("8.8.8.8")));
  EXPECT_FALSE(ParseCidr("0.0.0.0/0")->Contains(Ip("::1")));
}

// --- ParseIpLiteral ---------------------------------------------------------

TEST(ParseIpLiteralTest, ReadsEveryNumericIpv4Spelling) {
  for (const char* spelling :
       {"127.0.0.1", "127.1", "127.0.1", "2130706433", "0x7f.1", "0X7F.0.0.1",
        "0177.0.0.1", "0177.1", "017700000001", "0x7f000001", "127.000.000.001",
        "127.0.0.1."}) {
    std::optional<IpAddress> address = ParseIpLiteral(spelling);
    ASSERT_TRUE(address.has_value()) << spelling;
    EXPECT_EQ(address->ToString(), "127.0.0.1") << spelling;
  }
}

TEST(ParseIpLiteralTest, ReadsIpv6WithOrWithoutBrackets) {
  EXPECT_EQ(Ip("::1").ToString(), "::1");
  EXPECT_EQ(Ip("[::1]").ToString(), "::1");
  EXPECT_TRUE(Ip("[::ffff:127.0.0.1]").v6);
  EXPECT_EQ(Ip("FE80::1").ToString(), "fe80::1");
}

TEST(ParseIpLiteralTest, HostNamesAndNearMissesAreNotLiterals) {
  for (const char* host :
       {"example.com", "localhost", "1.2.3.4.5", "127.0.0.1 x", "127.0.0.1..",
        "4294967296", "0x1g", "", ".", "[", "[]", "fe80::1%eth0", "::1]",
        "12.1e"}) {
    EXPECT_FALSE(ParseIpLiteral(host).has_value()) << host;
  }
}

TEST(ParseIpLiteralTest, EmbeddedNulIsNotCutOff) {
  // Found by address_fuzzer: inet_pton stopped at the NUL and read the
  // prefix as ::ffff:8f:8.
  using namespace std::string_literals;
  for (const std::string& host :
       {"::ffff:8f:8\0\1junk"s, "::1\0"s, "[::1\0]"s, "127.0.0.1\0"s}) {
    EXPECT_FALSE(ParseIpLiteral(host).has_value()) << absl::CEscape(host);
    EXPECT_FALSE(ParseCidr(host).ok()) << absl::CEscape(host);
  }
}

// --- NonPublicReason --------------------------------------------------------

TEST(NonPublicReasonTest, PublicUnicastAddressesHaveNoReason) {
  for (const char* text : {"8.8.8.8",
                           "1.1.1.1",
                           "93.184.216.34",
                           "172.15.255.255",
                           "172.32.0.0",
                           "100.63.255.255",
                           "100.128.0.0",
                           "198.17.255.255",
                           "198.20.0.0",
                           "223.255.255.255",
                           "169.253.255.255",
                           "192.0.1.255",
                           "192.169.0.0",
                           "11.0.0.0",
                           "126.255.255.255",
                           "128.0.0.0",
                           "2606:4700:4700::1111",
                           "2a00:1450:4001:80b::200e",
                           "::ffff:8.8.8.8",
                           "64:ff9b::808:808",
                           "2002:808:808::1",
                           "::8.8.8.8"}) {
    EXPECT_THAT(NonPublicReason(Ip(text)), IsEmpty()) << text;
  }
}

TEST(NonPublicReasonTest, NamesEachBlockedIpv4Range) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"0.0.0.0", "unspecified"},
      {"0.1.2.3", "\"this network\" address (0.0.0.0/8)"},
      {"10.0.0.1", "private address (10.0.0.0/8)"},
      {"100.64.0.1", "carrier-grade NAT"},
      {"100.127.255.255", "carrier-grade NAT"},
      {"127.0.0.1", "loopback address (127.0.0.0/8)"},
      {"127.255.255.254", "loopback"},
      {"169.254.169.254", "cloud metadata"},
      {"169.254.1.1", "link-local address (169.254.0.0/16)"},
      {"172.16.0.1", "private address (172.16.0.0/12)"},
      {"192.0.0.170", "IETF protocol assignment"},
      {"192.0.2.1", "documentation"},
      {"192.88.99.1", "6to4 relay"},
      {"192.168.0.1", "private address (192.168.0.0/16)"},
      {"198.18.0.1", "benchmarking"},
      {"198.51.100.1", "documentation"},
      {"203.0.113.1", "documentation"},
      {"224.0.0.1", "multicast"},
      {"239.255.255.250", "multicast"},
      {"240.0.0.1", "reserved"},
      {"255.255.255.254", "reserved"},
      {"255.255.255.255", "broadcast"},
  };
  for (const auto& [address, reason] : cases) {
    EXPECT_THAT(NonPublicReason(Ip(address)), HasSubstr(reason)) << address;
  }
}

TEST(NonPublicReasonTest, NamesEachBlockedIpv6Range) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"::", "unspecified"},
      {"::1", "loopback"},
      {"fe80::1", "link-local"},
      {"febf::1", "link-local"},
      {"fc00::1", "unique local"},
      {"fd00:ec2::254", "unique local"},
      {"ff02::1", "multicast"},
      {"fec0::1", "site-local"},
      {"2001::1", "Teredo"},
      {"2001:db8::1", "documentation"},
      {"2001:2::1", "IETF protocol assignment"},
      {"3fff::1", "documentation"},
      {"100::1", "discard-only"},
      {"64:ff9b:1::a00:1", "local-use NAT64"},
      {"4000::1", "reserved"},
      {"::2:0:0:1", "reserved"},
  };
  for (const auto& [address, reason] : cases) {
    EXPECT_THAT(NonPublicReason(Ip(address)), HasSubstr(reason)) << address;
  }
}

TEST(NonPublicReasonTest, EmbeddedIpv4IsJudgedByItsIpv4Address) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"::ffff:127.0.0.1", "IPv4-mapped"}, {"::ffff:a9fe:a9fe", "IPv4-mapped"},
      {"::127.0.0.1", "IPv4-compatible"},  {"::10.0.0.1", "IPv4-compatible"},
      {"64:ff9b::a9fe:a9fe", "NAT64"},     {"64:ff9b::c0a8:1", "NAT64"},
      {"2002:a9fe:a9fe::", "6to4"},        {"2002:7f00:1::1", "6to4"},
  };
  for (const auto& [address, form] : cases) {
    const std::string reason = NonPublicReason(Ip(address));
    EXPECT_THAT(reason, HasSubstr(form)) << address;
    EXPECT_THAT(reason,
                ::testing::AnyOf(HasSubstr("loopback"), HasSubstr("private"),
                                 HasSubstr("link-local")))
        << address;
  }
}

// --- AddressPolicy ----------------------------------------------------------

TEST(AddressPolicyTest, DefaultAllowsOnlyPublicAddresses) {
  const AddressPolicy policy;
  EXPECT_TRUE(policy.Check(Ip("8.8.8.8")).ok());
  EXPECT_TRUE(policy.Check(Ip("2606:4700:4700::1111")).ok());
  const absl::Status status = policy.Check(Ip("10.0.0.1"));
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(status.message(), "10.0.0.1 is a private address (10.0.0.0/8)");
}

TEST(AddressPolicyTest, AllowListAdmitsItsRangesAndNothingMore) {
  const AddressPolicy policy = Allowing({"127.0.0.0/8", "fd00:1::/32"});
  EXPECT_TRUE(policy.Check(Ip("127.0.0.1")).ok());
  EXPECT_TRUE(policy.Check(Ip("127.9.9.9")).ok());
  EXPECT_TRUE(policy.Check(Ip("::ffff:127.0.0.1")).ok())
      << "an IPv4-mapped address is its IPv4 address";
  EXPECT_TRUE(policy.Check(Ip("fd00:1::5")).ok());
  EXPECT_FALSE(policy.Check(Ip("fd00:2::5")).ok());
  EXPECT_FALSE(policy.Check(Ip("10.0.0.1")).ok());
  EXPECT_FALSE(policy.Check(Ip("169.254.169.254")).ok());
  EXPECT_FALSE(policy.Check(Ip("::1")).ok());
  EXPECT_FALSE(policy.Check(Ip("64:ff9b::7f00:1")).ok())
      << "NAT64 goes through a gateway: only a v6 range admits it";
  EXPECT_TRUE(policy.Check(Ip("8.8.8.8")).ok());
}

TEST(AddressPolicyTest, AllowListInIpv4MappedFormAdmitsItsRange) {
  // Found by address_fuzzer: --allow_cidr=::ffff:1:2/128 did not admit
  // ::ffff:1:2, because it is judged as 0.1.0.2.
  const AddressPolicy policy = Allowing({"::ffff:10.0.0.0/104"});
  EXPECT_TRUE(policy.Check(Ip("::ffff:10.1.2.3")).ok());
  EXPECT_FALSE(policy.Check(Ip("::ffff:192.168.1.1")).ok());
  EXPECT_FALSE(policy.Check(Ip("::ffff:127.0.0.1")).ok());
}

TEST(AddressPolicyTest, FromCidrsRefusesBadEntry) {
  absl::StatusOr<AddressPolicy> policy =
      AddressPolicy::FromCidrs({"10.0.0.0/8", "10.0.0.0/99"});
  EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(policy.status().message(), HasSubstr("10.0.0.0/99"));
}

TEST(AddressPolicyTest, CheckHostRefusesLocalhostNamesAndPassesOtherNames) {
  const AddressPolicy policy;
  for (const char* host : {"localhost", "LocalHost", "localhost.",
                           "a.localhost", "x.y.localhost"}) {
    EXPECT_EQ(policy.CheckHost(host).code(),
              absl::StatusCode::kPermissionDenied)
        << host;
  }
  for (const char* host : {"example.com", "localhost.example.com",
                           "notlocalhost", "rebind.test", "8.8.8.8"}) {
    EXPECT_TRUE(policy.CheckHost(host).ok()) << host;
  }
  EXPECT_TRUE(Allowing({"127.0.0.0/8"}).CheckHost("localhost").ok())
      << "localhost is allowed when its loopback address is";
}

TEST(AddressPolicyTest, AllowsConnectionJudgesSocketAddresses) {
  const AddressPolicy policy = Allowing({"192.168.7.0/24"});
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr);
  std::string why;
  EXPECT_FALSE(policy.AllowsConnection(reinterpret_cast<sockaddr*>(&v4),
                                       sizeof(v4), &why));
  EXPECT_THAT(why, HasSubstr("loopback"));
  EXPECT_THAT(why, HasSubstr("--allow_cidr"));

  inet_pton(AF_INET, "192.168.7.20", &v4.sin_addr);
  EXPECT_TRUE(policy.AllowsConnection(reinterpret_cast<sockaddr*>(&v4),
                                      sizeof(v4), &why));

  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "::ffff:169.254.169.254", &v6.sin6_addr);
  why.clear();
  EXPECT_FALSE(policy.AllowsConnection(reinterpret_cast<sockaddr*>(&v6),
                                       sizeof(v6), &why));
  EXPECT_THAT(why, HasSubstr("metadata"));
  inet_pton(AF_INET6, "2606:4700:4700::1111", &v6.sin6_addr);
  EXPECT_TRUE(policy.AllowsConnection(reinterpret_cast<sockaddr*>(&v6),
                                      sizeof(v6), &why));

  sockaddr_un unix_address{};
  unix_address.sun_family = AF_UNIX;
  EXPECT_FALSE(policy.AllowsConnection(
      reinterpret_cast<sockaddr*>(&unix_address), sizeof(unix_address), &why));
  EXPECT_FALSE(
      policy.AllowsConnection(reinterpret_cast<sockaddr*>(&v4), 4, &why))
      << "a truncated address is refused";
}

// --- ValidateUrl with addresses ---------------------------------------------

TEST(ValidateUrlAddressTest, EveryHostileSpellingIsRefusedNamingTheField) {
  for (const std::string& host : HostileHosts()) {
    const std::string url = absl::StrCat("https://", host, ":8443/hook");
    const absl::Status status = ValidateUrl(url, Secure(), "endpoint.url");
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << url;
    EXPECT_THAT(std::string(status.message()),
                StartsWith("endpoint.url: host "))
        << url;
  }
}

TEST(ValidateUrlAddressTest, InsecureTargetsAllowEverySpelling) {
  TargetPolicy insecure;
  insecure.allow_insecure_targets = true;
  for (const std::string& host : HostileHosts()) {
    const std::string url = absl::StrCat("https://", host, "/hook");
    EXPECT_TRUE(ValidateUrl(url, insecure, "u").ok()) << url;
  }
  EXPECT_TRUE(ValidateUrl("http://127.0.0.1:8080/", insecure, "u").ok());
}

TEST(ValidateUrlAddressTest, AllowCidrAdmitsOnlyItsRange) {
  const TargetPolicy policy = Secure({"127.0.0.0/8"});
  EXPECT_TRUE(ValidateUrl("https://127.0.0.1:8443/", policy, "u").ok());
  EXPECT_TRUE(ValidateUrl("https://127.1/", policy, "u").ok());
  EXPECT_TRUE(ValidateUrl("https://localhost/", policy, "u").ok());
  EXPECT_FALSE(ValidateUrl("https://10.0.0.1/", policy, "u").ok());
  EXPECT_FALSE(ValidateUrl("https://[::1]/", policy, "u").ok());
  EXPECT_FALSE(ValidateUrl("http://127.0.0.1/", policy, "u").ok())
      << "the allow-list does not allow http";
}

TEST(ValidateUrlAddressTest, PublicLiteralsAndHostNamesAreAccepted) {
  for (const char* url :
       {"https://8.8.8.8/", "https://[2606:4700:4700::1111]:8443/x",
        "https://[::ffff:8.8.8.8]/", "https://hooks.example.com/",
        "https://rebind.test:8443/"}) {
    EXPECT_TRUE(ValidateUrl(url, Secure(), "u").ok()) << url;
  }
}

}  // namespace
}  // namespace webhookd
