// Calls through trunks on loopback: a real pbxd, phones and carriers played by small UDP
// user agents (tests/integration/sip_phone.h). A peer trunk points at a carrier UA's
// address and port, so the test sees exactly what the carrier receives: the Request-URI
// after strip/prepend, the caller ID, the digest answer to its 401, failover to the next
// trunk on 503, a full trunk skipped; and inbound: DID to an extension, the blacklist, a
// destination that does not exist yet, no route, and an unknown source still challenged.
#include <memory>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/pbxd_fixture.h"
#include "tests/integration/sip_phone.h"
#include "tests/support/process.h"
#include "tests/support/rtp_peer.h"
#include "tests/support/sip_test_ua.h"

namespace pbx {
namespace {

using nlohmann::json;
using test::AudioPort;
using test::Body;
using test::Phone;
using test::Sdp;
using test::SipResponse;
using test::SipTestUa;
using namespace std::chrono_literals;

constexpr char kPassword[] = "Trunk5-pw";

class TrunkCallsTest : public testing::Test {
 protected:
  void SetUp() override {
    pbxd_ = test::StartPbxd(dir_, "trunkcalls", /*demo_extensions=*/false);
    ASSERT_TRUE(pbxd_) << test::ReadFile(dir_.Sub("pbxd.log"));
    json ready = json::parse(test::ReadFile(dir_.Sub("run/ready.json")));
    sip_port_ = ready["sip_udp"].get<uint16_t>();
    Ok({"ext", "add", "2001", "--name", "Alice", "--password", kPassword});
    Ok({"ext", "add", "2002", "--name", "Bob", "--password", kPassword});
  }

  test::CommandResult Pbxctl(std::vector<std::string> args) { return test::Pbxctl(dir_, args); }
  void Ok(std::vector<std::string> args) {
    test::CommandResult r = Pbxctl(args);
    ASSERT_EQ(r.exit_code, 0) << args[0] << " " << args[1] << ": " << r.out << r.err;
  }
  void Route(const std::string& kind, const json& body) { Ok({"route", "add", kind, body.dump()}); }
  json PbxctlJson(std::vector<std::string> args) {
    args.push_back("--json");
    test::CommandResult r = Pbxctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return json::parse(r.out, nullptr, false);
  }
  json Cdrs(size_t n) {
    json rows;
    test::WaitFor(
        [&] {
          rows = PbxctlJson({"cdr"})["records"];
          return rows.is_array() && rows.size() >= n;
        },
        5s);
    return rows;
  }

  // A carrier UA on `ip` and a peer trunk `name` pointing at it.
  std::unique_ptr<Phone> Carrier(const std::string& name, const std::string& ip,
                                 std::vector<std::string> extra = {}) {
    auto c = std::make_unique<Phone>("0123456", ip, sip_port_);
    std::vector<std::string> args = {"trunk",
                                     "add",
                                     name,
                                     "--host",
                                     ip,
                                     "--set",
                                     "mode=peer",
                                     "--set",
                                     fmt::format("port={}", c->ua->local_port()),
                                     "--set",
                                     "qualify_interval=0"};
    args.insert(args.end(), extra.begin(), extra.end());
    Ok(args);
    return c;
  }

  std::unique_ptr<Phone> Register(const std::string& number, const std::string& ip) {
    auto p = std::make_unique<Phone>(number, ip, sip_port_);
    std::optional<SipResponse> r = p->Register(kPassword);
    EXPECT_TRUE(r && r->status == 200) << (r ? r->raw : pbxd_->Log());
    return p;
  }

  // `phone` dials `number`; returns its final response (after the digest round).
  std::optional<SipResponse> Dial(Phone& phone, const std::string& number) {
    std::optional<SipResponse> first =
        phone.Call(number, kPassword, Sdp(phone.ua->local_ip(), 7078));
    if (first && first->status >= 200) return first;
    return phone.Final(nullptr, 8s);
  }

