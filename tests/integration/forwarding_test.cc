// Call forward, follow-me and DND (FEATURES.md §7.1, §7.2) as phones see them: a real pbxd
// on loopback, small UDP user agents (sip_phone.h) for the extensions, the settings changed
// through the REST API as the admin would.
#include <httplib.h>

#include <filesystem>
#include <memory>
#include <string>

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
using test::Phone;
using test::Sdp;
using test::SipResponse;
using namespace std::chrono_literals;

constexpr char kPassword[] = "Forward5-pw";

class ForwardingTest : public testing::Test {
 protected:
  void SetUp() override {
    Start();
    ASSERT_TRUE(pbxd_);
    for (const char* n : {"2001", "2002", "2003", "2004"}) {
      ASSERT_EQ(test::AddExtension(dir_, n, std::string("Ext ") + n, kPassword), "");
    }
  }

  void Start() {
    std::filesystem::remove(dir_.Sub("run/ready.json"));
    pbxd_ = test::StartPbxd(dir_, "fwdtest", /*demo_extensions=*/false,
                            "[media]\nrtp_port_min = 50000\nrtp_port_max = 59999\n");
    ASSERT_TRUE(pbxd_) << test::ReadFile(dir_.Sub("pbxd.log"));
    sip_port_ = test::ReadyJson(dir_)["sip_udp"].get<uint16_t>();
  }

  std::unique_ptr<Phone> Register(const std::string& number, const std::string& ip) {
    auto p = std::make_unique<Phone>(number, ip, sip_port_);
    std::optional<SipResponse> r = p->Register(kPassword);
    EXPECT_TRUE(r && r->status == 200) << (r ? r->raw : "no answer");
    return p;
  }

  // PUT the forwarding of `ext`; the HTTP status and body.
  std::pair<int, json> Set(const std::string& ext, const json& body) {
    return test::Api(dir_, "PUT", "/api/v1/extensions/" + ext + "/forwarding", body);
  }
  json Get(const std::string& ext) {
    return test::Api(dir_, "GET", "/api/v1/extensions/" + ext + "/forwarding").second;
  }

  // `from` calls `to`; the first final response (after the challenge and provisionals is
  // read by the caller).
  void Dial(Phone& from, const std::string& to) {
    std::optional<SipResponse> r = from.Call(to, kPassword, Sdp(from.ua->local_ip(), 7078));
    ASSERT_TRUE(r) << pbxd_->Log();
    ASSERT_LT(r->status, 200) << r->raw;
  }

  // The final response `from` gets, ACKed if an error.
  SipResponse Final(Phone& from, const std::string& to, std::chrono::milliseconds t = 8s) {
    std::optional<SipResponse> r = from.Final(nullptr, t);
    EXPECT_TRUE(r) << pbxd_->Log();
    if (!r) return {};
    if (r->status >= 300) from.AckError(*r, to);
    return *r;
  }

  // `phone` receives an INVITE (within `t`) and answers it 200; the caller gets the 200.
  void Answer(Phone& phone, Phone& caller, std::chrono::milliseconds t = 8s) {
    std::optional<SipResponse> inv = phone.Expect("INVITE", t);
    ASSERT_TRUE(inv) << phone.number << " was not rung\n" << pbxd_->Log();
    phone.TakeInvite(*inv);
    phone.ua->Respond(*inv, 200, "OK", phone.local_tag, phone.ContactHeader(),
                      Sdp(phone.ua->local_ip(), 9078));
    std::optional<SipResponse> ok = caller.Final(nullptr, 5s);
    ASSERT_TRUE(ok) << pbxd_->Log();
    ASSERT_EQ(ok->status, 200) << ok->raw;
    caller.Ack2xx(*ok);
  }

