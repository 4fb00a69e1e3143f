// Accounts, system settings, the audit log and the caller's own account (the extension user
// portal). Routes are listed in routes.h. Handlers run on httplib's worker threads and use
// only the thread-safe store; every change is committed together with its audit record.

#include <algorithm>
#include <array>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "node/admin/credentials.h"
#include "node/admin/extension_json.h"
#include "node/admin/routes.h"
#include "node/core/log.h"
#include "replication/store/repos.h"
#include "sip/registrar/ban_list.h"

namespace pbx::admin {
namespace {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;

constexpr size_t kMaxUserName = 32;
constexpr size_t kMaxRealm = 64;
constexpr size_t kDefaultAuditLimit = 100;
constexpr size_t kMaxAuditLimit = 1000;
// The fields each body may have. An update may send back "name" (unchanged) and
// "created_unix" as GET returned them.
constexpr std::array<std::string_view, 3> kUserCreateFields = {"name", "role", "password"};
constexpr std::array<std::string_view, 4> kUserUpdateFields = {"name", "role", "password",
                                                               "created_unix"};
constexpr std::array<std::string_view, 14> kSettingsFields = {
    "sip_realm",         "ban_enabled",    "ban_max_retries", "ban_find_time", "ban_time",
    "ban_trust_private", "ip_allow",       "ip_deny",         "ring_timeout",  "max_call_duration",
    "no_rtp_timeout",    "session_timers", "session_expires", "session_min_se"};
constexpr size_t kMaxIpListEntries = 256;
constexpr std::array<std::string_view, 1> kOwnPasswordFields = {"password"};
// Fields an extension user may change on their own extension (FEATURES.md §16: email,
// voicemail on/off, voicemail PIN, password). Forward, follow-me and DND come with the
// features that use them.
constexpr std::array<std::string_view, 4> kPortalFields = {"email", "voicemail", "voicemail_pin",
                                                           "password"};

// The first key of `body` that is not in `allowed`, as a 400 naming it.
std::optional<FieldError> UnknownField(const json& body,
                                       std::span<const std::string_view> allowed) {
  for (const auto& [key, value] : body.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return FieldError{key, fmt::format("'{}' may not be set here", key)};
    }
  }
  return std::nullopt;
}

// A user name: 1-32 of [a-z0-9._-], starting with a letter, so that it can never be an
// extension number (those log in to the portal by number).
bool IsValidUserName(std::string_view name) {
  if (name.empty() || name.size() > kMaxUserName || name[0] < 'a' || name[0] > 'z') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

bool IsValidRealm(std::string_view realm) {
  if (realm.empty() || realm.size() > kMaxRealm) return false;
  return std::all_of(realm.begin(), realm.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
  });
}

json UserToJson(const store::User& u) {
  return json{
      {"name", u.name}, {"role", store::RoleName(u.role)}, {"created_unix", u.created_unix}};
}

// Reads "role" (admin | operator | api) into `*role`; extension users are extensions.
std::optional<FieldError> ParseUserRole(const json& body, store::Role* role) {
  auto it = body.find("role");
  if (it == body.end()) return std::nullopt;
  std::optional<store::Role> r =
      it->is_string() ? store::ParseRole(it->get<std::string>()) : std::nullopt;
  if (!r || *r == store::Role::kExtension) {
    return FieldError{"role", "must be one of admin, operator, api"};
  }
  *role = *r;
  return std::nullopt;
}

// Reads "password" into `*user` as a new PBKDF2 hash, after the strength check.
std::optional<FieldError> ParseUserPassword(const json& body, store::User* user, Status* error) {
  auto it = body.find("password");
  if (it == body.end()) return std::nullopt;
  if (!it->is_string()) return FieldError{"password", "must be a string"};
  std::string password = it->get<std::string>();
  if (auto why = CheckPasswordStrength(password, user->name)) return FieldError{"password", *why};
  Result<PasswordHash> hash = HashPassword(password);
  if (!hash.ok()) {
    *error = hash.status();
    return std::nullopt;
  }
  user->password_salt = hash->salt;
  user->password_hash = hash->hash;
  user->kdf_iterations = hash->iterations;
  return std::nullopt;
}

// How many admin accounts exist; the last one may be neither deleted nor demoted, so that
// the system always has someone who can manage it.
Result<int> CountAdmins(store::StateStore& store) {
  PBX_ASSIGN_OR_RETURN(std::vector<store::User> users, store::UserRepo(store).List());
  return static_cast<int>(std::count_if(users.begin(), users.end(), [](const store::User& u) {
    return u.role == store::Role::kAdmin;
  }));
}

class AccountRoutes {
 public:
  explicit AccountRoutes(store::StateStore& store) : store_(store) {}

