// A call in progress survives a failover of the pair (issue 6), with real processes in
// network namespaces created and removed by the test (root only):
//
//   pbxf<pid>_a   node A (pbxd)   eth0 10.215.0.1/24  --+
//   pbxf<pid>_b   node B (pbxd)   eth0 10.215.0.2/24  --+
//   pbxf<pid>_w   pbx-witness     eth0 10.215.0.4/24  --+-- br0 in pbxf<pid>_sw
//   pbxf<pid>_p1  baresip 2001    eth0 10.215.0.11/24 --+
//   pbxf<pid>_p2  baresip 2002    eth0 10.215.0.12/24 --+
//   pbxf<pid>_k   Kamailio        eth0 10.215.0.5/24  --+  the carrier of a register trunk
//
// The phones register through the VIP 10.215.0.100 and talk (a 440 Hz tone each way through
// the relay); then the active fails (kill -9, SIGSTOP, a cut of its links to the standby and
// the witness) or hands over (pbxctl switchover). The new active must carry the call on:
// audio resumes on both sides (the longest silence in each phone's recording), either phone
// can hang up, the call yields one CDR with its original start time, and a new call
// between the phones connects without them registering again, and the trunk re-registers
// from the new active with the same Call-ID and the next CSeq (Kamailio logs each REGISTER;
// tests/system/kamailio_carrier.h).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
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
#include "tests/system/pair_lab.h"

