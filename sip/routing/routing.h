#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "node/core/status.h"
#include "replication/store/repos.h"
#include "sip/routing/dial_pattern.h"

// The dial plan for calls that leave or enter through trunks (FEATURES.md §4.3-4.7, §5.6-5.9):
// outbound routes with patterns, strip/prepend and ordered trunks, dial permissions, PIN
// sets; inbound DID routes, per-trunk inbound routes, the blacklist, the office pause and
// time conditions. Pure logic over plain tables (no sofia, no store): the B2BUA builds a
// RoutingTables from its caches and calls RouteOutbound / RouteInbound. Thread-compatible.
namespace pbx::sip::routing {

// The records are the store's (replication/store/repos.h), so what the API validates and
// stores is exactly what the engine reads.
using store::BlacklistEntry;
using store::DateRange;
using store::Destination;
using store::DialRule;
using store::DidRoute;
using store::InboundRoute;
using store::OutboundRoute;
using store::Permission;
using store::PinSet;
using store::TimeCondition;
using store::TimeRange;

// The known destination types and, for each, how to check that an id exists. Validation of
// stored routes (the API) goes through Validate(); the routing engine itself only follows
// time conditions and hands every other destination to the caller.
class DestinationTypes {
 public:
  using Exists = std::function<bool(const std::string& id)>;
  // REQUIRES: `type` not yet registered (a duplicate is a programming error: CHECK).
  void Register(std::string type, Exists exists);
  // InvalidArgument naming what is wrong: unknown type, or no such id.
  Status Validate(const Destination& d) const;
  std::vector<std::string> types() const;

 private:
  std::map<std::string, Exists> types_;
};

// Everything the engine looks at, as the caller's caches hold it.
struct RoutingTables {
  std::vector<OutboundRoute> outbound;
  std::vector<Permission> permissions;
  std::vector<PinSet> pin_sets;
  std::vector<TimeCondition> time_conditions;
  std::vector<DidRoute> did_routes;  // tried in order
  std::vector<InboundRoute> inbound;
  std::vector<BlacklistEntry> blacklist;
  bool block_anonymous = false;
  std::optional<Destination> office_pause;  // set: every inbound call goes there
};

// The tables as the store holds them now (the B2BUA's cache is built this way and then
// follows the change feed under the "route/" and "settings/routing" prefixes).
Result<RoutingTables> LoadRoutingTables(store::StateStore& store);

// Local wall-clock time, what time conditions compare with.
struct LocalTime {
  int year = 1970, month = 1, day = 1;  // month 1-12
  int weekday = 4;                      // 0 = Sunday
  int minute = 0;                       // minutes after midnight
};
// `unix` in the process's time zone (TZ; the settings carry no zone yet).
LocalTime ToLocalTime(int64_t unix);

enum class TimeVerdict : uint8_t { kWorking, kClosed, kHoliday };
TimeVerdict Evaluate(const TimeCondition& tc, const LocalTime& now);

struct OutboundCall {
  std::string permission;  // the calling extension's class of service
  std::string dialled;
  std::string extension_cli;  // the extension's own outbound caller ID
};

struct OutboundDecision {
  enum class Kind : uint8_t {
    kRoute,      // try `trunks` in order with `number`
    kNoRoute,    // nothing matches: 404
    kForbidden,  // a route matches but the permission does not include it, or is off: 403
    kClosed,     // the matching route's time condition is outside working hours: 403
  };
  Kind kind = Kind::kNoRoute;
  std::string route;
  std::string number;  // what to send to the trunk: prefix stripped, prepend added
  std::vector<std::string> trunks;
  std::string caller_id;
  uint32_t time_limit = 0;
  std::string pin_set;  // non-empty: collect a PIN and check it with PinValid() first
};

// The first rule (in the permission's route order, then each route's rule order) that
// matches decides. Routes outside the permission are only looked at to tell 403 from 404.
OutboundDecision RouteOutbound(const OutboundCall& call, const RoutingTables& tables,
                               const LocalTime& now);
bool PinValid(const RoutingTables& tables, const std::string& pin_set, std::string_view pin);
// Whether a failure of one trunk moves the call to the next (503 or no answer, §5 issue 5).
bool ShouldFailover(int sip_status);

struct InboundCall {
  std::string trunk;
  std::string did;     // the called number (Request-URI / To user)
  std::string caller;  // the caller's number; "" or "anonymous" when withheld
};

struct InboundDecision {
  enum class Kind : uint8_t { kDestination, kRejected, kNoRoute };
  Kind kind = Kind::kNoRoute;
  Destination destination;  // never a time condition: those are resolved
  std::string reason;       // "blacklist", "anonymous", the rule that matched, ...
};

// Blacklist and anonymous blocking first, then the office pause, then DID routes in order,
// then the trunk's inbound route; time conditions are followed (nesting allowed, a loop
// ends in kNoRoute).
InboundDecision RouteInbound(const InboundCall& call, const RoutingTables& tables,
                             const LocalTime& now);

// Whether `caller` is blacklisted (exact or '*' prefix) or anonymous and blocked.
bool Blocked(const RoutingTables& tables, std::string_view caller, std::string* why);

// Validation of tables the API is about to store: patterns parse, names referenced exist,
// destinations are known. InvalidArgument naming the field.
Status ValidateDialRule(const DialRule& rule);

}  // namespace pbx::sip::routing
