// Failover time with real processes on loopback: a witness and two pbxd; kill -9 the active
// and time until the standby serves (its API reports "active" and accepts a write).
// Repeated N times (default 10), alternating which node dies; prints each run and the median.
// Usage: pbx_failover_bench PBXD PBX_WITNESS [--runs N] [--hb-ms MS]
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/process.h"

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Node {
  std::string name, config, run_dir, log;
  std::unique_ptr<pbx::test::Process> process;
};

std::unique_ptr<httplib::SSLClient> Client(const Node& n) {
  json r = json::parse(pbx::test::ReadFile(n.run_dir + "/ready.json"), nullptr, false);
  std::string token = pbx::test::ReadFile(n.run_dir + "/admin.token");
  if (r.is_discarded() || token.empty()) return nullptr;
  auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", r["api"].get<int>());
  c->enable_server_certificate_verification(false);
  c->set_connection_timeout(0, 200000);
  c->set_read_timeout(1);
  while (!token.empty() && token.back() == '\n') token.pop_back();
  c->set_bearer_token_auth(token.c_str());
  return c;
}

std::string Role(const Node& n) {
  auto c = Client(n);
  if (!c) return "";
  httplib::Result r = c->Get("/api/v1/status");
  if (!r || r->status != 200) return "";
  return json::parse(r->body)["role"].get<std::string>();
}

bool Writable(const Node& n, int i) {
  auto c = Client(n);
  if (!c) return false;
  json body = {{"number", std::to_string(3000 + i)}, {"name", "bench"}, {"password", "Pass9word"}};
  httplib::Result r = c->Post("/api/v1/extensions", body.dump(), "application/json");
  return r && r->status == 201;
}

void Start(Node& n, const std::string& pbxd) {
  std::filesystem::remove(n.run_dir + "/ready.json");
  n.process = std::make_unique<pbx::test::Process>(
      std::vector<std::string>{pbxd, "--config", n.config, "--log-level", "warn"}, n.log);
  pbx::test::WaitFor([&] { return std::filesystem::exists(n.run_dir + "/ready.json"); }, 20s);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s PBXD PBX_WITNESS [--runs N] [--hb-ms MS]\n", argv[0]);
    return 2;
  }
  std::string pbxd = argv[1], witness_bin = argv[2];
  int runs = 10, hb_ms = 100;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--runs") runs = std::stoi(argv[i + 1]);
    if (std::string(argv[i]) == "--hb-ms") hb_ms = std::stoi(argv[i + 1]);
  }
  pbx::test::TempDir dir;
  int base = 26000 + (getpid() % 300) * 10;
  pbx::test::Process witness({witness_bin, "--listen", "tcp://127.0.0.1:" + std::to_string(base),
                              "--startup-hold-ms", "0", "--log-level", "warn"},
                             dir.Sub("witness.log"));
  Node nodes[2];
  for (int i = 0; i < 2; ++i) {
    Node& n = nodes[i];
    n.name = i == 0 ? "pbx-a" : "pbx-b";
    n.config = dir.Sub(n.name + ".toml");
    n.run_dir = dir.Sub(n.name + "/run");
    n.log = dir.Sub(n.name + ".log");
    std::ofstream(n.config)
        << "[node]\nname = \"" << n.name << "\"\n"
        << "data_dir = \"" << dir.Sub(n.name + "/data") << "\"\n"
        << "run_dir = \"" << n.run_dir << "\"\n[api]\nport = 0\n"
        << "[sip]\nlisten = \"127.0.0.1\"\nudp_port = 0\ntcp_port = 0\ntls_port = 0\n"
        << "[cluster]\nname = \"bench\"\n"
        << "listen = \"127.0.0.1:" << base + 1 + 2 * i << "\"\n"
        << "peer = \"127.0.0.1:" << base + 3 - 2 * i << "\"\n"
        << "witness = \"127.0.0.1:" << base << "\"\n"
        << "hb_interval_ms = " << hb_ms << "\n"
        << "[demo]\nextensions = true\n";
  }
  Start(nodes[0], pbxd);
  pbx::test::WaitFor([&] { return Role(nodes[0]) == "active"; }, 20s);
  Start(nodes[1], pbxd);

  std::vector<double> serving_ms, writable_ms;
  int active = 0;
  for (int run = 0; run < runs; ++run) {
    Node& a = nodes[active];
    Node& b = nodes[1 - active];
    if (!pbx::test::WaitFor([&] { return Role(b) == "standby"; }, 30s)) {
      std::fprintf(stderr, "run %d: %s never became standby\n%s", run, b.name.c_str(),
                   b.process->Log().c_str());
      return 1;
    }
    auto t0 = Clock::now();
    a.process->Signal(SIGKILL);
    pbx::test::WaitFor([&] { return Role(b) == "active"; }, 10s);
    auto t1 = Clock::now();
    pbx::test::WaitFor([&] { return Writable(b, run); }, 10s);
    auto t2 = Clock::now();
    serving_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    writable_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t0).count());
    std::printf("run %2d: %s killed, %s active after %.0f ms, first write accepted after %.0f ms\n",
                run + 1, a.name.c_str(), b.name.c_str(), serving_ms.back(), writable_ms.back());
    Start(a, pbxd);  // comes back, resyncs, becomes the standby of the next run
    active = 1 - active;
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  std::printf(
      "failover, hb %d ms x 5, %d runs: median %.0f ms to active, %.0f ms to first write; "
      "worst %.0f ms\n",
      hb_ms, runs, median(serving_ms), median(writable_ms),
      *std::max_element(writable_ms.begin(), writable_ms.end()));
  return 0;
}
