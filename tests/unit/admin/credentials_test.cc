#include "node/admin/credentials.h"

#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include "tests/support/process.h"

namespace pbx::admin {
namespace {

bool IsLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

TEST(GeneratePasswordTest, HasRequestedLengthLettersAndDigits) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    Result<std::string> pw = GeneratePassword(12);
    ASSERT_TRUE(pw.ok()) << pw.status().ToString();
    ASSERT_EQ(pw->size(), 12u);
    bool letter = false, digit = false;
    for (char c : *pw) {
      letter |= IsLetter(c);
      digit |= IsDigit(c);
      EXPECT_TRUE(IsLetter(c) || IsDigit(c) ||
                  std::string_view("-_.+!*").find(c) != std::string_view::npos)
          << c;
    }
    EXPECT_TRUE(letter && digit) << *pw;
    EXPECT_FALSE(CheckPasswordStrength(*pw, "")) << *pw;
    seen.insert(*pw);
  }
  EXPECT_EQ(seen.size(), 200u);  // 12 random characters never repeat in practice
}

TEST(GeneratePasswordTest, ShortestIsTwoCharacters) {
  Result<std::string> two = GeneratePassword(2);
  ASSERT_TRUE(two.ok());
  EXPECT_TRUE((IsLetter((*two)[0]) && IsDigit((*two)[1])) ||
              (IsDigit((*two)[0]) && IsLetter((*two)[1])));
  EXPECT_EQ(GeneratePassword(1).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(GeneratePassword(0).status().code(), Status::Code::kInvalidArgument);
}

TEST(PasswordStrengthTest, Rules) {
  EXPECT_FALSE(CheckPasswordStrength("abcdefg1", "1001"));
  EXPECT_FALSE(CheckPasswordStrength("Zx9-Zx9-Zx9", "1001"));
  EXPECT_TRUE(CheckPasswordStrength("abcdef1", ""));         // 7 characters
  EXPECT_TRUE(CheckPasswordStrength("abcdefgh", ""));        // no digit
  EXPECT_TRUE(CheckPasswordStrength("12345678", ""));        // no letter
  EXPECT_TRUE(CheckPasswordStrength("abc1001xyz", "1001"));  // contains the number
  EXPECT_FALSE(CheckPasswordStrength("abc1001xyz", ""));     // no number to avoid
  EXPECT_TRUE(CheckPasswordStrength("abcd 1234", ""));       // space
  EXPECT_TRUE(CheckPasswordStrength("abcd\t1234", ""));      // control character
  EXPECT_TRUE(
      CheckPasswordStrength("abcd\xc3\xa9"
                            "1234",
                            ""));  // non-ASCII
  EXPECT_TRUE(CheckPasswordStrength(std::string(120, 'a') + std::string(9, '1'), ""));
  EXPECT_FALSE(CheckPasswordStrength(std::string(120, 'a') + std::string(8, '1'), ""));
}

TEST(HashPasswordTest, VerifiesOnlyTheRightPassword) {
  Result<PasswordHash> h = HashPassword("correct horse 1");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->salt.size(), 16u);
  EXPECT_EQ(h->hash.size(), 32u);
  EXPECT_GE(h->iterations, 100'000u);
  EXPECT_TRUE(VerifyPassword("correct horse 1", *h));
  EXPECT_FALSE(VerifyPassword("correct horse 2", *h));
  EXPECT_FALSE(VerifyPassword("", *h));

  // Same password, fresh salt: a different hash.
  Result<PasswordHash> h2 = HashPassword("correct horse 1");
  ASSERT_TRUE(h2.ok());
  EXPECT_NE(h->salt, h2->salt);
  EXPECT_NE(h->hash, h2->hash);

  PasswordHash broken = *h;
  broken.iterations = 0;
  EXPECT_FALSE(VerifyPassword("correct horse 1", broken));
  broken = *h;
  broken.salt.clear();
  EXPECT_FALSE(VerifyPassword("correct horse 1", broken));
  broken = *h;
  broken.hash[0] = static_cast<char>(broken.hash[0] ^ 1);
  EXPECT_FALSE(VerifyPassword("correct horse 1", broken));
}

TEST(HashPasswordTest, MatchesAnIndependentPbkdf2) {
  // RFC 7914 §11 test vector for PBKDF2-HMAC-SHA256 ("passwd", "salt", c=1, dkLen=64), first
  // 32 bytes; VerifyPassword must agree with it for a stored hash made elsewhere.
  const unsigned char expected[32] = {0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f,
                                      0xec, 0x16, 0x91, 0xc2, 0x25, 0x44, 0xb6, 0x05,
                                      0xf9, 0x41, 0x85, 0x21, 0x6d, 0xde, 0x04, 0x65,
                                      0xe6, 0x8b, 0x9d, 0x57, 0xc2, 0x0d, 0xac, 0xbc};
  PasswordHash stored{"salt", std::string(reinterpret_cast<const char*>(expected), 32), 1};
  EXPECT_TRUE(VerifyPassword("passwd", stored));
  EXPECT_FALSE(VerifyPassword("passwe", stored));
}

TEST(DigestHa1Test, KnownVectors) {
  // Computed independently (Python hashlib) from "user:realm:password".
  EXPECT_EQ(*DigestHa1Md5("1001", "pbx", "secret"), "fcc7882872e74678a138d179252ce3f0");
  EXPECT_EQ(*DigestHa1Sha256("1001", "pbx", "secret"),
            "d81d83fb0adf4eadf06ee33f1ffa1ddd7150c49932ebcdfdbea11b9dcaa86925");
  // RFC 2617 §3.5's user and realm.
  EXPECT_EQ(*DigestHa1Md5("Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9");
  EXPECT_EQ(*DigestHa1Sha256("Mufasa", "testrealm@host.com", "Circle Of Life"),
            "3ba6cd94661c5ef34598040c868f13b8775df29109986be50ad35ae537dd3aa4");
}

TEST(EncodingTest, HexAndBase64Url) {
  EXPECT_EQ(HexEncode(std::string("\x00\x01\xab\xff", 4)), "0001abff");
  // RFC 4648 §10 vectors, without padding, in the URL alphabet.
  EXPECT_EQ(Base64UrlEncode(""), "");
  EXPECT_EQ(Base64UrlEncode("f"), "Zg");
  EXPECT_EQ(Base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(Base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(Base64UrlEncode("foob"), "Zm9vYg");
  EXPECT_EQ(Base64UrlEncode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xfb\xff\x00"}) {
    std::optional<std::string> back = Base64UrlDecode(Base64UrlEncode(s));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, s);
  }
  EXPECT_FALSE(Base64UrlDecode("Zg=="));  // padding is not used
  EXPECT_FALSE(Base64UrlDecode("Z"));     // impossible length
  EXPECT_FALSE(Base64UrlDecode("Zh"));    // non-zero leftover bits
  EXPECT_FALSE(Base64UrlDecode("Zm+v"));  // standard alphabet
}

TEST(TokenTest, MintAndVerify) {
  Result<std::string> token = MintToken("s3cret-key", "admin", "admin", 3600);
  ASSERT_TRUE(token.ok());
  Result<TokenClaims> claims = VerifyToken("s3cret-key", *token);
  ASSERT_TRUE(claims.ok()) << claims.status().ToString();
  EXPECT_EQ(claims->user, "admin");
  EXPECT_EQ(claims->role, "admin");
  EXPECT_GT(claims->expires_unix, std::time(nullptr) + 3500);
  EXPECT_LE(claims->expires_unix, std::time(nullptr) + 3600);
}

TEST(TokenTest, RejectsExpiredTamperedAndForeignTokens) {
  Result<std::string> expired = MintToken("key", "admin", "admin", -1);
  ASSERT_TRUE(expired.ok());
  EXPECT_EQ(VerifyToken("key", *expired).status().code(), Status::Code::kUnauthenticated);

  Result<std::string> token = MintToken("key", "bob", "operator", 3600);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(VerifyToken("other key", *token).status().code(), Status::Code::kUnauthenticated);
  EXPECT_EQ(VerifyToken("", *token).status().code(), Status::Code::kUnauthenticated);

  // Flip every character of the token in turn: no variant may verify.
  for (size_t i = 0; i < token->size(); ++i) {
    std::string bad = *token;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    if (bad == *token) continue;
    EXPECT_FALSE(VerifyToken("key", bad).ok()) << "position " << i;
  }

  // A payload granting another role, re-signed with the wrong key.
  std::string payload = Base64UrlEncode(R"({"u":"bob","r":"admin","e":9999999999})");
  std::string forged = payload + token->substr(token->find('.'));
  EXPECT_FALSE(VerifyToken("key", forged).ok());

  EXPECT_FALSE(VerifyToken("key", "").ok());
  EXPECT_FALSE(VerifyToken("key", ".").ok());
  EXPECT_FALSE(VerifyToken("key", "abc").ok());
  EXPECT_FALSE(MintToken("", "admin", "admin", 60).ok());
}

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(SelfSignedCertTest, WritesAVerifiableP256Certificate) {
  test::TempDir dir;
  const std::string cert_path = dir.Sub("cert.pem"), key_path = dir.Sub("key.pem");
  ASSERT_TRUE(
      GenerateSelfSignedCert(cert_path, key_path, "pbx-a", {"10.0.0.5", "pbx.example"}).ok());

  struct stat st;
  ASSERT_EQ(::stat(key_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(ReadFile(key_path).find("-----BEGIN PRIVATE KEY-----"), std::string::npos);

  FILE* f = std::fopen(cert_path.c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::unique_ptr<X509, X509Free> cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  ASSERT_TRUE(cert);

  EVP_PKEY* pub = X509_get0_pubkey(cert.get());
  ASSERT_NE(pub, nullptr);
  EXPECT_EQ(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
  char group[64] = {};
  size_t group_len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(pub, group, sizeof group, &group_len), 1);
  EXPECT_STREQ(group, "prime256v1");
  EXPECT_EQ(X509_verify(cert.get(), pub), 1);  // self-signed

  // Valid now and for (about) ten years.
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(cert.get())), 1);
  EXPECT_GE(days, 3650);
  EXPECT_LT(days, 3660);
  EXPECT_LT(X509_cmp_current_time(X509_get0_notBefore(cert.get())), 0);

  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "10.0.0.5", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "10.0.0.6", 0), 0);
  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "pbx.example", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ca(cert.get()), 0);  // not a CA

  // Regenerating replaces both files (a new key).
  std::string old_key = ReadFile(key_path);
  ASSERT_TRUE(GenerateSelfSignedCert(cert_path, key_path, "pbx-a", {}).ok());
  EXPECT_NE(ReadFile(key_path), old_key);
}

TEST(SelfSignedCertTest, RejectsBadInput) {
  test::TempDir dir;
  EXPECT_EQ(GenerateSelfSignedCert(dir.Sub("c"), dir.Sub("k"), "pbx", {"bad,name"}).code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(GenerateSelfSignedCert(dir.Sub("c"), dir.Sub("k"), std::string(65, 'x'), {}).code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(GenerateSelfSignedCert(dir.Sub("no/such/c"), dir.Sub("no/such/k"), "pbx", {}).code(),
            Status::Code::kIo);
}

}  // namespace
}  // namespace pbx::admin
