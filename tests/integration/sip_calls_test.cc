// Calls between extensions as phones see them: a real pbxd on loopback, two or three small
// UDP user agents (tests/support/sip_test_ua.h) that register, call and answer, and pbxctl
// for what an admin sees (calls in progress, CDRs, the relay count back at 0).
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <thread>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>

#include "tests/integration/pbxd_fixture.h"
#include "tests/integration/sip_phone.h"
#include "tests/support/process.h"
#include "tests/support/sip_test_ua.h"

namespace pbx {
namespace {

using nlohmann::json;
using test::Body;
using test::Phone;
using test::Sdp;
using test::SipResponse;
using test::SipTestUa;
using namespace std::chrono_literals;

constexpr char kPassword[] = "Call5-pw";

// A UDP socket bound to ip:port, standing in for a phone's RTP port.
class UdpSocket {
 public:
  UdpSocket(const std::string& ip, uint16_t port) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = Address(ip, port);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << ip << ":" << port;
    timeval tv{2, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~UdpSocket() { close(fd_); }
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  void SendTo(const std::string& ip, uint16_t port, const std::string& data) {
    sockaddr_in a = Address(ip, port);
    EXPECT_EQ(sendto(fd_, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)),
              static_cast<ssize_t>(data.size()));
  }
  // The next datagram, or "" after 2 s.
  std::string Receive() {
    char buf[2048];
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, n) : std::string();
  }

 private:
  static sockaddr_in Address(const std::string& ip, uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    return a;
  }
  int fd_ = -1;
};

class SipCallsTest : public testing::Test {
 protected:
  void SetUp() override {
    pbxd_ = test::StartPbxd(dir_, "calltest", /*demo_extensions=*/false,
                            "[media]\nrtp_port_min = 40000\nrtp_port_max = 49999\n");
    ASSERT_TRUE(pbxd_) << test::ReadFile(dir_.Sub("pbxd.log"));
    sip_port_ = test::ReadyJson(dir_)["sip_udp"].get<uint16_t>();
    ASSERT_EQ(test::AddExtension(dir_, "2001", "Alice", kPassword), "");
    ASSERT_EQ(test::AddExtension(dir_, "2002", "Bob", kPassword), "");
    ASSERT_EQ(test::AddExtension(dir_, "2003", "Carol", kPassword, {"--no-call-waiting"}), "");
    // Short enough for the no-answer test; a replicated setting, read by the next call.
    ASSERT_EQ(test::Api(dir_, "PUT", "/api/v1/settings", json{{"ring_timeout", 3}}).first, 200);
  }

  test::CommandResult Pbxctl(std::vector<std::string> args) { return test::Pbxctl(dir_, args); }

  json PbxctlJson(std::vector<std::string> args) {
    json out = test::PbxctlJson(dir_, args);
    EXPECT_FALSE(out.is_discarded());
    return out;
  }

  // A registered phone on its own loopback address.
  std::unique_ptr<Phone> Register(const std::string& number, const std::string& ip) {
    auto p = std::make_unique<Phone>(number, ip, sip_port_);
    std::optional<SipResponse> r = p->Register(kPassword);
    EXPECT_TRUE(r && r->status == 200) << (r ? r->raw : "no answer");
    return p;
  }

  int Relays() { return PbxctlJson({"calls"})["relays"].get<int>(); }
  json RelayCounters() { return PbxctlJson({"calls"})["relay"]; }

  // The CDRs, waiting until there are `n` (they are written asynchronously).
  json Cdrs(size_t n) {
    json rows;
    test::WaitFor(
        [&] {
          rows = PbxctlJson({"cdr"})["records"];
          return rows.size() >= n;
        },
        5s);
    return rows;
  }

  // Alice calls `to`; the callee (if given) receives the INVITE. Returns Alice's first
  // response after the challenge.
  std::optional<SipResponse> Dial(Phone& alice, const std::string& to) {
    return alice.Call(to, kPassword, Sdp(alice.ua->local_ip(), 7078));
  }

