// The REST API on cpp-httplib's SSLServer. Handlers run on httplib's worker threads and use
// only thread-safe objects: the StateStore (and the stateless repositories over it), the
// LoginGuard, and the immutable members set before the server starts listening.
//
// Routes (all JSON; errors are {"error": {"code", "message"[, "field"]}}):
//   POST   /api/v1/login                 no token needed; returns a bearer token
//   POST   /api/v1/session               no token needed; browser login (session cookies)
//   POST   /api/v1/logout                anyone logged in (clears the session cookies)
//   GET    /api/v1/status                admin, operator, api
//   GET    /api/v1/extensions            admin, operator, api
//   POST   /api/v1/extensions            admin, operator, api
//   GET    /api/v1/extensions/{number}   admin, operator, api
//   PUT    /api/v1/extensions/{number}   admin, operator, api
//   DELETE /api/v1/extensions/{number}   admin, operator, api
//   POST   /api/v1/cluster/switchover    admin
//   POST   /api/v1/cluster/maintenance   admin
// and the groups of users_api.cc (users, settings, audit, the portal), calls_api.cc (calls
// in progress, CDRs) and web_routes.cc (the
// web admin's static files and its public node summary). Authentication: session.h.

#include "node/admin/api_server.h"

#include <httplib.h>

#include <chrono>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "node/admin/api_http.h"
#include "node/admin/credentials.h"
#include "node/admin/extension_json.h"
#include "node/admin/login_guard.h"
#include "node/admin/routes.h"
#include "node/admin/server_thread.h"
#include "node/admin/session.h"
#include "node/core/log.h"
#include "replication/store/repos.h"

namespace pbx::admin {
namespace {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;

// Request bodies: a restore (backup_api.cc) carries the whole configuration, thousands of
// extensions; a certificate upload a key and a chain; everything else is a small JSON
// object. httplib enforces the largest; BodyLimit() each route's.
constexpr size_t kMaxBodyBytes = 8 * 1024 * 1024;
constexpr size_t kCertificateBodyBytes = 1024 * 1024;
constexpr size_t kSmallBodyBytes = 64 * 1024;

size_t BodyLimit(const std::string& path) {
  if (path == "/api/v1/restore") return kMaxBodyBytes;
  if (path == "/api/v1/certificate") return kCertificateBodyBytes;
  return kSmallBodyBytes;
}

void SendTooLarge(const Request& req, Response& res) {
  SendError(res, 413, "payload_too_large",
            fmt::format("request body too large: {} takes at most {} KiB", req.path,
                        BodyLimit(req.path) / 1024));
}
constexpr size_t kMaxUsernameLength = 64;
constexpr size_t kMaxLoginPasswordLength = 256;

class ApiServerImpl final : public ApiServer {
 public:
  ApiServerImpl(const ApiOptions& options, store::StateStore& store,
                std::function<NodeStatus()> status, ClusterOps cluster_ops)
      : options_(options),
        store_(store),
        status_(std::move(status)),
        cluster_ops_(std::move(cluster_ops)) {}
  ~ApiServerImpl() override { Stop(); }
  ApiServerImpl(const ApiServerImpl&) = delete;
  ApiServerImpl& operator=(const ApiServerImpl&) = delete;

  Status Init();
  uint16_t port() const override { return https_ ? https_->port() : 0; }
  uint16_t http_port() const override { return redirect_ ? redirect_->port() : 0; }
  void Stop() override;

 private:
  using Handler = void (ApiServerImpl::*)(const Request&, Response&, const Principal&);

  // Runs `fn`, turning any exception into a logged 500 (nothing may unwind into httplib).
  template <typename Fn>
  void Safely(const Request& req, Response& res, Fn&& fn);
  httplib::Server::Handler Guarded(Permission permission, GuardedHandler handler);
  httplib::Server::Handler Guarded(Permission permission, Handler handler);
  void Routes();
  RouteContext RouteContextFor();

