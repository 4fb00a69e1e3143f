// SIP trunks against a real carrier: Kamailio (tests/system/kamailio_carrier.h) with
// digest auth and a registrar plays the ITSP on loopback, a real pbxd registers to it, and
// the test reads the carrier's location table (kamcmd) to see what the carrier saw. Calls:
// a far customer of the carrier (a test UA registered on Kamailio) and a pbxd extension
// call each other through the trunk, the carrier routing by its location table.
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/pbxd_fixture.h"
#include "tests/integration/sip_phone.h"
#include "tests/support/process.h"
#include "tests/system/kamailio_carrier.h"

namespace pbx {
namespace {

using nlohmann::json;

constexpr char kCarrierUser[] = "acme";
constexpr char kCarrierPassword[] = "carrier-s3cret";
constexpr char kFarIp[] = "127.0.0.40";  // the carrier's customer, not challenged on INVITE
constexpr char kFarUser[] = "7001";
constexpr char kFarPassword[] = "far-pw";

class TrunkTest : public testing::Test {
 protected:
  void SetUp() override {
    if (!test::KamailioInstalled()) GTEST_SKIP() << "kamailio is not installed";
    ASSERT_EQ(carrier_.Start(), "");
    pbxd_ = test::StartPbxd(dir_, "trunktest", /*demo_extensions=*/false);
    ASSERT_TRUE(pbxd_) << test::ReadFile(dir_.Sub("pbxd.log"));
  }

  test::CommandResult Pbxctl(std::vector<std::string> args) { return test::Pbxctl(dir_, args); }

