// A pair and its witness as real processes on loopback: replication, kill -9 failover,
// a hung active, switchover. Ports are fixed per run (the nodes must know each other's).
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/process.h"

namespace pbx {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class PairTest : public testing::Test {
 protected:
  struct Node {
    std::string name;
    std::string config;
    std::string run_dir;
    std::unique_ptr<test::Process> process;
  };

  void SetUp() override {
    // One block of ports per process; ctest runs these tests one at a time (RESOURCE_LOCK).
    base_ = 21000 + (getpid() % 400) * 10;
    witness_ = std::make_unique<test::Process>(
        std::vector<std::string>{PBX_WITNESS_PATH, "--listen", fmt("tcp://127.0.0.1:{}", base_),
                                 "--startup-hold-ms", "0", "--run-dir", dir_.Sub("witness")},
        dir_.Sub("witness.log"));
    nodes_[0] = MakeNode("pbx-a", base_ + 1, base_ + 3);
    nodes_[1] = MakeNode("pbx-b", base_ + 3, base_ + 1);
  }

  void TearDown() override {
    for (Node& n : nodes_) {
      if (HasFailure() && n.process) {
        std::cerr << "---- " << n.name << " log\n" << Tail(n.process->Log());
      }
      if (n.process) kill(n.process->pid(), SIGCONT);
    }
  }

  template <typename... Args>
  static std::string fmt(const char* f, Args... args) {
    std::string s = f;
    (ReplaceFirst(s, std::to_string(args)), ...);
    return s;
  }
  static void ReplaceFirst(std::string& s, const std::string& v) { s.replace(s.find("{}"), 2, v); }
  static std::string Tail(const std::string& log) {
    return log.size() > 6000 ? log.substr(log.size() - 6000) : log;
  }

  Node MakeNode(const std::string& name, int listen, int peer) {
    Node n;
    n.name = name;
    n.config = dir_.Sub(name + ".toml");
    n.run_dir = dir_.Sub(name + "/run");
    std::ofstream(n.config)
        << "[node]\nname = \"" << name << "\"\n"
        << "data_dir = \"" << dir_.Sub(name + "/data") << "\"\n"
        << "run_dir = \"" << n.run_dir << "\"\n"
        << "[api]\nport = 0\n"
        << "[sip]\nlisten = \"127.0.0.1\"\nudp_port = 0\ntcp_port = 0\ntls_port = 0\n"
        << "[cluster]\nname = \"itest\"\n"
        << "listen = \"127.0.0.1:" << listen << "\"\n"
        << "peer = \"127.0.0.1:" << peer << "\"\n"
        << "witness = \"127.0.0.1:" << base_ << "\"\n"
        << "[demo]\nextensions = true\n";
    return n;
  }

  // Appends `toml` (whole sections) to `n`'s bootstrap file.
  static void AppendConfig(const Node& n, const std::string& toml) {
    std::ofstream(n.config, std::ios::app) << toml;
  }

  std::string DataDir(const Node& n) { return dir_.Sub(n.name + "/data"); }

  void Start(Node& n) {
    std::filesystem::remove(n.run_dir + "/ready.json");
    n.process = std::make_unique<test::Process>(
        std::vector<std::string>{PBXD_PATH, "--config", n.config}, dir_.Sub(n.name + ".log"));
    ASSERT_TRUE(
        test::WaitFor([&] { return std::filesystem::exists(n.run_dir + "/ready.json"); }, 20s))
        << n.process->Log();
  }

  // An HTTPS client for `n`, trusting only its certificate, authenticated as admin once the
  // node has the replicated token secret.
  std::unique_ptr<httplib::SSLClient> Client(const Node& n) {
    std::string ready = test::ReadFile(n.run_dir + "/ready.json");
    std::string token = test::ReadFile(n.run_dir + "/admin.token");
    json r = json::parse(ready, nullptr, false);
    if (r.is_discarded() || token.empty()) return nullptr;
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", r["api"].get<int>());
    c->set_ca_cert_path(r["api_cert"].get<std::string>().c_str());
    c->enable_server_certificate_verification(true);
    c->set_connection_timeout(1);
    c->set_read_timeout(3);
    while (!token.empty() && token.back() == '\n') token.pop_back();
    c->set_bearer_token_auth(token.c_str());
    return c;
  }

