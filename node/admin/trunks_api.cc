// SIP trunks (FEATURES.md §5.3): list with live registration state, create, show, update,
// delete. Routes are listed in routes.h. Handlers run on httplib's worker threads and use
// only the thread-safe store; every change is committed together with its audit record.
// The password is write-only: GET shows whether one is set, never the value.

#include <algorithm>
#include <array>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "node/admin/routes.h"
#include "node/core/log.h"
#include "replication/store/repos.h"

namespace pbx::admin {
namespace {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;
using Problem = std::optional<std::string>;

constexpr std::array<std::string_view, 2> kModes = {"register", "peer"};
constexpr std::array<std::string_view, 3> kTransports = {"udp", "tcp", "tls"};
constexpr std::array<std::string_view, 4> kDtmfModes = {"rfc4733", "info", "inband", "auto"};
constexpr std::array<std::string_view, 2> kCliModes = {"trunk", "extension"};
constexpr std::array<std::string_view, 5> kCodecs = {"PCMU", "PCMA", "G722", "G726", "GSM"};

bool Within(std::string_view s, size_t max, std::string_view extra) {
  return !s.empty() && s.size() <= max && std::all_of(s.begin(), s.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           extra.find(c) != std::string_view::npos;
  });
}

template <size_t N>
Problem Choice(const json& v, const std::array<std::string_view, N>& set, std::string* out) {
  std::string s;
  if (ReadString(v, &s) || std::find(set.begin(), set.end(), s) == set.end()) {
    return fmt::format("must be one of {}", fmt::join(set, ", "));
  }
  *out = std::move(s);
  return std::nullopt;
}

// A string of [A-Za-z0-9] and `extra`, 1..max long, or "" when `optional`.
Problem Token(const json& v, size_t max, std::string_view extra, bool optional, std::string* out) {
  std::string s;
  if (auto p = ReadString(v, &s)) return p;
  if (s.empty() && optional) {
    out->clear();
    return std::nullopt;
  }
  if (!Within(s, max, extra)) {
    return fmt::format("must be 1-{} characters of letters, digits and '{}'", max, extra);
  }
  *out = std::move(s);
  return std::nullopt;
}

constexpr std::string_view kHostChars = ".-:[]";
constexpr std::string_view kUserChars = "._+-!~*'()&=$,;?/%";

// The body's fields, each with its rule. "name" is set only on create.
struct TrunkField {
  std::string_view name;
  Problem (*apply)(const json& v, store::Trunk& t);
};
constexpr TrunkField kTrunkFields[] = {
    {"enabled", [](const json& v, store::Trunk& t) { return ReadBool(v, &t.enabled); }},
    {"mode", [](const json& v, store::Trunk& t) { return Choice(v, kModes, &t.mode); }},
    {"host",
     [](const json& v, store::Trunk& t) { return Token(v, 253, kHostChars, true, &t.host); }},
    {"port", [](const json& v, store::Trunk& t) { return ReadUInt(v, 1, 65535, &t.port); }},
    {"transport",
     [](const json& v, store::Trunk& t) { return Choice(v, kTransports, &t.transport); }},
    {"username",
     [](const json& v, store::Trunk& t) { return Token(v, 64, kUserChars, true, &t.username); }},
    {"auth_user",
     [](const json& v, store::Trunk& t) { return Token(v, 64, kUserChars, true, &t.auth_user); }},
    {"password",
     [](const json& v, store::Trunk& t) -> Problem {
       std::string s;
       if (auto p = ReadString(v, &s)) return p;
       if (s.size() > 128 ||
           std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
         return "must be at most 128 characters without control characters";
       }
       t.password = std::move(s);
       return std::nullopt;
     }},
    {"domain",
     [](const json& v, store::Trunk& t) { return Token(v, 253, kHostChars, true, &t.domain); }},
    {"outbound_proxy",
     [](const json& v, store::Trunk& t) {
       return Token(v, 253, kHostChars, true, &t.outbound_proxy);
     }},
    {"codecs",
     [](const json& v, store::Trunk& t) -> Problem {
       std::vector<std::string> codecs;
       if (ReadStringArray(v, &codecs) || codecs.empty() ||
           std::any_of(codecs.begin(), codecs.end(), [](const std::string& c) {
             return std::find(kCodecs.begin(), kCodecs.end(), c) == kCodecs.end();
           })) {
         return fmt::format("must be a non-empty list of {}", fmt::join(kCodecs, ", "));
       }
       t.codecs = std::move(codecs);
       return std::nullopt;
     }},
    {"dtmf_mode",
     [](const json& v, store::Trunk& t) { return Choice(v, kDtmfModes, &t.dtmf_mode); }},
    {"cli_mode", [](const json& v, store::Trunk& t) { return Choice(v, kCliModes, &t.cli_mode); }},
    {"outbound_cli",
     [](const json& v, store::Trunk& t) { return Token(v, 32, "+", true, &t.outbound_cli); }},
    {"max_calls",
     [](const json& v, store::Trunk& t) { return ReadUInt(v, 0, 10000, &t.max_calls); }},
    {"no_answer_timeout",
     [](const json& v, store::Trunk& t) { return ReadUInt(v, 0, 600, &t.no_answer_timeout); }},
    {"new_call_id_per_register",
     [](const json& v, store::Trunk& t) { return ReadBool(v, &t.new_call_id_per_register); }},
    {"expiry", [](const json& v, store::Trunk& t) { return ReadUInt(v, 10, 86400, &t.expiry); }},
    {"retry_interval",
     [](const json& v, store::Trunk& t) { return ReadUInt(v, 1, 3600, &t.retry_interval); }},
    {"max_retries",
     [](const json& v, store::Trunk& t) { return ReadUInt(v, 0, 10000, &t.max_retries); }},
    {"qualify_interval",
     [](const json& v, store::Trunk& t) { return ReadUInt(v, 0, 3600, &t.qualify_interval); }},
    {"refresh_percent",
     [](const json& v, store::Trunk& t) { return ReadUInt(v, 10, 95, &t.refresh_percent); }},
};

// Applies `body` to `t` (a new trunk's defaults, or the stored one) and checks what only
// the whole record can tell. The first problem wins; `t` is then partly changed, so the
// caller throws it away.
std::optional<FieldError> ApplyTrunkBody(const json& body, bool create, store::Trunk& t) {
  for (const auto& [key, value] : body.items()) {
    if (key == "name") {
      if (!create) {
        if (value != t.name) return FieldError{"name", "a trunk cannot be renamed"};
        continue;
      }
      if (auto p = Token(value, 32, "_-", false, &t.name)) return FieldError{"name", *p};
      continue;
    }
    if (key == "created_unix" || key == "updated_unix" || key == "has_password" ||
        key == "status") {
      continue;  // what GET returned may be sent back
    }
    auto f = std::find_if(std::begin(kTrunkFields), std::end(kTrunkFields),
                          [&](const TrunkField& tf) { return tf.name == key; });
    if (f == std::end(kTrunkFields)) {
      return FieldError{key.substr(0, 64),
                        fmt::format("'{}' is not a trunk field", key.substr(0, 64))};
    }
    if (auto p = f->apply(value, t)) return FieldError{key, *p};
  }
  if (t.name.empty()) return FieldError{"name", "a trunk needs a name"};
  if (t.host.empty()) return FieldError{"host", "a trunk needs a host"};
  if (t.mode == "register" && t.username.empty()) {
    return FieldError{"username", "a register trunk needs a username"};
  }
  if (t.mode == "register" && t.password.empty()) {
    return FieldError{"password", "a register trunk needs a password"};
  }
  if (t.transport == "tls" && !body.contains("port") && create) t.port = 5061;
  return std::nullopt;
}

json StateToJson(const std::optional<store::TrunkState>& s, const store::Trunk& t) {
  if (!t.enabled) return json{{"state", "disabled"}};
  if (!s) return json{{"state", t.mode == "register" ? "idle" : "unknown"}};
  json j{{"state", s->state.empty() ? "idle" : s->state},
         {"last_code", s->last_code},
         {"last_reason", s->last_reason},
         {"failures", s->failures},
         {"updated_unix", s->updated_unix}};
  if (s->state == "registered") j["expires_unix"] = s->expires_unix;
  if (s->qualify_unix != 0) {
    j["qualify_ok"] = s->qualify_ok;
    j["qualify_rtt_ms"] = s->qualify_rtt_ms;
  }
  return j;
}

json TrunkToJson(const store::Trunk& t, const std::optional<store::TrunkState>& s) {
  return json{{"name", t.name},
              {"enabled", t.enabled},
              {"mode", t.mode},
              {"host", t.host},
              {"port", t.port},
              {"transport", t.transport},
              {"username", t.username},
              {"auth_user", t.auth_user},
              {"has_password", !t.password.empty()},
              {"domain", t.domain},
              {"outbound_proxy", t.outbound_proxy},
              {"codecs", t.codecs},
              {"dtmf_mode", t.dtmf_mode},
              {"cli_mode", t.cli_mode},
              {"outbound_cli", t.outbound_cli},
              {"max_calls", t.max_calls},
              {"no_answer_timeout", t.no_answer_timeout},
              {"new_call_id_per_register", t.new_call_id_per_register},
              {"expiry", t.expiry},
              {"retry_interval", t.retry_interval},
              {"max_retries", t.max_retries},
              {"qualify_interval", t.qualify_interval},
              {"refresh_percent", t.refresh_percent},
              {"created_unix", t.created_unix},
              {"updated_unix", t.updated_unix},
              {"status", StateToJson(s, t)}};
}

class TrunkRoutes {
 public:
  explicit TrunkRoutes(store::StateStore& store) : store_(store) {}