  // A successful password login.
  struct Granted {
    std::string user;
    store::Role role;
    std::string token;
  };
  // Checks the body's username and password (rate limited by login_guard_); on failure sends
  // the error reply and returns nullopt.
  std::optional<Granted> PasswordLogin(const Request& req, Response& res);
  void Login(const Request& req, Response& res);
  void SessionLogin(const Request& req, Response& res);
  void Logout(const Request& req, Response& res, const Principal& who);
  void GetStatus(const Request& req, Response& res, const Principal& who);
  // Cluster operations change no record of the store, and a standby cannot write: the audit
  // record is committed first where the node can, and logged where it cannot.
  void AuditClusterOp(const Request& req, const Principal& who, std::string action,
                      std::string detail);
  void Switchover(const Request& req, Response& res, const Principal& who);
  void Maintenance(const Request& req, Response& res, const Principal& who);
  void ListExtensions(const Request& req, Response& res, const Principal& who);
  void GetExtension(const Request& req, Response& res, const Principal& who);
  void CreateExtension(const Request& req, Response& res, const Principal& who);
  void UpdateExtension(const Request& req, Response& res, const Principal& who);
  void DeleteExtension(const Request& req, Response& res, const Principal& who);
  void ListRegistrations(const Request& req, Response& res, const Principal& who);
  void ListBans(const Request& req, Response& res, const Principal& who);
  void DeleteBan(const Request& req, Response& res, const Principal& who);

  const ApiOptions options_;
  store::StateStore& store_;
  const std::function<NodeStatus()> status_;
  const ClusterOps cluster_ops_;
  LoginGuard login_guard_;
  PasswordHash absent_user_hash_;  // verified against when the user does not exist (equal timing)

