// The REST API on cpp-httplib's SSLServer. Handlers run on httplib's worker threads and use
// only thread-safe objects: the StateStore (and the stateless repositories over it), the
// LoginGuard, and the immutable members set before the server starts listening.
//
// Routes (all JSON; errors are {"error": {"code", "message"[, "field"]}}):
//   POST   /api/v1/login                 no token needed
//   GET    /api/v1/status                admin, operator, api
//   GET    /api/v1/extensions            admin, operator, api
//   POST   /api/v1/extensions            admin, operator, api
//   GET    /api/v1/extensions/{number}   admin, operator, api
//   PUT    /api/v1/extensions/{number}   admin, operator, api
//   DELETE /api/v1/extensions/{number}   admin, operator, api

#include "node/admin/api_server.h"

#include <httplib.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>

#include "node/admin/credentials.h"
#include "node/admin/extension_json.h"
#include "node/admin/login_guard.h"
#include "node/core/log.h"
#include "replication/store/repos.h"

namespace pbx::admin {
namespace {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;

constexpr size_t kMaxBodyBytes = 64 * 1024;
constexpr auto kStartDeadline = std::chrono::seconds(5);
constexpr size_t kMaxUsernameLength = 64;
constexpr size_t kMaxLoginPasswordLength = 256;

// What the API lets a role do. Extension users get the portal, which has its own endpoints.
enum class Permission { kViewStatus, kManageExtensions, kManageCluster, kManageSecurity };

bool Allowed(store::Role role, Permission permission) {
  switch (role) {
    case store::Role::kAdmin:
      return true;
    case store::Role::kOperator:
    case store::Role::kApi:
      return permission == Permission::kViewStatus || permission == Permission::kManageExtensions ||
             permission == Permission::kManageSecurity;
    case store::Role::kExtension:
      return false;
  }
  return false;
}

// The authenticated caller of a request.
struct Principal {
  std::string user;
  store::Role role;
};

int64_t NowUnix() { return static_cast<int64_t>(std::time(nullptr)); }

// Never throws: a value from the store that is not valid UTF-8 is replaced, not fatal.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void SendJson(Response& res, int http_status, const json& body) {
  res.status = http_status;
  res.set_content(Dump(body), "application/json");
}

void SendError(Response& res, int http_status, std::string_view code, std::string_view message,
               std::string_view field = {}) {
  json error = {{"code", code}, {"message", message}};
  if (!field.empty()) error["field"] = field;
  if (http_status == 401) res.set_header("WWW-Authenticate", "Bearer realm=\"pbx\"");
  SendJson(res, http_status, json{{"error", std::move(error)}});
}

void SendFieldError(Response& res, const FieldError& e) {
  SendError(res, 400, "invalid_argument", e.field.empty() ? e.message : e.field + " " + e.message,
            e.field);
}

// Maps a Status to the HTTP reply. Internal details (store corruption, I/O) are logged and
// replaced by a generic message.
void SendStatus(const Request& req, Response& res, const Status& st, std::string_view field = {}) {
  switch (st.code()) {
    case Status::Code::kInvalidArgument:
      return SendError(res, 400, "invalid_argument", st.message(), field);
    case Status::Code::kUnauthenticated:
      return SendError(res, 401, "unauthenticated", st.message());
    case Status::Code::kPermissionDenied:
      return SendError(res, 403, "permission_denied", st.message());
    case Status::Code::kNotFound:
      return SendError(res, 404, "not_found", st.message(), field);
    case Status::Code::kConflict:
      return SendError(res, 409, "conflict", st.message(), field);
    case Status::Code::kUnavailable:
    case Status::Code::kTimeout:
      PBX_LOG(kWarn, "api", "{} {}: {}", req.method, req.path, st.ToString());
      return SendError(res, 503, "unavailable", st.message());
    case Status::Code::kOk:
    case Status::Code::kCorruption:
    case Status::Code::kIo:
    case Status::Code::kInternal:
      break;
  }
  PBX_LOG(kError, "api", "{} {}: {}", req.method, req.path, st.ToString());
  SendError(res, 500, "internal", "internal error");
}

// The request body as JSON, or nullopt after sending 400.
std::optional<json> ParseBody(const Request& req, Response& res) {
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    SendError(res, 400, "invalid_argument", "body is not valid JSON");
    return std::nullopt;
  }
  if (!body.is_object()) {
    SendError(res, 400, "invalid_argument", "body must be a JSON object");
    return std::nullopt;
  }
  return body;
}