  // Alice calls Bob; Bob rings and answers; Alice ACKs. Both dialogs established.
  void Connect(Phone& alice, Phone& bob) {
    std::optional<SipResponse> first = Dial(alice, bob.number);
    ASSERT_TRUE(first) << pbxd_->Log();
    std::optional<SipResponse> inv = bob.Expect("INVITE");
    ASSERT_TRUE(inv) << pbxd_->Log();
    bob.TakeInvite(*inv);
    bob.ua->Respond(*inv, 180, "Ringing", bob.local_tag, bob.ContactHeader());
    bob.ua->Respond(*inv, 200, "OK", bob.local_tag, bob.ContactHeader(),
                    Sdp(bob.ua->local_ip(), 9078));
    std::vector<int> prov;
    std::optional<SipResponse> ok = alice.Final(&prov);
    ASSERT_TRUE(ok) << pbxd_->Log();
    ASSERT_EQ(ok->status, 200) << ok->raw;
    alice.Ack2xx(*ok);
    ASSERT_TRUE(bob.Expect("ACK")) << pbxd_->Log();
    EXPECT_NE(std::find(prov.begin(), prov.end(), 180), prov.end());
    // Media anchored: each phone is pointed at the PBX, never at the other phone.
    EXPECT_NE(Body(*ok).find("c=IN IP4 127.0.0.1"), std::string::npos) << Body(*ok);
    EXPECT_EQ(Body(*ok).find("m=audio 9078 "), std::string::npos) << Body(*ok);
    EXPECT_EQ(Body(*inv).find("m=audio 7078 "), std::string::npos) << Body(*inv);
    EXPECT_NE(Body(*inv).find("m=audio 4"), std::string::npos) << Body(*inv);
  }

  test::TempDir dir_;
  std::unique_ptr<test::Process> pbxd_;
  uint16_t sip_port_ = 0;
};

TEST_F(SipCallsTest, AnsweredCallHungUpByCallerWritesCdr) {
  auto alice = Register("2001", "127.0.0.11");
  auto bob = Register("2002", "127.0.0.12");
  ASSERT_NO_FATAL_FAILURE(Connect(*alice, *bob));
  // Caller ID from the extension record, not from what the phone put in From.
  EXPECT_NE(bob->invite.Header("From").find("\"Alice\" <sip:2001@"), std::string::npos)
      << bob->invite.Header("From");
  json calls = PbxctlJson({"calls"});
  ASSERT_EQ(calls["calls"].size(), 1u) << calls.dump();
  EXPECT_EQ(calls["calls"][0]["state"], "talking");
  EXPECT_EQ(calls["relays"], 1);

  // RTP through the relay moves the counters GET /api/v1/calls shows: Alice's three packets
  // from the address of her SDP reach Bob's; one from elsewhere is dropped.
  json before = RelayCounters();
  const uint16_t a_port = calls["calls"][0]["rtp_ports"][0].get<uint16_t>();
  UdpSocket bob_rtp("127.0.0.12", 9078), alice_rtp("127.0.0.11", 7078), other("127.0.0.13", 7078);
  for (int i = 0; i < 3; ++i) alice_rtp.SendTo("127.0.0.1", a_port, "rtp-packet");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(bob_rtp.Receive(), "rtp-packet");
  other.SendTo("127.0.0.1", a_port, "intruder");
  json after;
  EXPECT_TRUE(test::WaitFor([&] {
    after = RelayCounters();
    return after["dropped"].get<uint64_t>() == before["dropped"].get<uint64_t>() + 1;
  }));
  EXPECT_EQ(after["packets"].get<uint64_t>(), before["packets"].get<uint64_t>() + 3) << after;
  EXPECT_EQ(after["bytes"].get<uint64_t>(), before["bytes"].get<uint64_t>() + 30) << after;
  std::this_thread::sleep_for(1100ms);  // a billable second

  alice->ua->SendRaw(alice->InDialog("BYE", ++alice->cseq));
  std::optional<SipResponse> bye = bob->Expect("BYE");
  ASSERT_TRUE(bye) << pbxd_->Log();
  bob->ua->Respond(*bye, 200, "OK");
  std::optional<SipResponse> ok = alice->ua->Receive();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);

