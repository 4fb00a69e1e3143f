// A pair of real pbxd and a pbx-witness in network namespaces on one bridge (root only):
//
//   pbxp<pid>_a  node A   eth0 10.214.0.1/24 --+
//   pbxp<pid>_b  node B   eth0 10.214.0.2/24 --+-- br0 in pbxp<pid>_sw
//   pbxp<pid>_c  client   eth0 10.214.0.3/24 --+
//   pbxp<pid>_w  witness  eth0 10.214.0.4/24 --+
//
// The active carries the VIP 10.214.0.100/24 on its eth0; both nodes serve the REST API on
// 0.0.0.0, so the client reaches whichever node holds the VIP. The client side of the test
// runs on threads of this process that entered the client's namespace (InNetns).
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/process.h"
#include "tests/system/netns.h"

namespace pbx {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr char kVip[] = "10.214.0.100";
constexpr char kAddrA[] = "10.214.0.1";
constexpr char kAddrB[] = "10.214.0.2";
constexpr char kAddrW[] = "10.214.0.4";
constexpr int kApiPort = 8443;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// An HTTPS client of one node's API (any certificate: the test asks who answers). Use on a
// thread inside the client's namespace.
std::unique_ptr<httplib::SSLClient> ApiClient(const std::string& host, const std::string& token) {
  auto c = std::make_unique<httplib::SSLClient>(host, kApiPort);
  c->enable_server_certificate_verification(false);
  c->set_connection_timeout(0, 300'000);
  c->set_read_timeout(1, 0);
  c->set_bearer_token_auth(token.c_str());
  return c;
}

// What /api/v1/status said: node name and role; both empty if nobody answered.
struct Who {
  std::string node;
  std::string role;
  uint64_t last_seq = 0;
};

Who AskStatus(httplib::SSLClient& c) {
  httplib::Result r = c.Get("/api/v1/status");
  if (!r || r->status != 200) return {};
  json s = json::parse(r->body, nullptr, false);
  if (s.is_discarded()) return {};
  return {s["node_name"].get<std::string>(), s["role"].get<std::string>(),
          s["last_seq"].get<uint64_t>()};
}

bool IsActive(const std::string& role) { return role == "active" || role == "promoting"; }

// Asks A and B for their roles from the client's namespace until destroyed. One request
// takes tens of ms here (TLS under a sanitizer, a loaded machine), so each node is asked by
// kThreads threads, each on its own connection and pausing 20 ms between requests: together
// they see a node's role every 20-30 ms.
class RoleSampler {
 public:
  struct Sample {
    double at_ms;  // since the sampler started, when the answer came
    std::string role;
  };
  static constexpr int kThreads = 3;

  RoleSampler(const std::string& ns, const std::string& token) {
    Clock::time_point start = Clock::now();
    for (int i = 0; i < 2 * kThreads; ++i) {
      const int node = i % 2;
      threads_.emplace_back([this, node, ns, token, start] {
        test::InNetns(ns, [&] {
          auto c = ApiClient(node == 0 ? kAddrA : kAddrB, token);
          c->set_keep_alive(true);
          while (!stop_) {
            std::string role = AskStatus(*c).role;
            {
              std::lock_guard<std::mutex> lock(mu_);
              samples_[node].push_back({MsSince(start), std::move(role)});
            }
            std::this_thread::sleep_for(20ms);
          }
          return 0;
        });
      });
    }
  }
  ~RoleSampler() {
    stop_ = true;
    for (std::thread& t : threads_) t.join();
  }

  // Node 0 (A) or 1 (B), in time order.
  std::vector<Sample> samples(int node) const {
    std::vector<Sample> out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      out = samples_[node];
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const Sample& x, const Sample& y) { return x.at_ms < y.at_ms; });
    return out;
  }
  // The instants at which the latest answers of both nodes said active.
  std::vector<std::string> TwoActives() const {
    std::vector<Sample> s[2] = {samples(0), samples(1)};
    std::vector<std::string> out;
    for (int i = 0; i < 2; ++i) {
      const std::vector<Sample>& other = s[1 - i];
      size_t j = 0;  // the other node's latest answer at or before `mine`
      for (const Sample& mine : s[i]) {
        while (j + 1 < other.size() && other[j + 1].at_ms <= mine.at_ms) ++j;
        if (j < other.size() && other[j].at_ms <= mine.at_ms && IsActive(mine.role) &&
            IsActive(other[j].role)) {
          out.push_back(std::to_string(mine.at_ms) + " ms");
        }
      }
    }
    return out;
  }

