// The virtual IP as the cluster uses it, in network namespaces (root only):
//
//   pbxt<pid>_a  node A  eth0 02:13:00:00:00:0a  10.213.0.1/24  fd00:213::1/64 --+
//   pbxt<pid>_b  node B  eth0 02:13:00:00:00:0b  10.213.0.2/24  fd00:213::2/64 --+-- br0 in
//   pbxt<pid>_c  client  eth0 02:13:00:00:00:0c  10.213.0.3/24  fd00:213::3/64 --+   pbxt<pid>_sw
//
// The VIP is 10.213.0.100/24 or fd00:213::100/64. Nothing connects these namespaces to the
// host's, so no test packet leaves them. The code under test runs in pbx_vip_tool under
// `ip netns exec`; this process stays in the host namespace. Every test builds and removes
// its own namespaces; names carry the pid, and leftovers of a crashed run are removed.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/types.h>

#include "tests/support/process.h"
#include "tests/system/netns.h"

namespace pbx {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kTool[] = PBX_VIP_TOOL_PATH;
constexpr char kIface[] = "eth0";
constexpr char kMacA[] = "02:13:00:00:00:0a";
constexpr char kMacB[] = "02:13:00:00:00:0b";
constexpr char kVip4[] = "10.213.0.100";
constexpr char kVip6[] = "fd00:213::100";
constexpr char kPort[] = "5060";
constexpr char kNsPrefix[] = "pbxt";

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Counts non-overlapping occurrences of `needle` in `hay`.
int Count(const std::string& hay, const std::string& needle) {
  int n = 0;
  for (size_t pos = hay.find(needle); pos != std::string::npos;
       pos = hay.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

// The number after "key=" in `text`, or -1.
long long Field(const std::string& text, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(key + "=([0-9]+)"))) return -1;
  return std::stoll(m[1]);
}

class VipSystemTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!lab_.Create(&why)) GTEST_SKIP() << why;
    a_ = lab_.ns("a");
    b_ = lab_.ns("b");
    c_ = lab_.ns("c");
    ASSERT_EQ(lab_.AddHost("a", kMacA, {"10.213.0.1/24", "fd00:213::1/64"}), "");
    ASSERT_EQ(lab_.AddHost("b", kMacB, {"10.213.0.2/24", "fd00:213::2/64"}), "");
    ASSERT_EQ(lab_.AddHost("c", "02:13:00:00:00:0c", {"10.213.0.3/24", "fd00:213::3/64"}), "");
  }

  void TearDown() override {
    // Processes first (SIGTERM, then SIGKILL), then the namespaces they run in.
    procs_.clear();
  }

  // Runs `argv` inside namespace `ns` to completion.
  test::CommandResult In(const std::string& ns, std::vector<std::string> argv,
                         milliseconds timeout = seconds(10)) {
    argv.insert(argv.begin(), {"ip", "netns", "exec", ns});
    return test::Run(argv, timeout);
  }
  test::CommandResult Tool(const std::string& ns, std::vector<std::string> args) {
    args.insert(args.begin(), kTool);
    return In(ns, std::move(args));
  }

  // Starts pbx_vip_tool inside `ns` in the background; killed in TearDown at the latest.
  test::Process& StartTool(const std::string& ns, std::vector<std::string> args) {
    args.insert(args.begin(), {"ip", "netns", "exec", ns, kTool});
    std::string log = dir_.Sub("proc" + std::to_string(procs_.size()) + ".log");
    procs_.push_back(std::make_unique<test::Process>(std::move(args), log));
    return *procs_.back();
  }
  // Waits until a background tool has printed `text`.
  bool WaitForLog(test::Process& p, const std::string& text) {
    return test::WaitFor([&] { return p.Log().find(text) != std::string::npos; }, seconds(5));
  }

  // The UDP "who are you" responders of A and B, bound to the VIP before either holds it.
  void StartServers(const std::string& vip) {
    test::Process& sa = StartTool(a_, {"serve", "node-a", vip, kPort, "--for-ms", "60000"});
    test::Process& sb = StartTool(b_, {"serve", "node-b", vip, kPort, "--for-ms", "60000"});
    ASSERT_TRUE(WaitForLog(sa, "serving")) << sa.Log();
    ASSERT_TRUE(WaitForLog(sb, "serving")) << sb.Log();
  }

  // The name of the node that answers on the VIP for client C, or "" if none does.
  std::string Ask(const std::string& vip) {
    return Trim(In(c_, {kTool, "ask", vip, kPort, "--timeout-ms", "100"}).out);
  }
  // Client C's neighbour entry for `addr` ("… lladdr 02:13:00:00:00:0a REACHABLE").
  std::string Neigh(const std::string& addr) {
    return test::Run({"ip", "-n", c_, "neigh", "show", addr, "dev", kIface}).out;
  }
  bool Held(const std::string& ns, const std::string& cidr) {
    return Tool(ns, {"held", kIface, cidr}).exit_code == 0;
  }

  // A holds the VIP and serves C; A releases (the daemon's SIGTERM path) and B acquires. C's
  // neighbour entry must move to B's MAC with no traffic from C (only B's announcement can do
  // that: measured without it, C kept A's MAC for 37 s), and C must then reach B.
  void Failover(const std::string& vip, int prefix_len, const std::string& label) {
    std::string cidr = vip + "/" + std::to_string(prefix_len);
    ASSERT_NO_FATAL_FAILURE(StartServers(vip));
    EXPECT_EQ(Ask(vip), "") << "nobody holds the VIP yet";

    test::Process& a = StartTool(a_, {"acquire", kIface, cidr, "--hold-ms", "60000", "--release"});
    ASSERT_TRUE(WaitForLog(a, "acquired")) << a.Log();
    EXPECT_NE(a.Log().find(std::string("mac=") + kMacA), std::string::npos) << a.Log();
    std::string reply;
    ASSERT_TRUE(test::WaitFor([&] { return (reply = Ask(vip)) == "node-a"; }, seconds(3)))
        << "C does not reach A on the VIP; last reply '" << reply << "'\n"
        << a.Log();
    EXPECT_NE(Neigh(vip).find(kMacA), std::string::npos) << Neigh(vip);

    // Failover, right after C resolved the VIP (inside its 1 s neighbour locktime).
    ASSERT_EQ(a.Signal(SIGTERM), 0) << a.Log();
    EXPECT_FALSE(Held(a_, cidr)) << "A still has the VIP after Release()";
    Clock::time_point start = Clock::now();
    test::Process& b = StartTool(b_, {"acquire", kIface, cidr, "--hold-ms", "60000", "--release"});

    double neigh_ms = -1;
    if (test::WaitFor([&] { return Neigh(vip).find(kMacB) != std::string::npos; }, seconds(3))) {
      neigh_ms = MsSince(start);
    }
    double reply_ms = -1;
    if (test::WaitFor([&] { return (reply = Ask(vip)) == "node-b"; }, seconds(3))) {
      reply_ms = MsSince(start);
    }
    long long acquire_us = Field(b.Log(), "acquire_us");
    std::cout << "[ MEASURED ] " << label << ": Acquire() took " << acquire_us
              << " us; C's neighbour entry moved to B after " << neigh_ms
              << " ms; C reached B after " << reply_ms << " ms (from starting B's tool)\n";
    RecordProperty(label + "_neigh_switch_ms", std::to_string(neigh_ms));
    RecordProperty(label + "_reply_ms", std::to_string(reply_ms));

    EXPECT_GE(neigh_ms, 0) << "C's neighbour entry never moved to B: " << Neigh(vip) << b.Log();
    EXPECT_LT(neigh_ms, 2000);
    EXPECT_GE(reply_ms, 0) << "C never reached B; last reply '" << reply << "'\n" << b.Log();
    EXPECT_LT(reply_ms, 2000);
    EXPECT_GE(acquire_us, 0) << b.Log();
    // Sending the burst inline would take 2 x 550 ms; the bound leaves room for a loaded
    // machine (52 ms seen under ASan with a build running).
    EXPECT_LT(acquire_us, 300000) << "Acquire() must not wait for the announcement burst";

    ASSERT_EQ(b.Signal(SIGTERM), 0) << b.Log();
    EXPECT_FALSE(Held(b_, cidr));
  }

  test::TempDir dir_;
  test::NetLab lab_{kNsPrefix};
  std::vector<std::unique_ptr<test::Process>> procs_;  // destroyed before lab_
  std::string a_, b_, c_;
};

