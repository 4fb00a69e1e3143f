// The hooks replication/ship needs from the store: commit observer, replication gate,
// ApplyWalBatches, SyncWal, ReadWalSince's tailing, CreateCheckpoint /
// RestoreFromCheckpoint, MetaRepo::BumpEpoch.

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/ship/ship_test_util.h"

namespace pbx::ship::test {
namespace {

using store::Change;
using store::Subscription;
using store::WalBatch;

TEST(StoreHooksTest, ObserverSeesEveryWriteInOrderUntilRemoved) {
  TempDir dir;
  auto active = OpenDb(dir.Sub("a"));
  auto standby = OpenDb(dir.Sub("b"));
  std::vector<SeqNo> seen;
  std::vector<SeqNo> applied;
  active->SetCommitObserver([&](SeqNo s) { seen.push_back(s); });
  standby->SetCommitObserver([&](SeqNo s) { applied.push_back(s); });
  const SeqNo a = WriteSome(*active, 3, "x", Durability::kAsync);
  const SeqNo b = WriteSome(*active, 1, "y", Durability::kReplicated);
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[2], a);
  EXPECT_EQ(seen[3], b);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));

  auto batches = active->ReadWalSince(2, 1 << 20);
  ASSERT_TRUE(batches.ok());
  ASSERT_TRUE(standby->ApplyWalBatches(*batches).ok());
  EXPECT_EQ(applied, std::vector<SeqNo>{b});  // one call for the applied run

  active->SetCommitObserver(nullptr);
  WriteSome(*active, 1, "z");
  EXPECT_EQ(seen.size(), 4u);
}

TEST(StoreHooksTest, GateRunsForReplicatedOnlyAndHoldsNoStoreLock) {
  TempDir dir;
  auto db = OpenDb(dir.Sub("a"));
  std::mutex mu;
  std::vector<SeqNo> gated;
  std::atomic<bool> release{false};
  std::atomic<bool> inside{false};
  db->SetReplicationGate([&](SeqNo seq) {
    {
      std::lock_guard<std::mutex> lock(mu);
      gated.push_back(seq);
    }
    // No lock of the store is held here: reads work, and so do other commits.
    EXPECT_TRUE(db->Get(Table::kConfig, "ext/g0").ok());
    inside = true;
    while (!release.load()) std::this_thread::yield();
  });
  WriteSome(*db, 1, "a", Durability::kAsync);  // not gated
  std::thread committer([&] { WriteSome(*db, 1, "g", Durability::kReplicated); });
  ASSERT_TRUE(WaitFor([&] { return inside.load(); }));
  // The gated commit is visible and waiting; an async commit goes through meanwhile.
  const SeqNo async_seq = WriteSome(*db, 1, "b", Durability::kAsync);
  EXPECT_GT(async_seq, 0u);
  release = true;
  committer.join();
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(gated.size(), 1u);
  EXPECT_LT(gated[0], async_seq);

  db->SetReplicationGate(nullptr);
  WriteSome(*db, 1, "c", Durability::kReplicated);
  EXPECT_EQ(gated.size(), 1u);
}

TEST(StoreHooksTest, ApplyWalBatchesIsAllOrNothing) {
  TempDir dir;
  auto active = OpenDb(dir.Sub("a"));
  auto standby = OpenDb(dir.Sub("b"));
  WriteSome(*active, 10, "x");
  auto batches = active->ReadWalSince(2, 1 << 20);
  ASSERT_TRUE(batches.ok());
  ASSERT_GE(batches->size(), 10u);
  int fed = 0;
  Subscription sub = standby->Subscribe(Table::kConfig, "", [&](const Change&) { ++fed; });

  std::vector<WalBatch> bad = *batches;
  bad.back().data.resize(bad.back().data.size() - 2);  // the last one is damaged
  EXPECT_EQ(standby->ApplyWalBatches(bad).code(), Status::Code::kCorruption);
  std::vector<WalBatch> gap = *batches;
  gap.erase(gap.begin() + 3);
  EXPECT_EQ(standby->ApplyWalBatches(gap).code(), Status::Code::kCorruption);
  EXPECT_EQ(standby->LatestSeq(), 1u);
  EXPECT_EQ(fed, 0);

  ASSERT_TRUE(standby->ApplyWalBatches(*batches).ok());
  EXPECT_EQ(standby->LatestSeq(), active->LatestSeq());
  EXPECT_EQ(fed, 10);
  EXPECT_TRUE(Dump(*standby) == Dump(*active));
  // A resend is a no-op.
  ASSERT_TRUE(standby->ApplyWalBatches(*batches).ok());
  EXPECT_EQ(fed, 10);
}

