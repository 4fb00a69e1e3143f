// ClusterController's record of "this DB may hold writes the peer never saw" (kWasActiveKey),
// and the analog lines it moves with the VIP: with real stores on a temp dir, a real
// WitnessServer on loopback and no peer.
#include "node/main/cluster_controller.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "node/cluster/witness_server.h"
#include "node/main/write_gate.h"
#include "replication/store/repos.h"
#include "replication/store/wal.h"
#include "tests/support/process.h"

namespace pbx::node {
namespace {

using namespace std::chrono_literals;

class ClusterControllerTest : public testing::Test {
 protected:
  void SetUp() override {
    // One block of ports per test process (ctest runs each test in its own process).
    base_ = 24000 + (getpid() % 500) * 8;
    store::StoreOptions opts;
    opts.dir = dir_.Sub("state");
    Result<std::unique_ptr<store::ReplicatedDb>> db = store::OpenReplicatedDb(opts);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(*db);
    Result<std::unique_ptr<store::LocalStore>> local = store::OpenLocalStore(dir_.Sub("local"));
    ASSERT_TRUE(local.ok()) << local.status().ToString();
    local_ = std::move(*local);
    gate_ = std::make_unique<WriteGate>(*db_);
  }

  void TearDown() override {
    if (controller_) controller_->Stop();
  }

  // A node whose peer never answers; `witness_port` 0: a witness address nobody listens on,
  // so the node never gets the right to promote. It is a candidate (and prepares its
  // promotion) once its peer is hb_dead intervals of 20 ms silent.
  BootstrapConfig Config(int witness_port, uint32_t hb_dead, uint32_t hb_ms) const {
    BootstrapConfig c;
    c.node_name = "pbx-a";
    BootstrapConfig::Cluster cl;
    cl.name = "unit";
    cl.listen = Endpoint{"127.0.0.1", static_cast<uint16_t>(base_)};
    cl.peer = Endpoint{"127.0.0.1", static_cast<uint16_t>(base_ + 2)};
    cl.witness =
        Endpoint{"127.0.0.1", static_cast<uint16_t>(witness_port ? witness_port : base_ + 4)};
    cl.hb_interval_ms = hb_ms;
    cl.hb_dead = hb_dead;
    c.cluster = cl;
    return c;
  }

  void StartController(int witness_port, hal::LineSwitch* lines = nullptr, uint32_t hb_dead = 5,
                       uint32_t hb_ms = 20) {
    Result<std::unique_ptr<ClusterController>> c = ClusterController::Start(
        Config(witness_port, hb_dead, hb_ms), *db_, *local_, *gate_, nullptr, lines);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    controller_ = std::move(*c);
  }

  bool WasActive() const { return local_->Get(kWasActiveKey).ok(); }

  // Commits a meta record of `epoch` and one extension, as a node of that epoch would have.
  void WriteAsOf(uint64_t epoch) {
    store::WriteSet writes;
    store::ClusterMeta meta;
    meta.cluster_id = "c0ffee";
    meta.epoch = epoch;
    store::MetaRepo(*db_).Put(meta, writes);
    store::Extension ext;
    ext.number = "2001";
    ext.name = "Front desk";
    store::ExtensionRepo(*db_).Put(ext, /*create=*/true, writes);
    ASSERT_TRUE(db_->Commit(writes, store::Durability::kReplicated).ok());
  }