  void ListUsers(const Request& req, Response& res, const Principal&) const {
    Result<std::vector<store::User>> users = store::UserRepo(store_).List();
    if (!users.ok()) return SendStatus(req, res, users.status());
    json list = json::array();
    for (const store::User& u : *users) list.push_back(UserToJson(u));
    SendJson(res, 200, json{{"users", std::move(list)}});
  }

  void CreateUser(const Request& req, Response& res, const Principal& who) const {
    std::optional<json> body = ParseBody(req, res);
    if (!body) return;
    if (auto e = UnknownField(*body, kUserCreateFields)) return SendFieldError(res, *e);
    for (const char* required : {"name", "role", "password"}) {
      if (!body->contains(required)) return SendFieldError(res, {required, "is required"});
    }
    store::User user;
    const json& name = (*body)["name"];
    if (!name.is_string() || !IsValidUserName(name.get<std::string>())) {
      return SendFieldError(
          res, {"name", "must be 1-32 of a-z, 0-9, '.', '_', '-', starting with a letter"});
    }
    user.name = name.get<std::string>();
    if (auto e = ParseUserRole(*body, &user.role)) return SendFieldError(res, *e);
    Status hash_error;
    if (auto e = ParseUserPassword(*body, &user, &hash_error)) return SendFieldError(res, *e);
    if (!hash_error.ok()) return SendStatus(req, res, hash_error);
    user.created_unix = NowUnix();

    store::WriteSet writes;
    store::UserRepo(store_).Put(user, /*create=*/true, writes);
    AddAudit(req, who, "user.create", user.name, fmt::format("role={}", RoleName(user.role)),
             writes);
    if (!CommitOrReply(req, res, store_, writes, 409, fmt::format("user {} exists", user.name))) {
      return;
    }
    PBX_LOG(kInfo, "api", "user {} ({}) created by {}", user.name, RoleName(user.role), who.user);
    SendJson(res, 201, UserToJson(user));
  }

  void UpdateUser(const Request& req, Response& res, const Principal& who) const {
    const std::string name = req.matches[1];
    std::optional<json> body = ParseBody(req, res);
    if (!body) return;
    if (auto e = UnknownField(*body, kUserUpdateFields)) {
      return SendFieldError(res, *e);
    }
    Result<store::User> existing = GetUser(req, res, name);
    if (!existing.ok()) return;
    store::User user = *existing;
    if (auto it = body->find("name"); it != body->end() && *it != name) {
      return SendFieldError(res, {"name", "is immutable"});
    }
    if (auto e = ParseUserRole(*body, &user.role)) return SendFieldError(res, *e);
    Status hash_error;
    if (auto e = ParseUserPassword(*body, &user, &hash_error)) return SendFieldError(res, *e);
    if (!hash_error.ok()) return SendStatus(req, res, hash_error);
    if (existing->role == store::Role::kAdmin && user.role != store::Role::kAdmin &&
        !MoreThanOneAdmin(req, res)) {
      return;
    }

    store::WriteSet writes;
    store::UserRepo(store_).Put(user, /*create=*/false, writes);
    writes.ExpectPresent(store::Table::kConfig, store::UserRepo::Prefix() + name);
    AddAudit(req, who, "user.update", name, ChangedFields(*body), writes);
    if (!CommitOrReply(req, res, store_, writes, 404, fmt::format("user {} not found", name))) {
      return;
    }
    PBX_LOG(kInfo, "api", "user {} updated by {} ({})", name, who.user, ChangedFields(*body));
    SendJson(res, 200, UserToJson(user));
  }