namespace pbx {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr char kVip[] = "10.215.0.100";
constexpr char kAddrW[] = "10.215.0.4";
constexpr char kPassword[] = "Fail0ver-pw";
constexpr char kCarrier[] = "10.215.0.5";

enum class Failure { kKill, kStop, kPartition, kSwitchover };

std::string Name(Failure f) {
  switch (f) {
    case Failure::kKill:
      return "KillNine";
    case Failure::kStop:
      return "SigStop";
    case Failure::kPartition:
      return "Partition";
    case Failure::kSwitchover:
      return "Switchover";
  }
  return "";
}

// The audio gap allowed: the target, 1 s, for every failure. A stopped or cut active's
// witness lease runs out by the time the standby declares it dead, and the promotion does
// not wait for the dead active's goodbye (node/cluster/role.h), so none takes longer.
constexpr double kGapLimitMs = 1000;

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

class FailoverCallTest : public testing::TestWithParam<Failure> {
 protected:
  void SetUp() override {
    if (std::string why = lab_.Create(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_EQ(lab_.AddHost("p1", 11), "");
    ASSERT_EQ(lab_.AddHost("p2", 12), "");
    test::WriteToneWav(dir_.Sub("tone.wav"), 120);
    if (test::KamailioInstalled()) {
      ASSERT_EQ(lab_.AddHost("k", 5), "");
      carrier_ = std::make_unique<test::KamailioCarrier>(test::CarrierOptions{
          .dir = dir_.Sub("carrier"),
          .netns = lab_.ns("k"),
          .address = kCarrier,
          .subscribers = {{"acme", "carrier-s3cret"}},
      });
      ASSERT_EQ(carrier_->Start(), "");
    }
  }

  void TearDown() override {
    phones_.clear();
    for (int i = 0; i < 2; ++i) {
      if (HasFailure() && lab_.node(i)) {
        std::string log = lab_.node(i)->Log();
        if (log.size() > 10000) log = log.substr(log.size() - 10000);
        std::cerr << "---- " << lab_.name(i) << " log\n" << log;
      }
      lab_.Stop(i);
    }
    if (carrier_ && HasFailure()) std::cerr << "---- carrier log\n" << carrier_->Log();
    carrier_.reset();
  }

  test::CommandResult Pbxctl(int i, std::vector<std::string> args) {
    return lab_.node(i)->Pbxctl(std::move(args));
  }
  json PbxctlJson(int i, std::vector<std::string> args) {
    return lab_.node(i)->PbxctlJson(std::move(args));
  }
  std::string Role(int i) { return lab_.Role(i); }
  bool Registered(int i, const std::string& number) { return lab_.node(i)->Registered(number); }

  // The calls `n` carries; -1 if it does not answer.
  int Calls(int n, const std::string& state = "talking") {
    json c = PbxctlJson(n, {"calls"});
    if (!c.contains("calls")) return -1;
    int talking = 0;
    for (const json& call : c["calls"]) talking += call["state"] == state;
    return talking;
  }

  bool Idle(int n) {
    json c = PbxctlJson(n, {"calls"});
    return c.contains("calls") && c["calls"].empty() && c["relays"] == 0;
  }

  void StartPhone(const std::string& host, const std::string& number, const std::string& addr,
                  bool auto_answer = true) {
    test::BaresipOptions o;
    o.netns = lab_.ns(host);
    o.dir = dir_.Sub("phone" + number);
    o.listen = addr + ":5060";
    o.aor = fmt::format("sip:{}@{}", number, kVip);
    o.password = kPassword;
    o.account_params =
        std::string(";audio_codecs=PCMU;answermode=") + (auto_answer ? "auto" : "manual");
    o.tone = dir_.Sub("tone.wav");
    o.regint = 600;  // no refresh during the test: the new active must know them already
    phones_.push_back(std::make_unique<test::BaresipPhone>(o));
  }

  // Extensions 2001 and 2002 on node `n`.
  void AddExtensions(int n) {
    for (const char* e : {"2001", "2002"}) {
      test::CommandResult r = Pbxctl(n, {"ext", "add", e, "--name", std::string("Phone ") + e,
                                         "--password", kPassword, "--codecs", "PCMU"});
      ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    }
  }

  // The phones of 2001 (the caller) and 2002 (answering by itself or not), registered
  // through the VIP at node `n`.
  void StartPhones(int n, bool callee_answers) {
    StartPhone("p1", "2001", "10.215.0.11");
    StartPhone("p2", "2002", "10.215.0.12", callee_answers);
    ASSERT_TRUE(test::WaitFor([&] { return Registered(n, "2001") && Registered(n, "2002"); }, 20s))
        << Logs();
  }

  // `hanger` hangs up; node `n` then carries no call and holds one CDR, `rec`.
  void HangUpForOneCdr(test::BaresipPhone& hanger, int n, json& rec) {
    ASSERT_TRUE(hanger.Command("hangup"));
    ASSERT_TRUE(test::WaitFor([&] { return Idle(n); }, 10s)) << Logs() << lab_.node(n)->Log();
    json cdr;
    ASSERT_TRUE(test::WaitFor(
        [&] {
          cdr = PbxctlJson(n, {"cdr"});
          return cdr.contains("records") && cdr["records"].size() >= 1;
        },
        5s));
    ASSERT_EQ(cdr["records"].size(), 1u) << "one CDR for a call across a failover: " << cdr.dump();
    rec = cdr["records"][0];
  }

  std::string Logs() {
    std::string out;
    for (const auto& p : phones_) out += p->Log();
    return out;
  }

  // Makes the active fail (or hand over) the way the test says.
  void Fail(Failure f, int a) {
    switch (f) {
      case Failure::kKill:
        lab_.node(a)->process().Signal(SIGKILL);
        break;
      case Failure::kStop:
        lab_.node(a)->process().Signal(SIGSTOP);
        break;
      case Failure::kPartition:
        // A loses B and the witness: it fences itself, and B gets the lease.
        for (const auto& [x, y] : {std::pair{"a", "10.215.0.2"}, std::pair{"b", "10.215.0.1"},
                                   std::pair{"a", kAddrW}, std::pair{"w", "10.215.0.1"}}) {
          test::CommandResult r =
              test::Run({"ip", "-n", lab_.ns(x), "route", "add", "blackhole", std::string(y)});
          ASSERT_EQ(r.exit_code, 0) << r.err;
        }
        break;
      case Failure::kSwitchover: {
        test::CommandResult r = Pbxctl(a, {"switchover"});
        ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
        break;
      }
    }
  }

  test::PairLab lab_{{.prefix = "pbxf", .subnet = "10.215.0", .phones = true}};
  const test::TempDir& dir_ = lab_.dir();
  std::unique_ptr<test::KamailioCarrier> carrier_;  // when Kamailio is installed
  std::vector<std::unique_ptr<test::BaresipPhone>> phones_;
};

TEST_P(FailoverCallTest, CallSurvives) {
  const Failure failure = GetParam();
  const int a = 0, b = 1;
  ASSERT_EQ(lab_.StartPair(), "");
  ASSERT_NO_FATAL_FAILURE(AddExtensions(a));
  if (carrier_) {
    test::CommandResult r =
        Pbxctl(a, {"trunk", "add", "acme", "--host", kCarrier, "--set", "port=5060", "--set",
                   "username=acme", "--set", "password=carrier-s3cret", "--set", "domain=carrier",
                   "--set", "expiry=300"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  ASSERT_NO_FATAL_FAILURE(StartPhones(a, /*callee_answers=*/true));
  test::BaresipPhone& caller = *phones_[0];
  test::BaresipPhone& callee = *phones_[1];

  ASSERT_TRUE(caller.Command("dial", fmt::format("sip:2002@{}", kVip)));
  ASSERT_TRUE(test::WaitFor([&] { return Calls(a) == 1; }, 15s)) << Logs() << lab_.node(a)->Log();
  std::vector<std::unique_ptr<test::RtpGapMeter>> meters;
  for (const char* host : {"p1", "p2"}) {
    meters.push_back(std::make_unique<test::RtpGapMeter>(lab_.ns(host), kVip));
  }
  std::this_thread::sleep_for(2s);  // audio both ways; the call record reached B long ago

  std::vector<test::CarrierRequest> before;
  if (carrier_) {
    ASSERT_TRUE(test::WaitFor([&] { return !carrier_->Registers("acme").empty(); }, 10s))
        << carrier_->Log();
    before = carrier_->Registers("acme");
  }
  Clock::time_point failed_at = Clock::now();
  int64_t failed_unix_ms = UnixMs();
  ASSERT_NO_FATAL_FAILURE(Fail(failure, a));
  ASSERT_TRUE(test::WaitFor([&] { return Calls(b) == 1; }, 15s)) << lab_.node(b)->Log();
  std::cout << "[ MEASURED ] " << Name(failure) << ": the call is up on B " << MsSince(failed_at)
            << " ms after the failure\n";
  if (failure == Failure::kStop) {
    lab_.node(a)->process().Signal(SIGCONT);  // it wakes up fenced and must leave the call alone
    ASSERT_TRUE(test::WaitFor([&] { return Role(a) != "active" && Role(a) != ""; }, 10s));
  }
  std::this_thread::sleep_for(3s);  // audio through B's relay
  EXPECT_EQ(Calls(b), 1) << "the call must still be up on B";

  for (size_t i = 0; i < meters.size(); ++i) {
    meters[i]->Stop();
    std::cout << "[ MEASURED ] " << Name(failure) << ": phone " << i + 1 << " longest RTP pause "
              << meters[i]->max_gap_ms() << " ms over " << meters[i]->packets() << " packets\n";
    EXPECT_GT(meters[i]->packets(), 200u) << "phone " << i + 1 << " got no audio";
    EXPECT_LE(meters[i]->max_gap_ms(), kGapLimitMs)
        << "phone " << i + 1 << ": the audio gap of the failover";
  }

  if (carrier_) {
    // The first REGISTER from B continues A's registration: same Call-ID, CSeq + 1.
    std::vector<test::CarrierRequest> after;
    ASSERT_TRUE(test::WaitFor(
        [&] { return (after = carrier_->Registers("acme")).size() > before.size(); }, 5s))
        << "the trunk did not re-register from B\n"
        << carrier_->Log();
    std::cout << "[ MEASURED ] " << Name(failure) << ": trunk REGISTER before "
              << before.back().call_id << " CSeq " << before.back().cseq << ", first after "
              << after[before.size()].call_id << " CSeq " << after[before.size()].cseq << "\n";
    EXPECT_EQ(after[before.size()].call_id, before.back().call_id);
    EXPECT_EQ(after[before.size()].cseq, before.back().cseq + 1);
  }

  // Either side hangs up: the callee after a crash, the caller otherwise.
  test::BaresipPhone& hanger = failure == Failure::kKill ? callee : caller;
  json rec;
  ASSERT_NO_FATAL_FAILURE(HangUpForOneCdr(hanger, b, rec));
  EXPECT_EQ(rec["status"], "answered") << rec.dump();
  EXPECT_EQ(rec["caller"], "2001");
  EXPECT_EQ(rec["callee"], "2002");
  EXPECT_EQ(rec["hangup_side"], failure == Failure::kKill ? "callee" : "caller") << rec.dump();
  EXPECT_GE(rec["billable"].get<int>(), 5) << "the answer time from before the failover";
  EXPECT_LT(rec["start_unix_ms"].get<int64_t>(), failed_unix_ms) << rec.dump();
  EXPECT_LT(rec["answer_unix_ms"].get<int64_t>(), failed_unix_ms) << rec.dump();

  // A new call on the new active, with the registrations it got through replication.
  ASSERT_TRUE(caller.Command("dial", fmt::format("sip:2002@{}", kVip)));
  ASSERT_TRUE(test::WaitFor([&] { return Calls(b) == 1; }, 15s)) << Logs() << lab_.node(b)->Log();
  std::this_thread::sleep_for(1s);
  ASSERT_TRUE(callee.Command("hangup"));
  ASSERT_TRUE(test::WaitFor([&] { return Idle(b); }, 10s)) << Logs() << lab_.node(b)->Log();

  // What each phone heard of the first call: the tone, not noise or silence.
  for (auto& p : phones_) p->Stop();
  for (auto& p : phones_) {
    std::vector<std::string> recs = p->Recordings();
    ASSERT_GE(recs.size(), 1u) << p->options().aor;
    EXPECT_GT(test::WavRms(recs.front()), 1000) << p->options().aor << " heard nothing";
  }
}

// A call still ringing when the active dies (kill -9) goes on on the new active: the callee
// answers after the takeover and the call connects, with audio both ways through the new
// active's relay and one CDR from the original start (recovery.h: both INVITE
// transactions re-created from the replicated ringing record).
class RingingFailoverTest : public FailoverCallTest {};

TEST_F(RingingFailoverTest, RingingCallIsAnsweredAfterKillNine) {
  const int a = 0, b = 1;
  ASSERT_EQ(lab_.StartPair(), "");
  ASSERT_NO_FATAL_FAILURE(AddExtensions(a));
  ASSERT_NO_FATAL_FAILURE(StartPhones(a, /*callee_answers=*/false));
  test::BaresipPhone& caller = *phones_[0];
  test::BaresipPhone& callee = *phones_[1];

  ASSERT_TRUE(caller.Command("dial", fmt::format("sip:2002@{}", kVip)));
  ASSERT_TRUE(test::WaitFor([&] { return Calls(a, "ringing") == 1; }, 15s))
      << Logs() << lab_.node(a)->Log();
  std::this_thread::sleep_for(1s);  // the 180 reached the caller; its record reached B
  const int64_t failed_unix_ms = UnixMs();
  const Clock::time_point failed_at = Clock::now();
  ASSERT_NO_FATAL_FAILURE(Fail(Failure::kKill, a));
  ASSERT_TRUE(test::WaitFor([&] { return Calls(b, "ringing") == 1; }, 15s)) << lab_.node(b)->Log();
  std::cout << "[ MEASURED ] RingingKillNine: the ringing call is up on B " << MsSince(failed_at)
            << " ms after the failure\n";

  ASSERT_TRUE(callee.Command("accept"));
  ASSERT_TRUE(test::WaitFor([&] { return Calls(b) == 1; }, 10s)) << Logs() << lab_.node(b)->Log();
  std::vector<std::unique_ptr<test::RtpGapMeter>> meters;
  for (const char* host : {"p1", "p2"}) {
    meters.push_back(std::make_unique<test::RtpGapMeter>(lab_.ns(host), kVip));
  }
  std::this_thread::sleep_for(3s);
  for (size_t i = 0; i < meters.size(); ++i) {
    meters[i]->Stop();
    std::cout << "[ MEASURED ] RingingKillNine: phone " << i + 1 << " got " << meters[i]->packets()
              << " RTP packets in 3 s, longest pause " << meters[i]->max_gap_ms() << " ms\n";
    EXPECT_GT(meters[i]->packets(), 100u) << "phone " << i + 1 << " got no audio\n" << Logs();
  }

  json rec;
  ASSERT_NO_FATAL_FAILURE(HangUpForOneCdr(caller, b, rec));
  EXPECT_EQ(rec["status"], "answered") << rec.dump();
  EXPECT_EQ(rec["caller"], "2001");
  EXPECT_EQ(rec["callee"], "2002");
  EXPECT_EQ(rec["hangup_side"], "caller") << rec.dump();
  EXPECT_LT(rec["start_unix_ms"].get<int64_t>(), failed_unix_ms) << rec.dump();
  EXPECT_GT(rec["answer_unix_ms"].get<int64_t>(), failed_unix_ms) << rec.dump();
}

INSTANTIATE_TEST_SUITE_P(Failures, FailoverCallTest,
                         testing::Values(Failure::kKill, Failure::kStop, Failure::kPartition,
                                         Failure::kSwitchover),
                         [](const testing::TestParamInfo<Failure>& i) { return Name(i.param); });

}  // namespace
}  // namespace pbx