  void List(const Request& req, Response& res, const Principal&) const {
    Result<std::vector<store::Trunk>> trunks = store::TrunkRepo(store_).List();
    if (!trunks.ok()) return SendStatus(req, res, trunks.status());
    Result<std::vector<store::TrunkState>> states = store::TrunkStateRepo(store_).List();
    if (!states.ok()) return SendStatus(req, res, states.status());
    json out = json::array();
    for (const store::Trunk& t : *trunks) {
      auto s = std::find_if(states->begin(), states->end(),
                            [&](const store::TrunkState& st) { return st.name == t.name; });
      out.push_back(TrunkToJson(t, s == states->end() ? std::nullopt : std::optional(*s)));
    }
    SendJson(res, 200, json{{"trunks", out}});
  }

  void Show(const Request& req, Response& res, const Principal&) const {
    Result<store::Trunk> t = Find(req, res);
    if (!t.ok()) return;
    Result<store::TrunkState> s = store::TrunkStateRepo(store_).Get(t->name);
    SendJson(res, 200, TrunkToJson(*t, s.ok() ? std::optional(*s) : std::nullopt));
  }

  void Create(const Request& req, Response& res, const Principal& who) const {
    std::optional<json> body = ParseBody(req, res);
    if (!body) return;
    store::Trunk t;
    if (auto e = ApplyTrunkBody(*body, /*create=*/true, t)) return SendFieldError(res, *e);
    t.created_unix = t.updated_unix = NowUnix();
    store::WriteSet writes;
    store::TrunkRepo(store_).Put(t, /*create=*/true, writes);
    AddAudit(req, who, "trunk.create", t.name, fmt::format("{} {}", t.mode, t.host), writes);
    if (!CommitOrReply(req, res, store_, writes, 409,
                       fmt::format("trunk {} already exists", t.name)))
      return;
    PBX_LOG(kInfo, "api", "trunk {} created ({} {})", t.name, t.mode, t.host);
    SendJson(res, 201, TrunkToJson(t, std::nullopt));
  }

