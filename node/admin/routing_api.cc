// The dial plan (FEATURES.md §4.3-4.7, §5.6-5.9): outbound routes, dial permissions, PIN
// sets, time conditions, DID routes, per-trunk inbound routes, the blacklist, and the
// routing settings (anonymous blocking, office pause). One CRUD shape for every kind
// (DialPlanRoutes<T>), with per-kind JSON and checks. Every check that involves other
// records (a trunk, a route, a destination) reads the store, and the commit requires what
// was checked to exist for the record itself; references are checked, not locked.
// Routes are listed in routes.h. httplib worker threads; the store is thread-safe.

#include <algorithm>
#include <array>
#include <cstdio>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "node/admin/routes.h"
#include "node/core/log.h"
#include "replication/store/repos.h"
#include "sip/routing/routing.h"

namespace pbx::admin {
namespace {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;
using Error = std::optional<FieldError>;
namespace routing = sip::routing;

// Returns the FieldError of `expr`, if any.
#define PBX_RETURN_IF_ERROR_FIELD(expr) \
  do {                                  \
    if (Error e_ = (expr)) return e_;   \
  } while (0)

constexpr std::array<std::string_view, 7> kDays = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

bool IsName(std::string_view s) {
  return !s.empty() && s.size() <= 32 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

bool IsDialString(std::string_view s, std::string_view extra = "") {
  return s.size() <= 32 && std::all_of(s.begin(), s.end(), [&](char c) {
           return (c >= '0' && c <= '9') || extra.find(c) != std::string_view::npos;
         });
}

// Reads body[key] with `read` when present; a problem names the field.
template <typename Fn>
Error Field(const json& body, const char* key, Fn read) {
  auto it = body.find(key);
  if (it == body.end()) return std::nullopt;
  if (std::optional<std::string> p = read(*it)) return FieldError{key, *p};
  return std::nullopt;
}

Error UnknownFields(const json& body, std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : body.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string k = key.substr(0, 64);
      return FieldError{k, fmt::format("'{}' is not a field here", k)};
    }
  }
  return std::nullopt;
}

json DestinationJson(const routing::Destination& d) { return json{{"type", d.type}, {"id", d.id}}; }

std::optional<std::string> ReadDestination(const json& v, routing::Destination* d) {
  if (!v.is_object() || !v.contains("type") || !v["type"].is_string() ||
      (v.contains("id") && !v["id"].is_string())) {
    return "must be {\"type\": ..., \"id\": ...}";
  }
  d->type = v["type"].get<std::string>();
  d->id = v.value("id", "");
  return std::nullopt;
}

// The destination types known today. Later types (ring group, IVR, queue, voicemail)
// register here, with no change to routing.
routing::DestinationTypes Destinations(store::StateStore& st) {
  routing::DestinationTypes types;
  types.Register("extension",
                 [&st](const std::string& id) { return store::ExtensionRepo(st).Get(id).ok(); });
  types.Register("time_condition", [&st](const std::string& id) {
    return store::TimeConditionRepo(st).Get(id).ok();
  });
  types.Register("hangup", [](const std::string& id) { return id.empty(); });
  return types;
}

Error CheckDestination(store::StateStore& st, const char* field, const routing::Destination& d) {
  Status s = Destinations(st).Validate(d);
  if (!s.ok()) return FieldError{field, s.message()};
  return std::nullopt;
}

Error CheckTrunk(store::StateStore& st, const char* field, const std::string& trunk) {
  if (store::TrunkRepo(st).Get(trunk).ok()) return std::nullopt;
  return FieldError{field, fmt::format("no trunk '{}'", trunk)};
}

Error CheckPattern(const char* field, const std::string& pattern) {
  if (pattern.empty()) return std::nullopt;
  Status s = routing::DialPattern::Parse(pattern).status();
  if (!s.ok()) return FieldError{field, s.message()};
  return std::nullopt;
}

// --- per kind: JSON in and out, and the checks ---

json ToJson(const routing::OutboundRoute& r) {
  json rules = json::array();
  for (const auto& rule : r.rules) {
    rules.push_back(
        {{"prefix", rule.prefix}, {"pattern", rule.pattern}, {"prepend", rule.prepend}});
  }
  return json{{"name", r.name},
              {"rules", rules},
              {"trunks", r.trunks},
              {"caller_id", r.caller_id},
              {"time_limit", r.time_limit},
              {"time_condition", r.time_condition},
              {"pin_set", r.pin_set}};
}

Error FromJson(const json& b, routing::OutboundRoute* r) {
  PBX_RETURN_IF_ERROR_FIELD(UnknownFields(
      b, {"name", "rules", "trunks", "caller_id", "time_limit", "time_condition", "pin_set"}));
  PBX_RETURN_IF_ERROR_FIELD(
      Field(b, "name", [&](const json& v) { return ReadString(v, &r->name); }));
  PBX_RETURN_IF_ERROR_FIELD(Field(b, "rules", [&](const json& v) -> std::optional<std::string> {
    if (!v.is_array()) return "must be a list of {prefix, pattern, prepend}";
    r->rules.clear();
    for (const json& item : v) {
      if (!item.is_object()) return "must be a list of {prefix, pattern, prepend}";
      routing::DialRule rule{item.value("prefix", ""), item.value("pattern", "."),
                             item.value("prepend", "")};
      Status s = routing::ValidateDialRule(rule);
      if (!s.ok()) return s.message();
      r->rules.push_back(std::move(rule));
    }
    return std::nullopt;
  }));
  PBX_RETURN_IF_ERROR_FIELD(
      Field(b, "trunks", [&](const json& v) { return ReadStringArray(v, &r->trunks); }));
  PBX_RETURN_IF_ERROR_FIELD(
      Field(b, "caller_id", [&](const json& v) { return ReadString(v, &r->caller_id); }));
  PBX_RETURN_IF_ERROR_FIELD(
      Field(b, "time_limit", [&](const json& v) { return ReadUInt(v, 0, 3600, &r->time_limit); }));
  PBX_RETURN_IF_ERROR_FIELD(
      Field(b, "time_condition", [&](const json& v) { return ReadString(v, &r->time_condition); }));
  return Field(b, "pin_set", [&](const json& v) { return ReadString(v, &r->pin_set); });
}

Error Check(store::StateStore& st, const routing::OutboundRoute& r) {
  if (r.rules.empty()) return FieldError{"rules", "a route needs at least one dial rule"};
  if (r.trunks.empty()) return FieldError{"trunks", "a route needs at least one trunk"};
  for (const std::string& t : r.trunks) PBX_RETURN_IF_ERROR_FIELD(CheckTrunk(st, "trunks", t));
  if (!IsDialString(r.caller_id, "+")) return FieldError{"caller_id", "digits and '+' only"};
  if (r.time_limit != 0 && r.time_limit < 60) {
    return FieldError{"time_limit", "must be 0 (none) or between 60 and 3600"};
  }
  if (!r.time_condition.empty() && !store::TimeConditionRepo(st).Get(r.time_condition).ok()) {
    return FieldError{"time_condition", fmt::format("no time condition '{}'", r.time_condition)};
  }
  if (!r.pin_set.empty() && !store::PinSetRepo(st).Get(r.pin_set).ok()) {
    return FieldError{"pin_set", fmt::format("no PIN set '{}'", r.pin_set)};
  }
  return std::nullopt;
}

json ToJson(const routing::Permission& p) {
  return json{{"name", p.name}, {"enabled", p.enabled}, {"routes", p.routes}};
}
Error FromJson(const json& b, routing::Permission* p) {
  PBX_RETURN_IF_ERROR_FIELD(UnknownFields(b, {"name", "enabled", "routes"}));
  PBX_RETURN_IF_ERROR_FIELD(
      Field(b, "name", [&](const json& v) { return ReadString(v, &p->name); }));
  PBX_RETURN_IF_ERROR_FIELD(
      Field(b, "enabled", [&](const json& v) { return ReadBool(v, &p->enabled); }));
  return Field(b, "routes", [&](const json& v) { return ReadStringArray(v, &p->routes); });
}
Error Check(store::StateStore& st, const routing::Permission& p) {
  for (const std::string& r : p.routes) {
    if (!store::OutboundRouteRepo(st).Get(r).ok()) {
      return FieldError{"routes", fmt::format("no outbound route '{}'", r)};
    }
  }
  return std::nullopt;
}

json ToJson(const routing::PinSet& p) { return json{{"name", p.name}, {"pins", p.pins}}; }
Error FromJson(const json& b, routing::PinSet* p) {
  PBX_RETURN_IF_ERROR_FIELD(UnknownFields(b, {"name", "pins"}));
  PBX_RETURN_IF_ERROR_FIELD(
      Field(b, "name", [&](const json& v) { return ReadString(v, &p->name); }));
  return Field(b, "pins", [&](const json& v) { return ReadStringArray(v, &p->pins); });
}
Error Check(store::StateStore&, const routing::PinSet& p) {
  if (p.pins.empty()) return FieldError{"pins", "a PIN set needs at least one PIN"};
  for (const std::string& pin : p.pins) {
    if (pin.size() < 3 || pin.size() > 8 || !IsDialString(pin)) {
      return FieldError{"pins", "PINs are 3-8 digits"};
    }
  }
  return std::nullopt;
}

std::string Hhmm(uint16_t minute) { return fmt::format("{:02}:{:02}", minute / 60, minute % 60); }
std::optional<uint16_t> ParseHhmm(const std::string& s) {
  unsigned h = 0, m = 0;
  char tail = 0;
  if (s.size() != 5 || std::sscanf(s.c_str(), "%2u:%2u%c", &h, &m, &tail) != 2 || m > 59 ||
      h > 24 || (h == 24 && m != 0)) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(h * 60 + m);
}
bool IsDate(const std::string& s) {
  unsigned y = 0, mo = 0, d = 0;
  char tail = 0;
  return s.size() == 10 && std::sscanf(s.c_str(), "%4u-%2u-%2u%c", &y, &mo, &d, &tail) == 3 &&
         mo >= 1 && mo <= 12 && d >= 1 && d <= 31;
}

json ToJson(const routing::TimeCondition& tc) {
  json working = json::array();
  for (const auto& r : tc.working) {
    json days = json::array();
    for (size_t i = 0; i < kDays.size(); ++i) {
      if (r.days & (1u << i)) days.push_back(kDays[i]);
    }
    working.push_back(
        {{"days", days}, {"start", Hhmm(r.start_minute)}, {"end", Hhmm(r.end_minute)}});
  }
  json holidays = json::array();
  for (const auto& h : tc.holidays) holidays.push_back({{"first", h.first}, {"last", h.last}});
  return json{{"name", tc.name},
              {"working", working},
              {"holidays", holidays},
              {"when_working", DestinationJson(tc.when_working)},
              {"when_closed", DestinationJson(tc.when_closed)},
              {"when_holiday", tc.when_holiday ? DestinationJson(*tc.when_holiday) : json()}};
}
Error FromJson(const json& b, routing::TimeCondition* tc) {
  PBX_RETURN_IF_ERROR_FIELD(UnknownFields(
      b, {"name", "working", "holidays", "when_working", "when_closed", "when_holiday"}));
  PBX_RETURN_IF_ERROR_FIELD(
      Field(b, "name", [&](const json& v) { return ReadString(v, &tc->name); }));
  PBX_RETURN_IF_ERROR_FIELD(Field(b, "working", [&](const json& v) -> std::optional<std::string> {
    constexpr const char* kShape =
        R"(must be a list of {"days": ["mon", ...], "start": "09:00", "end": "18:00"})";
    if (!v.is_array()) return kShape;
    tc->working.clear();
    for (const json& item : v) {
      if (!item.is_object() || !item.contains("days") || !item["days"].is_array()) return kShape;
      routing::TimeRange r;
      for (const json& d : item["days"]) {
        auto it = d.is_string() ? std::find(kDays.begin(), kDays.end(), d.get<std::string>())
                                : kDays.end();
        if (it == kDays.end()) return "days are sun, mon, tue, wed, thu, fri, sat";
        r.days |= static_cast<uint8_t>(1u << (it - kDays.begin()));
      }
      std::optional<uint16_t> start = ParseHhmm(item.value("start", ""));
      std::optional<uint16_t> end = ParseHhmm(item.value("end", ""));
      if (!start || !end || *start >= *end || r.days == 0) {
        return "each range needs days and start < end as HH:MM";
      }
      r.start_minute = *start;
      r.end_minute = *end;
      tc->working.push_back(r);
    }
    return std::nullopt;
  }));
  PBX_RETURN_IF_ERROR_FIELD(Field(b, "holidays", [&](const json& v) -> std::optional<std::string> {
    if (!v.is_array()) return R"(must be a list of {"first": "YYYY-MM-DD", "last": "YYYY-MM-DD"})";
    tc->holidays.clear();
    for (const json& item : v) {
      routing::DateRange d{item.is_object() ? item.value("first", "") : "",
                           item.is_object() ? item.value("last", "") : ""};
      if (d.last.empty()) d.last = d.first;
      if (!IsDate(d.first) || !IsDate(d.last) || d.last < d.first) {
        return "each holiday needs first <= last as YYYY-MM-DD";
      }
      tc->holidays.push_back(d);
    }
    return std::nullopt;
  }));
  PBX_RETURN_IF_ERROR_FIELD(Field(
      b, "when_working", [&](const json& v) { return ReadDestination(v, &tc->when_working); }));
  PBX_RETURN_IF_ERROR_FIELD(
      Field(b, "when_closed", [&](const json& v) { return ReadDestination(v, &tc->when_closed); }));
  return Field(b, "when_holiday", [&](const json& v) -> std::optional<std::string> {
    if (v.is_null()) {
      tc->when_holiday.reset();
      return std::nullopt;
    }
    routing::Destination d;
    if (auto p = ReadDestination(v, &d)) return p;
    tc->when_holiday = d;
    return std::nullopt;
  });
}
Error Check(store::StateStore& st, const routing::TimeCondition& tc) {
  auto self = [&](const routing::Destination& d) {
    return d.type == "time_condition" && d.id == tc.name;
  };
  for (auto [field, d] :
       {std::pair{"when_working", &tc.when_working}, std::pair{"when_closed", &tc.when_closed}}) {
    if (self(*d)) return FieldError{field, "a time condition cannot lead to itself"};
    PBX_RETURN_IF_ERROR_FIELD(CheckDestination(st, field, *d));
  }
  if (tc.when_holiday) {
    if (self(*tc.when_holiday))
      return FieldError{"when_holiday", "a time condition cannot lead to itself"};
    PBX_RETURN_IF_ERROR_FIELD(CheckDestination(st, "when_holiday", *tc.when_holiday));
  }
  return std::nullopt;
}

json ToJson(const routing::DidRoute& r) {
  return json{{"name", r.name},
              {"trunk", r.trunk},
              {"did_pattern", r.did_pattern},
              {"caller_pattern", r.caller_pattern},
              {"destination", DestinationJson(r.destination)}};
}
Error FromJson(const json& b, routing::DidRoute* r) {
  PBX_RETURN_IF_ERROR_FIELD(
      UnknownFields(b, {"name", "trunk", "did_pattern", "caller_pattern", "destination"}));
  PBX_RETURN_IF_ERROR_FIELD(
      Field(b, "name", [&](const json& v) { return ReadString(v, &r->name); }));
  PBX_RETURN_IF_ERROR_FIELD(
      Field(b, "trunk", [&](const json& v) { return ReadString(v, &r->trunk); }));
  PBX_RETURN_IF_ERROR_FIELD(
      Field(b, "did_pattern", [&](const json& v) { return ReadString(v, &r->did_pattern); }));
  PBX_RETURN_IF_ERROR_FIELD(
      Field(b, "caller_pattern", [&](const json& v) { return ReadString(v, &r->caller_pattern); }));
  return Field(b, "destination",
               [&](const json& v) { return ReadDestination(v, &r->destination); });
}
Error Check(store::StateStore& st, const routing::DidRoute& r) {
  if (!r.trunk.empty()) PBX_RETURN_IF_ERROR_FIELD(CheckTrunk(st, "trunk", r.trunk));
  if (r.did_pattern.empty() && r.caller_pattern.empty()) {
    return FieldError{"did_pattern", "a DID route needs a DID pattern, a caller pattern or both"};
  }
  PBX_RETURN_IF_ERROR_FIELD(CheckPattern("did_pattern", r.did_pattern));
  PBX_RETURN_IF_ERROR_FIELD(CheckPattern("caller_pattern", r.caller_pattern));
  return CheckDestination(st, "destination", r.destination);
}

json ToJson(const routing::InboundRoute& r) {
  return json{{"trunk", r.trunk}, {"destination", DestinationJson(r.destination)}};
}
Error FromJson(const json& b, routing::InboundRoute* r) {
  PBX_RETURN_IF_ERROR_FIELD(UnknownFields(b, {"trunk", "destination"}));
  PBX_RETURN_IF_ERROR_FIELD(
      Field(b, "trunk", [&](const json& v) { return ReadString(v, &r->trunk); }));
  return Field(b, "destination",
               [&](const json& v) { return ReadDestination(v, &r->destination); });
}
Error Check(store::StateStore& st, const routing::InboundRoute& r) {
  PBX_RETURN_IF_ERROR_FIELD(CheckTrunk(st, "trunk", r.trunk));
  return CheckDestination(st, "destination", r.destination);
}

json ToJson(const routing::BlacklistEntry& e) {
  return json{{"number", e.number}, {"creator", e.creator}, {"created_unix", e.created_unix}};
}
Error FromJson(const json& b, routing::BlacklistEntry* e) {
  PBX_RETURN_IF_ERROR_FIELD(UnknownFields(b, {"number", "creator", "created_unix"}));
  return Field(b, "number", [&](const json& v) { return ReadString(v, &e->number); });
}
Error Check(store::StateStore& st, const routing::BlacklistEntry& e) {
  std::string_view n = e.number;
  if (n.ends_with('*')) n.remove_suffix(1);
  if (n.empty() || !IsDialString(n, "+")) {
    return FieldError{"number", "digits (and '+'), optionally ending in '*' for a prefix"};
  }
  if (store::ExtensionRepo(st).Get(e.number).ok()) {
    return FieldError{"number", "extension numbers cannot be blacklisted"};
  }
  return std::nullopt;
}

// The name (key) of each kind, and where it sits in the JSON body.
const std::string& KeyOf(const routing::InboundRoute& r) { return r.trunk; }
const std::string& KeyOf(const routing::BlacklistEntry& e) { return e.number; }
template <typename T>
const std::string& KeyOf(const T& t) {
  return t.name;
}
template <typename T>
constexpr const char* KeyField() {
  if constexpr (std::is_same_v<T, routing::InboundRoute>) return "trunk";
  if constexpr (std::is_same_v<T, routing::BlacklistEntry>) return "number";
  return "name";
}

// One kind's routes: GET list, POST create, GET/PUT/DELETE one.
template <typename T>
class DialPlanRoutes {
 public:
  DialPlanRoutes(store::StateStore& store, std::string object)
      : store_(store), object_(std::move(object)) {}

