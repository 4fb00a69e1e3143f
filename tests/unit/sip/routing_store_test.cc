// The dial plan and trunk records through the store: every field survives the round trip,
// preconditions hold, and LoadRoutingTables feeds the engine what the API stored.
#include <gtest/gtest.h>

#include "replication/store/repos.h"
#include "replication/store/state_store.h"
#include "sip/routing/routing.h"

namespace pbx::sip::routing {
namespace {

using store::Durability;
using store::WriteSet;

TEST(RoutingStoreTest, RecordsRoundTripAndFeedTheEngine) {
  std::unique_ptr<store::StateStore> st = store::NewMemStateStore();
  OutboundRoute out{
      "intl", {{"900", "X.", "00"}, {"", "+X.", ""}}, {"a", "b"}, "+4930", 600, "hours", "pins"};
  TimeCondition tc;
  tc.name = "hours";
  tc.working = {{0b0111110, 540, 1080}};
  tc.holidays = {{"2026-12-24", "2026-12-26"}};
  tc.when_working = {"extension", "1001"};
  tc.when_closed = {"hangup", ""};
  WriteSet w;
  store::OutboundRouteRepo(*st).Put(out, true, w);
  store::PermissionRepo(*st).Put({"DialPlan1", true, {"intl"}}, true, w);
  store::PinSetRepo(*st).Put({"pins", {"1234"}}, true, w);
  store::TimeConditionRepo(*st).Put(tc, true, w);
  store::DidRouteRepo(*st).Put({"sales", "a", "6735045X", "", {"time_condition", "hours"}}, true,
                               w);
  store::InboundRouteRepo(*st).Put({"a", {"extension", "1002"}}, true, w);
  store::BlacklistRepo(*st).Put({"0190*", "admin", 42}, true, w);
  store::RoutingSettingsRepo(*st).Put({true, false, {"extension", "1000"}}, w);
  ASSERT_TRUE(st->Commit(w, Durability::kAsync).ok());

  Result<OutboundRoute> got = store::OutboundRouteRepo(*st).Get("intl");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->rules.size(), 2u);
  EXPECT_EQ(got->rules[0].prepend, "00");
  EXPECT_EQ(got->trunks, out.trunks);
  EXPECT_EQ(got->time_limit, 600u);
  Result<TimeCondition> t = store::TimeConditionRepo(*st).Get("hours");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->working[0].end_minute, 1080);
  EXPECT_FALSE(t->when_holiday.has_value());
  EXPECT_EQ(store::BlacklistRepo(*st).Get("0190*")->created_unix, 42);

  Result<RoutingTables> tables = LoadRoutingTables(*st);
  ASSERT_TRUE(tables.ok()) << tables.status().ToString();
  EXPECT_TRUE(tables->block_anonymous);
  EXPECT_FALSE(tables->office_pause.has_value());
  LocalTime tuesday{2026, 11, 24, 2, 600};
  OutboundDecision d = RouteOutbound({"DialPlan1", "90044123", ""}, *tables, tuesday);
  EXPECT_EQ(d.kind, OutboundDecision::Kind::kRoute);
  EXPECT_EQ(d.number, "0044123");
  EXPECT_EQ(RouteInbound({"a", "67350451", "555"}, *tables, tuesday).destination,
            (Destination{"extension", "1001"}));
  EXPECT_EQ(RouteInbound({"a", "1", "01901"}, *tables, tuesday).kind,
            InboundDecision::Kind::kRejected);

  // Create of an existing record and delete of a missing one fail, changing nothing.
  WriteSet again;
  store::PinSetRepo(*st).Put({"pins", {"9"}}, true, again);
  EXPECT_EQ(st->Commit(again, Durability::kAsync).status().code(), Status::Code::kConflict);
  WriteSet gone;
  store::PinSetRepo(*st).Delete("nope", gone);
  EXPECT_EQ(st->Commit(gone, Durability::kAsync).status().code(), Status::Code::kConflict);
  EXPECT_EQ(store::PinSetRepo(*st).Get("pins")->pins, std::vector<std::string>{"1234"});
}

TEST(RoutingStoreTest, TrunkAndStateRoundTrip) {
  std::unique_ptr<store::StateStore> st = store::NewMemStateStore();
  store::Trunk t;
  t.name = "acme";
  t.host = "sip.example.net";
  t.password = "pw";
  t.new_call_id_per_register = true;
  t.codecs = {"PCMA"};
  store::TrunkState s{"acme", "cid@pbx", 7, "registered", 100, 200, "OK", 1, 0, true, 12, 3};
  WriteSet w;
  store::TrunkRepo(*st).Put(t, true, w);
  store::TrunkStateRepo(*st).Put(s, w);
  ASSERT_TRUE(st->Commit(w, Durability::kAsync).ok());
  EXPECT_EQ(*store::TrunkRepo(*st).Get("acme"), t);
  EXPECT_EQ(*store::TrunkStateRepo(*st).Get("acme"), s);
}

}  // namespace
}  // namespace pbx::sip::routing