 private:
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<Sample> samples_[2];  // guarded by mu_
  std::vector<std::thread> threads_;
};

class PairNetnsTest : public testing::Test {
 protected:
  struct Node {
    std::string name;
    std::string host;  // its namespace's role in the lab
    std::string addr;
    std::string config;
    std::string run_dir;
    std::unique_ptr<test::Process> process;
  };

  void SetUp() override {
    std::string why;
    if (!lab_.Create(&why)) GTEST_SKIP() << why;
    ASSERT_EQ(lab_.AddHost("a", "02:14:00:00:00:0a", {std::string(kAddrA) + "/24"}), "");
    ASSERT_EQ(lab_.AddHost("b", "02:14:00:00:00:0b", {std::string(kAddrB) + "/24"}), "");
    ASSERT_EQ(lab_.AddHost("c", "02:14:00:00:00:0c", {"10.214.0.3/24"}), "");
    ASSERT_EQ(lab_.AddHost("w", "02:14:00:00:00:0d", {std::string(kAddrW) + "/24"}), "");
    witness_ = std::make_unique<test::Process>(
        std::vector<std::string>{"ip", "netns", "exec", lab_.ns("w"), PBX_WITNESS_PATH, "--listen",
                                 "tcp://0.0.0.0:7500", "--startup-hold-ms", "0", "--run-dir",
                                 dir_.Sub("witness")},
        dir_.Sub("witness.log"));
    nodes_[0] = MakeNode("pbx-a", "a", kAddrA, kAddrB);
    nodes_[1] = MakeNode("pbx-b", "b", kAddrB, kAddrA);
  }

  void TearDown() override {
    for (Node& n : nodes_) {
      if (HasFailure() && n.process) {
        std::string log = n.process->Log();
        if (log.size() > 8000) log = log.substr(log.size() - 8000);
        std::cerr << "---- " << n.name << " log\n" << log;
      }
      n.process.reset();  // SIGTERM (releases the VIP), SIGKILL after a grace period
    }
    witness_.reset();
  }

  Node MakeNode(const std::string& name, const std::string& host, const std::string& addr,
                const std::string& peer) {
    Node n;
    n.name = name;
    n.host = host;
    n.addr = addr;
    n.config = dir_.Sub(name + ".toml");
    n.run_dir = dir_.Sub(name + "/run");
    std::ofstream(n.config) << "[node]\nname = \"" << name << "\"\n"
                            << "data_dir = \"" << dir_.Sub(name + "/data") << "\"\n"
                            << "run_dir = \"" << n.run_dir << "\"\n"
                            << "[api]\nlisten = \"0.0.0.0\"\nport = " << kApiPort << "\n"
                            << "[cluster]\nname = \"systest\"\n"
                            << "listen = \"" << addr << ":7400\"\n"
                            << "peer = \"" << peer << ":7400\"\n"
                            << "vip = \"" << kVip << "/24\"\ninterface = \"eth0\"\n"
                            << "witness = \"" << kAddrW << ":7500\"\n"
                            << "[demo]\nextensions = true\n";
    return n;
  }

  void Start(Node& n) {
    std::filesystem::remove(n.run_dir + "/ready.json");
    n.process = std::make_unique<test::Process>(
        std::vector<std::string>{"ip", "netns", "exec", lab_.ns(n.host), PBXD_PATH, "--config",
                                 n.config},
        dir_.Sub(n.name + ".log"));
    ASSERT_TRUE(
        test::WaitFor([&] { return std::filesystem::exists(n.run_dir + "/ready.json"); }, 20s))
        << n.process->Log();
  }

  // The admin token of the pair (the token secret replicates: valid on both nodes).
  std::string Token() {
    for (const Node& n : nodes_) {
      std::string t = test::ReadFile(n.run_dir + "/admin.token");
      while (!t.empty() && t.back() == '\n') t.pop_back();
      if (!t.empty()) return t;
    }
    return "";
  }

  // /api/v1/status of whoever answers at `host` (a node's address or the VIP), asked from
  // the client's namespace.
  Who Ask(const std::string& host) {
    std::string token = Token();
    return test::InNetns(lab_.ns("c"), [&] { return AskStatus(*ApiClient(host, token)); });
  }

  bool WaitRole(const Node& n, const std::string& role, std::chrono::milliseconds timeout = 10s) {
    return test::WaitFor([&] { return Ask(n.addr).role == role; }, timeout);
  }

