// A pair of real pbxd and a pbx-witness in network namespaces on one bridge (root only; the
// pair lab, tests/system/pair_lab.h):
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
#include "tests/system/pair_lab.h"

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
  void SetUp() override {
    if (std::string why = lab_.Create(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_EQ(lab_.AddHost("c", 3), "");
  }

  void TearDown() override {
    for (int i = 0; i < 2; ++i) {
      if (HasFailure() && lab_.node(i)) {
        std::string log = lab_.node(i)->Log();
        if (log.size() > 8000) log = log.substr(log.size() - 8000);
        std::cerr << "---- " << lab_.name(i) << " log\n" << log;
      }
    }
  }

  // The admin token of the pair (the token secret replicates: valid on both nodes).
  std::string Token() {
    for (int i = 0; i < 2; ++i) {
      if (!lab_.node(i)) continue;
      std::string t = test::ReadFile(lab_.node(i)->run_dir() + "/admin.token");
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

  // A active with the VIP, B its caught-up standby.
  void StartPair() {
    ASSERT_EQ(lab_.StartPair(), "");
    EXPECT_TRUE(lab_.HoldsVip(0));
    EXPECT_FALSE(lab_.HoldsVip(1));
    Who w;
    ASSERT_TRUE(test::WaitFor([&] { return (w = Ask(kVip)).node == lab_.name(0); }, 5s))
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

  // Cuts A from B and node `cut_from_witness` from the witness, and checks through the
  // partition and after healing that there are never two actives, and that node `survivor`
  // is the one.
  void Partition(int cut_from_witness, int survivor) {
    const int other = 1 - survivor;
    ASSERT_NO_FATAL_FAILURE(StartPair());
    ASSERT_EQ(AddExtension(kVip, "2001"), 201);

    RoleSampler sampler(lab_.ns("c"), Token());
    ASSERT_TRUE(test::WaitFor(
        [&] { return sampler.samples(0).size() >= 3 && sampler.samples(1).size() >= 3; }, 5s));
    ASSERT_NO_FATAL_FAILURE(Cut("a", kAddrA, "b", kAddrB, true));
    ASSERT_NO_FATAL_FAILURE(
        Cut(lab_.host(cut_from_witness), lab_.addr(cut_from_witness), "w", kAddrW, true));
    Clock::time_point cut_at = Clock::now();

    // Settled: the survivor alone has been active for a second (two lease lengths).
    Clock::time_point settled_since = Clock::now();
    bool settled = test::WaitFor(
        [&] {
          bool one = IsActive(Ask(lab_.addr(survivor)).role);
          one = one && !IsActive(Ask(lab_.addr(other)).role);
          if (!one) settled_since = Clock::now();
          return one && MsSince(settled_since) >= 1000 && MsSince(cut_at) >= 1500;
        },
        15s);
    EXPECT_TRUE(settled) << lab_.name(survivor) << " is not the only active after the partition";
    if (survivor == 1) {
      EXPECT_TRUE(lab_.HoldsVip(1));
      EXPECT_FALSE(lab_.HoldsVip(0)) << "A fenced itself: it must have given the VIP up";
    } else {
      EXPECT_TRUE(lab_.HoldsVip(0));
    }
    EXPECT_EQ(AddExtension(lab_.addr(survivor), "2002"), 201);

    ASSERT_NO_FATAL_FAILURE(Cut("a", kAddrA, "b", kAddrB, false));
    ASSERT_NO_FATAL_FAILURE(
        Cut(lab_.host(cut_from_witness), lab_.addr(cut_from_witness), "w", kAddrW, false));
    Who s, o;
    EXPECT_TRUE(test::WaitFor(
        [&] {
          s = Ask(lab_.addr(survivor));
          o = Ask(lab_.addr(other));
          return s.role == "active" && o.role == "standby" && s.last_seq == o.last_seq;
        },
        15s))
        << lab_.name(survivor) << " " << s.role << " seq " << s.last_seq << ", " << lab_.name(other)
        << " " << o.role << " seq " << o.last_seq;
    EXPECT_TRUE(HasExtension(lab_.addr(other), "2001"));
    EXPECT_TRUE(HasExtension(lab_.addr(other), "2002"));

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

  // Both nodes serve the API on 0.0.0.0:kApiPort, so the client reaches whichever node
  // holds the VIP.
  test::PairLab lab_{
      {.prefix = "pbxp", .subnet = "10.214.0", .demo_extensions = true, .api_port = kApiPort}};
};

TEST_F(PairNetnsTest, KillNineMovesTheVipAndTheOldActiveRejoinsAsStandby) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  ASSERT_EQ(AddExtension(kVip, "2001"), 201);

  Clock::time_point killed_at = Clock::now();
  lab_.node(0)->process().Signal(SIGKILL);
  Who w;
  bool moved = test::WaitFor(
      [&] {
        w = Ask(kVip);
        return w.node == lab_.name(1) && w.role == "active";
      },
      10s);
  double ms = MsSince(killed_at);
  ASSERT_TRUE(moved) << "the client does not reach B at the VIP: '" << w.node << "' " << w.role;
  std::cout << "[ MEASURED ] failover at the VIP (kill -9 of A to the client's first answer "
               "from B at the VIP): "
            << ms << " ms\n";
  RecordProperty("vip_failover_ms", std::to_string(ms));
  EXPECT_LT(ms, 1000) << "default timers (100 ms x 5)";
  EXPECT_TRUE(lab_.HoldsVip(1));
  EXPECT_TRUE(HasExtension(kVip, "2001")) << "an acknowledged write was lost";
  EXPECT_EQ(AddExtension(kVip, "2002"), 201);

  // A comes back (its VIP still on eth0, as a crash leaves it): it gives it up and follows.
  ASSERT_TRUE(lab_.HoldsVip(0));
  ASSERT_EQ(lab_.Start(0), "");
  EXPECT_FALSE(lab_.HoldsVip(0)) << "a restarted node must not answer on the VIP while it decides";
  EXPECT_TRUE(lab_.WaitRole(0, "standby")) << lab_.node(0)->Log();
  EXPECT_FALSE(lab_.HoldsVip(0));
  EXPECT_TRUE(lab_.HoldsVip(1));
  EXPECT_EQ(Ask(kVip).node, lab_.name(1));
  EXPECT_TRUE(HasExtension(kAddrA, "2002"));
}

// The replication link is cut, and the witness is reachable from the active's side only:
// the active keeps its lease and serves; the standby must not promote.
TEST_F(PairNetnsTest, PartitionWithWitnessOnTheActiveSideKeepsTheActive) {
  Partition(/*cut_from_witness=*/1, /*survivor=*/0);
}

// The replication link is cut, and the witness is reachable from the standby's side only:
// the active, seeing neither peer nor witness, fences before its lease ends; then the
// witness grants the standby the lease and it promotes. After healing, the old active
// resyncs and follows.
TEST_F(PairNetnsTest, PartitionWithWitnessOnTheStandbySideMovesTheActive) {
  Partition(/*cut_from_witness=*/0, /*survivor=*/1);
}

}  // namespace
}  // namespace pbx
