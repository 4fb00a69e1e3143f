// Call forward, follow-me and DND of an extension (FEATURES.md §7.1, §7.2, §16): the admin's
// and operator's view of any extension, and the extension user's of their own. Routes are
// listed in routes.h. A PUT changes the fields it names; the result is checked as a whole
// and stored in one replicated commit with its audit record, or refused (400 naming the
// field) and nothing changes. sip/calls acts on the record.

#include <algorithm>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "node/admin/routes.h"
#include "node/core/log.h"
#include "replication/store/repos.h"
#include "sip/calls/feature_codes.h"

namespace pbx::admin {
namespace {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;

constexpr size_t kMaxFollowMe = 10;
constexpr uint32_t kMinRing = 5, kMaxRing = 300;

json RuleToJson(const store::ForwardRule& r) {
  return json{{"active", r.active}, {"number", r.number}};
}

json ForwardingToJson(const store::Forwarding& f) {
  json list = json::array();
  for (const store::FollowMeStep& s : f.follow_me_list) {
    list.push_back(json{{"number", s.number}, {"ring_seconds", s.ring_seconds}});
  }
  return json{{"extension", f.extension},
              {"dnd", f.dnd},
              {"dnd_status", f.dnd_status},
              {"always", RuleToJson(f.always)},
              {"busy", RuleToJson(f.busy)},
              {"no_answer", RuleToJson(f.no_answer)},
              {"ring_seconds", f.ring_seconds},
              {"follow_me", json{{"enabled", f.follow_me},
                                 {"ring_seconds", f.follow_me_ring_seconds},
                                 {"numbers", std::move(list)}}},
              {"updated_unix", f.updated_unix}};
}

// A number a phone could dial (empty: none), as the feature codes check it.
std::optional<std::string> ReadNumber(const json& v, std::string* out) {
  if (auto e = ReadString(v, out)) return e;
  if (out->empty() || sip::DialableNumber(*out)) return std::nullopt;
  return std::string("must be 1-32 of 0-9, *, # and +");
}

// The first error of `fn(value, out)` as a FieldError named `field`.
template <typename Fn>
std::optional<FieldError> Field(const std::string& field, Fn&& fn) {
  if (std::optional<std::string> e = fn()) return FieldError{field, *e};
  return std::nullopt;
}

std::optional<FieldError> NotObject(const json& v, const std::string& field) {
  if (!v.is_object()) return FieldError{field, "must be an object"};
  return std::nullopt;
}

std::optional<FieldError> ReadRule(const json& v, const std::string& field,
                                   store::ForwardRule* rule) {
  if (auto e = NotObject(v, field)) return e;
  for (const auto& [key, value] : v.items()) {
    std::optional<FieldError> e;
    if (key == "active") {
      e = Field(field + ".active", [&] { return ReadBool(value, &rule->active); });
    } else if (key == "number") {
      e = Field(field + ".number", [&] { return ReadNumber(value, &rule->number); });
    } else {
      e = FieldError{field + "." + key, fmt::format("'{}' is not a field of {}", key, field)};
    }
    if (e) return e;
  }
  return std::nullopt;
}

std::optional<FieldError> ReadFollowMe(const json& v, store::Forwarding* f) {
  if (auto e = NotObject(v, "follow_me")) return e;
  for (const auto& [key, value] : v.items()) {
    std::optional<FieldError> e;
    if (key == "enabled") {
      e = Field("follow_me.enabled", [&] { return ReadBool(value, &f->follow_me); });
    } else if (key == "ring_seconds") {
      e = Field("follow_me.ring_seconds",
                [&] { return ReadUInt(value, kMinRing, kMaxRing, &f->follow_me_ring_seconds); });
    } else if (key == "numbers") {
      if (!value.is_array()) return FieldError{"follow_me.numbers", "must be an array"};
      if (value.size() > kMaxFollowMe) {
        return FieldError{"follow_me.numbers", fmt::format("at most {} numbers", kMaxFollowMe)};
      }
      f->follow_me_list.clear();
      for (size_t i = 0; i < value.size(); ++i) {
        std::string name = fmt::format("follow_me.numbers[{}]", i);
        if (auto bad = NotObject(value[i], name)) return bad;
        store::FollowMeStep step;
        for (const auto& [k, x] : value[i].items()) {
          if (k == "number") {
            e = Field(name + ".number", [&] { return ReadNumber(x, &step.number); });
          } else if (k == "ring_seconds") {
            e = Field(name + ".ring_seconds",
                      [&] { return ReadUInt(x, kMinRing, kMaxRing, &step.ring_seconds); });
          } else {
            e = FieldError{name + "." + k, fmt::format("'{}' is not a field of a number", k)};
          }
          if (e) return e;
        }
        if (step.number.empty()) return FieldError{name + ".number", "is required"};
        f->follow_me_list.push_back(std::move(step));
      }
    } else {
      e = FieldError{"follow_me." + key, fmt::format("'{}' is not a field of follow_me", key)};
    }
    if (e) return e;
  }
  return std::nullopt;
}

// Applies `body` to `f`, then checks the whole.
std::optional<FieldError> ParseForwarding(const json& body, store::Forwarding* f) {
  for (const auto& [key, value] : body.items()) {
    std::optional<FieldError> e;
    if (key == "dnd") {
      e = Field("dnd", [&] { return ReadBool(value, &f->dnd); });
    } else if (key == "dnd_status") {
      e = Field("dnd_status", [&] { return ReadUInt(value, 400, 699, &f->dnd_status); });
      if (!e && f->dnd_status != 486 && f->dnd_status != 480 && f->dnd_status != 603) {
        e = FieldError{"dnd_status", "must be 486, 480 or 603"};
      }
    } else if (key == "always") {
      e = ReadRule(value, "always", &f->always);
    } else if (key == "busy") {
      e = ReadRule(value, "busy", &f->busy);
    } else if (key == "no_answer") {
      e = ReadRule(value, "no_answer", &f->no_answer);
    } else if (key == "ring_seconds") {
      e = Field("ring_seconds", [&] { return ReadUInt(value, 0, kMaxRing, &f->ring_seconds); });
      if (!e && f->ring_seconds != 0 && f->ring_seconds < kMinRing) {
        e = FieldError{"ring_seconds", fmt::format("must be 0 (the system ring time) or {}-{}",
                                                   kMinRing, kMaxRing)};
      }
    } else if (key == "follow_me") {
      e = ReadFollowMe(value, f);
    } else if (key != "extension" && key != "updated_unix") {  // as GET returned them
      e = FieldError{key, fmt::format("'{}' is not a forwarding setting", key)};
    }
    if (e) return e;
  }
  for (auto [rule, name] : {std::pair{&f->always, "always"}, std::pair{&f->busy, "busy"},
                            std::pair{&f->no_answer, "no_answer"}}) {
    std::string field = std::string(name) + ".number";
    if (rule->active && rule->number.empty()) return FieldError{field, "is required when active"};
    if (rule->active && rule->number == f->extension) {
      return FieldError{field, "an extension cannot forward to itself"};
    }
  }
  if (f->follow_me && f->follow_me_list.empty()) {
    return FieldError{"follow_me.numbers", "must list a number when follow-me is enabled"};
  }
  return std::nullopt;
}

class ForwardingRoutes {
 public:
  explicit ForwardingRoutes(store::StateStore& store) : store_(store) {}

