// The dial plan through pbxctl and the API of a real pbxd: every kind can be created,
// listed and deleted; bad patterns, unknown destinations and missing references are
// refused with the field named, and nothing changes.
#include <filesystem>
#include <fstream>
#include <memory>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/pbxd_fixture.h"
#include "tests/support/process.h"

namespace pbx {
namespace {

using nlohmann::json;

class RoutingApiTest : public testing::Test {
 protected:
  void SetUp() override {
    pbxd_ = test::StartPbxd(dir_, "routetest", /*demo_extensions=*/true);
    ASSERT_TRUE(pbxd_) << test::ReadFile(dir_.Sub("pbxd.log"));
    test::CommandResult t = Pbxctl({"trunk", "add", "acme", "--host", "192.0.2.1", "--set",
                                    "mode=peer", "--set", "qualify_interval=0"});
    ASSERT_EQ(t.exit_code, 0) << t.err;
  }

  test::CommandResult Pbxctl(std::vector<std::string> args) { return test::Pbxctl(dir_, args); }

  void Add(const std::string& kind, const json& body) {
    test::CommandResult r = Pbxctl({"route", "add", kind, body.dump()});
    ASSERT_EQ(r.exit_code, 0) << kind << ": " << r.err;
  }

  // Refused, naming `field`.
  void Refused(const std::string& kind, const json& body, const std::string& field) {
    test::CommandResult r = Pbxctl({"route", "add", kind, body.dump()});
    EXPECT_NE(r.exit_code, 0) << kind << " " << body.dump();
    EXPECT_NE(r.err.find(field), std::string::npos) << r.err;
  }

  json List(const std::string& kind) {
    test::CommandResult r = Pbxctl({"route", "list", kind, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json j = json::parse(r.out, nullptr, false);
    return j.is_object() ? j["items"] : json::array();
  }

  test::TempDir dir_;
  std::unique_ptr<test::Process> pbxd_;
};

TEST_F(RoutingApiTest, EveryKindRoundTripsAndBadInputChangesNothing) {
  Add("pin-set", {{"name", "intl"}, {"pins", {"1234", "5678"}}});
  Add("time-condition",
      {{"name", "hours"},
       {"working",
        {{{"days", {"mon", "tue", "wed", "thu", "fri"}}, {"start", "09:00"}, {"end", "18:00"}}}},
       {"holidays", {{{"first", "2026-12-24"}, {"last", "2026-12-26"}}}},
       {"when_working", {{"type", "extension"}, {"id", "1001"}}},
       {"when_closed", {{"type", "hangup"}}}});
  Add("outbound", {{"name", "local"},
                   {"rules", {{{"prefix", "9"}, {"pattern", "NXXXXXX"}}}},
                   {"trunks", {"acme"}},
                   {"time_limit", 600},
                   {"pin_set", "intl"}});
  Add("permission", {{"name", "DialPlan1"}, {"routes", {"local"}}});
  Add("inbound",
      {{"trunk", "acme"}, {"destination", {{"type", "time_condition"}, {"id", "hours"}}}});
  Add("did", {{"name", "sales"},
              {"did_pattern", "6735045X"},
              {"destination", {{"type", "extension"}, {"id", "1002"}}}});
  Add("blacklist", {{"number", "0190*"}});

  json routes = List("outbound");
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(routes[0]["rules"][0]["pattern"], "NXXXXXX");
  EXPECT_EQ(List("time-condition")[0]["working"][0]["start"], "09:00");
  EXPECT_EQ(List("blacklist")[0]["creator"], "admin");

  Refused("outbound", {{"name", "x"}, {"rules", {{{"pattern", "9.1"}}}}, {"trunks", {"acme"}}},
          "rules");
  Refused("outbound", {{"name", "x"}, {"rules", {{{"pattern", "X."}}}}, {"trunks", {"nope"}}},
          "trunks");
  Refused(
      "outbound",
      {{"name", "x"}, {"rules", {{{"pattern", "X."}}}}, {"trunks", {"acme"}}, {"time_limit", 30}},
      "time_limit");
  Refused("did",
          {{"name", "x"},
           {"did_pattern", "[9"},
           {"destination", {{"type", "extension"}, {"id", "1002"}}}},
          "did_pattern");
  Refused("did",
          {{"name", "x"}, {"did_pattern", "1"}, {"destination", {{"type", "ivr"}, {"id", "main"}}}},
          "destination");
  Refused("did",
          {{"name", "x"},
           {"did_pattern", "1"},
           {"destination", {{"type", "extension"}, {"id", "9999"}}}},
          "destination");
  Refused("inbound", {{"trunk", "nope"}, {"destination", {{"type", "hangup"}}}}, "trunk");
  Refused("time-condition",
          {{"name", "loop"},
           {"when_working", {{"type", "time_condition"}, {"id", "loop"}}},
           {"when_closed", {{"type", "hangup"}}}},
          "when_working");
  Refused("blacklist", {{"number", "1001"}}, "number");  // an extension
  Refused("pin-set", {{"name", "p"}, {"pins", {"12"}}}, "pins");
  Refused("permission", {{"name", "p"}, {"routes", {"nope"}}}, "routes");
  Refused("outbound", {{"name", "local"}, {"rules", {{{"pattern", "X."}}}}, {"trunks", {"acme"}}},
          "exists");
  EXPECT_EQ(List("outbound").size(), 1u);
  EXPECT_EQ(List("did").size(), 1u);
  EXPECT_EQ(List("inbound").size(), 1u);
  EXPECT_EQ(List("time-condition").size(), 1u);
  EXPECT_EQ(List("blacklist").size(), 1u);
  EXPECT_EQ(List("pin-set").size(), 1u);
  EXPECT_EQ(List("permission").size(), 1u);

  EXPECT_EQ(Pbxctl({"route", "del", "did", "sales"}).exit_code, 0);
  EXPECT_TRUE(List("did").empty());
  EXPECT_NE(Pbxctl({"route", "del", "did", "sales"}).exit_code, 0);
  EXPECT_EQ(Pbxctl({"route", "list", "nonsense"}).exit_code, 2);
}

// The pages offer the destination types the node validates, and no others.
TEST_F(RoutingApiTest, DestinationTypesAreTheOnesThatValidate) {
  auto [status, body] = test::Api(dir_, "GET", "/api/v1/destination-types");
  ASSERT_EQ(status, 200) << body.dump();
  EXPECT_EQ(body["types"], json({"extension", "hangup", "time_condition"})) << body.dump();
}

}  // namespace
}  // namespace pbx
