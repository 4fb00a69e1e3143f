#include "sip/routing/routing.h"

#include <time.h>

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "node/core/log.h"

namespace pbx::sip::routing {
namespace {

// Nested time conditions deeper than this are treated as a loop.
constexpr int kMaxTimeConditionDepth = 8;

template <typename T>
const T* FindByName(const std::vector<T>& v, std::string_view name) {
  auto it = std::find_if(v.begin(), v.end(), [&](const T& t) { return t.name == name; });
  return it == v.end() ? nullptr : &*it;
}

bool PatternMatches(const std::string& pattern, std::string_view s) {
  if (pattern.empty()) return true;
  Result<DialPattern> p = DialPattern::Parse(pattern);
  return p.ok() && p->Matches(s);  // stored patterns were validated; a bad one matches nothing
}

// The number to send if `rule` matches `dialled`.
std::optional<std::string> Apply(const DialRule& rule, std::string_view dialled) {
  if (!dialled.starts_with(rule.prefix)) return std::nullopt;
  std::string_view rest = dialled.substr(rule.prefix.size());
  if (!PatternMatches(rule.pattern.empty() ? "." : rule.pattern, rest)) return std::nullopt;
  return rule.prepend + std::string(rest);
}

std::string DateString(const LocalTime& t) {
  return fmt::format("{:04}-{:02}-{:02}", t.year, t.month, t.day);
}

bool IsAnonymous(std::string_view caller) {
  if (caller.empty()) return true;
  std::string lower(caller);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower == "anonymous" || lower == "unknown" || lower == "restricted";
}

}  // namespace

void DestinationTypes::Register(std::string type, Exists exists) {
  PBX_CHECK(types_.find(type) == types_.end());
  types_.emplace(std::move(type), std::move(exists));
}

Status DestinationTypes::Validate(const Destination& d) const {
  auto it = types_.find(d.type);
  if (it == types_.end()) {
    std::string known;
    for (const auto& [type, fn] : types_) known += (known.empty() ? "" : ", ") + type;
    return Status::InvalidArgument(
        fmt::format("unknown destination type '{}' (known: {})", d.type, known));
  }
  if (it->second && !it->second(d.id)) {
    return Status::InvalidArgument(fmt::format("no {} '{}'", d.type, d.id));
  }
  return Status::Ok();
}

std::vector<std::string> DestinationTypes::types() const {
  std::vector<std::string> out;
  for (const auto& [type, fn] : types_) out.push_back(type);
  return out;
}

LocalTime ToLocalTime(int64_t unix) {
  time_t t = static_cast<time_t>(unix);
  struct tm tm {};
  localtime_r(&t, &tm);
  return {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_wday, tm.tm_hour * 60 + tm.tm_min};
}

TimeVerdict Evaluate(const TimeCondition& tc, const LocalTime& now) {
  std::string today = DateString(now);
  for (const DateRange& h : tc.holidays) {
    if (h.first <= today && today <= h.last) return TimeVerdict::kHoliday;
  }
  for (const TimeRange& r : tc.working) {
    if ((r.days & (1u << now.weekday)) != 0 && r.start_minute <= now.minute &&
        now.minute < r.end_minute) {
      return TimeVerdict::kWorking;
    }
  }
  return TimeVerdict::kClosed;
}

OutboundDecision RouteOutbound(const OutboundCall& call, const RoutingTables& tables,
                               const LocalTime& now) {
  OutboundDecision d;
  const Permission* perm = FindByName(tables.permissions, call.permission);
  if (perm != nullptr && perm->enabled) {
    for (const std::string& name : perm->routes) {
      const OutboundRoute* route = FindByName(tables.outbound, name);
      if (route == nullptr) continue;
      for (const DialRule& rule : route->rules) {
        std::optional<std::string> number = Apply(rule, call.dialled);
        if (!number) continue;
        d.route = route->name;
        if (!route->time_condition.empty()) {
          const TimeCondition* tc = FindByName(tables.time_conditions, route->time_condition);
          if (tc == nullptr || Evaluate(*tc, now) != TimeVerdict::kWorking) {
            d.kind = OutboundDecision::Kind::kClosed;
            return d;
          }
        }
        d.kind = OutboundDecision::Kind::kRoute;
        d.number = std::move(*number);
        d.trunks = route->trunks;
        d.caller_id = route->caller_id.empty() ? call.extension_cli : route->caller_id;
        d.time_limit = route->time_limit;
        d.pin_set = route->pin_set;
        return d;
      }
    }
  }
  // Nothing this extension may use: 403 if some other route would have taken the number.
  for (const OutboundRoute& route : tables.outbound) {
    for (const DialRule& rule : route.rules) {
      if (Apply(rule, call.dialled)) {
        d.kind = OutboundDecision::Kind::kForbidden;
        d.route = route.name;
        return d;
      }
    }
  }
  return d;
}

bool PinValid(const RoutingTables& tables, const std::string& pin_set, std::string_view pin) {
  const PinSet* set = FindByName(tables.pin_sets, pin_set);
  if (set == nullptr || pin.empty()) return false;
  return std::find(set->pins.begin(), set->pins.end(), pin) != set->pins.end();
}

bool ShouldFailover(int sip_status) { return sip_status == 503 || sip_status == 408; }

bool Blocked(const RoutingTables& tables, std::string_view caller, std::string* why) {
  if (IsAnonymous(caller)) {
    if (tables.block_anonymous) *why = "anonymous";
    return tables.block_anonymous;
  }
  for (const BlacklistEntry& e : tables.blacklist) {
    std::string_view n = e.number;
    bool hit = n.ends_with('*') ? caller.starts_with(n.substr(0, n.size() - 1)) : caller == n;
    if (hit) {
      *why = "blacklist " + e.number;
      return true;
    }
  }
  return false;
}

InboundDecision RouteInbound(const InboundCall& call, const RoutingTables& tables,
                             const LocalTime& now) {
  InboundDecision d;
  if (Blocked(tables, call.caller, &d.reason)) {
    d.kind = InboundDecision::Kind::kRejected;
    return d;
  }
  std::optional<Destination> dest;
  if (tables.office_pause) {
    dest = tables.office_pause;
    d.reason = "office pause";
  }
  for (size_t i = 0; !dest && i < tables.did_routes.size(); ++i) {
    const DidRoute& r = tables.did_routes[i];
    if (!r.trunk.empty() && r.trunk != call.trunk) continue;
    if (r.did_pattern.empty() && r.caller_pattern.empty()) continue;
    if (!PatternMatches(r.did_pattern, call.did)) continue;
    if (!PatternMatches(r.caller_pattern, call.caller)) continue;
    dest = r.destination;
    d.reason = "did " + r.name;
  }
  if (!dest) {
    auto it = std::find_if(tables.inbound.begin(), tables.inbound.end(),
                           [&](const InboundRoute& r) { return r.trunk == call.trunk; });
    if (it == tables.inbound.end()) return d;
    dest = it->destination;
    d.reason = "trunk " + call.trunk;
  }
  for (int depth = 0; dest->type == "time_condition"; ++depth) {
    const TimeCondition* tc = FindByName(tables.time_conditions, dest->id);
    if (tc == nullptr || depth == kMaxTimeConditionDepth) return d;
    switch (Evaluate(*tc, now)) {
      case TimeVerdict::kWorking:
        dest = tc->when_working;
        break;
      case TimeVerdict::kHoliday:
        dest = tc->when_holiday ? *tc->when_holiday : tc->when_closed;
        break;
      case TimeVerdict::kClosed:
        dest = tc->when_closed;
        break;
    }
  }
  d.kind = InboundDecision::Kind::kDestination;
  d.destination = *dest;
  return d;
}

Result<RoutingTables> LoadRoutingTables(store::StateStore& store) {
  RoutingTables t;
  PBX_ASSIGN_OR_RETURN(t.outbound, store::OutboundRouteRepo(store).List());
  PBX_ASSIGN_OR_RETURN(t.permissions, store::PermissionRepo(store).List());
  PBX_ASSIGN_OR_RETURN(t.pin_sets, store::PinSetRepo(store).List());
  PBX_ASSIGN_OR_RETURN(t.time_conditions, store::TimeConditionRepo(store).List());
  PBX_ASSIGN_OR_RETURN(t.did_routes, store::DidRouteRepo(store).List());
  PBX_ASSIGN_OR_RETURN(t.inbound, store::InboundRouteRepo(store).List());
  PBX_ASSIGN_OR_RETURN(t.blacklist, store::BlacklistRepo(store).List());
  PBX_ASSIGN_OR_RETURN(store::RoutingSettings settings, store::RoutingSettingsRepo(store).Get());
  t.block_anonymous = settings.block_anonymous;
  if (settings.office_pause) t.office_pause = settings.office_pause_destination;
  return t;
}

Status ValidateDialRule(const DialRule& rule) {
  for (char c : rule.prefix + rule.prepend) {
    if (!((c >= '0' && c <= '9') || c == '*' || c == '#' || c == '+')) {
      return Status::InvalidArgument(
          fmt::format("prefix and prepend hold only digits, '*', '#', '+' (found '{}')", c));
    }
  }
  return DialPattern::Parse(rule.pattern.empty() ? "." : rule.pattern).status();
}

}  // namespace pbx::sip::routing