  // `phone` dials the feature code `code` (FEATURES §9): the PBX answers, `rtp` hears its
  // tone, and the PBX hangs up.
  void FeatureCode(Phone& phone, test::RtpPeer& rtp, const std::string& code) {
    std::optional<SipResponse> r =
        phone.Call(code, kPassword, Sdp(phone.ua->local_ip(), rtp.port()));
    if (r && r->status < 200) r = phone.Final(nullptr, 5s);
    ASSERT_TRUE(r) << pbxd_->Log();
    ASSERT_EQ(r->status, 200) << r->raw;
    phone.Ack2xx(*r);
    uint16_t port = test::AudioPort(Body(*r));
    ASSERT_NE(port, 0) << r->raw;
    rtp.Send("127.0.0.1", port, 0, 0, std::string(160, '\xff'));  // latches the relay
    // The tone, from this call's relay port (a previous call's last frames may be queued).
    std::optional<test::RtpPeer::Packet> tone;
    test::WaitFor(
        [&] {
          tone = rtp.Receive(1s);
          return tone && tone->from_port == port;
        },
        5s);
    ASSERT_TRUE(tone && tone->from_port == port) << pbxd_->Log();
    EXPECT_EQ(tone->pt(), 0);
    std::optional<SipResponse> bye = phone.Expect("BYE", 5s);
    ASSERT_TRUE(bye) << code << " not hung up\n" << pbxd_->Log();
    phone.ua->Respond(*bye, 200, "OK");
  }

  // The last CDR once there are `n`.
  json LastCdr(size_t n) {
    json rows;
    test::WaitFor(
        [&] {
          rows = test::PbxctlJson(dir_, {"cdr"})["records"];
          return rows.size() >= n;
        },
        5s);
    return rows.size() >= n ? rows[n - 1] : json();
  }

  test::TempDir dir_;
  std::unique_ptr<test::Process> pbxd_;
  uint16_t sip_port_ = 0;
};

TEST_F(ForwardingTest, ApiChecksEveryFieldAndChangesNothingOnError) {
  json empty = Get("2002");
  EXPECT_EQ(empty["dnd"], false);
  EXPECT_EQ(empty["dnd_status"], 486);
  EXPECT_EQ(empty["follow_me"]["ring_seconds"], 30);
  struct Bad {
    json body;
    std::string field;
  };
  for (const Bad& b : std::vector<Bad>{
           {{{"sometimes", {{"active", true}}}}, "sometimes"},
           {{{"always", {{"active", true}}}}, "always.number"},
           {{{"always", {{"active", true}, {"number", "20x3"}}}}, "always.number"},
           {{{"always", {{"active", true}, {"number", "2002"}}}}, "always.number"},
           {{{"busy", {{"when", "now"}}}}, "busy.when"},
           {{{"ring_seconds", 2}}, "ring_seconds"},
           {{{"dnd_status", 500}}, "dnd_status"},
           {{{"dnd", "yes"}}, "dnd"},
           {{{"follow_me", {{"enabled", true}}}}, "follow_me.numbers"},
           {{{"follow_me", {{"numbers", {{{"number", "2003"}, {"ring_seconds", 900}}}}}}},
            "follow_me.numbers[0].ring_seconds"},
       }) {
    auto [status, body] = Set("2002", b.body);
    EXPECT_EQ(status, 400) << b.body.dump();
    EXPECT_EQ(body["error"]["field"], b.field) << body.dump();
  }
  EXPECT_EQ(Get("2002"), empty);
  EXPECT_EQ(Set("2999", {{"dnd", true}}).first, 404);

  auto [status, body] =
      Set("2002", {{"always", {{"active", true}, {"number", "2003"}}}, {"dnd_status", 603}});
  ASSERT_EQ(status, 200) << body.dump();
  json now = Get("2002");
  EXPECT_EQ(now["always"], json({{"active", true}, {"number", "2003"}}));
  EXPECT_EQ(now["dnd_status"], 603);
  EXPECT_EQ(now["busy"]["active"], false);
}

