// Two baresip phones (a real SIP UA, Debian's baresip-core) call each other through pbxd,
// with audio both ways through the PBX's relay (root only):
//
//   pbxc<pid>_p  pbxd            eth0 10.217.0.1/24 --+
//   pbxc<pid>_a  baresip 2001    eth0 10.217.0.2/24 --+-- br0 in pbxc<pid>_sw
//   pbxc<pid>_b  baresip 2002    eth0 10.217.0.3/24 --+
//
// Each phone plays a 440 Hz tone (aufile) and records what it receives (sndfile); both
// recordings must be non-silent. Alice holds and resumes over baresip's control socket
// (ctrl_tcp), then hangs up; the CDR says answered and the relay count is back at 0.
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/process.h"
#include "tests/system/baresip.h"
#include "tests/system/netns.h"
#include "tests/system/pbxd_netns.h"

namespace pbx {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kPbxAddr[] = "10.217.0.1";
constexpr char kPassword[] = "Bare5ip-pw";

class SipBaresipCallTest : public testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = test::CreatePhoneLab(lab_); !why.empty()) GTEST_SKIP() << why;
    ASSERT_EQ(lab_.AddHost("p", "02:00:0a:d9:00:01", {std::string(kPbxAddr) + "/24"}), "");
    ASSERT_EQ(lab_.AddHost("a", "02:00:0a:d9:00:02", {"10.217.0.2/24"}), "");
    ASSERT_EQ(lab_.AddHost("b", "02:00:0a:d9:00:03", {"10.217.0.3/24"}), "");

    pbxd_ = std::make_unique<test::NetnsPbxd>(lab_.ns("p"), dir_, "baresipcall", kPbxAddr,
                                              /*demo_extensions=*/false);
    ASSERT_TRUE(pbxd_->WaitReady()) << pbxd_->Log();
    for (const char* n : {"2001", "2002"}) {
      test::CommandResult r = pbxd_->Pbxctl({"ext", "add", n, "--name", std::string("Phone ") + n,
                                             "--password", kPassword, "--codecs", "PCMU"});
      ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    }
    test::WriteToneWav(dir_.Sub("tone.wav"), 60);
  }

  void TearDown() override {
    phones_.clear();  // before the lab removes their namespaces
    pbxd_.reset();
  }

  // baresip in namespace `role` as extension `number`, auto-answering, tone out, recording in.
  test::BaresipPhone& StartPhone(const std::string& role, const std::string& number,
                                 const std::string& addr) {
    phones_[role] = std::make_unique<test::BaresipPhone>(test::AnsweringPhone(
        lab_.ns(role), dir_.Sub("phone" + number), addr, fmt::format("sip:{}@{}", number, kPbxAddr),
        kPassword, dir_.Sub("tone.wav")));
    return *phones_[role];
  }

  std::string PhoneLogs() {
    std::string out;
    for (const auto& [role, p] : phones_) out += p->Log();
    return out;
  }

  test::NetLab lab_{"pbxc"};
  test::TempDir dir_;
  std::unique_ptr<test::NetnsPbxd> pbxd_;
  std::map<std::string, std::unique_ptr<test::BaresipPhone>> phones_;
};

TEST_F(SipBaresipCallTest, CallWithAudioBothWaysHoldResumeHangUp) {
  test::BaresipPhone& alice = StartPhone("a", "2001", "10.217.0.2");
  test::BaresipPhone& bob = StartPhone("b", "2002", "10.217.0.3");
  ASSERT_TRUE(
      test::WaitFor([&] { return pbxd_->Registered("2001") && pbxd_->Registered("2002"); }, 20s))
      << PhoneLogs() << pbxd_->Log();

  ASSERT_TRUE(alice.Command("dial", fmt::format("sip:2002@{}", kPbxAddr)));
  auto talking = [&] {
    json c = pbxd_->PbxctlJson({"calls"});
    return c.contains("calls") && c["calls"].size() == 1 && c["calls"][0]["state"] == "talking";
  };
  ASSERT_TRUE(test::WaitFor(talking, 15s)) << PhoneLogs() << pbxd_->Log();
  std::this_thread::sleep_for(3s);  // audio both ways

  ASSERT_TRUE(alice.Command("hold"));
  ASSERT_TRUE(test::WaitFor(
      [&] { return pbxd_->Log().find("re-INVITE from caller: hold") != std::string::npos; }, 10s))
      << PhoneLogs() << pbxd_->Log();
  std::this_thread::sleep_for(1s);
  ASSERT_TRUE(alice.Command("resume"));
  ASSERT_TRUE(test::WaitFor(
      [&] { return pbxd_->Log().find("re-INVITE from caller: resume") != std::string::npos; }, 10s))
      << PhoneLogs() << pbxd_->Log();
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(talking());

  ASSERT_TRUE(alice.Command("hangup"));
  ASSERT_TRUE(test::WaitFor(
      [&] {
        json c = pbxd_->PbxctlJson({"calls"});
        return c.contains("calls") && c["calls"].empty() && c["relays"] == 0;
      },
      10s))
      << PhoneLogs() << pbxd_->Log();
  json cdr;
  ASSERT_TRUE(test::WaitFor(
      [&] {
        cdr = pbxd_->PbxctlJson({"cdr"});
        return cdr.contains("records") && cdr["records"].size() == 1;
      },
      5s));
  EXPECT_EQ(cdr["records"][0]["status"], "answered") << cdr.dump();
  EXPECT_EQ(cdr["records"][0]["caller"], "2001");
  EXPECT_EQ(cdr["records"][0]["callee"], "2002");
  EXPECT_GE(cdr["records"][0]["billable"].get<int>(), 4);

  alice.Stop();  // flushes the recordings
  bob.Stop();
  // The tone is 8000 peak (RMS ~5650); G.711 both ways keeps it well above silence.
  EXPECT_GT(alice.ReceivedRms(), 1000) << "caller heard nothing";
  EXPECT_GT(bob.ReceivedRms(), 1000) << "callee heard nothing";
}

}  // namespace
}  // namespace pbx
