// The HTTPS certificate: what is served, and the admin's upload. Routes are listed in
// routes.h. An upload is a config record (store::CertificateRepo): it survives restarts,
// reaches the standby with replication, and goes with a backup. Every node watches that
// record and serves it to new connections at once (LiveCertificate), so neither an upload
// nor a failover needs a restart.

#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "node/admin/certificate.h"
#include "node/admin/routes.h"
#include "node/core/log.h"
#include "replication/store/repos.h"

namespace pbx::admin {
namespace {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;

constexpr size_t kMaxPemBytes = 64 * 1024;

json InfoToJson(const CertificateInfo& i, std::string_view source) {
  return json{{"source", source},
              {"subject", i.subject},
              {"issuer", i.issuer},
              {"not_before_unix", i.not_before_unix},
              {"not_after_unix", i.not_after_unix},
              {"sha256", i.sha256},
              {"names", i.names}};
}

class CertificateRoutes {
 public:
  // The handlers own this object, so it outlives `ssl` (freed first by ~SSLServer).
  CertificateRoutes(const RouteContext& ctx, SSL_CTX* ssl, std::string self_signed_file)
      : store_(ctx.store), live_(ssl), self_signed_file_(std::move(self_signed_file)) {
    Reload();
    subscription_ = store_.Subscribe(store::Table::kConfig, store::CertificateRepo::Key(),
                                     [this](const store::Change&) { Reload(); });
  }

  void Get(const Request& req, Response& res, const Principal&) const {
    Result<store::ApiCertificate> uploaded = store::CertificateRepo(store_).Get();
    if (uploaded.ok()) {
      Result<CertificateInfo> info = DescribeCertificate(uploaded->cert_pem);
      if (!info.ok()) return SendStatus(req, res, info.status());
      json body = InfoToJson(*info, "uploaded");
      body["uploaded_unix"] = uploaded->uploaded_unix;
      body["uploaded_by"] = uploaded->uploaded_by;
      return SendJson(res, 200, body);
    }
    if (!uploaded.status().IsNotFound()) return SendStatus(req, res, uploaded.status());
    Result<std::string> pem = ReadSelfSigned();
    if (!pem.ok()) return SendStatus(req, res, pem.status());
    Result<CertificateInfo> info = DescribeCertificate(*pem);
    if (!info.ok()) return SendStatus(req, res, info.status());
    SendJson(res, 200, InfoToJson(*info, "self-signed"));
  }

  void Put(const Request& req, Response& res, const Principal& who) const {
    std::optional<json> body = ParseBody(req, res);
    if (!body) return;
    store::ApiCertificate cert;
    for (auto [name, target, required] :
         {std::tuple{"key", &cert.key_pem, true}, std::tuple{"certificate", &cert.cert_pem, true},
          std::tuple{"chain", &cert.chain_pem, false}}) {
      auto it = body->find(name);
      if (it == body->end() && !required) continue;
      if (it == body->end() || !it->is_string() || it->get<std::string>().size() > kMaxPemBytes) {
        return SendFieldError(
            res, {name, fmt::format("must be PEM text of at most {} bytes", kMaxPemBytes)});
      }
      *target = it->get<std::string>();
    }
    for (const auto& [key, value] : body->items()) {
      if (key != "key" && key != "certificate" && key != "chain") {
        return SendFieldError(res, {key, "may not be set here"});
      }
    }
    std::string bad_field;
    Result<CertificateInfo> info = CheckCertificate(cert, bad_field);
    if (!info.ok()) {
      return SendFieldError(res, {bad_field, info.status().message()});
    }
    cert.uploaded_unix = NowUnix();
    cert.uploaded_by = who.user;
    store::WriteSet writes;
    store::CertificateRepo(store_).Put(cert, writes);
    AddAudit(req, who, "certificate.upload", "https", info->subject, writes);
    Result<store::SeqNo> seq = store_.Commit(writes, store::Durability::kReplicated);
    if (!seq.ok()) return SendStatus(req, res, seq.status());
    PBX_LOG(kInfo, "api", "HTTPS certificate {} (sha256 {}) uploaded by {}", info->subject,
            info->sha256, who.user);
    json reply = InfoToJson(*info, "uploaded");
    reply["uploaded_unix"] = cert.uploaded_unix;
    reply["uploaded_by"] = cert.uploaded_by;
    SendJson(res, 200, reply);
  }

 private:
  // On the committing thread (or at start): a short decode and a pointer swap.
  void Reload() {
    Result<store::ApiCertificate> cert = store::CertificateRepo(store_).Get();
    if (!cert.ok()) {
      if (!cert.status().IsNotFound()) {
        PBX_LOG(kWarn, "api", "uploaded certificate unreadable: {}", cert.status().ToString());
      }
      return;
    }
    if (Status st = live_.Use(*cert); !st.ok()) {
      PBX_LOG(kWarn, "api", "uploaded certificate not served: {}", st.ToString());
      return;
    }
    PBX_LOG(kInfo, "api", "serving the uploaded HTTPS certificate of {}", cert->uploaded_unix);
  }

  Result<std::string> ReadSelfSigned() const {
    std::FILE* f = std::fopen(self_signed_file_.c_str(), "rb");
    if (!f) return Status::Io("cannot read " + self_signed_file_);
    std::string pem;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) pem.append(buf, n);
    std::fclose(f);
    return pem;
  }

  store::StateStore& store_;
  LiveCertificate live_;
  std::string self_signed_file_;
  store::Subscription subscription_;
};

}  // namespace

void AddCertificateRoutes(httplib::SSLServer& server, const RouteContext& ctx,
                          const std::string& self_signed_file) {
  auto routes = std::make_shared<CertificateRoutes>(ctx, server.ssl_context(), self_signed_file);
  server.Get("/api/v1/certificate",
             ctx.Bind(Permission::kManageSettings, routes, &CertificateRoutes::Get));
  server.Put("/api/v1/certificate",
             ctx.Bind(Permission::kManageSettings, routes, &CertificateRoutes::Put));
}

}  // namespace pbx::admin