  std::optional<json> Status(const Node& n) {
    auto c = Client(n);
    if (!c) return std::nullopt;
    httplib::Result r = c->Get("/api/v1/status");
    if (!r || r->status != 200) return std::nullopt;
    return json::parse(r->body);
  }

  std::string Role(const Node& n) {
    std::optional<json> s = Status(n);
    return s ? (*s)["role"].get<std::string>() : "";
  }

  bool WaitRole(const Node& n, const std::string& role, std::chrono::milliseconds timeout = 10s) {
    return test::WaitFor([&] { return Role(n) == role; }, timeout);
  }

  // POST an extension; returns the HTTP status (0 if no answer).
  int AddExtension(const Node& n, const std::string& number) {
    auto c = Client(n);
    if (!c) return 0;
    json body = {{"number", number}, {"name", "Ext " + number}, {"password", "Pass9word"}};
    httplib::Result r = c->Post("/api/v1/extensions", body.dump(), "application/json");
    return r ? r->status : 0;
  }

  bool HasExtension(const Node& n, const std::string& number) {
    auto c = Client(n);
    if (!c) return false;
    httplib::Result r = c->Get("/api/v1/extensions/" + number);
    return r && r->status == 200;
  }

  // The extension numbers `n` holds, in order.
  std::vector<std::string> Extensions(const Node& n) {
    auto c = Client(n);
    if (!c) return {};
    httplib::Result r = c->Get("/api/v1/extensions");
    if (!r || r->status != 200) return {};
    json list = json::parse(r->body, nullptr, false);
    if (list.is_object() && list.contains("extensions")) list = list["extensions"];
    std::vector<std::string> out;
    if (!list.is_array()) return out;
    for (const json& e : list) out.push_back(e["number"].get<std::string>());
    return out;
  }

  // Names of the WAL files of `n`'s replicated DB, live and archived.
  std::set<std::string> WalFiles(const Node& n) {
    std::set<std::string> out;
    for (const char* sub : {"/state", "/state/archive"}) {
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(DataDir(n) + sub, ec)) {
        if (e.path().extension() == ".log") out.insert(e.path().filename());
      }
    }
    return out;
  }

  uint64_t LastSeq(const Node& n) {
    std::optional<json> s = Status(n);
    return s ? (*s)["last_seq"].get<uint64_t>() : 0;
  }

  // A active with B as its caught-up standby.
  void StartPair() {
    Start(nodes_[0]);
    ASSERT_TRUE(WaitRole(nodes_[0], "active")) << nodes_[0].process->Log();
    Start(nodes_[1]);
    ASSERT_TRUE(WaitRole(nodes_[1], "standby")) << nodes_[1].process->Log();
  }

  test::TempDir dir_;
  int base_ = 0;
  std::unique_ptr<test::Process> witness_;
  Node nodes_[2];
};