TEST_F(VipSystemTest, Ipv4FailoverGratuitousArpMovesClientToNewHolder) {
  Failover(kVip4, 24, "ipv4");
}

TEST_F(VipSystemTest, Ipv6FailoverUnsolicitedNaMovesClientToNewHolder) {
  Failover(kVip6, 64, "ipv6");
}

TEST_F(VipSystemTest, AcquireTwiceAndReleaseOfAbsentAddressAreFine) {
  std::string cidr = std::string(kVip4) + "/24";
  // Twice on one object, then again from a new process (a restarted daemon).
  test::CommandResult r = Tool(a_, {"acquire", kIface, cidr, "--repeat", "2", "--hold-ms", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Count(r.out, "acquired"), 2) << r.out;
  r = Tool(a_, {"acquire", kIface, cidr, "--hold-ms", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string addrs = test::Run({"ip", "-n", a_, "-4", "addr", "show", "dev", kIface}).out;
  EXPECT_EQ(Count(addrs, cidr), 1) << addrs;
  EXPECT_TRUE(Held(a_, cidr));

  r = Tool(a_, {"release", kIface, cidr});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(Held(a_, cidr));
  r = Tool(a_, {"release", kIface, cidr});
  EXPECT_EQ(r.exit_code, 0) << "releasing an absent address: " << r.err;
  r = Tool(b_, {"release", kIface, cidr});
  EXPECT_EQ(r.exit_code, 0) << "releasing a never acquired address: " << r.err;

  // Release removes the VIP whatever prefix length it was added with.
  ASSERT_EQ(test::Run({"ip", "-n", a_, "addr", "add", std::string(kVip4) + "/32", "dev", kIface})
                .exit_code,
            0);
  EXPECT_TRUE(Held(a_, cidr));
  r = Tool(a_, {"release", kIface, cidr});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(Held(a_, cidr));

  // IPv6 too, and usable at once (no tentative phase).
  std::string cidr6 = std::string(kVip6) + "/64";
  r = Tool(a_, {"acquire", kIface, cidr6, "--repeat", "2", "--hold-ms", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  addrs = test::Run({"ip", "-n", a_, "-6", "addr", "show", "dev", kIface}).out;
  EXPECT_EQ(Count(addrs, cidr6), 1) << addrs;
  size_t line = addrs.find(cidr6);
  ASSERT_NE(line, std::string::npos) << addrs;
  EXPECT_EQ(addrs.substr(line, addrs.find('\n', line) - line).find("tentative"), std::string::npos)
      << addrs;
  EXPECT_TRUE(Held(a_, cidr6));
  EXPECT_EQ(Tool(a_, {"release", kIface, cidr6}).exit_code, 0);
  EXPECT_FALSE(Held(a_, cidr6));
}

TEST_F(VipSystemTest, ErrorsNameInterfaceAndAddress) {
  std::string cidr = std::string(kVip4) + "/24";
  test::CommandResult r = Tool(a_, {"acquire", "nosuch0", cidr, "--hold-ms", "0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("Not found"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nosuch0"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(cidr), std::string::npos) << r.err;
  EXPECT_FALSE(Held(a_, cidr));
  EXPECT_EQ(Tool(a_, {"held", "nosuch0", cidr}).exit_code, 1);
  r = Tool(a_, {"release", "nosuch0", cidr});
  EXPECT_EQ(r.exit_code, 0) << "no interface, so no address to remove: " << r.err;

  r = Tool(a_, {"acquire", kIface, "10.213.0.300/24", "--hold-ms", "0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("Invalid argument"), std::string::npos) << r.err;
  r = Tool(a_, {"acquire", kIface, std::string(kVip4) + "/33", "--hold-ms", "0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("prefix length"), std::string::npos) << r.err;
}

TEST_F(VipSystemTest, WithoutPrivilegeErrorsArePermissionDenied) {
  if (test::Run({"setpriv", "--version"}).exit_code != 0) GTEST_SKIP() << "setpriv not found";
  std::string cidr = std::string(kVip4) + "/24";
  auto as_nobody = [&](const std::string& cmd) {
    return In(a_, {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                   "--bounding-set=-all", kTool, cmd, kIface, cidr, "--hold-ms", "0"});
  };
  test::CommandResult r = as_nobody("acquire");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(kIface), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(cidr), std::string::npos) << r.err;
  EXPECT_FALSE(Held(a_, cidr)) << "a failed Acquire() must not leave the address behind";

  ASSERT_EQ(Tool(a_, {"acquire", kIface, cidr, "--hold-ms", "0"}).exit_code, 0);
  r = as_nobody("release");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(cidr), std::string::npos) << r.err;
  EXPECT_TRUE(Held(a_, cidr));
}

TEST_F(VipSystemTest, RefreshAnnouncesOnlyWhileTheKernelHasTheAddress) {
  std::string cidr = std::string(kVip4) + "/24";
  // 1 + 1 burst packets, then one every 100 ms: about 10 in one second.
  test::CommandResult r = Tool(a_, {"acquire", kIface, cidr, "--burst", "2", "--spacing-ms", "50",
                                    "--refresh-ms", "100", "--hold-ms", "1000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  long long sent = Field(r.out, "sent");
  EXPECT_GE(sent, 7) << r.out;
  EXPECT_LE(sent, 12) << r.out;

  // Removed behind its back (an operator, a fencing script): the announcer must stop, or it
  // would draw the clients' traffic to a node that drops it.
  ASSERT_EQ(Tool(a_, {"release", kIface, cidr}).exit_code, 0);
  test::Process& p = StartTool(a_, {"acquire", kIface, cidr, "--burst", "2", "--spacing-ms", "50",
                                    "--refresh-ms", "100", "--hold-ms", "1000"});
  ASSERT_TRUE(WaitForLog(p, "acquired")) << p.Log();
  ASSERT_EQ(test::Run({"ip", "-n", a_, "addr", "del", cidr, "dev", kIface}).exit_code, 0);
  ASSERT_EQ(p.Wait(seconds(5)), 0) << p.Log();
  sent = Field(p.Log(), "sent");
  EXPECT_GE(sent, 1) << p.Log();
  EXPECT_LE(sent, 3) << p.Log();
}

}  // namespace
}  // namespace pbx
