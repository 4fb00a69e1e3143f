// The real pbx-witness binary: start on port 0, find the port in witness.json, get a lease,
// stop with SIGTERM.
#include <signal.h>

#include <filesystem>
#include <optional>
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "node/cluster/witness_client.h"
#include "tests/support/process.h"

namespace pbx::cluster {
namespace {

using namespace std::chrono_literals;

struct Ready {
  int pid = 0;
  int port = 0;
};

// Waits for RUN_DIR/witness.json and parses it.
std::optional<Ready> WaitReady(const std::string& run_dir) {
  const std::string path = run_dir + "/witness.json";
  if (!test::WaitFor([&] { return std::filesystem::exists(path); }, 10s)) return std::nullopt;
  const std::string json = test::ReadFile(path);
  std::smatch pid, port;
  if (!std::regex_search(json, pid, std::regex(R"("pid":\s*(\d+))")) ||
      !std::regex_search(json, port, std::regex(R"("port":\s*(\d+))"))) {
    ADD_FAILURE() << "witness.json: " << json;
    return std::nullopt;
  }
  return Ready{std::stoi(pid[1]), std::stoi(port[1])};
}

LeaseRequest Req(std::string node) {
  LeaseRequest r;
  r.cluster_id = "pair1";
  r.node_name = std::move(node);
  r.epoch = 1;
  r.lease_ms = 1000;
  return r;
}

TEST(WitnessMainTest, ServesLeasesAndStopsOnSigterm) {
  test::TempDir dir;
  const std::string run_dir = dir.Sub("run");
  test::Process witness({PBX_WITNESS_PATH, "--listen", "tcp://127.0.0.1:0", "--run-dir", run_dir,
                         "--startup-hold-ms", "0", "--log-level", "debug"},
                        dir.Sub("witness.log"));
  std::optional<Ready> ready = WaitReady(run_dir);
  ASSERT_TRUE(ready.has_value()) << witness.Log();
  EXPECT_EQ(ready->pid, witness.pid());
  ASSERT_GT(ready->port, 0);

  Result<std::unique_ptr<WitnessClient>> a =
      WitnessClient::Connect("tcp://127.0.0.1:" + std::to_string(ready->port));
  Result<std::unique_ptr<WitnessClient>> b =
      WitnessClient::Connect("tcp://127.0.0.1:" + std::to_string(ready->port));
  ASSERT_TRUE(a.ok() && b.ok());
  Result<LeaseReply> ra = (*a)->Request(Req("node-a"), 2s);
  ASSERT_TRUE(ra.ok()) << ra.status().ToString() << "\n" << witness.Log();
  EXPECT_TRUE(ra->granted);
  Result<LeaseReply> rb = (*b)->Request(Req("node-b"), 2s);
  ASSERT_TRUE(rb.ok()) << rb.status().ToString();
  EXPECT_FALSE(rb->granted);
  EXPECT_EQ(rb->holder, "node-a");
  EXPECT_EQ(rb->witness_boot_id, ra->witness_boot_id);

  EXPECT_EQ(witness.Signal(SIGTERM), 0) << witness.Log();
  const std::string log = witness.Log();
  EXPECT_NE(log.find("lease granted to node-a"), std::string::npos) << log;
  EXPECT_NE(log.find("stopped"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(run_dir + "/witness.json"));
}

TEST(WitnessMainTest, HoldsNewGrantsBackAfterStartByDefault) {
  test::TempDir dir;
  test::Process witness({PBX_WITNESS_PATH, "--listen", "tcp://127.0.0.1:0", "--run-dir", dir.path(),
                         "--max-lease-ms", "5000"},
                        dir.Sub("witness.log"));
  std::optional<Ready> ready = WaitReady(dir.path());
  ASSERT_TRUE(ready.has_value()) << witness.Log();
  Result<std::unique_ptr<WitnessClient>> a =
      WitnessClient::Connect("tcp://127.0.0.1:" + std::to_string(ready->port));
  ASSERT_TRUE(a.ok());
  Result<LeaseReply> r = (*a)->Request(Req("node-a"), 2s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->granted);
  EXPECT_EQ(r->holder, "");
  EXPECT_GT(r->remaining_ms, 0u);
  EXPECT_LE(r->remaining_ms, 5000u);
  EXPECT_EQ(witness.Signal(SIGINT), 0) << witness.Log();
}

TEST(WitnessMainTest, BadArgumentsFail) {
  test::CommandResult r = test::Run({PBX_WITNESS_PATH, "--listen", "nonsense://x"}, 10s);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  r = test::Run({PBX_WITNESS_PATH, "--listen", "tcp://127.0.0.1:0", "--max-lease-ms", "10"}, 10s);
  EXPECT_NE(r.exit_code, 0);
  r = test::Run({PBX_WITNESS_PATH}, 10s);  // --listen is required
  EXPECT_NE(r.exit_code, 0);
}

}  // namespace
}  // namespace pbx::cluster