  std::unique_ptr<httplib::SSLServer> server_;
  std::unique_ptr<ServerThread> https_;
  std::unique_ptr<HttpRedirect> redirect_;  // null unless ApiOptions::http_port
};

template <typename Fn>
void ApiServerImpl::Safely(const Request& req, Response& res, Fn&& fn) {
  // Checked once httplib has read the body (at most kMaxBodyBytes): refusing earlier, with
  // the body unread, resets the connection under a client that is still sending, and it
  // never sees the 413.
  if (req.body.size() > BodyLimit(req.path)) return SendTooLarge(req, res);
  try {
    fn();
  } catch (const std::exception& e) {
    PBX_LOG(kError, "api", "{} {}: unexpected exception: {}", req.method, req.path, e.what());
    SendError(res, 500, "internal", "internal error");
  } catch (...) {
    PBX_LOG(kError, "api", "{} {}: unexpected exception", req.method, req.path);
    SendError(res, 500, "internal", "internal error");
  }
}

httplib::Server::Handler ApiServerImpl::Guarded(Permission permission, GuardedHandler handler) {
  return [this, permission, handler = std::move(handler)](const Request& req, Response& res) {
    Safely(req, res, [&] {
      Result<Principal> who = Authenticate(store_, req);
      if (!who.ok()) return SendStatus(req, res, who.status());
      if (!Allowed(who->role, permission)) {
        return SendError(res, 403, "permission_denied",
                         fmt::format("role {} may not do this", store::RoleName(who->role)));
      }
      handler(req, res, *who);
    });
  };
}

httplib::Server::Handler ApiServerImpl::Guarded(Permission permission, Handler handler) {
  return Guarded(permission,
                 [this, handler](const Request& req, Response& res, const Principal& who) {
                   (this->*handler)(req, res, who);
                 });
}

std::optional<ApiServerImpl::Granted> ApiServerImpl::PasswordLogin(const Request& req,
                                                                   Response& res) {
  const auto now = LoginGuard::Clock::now();
  auto retry = login_guard_.RetryAfter(req.remote_addr, now);
  if (retry > LoginGuard::Clock::duration::zero()) {
    auto seconds = std::chrono::ceil<std::chrono::seconds>(retry).count();
    res.set_header("Retry-After", std::to_string(seconds));
    SendError(res, 429, "too_many_requests",
              fmt::format("too many failed logins; retry in {} s", seconds));
    return std::nullopt;
  }
  std::optional<json> body = ParseBody(req, res);
  if (!body) return std::nullopt;
  for (const char* field : {"username", "password"}) {
    auto it = body->find(field);
    if (it == body->end() || !it->is_string()) {
      SendError(res, 400, "invalid_argument", fmt::format("{} must be a string", field), field);
      return std::nullopt;
    }
  }
  const std::string username = (*body)["username"].get<std::string>();
  const std::string password = (*body)["password"].get<std::string>();

  Result<store::SystemSettings> settings = store::SettingsRepo(store_).Get();
  if (!settings.ok()) {
    SendStatus(req, res, settings.status());
    return std::nullopt;
  }
  if (settings->token_secret.empty()) {
    SendError(res, 503, "unavailable", "the system is not provisioned yet");
    return std::nullopt;
  }

  std::optional<store::Role> role;
  bool plausible = username.size() <= kMaxUsernameLength &&
                   password.size() <= kMaxLoginPasswordLength && !username.empty();
  Result<store::User> user =
      plausible ? store::UserRepo(store_).Get(username) : Status::NotFound("");
  if (user.ok()) {
    PasswordHash stored{user->password_salt, user->password_hash, user->kdf_iterations};
    if (VerifyPassword(password, stored)) role = user->role;
  } else if (!user.status().IsNotFound()) {
    SendStatus(req, res, user.status());
    return std::nullopt;
  } else {
    // FEATURES.md §16: an extension user logs in with its number and SIP password, if its
    // web login is enabled. Only the HA1 is stored, so we compare HA1s.
    std::optional<store::Extension> ext;
    if (plausible && IsValidExtensionNumber(username)) {
      Result<store::Extension> r = store::ExtensionRepo(store_).Get(username);
      if (r.ok()) {
        ext = std::move(r).value();
      } else if (!r.status().IsNotFound()) {
        SendStatus(req, res, r.status());
        return std::nullopt;
      }
    }
    if (ext && ext->web_login && !ext->ha1_sha256.empty()) {
      Result<std::string> ha1 = DigestHa1Sha256(username, ext->realm, password);
      if (ha1.ok() && ConstantTimeEquals(*ha1, ext->ha1_sha256)) role = store::Role::kExtension;
    } else {
      // Spend the same time as for a real account, so timing does not reveal user names.
      (void)VerifyPassword(password, absent_user_hash_);
    }
  }

  if (!role) {
    login_guard_.RecordFailure(req.remote_addr, now);
    PBX_LOG(kWarn, "api", "login failed from {}", req.remote_addr);
    SendError(res, 401, "unauthenticated", "invalid username or password");
    return std::nullopt;
  }
  login_guard_.RecordSuccess(req.remote_addr);
  std::string_view role_name = store::RoleName(*role);
  Result<std::string> token =
      MintToken(settings->token_secret, username, role_name, options_.token_ttl_seconds);
  if (!token.ok()) {
    SendStatus(req, res, token.status());
    return std::nullopt;
  }
  PBX_LOG(kInfo, "api", "login user={} role={} from {}", username, role_name, req.remote_addr);
  return Granted{username, *role, std::move(token).value()};
}

void ApiServerImpl::Login(const Request& req, Response& res) {
  Safely(req, res, [&] {
    std::optional<Granted> granted = PasswordLogin(req, res);
    if (!granted) return;
    SendJson(res, 200,
             json{{"token", granted->token},
                  {"expires", NowUnix() + options_.token_ttl_seconds},
                  {"role", store::RoleName(granted->role)}});
  });
}

// The browser's login: the same check, but the token goes into an HttpOnly cookie the page
// cannot read, and the page gets the CSRF token it must echo (session.h).
void ApiServerImpl::SessionLogin(const Request& req, Response& res) {
  Safely(req, res, [&] {
    std::optional<Granted> granted = PasswordLogin(req, res);
    if (!granted) return;
    Result<store::SystemSettings> settings = store::SettingsRepo(store_).Get();
    if (!settings.ok()) return SendStatus(req, res, settings.status());
    std::string csrf = CsrfTokenFor(settings->token_secret, granted->token);
    SetSessionCookies(res, granted->token, csrf, options_.token_ttl_seconds);
    SendJson(res, 200,
             json{{"user", granted->user},
                  {"role", store::RoleName(granted->role)},
                  {"csrf_token", csrf},
                  {"expires", NowUnix() + options_.token_ttl_seconds}});
  });
}

// Tokens are self-validating, so logging out forgets the browser's copy; a copy taken
// elsewhere stays valid until it expires (ApiOptions::token_ttl_seconds).
void ApiServerImpl::Logout(const Request& req, Response& res, const Principal& who) {
  if (who.cookie) ClearSessionCookies(res);
  PBX_LOG(kInfo, "api", "logout user={} from {}", who.user, req.remote_addr);
  res.status = 204;
}

void ApiServerImpl::GetStatus(const Request& req, Response& res, const Principal&) {
  NodeStatus s = status_ ? status_() : NodeStatus{};
  Result<std::vector<store::Extension>> extensions = store::ExtensionRepo(store_).List();
  if (!extensions.ok()) return SendStatus(req, res, extensions.status());
  json body{{"node_name", s.node_name},
            {"role", s.role},
            {"role_reason", s.role_reason},
            {"version", s.version},
            {"epoch", s.epoch},
            {"last_seq", s.last_seq},
            {"started_unix", s.started_unix},
            {"counts", {{"extensions", extensions->size()}}}};
  if (s.cluster) {
    const ClusterStatus& c = *s.cluster;
    body["cluster"] = json{
        {"peer",
         {{"name", c.peer_name},
          {"role", c.peer_role},
          {"epoch", c.peer_epoch},
          {"last_seq", c.peer_last_seq},
          {"alive", c.peer_alive},
          {"heard_ms_ago", c.peer_heard_ms_ago}}},
        {"hb_rtt_ms", c.hb_rtt_ms},
        {"lag_seqs", c.lag_seqs},
        {"lag_ms", c.lag_ms},
        {"degraded", c.degraded},
        {"degraded_since_unix", c.degraded_since_unix},
        {"vip", c.vip},
        {"vip_owner", c.vip_owner},
        {"witness", c.witness},
        {"last_failover", {{"unix", c.last_failover_unix}, {"reason", c.last_failover_reason}}}};
  }
  SendJson(res, 200, body);
}

void ApiServerImpl::AuditClusterOp(const Request& req, const Principal& who, std::string action,
                                   std::string detail) {
  store::WriteSet writes;
  AddAudit(req, who, action, "", detail, writes);
  Result<store::SeqNo> seq = store_.Commit(writes, store::Durability::kReplicated);
  if (!seq.ok()) {
    PBX_LOG(kWarn, "api", "audit {} {} by {} from {} not recorded: {}", action, detail, who.user,
            req.remote_addr, seq.status().ToString());
  }
}

void ApiServerImpl::Switchover(const Request& req, Response& res, const Principal& who) {
  if (!cluster_ops_.switchover) return SendError(res, 404, "not_found", "this node has no peer");
  PBX_LOG(kInfo, "api", "switchover requested by {}", who.user);
  AuditClusterOp(req, who, "cluster.switchover", "");
  if (Status s = cluster_ops_.switchover(); !s.ok()) return SendStatus(req, res, s);
  SendJson(res, 202, json{{"accepted", true}});
}

void ApiServerImpl::Maintenance(const Request& req, Response& res, const Principal& who) {
  if (!cluster_ops_.maintenance) return SendError(res, 404, "not_found", "this node has no peer");
  std::optional<json> body = ParseBody(req, res);
  if (!body) return;
  for (const auto& [key, value] : body->items()) {
    if (key != "on" && key != "force") {
      return SendError(res, 400, "invalid_argument", "unknown field " + key, key);
    }
    if (!value.is_boolean()) {
      return SendError(res, 400, "invalid_argument", key + " must be true or false", key);
    }
  }
  if (!body->contains("on")) return SendError(res, 400, "invalid_argument", "on is required", "on");
  bool on = (*body)["on"].get<bool>();
  bool force = body->value("force", false);
  PBX_LOG(kInfo, "api", "maintenance {} requested by {}", on ? "on" : "off", who.user);
  AuditClusterOp(req, who, "cluster.maintenance",
                 fmt::format("on={} force={}", on ? "true" : "false", force ? "true" : "false"));
  if (Status s = cluster_ops_.maintenance(on, force); !s.ok()) return SendStatus(req, res, s);
  SendJson(res, 202, json{{"accepted", true}});
}

void ApiServerImpl::ListExtensions(const Request& req, Response& res, const Principal&) {
  Result<std::vector<store::Extension>> extensions = store::ExtensionRepo(store_).List();
  if (!extensions.ok()) return SendStatus(req, res, extensions.status());
  json list = json::array();
  for (const store::Extension& ext : *extensions) list.push_back(ExtensionToJson(ext));
  SendJson(res, 200, json{{"extensions", std::move(list)}});
}

void ApiServerImpl::GetExtension(const Request& req, Response& res, const Principal&) {
  const std::string number = req.matches[1];
  if (!IsValidExtensionNumber(number)) {
    return SendError(res, 404, "not_found", fmt::format("extension {} not found", number));
  }
  Result<store::Extension> ext = store::ExtensionRepo(store_).Get(number);
  if (!ext.ok() && ext.status().IsNotFound()) {
    return SendError(res, 404, "not_found", fmt::format("extension {} not found", number));
  }
  if (!ext.ok()) return SendStatus(req, res, ext.status());
  SendJson(res, 200, ExtensionToJson(*ext));
}

void ApiServerImpl::CreateExtension(const Request& req, Response& res, const Principal& who) {
  std::optional<json> body = ParseBody(req, res);
  if (!body) return;
  ExtensionInput in;
  if (std::optional<FieldError> e =
          ParseExtensionBody(*body, ExtensionWrite::kCreate, store::Extension{}, &in)) {
    return SendFieldError(res, *e);
  }
  Result<store::SystemSettings> settings = store::SettingsRepo(store_).Get();
  if (!settings.ok()) return SendStatus(req, res, settings.status());
  if (Status st = SetCredentials(in.ext, settings->sip_realm, *in.password); !st.ok()) {
    return SendStatus(req, res, st);
  }
  in.ext.created_unix = in.ext.updated_unix = NowUnix();

  store::WriteSet writes;
  store::ExtensionRepo(store_).Put(in.ext, /*create=*/true, writes);
  AddAudit(req, who, "extension.create", in.ext.number, in.ext.name, writes);
  Result<store::SeqNo> seq = store_.Commit(writes, store::Durability::kReplicated);
  if (!seq.ok() && seq.status().code() == Status::Code::kConflict) {
    return SendError(res, 409, "conflict", fmt::format("extension {} exists", in.ext.number),
                     "number");
  }
  if (!seq.ok()) return SendStatus(req, res, seq.status());
  PBX_LOG(kInfo, "api", "extension {} created by {} at seq {}", in.ext.number, who.user, *seq);
  res.set_header("Location", "/api/v1/extensions/" + in.ext.number);
  SendJson(res, 201, ExtensionToJson(in.ext));
}

void ApiServerImpl::UpdateExtension(const Request& req, Response& res, const Principal& who) {
  const std::string number = req.matches[1];
  std::optional<json> body = ParseBody(req, res);
  if (!body) return;
  store::ExtensionRepo extensions(store_);
  Result<store::Extension> existing =
      IsValidExtensionNumber(number) ? extensions.Get(number) : Status::NotFound("");
  if (!existing.ok() && existing.status().IsNotFound()) {
    return SendError(res, 404, "not_found", fmt::format("extension {} not found", number));
  }
  if (!existing.ok()) return SendStatus(req, res, existing.status());

  ExtensionInput in;
  if (std::optional<FieldError> e =
          ParseExtensionBody(*body, ExtensionWrite::kUpdate, *existing, &in)) {
    return SendFieldError(res, *e);
  }
  store::WriteSet writes;
  if (Status st = AddExtensionUpdate(store_, in, writes); !st.ok()) {
    return SendStatus(req, res, st);
  }
  AddAudit(req, who, "extension.update", number, ChangedFields(*body), writes);
  Result<store::SeqNo> seq = store_.Commit(writes, store::Durability::kReplicated);
  if (!seq.ok() && seq.status().code() == Status::Code::kConflict) {
    return SendError(res, 404, "not_found", fmt::format("extension {} not found", number));
  }
  if (!seq.ok()) return SendStatus(req, res, seq.status());
  PBX_LOG(kInfo, "api", "extension {} updated by {} at seq {}{}", number, who.user, *seq,
          in.password ? " (new password)" : "");
  SendJson(res, 200, ExtensionToJson(in.ext));
}

void ApiServerImpl::DeleteExtension(const Request& req, Response& res, const Principal& who) {
  const std::string number = req.matches[1];
  if (!IsValidExtensionNumber(number)) {
    return SendError(res, 404, "not_found", fmt::format("extension {} not found", number));
  }
  store::WriteSet writes;
  store::ExtensionRepo(store_).Delete(number, writes);
  store::ForwardingRepo::Delete(number, writes);  // its forwarding goes with it
  AddAudit(req, who, "extension.delete", number, "", writes);
  Result<store::SeqNo> seq = store_.Commit(writes, store::Durability::kReplicated);
  if (!seq.ok() && seq.status().code() == Status::Code::kConflict) {
    return SendError(res, 404, "not_found", fmt::format("extension {} not found", number));
  }
  if (!seq.ok()) return SendStatus(req, res, seq.status());
  PBX_LOG(kInfo, "api", "extension {} deleted by {} at seq {}", number, who.user, *seq);
  res.status = 204;
}

void ApiServerImpl::ListRegistrations(const Request& req, Response& res, const Principal&) {
  Result<std::vector<store::Registration>> regs = store::RegistrationRepo(store_).List();
  if (!regs.ok()) return SendStatus(req, res, regs.status());
  json list = json::array();
  for (const store::Registration& r : *regs) {
    list.push_back({{"number", r.number},
                    {"contact", r.contact},
                    {"received", fmt::format("{}:{}", r.received_host, r.received_port)},
                    {"transport", r.transport},
                    {"path", r.path},
                    {"expires_unix", r.expires_unix},
                    {"expires_in", std::max<int64_t>(0, r.expires_unix - NowUnix())},
                    {"registered_unix", r.registered_unix},
                    {"user_agent", r.user_agent},
                    {"call_id", r.call_id},
                    {"cseq", r.cseq},
                    {"qualify_ok", r.qualify_ok},
                    {"qualify_rtt_ms", r.qualify_rtt_ms},
                    {"qualify_unix", r.qualify_unix}});
  }
  SendJson(res, 200, json{{"registrations", std::move(list)}});
}

void ApiServerImpl::ListBans(const Request& req, Response& res, const Principal&) {
  Result<std::vector<store::Ban>> bans = store::BanRepo(store_).List();
  if (!bans.ok()) return SendStatus(req, res, bans.status());
  json list = json::array();
  for (const store::Ban& b : *bans) {
    list.push_back({{"ip", b.ip},
                    {"reason", b.reason},
                    {"banned_unix", b.banned_unix},
                    {"until_unix", b.until_unix},
                    {"remaining", std::max<int64_t>(0, b.until_unix - NowUnix())},
                    {"failures", b.failures}});
  }
  SendJson(res, 200, json{{"bans", std::move(list)}});
}

void ApiServerImpl::DeleteBan(const Request& req, Response& res, const Principal& who) {
  const std::string ip = req.matches[1];
  store::WriteSet writes;
  store::BanRepo(store_).Delete(ip, /*must_exist=*/true, writes);
  Result<store::SeqNo> seq = store_.Commit(writes, store::Durability::kReplicated);
  if (!seq.ok() && seq.status().code() == Status::Code::kConflict) {
    return SendError(res, 404, "not_found", fmt::format("{} is not banned", ip));
  }
  if (!seq.ok()) return SendStatus(req, res, seq.status());
  PBX_LOG(kInfo, "api", "ban of {} lifted by {} at seq {}", ip, who.user, *seq);
  res.status = 204;
}

void ApiServerImpl::Routes() {
  constexpr const char* kExtension = R"(/api/v1/extensions/([0-9]+))";
  server_->Post("/api/v1/login", [this](const Request& req, Response& res) { Login(req, res); });
  server_->Post("/api/v1/session",
                [this](const Request& req, Response& res) { SessionLogin(req, res); });
  server_->Post("/api/v1/logout", Guarded(Permission::kOwnAccount, &ApiServerImpl::Logout));
  server_->Get("/api/v1/status", Guarded(Permission::kViewStatus, &ApiServerImpl::GetStatus));
  server_->Post("/api/v1/cluster/switchover",
                Guarded(Permission::kManageCluster, &ApiServerImpl::Switchover));
  server_->Post("/api/v1/cluster/maintenance",
                Guarded(Permission::kManageCluster, &ApiServerImpl::Maintenance));
  server_->Get("/api/v1/extensions",
               Guarded(Permission::kManageExtensions, &ApiServerImpl::ListExtensions));
  server_->Post("/api/v1/extensions",
                Guarded(Permission::kManageExtensions, &ApiServerImpl::CreateExtension));
  server_->Get(kExtension, Guarded(Permission::kManageExtensions, &ApiServerImpl::GetExtension));
  server_->Put(kExtension, Guarded(Permission::kManageExtensions, &ApiServerImpl::UpdateExtension));
  server_->Delete(kExtension,
                  Guarded(Permission::kManageExtensions, &ApiServerImpl::DeleteExtension));
  AddAccountRoutes(*server_, RouteContextFor());
  AddBackupRoutes(*server_, RouteContextFor());
  AddCertificateRoutes(*server_, RouteContextFor(), options_.cert_file);
  AddTrunkRoutes(*server_, RouteContextFor());
  AddRoutingRoutes(*server_, RouteContextFor());
  AddCallRoutes(*server_, RouteContextFor());
  AddForwardingRoutes(*server_, RouteContextFor());

  server_->Get("/api/v1/registrations",
               Guarded(Permission::kViewStatus, &ApiServerImpl::ListRegistrations));
  server_->Get("/api/v1/bans", Guarded(Permission::kManageSecurity, &ApiServerImpl::ListBans));
  server_->Delete(R"(/api/v1/bans/([0-9a-fA-F.:]{2,45}))",
                  Guarded(Permission::kManageSecurity, &ApiServerImpl::DeleteBan));

  // httplib calls this for every reply >= 400; fill in a JSON body where a route did not
  // (no route matched, payload too large, malformed request line ...).
  server_->set_error_handler([](const Request&, Response& res) {
    if (!res.body.empty()) return;
    switch (res.status) {
      case 404:
        return SendError(res, 404, "not_found", "no such endpoint");
      case 413:
        return SendError(res, 413, "invalid_argument", "request body too large");
      default:
        return SendError(res, res.status, "invalid_argument",
                         fmt::format("request rejected (HTTP {})", res.status));
    }
  });
  server_->set_logger([](const Request& req, const Response& res) {
    PBX_LOG(kDebug, "api", "{} {} -> {} from {}", req.method, req.path, res.status,
            req.remote_addr);
  });
}

Status ApiServerImpl::Init() {
  if (options_.threads < 1) return Status::InvalidArgument("ApiOptions.threads must be >= 1");
  if (options_.token_ttl_seconds < 1) {
    return Status::InvalidArgument("ApiOptions.token_ttl_seconds must be >= 1");
  }
  PBX_ASSIGN_OR_RETURN(absent_user_hash_, HashPassword("no such user"));

  server_ =
      std::make_unique<httplib::SSLServer>(options_.cert_file.c_str(), options_.key_file.c_str());
  if (!server_->is_valid()) {
    return Status::InvalidArgument(
        fmt::format("cannot load TLS certificate {} with key {} (missing, unreadable, or not a "
                    "matching pair)",
                    options_.cert_file, options_.key_file));
  }
  // httplib's API owns the queue through a raw pointer; it deletes it when listening ends.
  const size_t threads = static_cast<size_t>(options_.threads);
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_payload_max_length(kMaxBodyBytes);
  server_->set_keep_alive_timeout(5);
  server_->set_read_timeout(10);
  server_->set_write_timeout(10);
  // The web admin's pages load only their own scripts and styles and may not be framed.
  server_->set_default_headers(
      {{"Cache-Control", "no-store"},
       {"X-Content-Type-Options", "nosniff"},
       {"Referrer-Policy", "no-referrer"},
       {"Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'"}});
  Routes();
  PBX_TRY(AddWebRoutes(*server_, RouteContextFor(), options_.web_dir));

  https_ = std::make_unique<ServerThread>(*server_);
  PBX_TRY(https_->Start(options_.bind_address, options_.port));
  PBX_LOG(kInfo, "api", "listening on https://{}:{}", options_.bind_address, https_->port());
  if (options_.http_port) {
    PBX_ASSIGN_OR_RETURN(
        redirect_, StartHttpRedirect(options_.bind_address, *options_.http_port, https_->port()));
  }
  return Status::Ok();
}

RouteContext ApiServerImpl::RouteContextFor() {
  return RouteContext{store_, status_,
                      [this](Permission permission, GuardedHandler handler) {
                        return Guarded(permission, std::move(handler));
                      },
                      options_.calls};
}

void ApiServerImpl::Stop() {
  if (redirect_) redirect_->Stop();
  if (https_) https_->Stop();
}

}  // namespace

Result<std::unique_ptr<ApiServer>> ApiServer::Start(const ApiOptions& options,
                                                    store::StateStore& store,
                                                    std::function<NodeStatus()> status,
                                                    ClusterOps cluster_ops) {
  auto server =
      std::make_unique<ApiServerImpl>(options, store, std::move(status), std::move(cluster_ops));
  PBX_TRY(server->Init());
  return std::unique_ptr<ApiServer>(std::move(server));
}

}  // namespace pbx::admin