TEST_F(PairTest, StandbyHasEveryWriteAndTakesOverAfterKillNine) {
  Node& a = nodes_[0];
  Node& b = nodes_[1];
  ASSERT_NO_FATAL_FAILURE(StartPair());

  ASSERT_EQ(AddExtension(a, "2001"), 201);
  // A kReplicated write is on the standby once the active has answered.
  EXPECT_TRUE(HasExtension(b, "2001"));
  // So is its call forward / DND (a standby's B2BUA routes by it once it takes over).
  httplib::Result put =
      Client(a)->Put("/api/v1/extensions/2001/forwarding", R"({"dnd": true})", "application/json");
  ASSERT_TRUE(put && put->status == 200) << (put ? put->body : "no answer");
  httplib::Result fwd = Client(b)->Get("/api/v1/extensions/2001/forwarding");
  ASSERT_TRUE(fwd && fwd->status == 200);
  EXPECT_EQ(json::parse(fwd->body)["dnd"], true) << fwd->body;
  EXPECT_TRUE(test::WaitFor([&] { return LastSeq(b) == LastSeq(a); }, 5s));
  EXPECT_EQ(AddExtension(b, "2002"), 503) << "a standby must not accept writes";
  uint64_t epoch_before = (*Status(a))["epoch"].get<uint64_t>();

  auto killed_at = std::chrono::steady_clock::now();
  a.process->Signal(SIGKILL);
  ASSERT_TRUE(WaitRole(b, "active", 5s)) << b.process->Log();
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - killed_at);
  std::cout << "failover (kill -9 to standby serving): " << took.count() << " ms\n";
  EXPECT_LT(took, 3s);
  json sb = *Status(b);
  EXPECT_GT(sb["epoch"].get<uint64_t>(), epoch_before);
  EXPECT_TRUE(HasExtension(b, "2001"));
  ASSERT_EQ(AddExtension(b, "2003"), 201);

  // The old active comes back: it resyncs and follows, with everything written meanwhile.
  Start(a);
  ASSERT_TRUE(WaitRole(a, "standby")) << a.process->Log();
  EXPECT_TRUE(HasExtension(a, "2003"));
  EXPECT_TRUE(test::WaitFor([&] { return LastSeq(a) == LastSeq(b); }, 5s));
  EXPECT_EQ(Role(b), "active");
}

TEST_F(PairTest, HungActiveIsFencedAndNeverServesBesideTheNewOne) {
  Node& a = nodes_[0];
  Node& b = nodes_[1];
  ASSERT_NO_FATAL_FAILURE(StartPair());

  kill(a.process->pid(), SIGSTOP);
  ASSERT_TRUE(WaitRole(b, "active", 5s)) << b.process->Log();
  ASSERT_EQ(AddExtension(b, "2101"), 201);
  kill(a.process->pid(), SIGCONT);
  // Its serving license ran out while it was stopped: it refuses writes at once and steps
  // down to follow the new active.
  EXPECT_EQ(AddExtension(a, "2102"), 503);
  ASSERT_TRUE(test::WaitFor([&] { return Role(a) == "standby"; }, 10s)) << a.process->Log();
  EXPECT_EQ(Role(b), "active");
  EXPECT_TRUE(HasExtension(a, "2101"));
  EXPECT_FALSE(HasExtension(b, "2102"));
}