  void DeleteUser(const Request& req, Response& res, const Principal& who) const {
    const std::string name = req.matches[1];
    Result<store::User> existing = GetUser(req, res, name);
    if (!existing.ok()) return;
    if (existing->role == store::Role::kAdmin && !MoreThanOneAdmin(req, res)) return;
    store::WriteSet writes;
    store::UserRepo(store_).Delete(name, writes);
    AddAudit(req, who, "user.delete", name, "", writes);
    if (!CommitOrReply(req, res, store_, writes, 404, fmt::format("user {} not found", name))) {
      return;
    }
    PBX_LOG(kInfo, "api", "user {} deleted by {}", name, who.user);
    res.status = 204;
  }

  void GetSettings(const Request& req, Response& res, const Principal&) const {
    Result<store::SystemSettings> settings = store::SettingsRepo(store_).Get();
    if (!settings.ok()) return SendStatus(req, res, settings.status());
    SendJson(res, 200, SettingsToJson(*settings));
  }

  // Only what an admin may set; the token secret and first-boot flag are the system's.
  void PutSettings(const Request& req, Response& res, const Principal& who) const {
    std::optional<json> body = ParseBody(req, res);
    if (!body) return;
    if (auto e = UnknownField(*body, kSettingsFields)) return SendFieldError(res, *e);
    Result<store::SystemSettings> settings = store::SettingsRepo(store_).Get();
    if (!settings.ok()) return SendStatus(req, res, settings.status());
    store::SystemSettings updated = *settings;
    if (auto e = ParseSettings(*body, updated)) return SendFieldError(res, *e);
    store::WriteSet writes;
    store::SettingsRepo(store_).Put(updated, writes);
    AddAudit(req, who, "settings.update", "system", ChangedFields(*body), writes);
    if (!CommitOrReply(req, res, store_, writes, 409, "settings changed meanwhile")) return;
    PBX_LOG(kInfo, "api", "settings updated by {}: {}", who.user, ChangedFields(*body));
    SendJson(res, 200, SettingsToJson(updated));
  }

  void ListAudit(const Request& req, Response& res, const Principal&) const {
    size_t limit = kDefaultAuditLimit;
    if (req.has_param("limit")) {
      std::string text = req.get_param_value("limit");
      char* end = nullptr;
      unsigned long v = std::strtoul(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || v < 1 || v > kMaxAuditLimit) {
        return SendError(res, 400, "invalid_argument",
                         fmt::format("limit must be 1-{}", kMaxAuditLimit), "limit");
      }
      limit = v;
    }
    Result<std::vector<store::AuditEntry>> entries = store::AuditRepo(store_).List(limit);
    if (!entries.ok()) return SendStatus(req, res, entries.status());
    json list = json::array();
    for (const store::AuditEntry& a : *entries) {
      list.push_back(json{{"unix_ms", a.unix_ms},
                          {"user", a.user},
                          {"role", a.role},
                          {"source", a.source},
                          {"action", a.action},
                          {"target", a.target},
                          {"detail", a.detail}});
    }
    SendJson(res, 200, json{{"entries", std::move(list)}});
  }

  void GetMe(const Request& req, Response& res, const Principal& who) const {
    json body{{"user", who.user}, {"role", store::RoleName(who.role)}};
    if (who.role == store::Role::kExtension) {
      Result<store::Extension> ext = store::ExtensionRepo(store_).Get(who.user);
      if (!ext.ok()) return SendStatus(req, res, ext.status());
      body["extension"] = ExtensionToJson(*ext);
    }
    SendJson(res, 200, body);
  }

  // The portal: an extension user changes what kPortalFields lists on their own extension;
  // a web/API account changes its own password.
  void PutMe(const Request& req, Response& res, const Principal& who) const {
    std::optional<json> body = ParseBody(req, res);
    if (!body) return;
    if (who.role != store::Role::kExtension) return PutOwnPassword(req, res, who, *body);
    if (auto e = UnknownField(*body, kPortalFields)) return SendFieldError(res, *e);
    Result<store::Extension> existing = store::ExtensionRepo(store_).Get(who.user);
    if (!existing.ok()) return SendStatus(req, res, existing.status());
    ExtensionInput in;
    if (auto e = ParseExtensionBody(*body, ExtensionWrite::kUpdate, *existing, &in)) {
      return SendFieldError(res, *e);
    }
    store::WriteSet writes;
    if (Status st = AddExtensionUpdate(store_, in, writes); !st.ok()) {
      return SendStatus(req, res, st);
    }
    AddAudit(req, who, "portal.update", who.user, ChangedFields(*body), writes);
    if (!CommitOrReply(req, res, store_, writes, 404, "your extension no longer exists")) return;
    PBX_LOG(kInfo, "api", "extension {} changed its own settings ({})", who.user,
            ChangedFields(*body));
    SendJson(res, 200,
             json{{"user", who.user},
                  {"role", store::RoleName(who.role)},
                  {"extension", ExtensionToJson(in.ext)}});
  }

