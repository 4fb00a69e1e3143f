// The registrar as a phone sees it: a real pbxd on loopback (ports from ready.json), a
// small UDP user agent (tests/support/sip_test_ua.h), and pbxctl for what an admin sees.
#include <filesystem>
#include <fstream>
#include <memory>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/pbxd_fixture.h"
#include "tests/support/process.h"
#include "tests/support/sip_test_ua.h"

namespace pbx {
namespace {

using nlohmann::json;
using test::SipTestUa;

constexpr char kPassword[] = "Reg1strar-pw";

class SipRegistrarTest : public testing::Test {
 protected:
  void SetUp() override {
    pbxd_ = test::StartPbxd(dir_, "siptest", /*demo_extensions=*/false);
    ASSERT_TRUE(pbxd_) << test::ReadFile(dir_.Sub("pbxd.log"));
    json ready = test::ReadyJson(dir_);
    sip_port_ = ready["sip_udp"].get<uint16_t>();
    ASSERT_GT(sip_port_, 0);
    EXPECT_GT(ready["sip_tcp"].get<int>(), 0);
    EXPECT_GT(ready["sip_tls"].get<int>(), 0);
    for (const char* number : {"2001", "2002"}) {
      ASSERT_EQ(test::AddExtension(dir_, number, "Phone", kPassword), "");
    }
  }

  test::CommandResult Pbxctl(std::vector<std::string> args) { return test::Pbxctl(dir_, args); }

  json PbxctlJson(std::vector<std::string> args) {
    json out = test::PbxctlJson(dir_, args);
    EXPECT_FALSE(out.is_discarded());
    return out;
  }

  std::unique_ptr<SipTestUa> Ua(const std::string& ip = "127.0.0.1") {
    return std::make_unique<SipTestUa>(ip, "127.0.0.1", sip_port_);
  }

  // Registered contacts of `number`, as pbxctl lists them.
  std::vector<std::string> Contacts(const std::string& number) {
    std::vector<std::string> out;
    json all = PbxctlJson({"reg", "list"});
    for (const json& r : all["registrations"]) {
      if (r["number"] == number) out.push_back(r["contact"]);
    }
    return out;
  }

  test::TempDir dir_;
  std::unique_ptr<test::Process> pbxd_;
  uint16_t sip_port_ = 0;
};

TEST_F(SipRegistrarTest, ChallengeOffersSha256AndMd5ThenBothRegister) {
  auto ua = Ua();
  SipTestUa::Register r{.user = "2001", .password = ""};
  std::optional<test::SipResponse> challenge = ua->DoRegister(r);
  ASSERT_TRUE(challenge);
  ASSERT_EQ(challenge->status, 401) << challenge->raw;
  std::vector<std::string> www = challenge->Headers("WWW-Authenticate");
  ASSERT_EQ(www.size(), 2u) << challenge->raw;
  EXPECT_NE(www[0].find("algorithm=SHA-256"), std::string::npos);
  EXPECT_NE(www[1].find("algorithm=MD5"), std::string::npos);
  for (const auto& w : www) EXPECT_NE(w.find("qop=\"auth\""), std::string::npos) << w;

  r.password = kPassword;
  std::optional<test::SipResponse> ok = ua->DoRegister(r);
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 200) << ok->raw;
  // Granted 3600 s less 0-10 %.
  std::string contact = ok->Header("Contact");
  size_t e = contact.find("expires=");
  ASSERT_NE(e, std::string::npos) << contact;
  int expires = std::atoi(contact.c_str() + e + 8);
  EXPECT_LE(expires, 3600);
  EXPECT_GE(expires, 3239);
  EXPECT_EQ(Contacts("2001"), std::vector<std::string>{ua->contact("2001")});

  auto md5_ua = Ua();
  std::optional<test::SipResponse> md5 =
      md5_ua->DoRegister({.user = "2002", .password = kPassword, .algorithm = "MD5"});
  ASSERT_TRUE(md5);
  EXPECT_EQ(md5->status, 200) << md5->raw;
  EXPECT_EQ(Contacts("2002"), std::vector<std::string>{md5_ua->contact("2002")});

  test::CommandResult table = Pbxctl({"reg", "list"});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_NE(table.out.find("2001"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("pbx-test-ua"), std::string::npos) << table.out;
}

TEST_F(SipRegistrarTest, FiveWrongPasswordsBanTheSourceUntilTheBanIsLifted) {
  auto attacker = Ua("127.0.0.5");
  for (int i = 0; i < 5; ++i) {
    std::optional<test::SipResponse> r =
        attacker->DoRegister({.user = "2001", .password = "wrong-password"});
    ASSERT_TRUE(r) << "attempt " << i;
    EXPECT_EQ(r->status, 403) << r->raw;
  }
  // Banned: no answer at all, even with the right password.
  EXPECT_FALSE(attacker->DoRegister({.user = "2001", .password = kPassword}));
  // Another source is not affected.
  auto phone = Ua("127.0.0.6");
  std::optional<test::SipResponse> ok = phone->DoRegister({.user = "2001", .password = kPassword});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);

  json bans = PbxctlJson({"ban", "list"})["bans"];
  ASSERT_EQ(bans.size(), 1u) << bans.dump();
  EXPECT_EQ(bans[0]["ip"], "127.0.0.5");
  EXPECT_GT(bans[0]["remaining"].get<int>(), 3500);