  json cdr = Cdrs(1);
  ASSERT_EQ(cdr.size(), 1u) << cdr.dump();
  EXPECT_EQ(cdr[0]["status"], "answered");
  EXPECT_EQ(cdr[0]["caller"], "2001");
  EXPECT_EQ(cdr[0]["caller_name"], "Alice");
  EXPECT_EQ(cdr[0]["callee"], "2002");
  EXPECT_EQ(cdr[0]["type"], "internal");
  EXPECT_EQ(cdr[0]["hangup_side"], "caller");
  EXPECT_GE(cdr[0]["billable"].get<int>(), 1);
  EXPECT_EQ(Relays(), 0);
  EXPECT_EQ(PbxctlJson({"calls"})["calls"].size(), 0u);
}

TEST_F(SipCallsTest, CalleeHangsUpAndReinviteHoldIsPassedThrough) {
  auto alice = Register("2001", "127.0.0.21");
  auto bob = Register("2002", "127.0.0.22");
  ASSERT_NO_FATAL_FAILURE(Connect(*alice, *bob));

  // Alice puts Bob on hold: the re-INVITE reaches Bob with a=sendonly, anchored again.
  std::string hold = Sdp(alice->ua->local_ip(), 7078);
  hold.replace(hold.find("a=sendrecv"), 10, "a=sendonly");
  alice->ua->SendRaw(alice->InDialog("INVITE", ++alice->cseq, hold));
  std::optional<SipResponse> re = bob->Expect("INVITE");
  ASSERT_TRUE(re) << pbxd_->Log();
  EXPECT_NE(Body(*re).find("a=sendonly"), std::string::npos) << Body(*re);
  EXPECT_EQ(Body(*re).find("m=audio 7078 "), std::string::npos) << Body(*re);
  std::string held = Sdp(bob->ua->local_ip(), 9078);
  held.replace(held.find("a=sendrecv"), 10, "a=recvonly");
  bob->ua->Respond(*re, 200, "OK", "", bob->ContactHeader(), held);
  std::optional<SipResponse> ok = alice->Final();
  ASSERT_TRUE(ok) << pbxd_->Log();
  EXPECT_EQ(ok->status, 200);
  EXPECT_NE(Body(*ok).find("a=recvonly"), std::string::npos) << Body(*ok);
  alice->ua->SendRaw(alice->InDialog("ACK", alice->cseq));

  // Bob hangs up: a BYE in Bob's dialog (his From is the PBX's To).
  std::string bye = fmt::format(
      "BYE {} SIP/2.0\r\nVia: SIP/2.0/UDP {}:{};branch=z9hG4bKbye1;rport\r\nMax-Forwards: 70\r\n"
      "From: <sip:2002@{}>;tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\n"
      "Content-Length: 0\r\n\r\n",
      bob->remote_target, bob->ua->local_ip(), bob->ua->local_port(), bob->server, bob->local_tag,
      bob->invite.Header("From"), bob->call_id);
  bob->ua->SendRaw(bye);
  std::optional<SipResponse> bye_ok = bob->ua->Receive();
  ASSERT_TRUE(bye_ok);
  EXPECT_EQ(bye_ok->status, 200) << bye_ok->raw;
  std::optional<SipResponse> to_alice = alice->Expect("BYE");
  ASSERT_TRUE(to_alice) << pbxd_->Log();
  alice->ua->Respond(*to_alice, 200, "OK");

  json cdr = Cdrs(1);
  ASSERT_EQ(cdr.size(), 1u);
  EXPECT_EQ(cdr[0]["status"], "answered");
  EXPECT_EQ(cdr[0]["hangup_side"], "callee");
  EXPECT_EQ(Relays(), 0);
}