  void List(const Request& req, Response& res, const Principal&) const {
    Result<std::vector<T>> all = store::DialPlanRepo<T>(store_).List();
    if (!all.ok()) return SendStatus(req, res, all.status());
    json out = json::array();
    for (const T& t : *all) out.push_back(ToJson(t));
    SendJson(res, 200, json{{"items", out}});
  }

  void Show(const Request& req, Response& res, const Principal&) const {
    Result<T> t = Find(req, res);
    if (t.ok()) SendJson(res, 200, ToJson(*t));
  }

  void Create(const Request& req, Response& res, const Principal& who) const {
    std::optional<json> body = ParseBody(req, res);
    if (!body) return;
    T t;
    if (Error e = FromJson(*body, &t)) return SendFieldError(res, *e);
    if constexpr (std::is_same_v<T, routing::BlacklistEntry>) {
      t.creator = who.user;
      t.created_unix = NowUnix();
    }
    Write(req, res, who, t, /*create=*/true);
  }

  void Update(const Request& req, Response& res, const Principal& who) const {
    std::optional<json> body = ParseBody(req, res);
    if (!body) return;
    Result<T> t = Find(req, res);
    if (!t.ok()) return;
    std::string key = KeyOf(*t);
    if (Error e = FromJson(*body, &*t)) return SendFieldError(res, *e);
    if (KeyOf(*t) != key) {
      return SendFieldError(res,
                            {KeyField<T>(), fmt::format("'{}' cannot be changed", KeyField<T>())});
    }
    Write(req, res, who, *t, /*create=*/false);
  }