  // The callee side answers the INVITE it got with 200 and SDP; the caller ACKs.
  void Answer(Phone& callee, const SipResponse& invite, Phone& caller) {
    callee.TakeInvite(invite);
    callee.ua->Respond(invite, 200, "OK", callee.local_tag, callee.ContactHeader(),
                       Sdp(callee.ua->local_ip(), 9078));
    std::optional<SipResponse> ok = caller.Final(nullptr, 5s);
    ASSERT_TRUE(ok) << pbxd_->Log();
    ASSERT_EQ(ok->status, 200) << ok->raw;
    caller.Ack2xx(*ok);
    ASSERT_TRUE(callee.Expect("ACK")) << pbxd_->Log();
  }

  // `side` hangs up; the other side gets the BYE.
  void HangUp(Phone& side, Phone& other) {
    side.ua->SendRaw(side.InDialog("BYE", ++side.cseq));
    std::optional<SipResponse> bye = other.Expect("BYE");
    ASSERT_TRUE(bye) << pbxd_->Log();
    other.ua->Respond(*bye, 200, "OK");
    std::optional<SipResponse> ok = side.Final(nullptr, 3s);  // consumed: not the next call's
    ASSERT_TRUE(ok && ok->status == 200) << (ok ? ok->raw : pbxd_->Log());
  }

  test::TempDir dir_;
  std::unique_ptr<test::Process> pbxd_;
  uint16_t sip_port_ = 0;
};

TEST_F(TrunkCallsTest, OutboundCallAnswersTheCarriersChallengeAndWritesCdr) {
  auto carrier = Carrier("acme", "127.0.0.21",
                         {"--set", "auth_user=acme-auth", "--set", "password=carrier-pw", "--set",
                          "outbound_cli=\"67293500\"", "--set", "cli_mode=trunk"});
  Route("outbound", {{"name", "national"},
                     {"rules", {{{"prefix", "9"}, {"pattern", "0X."}, {"prepend", "44"}}}},
                     {"trunks", {"acme"}}});
  Route("permission", {{"name", "DialPlan1"}, {"routes", {"national"}}});
  auto alice = Register("2001", "127.0.0.11");

  ASSERT_TRUE(alice->Call("90201234", kPassword, Sdp("127.0.0.11", 7078)));
  std::optional<SipResponse> inv = carrier->Expect("INVITE");
  ASSERT_TRUE(inv) << pbxd_->Log();
  // Prefix 9 stripped, 44 prepended, sent to the trunk's host and port.
  EXPECT_EQ(inv->raw.find(fmt::format("INVITE sip:440201234@127.0.0.21:{} SIP/2.0",
                                      carrier->ua->local_port())),
            0u)
      << inv->raw;
  EXPECT_NE(inv->Header("From").find("<sip:67293500@127.0.0.21>"), std::string::npos)
      << inv->Header("From");
  carrier->ua->Respond(*inv, 401, "Unauthorized", "x1",
                       "WWW-Authenticate: Digest realm=\"carrier\", nonce=\"n0nce\", "
                       "qop=\"auth\", algorithm=MD5\r\n");
  std::optional<SipResponse> again = carrier->Expect("INVITE");
  ASSERT_TRUE(again) << pbxd_->Log();
  EXPECT_EQ(again->Header("Call-ID"), inv->Header("Call-ID"));
  EXPECT_EQ(std::stoi(again->Header("CSeq")), std::stoi(inv->Header("CSeq")) + 1);
  std::string auth = again->Header("Authorization");
  EXPECT_NE(auth.find("username=\"acme-auth\""), std::string::npos) << auth;
  EXPECT_NE(auth.find("realm=\"carrier\""), std::string::npos) << auth;
  // PCMU and PCMA only (the trunk's default list); telephone-event passes.
  EXPECT_NE(Body(*again).find("RTP/AVP 0 8 101"), std::string::npos) << Body(*again);
  carrier->ua->Respond(*again, 180, "Ringing", "c1", carrier->ContactHeader());
  ASSERT_NO_FATAL_FAILURE(Answer(*carrier, *again, *alice));

  json calls = PbxctlJson({"calls"})["calls"];
  ASSERT_EQ(calls.size(), 1u) << calls.dump();
  EXPECT_EQ(calls[0]["trunk"], "acme");
  ASSERT_NO_FATAL_FAILURE(HangUp(*alice, *carrier));
  json cdr = Cdrs(1).back();
  EXPECT_EQ(cdr["type"], "outbound") << cdr.dump();
  EXPECT_EQ(cdr["trunk"], "acme");
  EXPECT_EQ(cdr["callee"], "90201234");
  EXPECT_EQ(cdr["final_callee"], "440201234");
  EXPECT_EQ(cdr["status"], "answered");

  // Not in the permission: 403; matched by nothing: 404.
  Route("outbound",
        {{"name", "premium"}, {"rules", {{{"pattern", "0900X."}}}}, {"trunks", {"acme"}}});
  std::optional<SipResponse> r = Dial(*alice, "09001234");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403) << r->raw;
  alice->AckError(*r, "09001234");
  r = Dial(*alice, "777");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404) << r->raw;
}