// The shipper's tailing reads continue one iterator between calls; across a WAL switch
// (a checkpoint flushes the memtables), a restore, and reads that do not continue the last
// one, every read still returns exactly the batches from `from` on.
TEST(StoreHooksTest, TailingReadsContinueAcrossWalSwitchesAndRestores) {
  TempDir dir;
  auto db = OpenDb(dir.Sub("a"));
  auto replica = OpenDb(dir.Sub("b"));
  SeqNo next = db->LatestSeq() + 1;
  auto read_on = [&](const std::string& what) {
    auto batches = db->ReadWalSince(next, 1 << 20);
    ASSERT_TRUE(batches.ok()) << what << ": " << batches.status().ToString();
    ASSERT_FALSE(batches->empty()) << what;
    EXPECT_EQ(batches->front().first_seq, next) << what;
    EXPECT_EQ(batches->back().first_seq + batches->back().count - 1, db->LatestSeq()) << what;
    ASSERT_TRUE(replica->ApplyWalBatches(*batches).ok()) << what;
    next = batches->back().first_seq + batches->back().count;
  };
  for (int round = 0; round < 6; ++round) {
    WriteSome(*db, 1 + round, "r" + std::to_string(round));
    read_on("round " + std::to_string(round));
    if (round == 2) {
      ASSERT_TRUE(db->CreateCheckpoint(dir.Sub("cp")).ok());  // a new WAL file from here
    }
    if (round == 3) {
      // A read that does not continue the last one (the same `from` again) starts anew.
      auto again = db->ReadWalSince(next - 1, 1 << 20);
      ASSERT_TRUE(again.ok());
      EXPECT_EQ(again->size(), 1u);
    }
  }
  // A small max_bytes stops early; the next read continues from there.
  WriteSome(*db, 5, "small");
  for (int i = 0; i < 5; ++i) {
    auto one = db->ReadWalSince(next, 1);
    ASSERT_TRUE(one.ok());
    ASSERT_EQ(one->size(), 1u);
    ASSERT_EQ(one->front().first_seq, next);
    ASSERT_TRUE(replica->ApplyWalBatches(*one).ok());
    next += one->front().count;
  }
  EXPECT_EQ(replica->LatestSeq(), db->LatestSeq());
  EXPECT_TRUE(Dump(*db) == Dump(*replica));
  // The replica syncs on demand: SyncWal covers everything applied.
  auto synced = replica->SyncWal();
  ASSERT_TRUE(synced.ok());
  EXPECT_EQ(*synced, replica->LatestSeq());

  // A restore replaces the DB the cursor was reading: reads start over on the new one.
  ASSERT_TRUE(db->RestoreFromCheckpoint(dir.Sub("cp")).ok());
  next = db->LatestSeq() + 1;
  WriteSome(*db, 2, "after");
  auto after = db->ReadWalSince(next, 1 << 20);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  ASSERT_EQ(after->size(), 2u);
  EXPECT_EQ(after->front().first_seq, next);
}

TEST(StoreHooksTest, RestoreFromCheckpointReplacesContentsUnderTheSameObject) {
  TempDir dir;
  auto active = OpenDb(dir.Sub("a"));
  auto standby = OpenDb(dir.Sub("b"));
  WriteSome(*standby, 5, "stale");  // history the active never had
  WriteSome(*active, 30, "x");

  std::vector<Change> resets;
  std::vector<Change> changes;
  Subscription s1 = standby->Subscribe(
      Table::kConfig, "ext/", [&](const Change& c) { (c.reset ? resets : changes).push_back(c); });
  Subscription s2 = standby->Subscribe(Table::kMeta, "x", [&](const Change& c) {
    if (c.reset) resets.push_back(c);
  });
  store::StateStore& holder = *standby;  // another component's view of the same store

  auto seq = active->CreateCheckpoint(dir.Sub("ckpt"));
  ASSERT_TRUE(seq.ok()) << seq.status().ToString();
  EXPECT_EQ(*seq, active->LatestSeq());
  WriteSome(*active, 5, "after");  // streamed after the checkpoint

  ASSERT_TRUE(standby->RestoreFromCheckpoint(dir.Sub("ckpt")).ok());
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("ckpt")));
  EXPECT_EQ(standby->LatestSeq(), *seq);
  ASSERT_EQ(resets.size(), 2u);  // config (any prefix) and meta
  EXPECT_EQ(resets[0].seq, *seq);
  EXPECT_TRUE(resets[0].key.empty());
  EXPECT_FALSE(resets[0].value.has_value());
  EXPECT_TRUE(holder.Get(Table::kConfig, "ext/x3").ok());
  EXPECT_TRUE(holder.Get(Table::kConfig, "ext/stale0").status().IsNotFound());

  // Streaming continues from the checkpoint's seq, with the change feed as usual.
  auto rest = active->ReadWalSince(standby->LatestSeq() + 1, 1 << 20);
  ASSERT_TRUE(rest.ok());
  ASSERT_TRUE(standby->ApplyWalBatches(*rest).ok());
  EXPECT_EQ(standby->LatestSeq(), active->LatestSeq());
  EXPECT_TRUE(Dump(*standby) == Dump(*active));
  EXPECT_EQ(changes.size(), 5u);

  // And the replaced DB is what is on disk.
  const auto want = Dump(*active);
  standby.reset();
  standby = OpenDb(dir.Sub("b"));
  ASSERT_NE(standby, nullptr);
  EXPECT_TRUE(Dump(*standby) == want);
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("b.old")));
}