  void GetAny(const Request& req, Response& res, const Principal&) const {
    Get(req, res, req.matches[1].str());
  }
  void PutAny(const Request& req, Response& res, const Principal& who) const {
    Put(req, res, who, req.matches[1].str());
  }
  void GetOwn(const Request& req, Response& res, const Principal& who) const {
    if (Own(res, who)) Get(req, res, who.user);
  }
  void PutOwn(const Request& req, Response& res, const Principal& who) const {
    if (Own(res, who)) Put(req, res, who, who.user);
  }

 private:
  static bool Own(Response& res, const Principal& who) {
    if (who.role == store::Role::kExtension) return true;
    SendError(res, 403, "forbidden", "only extension users have their own forwarding");
    return false;
  }

  // False after a 404 (or a store error) when `number` is no extension.
  bool Exists(const Request& req, Response& res, const std::string& number) const {
    Result<store::Extension> ext = store::ExtensionRepo(store_).Get(number);
    if (ext.ok()) return true;
    if (ext.status().IsNotFound()) {
      SendError(res, 404, "not_found", fmt::format("extension {} not found", number));
    } else {
      SendStatus(req, res, ext.status());
    }
    return false;
  }

  void Get(const Request& req, Response& res, const std::string& number) const {
    if (!Exists(req, res, number)) return;
    Result<store::Forwarding> f = store::ForwardingRepo(store_).Get(number);
    if (!f.ok()) return SendStatus(req, res, f.status());
    SendJson(res, 200, ForwardingToJson(*f));
  }

  void Put(const Request& req, Response& res, const Principal& who,
           const std::string& number) const {
    std::optional<json> body = ParseBody(req, res);
    if (!body || !Exists(req, res, number)) return;
    Result<store::Forwarding> f = store::ForwardingRepo(store_).Get(number);
    if (!f.ok()) return SendStatus(req, res, f.status());
    if (auto e = ParseForwarding(*body, &*f)) return SendFieldError(res, *e);
    f->updated_unix = NowUnix();
    store::WriteSet writes;
    store::ForwardingRepo::Put(*f, writes);
    // The extension must still exist when this commits (a concurrent delete wins).
    writes.ExpectPresent(store::Table::kConfig, store::ExtensionRepo::Prefix() + number);
    AddAudit(req, who, "forwarding.update", number, ChangedFields(*body), writes);
    if (!CommitOrReply(req, res, store_, writes, 404, "the extension no longer exists")) return;
    PBX_LOG(kInfo, "api", "{} changed the forwarding of {} ({})", who.user, number,
            ChangedFields(*body));
    SendJson(res, 200, ForwardingToJson(*f));
  }

  store::StateStore& store_;
};

}  // namespace

void AddForwardingRoutes(httplib::Server& server, const RouteContext& ctx) {
  auto routes = std::make_shared<const ForwardingRoutes>(ctx.store);
  constexpr const char* kAny = R"(/api/v1/extensions/([0-9]+)/forwarding)";
  server.Get(kAny, ctx.Bind(Permission::kManageExtensions, routes, &ForwardingRoutes::GetAny));
  server.Put(kAny, ctx.Bind(Permission::kManageExtensions, routes, &ForwardingRoutes::PutAny));
  server.Get("/api/v1/me/forwarding",
             ctx.Bind(Permission::kOwnAccount, routes, &ForwardingRoutes::GetOwn));
  server.Put("/api/v1/me/forwarding",
             ctx.Bind(Permission::kOwnAccount, routes, &ForwardingRoutes::PutOwn));
}

}  // namespace pbx::admin