  test::CommandResult del = Pbxctl({"ban", "del", "127.0.0.5"});
  ASSERT_EQ(del.exit_code, 0) << del.out << del.err;
  EXPECT_TRUE(PbxctlJson({"ban", "list"})["bans"].empty());
  EXPECT_NE(Pbxctl({"ban", "del", "127.0.0.5"}).exit_code, 0);  // not banned any more
  bool answered = test::WaitFor([&] {
    std::optional<test::SipResponse> r =
        attacker->DoRegister({.user = "2002", .password = kPassword});
    return r && r->status == 200;
  });
  EXPECT_TRUE(answered);
}

TEST_F(SipRegistrarTest, ScanningUnknownExtensionsCountsAsFailures) {
  auto scanner = Ua("127.0.0.7");
  for (int i = 0; i < 5; ++i) {
    std::optional<test::SipResponse> r = scanner->DoRegister({.user = std::to_string(3000 + i)});
    ASSERT_TRUE(r) << "probe " << i;
    EXPECT_EQ(r->status, 401);  // the same answer a real extension gets
  }
  EXPECT_FALSE(scanner->DoRegister({.user = "2001"}));
  ASSERT_EQ(PbxctlJson({"ban", "list"})["bans"].size(), 1u);
}

TEST_F(SipRegistrarTest, UnregisterContactStarAndMaxContacts) {
  auto ua = Ua();
  ASSERT_EQ(ua->DoRegister({.user = "2001", .password = kPassword})->status, 200);
  // max_contacts is 1: a second device is refused and the first binding stays.
  auto other = Ua("127.0.0.9");
  std::optional<test::SipResponse> second =
      other->DoRegister({.user = "2001", .password = kPassword});
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 403) << second->raw;
  EXPECT_EQ(Contacts("2001").size(), 1u);

  // Expires: 0 removes that contact.
  ASSERT_EQ(ua->DoRegister({.user = "2001", .password = kPassword, .expires = 0})->status, 200);
  EXPECT_TRUE(Contacts("2001").empty());

  // Too brief an expiry is refused with the minimum.
  std::optional<test::SipResponse> brief =
      ua->DoRegister({.user = "2001", .password = kPassword, .expires = 10});
  ASSERT_TRUE(brief);
  EXPECT_EQ(brief->status, 423);
  EXPECT_EQ(brief->Header("Min-Expires"), "60");

  ASSERT_EQ(ua->DoRegister({.user = "2001", .password = kPassword})->status, 200);
  ASSERT_EQ(Contacts("2001").size(), 1u);
  // Contact: * with Expires: 0 removes every binding; Contact: * otherwise is a 400.
  EXPECT_EQ(ua->DoRegister({.user = "2001", .password = kPassword, .expires = 60, .contact = "*"})
                ->status,
            400);
  std::optional<test::SipResponse> all =
      ua->DoRegister({.user = "2001", .password = kPassword, .expires = 0, .contact = "*"});
  ASSERT_TRUE(all);
  EXPECT_EQ(all->status, 200) << all->raw;
  EXPECT_TRUE(Contacts("2001").empty());
}

TEST_F(SipRegistrarTest, MalformedRequestsNeverCrashNorChangeState) {
  auto ua = Ua();
  ASSERT_EQ(ua->DoRegister({.user = "2001", .password = kPassword})->status, 200);
  auto bad = Ua("127.0.0.11");
  std::string via =
      "Via: SIP/2.0/UDP 127.0.0.11:" + std::to_string(bad->local_port()) + ";branch=z9hG4bK";
  auto head = [&](const std::string& method, int n) {
    return method + " sip:127.0.0.1 SIP/2.0\r\n" + via + std::to_string(n) +
           "\r\nFrom: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:2001@127.0.0.1>\r\n";
  };
  // Garbage: dropped.
  EXPECT_TRUE(bad->SendRaw(std::string("\x01\x02garbage\r\n\r\n", 13)));
  EXPECT_FALSE(bad->Receive(std::chrono::milliseconds(300)));
  // Missing Call-ID and CSeq: 400.
  ASSERT_TRUE(bad->SendRaw(head("REGISTER", 1) + "Content-Length: 0\r\n\r\n"));
  std::optional<test::SipResponse> r = bad->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  // A Content-Length far beyond the datagram: 400 or dropped, never a crash.
  ASSERT_TRUE(bad->SendRaw(head("REGISTER", 2) +
                           "Call-ID: big\r\nCSeq: 1 REGISTER\r\nContent-Length: 99999999\r\n\r\n"));
  r = bad->Receive(std::chrono::milliseconds(500));
  if (r) {
    EXPECT_GE(r->status, 400) << r->raw;
  }
  // Unknown method: 501. OPTIONS: 200.
  ASSERT_TRUE(bad->SendRaw(head("FROBNICATE", 3) +
                           "Call-ID: m\r\nCSeq: 1 FROBNICATE\r\nContent-Length: 0\r\n\r\n"));
  r = bad->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 501);
  ASSERT_TRUE(bad->SendRaw(head("OPTIONS", 4) +
                           "Call-ID: o\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"));
  r = bad->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  // A REGISTER whose Contact is not a URI: refused (400, or 401 as it has no credentials),
  // and the registration above is untouched.
  ASSERT_TRUE(bad->SendRaw(head("REGISTER", 5) +
                           "Call-ID: c\r\nCSeq: 1 REGISTER\r\nContact: <<<>\r\n"
                           "Content-Length: 0\r\n\r\n"));
  r = bad->Receive(std::chrono::milliseconds(500));
  if (r) {
    EXPECT_TRUE(r->status == 400 || r->status == 401) << r->raw;
  }

  EXPECT_TRUE(pbxd_->Running());
  EXPECT_EQ(Contacts("2001"), std::vector<std::string>{ua->contact("2001")});
  EXPECT_TRUE(PbxctlJson({"ban", "list"})["bans"].empty());
}

}  // namespace
}  // namespace pbx