TEST_F(SipCallsTest, UnknownUnregisteredAndBusyNumbers) {
  auto alice = Register("2001", "127.0.0.31");
  std::optional<SipResponse> r = Dial(*alice, "2999");
  ASSERT_TRUE(r);
  if (r->status == 100) r = alice->Final();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404) << r->raw;
  alice->AckError(*r, "2999");

  r = Dial(*alice, "2002");  // exists, not registered
  if (r && r->status == 100) r = alice->Final();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 480) << r->raw;
  alice->AckError(*r, "2002");

  // Carol (call waiting off) talks to Bob; Alice calling Carol gets 486.
  auto bob = Register("2002", "127.0.0.32");
  auto carol = Register("2003", "127.0.0.33");
  ASSERT_NO_FATAL_FAILURE(Connect(*bob, *carol));
  r = Dial(*alice, "2003");
  if (r && r->status == 100) r = alice->Final();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 486) << r->raw;
  alice->AckError(*r, "2003");
  EXPECT_EQ(Relays(), 1);  // Bob and Carol's call only

  bob->ua->SendRaw(bob->InDialog("BYE", ++bob->cseq));
  std::optional<SipResponse> bye = carol->Expect("BYE");
  ASSERT_TRUE(bye);
  carol->ua->Respond(*bye, 200, "OK");
  EXPECT_TRUE(test::WaitFor([&] { return Relays() == 0; }, 3s));

  // Each attempt that passed authentication left a CDR, the refused ones too.
  json cdr = Cdrs(4);
  ASSERT_EQ(cdr.size(), 4u) << cdr.dump();
  EXPECT_EQ(cdr[0]["status"], "failed");
  EXPECT_EQ(cdr[0]["callee"], "2999");
  EXPECT_EQ(cdr[1]["status"], "failed");
  EXPECT_EQ(cdr[1]["cause"], "not registered");
  EXPECT_EQ(cdr[2]["status"], "answered");  // Bob and Carol (it started before Alice's)
  EXPECT_EQ(cdr[3]["status"], "busy");
  EXPECT_EQ(cdr[3]["final_callee"], "2003");
}

TEST_F(SipCallsTest, CancelBeforeAnswerAndNoAnswerTimeout) {
  auto alice = Register("2001", "127.0.0.41");
  auto bob = Register("2002", "127.0.0.42");
  ASSERT_TRUE(Dial(*alice, "2002"));
  std::optional<SipResponse> inv = bob->Expect("INVITE");
  ASSERT_TRUE(inv) << pbxd_->Log();
  bob->TakeInvite(*inv);
  bob->ua->Respond(*inv, 180, "Ringing", bob->local_tag, bob->ContactHeader());
  // Alice cancels: same branch and CSeq number as her INVITE.
  alice->ua->SendRaw(fmt::format(
      "CANCEL sip:2002@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{port};branch={br};rport\r\n"
      "Max-Forwards: 70\r\nFrom: \"Someone\" <sip:2001@{srv}>;tag={tag}\r\nTo: <sip:2002@{srv}>\r\n"
      "Call-ID: {cid}\r\nCSeq: {cseq} CANCEL\r\nContent-Length: 0\r\n\r\n",
      fmt::arg("srv", alice->server), fmt::arg("ip", alice->ua->local_ip()),
      fmt::arg("port", alice->ua->local_port()), fmt::arg("br", alice->invite_branch),
      fmt::arg("tag", alice->local_tag), fmt::arg("cid", alice->call_id),
      fmt::arg("cseq", alice->cseq)));
  std::optional<SipResponse> cancel = bob->Expect("CANCEL");
  ASSERT_TRUE(cancel) << pbxd_->Log();
  bob->ua->Respond(*cancel, 200, "OK");
  bob->ua->Respond(*inv, 487, "Request Terminated", bob->local_tag);
  std::optional<SipResponse> fin = alice->Final();
  ASSERT_TRUE(fin);
  if (fin->status == 200) fin = alice->Final();  // the 200 to the CANCEL comes first
  ASSERT_TRUE(fin);
  EXPECT_EQ(fin->status, 487) << fin->raw;
  alice->AckError(*fin, "2002");

  // No answer: Bob rings past the 3 s ring timeout; Alice gets 480, Bob a CANCEL.
  ASSERT_TRUE(Dial(*alice, "2002"));
  inv = bob->Expect("INVITE");
  ASSERT_TRUE(inv);
  bob->TakeInvite(*inv);
  bob->ua->Respond(*inv, 180, "Ringing", bob->local_tag, bob->ContactHeader());
  cancel = bob->Expect("CANCEL", 6s);
  ASSERT_TRUE(cancel) << pbxd_->Log();
  bob->ua->Respond(*cancel, 200, "OK");
  bob->ua->Respond(*inv, 487, "Request Terminated", bob->local_tag);
  fin = alice->Final();
  ASSERT_TRUE(fin);
  EXPECT_EQ(fin->status, 480) << fin->raw;
  alice->AckError(*fin, "2002");

  json cdr = Cdrs(2);
  ASSERT_EQ(cdr.size(), 2u) << cdr.dump();
  EXPECT_EQ(cdr[0]["status"], "cancelled");
  EXPECT_EQ(cdr[1]["status"], "no_answer");
  EXPECT_EQ(cdr[1]["billable"], 0);
  EXPECT_EQ(Relays(), 0);
}

