// baresip (a real SIP phone, Debian's baresip-core) registers with pbxd (root only):
//
//   pbxb<pid>_p  pbxd     eth0 10.215.0.1/24 --+-- br0 in pbxb<pid>_sw
//   pbxb<pid>_u  baresip  eth0 10.215.0.2/24 --+
//
// libre, under baresip, takes its address from a non-loopback interface, so the phones run
// in a namespace of their own (NOTES-deps §3). One phone has the demo extension's password
// that pbxd printed at first boot and must appear in `pbxctl reg list`; the other has a
// wrong one and must be refused and never listed.
#include <algorithm>
#include <chrono>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/process.h"
#include "tests/system/baresip.h"
#include "tests/system/netns.h"
#include "tests/system/pbxd_netns.h"

namespace pbx {
namespace {

using json = nlohmann::json;

constexpr char kPbxAddr[] = "10.215.0.1";
constexpr char kPhoneAddr[] = "10.215.0.2";

class SipBaresipTest : public testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = test::CreatePhoneLab(lab_); !why.empty()) GTEST_SKIP() << why;
    ASSERT_EQ(lab_.AddHost("p", "02:00:0a:d7:00:01", {std::string(kPbxAddr) + "/24"}), "");
    ASSERT_EQ(lab_.AddHost("u", "02:00:0a:d7:00:02", {std::string(kPhoneAddr) + "/24"}), "");

    pbxd_ = std::make_unique<test::NetnsPbxd>(lab_.ns("p"), dir_, "baresiptest", kPbxAddr,
                                              /*demo_extensions=*/true);
    // First boot prints each demo extension's password once, on stdout (our log).
    const std::regex line(R"(extension\s+1001\s+password\s+(\S+))");
    ASSERT_TRUE(pbxd_->WaitReady()) << pbxd_->Log();
    ASSERT_TRUE(test::WaitFor([&] {
      std::smatch m;
      std::string log = pbxd_->Log();
      if (!std::regex_search(log, m, line)) return false;
      password_ = m[1];
      return true;
    })) << pbxd_->Log();
  }

  void TearDown() override {
    phones_.clear();  // before the lab removes their namespace
    pbxd_.reset();
  }

  // Starts baresip in the phones' namespace, registering `number` with `password` from
  // SIP port `port` (baresip also takes port + 1 for TLS).
  test::BaresipPhone& StartPhone(const std::string& number, const std::string& password, int port) {
    phones_.push_back(std::make_unique<test::BaresipPhone>(test::BaresipOptions{
        .netns = lab_.ns("u"),
        .dir = dir_.Sub("phone" + number),
        .listen = std::string(kPhoneAddr) + ":" + std::to_string(port),
        .aor = "sip:" + number + "@" + kPbxAddr,
        .password = password,
    }));
    return *phones_.back();
  }

  // pbxd's registrations as `pbxctl reg list --json` gives them.
  json Registrations() {
    json j = pbxd_->PbxctlJson({"reg", "list"});
    return j.contains("registrations") ? j["registrations"] : json::array();
  }

  static bool Lists(const json& regs, const std::string& number) {
    return std::any_of(regs.begin(), regs.end(),
                       [&](const json& r) { return r["number"] == number; });
  }

  test::NetLab lab_{"pbxb"};
  test::TempDir dir_;
  std::unique_ptr<test::NetnsPbxd> pbxd_;
  std::vector<std::unique_ptr<test::BaresipPhone>> phones_;
  std::string password_;
};

TEST_F(SipBaresipTest, RegistersWithTheDemoPasswordAndIsRefusedWithAWrongOne) {
  test::BaresipPhone& good = StartPhone("1001", password_, 5070);
  test::BaresipPhone& bad = StartPhone("1002", "not-the-password", 5080);

  json regs;
  ASSERT_TRUE(test::WaitFor([&] { return Lists(regs = Registrations(), "1001"); },
                            std::chrono::seconds(20)))
      << regs.dump() << "\n"
      << good.Log() << pbxd_->Log();
  for (const json& r : regs) {
    if (r["number"] != "1001") continue;
    EXPECT_NE(r["user_agent"].get<std::string>().find("baresip"), std::string::npos) << r;
    EXPECT_EQ(r["received"], std::string(kPhoneAddr) + ":5070") << r;
  }

  // The wrong password gets 403 (a private source is never banned, so it may retry).
  ASSERT_TRUE(test::WaitFor([&] { return bad.Log().find("403") != std::string::npos; },
                            std::chrono::seconds(20)))
      << bad.Log();
  EXPECT_FALSE(Lists(Registrations(), "1002"));
}

}  // namespace
}  // namespace pbx
