// SIP trunks against a real carrier: Kamailio (tests/system/kamailio_carrier.h) with
// digest auth and a registrar plays the ITSP on loopback, a real pbxd registers to it, and
// the test reads the carrier's location table (kamcmd) to see what the carrier saw. Calls:
// a far customer of the carrier (a test UA registered on Kamailio) and a pbxd extension
// call each other through the trunk, the carrier routing by its location table. The carrier
// listens on UDP, TCP and TLS (a certificate made for the run); the transport tests register,
// call and take calls over TCP and TLS, and read from the carrier's log how each request came
// (transport, connection, Via, Contact).
#include <cctype>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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
using test::Phone;
using test::Sdp;
using test::SipResponse;

constexpr char kCarrierUser[] = "acme";
constexpr char kCarrierPassword[] = "carrier-s3cret";
constexpr char kFarIp[] = "127.0.0.40";  // the carrier's customer, not challenged on INVITE
constexpr char kFarUser[] = "7001";
constexpr char kFarPassword[] = "far-pw";

class TrunkTest : public testing::Test {
 protected:
  void SetUp() override {
    if (!test::KamailioInstalled(/*tls=*/true)) GTEST_SKIP() << "kamailio is not installed";
    pbxd_ = test::StartPbxd(dir_, "trunktest", /*demo_extensions=*/false);
    ASSERT_TRUE(pbxd_) << test::ReadFile(dir_.Sub("pbxd.log"));
    ready_ = test::ReadyJson(dir_);
    carrier_ = std::make_unique<test::KamailioCarrier>(test::CarrierOptions{
        .dir = dir_.Sub("carrier"),
        .tcp = true,
        .tls = true,
        .far_address = kFarIp,
        .challenge_invites = challenge_invites_,
        // The peer trunk test's calls: to pbxd over TCP.
        .peer = fmt::format("sip:127.0.0.1:{};transport=tcp", PbxPort("tcp")),
        .subscribers = {{kCarrierUser, kCarrierPassword}, {kFarUser, kFarPassword}},
    });
    ASSERT_EQ(carrier_->Start(), "");
  }

  // pbxd's SIP port for `transport`.
  uint16_t PbxPort(const std::string& transport) {
    return ready_["sip_" + transport].get<uint16_t>();
  }
  // The carrier's port for `transport`.
  uint16_t CarrierPort(const std::string& transport) {
    return transport == "tls" ? carrier_->tls_port() : carrier_->port();
  }

  test::CommandResult Pbxctl(std::vector<std::string> args) { return test::Pbxctl(dir_, args); }

