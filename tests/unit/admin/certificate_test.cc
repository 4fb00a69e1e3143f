// node/admin/certificate.h: the checks of an uploaded HTTPS certificate, with certificates
// made here by OpenSSL.
#include "node/admin/certificate.h"

#include <string>

#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

namespace pbx::admin {
namespace {

std::string Pem(int (*write)(BIO*, void*), void* object) {
  BIO* bio = BIO_new(BIO_s_mem());
  write(bio, object);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

// A fresh P-256 key and a self-signed certificate for `cn` valid from `from` to `to`
// seconds relative to now.
store::ApiCertificate Make(const std::string& cn, long from, long to) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), from);
  X509_gmtime_adj(X509_getm_notAfter(x), to);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_sign(x, key, EVP_sha256());
  store::ApiCertificate c;
  c.cert_pem = Pem([](BIO* b, void* o) { return PEM_write_bio_X509(b, static_cast<X509*>(o)); }, x);
  c.key_pem = Pem(
      [](BIO* b, void* o) {
        return PEM_write_bio_PrivateKey(b, static_cast<EVP_PKEY*>(o), nullptr, nullptr, 0, nullptr,
                                        nullptr);
      },
      key);
  X509_free(x);
  EVP_PKEY_free(key);
  return c;
}

TEST(CertificateTest, AValidPairIsAcceptedAndDescribed) {
  store::ApiCertificate c = Make("pbx.example.test", -60, 86400);
  c.chain_pem = Make("intermediate", -60, 86400).cert_pem;
  std::string field;
  Result<CertificateInfo> info = CheckCertificate(c, field);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->subject, "CN=pbx.example.test");
  EXPECT_EQ(info->sha256.size(), 64u);
  EXPECT_GT(info->not_after_unix, info->not_before_unix);
}

TEST(CertificateTest, EachProblemIsNamedWithItsField) {
  const store::ApiCertificate good = Make("good", -60, 86400);
  auto refused = [](const store::ApiCertificate& c, const std::string& field,
                    const std::string& words) {
    std::string bad_field;
    Result<CertificateInfo> info = CheckCertificate(c, bad_field);
    ASSERT_FALSE(info.ok()) << words;
    EXPECT_EQ(bad_field, field) << info.status().message();
    EXPECT_NE(info.status().message().find(words), std::string::npos) << info.status().message();
  };
  store::ApiCertificate c = good;
  c.key_pem = Make("other", -60, 86400).key_pem;
  refused(c, "key", "does not match");
  c = good;
  c.key_pem = "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n";
  refused(c, "key", "private key");
  c = good;
  c.cert_pem = good.cert_pem.substr(0, good.cert_pem.size() / 2);
  refused(c, "certificate", "not a PEM certificate");
  refused(Make("old", -7200, -3600), "certificate", "expired");
  refused(Make("future", 3600, 7200), "certificate", "not valid yet");
  c = good;
  c.chain_pem = "garbage";
  refused(c, "chain", "must be PEM certificates");
}

}  // namespace
}  // namespace pbx::admin
