// Issue 5, a real carrier: Kamailio plays the ITSP of a register trunk, and real SIP phones
// (baresip) sit on both ends (root only):
//
//   pbxk<pid>_p  pbxd                       eth0 10.219.0.1/24  --+
//   pbxk<pid>_k  Kamailio, the carrier      eth0 10.219.0.5/24  --+-- br0 in pbxk<pid>_sw
//   pbxk<pid>_a  baresip 2001 on pbxd       eth0 10.219.0.11/24 --+
//   pbxk<pid>_f  baresip 7001 on Kamailio   eth0 10.219.0.12/24 --+
//
// pbxd's trunk registers to Kamailio with digest auth (expiry 10 s, so it refreshes every
// 3 s). Extension 2001 dials 7001: an outbound route sends it through the trunk (Kamailio
// challenges the INVITE with 407), Kamailio finds 7001 in its location table. Then 7001
// dials the DID 5551000: Kamailio sends it to the trunk's registered contact and pbxd's DID
// route rings 2001. Each phone plays a 440 Hz tone and records what it hears; every call
// must carry the tone both ways. 2001 then dials 87001, a route with a PIN set: pbxd answers
// with the prompt, baresip keys in the PIN as RFC 4733 events, and the call goes on to 7001
// as the first did, the CDR keeping the PIN. From the carrier's side (its log line per REGISTER and
// its location table), every REGISTER of the trunk keeps the Call-ID and adds one to the CSeq.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/process.h"
#include "tests/system/baresip.h"
#include "tests/system/kamailio_carrier.h"
#include "tests/system/netns.h"
#include "tests/system/pbxd_netns.h"

