#include "sip/registrar/digest.h"

#include <gtest/gtest.h>

namespace pbx::sip {
namespace {

// RFC 7616 3.9.1: user Mufasa, realm http-auth@example.org, password "Circle of Life".
TEST(DigestTest, Rfc7616ExampleMd5AndSha256) {
  DigestCredentials c;
  c.nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
  c.uri = "/dir/index.html";
  c.qop = "auth";
  c.nc = "00000001";
  c.cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
  std::string md5_ha1 =
      DigestHash(DigestAlgorithm::kMd5, "Mufasa:http-auth@example.org:Circle of Life");
  EXPECT_EQ(DigestExpectedResponse(DigestAlgorithm::kMd5, md5_ha1, "GET", c),
            "8ca523f5e9506fed4657c9700eebdbec");
  std::string sha_ha1 =
      DigestHash(DigestAlgorithm::kSha256, "Mufasa:http-auth@example.org:Circle of Life");
  EXPECT_EQ(DigestExpectedResponse(DigestAlgorithm::kSha256, sha_ha1, "GET", c),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
}

// RFC 2617 3.5 (MD5, qop=auth) and the RFC 2069 form without qop.
TEST(DigestTest, Rfc2617Example) {
  DigestCredentials c;
  c.nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
  c.uri = "/dir/index.html";
  c.qop = "auth";
  c.nc = "00000001";
  c.cnonce = "0a4f113b";
  std::string ha1 = DigestHash(DigestAlgorithm::kMd5, "Mufasa:testrealm@host.com:Circle Of Life");
  EXPECT_EQ(ha1, "939e7578ed9e3c518a452acee763bce9");
  EXPECT_EQ(DigestExpectedResponse(DigestAlgorithm::kMd5, ha1, "GET", c),
            "6629fae49393a05397450978507c4ef1");
  c.qop = "";
  EXPECT_EQ(DigestExpectedResponse(DigestAlgorithm::kMd5, ha1, "GET", c).size(), 32u);
}

TEST(DigestTest, AlgorithmNames) {
  EXPECT_EQ(ParseDigestAlgorithm(""), DigestAlgorithm::kMd5);
  EXPECT_EQ(ParseDigestAlgorithm("md5"), DigestAlgorithm::kMd5);
  EXPECT_EQ(ParseDigestAlgorithm("\"SHA-256\""), DigestAlgorithm::kSha256);
  EXPECT_FALSE(ParseDigestAlgorithm("MD5-sess"));
  EXPECT_FALSE(ParseDigestAlgorithm("SHA-512-256"));
  EXPECT_EQ(DigestAlgorithmName(DigestAlgorithm::kSha256), "SHA-256");
}

TEST(NonceTest, ValidStaleAndForged) {
  NonceAuthority a("secret-one", 300);
  std::string n = a.Issue("pbx", 1000);
  EXPECT_EQ(a.Check(n, "pbx", 1000), NonceAuthority::Verdict::kValid);
  EXPECT_EQ(a.Check(n, "pbx", 1300), NonceAuthority::Verdict::kValid);
  EXPECT_EQ(a.Check(n, "pbx", 1301), NonceAuthority::Verdict::kStale);
  EXPECT_EQ(a.Check(n, "other-realm", 1000), NonceAuthority::Verdict::kInvalid);
  // Another node with the same (replicated) secret accepts it; another secret does not.
  EXPECT_EQ(NonceAuthority("secret-one", 300).Check(n, "pbx", 1010),
            NonceAuthority::Verdict::kValid);
  EXPECT_EQ(NonceAuthority("secret-two", 300).Check(n, "pbx", 1010),
            NonceAuthority::Verdict::kInvalid);
  std::string tampered = n;
  tampered[3] = tampered[3] == '0' ? '1' : '0';  // a younger time stamp
  EXPECT_EQ(a.Check(tampered, "pbx", 1000), NonceAuthority::Verdict::kInvalid);
  EXPECT_EQ(a.Check("", "pbx", 1000), NonceAuthority::Verdict::kInvalid);
  EXPECT_EQ(a.Check(std::string(36, 'z'), "pbx", 1000), NonceAuthority::Verdict::kInvalid);
  EXPECT_EQ(a.Check(a.Issue("pbx", 5000), "pbx", 1000), NonceAuthority::Verdict::kInvalid);
}

}  // namespace
}  // namespace pbx::sip