// Sets both HA1 values of `ext` for `password` under `realm`.
Status SetCredentials(store::Extension& ext, const std::string& realm,
                      const std::string& password) {
  ext.realm = realm;
  PBX_ASSIGN_OR_RETURN(ext.ha1_md5, DigestHa1Md5(ext.number, realm, password));
  PBX_ASSIGN_OR_RETURN(ext.ha1_sha256, DigestHa1Sha256(ext.number, realm, password));
  return Status::Ok();
}

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
  uint16_t port() const override { return port_; }
  void Stop() override;

 private:
  using Handler = void (ApiServerImpl::*)(const Request&, Response&, const Principal&);

  // Runs `fn`, turning any exception into a logged 500 (nothing may unwind into httplib).
  template <typename Fn>
  void Safely(const Request& req, Response& res, Fn&& fn);
  httplib::Server::Handler Guarded(Permission permission, Handler handler);
  Result<Principal> Authenticate(const Request& req) const;
  void Routes();

  void Login(const Request& req, Response& res);
  void GetStatus(const Request& req, Response& res, const Principal& who);
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
  PasswordHash dummy_hash_;  // verified against when the user does not exist (equal timing)

  std::unique_ptr<httplib::SSLServer> server_;
  uint16_t port_ = 0;
  std::thread listener_;
  std::atomic<bool> listener_done_{false};
  std::mutex stop_mu_;
  bool stopped_ = false;  // GUARDED_BY(stop_mu_)
};

template <typename Fn>
void ApiServerImpl::Safely(const Request& req, Response& res, Fn&& fn) {
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

httplib::Server::Handler ApiServerImpl::Guarded(Permission permission, Handler handler) {
  return [this, permission, handler](const Request& req, Response& res) {
    Safely(req, res, [&] {
      Result<Principal> who = Authenticate(req);
      if (!who.ok()) return SendStatus(req, res, who.status());
      if (!Allowed(who->role, permission)) {
        return SendError(res, 403, "permission_denied",
                         fmt::format("role {} may not do this", store::RoleName(who->role)));
      }
      (this->*handler)(req, res, *who);
    });
  };
}

Result<Principal> ApiServerImpl::Authenticate(const Request& req) const {
  const Status denied = Status::Unauthenticated("missing, invalid or expired bearer token");
  std::string header = req.get_header_value("Authorization");
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size()) return denied;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return denied;
  }
  std::string_view token = std::string_view(header).substr(kScheme.size());

  PBX_ASSIGN_OR_RETURN(store::SystemSettings settings, store::SettingsRepo(store_).Get());
  Result<TokenClaims> claims = VerifyToken(settings.token_secret, token);
  if (!claims.ok()) return denied;

  // The account's current role counts, not the one in the token, and a deleted account's
  // tokens stop working at once.
  Result<store::User> user = store::UserRepo(store_).Get(claims->user);
  if (user.ok()) return Principal{user->name, user->role};
  if (!user.status().IsNotFound()) return user.status();
  if (claims->role == store::RoleName(store::Role::kExtension)) {
    Result<store::Extension> ext = store::ExtensionRepo(store_).Get(claims->user);
    if (ext.ok() && ext->web_login) return Principal{ext->number, store::Role::kExtension};
    if (!ext.ok() && !ext.status().IsNotFound()) return ext.status();
  }
  return denied;
}