 private:
  static json SettingsToJson(const store::SystemSettings& s) {
    return json{{"sip_realm", s.sip_realm},
                {"ban_enabled", s.ban_enabled},
                {"ban_max_retries", s.ban_max_retries},
                {"ban_find_time", s.ban_find_time},
                {"ban_time", s.ban_time},
                {"ban_trust_private", s.ban_trust_private},
                {"ip_allow", s.ip_allow},
                {"ip_deny", s.ip_deny},
                {"ring_timeout", s.ring_timeout},
                {"max_call_duration", s.max_call_duration},
                {"no_rtp_timeout", s.no_rtp_timeout},
                {"session_timers", s.session_timers},
                {"session_expires", s.session_expires},
                {"session_min_se", s.session_min_se}};
  }

  // Applies the fields of `body` to `s`; the first bad one as a FieldError (then `s` is
  // partly changed and must be dropped).
  static std::optional<FieldError> ParseSettings(const json& body, store::SystemSettings& s) {
    if (auto it = body.find("sip_realm"); it != body.end()) {
      if (!it->is_string() || !IsValidRealm(it->get<std::string>())) {
        return FieldError{"sip_realm", "must be 1-64 of A-Z, a-z, 0-9, '.', '-', '_'"};
      }
      s.sip_realm = it->get<std::string>();
    }
    for (auto [name, target] : {std::pair{"ban_enabled", &s.ban_enabled},
                                std::pair{"ban_trust_private", &s.ban_trust_private},
                                std::pair{"session_timers", &s.session_timers}}) {
      if (auto it = body.find(name); it != body.end()) {
        if (!it->is_boolean()) return FieldError{name, "must be true or false"};
        *target = it->get<bool>();
      }
    }
    struct Bounded {
      const char* name;
      uint32_t* target;
      uint32_t min, max;
    };
    for (const Bounded& b : {Bounded{"ban_max_retries", &s.ban_max_retries, 1, 100},
                             Bounded{"ban_find_time", &s.ban_find_time, 1, 86400},
                             Bounded{"ban_time", &s.ban_time, 60, 30 * 86400},
                             Bounded{"ring_timeout", &s.ring_timeout, 1, 600},
                             Bounded{"max_call_duration", &s.max_call_duration, 0, 86400},
                             Bounded{"no_rtp_timeout", &s.no_rtp_timeout, 0, 3600},
                             // RFC 4028 §4: neither may be below 90 s.
                             Bounded{"session_expires", &s.session_expires, 90, 7200},
                             Bounded{"session_min_se", &s.session_min_se, 90, 7200}}) {
      if (auto it = body.find(b.name); it != body.end()) {
        if (!it->is_number_unsigned() || it->get<uint64_t>() < b.min ||
            it->get<uint64_t>() > b.max) {
          return FieldError{b.name, fmt::format("must be a whole number {}-{}", b.min, b.max)};
        }
        *b.target = static_cast<uint32_t>(it->get<uint64_t>());
      }
    }
    for (auto [name, target] :
         {std::pair{"ip_allow", &s.ip_allow}, std::pair{"ip_deny", &s.ip_deny}}) {
      auto it = body.find(name);
      if (it == body.end()) continue;
      if (!it->is_array() || it->size() > kMaxIpListEntries) {
        return FieldError{name, fmt::format("must be a list of at most {} IP addresses or "
                                            "CIDR networks",
                                            kMaxIpListEntries)};
      }
      std::vector<std::string> entries;
      for (const json& e : *it) {
        if (!e.is_string() || !sip::IpNetwork::Parse(e.get<std::string>())) {
          return FieldError{name, fmt::format("{} is not an IP address or CIDR network "
                                              "(e.g. 192.0.2.7, 10.0.0.0/8, 2001:db8::/32)",
                                              e.dump())};
        }
        entries.push_back(e.get<std::string>());
      }
      *target = std::move(entries);
    }
    if (s.session_min_se > s.session_expires) {
      const char* name = body.contains("session_min_se") ? "session_min_se" : "session_expires";
      return FieldError{name, fmt::format("Min-SE ({} s) must not exceed the session interval "
                                          "({} s)",
                                          s.session_min_se, s.session_expires)};
    }
    return std::nullopt;
  }