TEST_F(SipCallsTest, WrongDigestAndMalformedInviteMakeNoCall) {
  auto alice = Register("2001", "127.0.0.51");
  auto bob = Register("2002", "127.0.0.52");
  // A wrong password: 403, counted toward the ban (loopback is private, so not banned).
  std::optional<SipResponse> r = alice->Call("2002", "wrong-password", Sdp("127.0.0.51", 7078));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403) << r->raw;
  alice->AckError(*r, "2002");
  EXPECT_NE(pbxd_->Log().find("wrong password for 2001"), std::string::npos);

  // Broken SDP: 400, and Bob never rings.
  r = alice->Call("2002", kPassword, "v=0\r\nthis is not SDP\r\n");
  if (r && r->status == 100) r = alice->Final();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->raw;
  alice->AckError(*r, "2002");
  // No codec we relay: 488.
  std::string g729 = Sdp("127.0.0.51", 7078);
  g729.replace(g729.find("RTP/AVP 0 8 101"), 15, "RTP/AVP 18");
  r = alice->Call("2002", kPassword, g729);
  if (r && r->status == 100) r = alice->Final();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 488) << r->raw;
  alice->AckError(*r, "2002");
  // No From tag: 400 before authentication.
  alice->ua->SendRaw(fmt::format(
      "INVITE sip:2002@{0} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.51:{1};branch=z9hG4bKbad\r\n"
      "From: <sip:2001@{0}>\r\nTo: <sip:2002@{0}>\r\nCall-ID: bad1\r\nCSeq: 1 INVITE\r\n"
      "Contact: <sip:2001@127.0.0.51:{1}>\r\nContent-Length: 0\r\n\r\n",
      alice->server, alice->ua->local_port()));
  r = alice->ua->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->raw;

  EXPECT_FALSE(bob->Expect("INVITE", 500ms));
  EXPECT_EQ(Relays(), 0);
  // Only the 488 was a call attempt (authenticated, well formed); it left a failed CDR.
  json cdr = Cdrs(1);
  ASSERT_EQ(cdr.size(), 1u) << cdr.dump();
  EXPECT_EQ(cdr[0]["status"], "failed");
  EXPECT_EQ(cdr[0]["cause"], "no common codec");
}