// An extension user sees and changes only their own settings; the admin has no own ones.
TEST_F(ForwardingTest, RolesAreChecked) {
  ASSERT_EQ(test::Api(dir_, "PUT", "/api/v1/extensions/2002", {{"web_login", true}}).first, 200);
  json ready = test::ReadyJson(dir_);
  httplib::SSLClient c("127.0.0.1", ready["api"].get<int>());
  c.set_ca_cert_path(ready["api_cert"].get<std::string>().c_str());
  c.enable_server_certificate_verification(true);
  httplib::Result login =
      c.Post("/api/v1/login", json{{"username", "2002"}, {"password", kPassword}}.dump(),
             "application/json");
  ASSERT_TRUE(login && login->status == 200) << (login ? login->body : "no answer");
  c.set_bearer_token_auth(json::parse(login->body)["token"].get<std::string>().c_str());
  httplib::Result put = c.Put("/api/v1/me/forwarding", R"({"dnd": true})", "application/json");
  ASSERT_TRUE(put && put->status == 200) << (put ? put->body : "no answer");
  EXPECT_EQ(Get("2002")["dnd"], true);
  httplib::Result other = c.Get("/api/v1/extensions/2003/forwarding");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 403);
  other = c.Put("/api/v1/extensions/2002/forwarding", R"({"dnd": false})", "application/json");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 403);
  EXPECT_EQ(test::Api(dir_, "GET", "/api/v1/me/forwarding").first, 403);
}

TEST_F(ForwardingTest, DndAnswersBusyHere) {
  auto alice = Register("2001", "127.0.1.11");
  auto bob = Register("2002", "127.0.1.12");
  ASSERT_EQ(Set("2002", {{"dnd", true}}).first, 200);
  ASSERT_NO_FATAL_FAILURE(Dial(*alice, "2002"));
  EXPECT_EQ(Final(*alice, "2002").status, 486);
  EXPECT_FALSE(bob->Expect("INVITE", 500ms));
  json cdr = LastCdr(1);
  EXPECT_EQ(cdr["status"], "busy") << cdr.dump();
  EXPECT_EQ(cdr["cause"], "do not disturb") << cdr.dump();
}

TEST_F(ForwardingTest, AlwaysRingsTheOtherExtensionAndTheCdrSaysWhere) {
  auto alice = Register("2001", "127.0.1.21");
  auto bob = Register("2002", "127.0.1.22");
  auto carol = Register("2003", "127.0.1.23");
  ASSERT_EQ(Set("2002", {{"always", {{"active", true}, {"number", "2003"}}}}).first, 200);
  ASSERT_NO_FATAL_FAILURE(Dial(*alice, "2002"));
  ASSERT_NO_FATAL_FAILURE(Answer(*carol, *alice));
  EXPECT_FALSE(bob->Expect("INVITE", 300ms));
  alice->ua->SendRaw(alice->InDialog("BYE", ++alice->cseq));
  std::optional<SipResponse> bye = carol->Expect("BYE");
  ASSERT_TRUE(bye) << pbxd_->Log();
  carol->ua->Respond(*bye, 200, "OK");
  json cdr = LastCdr(1);
  EXPECT_EQ(cdr["status"], "answered") << cdr.dump();
  EXPECT_EQ(cdr["callee"], "2002") << cdr.dump();
  EXPECT_EQ(cdr["final_callee"], "2003") << cdr.dump();
}

TEST_F(ForwardingTest, BusyForwardsWhenThePhoneAnswersBusy) {
  auto alice = Register("2001", "127.0.1.31");
  auto bob = Register("2002", "127.0.1.32");
  auto carol = Register("2003", "127.0.1.33");
  ASSERT_EQ(Set("2002", {{"busy", {{"active", true}, {"number", "2003"}}}}).first, 200);
  ASSERT_NO_FATAL_FAILURE(Dial(*alice, "2002"));
  std::optional<SipResponse> inv = bob->Expect("INVITE");
  ASSERT_TRUE(inv) << pbxd_->Log();
  bob->ua->Respond(*inv, 486, "Busy Here", "b486");
  ASSERT_NO_FATAL_FAILURE(Answer(*carol, *alice));
  EXPECT_EQ(carol->invite.Header("From").find("2002"), std::string::npos);  // Alice's ID
}