TEST_F(TrunkCallsTest, FailoverOn503AndAFullTrunkIsSkipped) {
  auto first = Carrier("first", "127.0.0.21", {"--set", "max_calls=1"});
  auto second = Carrier("second", "127.0.0.22");
  Route("outbound",
        {{"name", "out"}, {"rules", {{{"pattern", "0X."}}}}, {"trunks", {"first", "second"}}});
  Route("permission", {{"name", "DialPlan1"}, {"routes", {"out"}}});
  auto alice = Register("2001", "127.0.0.11");
  auto bob = Register("2002", "127.0.0.12");

  // 503 from the first trunk: the same call goes on through the second.
  ASSERT_TRUE(alice->Call("0201", kPassword, Sdp("127.0.0.11", 7078)));
  std::optional<SipResponse> inv = first->Expect("INVITE");
  ASSERT_TRUE(inv) << pbxd_->Log();
  first->ua->Respond(*inv, 503, "Service Unavailable", "f1");
  inv = second->Expect("INVITE");
  ASSERT_TRUE(inv) << pbxd_->Log();
  ASSERT_NO_FATAL_FAILURE(Answer(*second, *inv, *alice));
  ASSERT_NO_FATAL_FAILURE(HangUp(*second, *alice));
  EXPECT_EQ(Cdrs(1).back()["trunk"], "second");

  // The first trunk takes one call at a time: while Alice talks through it, Bob's call
  // goes straight to the second.
  ASSERT_TRUE(alice->Call("0202", kPassword, Sdp("127.0.0.11", 7078)));
  inv = first->Expect("INVITE");
  ASSERT_TRUE(inv) << pbxd_->Log();
  ASSERT_NO_FATAL_FAILURE(Answer(*first, *inv, *alice));
  ASSERT_TRUE(bob->Call("0203", kPassword, Sdp("127.0.0.12", 7078)));
  inv = second->Expect("INVITE");
  ASSERT_TRUE(inv) << pbxd_->Log();
  EXPECT_EQ(inv->raw.find("INVITE sip:0203@127.0.0.22"), 0u) << inv->raw;
  second->ua->Respond(*inv, 486, "Busy Here", "s2");
  std::optional<SipResponse> busy = bob->Final();
  ASSERT_TRUE(busy);
  EXPECT_EQ(busy->status, 486) << busy->raw;
  EXPECT_FALSE(first->Expect("INVITE", 500ms));
  ASSERT_NO_FATAL_FAILURE(HangUp(*alice, *first));
}