  test::TempDir dir_;
  int base_ = 0;
  std::unique_ptr<store::ReplicatedDb> db_;
  std::unique_ptr<store::LocalStore> local_;
  std::unique_ptr<WriteGate> gate_;
  std::unique_ptr<ClusterController> controller_;  // stopped before the stores go
};

// Records what the controller asked of the line switch.
class RecordingLineSwitch final : public hal::LineSwitch {
 public:
  explicit RecordingLineSwitch(std::chrono::milliseconds take_time = 0ms) : take_time_(take_time) {}
  Status Take() override {
    std::this_thread::sleep_for(take_time_);  // a relay that is slow to switch
    return Record("take");
  }
  Status Release() override { return Record("release"); }
  std::vector<std::string> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  Status Record(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back(what);
    return Status::Ok();
  }
  const std::chrono::milliseconds take_time_;
  mutable std::mutex mu_;
  std::vector<std::string> calls_;
};

// The lines move with the VIP: let go at start (a crash may have left them here), taken on
// promotion, let go again when the node stops.
TEST_F(ClusterControllerTest, LinesAreReleasedAtStartTakenOnPromotionAndReleasedOnStop) {
  cluster::WitnessServer::Options wo;
  wo.lease.startup_hold = 0ms;
  cluster::WitnessServer witness(wo);
  ASSERT_TRUE(witness.Start("tcp://127.0.0.1:0").ok());
  RecordingLineSwitch lines;
  ASSERT_NO_FATAL_FAILURE(StartController(witness.port(), &lines));
  ASSERT_TRUE(test::WaitFor([&] { return controller_->role() == "active"; }, 10s))
      << controller_->role() << ": " << controller_->role_reason();
  EXPECT_EQ(lines.calls(), (std::vector<std::string>{"release", "take"}));
  controller_.reset();  // stops it, while `lines` is still there
  EXPECT_EQ(lines.calls(), (std::vector<std::string>{"release", "take", "release"}));
}

// A node that cannot promote (no witness answers) never takes the lines.
TEST_F(ClusterControllerTest, LinesStayWithThePeerWithoutTheWitnessLease) {
  RecordingLineSwitch lines;
  ASSERT_NO_FATAL_FAILURE(StartController(0, &lines));
  std::this_thread::sleep_for(300ms);  // fifteen heartbeat intervals of 20 ms
  EXPECT_NE(controller_->role(), "active");
  EXPECT_EQ(lines.calls(), (std::vector<std::string>{"release"}));
  controller_.reset();
}

// A crash right after the epoch commit must leave a node that knows it was active: the flag
// is durable before the new epoch is.
TEST_F(ClusterControllerTest, PromotionRecordsWasActiveBeforeTheEpochCommit) {
  cluster::WitnessServer::Options wo;
  wo.lease.startup_hold = 0ms;
  cluster::WitnessServer witness(wo);
  ASSERT_TRUE(witness.Start("tcp://127.0.0.1:0").ok());

  std::atomic<int> epoch_commits{0};
  std::atomic<int> without_flag{0};
  // Runs on the committing thread, after the commit and before Commit returns.
  store::Subscription sub = db_->Subscribe(store::Table::kMeta, "", [&](const store::Change&) {
    ++epoch_commits;
    if (!WasActive()) ++without_flag;
  });
  ASSERT_FALSE(WasActive());
  ASSERT_NO_FATAL_FAILURE(StartController(witness.port()));
  ASSERT_TRUE(test::WaitFor([&] { return controller_->role() == "active"; }, 10s))
      << controller_->role() << ": " << controller_->role_reason();
  EXPECT_EQ(epoch_commits.load(), 1);
  EXPECT_EQ(without_flag.load(), 0) << "the epoch was committed before was_active";
  EXPECT_TRUE(WasActive());
}

// A DB that served a standalone node (writes, no epoch) has writes no peer saw.
TEST_F(ClusterControllerTest, StoreUsedStandaloneCountsAsWasActive) {
  ASSERT_NO_FATAL_FAILURE(WriteAsOf(0));
  ASSERT_NO_FATAL_FAILURE(StartController(0));
  EXPECT_TRUE(WasActive());
  EXPECT_NE(controller_->role(), "active");
}

// (A peer silent for 2 s: the node is no candidate yet, so it has not prepared a promotion.)
TEST_F(ClusterControllerTest, FreshStoreAndFollowerStoreDoNotCountAsWasActive) {
  ASSERT_NO_FATAL_FAILURE(StartController(0, nullptr, 100));
  EXPECT_FALSE(WasActive()) << "a new DB holds nothing but the column-family map";
  controller_->Stop();
  controller_.reset();

  // What a follower holds: the pair's history, epoch 3.
  ASSERT_NO_FATAL_FAILURE(WriteAsOf(3));
  ASSERT_NO_FATAL_FAILURE(StartController(0, nullptr, 100));
  EXPECT_FALSE(WasActive());
}

// Under disk load (an fsync takes a second) the promotion's claim outlasts the lease many
// times over: with 50 ms heartbeats (a 250 ms lease, witness calls given 100 ms) the epoch
// commit takes 1 s here and the line switch 500 ms. The lease is renewed while they run,
// so the node promotes once and stays active; before two-phase promotion it fenced itself
// after every claim and promoted again (a new epoch each time).
TEST_F(ClusterControllerTest, SlowPromotionKeepsTheLeaseAndPromotesOnce) {
  cluster::WitnessServer::Options wo;
  wo.lease.startup_hold = 0ms;
  cluster::WitnessServer witness(wo);
  ASSERT_TRUE(witness.Start("tcp://127.0.0.1:0").ok());

  std::atomic<int> epoch_commits{0};
  // Runs on the committing thread, inside Commit: the slow fsync of the epoch.
  store::Subscription sub = db_->Subscribe(store::Table::kMeta, "", [&](const store::Change&) {
    ++epoch_commits;
    std::this_thread::sleep_for(1s);
  });
  RecordingLineSwitch lines(500ms);
  ASSERT_NO_FATAL_FAILURE(StartController(witness.port(), &lines, 5, 50));
  ASSERT_TRUE(test::WaitFor([&] { return controller_->role() == "active"; }, 10s))
      << controller_->role() << ": " << controller_->role_reason();
  std::this_thread::sleep_for(500ms);  // ten intervals: renewals as usual after the claim
  EXPECT_EQ(controller_->role(), "active") << controller_->role_reason();
  EXPECT_EQ(epoch_commits.load(), 1) << "the node fenced and promoted again";
  EXPECT_EQ(lines.calls(), (std::vector<std::string>{"release", "take"}));
  EXPECT_TRUE(WasActive());
  controller_.reset();
}

}  // namespace
}  // namespace pbx::node