  void Delete(const Request& req, Response& res, const Principal& who) const {
    std::string key = req.matches[1];
    store::WriteSet writes;
    store::DialPlanRepo<T>(store_).Delete(key, writes);
    AddAudit(req, who, object_ + ".delete", key, "", writes);
    if (!CommitOrReply(req, res, store_, writes, 404,
                       fmt::format("{} '{}' not found", object_, key)))
      return;
    res.status = 204;
  }

 private:
  void Write(const Request& req, Response& res, const Principal& who, const T& t,
             bool create) const {
    const std::string& key = KeyOf(t);
    if (key.empty() || (KeyField<T>() != std::string_view("number") && !IsName(key))) {
      return SendFieldError(
          res, {KeyField<T>(), "must be 1-32 characters of letters, digits, '_' and '-'"});
    }
    if (Error e = Check(store_, t)) return SendFieldError(res, *e);
    store::WriteSet writes;
    store::DialPlanRepo<T>(store_).Put(t, create, writes);
    AddAudit(req, who, object_ + (create ? ".create" : ".update"), key, "", writes);
    if (!CommitOrReply(
            req, res, store_, writes, create ? 409 : 404,
            fmt::format("{} '{}' {}", object_, key, create ? "already exists" : "not found"))) {
      return;
    }
    PBX_LOG(kInfo, "api", "{} {} {}", object_, key, create ? "created" : "updated");
    SendJson(res, create ? 201 : 200, ToJson(t));
  }