TEST_F(TrunkCallsTest, InboundDidBlacklistMissingDestinationAndUnknownSource) {
  auto carrier = Carrier("acme", "127.0.0.21");
  Route("did", {{"name", "sales"},
                {"did_pattern", "5551000"},
                {"destination", {{"type", "extension"}, {"id", "2001"}}}});
  Route("did",
        {{"name", "closed"}, {"did_pattern", "5551999"}, {"destination", {{"type", "hangup"}}}});
  Route("blacklist", {{"number", "0666*"}});
  auto alice = Register("2001", "127.0.0.11");

  // The DID rings its extension; the carrier is not challenged.
  ASSERT_TRUE(carrier->Call("5551000", "", Sdp("127.0.0.21", 8000)));
  std::optional<SipResponse> inv = alice->Expect("INVITE");
  ASSERT_TRUE(inv) << pbxd_->Log();
  EXPECT_NE(inv->Header("From").find("sip:0123456@"), std::string::npos) << inv->Header("From");
  ASSERT_NO_FATAL_FAILURE(Answer(*alice, *inv, *carrier));
  ASSERT_NO_FATAL_FAILURE(HangUp(*carrier, *alice));
  json cdr = Cdrs(1).back();
  EXPECT_EQ(cdr["type"], "inbound") << cdr.dump();
  EXPECT_EQ(cdr["trunk"], "acme");
  EXPECT_EQ(cdr["callee"], "5551000");
  EXPECT_EQ(cdr["final_callee"], "2001");

  auto refused = [&](const std::string& caller, const std::string& did) {
    carrier->number = caller;
    std::optional<SipResponse> r = carrier->Call(did, "", Sdp("127.0.0.21", 8000));
    if (r && r->status < 200) r = carrier->Final();
    if (r) carrier->AckError(*r, did);
    return r ? r->status : 0;
  };
  EXPECT_EQ(refused("0666123", "5551000"), 403);  // blacklisted caller
  EXPECT_EQ(refused("0123456", "5551999"), 480);  // a destination that is not a phone
  EXPECT_EQ(refused("0123456", "5550000"), 404);  // no route
  EXPECT_FALSE(alice->Expect("INVITE", 300ms));

  // Not from a trunk's address and not an extension: challenged as before.
  Phone stranger("0123456", "127.0.0.30", sip_port_);
  std::optional<SipResponse> r = stranger.Call("5551000", "wrong", Sdp("127.0.0.30", 8000));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->status == 401 || r->status == 403) << r->raw;
}

// A call forwarded to an external number goes out as the forwarding extension would dial it
// (its route: prefix stripped, prepend added), the caller still ringing; no Diversion header
// (the §8.1 setting does not exist). The CDR keeps the number dialled and the one answered.
TEST_F(TrunkCallsTest, AForwardToAnExternalNumberGoesOutThroughTheForwardersRoute) {
  auto carrier = Carrier("acme", "127.0.0.81");
  Route("outbound", {{"name", "national"},
                     {"rules", {{{"prefix", "9"}, {"pattern", "0X."}, {"prepend", "44"}}}},
                     {"trunks", {"acme"}}});
  Route("permission", {{"name", "DialPlan1"}, {"routes", {"national"}}});
  auto [status, body] = test::Api(dir_, "PUT", "/api/v1/extensions/2002/forwarding",
                                  {{"always", {{"active", true}, {"number", "90201234"}}}});
  ASSERT_EQ(status, 200) << body.dump();
  auto alice = Register("2001", "127.0.0.82");
  ASSERT_TRUE(alice->Call("2002", kPassword, Sdp("127.0.0.82", 7078)));
  std::optional<SipResponse> inv = carrier->Expect("INVITE");
  ASSERT_TRUE(inv) << pbxd_->Log();
  EXPECT_EQ(inv->raw.find(fmt::format("INVITE sip:440201234@127.0.0.81:{} SIP/2.0",
                                      carrier->ua->local_port())),
            0u)
      << inv->raw;
  EXPECT_EQ(inv->Header("Diversion"), "");
  ASSERT_NO_FATAL_FAILURE(Answer(*carrier, *inv, *alice));
  ASSERT_NO_FATAL_FAILURE(HangUp(*alice, *carrier));
  json cdr = Cdrs(1).back();
  EXPECT_EQ(cdr["trunk"], "acme") << cdr.dump();
  EXPECT_EQ(cdr["callee"], "2002");
  EXPECT_EQ(cdr["final_callee"], "440201234");
  EXPECT_EQ(cdr["status"], "answered");
}