// RFC 4028 session timers, switched on through the API: a caller's interval below Min-SE
// gets 422; the PBX offers its interval to the callee and retries its 422 with the larger
// Min-SE; each side's 2xx names the interval and the refresher.
TEST_F(SipCallsTest, SessionTimersNegotiateOnEachLegWith422) {
  ASSERT_EQ(
      test::Api(dir_, "PUT", "/api/v1/settings",
                json{{"session_timers", true}, {"session_expires", 1800}, {"session_min_se", 120}})
          .first,
      200);
  auto alice = Register("2001", "127.0.0.61");
  auto bob = Register("2002", "127.0.0.62");
  alice->invite_headers = "Supported: timer\r\nSession-Expires: 100\r\n";
  std::optional<SipResponse> r = Dial(*alice, "2002");
  if (r && r->status == 100) r = alice->Final();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 422) << r->raw;
  EXPECT_EQ(r->Header("Min-SE"), "120") << r->raw;
  alice->AckError(*r, "2002");
  EXPECT_FALSE(bob->Expect("INVITE", 300ms));

  alice->invite_headers = "Supported: timer\r\nSession-Expires: 600;refresher=uac\r\n";
  ASSERT_TRUE(Dial(*alice, "2002"));
  std::optional<SipResponse> inv = bob->Expect("INVITE");
  ASSERT_TRUE(inv) << pbxd_->Log();
  EXPECT_NE(inv->Header("Supported").find("timer"), std::string::npos) << inv->raw;
  EXPECT_EQ(inv->Header("Session-Expires"), "1800") << inv->raw;
  EXPECT_EQ(inv->Header("Min-SE"), "120") << inv->raw;
  bob->ua->Respond(*inv, 422, "Session Interval Too Small", "x422", "Min-SE: 2400\r\n");
  std::optional<SipResponse> again = bob->Expect("INVITE");
  ASSERT_TRUE(again) << pbxd_->Log();
  EXPECT_EQ(again->Header("Session-Expires"), "2400") << again->raw;
  EXPECT_EQ(again->Header("Min-SE"), "2400") << again->raw;
  EXPECT_EQ(again->Header("CSeq"), "2 INVITE") << again->raw;
  bob->TakeInvite(*again);
  bob->ua->Respond(
      *again, 200, "OK", bob->local_tag,
      bob->ContactHeader() + "Require: timer\r\nSession-Expires: 2400;refresher=uas\r\n",
      Sdp(bob->ua->local_ip(), 9078));
  std::optional<SipResponse> ok = alice->Final();
  ASSERT_TRUE(ok) << pbxd_->Log();
  ASSERT_EQ(ok->status, 200) << ok->raw;
  EXPECT_EQ(ok->Header("Session-Expires"), "600;refresher=uac") << ok->raw;
  EXPECT_NE(ok->Header("Require").find("timer"), std::string::npos) << ok->raw;
  alice->Ack2xx(*ok);
  ASSERT_TRUE(bob->Expect("ACK")) << pbxd_->Log();

  // Alice refreshes with UPDATE: answered with her interval.
  alice->ua->SendRaw(alice->InDialog("UPDATE", ++alice->cseq));
  std::optional<SipResponse> upd = alice->Final();
  ASSERT_TRUE(upd) << pbxd_->Log();
  EXPECT_EQ(upd->status, 200) << upd->raw;
  EXPECT_EQ(upd->Header("Session-Expires"), "600;refresher=uac") << upd->raw;

  // Bob hangs up; the PBX's BYE to Alice follows.
  bob->ua->SendRaw(bob->InDialog("BYE", ++bob->cseq));
  std::optional<SipResponse> bye = alice->Expect("BYE");
  ASSERT_TRUE(bye) << pbxd_->Log();
  alice->ua->Respond(*bye, 200, "OK");
  json cdr = Cdrs(1);
  ASSERT_EQ(cdr.size(), 1u) << cdr.dump();
  EXPECT_EQ(cdr[0]["hangup_side"], "callee");
}