  Result<T> Find(const Request& req, Response& res) const {
    std::string key = req.matches[1];
    Result<T> t = store::DialPlanRepo<T>(store_).Get(key);
    if (!t.ok() && t.status().IsNotFound()) {
      SendError(res, 404, "not_found", fmt::format("{} '{}' not found", object_, key));
    } else if (!t.ok()) {
      SendStatus(req, res, t.status());
    }
    return t;
  }

  store::StateStore& store_;
  std::string object_;
};

template <typename T>
void AddKind(httplib::Server& server, const RouteContext& ctx, const std::string& path,
             const std::string& object) {
  auto routes = std::make_shared<const DialPlanRoutes<T>>(ctx.store, object);
  auto bind = [&](Permission permission, auto method) {
    return ctx.Bind(permission, routes, method);
  };
  std::string base = "/api/v1/" + path;
  std::string one = base + R"(/([A-Za-z0-9_+*-]{1,33}))";
  server.Get(base, bind(Permission::kViewStatus, &DialPlanRoutes<T>::List));
  server.Post(base, bind(Permission::kManageExtensions, &DialPlanRoutes<T>::Create));
  server.Get(one, bind(Permission::kViewStatus, &DialPlanRoutes<T>::Show));
  server.Put(one, bind(Permission::kManageExtensions, &DialPlanRoutes<T>::Update));
  server.Delete(one, bind(Permission::kManageExtensions, &DialPlanRoutes<T>::Delete));
}

json SettingsJson(const store::RoutingSettings& s) {
  return json{{"block_anonymous", s.block_anonymous},
              {"office_pause", s.office_pause},
              {"office_pause_destination", DestinationJson(s.office_pause_destination)}};
}

}  // namespace