TEST_F(ForwardingTest, NoAnswerForwardsAfterTheRingTime) {
  auto alice = Register("2001", "127.0.1.41");
  auto bob = Register("2002", "127.0.1.42");
  auto carol = Register("2003", "127.0.1.43");
  ASSERT_EQ(
      Set("2002", {{"no_answer", {{"active", true}, {"number", "2003"}}}, {"ring_seconds", 5}})
          .first,
      200);
  auto start = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(Dial(*alice, "2002"));
  ASSERT_TRUE(bob->Expect("INVITE")) << pbxd_->Log();
  EXPECT_FALSE(carol->Expect("INVITE", 3s));  // Bob rings his 5 s first
  ASSERT_NO_FATAL_FAILURE(Answer(*carol, *alice));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 4s);
}

TEST_F(ForwardingTest, FollowMeRingsTheListInOrder) {
  auto alice = Register("2001", "127.0.1.51");
  auto bob = Register("2002", "127.0.1.52");
  auto carol = Register("2003", "127.0.1.53");
  auto dave = Register("2004", "127.0.1.54");
  json fm = {
      {"enabled", true},
      {"ring_seconds", 5},
      {"numbers",
       {{{"number", "2003"}, {"ring_seconds", 20}}, {{"number", "2004"}, {"ring_seconds", 20}}}}};
  ASSERT_EQ(Set("2002", {{"follow_me", fm}}).first, 200);
  ASSERT_NO_FATAL_FAILURE(Dial(*alice, "2002"));
  ASSERT_TRUE(bob->Expect("INVITE")) << pbxd_->Log();
  EXPECT_FALSE(carol->Expect("INVITE", 3s));
  std::optional<SipResponse> inv = carol->Expect("INVITE", 5s);  // after Bob's 5 s
  ASSERT_TRUE(inv) << pbxd_->Log();
  EXPECT_FALSE(dave->Expect("INVITE", 300ms));
  carol->ua->Respond(*inv, 480, "Temporarily Unavailable", "c480");
  ASSERT_NO_FATAL_FAILURE(Answer(*dave, *alice, 3s));
}

TEST_F(ForwardingTest, FollowMeWithNobodyAnsweringEndsIn480) {
  auto alice = Register("2001", "127.0.1.61");
  auto bob = Register("2002", "127.0.1.62");
  auto carol = Register("2003", "127.0.1.63");
  json fm = {{"enabled", true},
             {"ring_seconds", 5},
             {"numbers", {{{"number", "2003"}, {"ring_seconds", 5}}}}};
  ASSERT_EQ(Set("2002", {{"follow_me", fm}}).first, 200);
  ASSERT_NO_FATAL_FAILURE(Dial(*alice, "2002"));
  std::optional<SipResponse> inv = bob->Expect("INVITE");
  ASSERT_TRUE(inv);
  bob->ua->Respond(*inv, 486, "Busy Here", "b486");  // busy moves on too
  std::optional<SipResponse> inv2 = carol->Expect("INVITE", 2s);
  ASSERT_TRUE(inv2) << pbxd_->Log();
  EXPECT_EQ(Final(*alice, "2002", 10s).status, 480);
}

TEST_F(ForwardingTest, ALoopEndsIn482) {
  auto alice = Register("2001", "127.0.1.71");
  auto bob = Register("2002", "127.0.1.72");
  auto carol = Register("2003", "127.0.1.73");
  ASSERT_EQ(Set("2002", {{"always", {{"active", true}, {"number", "2003"}}}}).first, 200);
  ASSERT_EQ(Set("2003", {{"always", {{"active", true}, {"number", "2002"}}}}).first, 200);
  ASSERT_NO_FATAL_FAILURE(Dial(*alice, "2002"));
  EXPECT_EQ(Final(*alice, "2002").status, 482);
  EXPECT_FALSE(bob->Expect("INVITE", 300ms));
  EXPECT_FALSE(carol->Expect("INVITE", 300ms));
  // A loop found after ringing (no answer, then back): 482 too.
  ASSERT_EQ(Set("2003", {{"always", {{"active", false}}},
                         {"no_answer", {{"active", true}, {"number", "2002"}}},
                         {"ring_seconds", 5}})
                .first,
            200);
  ASSERT_NO_FATAL_FAILURE(Dial(*alice, "2002"));
  ASSERT_TRUE(carol->Expect("INVITE")) << pbxd_->Log();
  EXPECT_EQ(Final(*alice, "2002", 10s).status, 482);
}