  json Trunks() {
    test::CommandResult r = Pbxctl({"trunk", "list", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    json j = json::parse(r.out, nullptr, false);
    return j.is_object() ? j["trunks"] : json::array();
  }

  void AddTrunk(const std::string& name, const std::string& password,
                std::vector<std::string> extra = {}, const std::string& transport = "udp") {
    std::vector<std::string> args = {
        "trunk", "add", name, "--host", "127.0.0.1", "--set",
        "port=" + std::to_string(CarrierPort(transport)), "--set", "transport=" + transport,
        "--set", std::string("username=") + kCarrierUser, "--set", "password=" + password, "--set",
        "domain=carrier",
        // Registered for 10 s, refreshed every 3 s.
        "--set", "expiry=10", "--set", "refresh_percent=30", "--set", "retry_interval=1"};
    args.insert(args.end(), extra.begin(), extra.end());
    test::CommandResult r = Pbxctl(args);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  // The register trunk "acme" over `transport`, registered.
  void RegisterAcme(const std::string& transport) {
    AddTrunk("acme", kCarrierPassword, {}, transport);
    ASSERT_EQ(WaitForState("acme", "registered")["state"], "registered")
        << pbxd_->Log() << carrier_->Log();
  }

  // Waits until trunk `name` shows `state` in the API; its status then.
  json WaitForState(const std::string& name, const std::string& state,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    json status;
    test::WaitFor(
        [&] {
          for (const json& t : Trunks()) {
            if (t["name"] == name) status = t["status"];
          }
          return status.value("state", "") == state;
        },
        timeout);
    return status;
  }

  // The first `n` distinct bindings the carrier holds, polled often enough to see each
  // refresh (every 3 s).
  std::vector<test::CarrierBinding> WatchBindings(size_t n) {
    std::vector<test::CarrierBinding> seen;
    test::WaitFor(
        [&] {
          std::optional<test::CarrierBinding> b = carrier_->Binding(kCarrierUser);
          if (b && (seen.empty() || !(seen.back() == *b))) seen.push_back(*b);
          return seen.size() >= n;
        },
        std::chrono::seconds(20));
    return seen;
  }

  // Extension 2001 (Alice) dials 7XXX through `trunk`; `did` rings her.
  void ConfigureCalls(const std::string& trunk, const std::string& did) {
    auto ok = [&](std::vector<std::string> args) {
      test::CommandResult r = Pbxctl(args);
      EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    };
    ok({"ext", "add", "2001", "--name", "Alice", "--password", "Alice-pw1"});
    ok({"route", "add", "outbound",
        json{{"name", "carrier"}, {"rules", {{{"pattern", "7XXX"}}}}, {"trunks", {trunk}}}.dump()});
    ok({"route", "add", "permission", json{{"name", "DialPlan1"}, {"routes", {"carrier"}}}.dump()});
    ok({"route", "add", "did",
        json{{"name", "main"},
             {"did_pattern", did},
             {"destination", {{"type", "extension"}, {"id", "2001"}}}}
            .dump()});
  }

  // Alice registered on pbxd, and the carrier's far customer registered on the carrier
  // (over UDP both: the trunk's transport is between pbxd and the carrier).
  Phone Alice() {
    Phone alice("2001", "127.0.0.11", PbxPort("udp"));
    std::optional<SipResponse> r = alice.Register("Alice-pw1");
    EXPECT_TRUE(r && r->status == 200) << (r ? r->raw : pbxd_->Log());
    return alice;
  }
  Phone Far() {
    Phone far(kFarUser, kFarIp, carrier_->port());
    std::optional<SipResponse> r = far.Register(kFarPassword, "MD5");  // Kamailio offers MD5 only
    EXPECT_TRUE(r && r->status == 200) << (r ? r->raw : carrier_->Log());
    return far;
  }

  // `caller` calls `number`; `callee` answers, then `caller` hangs up.
  void Talk(Phone& caller, const std::string& number, const std::string& password,
            const std::string& caller_ip, Phone& callee, const std::string& callee_ip) {
    ASSERT_TRUE(caller.Call(number, password, Sdp(caller_ip, 7078)));
    std::optional<SipResponse> inv = callee.Expect("INVITE", std::chrono::seconds(8));
    ASSERT_TRUE(inv) << pbxd_->Log() << carrier_->Log();
    callee.TakeInvite(*inv);
    callee.ua->Respond(*inv, 200, "OK", callee.local_tag, callee.ContactHeader(),
                       Sdp(callee_ip, 9078));
    std::optional<SipResponse> answered = caller.Final();
    ASSERT_TRUE(answered && answered->status == 200) << pbxd_->Log() << carrier_->Log();
    caller.Ack2xx(*answered);
    ASSERT_TRUE(callee.Expect("ACK")) << pbxd_->Log() << carrier_->Log();
    caller.ua->SendRaw(caller.InDialog("BYE", ++caller.cseq));
    std::optional<SipResponse> bye = callee.Expect("BYE");
    ASSERT_TRUE(bye) << pbxd_->Log() << carrier_->Log();
    callee.ua->Respond(*bye, 200, "OK");
    ASSERT_TRUE(caller.Final());
  }
  // Out: Alice -> pbxd -> trunk (407 answered) -> Kamailio -> the far customer.
  void CallOut(Phone& alice, Phone& far) {
    Talk(alice, kFarUser, "Alice-pw1", "127.0.0.11", far, kFarIp);
  }
  // In: the far customer dials `did` -> Kamailio -> pbxd (the trunk's contact) -> Alice.
  void CallIn(Phone& far, const std::string& did, Phone& alice) {
    Talk(far, did, "", kFarIp, alice, "127.0.0.11");
  }

  void ExpectCdrs(const std::string& trunk) {
    json rows;
    ASSERT_TRUE(test::WaitFor([&] {
      test::CommandResult c = Pbxctl({"cdr", "--json"});
      rows = json::parse(c.out, nullptr, false)["records"];
      return rows.is_array() && rows.size() >= 2;
    })) << rows.dump();
    EXPECT_EQ(rows[0]["type"], "outbound") << rows.dump();
    EXPECT_EQ(rows[0]["trunk"], trunk);
    EXPECT_EQ(rows[0]["status"], "answered");
    EXPECT_EQ(rows[1]["type"], "inbound") << rows.dump();
    EXPECT_EQ(rows[1]["trunk"], trunk);
    EXPECT_EQ(rows[1]["final_callee"], "2001");
    EXPECT_EQ(rows[1]["status"], "answered");
  }

  bool challenge_invites_ = true;  // the carrier's 407 to pbxd's INVITEs
  test::TempDir dir_;
  std::unique_ptr<test::Process> pbxd_;
  json ready_;
  std::unique_ptr<test::KamailioCarrier> carrier_;
};

TEST_F(TrunkTest, RegistersWithDigestAndRefreshesKeepCallIdWithCseqPlusOne) {
  AddTrunk("acme", kCarrierPassword);
  std::vector<test::CarrierBinding> seen = WatchBindings(3);
  ASSERT_EQ(seen.size(), 3u) << pbxd_->Log() << carrier_->Log();
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
  ASSERT_EQ(seen.size(), 3u) << pbxd_->Log() << carrier_->Log();
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
  EXPECT_FALSE(carrier_->Binding(kCarrierUser));
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
  ASSERT_NO_FATAL_FAILURE(RegisterAcme("udp"));
  ConfigureCalls("acme", "5551000");
  Phone alice = Alice();
  Phone far = Far();
  CallOut(alice, far);
  CallIn(far, "5551000", alice);
  ExpectCdrs("acme");
}

TEST_F(TrunkTest, DeletedTrunkUnregistersFromTheCarrier) {
  AddTrunk("acme", kCarrierPassword);
  std::vector<test::CarrierBinding> seen = WatchBindings(1);
  ASSERT_EQ(seen.size(), 1u) << pbxd_->Log() << carrier_->Log();
  test::CommandResult r = Pbxctl({"trunk", "del", "acme"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Expires: 0 with the same Call-ID removes the binding at the carrier at once.
  EXPECT_TRUE(
      test::WaitFor([&] { return !carrier_->Binding(kCarrierUser); }, std::chrono::seconds(5)))
      << pbxd_->Log() << carrier_->Log();
  EXPECT_NE(pbxd_->Log().find("acme unregistering"), std::string::npos) << pbxd_->Log();
}

// --- TCP and TLS trunks (issue 5: transports) ---

class TrunkTransportTest : public TrunkTest, public testing::WithParamInterface<std::string> {
 protected:
  // The carrier takes pbxd's INVITEs without a challenge here; TrunkTransportAuthTest
  // challenges them.
  TrunkTransportTest() { challenge_invites_ = false; }
  std::string Transport() const { return GetParam(); }
  // The Via of what pbxd sends over it.
  std::string ViaPrefix() const {
    std::string t = GetParam();
    for (char& c : t) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return "SIP/2.0/" + t + " ";
  }

  // Out and in through "acme" over the transport: pbxd's `invites` INVITEs reached the
  // carrier over it, on the registration's connection; the carrier sent the DID's INVITE
  // to the trunk's registered contact, over the same transport.
  void CallBothWays(size_t invites) {
    ASSERT_NO_FATAL_FAILURE(RegisterAcme(Transport()));
    ConfigureCalls("acme", "5551000");
    Phone alice = Alice();
    Phone far = Far();
    CallOut(alice, far);
    std::vector<test::CarrierRequest> sent = carrier_->Requests("INVITE");
    std::erase_if(sent, [](const test::CarrierRequest& r) { return r.user != kFarUser; });
    ASSERT_EQ(sent.size(), invites) << carrier_->Log();
    for (const test::CarrierRequest& r : sent) {
      EXPECT_EQ(r.proto, Transport());
      EXPECT_EQ(r.conid, carrier_->Registers(kCarrierUser).back().conid);
      EXPECT_EQ(r.via.rfind(ViaPrefix(), 0), 0u) << r.via;
      // The carrier's BYE and re-INVITEs come back over the trunk's transport.
      EXPECT_NE(r.contact.find(fmt::format(":{};transport={}>", PbxPort(Transport()), Transport())),
                std::string::npos)
          << r.contact;
    }
    CallIn(far, "5551000", alice);
    EXPECT_EQ(carrier_->InvitesSentTo("127.0.0.1", PbxPort(Transport())),
              std::vector<std::string>{Transport()})
        << carrier_->Log();
    ExpectCdrs("acme");
  }
};

TEST_P(TrunkTransportTest, RegistersAndRefreshesOnOneConnection) {
  AddTrunk("acme", kCarrierPassword, {}, Transport());
  std::vector<test::CarrierBinding> seen = WatchBindings(3);
  ASSERT_EQ(seen.size(), 3u) << pbxd_->Log() << carrier_->Log();
  for (size_t i = 1; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].call_id, seen[0].call_id);
    EXPECT_EQ(seen[i].cseq, seen[i - 1].cseq + 1) << "refresh " << i;
  }
  // Every REGISTER (the challenged one, its answer, each refresh) came over the trunk's
  // transport on one connection, with a Via and Contact for that transport: the carrier
  // reaches pbxd's listening port for calls.
  std::vector<test::CarrierRequest> regs = carrier_->Registers(kCarrierUser);
  ASSERT_GE(regs.size(), 4u) << carrier_->Log();
  std::string contact = fmt::format("<sip:{}@127.0.0.1:{};transport={}>", kCarrierUser,
                                    PbxPort(Transport()), Transport());
  for (const test::CarrierRequest& r : regs) {
    EXPECT_EQ(r.proto, Transport()) << r.cseq;
    EXPECT_EQ(r.conid, regs[0].conid) << r.cseq;
    EXPECT_EQ(r.via.rfind(ViaPrefix(), 0), 0u) << r.via;
    EXPECT_EQ(r.contact, contact);
  }
  json status = WaitForState("acme", "registered");
  EXPECT_EQ(status["last_code"], 200) << status.dump();
  // The OPTIONS health check goes over it too.
  EXPECT_TRUE(test::WaitFor([&] { return Trunks()[0]["status"].value("qualify_ok", false); }));
}

TEST_P(TrunkTransportTest, ReopensTheConnectionAfterTheCarrierClosedIt) {
  ASSERT_NO_FATAL_FAILURE(RegisterAcme(Transport()));
  std::vector<test::CarrierRequest> before = carrier_->Registers(kCarrierUser);
  ASSERT_FALSE(before.empty());
  // The carrier goes away: its connections close, the next refresh finds no one.
  carrier_->Stop();
  json down = WaitForState("acme", "unreachable");
  ASSERT_EQ(down["state"], "unreachable") << down.dump() << pbxd_->Log();
  EXPECT_GE(down["failures"].get<int>(), 1);
  test::CommandResult table = Pbxctl({"trunk", "list"});
  EXPECT_NE(table.out.find("unreachable"), std::string::npos) << table.out;
  // Back: a retry opens a new connection and registers again (the carrier forgot the
  // binding), continuing the Call-ID with a higher CSeq.
  ASSERT_EQ(carrier_->Start(), "");
  json up = WaitForState("acme", "registered");
  ASSERT_EQ(up["state"], "registered") << up.dump() << pbxd_->Log() << carrier_->Log();
  EXPECT_EQ(up["failures"], 0);
  std::optional<test::CarrierBinding> binding = carrier_->Binding(kCarrierUser);
  ASSERT_TRUE(binding) << carrier_->Log();
  EXPECT_EQ(binding->call_id, before.back().call_id);
  EXPECT_GT(binding->cseq, before.back().cseq);
  std::vector<test::CarrierRequest> after = carrier_->Registers(kCarrierUser);
  ASSERT_GT(after.size(), before.size());
  EXPECT_EQ(after.back().proto, Transport());
}

TEST_P(TrunkTransportTest, CallsBothWaysOverTheTrunksTransport) { CallBothWays(1); }

INSTANTIATE_TEST_SUITE_P(Transports, TrunkTransportTest, testing::Values("tcp", "tls"),
                         [](const testing::TestParamInfo<std::string>& p) { return p.param; });

class TrunkTransportAuthTest : public TrunkTransportTest {
 protected:
  TrunkTransportAuthTest() { challenge_invites_ = true; }
};

// The carrier challenges the INVITE (407) over TCP/TLS and pbxd answers on the same
// connection. Over TCP/TLS nta frees a finished transaction at once: this caught pbxd
// reading the 407 after destroying its transaction.
TEST_P(TrunkTransportAuthTest, CallsBothWaysAnsweringTheCarriersChallenge) {
  CallBothWays(2);  // challenged, then answered
}

INSTANTIATE_TEST_SUITE_P(Transports, TrunkTransportAuthTest, testing::Values("tcp", "tls"),
                         [](const testing::TestParamInfo<std::string>& p) { return p.param; });

// A peer trunk over TCP: no registration; the carrier's INVITE comes from the trunk's
// address over TCP and is taken as the trunk's (no challenge), routed by its DID. (Calls
// out through it would meet the carrier's challenge: a peer trunk has no credentials.)
TEST_F(TrunkTest, PeerTrunkOverTcpTakesCallsFromThePeer) {
  test::CommandResult r =
      Pbxctl({"trunk", "add", "peer", "--host", "127.0.0.1", "--set", "mode=peer", "--set",
              "transport=tcp", "--set", "port=" + std::to_string(carrier_->port()), "--set",
              "qualify_interval=1"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // Its OPTIONS over TCP are answered.
  EXPECT_EQ(WaitForState("peer", "reachable")["state"], "reachable") << pbxd_->Log();
  std::vector<test::CarrierRequest> none = carrier_->Registers(kCarrierUser);
  EXPECT_TRUE(none.empty());
  ConfigureCalls("peer", "5561000");
  Phone alice = Alice();
  Phone far = Far();
  CallIn(far, "5561000", alice);
  EXPECT_EQ(carrier_->InvitesSentTo("127.0.0.1", PbxPort("tcp")), std::vector<std::string>{"tcp"})
      << carrier_->Log();
  json rows;
  ASSERT_TRUE(test::WaitFor([&] {
    rows = json::parse(Pbxctl({"cdr", "--json"}).out, nullptr, false)["records"];
    return rows.is_array() && !rows.empty();
  })) << rows.dump();
  EXPECT_EQ(rows[0]["type"], "inbound") << rows.dump();
  EXPECT_EQ(rows[0]["trunk"], "peer");
  EXPECT_EQ(rows[0]["final_callee"], "2001");
}

}  // namespace
}  // namespace pbx
