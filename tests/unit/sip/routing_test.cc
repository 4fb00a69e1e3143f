// The dial plan: the pattern language, outbound route selection, permissions, PIN sets,
// inbound selection, the blacklist and time conditions.
#include "sip/routing/routing.h"

#include <gtest/gtest.h>

namespace pbx::sip::routing {
namespace {

bool M(std::string_view pattern, std::string_view s) {
  Result<DialPattern> p = DialPattern::Parse(pattern);
  EXPECT_TRUE(p.ok()) << pattern << ": " << p.status().ToString();
  return p.ok() && p->Matches(s);
}

TEST(DialPatternTest, Letters) {
  EXPECT_TRUE(M("X", "0"));
  EXPECT_TRUE(M("X", "9"));
  EXPECT_FALSE(M("X", "*"));
  EXPECT_TRUE(M("Z", "1"));
  EXPECT_FALSE(M("Z", "0"));
  EXPECT_TRUE(M("N", "2"));
  EXPECT_FALSE(M("N", "1"));
  EXPECT_TRUE(M("nxxXXXX", "2345678"));
  EXPECT_TRUE(M("_NXXNXXXXXX", "2125551234"));
  EXPECT_FALSE(M("_NXXNXXXXXX", "212555123"));
  EXPECT_FALSE(M("_NXXNXXXXXX", "21255512345"));
}

TEST(DialPatternTest, SetsAndLiterals) {
  EXPECT_TRUE(M("[1-5]", "3"));
  EXPECT_FALSE(M("[1-5]", "6"));
  EXPECT_TRUE(M("[137]", "7"));
  EXPECT_FALSE(M("[137]", "2"));
  EXPECT_TRUE(M("[1-37-9]", "8"));
  EXPECT_FALSE(M("[1-37-9]", "5"));
  EXPECT_TRUE(M("00X.", "0049301234"));
  EXPECT_TRUE(M("*7X", "*75"));
  EXPECT_TRUE(M("+X.", "+4930"));
  EXPECT_TRUE(M("#", "#"));
}

TEST(DialPatternTest, Tails) {
  EXPECT_TRUE(M(".", "1"));
  EXPECT_FALSE(M(".", ""));
  EXPECT_TRUE(M("9.", "91"));
  EXPECT_FALSE(M("9.", "9"));
  EXPECT_TRUE(M("9!", "9"));
  EXPECT_TRUE(M("9!", "9123"));
  EXPECT_TRUE(M("!", ""));
  EXPECT_FALSE(M(".", "12a"));  // only dialable symbols ever match
}

TEST(DialPatternTest, BadPatternsNamePosition) {
  for (const char* bad :
       {"", "_", "9.1", "!X", "[", "[1-", "[]", "[a]", "[5-1]", "A", "9 1",
        "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"}) {
    Result<DialPattern> p = DialPattern::Parse(bad);
    EXPECT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.status().code(), Status::Code::kInvalidArgument) << bad;
  }
  EXPECT_NE(DialPattern::Parse("9.1").status().message().find("at 3"), std::string::npos);
}

RoutingTables Tables() {
  RoutingTables t;
  t.outbound.push_back(
      {"local", {{"9", "NXXXXXX", ""}}, {"carrier-a", "carrier-b"}, "", 0, "", ""});
  t.outbound.push_back(
      {"intl", {{"900", "X.", "00"}}, {"carrier-b"}, "+4930123", 600, "", "intl-pins"});
  t.outbound.push_back({"office", {{"8", "X.", ""}}, {"carrier-a"}, "", 0, "hours", ""});
  t.permissions.push_back({"DialPlan1", true, {"intl", "local", "office"}});
  t.permissions.push_back({"LocalOnly", true, {"local"}});
  t.permissions.push_back({"Off", false, {"local"}});
  t.pin_sets.push_back({"intl-pins", {"1234", "98765"}});
  TimeCondition hours;
  hours.name = "hours";
  hours.working = {{0b0111110, 9 * 60, 12 * 60}, {0b0111110, 14 * 60, 18 * 60}};
  hours.holidays = {{"2026-12-24", "2026-12-26"}};
  hours.when_working = {"extension", "1001"};
  hours.when_closed = {"extension", "1099"};
  hours.when_holiday = Destination{"hangup", ""};
  t.time_conditions.push_back(hours);
  return t;
}

// Tuesday 2026-11-24 10:30 and 13:00; Saturday 2026-11-28 10:30; Christmas (Friday) 10:30.
constexpr LocalTime kTueMorning{2026, 11, 24, 2, 10 * 60 + 30};
constexpr LocalTime kTueLunch{2026, 11, 24, 2, 13 * 60};
constexpr LocalTime kSaturday{2026, 11, 28, 6, 10 * 60 + 30};
constexpr LocalTime kChristmas{2026, 12, 25, 5, 10 * 60 + 30};

TEST(OutboundTest, StripPrependTrunksCallerId) {
  RoutingTables t = Tables();
  OutboundDecision d = RouteOutbound({"DialPlan1", "95551234", "+4930999"}, t, kTueMorning);
  ASSERT_EQ(d.kind, OutboundDecision::Kind::kRoute);
  EXPECT_EQ(d.route, "local");
  EXPECT_EQ(d.number, "5551234");
  EXPECT_EQ(d.trunks, (std::vector<std::string>{"carrier-a", "carrier-b"}));
  EXPECT_EQ(d.caller_id, "+4930999");  // the extension's own
  EXPECT_TRUE(d.pin_set.empty());

  d = RouteOutbound({"DialPlan1", "900441234567", "+4930999"}, t, kTueMorning);
  ASSERT_EQ(d.kind, OutboundDecision::Kind::kRoute);
  EXPECT_EQ(d.route, "intl");
  EXPECT_EQ(d.number, "00441234567");
  EXPECT_EQ(d.caller_id, "+4930123");  // the route's override
  EXPECT_EQ(d.time_limit, 600u);
  EXPECT_EQ(d.pin_set, "intl-pins");
}

TEST(OutboundTest, FirstRouteInPermissionOrderWins) {
  RoutingTables t = Tables();
  // "intl" comes first in DialPlan1; "local" (9 + NXXXXXX) would not take it anyway.
  OutboundDecision d = RouteOutbound({"DialPlan1", "90021", ""}, t, kTueMorning);
  EXPECT_EQ(d.route, "intl");
  t.permissions[0].routes = {"local", "intl"};
  t.outbound[0].rules[0].pattern = "X.";
  d = RouteOutbound({"DialPlan1", "90021", ""}, t, kTueMorning);
  EXPECT_EQ(d.route, "local");
}

TEST(OutboundTest, PermissionsAndNoRoute) {
  RoutingTables t = Tables();
  EXPECT_EQ(RouteOutbound({"LocalOnly", "95551234", ""}, t, kTueMorning).kind,
            OutboundDecision::Kind::kRoute);
  OutboundDecision d = RouteOutbound({"LocalOnly", "900441234", ""}, t, kTueMorning);
  EXPECT_EQ(d.kind, OutboundDecision::Kind::kForbidden);
  EXPECT_EQ(d.route, "intl");
  EXPECT_EQ(RouteOutbound({"Off", "95551234", ""}, t, kTueMorning).kind,
            OutboundDecision::Kind::kForbidden);
  EXPECT_EQ(RouteOutbound({"Nope", "95551234", ""}, t, kTueMorning).kind,
            OutboundDecision::Kind::kForbidden);
  EXPECT_EQ(RouteOutbound({"DialPlan1", "7123", ""}, t, kTueMorning).kind,
            OutboundDecision::Kind::kNoRoute);
  EXPECT_EQ(RouteOutbound({"DialPlan1", "", ""}, t, kTueMorning).kind,
            OutboundDecision::Kind::kNoRoute);
}

TEST(OutboundTest, TimeConditionClosesRoute) {
  RoutingTables t = Tables();
  EXPECT_EQ(RouteOutbound({"DialPlan1", "81234", ""}, t, kTueMorning).kind,
            OutboundDecision::Kind::kRoute);
  EXPECT_EQ(RouteOutbound({"DialPlan1", "81234", ""}, t, kTueLunch).kind,
            OutboundDecision::Kind::kClosed);
  EXPECT_EQ(RouteOutbound({"DialPlan1", "81234", ""}, t, kSaturday).kind,
            OutboundDecision::Kind::kClosed);
  EXPECT_EQ(RouteOutbound({"DialPlan1", "81234", ""}, t, kChristmas).kind,
            OutboundDecision::Kind::kClosed);
}

TEST(OutboundTest, LoneDotMatchesAnything) {
  RoutingTables t;
  t.outbound.push_back({"all", {{"", ".", ""}}, {"t1"}, "", 0, "", ""});
  t.permissions.push_back({"DialPlan1", true, {"all"}});
  OutboundDecision d = RouteOutbound({"DialPlan1", "*#0123", ""}, t, kTueMorning);
  EXPECT_EQ(d.kind, OutboundDecision::Kind::kRoute);
  EXPECT_EQ(d.number, "*#0123");
}

TEST(OutboundTest, PinsAndFailover) {
  RoutingTables t = Tables();
  EXPECT_TRUE(PinValid(t, "intl-pins", "1234"));
  EXPECT_TRUE(PinValid(t, "intl-pins", "98765"));
  EXPECT_FALSE(PinValid(t, "intl-pins", "123"));
  EXPECT_FALSE(PinValid(t, "intl-pins", ""));
  EXPECT_FALSE(PinValid(t, "other", "1234"));
  EXPECT_TRUE(ShouldFailover(503));
  EXPECT_TRUE(ShouldFailover(408));
  EXPECT_FALSE(ShouldFailover(486));
  EXPECT_FALSE(ShouldFailover(404));
}

TEST(TimeConditionTest, WorkdaysHolidaysEdges) {
  TimeCondition tc = Tables().time_conditions[0];
  EXPECT_EQ(Evaluate(tc, kTueMorning), TimeVerdict::kWorking);
  EXPECT_EQ(Evaluate(tc, kTueLunch), TimeVerdict::kClosed);
  EXPECT_EQ(Evaluate(tc, kSaturday), TimeVerdict::kClosed);
  EXPECT_EQ(Evaluate(tc, kChristmas), TimeVerdict::kHoliday);
  EXPECT_EQ(Evaluate(tc, {2026, 11, 24, 2, 9 * 60}), TimeVerdict::kWorking);   // start inclusive
  EXPECT_EQ(Evaluate(tc, {2026, 11, 24, 2, 18 * 60}), TimeVerdict::kClosed);   // end exclusive
  EXPECT_EQ(Evaluate(tc, {2026, 12, 26, 6, 10 * 60}), TimeVerdict::kHoliday);  // last day
  EXPECT_EQ(Evaluate(tc, {2026, 12, 27, 0, 10 * 60}), TimeVerdict::kClosed);
}

RoutingTables InboundTables() {
  RoutingTables t = Tables();
  t.inbound.push_back({"carrier-a", {"time_condition", "hours"}});
  t.inbound.push_back({"carrier-b", {"extension", "1002"}});
  t.did_routes.push_back({"sales", "", "67350453", "", {"extension", "1010"}});
  t.did_routes.push_back({"vip", "carrier-a", "", "47035229", {"extension", "1030"}});
  t.did_routes.push_back({"block", "carrier-a", "6735045[5-9]", "", {"extension", "1050"}});
  t.blacklist.push_back({"5550000", "admin", 0});
  t.blacklist.push_back({"0190*", "admin", 0});
  return t;
}

TEST(InboundTest, DidBypassesTrunkRouteAndTimeCondition) {
  RoutingTables t = InboundTables();
  InboundDecision d = RouteInbound({"carrier-a", "67350453", "1234"}, t, kSaturday);
  ASSERT_EQ(d.kind, InboundDecision::Kind::kDestination);
  EXPECT_EQ(d.destination, (Destination{"extension", "1010"}));
  d = RouteInbound({"carrier-a", "99999", "47035229"}, t, kSaturday);  // by caller
  EXPECT_EQ(d.destination, (Destination{"extension", "1030"}));
  d = RouteInbound({"carrier-b", "99999", "47035229"}, t, kSaturday);  // other trunk
  EXPECT_EQ(d.destination, (Destination{"extension", "1002"}));
  d = RouteInbound({"carrier-a", "67350457", "1"}, t, kSaturday);
  EXPECT_EQ(d.destination, (Destination{"extension", "1050"}));
}

TEST(InboundTest, TrunkRouteFollowsTimeCondition) {
  RoutingTables t = InboundTables();
  EXPECT_EQ(RouteInbound({"carrier-a", "1", "2"}, t, kTueMorning).destination,
            (Destination{"extension", "1001"}));
  EXPECT_EQ(RouteInbound({"carrier-a", "1", "2"}, t, kTueLunch).destination,
            (Destination{"extension", "1099"}));
  EXPECT_EQ(RouteInbound({"carrier-a", "1", "2"}, t, kChristmas).destination,
            (Destination{"hangup", ""}));
  EXPECT_EQ(RouteInbound({"unknown", "1", "2"}, t, kTueMorning).kind,
            InboundDecision::Kind::kNoRoute);
}

TEST(InboundTest, NestedTimeConditionsAndLoops) {
  RoutingTables t = InboundTables();
  TimeCondition lunch;
  lunch.name = "lunch";
  lunch.working = {{0b0111110, 12 * 60, 14 * 60}};
  lunch.when_working = {"extension", "1077"};
  lunch.when_closed = {"time_condition", "hours"};
  t.time_conditions.push_back(lunch);
  t.inbound[0].destination = {"time_condition", "lunch"};
  EXPECT_EQ(RouteInbound({"carrier-a", "1", "2"}, t, kTueLunch).destination,
            (Destination{"extension", "1077"}));
  EXPECT_EQ(RouteInbound({"carrier-a", "1", "2"}, t, kTueMorning).destination,
            (Destination{"extension", "1001"}));
  t.time_conditions[0].when_working = {"time_condition", "lunch"};  // a loop
  EXPECT_EQ(RouteInbound({"carrier-a", "1", "2"}, t, kTueMorning).kind,
            InboundDecision::Kind::kNoRoute);
}

TEST(InboundTest, BlacklistAnonymousAndOfficePause) {
  RoutingTables t = InboundTables();
  InboundDecision d = RouteInbound({"carrier-b", "1", "5550000"}, t, kTueMorning);
  EXPECT_EQ(d.kind, InboundDecision::Kind::kRejected);
  EXPECT_EQ(RouteInbound({"carrier-b", "1", "01901234"}, t, kTueMorning).kind,
            InboundDecision::Kind::kRejected);
  EXPECT_EQ(RouteInbound({"carrier-b", "1", "55500001"}, t, kTueMorning).kind,
            InboundDecision::Kind::kDestination);
  EXPECT_EQ(RouteInbound({"carrier-b", "1", "anonymous"}, t, kTueMorning).kind,
            InboundDecision::Kind::kDestination);
  t.block_anonymous = true;
  d = RouteInbound({"carrier-b", "1", "Anonymous"}, t, kTueMorning);
  EXPECT_EQ(d.kind, InboundDecision::Kind::kRejected);
  EXPECT_EQ(d.reason, "anonymous");
  EXPECT_EQ(RouteInbound({"carrier-b", "1", ""}, t, kTueMorning).kind,
            InboundDecision::Kind::kRejected);
  t.office_pause = Destination{"extension", "1000"};
  EXPECT_EQ(RouteInbound({"carrier-a", "67350453", "1"}, t, kTueMorning).destination,
            (Destination{"extension", "1000"}));
  EXPECT_EQ(RouteInbound({"carrier-b", "1", "5550000"}, t, kTueMorning).kind,
            InboundDecision::Kind::kRejected);  // the blacklist still applies
}

TEST(DestinationTypesTest, Registry) {
  DestinationTypes types;
  types.Register("extension", [](const std::string& id) { return id == "1001"; });
  types.Register("hangup", nullptr);
  EXPECT_TRUE(types.Validate({"extension", "1001"}).ok());
  EXPECT_TRUE(types.Validate({"hangup", ""}).ok());
  Status s = types.Validate({"extension", "1002"});
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  s = types.Validate({"ivr", "main"});
  EXPECT_NE(s.message().find("unknown destination type 'ivr'"), std::string::npos);
  // A later type joins without any change to routing.
  types.Register("ivr", [](const std::string& id) { return id == "main"; });
  EXPECT_TRUE(types.Validate({"ivr", "main"}).ok());
}

TEST(DialRuleTest, Validation) {
  EXPECT_TRUE(ValidateDialRule({"9", "NXXXXXX", "0"}).ok());
  EXPECT_TRUE(ValidateDialRule({"", "", ""}).ok());
  EXPECT_FALSE(ValidateDialRule({"9a", "X", ""}).ok());
  EXPECT_FALSE(ValidateDialRule({"9", "X", "0-"}).ok());
  EXPECT_FALSE(ValidateDialRule({"9", "X.X", ""}).ok());
}

}  // namespace
}  // namespace pbx::sip::routing