// Late offer: an INVITE without SDP goes on without SDP; Bob's 200 offers, Alice answers in
// her ACK, and only then does the PBX ACK Bob, with the anchored answer. An ACK without an
// answer ends the call with BYE to both.
TEST_F(SipCallsTest, LateOfferIsAnsweredInTheAckAndAnAckWithoutAnswerEndsTheCall) {
  auto alice = Register("2001", "127.0.0.71");
  auto bob = Register("2002", "127.0.0.72");
  for (bool answer : {true, false}) {
    SCOPED_TRACE(answer ? "answered in the ACK" : "ACK without SDP");
    ASSERT_TRUE(alice->Call("2002", kPassword, ""));
    std::optional<SipResponse> inv = bob->Expect("INVITE");
    ASSERT_TRUE(inv) << pbxd_->Log();
    EXPECT_EQ(Body(*inv), "");
    bob->TakeInvite(*inv);
    bob->ua->Respond(*inv, 200, "OK", bob->local_tag, bob->ContactHeader(),
                     Sdp(bob->ua->local_ip(), 9078));
    std::optional<SipResponse> ok = alice->Final();
    ASSERT_TRUE(ok) << pbxd_->Log();
    ASSERT_EQ(ok->status, 200) << ok->raw;
    EXPECT_NE(Body(*ok).find("c=IN IP4 127.0.0.1"), std::string::npos) << Body(*ok);
    EXPECT_EQ(Body(*ok).find("m=audio 9078 "), std::string::npos) << Body(*ok);
    EXPECT_FALSE(bob->Expect("ACK", 300ms));  // waits for Alice's answer
    alice->Ack2xx(*ok, answer ? Sdp(alice->ua->local_ip(), 7078) : "");
    std::optional<SipResponse> ack = bob->Expect("ACK");
    ASSERT_TRUE(ack) << pbxd_->Log();
    if (answer) {
      EXPECT_NE(Body(*ack).find("m=audio 4"), std::string::npos) << ack->raw;
      EXPECT_EQ(Body(*ack).find("7078"), std::string::npos) << ack->raw;
      alice->ua->SendRaw(alice->InDialog("BYE", ++alice->cseq));
    } else {
      EXPECT_EQ(Body(*ack), "");
      std::optional<SipResponse> to_alice = alice->Expect("BYE");
      ASSERT_TRUE(to_alice) << pbxd_->Log();
      alice->ua->Respond(*to_alice, 200, "OK");
    }
    std::optional<SipResponse> bye = bob->Expect("BYE");
    ASSERT_TRUE(bye) << pbxd_->Log();
    bob->ua->Respond(*bye, 200, "OK");
    if (answer) {
      std::optional<SipResponse> bye_ok = alice->Final();  // the PBX's 200 to her BYE
      ASSERT_TRUE(bye_ok);
      EXPECT_EQ(bye_ok->status, 200);
    }
  }
  json cdr = Cdrs(2);
  ASSERT_EQ(cdr.size(), 2u) << cdr.dump();
  EXPECT_EQ(cdr[0]["status"], "answered");
  EXPECT_EQ(cdr[1]["cause"], "no answer in ACK");
  EXPECT_EQ(Relays(), 0);
}

// Record-Route (RFC 3261 §12.1): Alice's INVITE came through a proxy that record-routes,
// so the PBX's BYE to her goes to that proxy with the route set in Route and her Contact
// as the Request-URI.
TEST_F(SipCallsTest, InDialogRequestsFollowTheCallersRouteSet) {
  auto alice = Register("2001", "127.0.0.81");
  auto bob = Register("2002", "127.0.0.82");
  SipTestUa proxy("127.0.0.83", "127.0.0.1", sip_port_);
  std::string hop = fmt::format("sip:127.0.0.83:{};lr", proxy.local_port());
  alice->invite_headers =
      fmt::format("Record-Route: <{}>\r\nRecord-Route: <sip:edge.example;lr>\r\n", hop);
  ASSERT_NO_FATAL_FAILURE(Connect(*alice, *bob));
  bob->ua->SendRaw(bob->InDialog("BYE", ++bob->cseq));
  std::optional<SipResponse> bye;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!bye && std::chrono::steady_clock::now() < deadline) {
    std::optional<SipResponse> m = proxy.ReceiveMessage(500ms);
    if (m && m->status == 0 && m->method == "BYE") bye = m;
  }
  ASSERT_TRUE(bye) << pbxd_->Log();
  EXPECT_EQ(bye->raw.substr(0, bye->raw.find("\r\n")),
            fmt::format("BYE sip:2001@127.0.0.81:{} SIP/2.0", alice->ua->local_port()));
  std::string route = fmt::format("<{}>, <sip:edge.example;lr>", hop);
  std::vector<std::string> routes = bye->Headers("Route");
  std::string joined;
  for (const std::string& r : routes) joined += (joined.empty() ? "" : ", ") + r;
  EXPECT_EQ(joined, route) << bye->raw;
  proxy.Respond(*bye, 200, "OK");
  json cdr = Cdrs(1);
  ASSERT_EQ(cdr.size(), 1u) << cdr.dump();
  EXPECT_EQ(cdr[0]["hangup_side"], "callee");
}

}  // namespace
}  // namespace pbx