  void Update(const Request& req, Response& res, const Principal& who) const {
    std::optional<json> body = ParseBody(req, res);
    if (!body) return;
    Result<store::Trunk> t = Find(req, res);
    if (!t.ok()) return;
    if (auto e = ApplyTrunkBody(*body, /*create=*/false, *t)) return SendFieldError(res, *e);
    t->updated_unix = NowUnix();
    store::WriteSet writes;
    store::TrunkRepo(store_).Put(*t, /*create=*/false, writes);
    writes.ExpectPresent(store::Table::kConfig, store::TrunkRepo::Prefix() + t->name);
    AddAudit(req, who, "trunk.update", t->name, ChangedFields(*body), writes);
    if (!CommitOrReply(req, res, store_, writes, 404, fmt::format("trunk {} not found", t->name)))
      return;
    SendJson(res, 200, TrunkToJson(*t, std::nullopt));
  }

  void Delete(const Request& req, Response& res, const Principal& who) const {
    std::string name = req.matches[1];
    store::WriteSet writes;
    store::TrunkRepo(store_).Delete(name, writes);
    store::TrunkStateRepo(store_).Delete(name, writes);
    AddAudit(req, who, "trunk.delete", name, "", writes);
    if (!CommitOrReply(req, res, store_, writes, 404, fmt::format("trunk {} not found", name)))
      return;
    PBX_LOG(kInfo, "api", "trunk {} deleted", name);
    res.status = 204;
  }

 private:
  Result<store::Trunk> Find(const Request& req, Response& res) const {
    std::string name = req.matches[1];
    Result<store::Trunk> t = store::TrunkRepo(store_).Get(name);
    if (!t.ok() && t.status().IsNotFound()) {
      SendError(res, 404, "not_found", fmt::format("trunk {} not found", name));
    } else if (!t.ok()) {
      SendStatus(req, res, t.status());
    }
    return t;
  }

  store::StateStore& store_;
};

}  // namespace

void AddTrunkRoutes(httplib::Server& server, const RouteContext& ctx) {
  auto routes = std::make_shared<const TrunkRoutes>(ctx.store);
  auto bind = [&](Permission permission, auto method) {
    return ctx.Bind(permission, routes, method);
  };
  constexpr const char* kTrunk = R"(/api/v1/trunks/([A-Za-z0-9_-]{1,32}))";
  // Trunks are managed by the roles that manage extensions (admin, operator, api).
  server.Get("/api/v1/trunks", bind(Permission::kViewStatus, &TrunkRoutes::List));
  server.Post("/api/v1/trunks", bind(Permission::kManageExtensions, &TrunkRoutes::Create));
  server.Get(kTrunk, bind(Permission::kViewStatus, &TrunkRoutes::Show));
  server.Put(kTrunk, bind(Permission::kManageExtensions, &TrunkRoutes::Update));
  server.Delete(kTrunk, bind(Permission::kManageExtensions, &TrunkRoutes::Delete));
}

}  // namespace pbx::admin