  // POSTs an extension to `host` from the client; the HTTP status (0: no answer).
  int AddExtension(const std::string& host, const std::string& number) {
    std::string token = Token();
    return test::InNetns(lab_.ns("c"), [&] {
      json body = {{"number", number}, {"name", "Ext " + number}, {"password", "Pass9word"}};
      httplib::Result r =
          ApiClient(host, token)->Post("/api/v1/extensions", body.dump(), "application/json");
      return r ? r->status : 0;
    });
  }

  bool HasExtension(const std::string& host, const std::string& number) {
    std::string token = Token();
    return test::InNetns(lab_.ns("c"), [&] {
      httplib::Result r = ApiClient(host, token)->Get("/api/v1/extensions/" + number);
      return r && r->status == 200;
    });
  }

  // Whether `n`'s eth0 carries the VIP.
  bool HoldsVip(const Node& n) {
    test::CommandResult r = test::Run({"ip", "-n", lab_.ns(n.host), "-4", "addr", "show", "eth0"});
    return r.out.find(std::string(kVip) + "/24") != std::string::npos;
  }

  // A active with the VIP, B its caught-up standby.
  void StartPair() {
    Node& a = nodes_[0];
    Node& b = nodes_[1];
    ASSERT_NO_FATAL_FAILURE(Start(a));
    ASSERT_TRUE(WaitRole(a, "active")) << a.process->Log();
    ASSERT_NO_FATAL_FAILURE(Start(b));
    ASSERT_TRUE(WaitRole(b, "standby")) << b.process->Log();
    EXPECT_TRUE(HoldsVip(a));
    EXPECT_FALSE(HoldsVip(b));
    Who w;
    ASSERT_TRUE(test::WaitFor([&] { return (w = Ask(kVip)).node == a.name; }, 5s))
        << "the client does not reach A at the VIP: '" << w.node << "'";
  }

  // Drops every packet between the namespaces of `x` and the host at `addr`, both ways
  // (blackhole routes on both sides); `on` false heals.
  void Cut(const std::string& x, const std::string& x_addr, const std::string& y,
           const std::string& y_addr, bool on) {
    const char* verb = on ? "add" : "del";
    for (auto [ns, to] : {std::pair{x, y_addr}, std::pair{y, x_addr}}) {
      test::CommandResult r =
          test::Run({"ip", "-n", lab_.ns(ns), "route", verb, "blackhole", to + "/32"});
      ASSERT_EQ(r.exit_code, 0) << "ip route " << verb << " blackhole " << to << ": " << r.err;
    }
  }

  // Cuts A from B and `cut_from_witness` from the witness, and checks through the partition
  // and after healing that there are never two actives, and that `survivor` is the one.
  void Partition(const Node& cut_from_witness, const Node& survivor) {
    Node& a = nodes_[0];
    Node& b = nodes_[1];
    ASSERT_NO_FATAL_FAILURE(StartPair());
    ASSERT_EQ(AddExtension(kVip, "2001"), 201);

    RoleSampler sampler(lab_.ns("c"), Token());
    ASSERT_TRUE(test::WaitFor(
        [&] { return sampler.samples(0).size() >= 3 && sampler.samples(1).size() >= 3; }, 5s));
    ASSERT_NO_FATAL_FAILURE(Cut("a", kAddrA, "b", kAddrB, true));
    ASSERT_NO_FATAL_FAILURE(Cut(cut_from_witness.host, cut_from_witness.addr, "w", kAddrW, true));
    Clock::time_point cut_at = Clock::now();

    // Settled: the survivor alone has been active for a second (two lease lengths).
    Clock::time_point settled_since = Clock::now();
    bool settled = test::WaitFor(
        [&] {
          bool one = IsActive(Ask(survivor.addr).role);
          const Node& other = &survivor == &a ? b : a;
          one = one && !IsActive(Ask(other.addr).role);
          if (!one) settled_since = Clock::now();
          return one && MsSince(settled_since) >= 1000 && MsSince(cut_at) >= 1500;
        },
        15s);
    EXPECT_TRUE(settled) << survivor.name << " is not the only active after the partition";
    if (&survivor == &b) {
      EXPECT_TRUE(HoldsVip(b));
      EXPECT_FALSE(HoldsVip(a)) << "A fenced itself: it must have given the VIP up";
    } else {
      EXPECT_TRUE(HoldsVip(a));
    }
    EXPECT_EQ(AddExtension(survivor.addr, "2002"), 201);

    ASSERT_NO_FATAL_FAILURE(Cut("a", kAddrA, "b", kAddrB, false));
    ASSERT_NO_FATAL_FAILURE(Cut(cut_from_witness.host, cut_from_witness.addr, "w", kAddrW, false));
    const Node& other = &survivor == &a ? b : a;
    Who s, o;
    EXPECT_TRUE(test::WaitFor(
        [&] {
          s = Ask(survivor.addr);
          o = Ask(other.addr);
          return s.role == "active" && o.role == "standby" && s.last_seq == o.last_seq;
        },
        15s))
        << survivor.name << " " << s.role << " seq " << s.last_seq << ", " << other.name << " "
        << o.role << " seq " << o.last_seq;
    EXPECT_TRUE(HasExtension(other.addr, "2001"));
    EXPECT_TRUE(HasExtension(other.addr, "2002"));

    std::vector<RoleSampler::Sample> sa = sampler.samples(0), sb = sampler.samples(1);
    std::vector<std::string> two = sampler.TwoActives();
    double span = std::min(sa.back().at_ms, sb.back().at_ms);
    std::cout << "[ MEASURED ] over " << span << " ms of partition and healing: " << sa.size()
              << " role samples of A, " << sb.size() << " of B, " << two.size()
              << " with two actives\n";
    // At least one answer every 50 ms from each node, or the check would be half blind.
    EXPECT_GT(static_cast<double>(std::min(sa.size(), sb.size())), span / 50);
    for (const std::string& t : two) ADD_FAILURE() << "A and B were both active at " << t;
  }