TEST(StoreHooksTest, RestoreRefusesWhatIsNotACheckpointAndKeepsTheOldContents) {
  TempDir dir;
  auto db = OpenDb(dir.Sub("b"));
  WriteSome(*db, 5, "keep");
  const auto before = Dump(*db);
  const SeqNo seq = db->LatestSeq();
  int resets = 0;
  Subscription sub = db->Subscribe(Table::kConfig, "", [&](const Change& c) { resets += c.reset; });

  std::filesystem::create_directories(dir.Sub("empty"));
  EXPECT_EQ(db->RestoreFromCheckpoint(dir.Sub("empty")).code(), Status::Code::kCorruption);

  std::filesystem::create_directories(dir.Sub("junk"));
  std::ofstream(dir.Sub("junk/CURRENT")) << "MANIFEST-000099\n";
  Status s = db->RestoreFromCheckpoint(dir.Sub("junk"));
  EXPECT_EQ(s.code(), Status::Code::kCorruption) << s.ToString();

  EXPECT_EQ(db->LatestSeq(), seq);
  EXPECT_TRUE(Dump(*db) == before);
  EXPECT_EQ(resets, 0);
  WriteSome(*db, 1, "more");  // still usable
  EXPECT_GT(db->LatestSeq(), seq);
}

TEST(StoreHooksTest, InterruptedRestoreRollsBackAtOpen) {
  TempDir dir;
  auto db = OpenDb(dir.Sub("b"));
  WriteSome(*db, 5, "keep");
  const auto before = Dump(*db);
  db.reset();
  // A crash between "move the DB aside" and "move the checkpoint in".
  std::filesystem::rename(dir.Sub("b"), dir.Sub("b.old"));
  db = OpenDb(dir.Sub("b"));
  ASSERT_NE(db, nullptr);
  EXPECT_TRUE(Dump(*db) == before);
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("b.old")));
}

TEST(StoreHooksTest, ReadersAndWritersKeepWorkingAcrossRestores) {
  TempDir dir;
  auto active = OpenDb(dir.Sub("a"));
  auto standby = OpenDb(dir.Sub("b"));
  WriteSome(*active, 20, "x");
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (!done.load()) {
        (void)standby->Get(Table::kConfig, "ext/x1");
        (void)standby->Scan(Table::kRuntime, "reg/");
        (void)standby->LatestSeq();
        ++reads;
      }
    });
  }
  for (int round = 0; round < 3; ++round) {
    const std::string ckpt = dir.Sub("ckpt" + std::to_string(round));
    ASSERT_TRUE(active->CreateCheckpoint(ckpt).ok());
    ASSERT_TRUE(standby->RestoreFromCheckpoint(ckpt).ok());
    WriteSome(*active, 5, "r" + std::to_string(round));
  }
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_GT(reads.load(), 0);
  EXPECT_TRUE(standby->Get(Table::kConfig, "ext/r1" + std::to_string(0)).ok());
}

TEST(StoreHooksTest, BumpEpochCommitsEpochPlusOne) {
  TempDir dir;
  auto db = OpenDb(dir.Sub("a"));
  store::MetaRepo meta(*db);
  EXPECT_TRUE(meta.BumpEpoch().status().IsNotFound());
  WriteMeta(*db, 4);
  auto e = meta.BumpEpoch();
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(*e, 5u);
  EXPECT_EQ(meta.Get()->epoch, 5u);
  EXPECT_EQ(meta.Get()->cluster_id, kCluster);
}

}  // namespace
}  // namespace pbx::ship::test