// PIN sets (FEATURES §5.9): the PBX answers the caller, plays the prompt through the relay
// and hears the PIN as RFC 4733 events; the right PIN calls the trunk while the caller hears
// ringback, then the relay joins caller and carrier; the CDR keeps the PIN. Three wrong
// PINs end in BYE with nothing sent to the carrier, and a caller who hangs up during the
// prompt leaves nothing behind.
TEST_F(TrunkCallsTest, APinSetAsksForThePinAndTheCdrKeepsIt) {
  auto carrier = Carrier("acme", "127.0.0.91");
  Route("pin-set", {{"name", "staff"}, {"pins", {"1234", "98765"}}});
  Route("outbound", {{"name", "intl"},
                     {"rules", {{{"pattern", "00X."}}}},
                     {"trunks", {"acme"}},
                     {"pin_set", "staff"}});
  Route("permission", {{"name", "DialPlan1"}, {"routes", {"intl"}}});
  auto alice = Register("2001", "127.0.0.92");
  test::RtpPeer alice_rtp("127.0.0.92");
  test::RtpPeer carrier_rtp("127.0.0.91");

  // Answered by the PBX with the prompt, in one codec (PCMU first in the offer).
  std::optional<SipResponse> ok = Dial(*alice, "0044123");
  ASSERT_TRUE(ok) << pbxd_->Log();
  ASSERT_EQ(ok->status, 200) << ok->raw;
  alice->Ack2xx(*ok);
  std::string to_alice = Body(*ok);
  EXPECT_NE(to_alice.find("m=audio "), std::string::npos) << to_alice;
  EXPECT_NE(to_alice.find("RTP/AVP 0 101"), std::string::npos) << to_alice;
  uint16_t relay_a = AudioPort(to_alice);
  ASSERT_NE(relay_a, 0);
  EXPECT_EQ(PbxctlJson({"calls"})["calls"][0]["state"], "pin");
  // The prompt arrives from the relay port of the 200's SDP (alice sends first to latch).
  alice_rtp.Send("127.0.0.1", relay_a, 0, 0, std::string(160, '\xff'));
  std::optional<test::RtpPeer::Packet> prompt = alice_rtp.Receive();
  ASSERT_TRUE(prompt) << pbxd_->Log();
  EXPECT_EQ(prompt->from_port, relay_a);
  EXPECT_EQ(prompt->pt(), 0);
  EXPECT_FALSE(carrier->Expect("INVITE", 200ms));

  // "1234" is shorter than the longest PIN: '#' ends it.
  alice_rtp.SendDigits("127.0.0.1", relay_a, "1234#");
  std::optional<SipResponse> inv = carrier->Expect("INVITE");
  ASSERT_TRUE(inv) << pbxd_->Log();
  EXPECT_NE(Body(*inv).find("RTP/AVP 0 101"), std::string::npos) << Body(*inv);  // A's codec
  uint16_t relay_b = AudioPort(Body(*inv));
  carrier->TakeInvite(*inv);
  carrier->ua->Respond(*inv, 180, "Ringing", carrier->local_tag, carrier->ContactHeader());
  carrier->ua->Respond(*inv, 200, "OK", carrier->local_tag, carrier->ContactHeader(),
                       Sdp("127.0.0.91", carrier_rtp.port()));
  ASSERT_TRUE(carrier->Expect("ACK")) << pbxd_->Log();
  EXPECT_FALSE(alice->Final(nullptr, 300ms));  // no second final response to Alice

  // Handed over: the carrier's voice reaches Alice from the same relay port, and hers the
  // carrier.
  std::string voice(160, '\x42');
  bool heard = false;
  for (int i = 0; i < 50 && !heard; ++i) {
    carrier_rtp.Send("127.0.0.1", relay_b, 0, 160 * i, voice);
    while (std::optional<test::RtpPeer::Packet> p = alice_rtp.Receive(20ms)) {
      if (p->data.size() == 172 && p->data.substr(12) == voice) {
        heard = true;
        EXPECT_EQ(p->from_port, relay_a);
      }
    }
  }
  EXPECT_TRUE(heard) << pbxd_->Log();
  alice_rtp.Send("127.0.0.1", relay_a, 0, 160, std::string(160, '\x24'));
  bool reached = false;
  while (std::optional<test::RtpPeer::Packet> p = carrier_rtp.Receive(1s)) {
    if (p->data.size() == 172 && p->data.substr(12) == std::string(160, '\x24')) {
      reached = true;
      break;
    }
  }
  EXPECT_TRUE(reached);
  ASSERT_NO_FATAL_FAILURE(HangUp(*alice, *carrier));
  json cdr = Cdrs(1).back();
  EXPECT_EQ(cdr["status"], "answered") << cdr.dump();
  EXPECT_EQ(cdr["pin"], "1234");
  EXPECT_EQ(cdr["trunk"], "acme");
  json found = PbxctlJson({"cdr", "--pin", "1234"})["records"];
  ASSERT_EQ(found.size(), 1u) << found.dump();
  EXPECT_TRUE(PbxctlJson({"cdr", "--pin", "98765"})["records"].empty());
  EXPECT_NE(Pbxctl({"cdr"}).out.find("1234"), std::string::npos);

  // Wrong PINs until the PBX gives up (digits typed during the error tone do not count).
  ok = Dial(*alice, "0044123");
  ASSERT_TRUE(ok && ok->status == 200) << (ok ? ok->raw : pbxd_->Log());
  alice->Ack2xx(*ok);
  relay_a = AudioPort(Body(*ok));
  std::optional<SipResponse> bye;
  for (int i = 0; i < 40 && !bye; ++i) {
    alice_rtp.SendDigits("127.0.0.1", relay_a, "99#");
    bye = alice->Expect("BYE", 500ms);
  }
  ASSERT_TRUE(bye) << pbxd_->Log();
  alice->ua->Respond(*bye, 200, "OK");
  EXPECT_FALSE(carrier->Expect("INVITE", 300ms));
  cdr = Cdrs(2).back();
  EXPECT_EQ(cdr["status"], "failed") << cdr.dump();
  EXPECT_EQ(cdr["cause"], "wrong PIN");
  EXPECT_EQ(cdr["pin"], "");

  // The caller hangs up during the prompt: the call and its ports are released.
  ok = Dial(*alice, "0044123");
  ASSERT_TRUE(ok && ok->status == 200) << (ok ? ok->raw : pbxd_->Log());
  alice->Ack2xx(*ok);
  alice->ua->SendRaw(alice->InDialog("BYE", ++alice->cseq));
  std::optional<SipResponse> bye_ok = alice->Final(nullptr, 3s);
  ASSERT_TRUE(bye_ok && bye_ok->status == 200) << (bye_ok ? bye_ok->raw : pbxd_->Log());
  EXPECT_TRUE(test::WaitFor([&] { return PbxctlJson({"calls"})["calls"].empty(); }, 5s));
  EXPECT_EQ(Cdrs(3).back()["hangup_side"], "caller");
  EXPECT_FALSE(carrier->Expect("INVITE", 300ms));
}

}  // namespace
}  // namespace pbx