  json Trunks() {
    test::CommandResult r = Pbxctl({"trunk", "list", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    json j = json::parse(r.out, nullptr, false);
    return j.is_object() ? j["trunks"] : json::array();
  }

  void AddTrunk(const std::string& name, const std::string& password,
                std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "trunk", "add", name, "--host", "127.0.0.1", "--set",
        "port=" + std::to_string(carrier_.port()), "--set", std::string("username=") + kCarrierUser,
        "--set", "password=" + password, "--set", "domain=carrier",
        // Registered for 10 s, refreshed every 3 s.
        "--set", "expiry=10", "--set", "refresh_percent=30", "--set", "retry_interval=1"};
    args.insert(args.end(), extra.begin(), extra.end());
    test::CommandResult r = Pbxctl(args);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  // The first `n` distinct bindings the carrier holds, polled often enough to see each
  // refresh (every 3 s).
  std::vector<test::CarrierBinding> WatchBindings(size_t n) {
    std::vector<test::CarrierBinding> seen;
    test::WaitFor(
        [&] {
          std::optional<test::CarrierBinding> b = carrier_.Binding(kCarrierUser);
          if (b && (seen.empty() || !(seen.back() == *b))) seen.push_back(*b);
          return seen.size() >= n;
        },
        std::chrono::seconds(20));
    return seen;
  }

  test::TempDir dir_;
  test::KamailioCarrier carrier_{{
      .dir = dir_.Sub("carrier"),
      .far_address = kFarIp,
      .subscribers = {{kCarrierUser, kCarrierPassword}, {kFarUser, kFarPassword}},
  }};
  std::unique_ptr<test::Process> pbxd_;
};

TEST_F(TrunkTest, RegistersWithDigestAndRefreshesKeepCallIdWithCseqPlusOne) {
  AddTrunk("acme", kCarrierPassword);
  std::vector<test::CarrierBinding> seen = WatchBindings(3);
  ASSERT_EQ(seen.size(), 3u) << pbxd_->Log() << carrier_.Log();
  for (size_t i = 1; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].call_id, seen[0].call_id);
    EXPECT_EQ(seen[i].cseq, seen[i - 1].cseq + 1) << "refresh " << i;
  }
  json trunks = Trunks();
  ASSERT_EQ(trunks.size(), 1u);
  EXPECT_EQ(trunks[0]["status"]["state"], "registered") << trunks.dump();
  EXPECT_EQ(trunks[0]["status"]["last_code"], 200);
  EXPECT_FALSE(trunks[0].contains("password"));
  EXPECT_EQ(trunks[0]["has_password"], true);
  EXPECT_EQ(Pbxctl({"trunk", "list"}).out.find(kCarrierPassword), std::string::npos);
  // The OPTIONS health check reached the carrier too.
  EXPECT_TRUE(test::WaitFor([&] { return Trunks()[0]["status"].value("qualify_ok", false); }));
}

TEST_F(TrunkTest, NewCallIdPerRegisterOptionChangesTheCallId) {
  AddTrunk("quirky", kCarrierPassword, {"--set", "new_call_id_per_register=true"});
  std::vector<test::CarrierBinding> seen = WatchBindings(3);
  ASSERT_EQ(seen.size(), 3u) << pbxd_->Log() << carrier_.Log();
  EXPECT_NE(seen[1].call_id, seen[0].call_id);
  EXPECT_NE(seen[2].call_id, seen[1].call_id);
}

TEST_F(TrunkTest, WrongPasswordShowsFailedWithTheResponseCode) {
  AddTrunk("acme", "not-the-password");
  json trunk;
  ASSERT_TRUE(test::WaitFor([&] {
    json t = Trunks();
    if (t.empty() || t[0]["status"]["state"] != "failed") return false;
    trunk = t[0];
    return true;
  })) << pbxd_->Log();
  EXPECT_EQ(trunk["status"]["last_code"], 401) << trunk.dump();
  EXPECT_FALSE(carrier_.Binding(kCarrierUser));
  test::CommandResult table = Pbxctl({"trunk", "list"});
  EXPECT_NE(table.out.find("failed"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("401"), std::string::npos) << table.out;
}

TEST_F(TrunkTest, BadTrunksAreRefusedNamingTheFieldAndChangeNothing) {
  struct Case {
    std::vector<std::string> set;
    std::string host;
    std::string field;
  };
  for (const Case& c : std::vector<Case>{
           {{}, "", "host"},
           {{"port=70000"}, "127.0.0.1", "port"},
           {{"transport=sctp"}, "127.0.0.1", "transport"},
           {{"mode=register"}, "127.0.0.1", "username"},
           {{"mode=peer", "codecs=[]"}, "127.0.0.1", "codecs"},
           {{"mode=peer", "colour=blue"}, "127.0.0.1", "colour"},
       }) {
    std::vector<std::string> args = {"trunk", "add", "bad", "--host", c.host};
    for (const std::string& s : c.set) args.insert(args.end(), {"--set", s});
    test::CommandResult r = Pbxctl(args);
    EXPECT_NE(r.exit_code, 0) << c.field;
    EXPECT_NE(r.err.find(c.field), std::string::npos) << r.err;
  }
  EXPECT_TRUE(Trunks().empty());
  // Deleting what does not exist is a 404, and a real delete removes the trunk.
  EXPECT_NE(Pbxctl({"trunk", "del", "ghost"}).exit_code, 0);
  test::CommandResult ok = Pbxctl({"trunk", "add", "peer1", "--host", "127.0.0.1", "--set",
                                   "mode=peer", "--set", "qualify_interval=0"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(Trunks().size(), 1u);
  EXPECT_EQ(Pbxctl({"trunk", "del", "peer1"}).exit_code, 0);
  EXPECT_TRUE(Trunks().empty());
}

TEST_F(TrunkTest, CallsBothWaysThroughTheCarrier) {
  using test::Phone;
  using test::Sdp;
  using test::SipResponse;
  using test::SipTestUa;
  AddTrunk("acme", kCarrierPassword);
  ASSERT_TRUE(test::WaitFor([&] {
    json t = Trunks();
    return !t.empty() && t[0]["status"]["state"] == "registered";
  })) << pbxd_->Log()
      << carrier_.Log();
  auto ok = [&](std::vector<std::string> args) {
    test::CommandResult r = Pbxctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  };
  ok({"ext", "add", "2001", "--name", "Alice", "--password", "Alice-pw1"});
  ok({"route", "add", "outbound",
      json{{"name", "carrier"}, {"rules", {{{"pattern", "7XXX"}}}}, {"trunks", {"acme"}}}.dump()});
  ok({"route", "add", "permission", json{{"name", "DialPlan1"}, {"routes", {"carrier"}}}.dump()});
  ok({"route", "add", "did",
      json{{"name", "main"},
           {"did_pattern", "5551000"},
           {"destination", {{"type", "extension"}, {"id", "2001"}}}}
          .dump()});
  json ready = json::parse(test::ReadFile(dir_.Sub("run/ready.json")));
  uint16_t pbx_port = ready["sip_udp"].get<uint16_t>();

  Phone alice("2001", "127.0.0.11", pbx_port);
  std::optional<SipResponse> r = alice.Register("Alice-pw1");
  ASSERT_TRUE(r && r->status == 200) << (r ? r->raw : pbxd_->Log());
  Phone far(kFarUser, kFarIp, carrier_.port());
  r = far.Register(kFarPassword, "MD5");  // Kamailio offers MD5 only
  ASSERT_TRUE(r && r->status == 200) << (r ? r->raw : carrier_.Log());

  // Out: Alice -> pbxd -> trunk (407 answered) -> Kamailio -> the far customer.
  ASSERT_TRUE(alice.Call(kFarUser, "Alice-pw1", Sdp("127.0.0.11", 7078)));
  std::optional<SipResponse> inv = far.Expect("INVITE", std::chrono::seconds(8));
  ASSERT_TRUE(inv) << pbxd_->Log() << carrier_.Log();
  far.TakeInvite(*inv);
  far.ua->Respond(*inv, 200, "OK", far.local_tag, far.ContactHeader(), Sdp(kFarIp, 9078));
  std::optional<SipResponse> answered = alice.Final();
  ASSERT_TRUE(answered && answered->status == 200) << pbxd_->Log() << carrier_.Log();
  alice.Ack2xx(*answered);
  ASSERT_TRUE(far.Expect("ACK")) << pbxd_->Log() << carrier_.Log();
  alice.ua->SendRaw(alice.InDialog("BYE", ++alice.cseq));
  std::optional<SipResponse> bye = far.Expect("BYE");
  ASSERT_TRUE(bye) << pbxd_->Log() << carrier_.Log();
  far.ua->Respond(*bye, 200, "OK");
  ASSERT_TRUE(alice.Final());

  // In: the far customer dials the DID -> Kamailio -> the trunk's contact -> Alice.
  ASSERT_TRUE(far.Call("5551000", "", Sdp(kFarIp, 9078)));
  inv = alice.Expect("INVITE", std::chrono::seconds(8));
  ASSERT_TRUE(inv) << pbxd_->Log() << carrier_.Log();
  alice.TakeInvite(*inv);
  alice.ua->Respond(*inv, 200, "OK", alice.local_tag, alice.ContactHeader(),
                    Sdp("127.0.0.11", 7078));
  answered = far.Final();
  ASSERT_TRUE(answered && answered->status == 200) << pbxd_->Log() << carrier_.Log();
  far.Ack2xx(*answered);
  ASSERT_TRUE(alice.Expect("ACK")) << pbxd_->Log();
  far.ua->SendRaw(far.InDialog("BYE", ++far.cseq));
  bye = alice.Expect("BYE");
  ASSERT_TRUE(bye) << pbxd_->Log() << carrier_.Log();
  alice.ua->Respond(*bye, 200, "OK");

  json rows;
  ASSERT_TRUE(test::WaitFor([&] {
    test::CommandResult c = Pbxctl({"cdr", "--json"});
    rows = json::parse(c.out, nullptr, false)["records"];
    return rows.is_array() && rows.size() >= 2;
  })) << rows.dump();
  EXPECT_EQ(rows[0]["type"], "outbound") << rows.dump();
  EXPECT_EQ(rows[0]["trunk"], "acme");
  EXPECT_EQ(rows[0]["status"], "answered");
  EXPECT_EQ(rows[1]["type"], "inbound") << rows.dump();
  EXPECT_EQ(rows[1]["trunk"], "acme");
  EXPECT_EQ(rows[1]["final_callee"], "2001");
  EXPECT_EQ(rows[1]["status"], "answered");
}

TEST_F(TrunkTest, DeletedTrunkUnregistersFromTheCarrier) {
  AddTrunk("acme", kCarrierPassword);
  std::vector<test::CarrierBinding> seen = WatchBindings(1);
  ASSERT_EQ(seen.size(), 1u) << pbxd_->Log() << carrier_.Log();
  test::CommandResult r = Pbxctl({"trunk", "del", "acme"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Expires: 0 with the same Call-ID removes the binding at the carrier at once.
  EXPECT_TRUE(
      test::WaitFor([&] { return !carrier_.Binding(kCarrierUser); }, std::chrono::seconds(5)))
      << pbxd_->Log() << carrier_.Log();
  EXPECT_NE(pbxd_->Log().find("acme unregistering"), std::string::npos) << pbxd_->Log();
}

}  // namespace
}  // namespace pbx