TEST_F(PairTest, SwitchoverHandsOverWithoutLosingAWrite) {
  Node& a = nodes_[0];
  Node& b = nodes_[1];
  ASSERT_NO_FATAL_FAILURE(StartPair());
  ASSERT_EQ(AddExtension(a, "2201"), 201);

  // As an operator would: the active's status shows its standby caught up.
  ASSERT_TRUE(test::WaitFor(
      [&] {
        std::optional<json> s = Status(a);
        if (!s || !s->contains("cluster")) return false;
        const json& peer = (*s)["cluster"]["peer"];
        return peer["role"] == "standby" && peer["last_seq"] == (*s)["last_seq"];
      },
      5s));
  test::CommandResult r =
      test::Run({PBXCTL_PATH, "--run-dir", b.run_dir, "switchover"});  // not the active
  EXPECT_NE(r.exit_code, 0);
  r = test::Run({PBXCTL_PATH, "--run-dir", a.run_dir, "switchover"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(WaitRole(b, "active", 5s)) << b.process->Log();
  ASSERT_TRUE(WaitRole(a, "standby", 5s)) << a.process->Log();
  EXPECT_TRUE(HasExtension(b, "2201"));
  EXPECT_EQ(AddExtension(b, "2202"), 201);
  EXPECT_EQ(AddExtension(a, "2203"), 503);

  // pbxctl status on either node shows both, once the old active has caught up.
  EXPECT_TRUE(test::WaitFor(
      [&] {
        r = test::Run({PBXCTL_PATH, "--run-dir", a.run_dir, "status"});
        return r.out.find("pbx-a  standby") != std::string::npos &&
               r.out.find("pbx-b  active") != std::string::npos;
      },
      5s))
      << r.out << r.err;
}

// The standby is away while the active's WAL retention (1 s here) drops what it would need:
// when it returns it must be resynced by a checkpoint, and hold exactly the active's data
// by the time it reports standby.
TEST_F(PairTest, StandbyAwayLongerThanWalRetentionResyncsByCheckpoint) {
  Node& a = nodes_[0];
  Node& b = nodes_[1];
  for (const Node& n : nodes_)
    AppendConfig(n, "[store]\nwal_ttl_seconds = 1\nwal_size_limit_mb = 0\n");
  ASSERT_NO_FATAL_FAILURE(StartPair());
  ASSERT_EQ(AddExtension(a, "2301"), 201);
  ASSERT_TRUE(test::WaitFor([&] { return LastSeq(b) == LastSeq(a); }, 5s));

  ASSERT_NE(b.process->Signal(SIGTERM), -1);
  ASSERT_EQ(AddExtension(a, "2302"), 201);  // the first write b misses is in one of these
  std::set<std::string> needed = WalFiles(a);
  ASSERT_FALSE(needed.empty());
  int next = 2400;
  ASSERT_TRUE(test::WaitFor(
      [&] {
        EXPECT_EQ(AddExtension(a, std::to_string(next++)), 201);
        std::set<std::string> now = WalFiles(a);
        for (const std::string& f : needed) {
          if (now.count(f)) return false;
        }
        return true;
      },
      20s))
      << "the active kept its WAL files";

  ASSERT_NO_FATAL_FAILURE(Start(b));
  ASSERT_TRUE(WaitRole(b, "standby")) << b.process->Log();
  // No write happened since: the first "standby" must already hold everything.
  EXPECT_EQ(LastSeq(b), LastSeq(a));
  std::vector<std::string> on_a = Extensions(a);
  EXPECT_EQ(Extensions(b), on_a);
  EXPECT_GT(on_a.size(), 3u);
  EXPECT_NE(a.process->Log().find("sending a checkpoint to standby pbx-b: WAL no longer reaches"),
            std::string::npos)
      << a.process->Log();
  EXPECT_NE(b.process->Log().find("full resync installed"), std::string::npos);
}

// A store that served a single node holds writes no peer ever saw: when that node joins a
// pair as follower it must take a checkpoint, not stream on top of its own history.
TEST_F(PairTest, StoreUsedStandaloneResyncsWhenItJoinsAPair) {
  Node& a = nodes_[0];
  Node& b = nodes_[1];
  std::string single = dir_.Sub("single.toml");
  std::ofstream(single) << "[node]\nname = \"pbx-b\"\n"
                        << "data_dir = \"" << DataDir(b) << "\"\n"
                        << "run_dir = \"" << b.run_dir << "\"\n"
                        << "[api]\nport = 0\n[demo]\nextensions = true\n";
  b.process = std::make_unique<test::Process>(
      std::vector<std::string>{PBXD_PATH, "--config", single}, dir_.Sub("single.log"));
  ASSERT_TRUE(test::WaitFor([&] { return Role(b) == "standalone"; }, 20s)) << b.process->Log();
  ASSERT_EQ(AddExtension(b, "2501"), 201);
  uint64_t standalone_seq = LastSeq(b);
  ASSERT_NE(b.process->Signal(SIGTERM), -1);

  ASSERT_NO_FATAL_FAILURE(Start(a));
  ASSERT_TRUE(WaitRole(a, "active")) << a.process->Log();
  // The active gets ahead, so that streaming from b's seq would look possible.
  for (int n = 2502; LastSeq(a) <= standalone_seq + 5 && n < 2540; ++n) {
    ASSERT_EQ(AddExtension(a, std::to_string(n)), 201);
  }
  ASSERT_NO_FATAL_FAILURE(Start(b));
  ASSERT_TRUE(WaitRole(b, "standby")) << b.process->Log();
  EXPECT_NE(a.process->Log().find("sending a checkpoint to standby pbx-b: it was active"),
            std::string::npos)
      << a.process->Log();
  EXPECT_FALSE(HasExtension(b, "2501")) << "the standalone write survived on the standby";
  EXPECT_TRUE(HasExtension(b, "2502"));
  EXPECT_EQ(Extensions(b), Extensions(a));
  EXPECT_TRUE(test::WaitFor([&] { return LastSeq(b) == LastSeq(a); }, 5s));
}

}  // namespace
}  // namespace pbx
