#include "node/admin/certificate.h"

#include <ctime>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "node/admin/credentials.h"

namespace pbx::admin {
namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// The PEM certificates of `pem` in order; an empty vector if one does not parse.
std::vector<X509Ptr> ReadCertificates(const std::string& pem) {
  std::vector<X509Ptr> out;
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  ERR_clear_error();  // the end of the input is reported as an error
  return out;
}

PkeyPtr ReadKey(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  // No passphrase callback: an encrypted key fails here (the node could not unlock it).
  PkeyPtr key(PEM_read_bio_PrivateKey(
      bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
  ERR_clear_error();
  return key;
}

std::string Name(const X509_NAME* name) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

int64_t Unix(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

CertificateInfo Describe(X509* x) {
  CertificateInfo info;
  info.subject = Name(X509_get_subject_name(x));
  info.issuer = Name(X509_get_issuer_name(x));
  info.not_before_unix = Unix(X509_get0_notBefore(x));
  info.not_after_unix = Unix(X509_get0_notAfter(x));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(x, EVP_sha256(), md, &len) == 1) {
    info.sha256 = HexEncode(std::string_view(reinterpret_cast<const char*>(md), len));
  }
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
    if (n->type == GEN_DNS) {
      const ASN1_IA5STRING* s = n->d.dNSName;
      info.names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                              ASN1_STRING_length(s));
    } else if (n->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = n->d.iPAddress;
      char text[64] = {};
      int family = ASN1_STRING_length(ip) == 4 ? AF_INET : AF_INET6;
      if (inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof text)) {
        info.names.emplace_back(text);
      }
    }
  }
  GENERAL_NAMES_free(sans);
  return info;
}

}  // namespace

Result<CertificateInfo> DescribeCertificate(const std::string& cert_pem) {
  std::vector<X509Ptr> certs = ReadCertificates(cert_pem);
  if (certs.empty()) return Status::InvalidArgument("not a PEM certificate");
  return Describe(certs.front().get());
}

Result<CertificateInfo> CheckCertificate(const store::ApiCertificate& cert,
                                         std::string& bad_field) {
  PkeyPtr key = ReadKey(cert.key_pem);
  if (!key) {
    bad_field = "key";
    return Status::InvalidArgument("is not an unencrypted PEM private key");
  }
  std::vector<X509Ptr> certs = ReadCertificates(cert.cert_pem);
  if (certs.size() != 1) {
    bad_field = "certificate";
    return Status::InvalidArgument(certs.empty()
                                       ? "is not a PEM certificate"
                                       : "must be one certificate; intermediates go in chain");
  }
  X509* x = certs.front().get();
  if (X509_check_private_key(x, key.get()) != 1) {
    ERR_clear_error();
    bad_field = "key";
    return Status::InvalidArgument("does not match the certificate");
  }
  if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
    bad_field = "certificate";
    return Status::InvalidArgument("has expired");
  }
  if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
    bad_field = "certificate";
    return Status::InvalidArgument("is not valid yet");
  }
  if (!cert.chain_pem.empty() && ReadCertificates(cert.chain_pem).empty()) {
    bad_field = "chain";
    return Status::InvalidArgument("must be PEM certificates");
  }
  return Describe(x);
}

struct LiveCertificate::Loaded {
  X509Ptr cert;
  PkeyPtr key;
  std::vector<X509Ptr> chain;
};

LiveCertificate::LiveCertificate(SSL_CTX* ctx) { SSL_CTX_set_cert_cb(ctx, &OnHandshake, this); }

Status LiveCertificate::Use(const store::ApiCertificate& cert) {
  auto loaded = std::make_shared<Loaded>();
  std::vector<X509Ptr> certs = ReadCertificates(cert.cert_pem);
  loaded->key = ReadKey(cert.key_pem);
  if (certs.empty() || !loaded->key) {
    return Status::InvalidArgument("the stored certificate or key does not parse");
  }
  loaded->cert = std::move(certs.front());
  loaded->chain = ReadCertificates(cert.chain_pem);
  std::lock_guard lock(mu_);
  current_ = std::move(loaded);
  return Status::Ok();
}

int LiveCertificate::OnHandshake(SSL* ssl, void* self) {
  auto* live = static_cast<LiveCertificate*>(self);
  std::shared_ptr<const Loaded> c;
  {
    std::lock_guard lock(live->mu_);
    c = live->current_;
  }
  if (!c) return 1;  // the context's own certificate
  if (SSL_use_certificate(ssl, c->cert.get()) != 1 || SSL_use_PrivateKey(ssl, c->key.get()) != 1 ||
      SSL_clear_chain_certs(ssl) != 1) {
    return 0;  // fails this handshake only
  }
  for (const X509Ptr& x : c->chain) {
    if (SSL_add1_chain_cert(ssl, x.get()) != 1) return 0;
  }
  return 1;
}

}  // namespace pbx::admin