TEST_F(ForwardingTest, SettingsSurviveARestart) {
  ASSERT_EQ(Set("2002", {{"dnd", true}, {"busy", {{"active", true}, {"number", "0123"}}}}).first,
            200);
  json before = Get("2002");
  pbxd_.reset();
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(Get("2002"), before);
  auto alice = Register("2001", "127.0.1.81");
  ASSERT_NO_FATAL_FAILURE(Dial(*alice, "2002"));
  EXPECT_EQ(Final(*alice, "2002").status, 486);  // the cache was loaded at start
}

// Feature codes change the caller's own settings as the API would, and calls follow them.
TEST_F(ForwardingTest, FeatureCodesSetForwardingAndDnd) {
  auto alice = Register("2001", "127.0.1.91");
  auto bob = Register("2002", "127.0.1.92");
  auto carol = Register("2003", "127.0.1.93");
  test::RtpPeer alice_rtp("127.0.1.91");

  ASSERT_NO_FATAL_FAILURE(FeatureCode(*alice, alice_rtp, "*712002"));
  EXPECT_EQ(Get("2001")["always"], json({{"active", true}, {"number", "2002"}}));
  json cdr = LastCdr(1);
  EXPECT_EQ(cdr["callee"], "*712002") << cdr.dump();
  EXPECT_EQ(cdr["type"], "internal") << cdr.dump();
  EXPECT_EQ(cdr["status"], "answered") << cdr.dump();
  EXPECT_EQ(cdr["hangup_side"], "pbx") << cdr.dump();
  ASSERT_NO_FATAL_FAILURE(Dial(*carol, "2001"));
  ASSERT_NO_FATAL_FAILURE(Answer(*bob, *carol));  // forwarded to 2002
  carol->ua->SendRaw(carol->InDialog("BYE", ++carol->cseq));
  std::optional<SipResponse> bye = bob->Expect("BYE");
  ASSERT_TRUE(bye) << pbxd_->Log();
  bob->ua->Respond(*bye, 200, "OK");
  std::optional<SipResponse> bye_ok = carol->ua->Receive();
  ASSERT_TRUE(bye_ok && bye_ok->status == 200) << pbxd_->Log();

  ASSERT_NO_FATAL_FAILURE(FeatureCode(*alice, alice_rtp, "*071"));
  EXPECT_EQ(Get("2001")["always"], json({{"active", false}, {"number", "2002"}}));

  ASSERT_NO_FATAL_FAILURE(FeatureCode(*alice, alice_rtp, "*74"));
  EXPECT_EQ(Get("2001")["dnd"], true);
  ASSERT_NO_FATAL_FAILURE(Dial(*carol, "2001"));
  EXPECT_EQ(Final(*carol, "2001").status, 486);
  ASSERT_NO_FATAL_FAILURE(FeatureCode(*alice, alice_rtp, "*074"));
  EXPECT_EQ(Get("2001")["dnd"], false);

  // Refused: a forward to itself is answered with the error tone and changes nothing; a
  // code without its number is no number at all.
  json before = Get("2001");
  ASSERT_NO_FATAL_FAILURE(FeatureCode(*alice, alice_rtp, "*722001"));
  json refused;
  test::WaitFor(
      [&] {
        json rows = test::PbxctlJson(dir_, {"cdr"})["records"];
        for (const json& row : rows) {
          if (row["callee"] == "*722001") refused = row;
        }
        return !refused.is_null();
      },
      5s);
  EXPECT_EQ(refused["status"], "failed") << refused.dump();
  EXPECT_EQ(Get("2001"), before);
  ASSERT_NO_FATAL_FAILURE(Dial(*alice, "*71"));
  EXPECT_EQ(Final(*alice, "*71").status, 404);
  EXPECT_EQ(Get("2001"), before);
}

}  // namespace
}  // namespace pbx