namespace pbx {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kPbxAddr[] = "10.219.0.1";
constexpr char kCarrierAddr[] = "10.219.0.5";
constexpr char kExtAddr[] = "10.219.0.11";
constexpr char kFarAddr[] = "10.219.0.12";
constexpr char kExtPassword[] = "Carr1er-ext";
constexpr char kTrunkUser[] = "acme";
constexpr char kTrunkPassword[] = "carrier-s3cret";
constexpr char kFarUser[] = "7001";
constexpr char kFarPassword[] = "far-pw";
constexpr char kDid[] = "5551000";

class CarrierCallTest : public testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = test::CreatePhoneLab(lab_); !why.empty()) GTEST_SKIP() << why;
    if (!test::KamailioInstalled()) {
      GTEST_SKIP() << "kamailio is missing: deploy/install-deps.sh --test installs it";
    }
    ASSERT_EQ(lab_.AddHost("p", "02:19:00:00:00:01", {std::string(kPbxAddr) + "/24"}), "");
    ASSERT_EQ(lab_.AddHost("k", "02:19:00:00:00:05", {std::string(kCarrierAddr) + "/24"}), "");
    ASSERT_EQ(lab_.AddHost("a", "02:19:00:00:00:11", {std::string(kExtAddr) + "/24"}), "");
    ASSERT_EQ(lab_.AddHost("f", "02:19:00:00:00:12", {std::string(kFarAddr) + "/24"}), "");

    carrier_ = std::make_unique<test::KamailioCarrier>(test::CarrierOptions{
        .dir = dir_.Sub("carrier"),
        .netns = lab_.ns("k"),
        .address = kCarrierAddr,
        .far_address = kFarAddr,
        .subscribers = {{kTrunkUser, kTrunkPassword}, {kFarUser, kFarPassword}},
    });
    ASSERT_EQ(carrier_->Start(), "");
    pbxd_ = std::make_unique<test::NetnsPbxd>(lab_.ns("p"), dir_, "carriercall", kPbxAddr,
                                              /*demo_extensions=*/false);
    ASSERT_TRUE(pbxd_->WaitReady()) << pbxd_->Log();
    test::WriteToneWav(dir_.Sub("tone.wav"), 60);
  }

  void TearDown() override {
    // Processes before the lab removes their namespaces; logs when something failed.
    if (HasFailure() && carrier_) std::cerr << "---- carrier log\n" << carrier_->Log();
    if (HasFailure() && pbxd_) std::cerr << "---- pbxd log\n" << pbxd_->Log();
    if (HasFailure()) std::cerr << "---- phones\n" << PhoneLogs();
    phones_.clear();
    pbxd_.reset();
    carrier_.reset();
  }

  void Ok(std::vector<std::string> args) {
    test::CommandResult r = pbxd_->Pbxctl(args);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  // baresip in namespace `role`, auto-answering, a tone out, recording what it hears.
  test::BaresipPhone& StartPhone(const std::string& role, const std::string& aor,
                                 const std::string& password, const std::string& addr) {
    phones_[role] = std::make_unique<test::BaresipPhone>(test::AnsweringPhone(
        lab_.ns(role), dir_.Sub("phone_" + role), addr, aor, password, dir_.Sub("tone.wav")));
    return *phones_[role];
  }

  std::string PhoneLogs() {
    std::string out;
    for (const auto& [role, p] : phones_) out += p->Log();
    return out;
  }

  int Calls(const std::string& state) {
    json c = pbxd_->PbxctlJson({"calls"});
    if (!c.contains("calls")) return -1;
    return static_cast<int>(
        std::count_if(c["calls"].begin(), c["calls"].end(),
                      [&](const json& call) { return call["state"] == state; }));
  }

  bool Idle() {
    json c = pbxd_->PbxctlJson({"calls"});
    return c.contains("calls") && c["calls"].empty() && c["relays"] == 0;
  }

  // A call `caller` places to `uri`, answered by the far end: both phones hear the other's
  // tone for 3 s, then `caller` hangs up. Each phone must have made one new recording, loud.
  // With a `pin`, pbxd answers first and `caller` keys it in (RFC 4733, ctrl_tcp sndcode).
  void TalkAndHangUp(test::BaresipPhone& caller, const std::string& uri,
                     const std::string& pin = "") {
    std::map<std::string, std::set<std::string>> before;
    for (const auto& [role, p] : phones_) {
      std::vector<std::string> recs = p->Recordings();
      before[role] = {recs.begin(), recs.end()};
    }
    ASSERT_TRUE(caller.Command("dial", uri));
    if (!pin.empty()) {
      ASSERT_TRUE(test::WaitFor([&] { return Calls("pin") == 1; }, 15s)) << "no PIN prompt";
      std::this_thread::sleep_for(1s);  // baresip's audio is up a moment after its 200
      ASSERT_TRUE(caller.Command("sndcode", pin));
    }
    ASSERT_TRUE(test::WaitFor([&] { return Calls("talking") == 1; }, 15s)) << "no answer";
    std::this_thread::sleep_for(3s);  // the tone both ways through pbxd's relay
    ASSERT_TRUE(caller.Command("hangup"));
    ASSERT_TRUE(test::WaitFor([&] { return Idle(); }, 10s)) << "the call did not end";
    for (const auto& [role, p] : phones_) {
      // baresip completes a call's recording when the call ends.
      std::vector<std::string> added;
      double rms = 0;
      EXPECT_TRUE(test::WaitFor(
          [&] {
            added.clear();
            for (const std::string& r : p->Recordings()) {
              if (!before[role].count(r)) added.push_back(r);
            }
            rms = added.size() == 1 ? test::WavRms(added[0]) : 0;
            return rms > 1000;
          },
          5s))
          << "phone " << role << " on " << uri << ": " << added.size() << " new recordings, RMS "
          << rms;
    }
  }

  test::NetLab lab_{"pbxk"};
  test::TempDir dir_;
  std::unique_ptr<test::KamailioCarrier> carrier_;
  std::unique_ptr<test::NetnsPbxd> pbxd_;
  std::map<std::string, std::unique_ptr<test::BaresipPhone>> phones_;
};

