#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include "node/core/status.h"
#include "replication/store/repos.h"

// The HTTPS certificate: checking an uploaded one with OpenSSL, and serving it from the
// running listener without a restart. Internal to pbx_admin.
namespace pbx::admin {

// What a certificate says (GET/PUT /api/v1/certificate).
struct CertificateInfo {
  std::string subject;
  std::string issuer;
  int64_t not_before_unix = 0;
  int64_t not_after_unix = 0;
  std::string sha256;              // fingerprint of the DER, lower-case hex
  std::vector<std::string> names;  // subjectAltName DNS and IP entries
};

// Describes the first certificate of `cert_pem`. InvalidArgument if it does not parse.
Result<CertificateInfo> DescribeCertificate(const std::string& cert_pem);

// Checks an upload: the key and the certificate parse, the key matches the certificate, the
// certificate is valid now, the chain (if any) is PEM certificates. InvalidArgument saying
// what is wrong with the field that `bad_field` ("key", "certificate" or "chain") names.
Result<CertificateInfo> CheckCertificate(const store::ApiCertificate& cert, std::string& bad_field);

// Makes every new TLS handshake on `ctx` use the certificate last given to Use(), or the
// context's own (the self-signed one) until then. Thread-safe: handshakes run on httplib's
// threads, Use() on whichever thread saw the store change. Must outlive `ctx`'s handshakes.
class LiveCertificate {
 public:
  explicit LiveCertificate(SSL_CTX* ctx);
  LiveCertificate(const LiveCertificate&) = delete;
  LiveCertificate& operator=(const LiveCertificate&) = delete;
  // Loads `cert` (already checked) for the next handshakes.
  Status Use(const store::ApiCertificate& cert);

 private:
  struct Loaded;
  static int OnHandshake(SSL* ssl, void* self);
  std::mutex mu_;
  std::shared_ptr<const Loaded> current_;  // null: the context's own certificate
};

}  // namespace pbx::admin