void ApiServerImpl::Login(const Request& req, Response& res) {
  Safely(req, res, [&] {
    const auto now = LoginGuard::Clock::now();
    auto retry = login_guard_.RetryAfter(req.remote_addr, now);
    if (retry > LoginGuard::Clock::duration::zero()) {
      auto seconds = std::chrono::ceil<std::chrono::seconds>(retry).count();
      res.set_header("Retry-After", std::to_string(seconds));
      return SendError(res, 429, "too_many_requests",
                       fmt::format("too many failed logins; retry in {} s", seconds));
    }
    std::optional<json> body = ParseBody(req, res);
    if (!body) return;
    for (const char* field : {"username", "password"}) {
      auto it = body->find(field);
      if (it == body->end() || !it->is_string()) {
        return SendError(res, 400, "invalid_argument", fmt::format("{} must be a string", field),
                         field);
      }
    }
    const std::string username = (*body)["username"].get<std::string>();
    const std::string password = (*body)["password"].get<std::string>();

    Result<store::SystemSettings> settings = store::SettingsRepo(store_).Get();
    if (!settings.ok()) return SendStatus(req, res, settings.status());
    if (settings->token_secret.empty()) {
      return SendError(res, 503, "unavailable", "the system is not provisioned yet");
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
      return SendStatus(req, res, user.status());
    } else {
      // FEATURES.md §16: an extension user logs in with its number and SIP password, if its
      // web login is enabled. Only the HA1 is stored, so we compare HA1s.
      std::optional<store::Extension> ext;
      if (plausible && IsValidExtensionNumber(username)) {
        Result<store::Extension> r = store::ExtensionRepo(store_).Get(username);
        if (r.ok()) {
          ext = std::move(r).value();
        } else if (!r.status().IsNotFound()) {
          return SendStatus(req, res, r.status());
        }
      }
      if (ext && ext->web_login && !ext->ha1_sha256.empty()) {
        Result<std::string> ha1 = DigestHa1Sha256(username, ext->realm, password);
        if (ha1.ok() && ConstantTimeEquals(*ha1, ext->ha1_sha256)) role = store::Role::kExtension;
      } else {
        // Spend the same time as for a real account, so timing does not reveal user names.
        (void)VerifyPassword(password, dummy_hash_);
      }
    }

    if (!role) {
      login_guard_.RecordFailure(req.remote_addr, now);
      PBX_LOG(kWarn, "api", "login failed from {}", req.remote_addr);
      return SendError(res, 401, "unauthenticated", "invalid username or password");
    }
    login_guard_.RecordSuccess(req.remote_addr);
    std::string_view role_name = store::RoleName(*role);
    Result<std::string> token =
        MintToken(settings->token_secret, username, role_name, options_.token_ttl_seconds);
    if (!token.ok()) return SendStatus(req, res, token.status());
    PBX_LOG(kInfo, "api", "login user={} role={} from {}", username, role_name, req.remote_addr);
    SendJson(res, 200,
             json{{"token", *token},
                  {"expires", NowUnix() + options_.token_ttl_seconds},
                  {"role", role_name}});
  });
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

void ApiServerImpl::Switchover(const Request& req, Response& res, const Principal& who) {
  if (!cluster_ops_.switchover) return SendError(res, 404, "not_found", "this node has no peer");
  PBX_LOG(kInfo, "api", "switchover requested by {}", who.user);
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
  if (in.password) {
    // A new password is hashed under the realm in force now, which may differ from the
    // realm of the old HA1 values if the admin changed it since.
    Result<store::SystemSettings> settings = store::SettingsRepo(store_).Get();
    if (!settings.ok()) return SendStatus(req, res, settings.status());
    if (Status st = SetCredentials(in.ext, settings->sip_realm, *in.password); !st.ok()) {
      return SendStatus(req, res, st);
    }
  }
  in.ext.updated_unix = NowUnix();

  store::WriteSet writes;
  extensions.Put(in.ext, /*create=*/false, writes);
  // Without this, an update racing a delete would bring the extension back. The key layout
  // is the one repos.cc documents: ExtensionRepo::Prefix() + number.
  writes.ExpectPresent(store::Table::kConfig, store::ExtensionRepo::Prefix() + number);
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
  PBX_ASSIGN_OR_RETURN(dummy_hash_, HashPassword("no such user"));

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
  server_->set_default_headers({{"Cache-Control", "no-store"}});
  // httplib's default sets SO_REUSEPORT, which would let a second pbxd bind the same port and
  // silently take half the connections; SO_REUSEADDR alone still allows a quick restart.
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  Routes();

  if (options_.port == 0) {
    int port = server_->bind_to_any_port(options_.bind_address);
    if (port <= 0) {
      return Status::Unavailable(fmt::format("cannot bind {}:0", options_.bind_address));
    }
    port_ = static_cast<uint16_t>(port);
  } else {
    if (!server_->bind_to_port(options_.bind_address, options_.port)) {
      return Status::Unavailable(fmt::format("cannot bind {}:{} (in use or not permitted?)",
                                             options_.bind_address, options_.port));
    }
    port_ = options_.port;
  }

  listener_ = std::thread([this] {
    try {
      server_->listen_after_bind();
    } catch (const std::exception& e) {
      PBX_LOG(kError, "api", "listener thread: unexpected exception: {}", e.what());
      std::abort();
    } catch (...) {
      PBX_LOG(kError, "api", "listener thread: unexpected exception");
      std::abort();
    }
    listener_done_ = true;
  });
  // httplib 0.11 has no wait_until_ready(): poll is_running() against a deadline.
  const auto deadline = std::chrono::steady_clock::now() + kStartDeadline;
  while (!server_->is_running()) {
    if (listener_done_ || std::chrono::steady_clock::now() > deadline) {
      Stop();
      return Status::Unavailable(
          fmt::format("API server on {}:{} did not start", options_.bind_address, port_));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  PBX_LOG(kInfo, "api", "listening on https://{}:{}", options_.bind_address, port_);
  return Status::Ok();
}

void ApiServerImpl::Stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  if (!listener_.joinable()) return;
  // httplib's stop() does nothing before the listener runs, and must be called only once;
  // the listener marks itself running first thing, so this wait is short.
  while (!server_->is_running() && !listener_done_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_->stop();
  listener_.join();
  PBX_LOG(kInfo, "api", "stopped listening on {}:{}", options_.bind_address, port_);
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