void AddRoutingRoutes(httplib::Server& server, const RouteContext& ctx) {
  AddKind<routing::OutboundRoute>(server, ctx, "routes/outbound", "route.outbound");
  AddKind<routing::InboundRoute>(server, ctx, "routes/inbound", "route.inbound");
  AddKind<routing::DidRoute>(server, ctx, "dids", "did");
  AddKind<routing::BlacklistEntry>(server, ctx, "blacklist", "blacklist");
  AddKind<routing::TimeCondition>(server, ctx, "time-conditions", "time_condition");
  AddKind<routing::Permission>(server, ctx, "permissions", "permission");
  AddKind<routing::PinSet>(server, ctx, "pin-sets", "pin_set");

  store::StateStore& st = ctx.store;
  // What a destination may be: the pages offer exactly the types that validate.
  server.Get(
      "/api/v1/destination-types",
      ctx.guarded(Permission::kViewStatus, [&st](const Request&, Response& res, const Principal&) {
        SendJson(res, 200, json{{"types", Destinations(st).types()}});
      }));
  server.Get("/api/v1/routing-settings",
             ctx.guarded(Permission::kViewStatus,
                         [&st](const Request& req, Response& res, const Principal&) {
                           Result<store::RoutingSettings> s = store::RoutingSettingsRepo(st).Get();
                           if (!s.ok()) return SendStatus(req, res, s.status());
                           SendJson(res, 200, SettingsJson(*s));
                         }));
  server.Put(
      "/api/v1/routing-settings",
      ctx.guarded(Permission::kManageExtensions, [&st](const Request& req, Response& res,
                                                       const Principal& who) {
        std::optional<json> body = ParseBody(req, res);
        if (!body) return;
        Result<store::RoutingSettings> s = store::RoutingSettingsRepo(st).Get();
        if (!s.ok()) return SendStatus(req, res, s.status());
        Error e =
            UnknownFields(*body, {"block_anonymous", "office_pause", "office_pause_destination"});
        if (!e)
          e = Field(*body, "block_anonymous",
                    [&](const json& v) { return ReadBool(v, &s->block_anonymous); });
        if (!e)
          e = Field(*body, "office_pause",
                    [&](const json& v) { return ReadBool(v, &s->office_pause); });
        if (!e)
          e = Field(*body, "office_pause_destination", [&](const json& v) {
            return ReadDestination(v, &s->office_pause_destination);
          });
        if (!e && s->office_pause) {
          e = CheckDestination(st, "office_pause_destination", s->office_pause_destination);
        }
        if (e) return SendFieldError(res, *e);
        store::WriteSet writes;
        store::RoutingSettingsRepo(st).Put(*s, writes);
        AddAudit(req, who, "routing_settings.update", "routing", ChangedFields(*body), writes);
        if (!CommitOrReply(req, res, st, writes, 409, "routing settings changed meanwhile")) return;
        SendJson(res, 200, SettingsJson(*s));
      }));
}

}  // namespace pbx::admin
