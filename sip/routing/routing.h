#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "node/core/status.h"
#include "sip/routing/dial_pattern.h"

// The dial plan for calls that leave or enter through trunks (FEATURES.md §4.3-4.7, §5.6-5.9):
// outbound routes with patterns, strip/prepend and ordered trunks, dial permissions, PIN
// sets; inbound DID routes, per-trunk inbound routes, the blacklist, the office pause and
// time conditions. Pure logic over plain tables (no sofia, no store): the B2BUA builds a
// RoutingTables from its caches and calls RouteOutbound / RouteInbound. Thread-compatible.
namespace pbx::sip::routing {

// Where an inbound call goes: {type, id}. Types are a registry (DestinationTypes), so ring
// groups, IVRs, queues and voicemail join later without changes here.
struct Destination {
  std::string type;  // "extension" | "time_condition" | "hangup" | later types
  std::string id;    // the extension number, the time condition's name; "" for hangup
  bool operator==(const Destination&) const = default;
};

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

// One dial rule of an outbound route: the number must start with `prefix` (stripped), the
// rest must match `pattern`, and `prepend` is put in front of what is sent.
struct DialRule {
  std::string prefix;
  std::string pattern = ".";
  std::string prepend;
};

struct OutboundRoute {
  std::string name;
  std::vector<DialRule> rules;      // tried in order
  std::vector<std::string> trunks;  // failover order
  std::string caller_id;            // overrides the extension's CLI when set
  uint32_t time_limit = 0;          // seconds, 0: none (else 60-3600)
  std::string time_condition;       // usable only in working hours when set
  std::string pin_set;              // PIN required when set
};

// A class of service: which routes an extension may use, in order (FEATURES.md §5.7).
struct Permission {
  std::string name;
  bool enabled = true;
  std::vector<std::string> routes;
};

struct PinSet {
  std::string name;
  std::vector<std::string> pins;
};

// Weekly working hours plus holidays, with a destination for each case (FEATURES.md §4.3).
struct TimeRange {
  uint8_t days = 0;           // bit 0 = Sunday ... bit 6 = Saturday
  uint16_t start_minute = 0;  // minutes after midnight, inclusive
  uint16_t end_minute = 0;    // exclusive
};
struct DateRange {
  std::string first;  // "YYYY-MM-DD", inclusive
  std::string last;   // inclusive
};
struct TimeCondition {
  std::string name;
  std::vector<TimeRange> working;
  std::vector<DateRange> holidays;
  Destination when_working;
  Destination when_closed;
  std::optional<Destination> when_holiday;  // absent: as closed
};

// Routes by called DID, caller number, or both (FEATURES.md §4.5): empty patterns match all.
struct DidRoute {
  std::string name;
  std::string trunk;  // empty: any trunk
  std::string did_pattern;
  std::string caller_pattern;
  Destination destination;
};

struct InboundRoute {
  std::string trunk;
  Destination destination;
};

struct BlacklistEntry {
  std::string number;  // an exact number, or a prefix ending in '*'
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