TEST_F(CarrierCallTest, OutboundAndDidCallsWithAudioAndRefreshesSeenByTheCarrier) {
  Ok({"trunk", "add", "acme", "--host", kCarrierAddr, "--set", "port=5060", "--set",
      std::string("username=") + kTrunkUser, "--set", std::string("password=") + kTrunkPassword,
      "--set", "domain=carrier",
      // Registered for 10 s and refreshed every 3 s: the test sees refreshes in seconds.
      "--set", "expiry=10", "--set", "refresh_percent=30", "--set", "retry_interval=1"});
  Ok({"ext", "add", "2001", "--name", "Desk", "--password", kExtPassword, "--codecs", "PCMU"});
  Ok({"route", "add", "outbound",
      json{{"name", "carrier"}, {"rules", {{{"pattern", "7XXX"}}}}, {"trunks", {"acme"}}}.dump()});
  // 8 before the number: the same carrier behind a PIN (FEATURES §5.9).
  Ok({"route", "add", "pin-set", json{{"name", "staff"}, {"pins", {"4711", "123456"}}}.dump()});
  Ok({"route", "add", "outbound",
      json{{"name", "pinned"},
           {"rules", {{{"prefix", "8"}, {"pattern", "7XXX"}}}},
           {"trunks", {"acme"}},
           {"pin_set", "staff"}}
          .dump()});
  Ok({"route", "add", "permission",
      json{{"name", "DialPlan1"}, {"routes", {"carrier", "pinned"}}}.dump()});
  Ok({"route", "add", "did",
      json{{"name", "main"},
           {"did_pattern", kDid},
           {"destination", {{"type", "extension"}, {"id", "2001"}}}}
          .dump()});

  test::BaresipPhone& desk =
      StartPhone("a", fmt::format("sip:2001@{}", kPbxAddr), kExtPassword, kExtAddr);
  test::BaresipPhone& far =
      StartPhone("f", fmt::format("sip:{}@{}", kFarUser, kCarrierAddr), kFarPassword, kFarAddr);
  ASSERT_TRUE(test::WaitFor(
      [&] {
        json t = pbxd_->PbxctlJson({"trunk", "list"});
        return pbxd_->Registered("2001") && carrier_->Binding(kFarUser) && t.contains("trunks") &&
               t["trunks"].size() == 1 && t["trunks"][0]["status"]["state"] == "registered";
      },
      20s));

  // Out: 2001 -> pbxd -> trunk (407 answered) -> Kamailio -> 7001.
  ASSERT_NO_FATAL_FAILURE(TalkAndHangUp(desk, fmt::format("sip:{}@{}", kFarUser, kPbxAddr)));
  // In: 7001 dials the DID -> Kamailio -> the trunk's contact -> pbxd's DID route -> 2001.
  ASSERT_NO_FATAL_FAILURE(TalkAndHangUp(far, fmt::format("sip:{}@{}", kDid, kCarrierAddr)));

  json cdr;
  ASSERT_TRUE(test::WaitFor(
      [&] {
        cdr = pbxd_->PbxctlJson({"cdr"});
        return cdr.contains("records") && cdr["records"].size() >= 2;
      },
      5s));
  ASSERT_EQ(cdr["records"].size(), 2u) << cdr.dump();
  const json& out = cdr["records"][0];
  EXPECT_EQ(out["type"], "outbound") << out.dump();
  EXPECT_EQ(out["trunk"], "acme");
  EXPECT_EQ(out["caller"], "2001");
  EXPECT_EQ(out["status"], "answered");
  const json& in = cdr["records"][1];
  EXPECT_EQ(in["type"], "inbound") << in.dump();
  EXPECT_EQ(in["trunk"], "acme");
  EXPECT_EQ(in["final_callee"], "2001");
  EXPECT_EQ(in["status"], "answered");

  // Through the PIN route: pbxd answers, baresip keys in the PIN, the call goes out as
  // before with the tone both ways; the CDR keeps the PIN.
  ASSERT_NO_FATAL_FAILURE(
      TalkAndHangUp(desk, fmt::format("sip:8{}@{}", kFarUser, kPbxAddr), "4711#"));
  ASSERT_TRUE(test::WaitFor(
      [&] {
        cdr = pbxd_->PbxctlJson({"cdr", "--pin", "4711"});
        return cdr.contains("records") && cdr["records"].size() == 1;
      },
      5s))
      << cdr.dump();
  EXPECT_EQ(cdr["records"][0]["status"], "answered");
  EXPECT_EQ(cdr["records"][0]["final_callee"], kFarUser);

  // The carrier's view of the trunk: the first REGISTER (challenged), its answer with
  // credentials, and refreshes every 3 s, all in one Call-ID with CSeq + 1 each.
  std::vector<test::CarrierRequest> regs;
  ASSERT_TRUE(
      test::WaitFor([&] { return (regs = carrier_->Registers(kTrunkUser)).size() >= 4; }, 10s))
      << regs.size() << " REGISTERs";
  for (size_t i = 1; i < regs.size(); ++i) {
    EXPECT_EQ(regs[i].call_id, regs[0].call_id) << "REGISTER " << i;
    EXPECT_EQ(regs[i].cseq, regs[i - 1].cseq + 1) << "REGISTER " << i;
  }
  // Its location table holds the trunk's binding from one of those REGISTERs, a refresh.
  std::optional<test::CarrierBinding> binding = carrier_->Binding(kTrunkUser);
  ASSERT_TRUE(binding);
  EXPECT_EQ(binding->call_id, regs[0].call_id);
  regs = carrier_->Registers(kTrunkUser);
  EXPECT_TRUE(std::any_of(regs.begin(), regs.end(),
                          [&](const test::CarrierRequest& r) { return r.cseq == binding->cseq; }))
      << "CSeq " << binding->cseq;
  EXPECT_GT(binding->cseq, regs[1].cseq);
  std::cout << "[ MEASURED ] the carrier saw " << regs.size() << " REGISTERs of the trunk, CSeq "
            << regs.front().cseq << " to " << regs.back().cseq << ", one Call-ID\n";
}

}  // namespace
}  // namespace pbx