  void PutOwnPassword(const Request& req, Response& res, const Principal& who,
                      const json& body) const {
    if (auto e = UnknownField(body, kOwnPasswordFields)) return SendFieldError(res, *e);
    if (!body.contains("password")) return SendFieldError(res, {"password", "is required"});
    Result<store::User> existing = GetUser(req, res, who.user);
    if (!existing.ok()) return;
    store::User user = *existing;
    Status hash_error;
    if (auto e = ParseUserPassword(body, &user, &hash_error)) return SendFieldError(res, *e);
    if (!hash_error.ok()) return SendStatus(req, res, hash_error);
    store::WriteSet writes;
    store::UserRepo(store_).Put(user, /*create=*/false, writes);
    writes.ExpectPresent(store::Table::kConfig, store::UserRepo::Prefix() + who.user);
    AddAudit(req, who, "user.update", who.user, "password", writes);
    if (!CommitOrReply(req, res, store_, writes, 404, "your account no longer exists")) return;
    PBX_LOG(kInfo, "api", "user {} changed their password", who.user);
    SendJson(res, 200, json{{"user", who.user}, {"role", store::RoleName(who.role)}});
  }

  // The user, or an error already sent (404 for an unknown or malformed name).
  Result<store::User> GetUser(const Request& req, Response& res, const std::string& name) const {
    Result<store::User> user =
        IsValidUserName(name) ? store::UserRepo(store_).Get(name) : Status::NotFound("");
    if (!user.ok() && user.status().IsNotFound()) {
      SendError(res, 404, "not_found", fmt::format("user {} not found", name));
    } else if (!user.ok()) {
      SendStatus(req, res, user.status());
    }
    return user;
  }

  // False (after a 409) when removing one admin would leave none.
  bool MoreThanOneAdmin(const Request& req, Response& res) const {
    Result<int> admins = CountAdmins(store_);
    if (!admins.ok()) {
      SendStatus(req, res, admins.status());
      return false;
    }
    if (*admins > 1) return true;
    SendError(res, 409, "conflict", "the last admin account cannot be removed or demoted");
    return false;
  }

  store::StateStore& store_;
};

}  // namespace

void AddAccountRoutes(httplib::Server& server, const RouteContext& ctx) {
  auto routes = std::make_shared<const AccountRoutes>(ctx.store);
  auto bind = [&](Permission permission, auto method) {
    return ctx.Bind(permission, routes, method);
  };
  constexpr const char* kUser = R"(/api/v1/users/([^/]+))";
  server.Get("/api/v1/users", bind(Permission::kManageUsers, &AccountRoutes::ListUsers));
  server.Post("/api/v1/users", bind(Permission::kManageUsers, &AccountRoutes::CreateUser));
  server.Put(kUser, bind(Permission::kManageUsers, &AccountRoutes::UpdateUser));
  server.Delete(kUser, bind(Permission::kManageUsers, &AccountRoutes::DeleteUser));
  server.Get("/api/v1/settings", bind(Permission::kManageSettings, &AccountRoutes::GetSettings));
  server.Put("/api/v1/settings", bind(Permission::kManageSettings, &AccountRoutes::PutSettings));
  server.Get("/api/v1/audit", bind(Permission::kViewAudit, &AccountRoutes::ListAudit));
  server.Get("/api/v1/me", bind(Permission::kOwnAccount, &AccountRoutes::GetMe));
  server.Put("/api/v1/me", bind(Permission::kOwnAccount, &AccountRoutes::PutMe));
}

}  // namespace pbx::admin