  test::TempDir dir_;
  test::NetLab lab_{"pbxp"};
  // Destroyed before lab_: processes go before their namespaces.
  std::unique_ptr<test::Process> witness_;
  Node nodes_[2];
};

TEST_F(PairNetnsTest, KillNineMovesTheVipAndTheOldActiveRejoinsAsStandby) {
  Node& a = nodes_[0];
  Node& b = nodes_[1];
  ASSERT_NO_FATAL_FAILURE(StartPair());
  ASSERT_EQ(AddExtension(kVip, "2001"), 201);

  Clock::time_point killed_at = Clock::now();
  a.process->Signal(SIGKILL);
  Who w;
  bool moved = test::WaitFor(
      [&] {
        w = Ask(kVip);
        return w.node == b.name && w.role == "active";
      },
      10s);
  double ms = MsSince(killed_at);
  ASSERT_TRUE(moved) << "the client does not reach B at the VIP: '" << w.node << "' " << w.role;
  std::cout << "[ MEASURED ] failover at the VIP (kill -9 of A to the client's first answer "
               "from B at the VIP): "
            << ms << " ms\n";
  RecordProperty("vip_failover_ms", std::to_string(ms));
  EXPECT_LT(ms, 1000) << "default timers (100 ms x 5)";
  EXPECT_TRUE(HoldsVip(b));
  EXPECT_TRUE(HasExtension(kVip, "2001")) << "an acknowledged write was lost";
  EXPECT_EQ(AddExtension(kVip, "2002"), 201);

  // A comes back (its VIP still on eth0, as a crash leaves it): it gives it up and follows.
  ASSERT_TRUE(HoldsVip(a));
  ASSERT_NO_FATAL_FAILURE(Start(a));
  EXPECT_FALSE(HoldsVip(a)) << "a restarted node must not answer on the VIP while it decides";
  EXPECT_TRUE(WaitRole(a, "standby")) << a.process->Log();
  EXPECT_FALSE(HoldsVip(a));
  EXPECT_TRUE(HoldsVip(b));
  EXPECT_EQ(Ask(kVip).node, b.name);
  EXPECT_TRUE(HasExtension(kAddrA, "2002"));
}

// The replication link is cut, and the witness is reachable from the active's side only:
// the active keeps its lease and serves; the standby must not promote.
TEST_F(PairNetnsTest, PartitionWithWitnessOnTheActiveSideKeepsTheActive) {
  Partition(/*cut_from_witness=*/nodes_[1], /*survivor=*/nodes_[0]);
}

// The replication link is cut, and the witness is reachable from the standby's side only:
// the active, seeing neither peer nor witness, fences before its lease ends; then the
// witness grants the standby the lease and it promotes. After healing, the old active
// resyncs and follows.
TEST_F(PairNetnsTest, PartitionWithWitnessOnTheStandbySideMovesTheActive) {
  Partition(/*cut_from_witness=*/nodes_[0], /*survivor=*/nodes_[1]);
}

}  // namespace
}  // namespace pbx
