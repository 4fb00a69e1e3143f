// LogShipper and LogReceiver end to end: two RocksDB stores in temp dirs, NNG pair1 over
// 127.0.0.1 (port 0), in one process.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/ship/ship_test_util.h"

namespace pbx::ship::test {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

class ShipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    active_ = OpenDb(dir_.Sub("active"));
    standby_ = OpenDb(dir_.Sub("standby"));
    ASSERT_NE(active_, nullptr);
    ASSERT_NE(standby_, nullptr);
    WriteMeta(*active_, 1);
  }
  void TearDown() override {
    receiver_.reset();
    shipper_.reset();
  }

  void StartShipper(ShipperOptions o = FastShipper()) {
    if (!url_.empty()) o.listen_url = url_;  // a restart keeps the port
    auto s = LogShipper::Start(*active_, std::move(o));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    shipper_ = std::move(s).value();
    url_ = shipper_->url();
  }
  void StartReceiver(ReceiverOptions o) {
    auto r = LogReceiver::Start(*standby_, std::move(o));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    receiver_ = std::move(r).value();
  }
  void StartReceiver() { StartReceiver(FastReceiver(url_)); }

  // The standby has everything and the active is no longer degraded.
  bool InSync() {
    return standby_->LatestSeq() == active_->LatestSeq() && receiver_->status().connected &&
           !shipper_->status().degraded;
  }
  void ExpectSameContents() {
    EXPECT_EQ(standby_->LatestSeq(), active_->LatestSeq());
    auto a = Dump(*active_);
    auto b = Dump(*standby_);
    EXPECT_EQ(a.size(), b.size());
    EXPECT_TRUE(a == b);
  }

  TempDir dir_;
  std::unique_ptr<ReplicatedDb> active_;
  std::unique_ptr<ReplicatedDb> standby_;
  std::unique_ptr<LogShipper> shipper_;
  std::unique_ptr<LogReceiver> receiver_;
  std::string url_;
};

TEST_F(ShipTest, WritesAppearOnTheStandbyWithEqualSeqsAndContents) {
  WriteSome(*active_, 20, "before");  // before anyone listens: streamed at the handshake
  StartShipper();
  EXPECT_TRUE(shipper_->status().degraded);  // no standby yet
  std::vector<store::Change> seen;
  std::mutex mu;
  store::Subscription sub =
      standby_->Subscribe(Table::kConfig, "ext/", [&](const store::Change& c) {
        std::lock_guard<std::mutex> lock(mu);
        seen.push_back(c);
      });
  StartReceiver();
  ASSERT_TRUE(WaitFor([&] { return InSync(); }, milliseconds(5000)));
  WriteSome(*active_, 30, "async", Durability::kAsync);
  WriteSome(*active_, 30, "sync", Durability::kReplicated);
  ASSERT_TRUE(WaitFor([&] { return standby_->LatestSeq() == active_->LatestSeq(); }));
  ExpectSameContents();

  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(seen.size(), 80u);  // every ext/ put, with the active's numbers
  const ShipperStatus st = shipper_->status();
  EXPECT_TRUE(st.connected);
  EXPECT_EQ(st.peer_name, "beta");
  EXPECT_EQ(st.phase, "streaming");
  EXPECT_EQ(st.peer_acked_seq, active_->LatestSeq());
  EXPECT_EQ(st.lag_seqs, 0u);
  EXPECT_EQ(st.checkpoints_sent, 0u);
  EXPECT_GE(st.batches_shipped, 61u);
  EXPECT_GT(st.bytes_shipped, 0u);
  EXPECT_EQ(st.epoch, 1u);
  const ReceiverStatus rs = receiver_->status();
  EXPECT_TRUE(rs.connected);
  EXPECT_EQ(rs.peer_name, "alpha");
  EXPECT_EQ(rs.phase, "streaming");
  EXPECT_EQ(rs.applied_seq, active_->LatestSeq());
  EXPECT_EQ(rs.epoch, 1u);
  EXPECT_EQ(rs.checkpoints_installed, 0u);
  EXPECT_EQ(rs.refused, 0u);
}

TEST_F(ShipTest, ReplicatedCommitReturnsOnlyAfterTheAck) {
  StartShipper();
  StartReceiver();
  ASSERT_TRUE(WaitFor([&] { return InSync(); }));
  for (int i = 0; i < 50; ++i) {
    WriteSet w;
    w.Put(Table::kRuntime, "reg/" + std::to_string(i), "contact");
    auto seq = active_->Commit(w, Durability::kReplicated);
    ASSERT_TRUE(seq.ok());
    // The standby applied it before it acknowledged.
    ASSERT_GE(standby_->LatestSeq(), *seq) << i;
  }
  const ShipperStatus st = shipper_->status();
  EXPECT_FALSE(st.degraded);
  EXPECT_EQ(st.replicated_commits, 50u);
  EXPECT_EQ(st.timed_out_commits, 0u);
  EXPECT_EQ(st.degraded_count, 1u);  // only the start, before the standby came
}

// The standby acknowledges once a batch is written and syncs its WAL behind, on its own
// thread: every applied seq ends up synced, with fewer fsyncs than applies.
TEST_F(ShipTest, StandbySyncsItsWalInTheBackground) {
  StartShipper();
  StartReceiver();
  ASSERT_TRUE(WaitFor([&] { return InSync(); }));
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back(
        [&, t] { WriteSome(*active_, 40, "t" + std::to_string(t), Durability::kReplicated); });
  }
  for (std::thread& w : writers) w.join();
  const SeqNo latest = active_->LatestSeq();
  // Nothing else happens: the last sync comes by itself, within about sync_interval.
  ASSERT_TRUE(WaitFor([&] { return receiver_->status().synced_seq == latest; }))
      << receiver_->status().synced_seq << " of " << latest;
  const ReceiverStatus rs = receiver_->status();
  EXPECT_GE(rs.wal_syncs, 1u);
  EXPECT_LE(rs.wal_syncs, rs.acks_sent);
  EXPECT_EQ(shipper_->status().timed_out_commits, 0u);
}

// Stop() syncs whatever the background sync has not yet: a standby that is promoted
// (the role machine stops the receiver before it bumps the epoch) has made durable all it
// acknowledged.
TEST_F(ShipTest, StandbySyncsWhenItStopsAsBeforeAPromotion) {
  StartShipper();
  ReceiverOptions ro = FastReceiver(url_);
  ro.sync_interval = std::chrono::hours(1);  // one background sync, then none
  StartReceiver(ro);
  ASSERT_TRUE(WaitFor([&] { return InSync(); }));
  ASSERT_TRUE(WaitFor([&] { return receiver_->status().wal_syncs == 1; }));
  const SeqNo first_synced = receiver_->status().synced_seq;
  const SeqNo last = WriteSome(*active_, 10, "acked", Durability::kReplicated);
  EXPECT_EQ(shipper_->status().peer_acked_seq, last);       // acknowledged ...
  EXPECT_EQ(receiver_->status().synced_seq, first_synced);  // ... and not synced yet
  receiver_->Stop();
  const ReceiverStatus rs = receiver_->status();
  EXPECT_EQ(rs.synced_seq, last);
  EXPECT_EQ(rs.wal_syncs, 2u);
  EXPECT_EQ(standby_->LatestSeq(), last);
}

// Runs `threads` x `per_thread` commits of one op each; returns commits per second.
double Hammer(ReplicatedDb& db, int threads, int per_thread, Durability durability,
              std::atomic<int>& failures) {
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        WriteSet w;
        w.Put(Table::kRuntime, "reg/t" + std::to_string(t) + "/" + std::to_string(i),
              std::string(64, 'c'));
        if (!db.Commit(w, durability).ok()) ++failures;
      }
    });
  }
  for (auto& w : workers) w.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  return threads * per_thread / secs;
}

TEST_F(ShipTest, ConcurrentReplicatedCommitsShareAcks) {
  std::atomic<int> failures{0};
  constexpr int kThreads = 16;
  constexpr int kPerThread = 60;
  // For comparison: kReplicated with no shipper is a (group-)synced local write.
  const double local_rate =
      Hammer(*active_, kThreads, kPerThread, Durability::kReplicated, failures);
  StartShipper();
  StartReceiver();
  ASSERT_TRUE(WaitFor([&] { return InSync(); }));
  const ShipperStatus before = shipper_->status();
  const double replicated_rate =
      Hammer(*active_, kThreads, kPerThread, Durability::kReplicated, failures);
  const ShipperStatus after = shipper_->status();
  EXPECT_EQ(failures.load(), 0);
  const uint64_t commits = kThreads * kPerThread;
  const uint64_t acked = after.replicated_commits - before.replicated_commits;
  const uint64_t acks = after.acks_received - before.acks_received;
  EXPECT_EQ(acked + (after.timed_out_commits - before.timed_out_commits), commits);
  EXPECT_FALSE(after.degraded) << after.degraded_reason;
  // Group commit: one ack covers every commit waiting at or below its seq.
  EXPECT_LT(acks * 2, commits) << acks << " acks for " << commits << " commits";

  const double async_rate = Hammer(*active_, kThreads, kPerThread, Durability::kAsync, failures);
  ASSERT_TRUE(WaitFor([&] { return standby_->LatestSeq() == active_->LatestSeq(); }));
  ExpectSameContents();
  std::cout << "[ measure ] 16 threads: kReplicated " << static_cast<int>(replicated_rate)
            << " commits/s (" << acks << " acks for " << commits << " commits, last ack latency "
            << after.ack_latency_us << " us), kAsync " << static_cast<int>(async_rate)
            << " commits/s; without a standby kReplicated " << static_cast<int>(local_rate)
            << " commits/s\n";
}

TEST_F(ShipTest, DegradedWhileTheStandbyIsAwayThenCatchesUpFromTheWal) {
  StartShipper();
  StartReceiver();
  ASSERT_TRUE(WaitFor([&] { return InSync(); }));
  const uint64_t episodes = shipper_->status().degraded_count;
  receiver_.reset();  // the standby goes away

  ASSERT_TRUE(WaitFor([&] { return shipper_->status().degraded; }));
  const auto start = Clock::now();
  const SeqNo last = WriteSome(*active_, 20, "alone", Durability::kReplicated);
  EXPECT_LT(Clock::now() - start, milliseconds(200 + 500));  // at most one ack_timeout
  EXPECT_GT(last, standby_->LatestSeq());
  ShipperStatus st = shipper_->status();
  EXPECT_TRUE(st.degraded);
  EXPECT_FALSE(st.connected);
  EXPECT_EQ(st.degraded_count, episodes + 1);
  EXPECT_GT(st.degraded_since_unix_ms, 0);
  EXPECT_FALSE(st.degraded_reason.empty());
  EXPECT_GT(st.lag_seqs, 0u);

  StartReceiver();  // it comes back: the WAL still reaches
  ASSERT_TRUE(WaitFor([&] { return InSync(); }));
  ExpectSameContents();
  st = shipper_->status();
  EXPECT_EQ(st.checkpoints_sent, 0u);
  EXPECT_EQ(st.lag_ms, 0u);
  EXPECT_EQ(st.degraded_since_unix_ms, 0);
}

TEST_F(ShipTest, SilentStandbyMakesCommitsWaitOneAckTimeoutThenDegraded) {
  StartShipper();
  RawPeer standby;
  standby.Dial(url_);
  auto cf_map = active_->Get(Table::kMeta, "cf_map");
  ASSERT_TRUE(cf_map.ok());
  // A standby that is at the active's seq, says hello, and then never acknowledges.
  ASSERT_TRUE(WaitFor([&] {
    return standby.Send(
               Message{1, 99, 1, Hello{kCluster, "mute", active_->LatestSeq(), false, *cf_map}}) &&
           standby.RecvKind<Welcome>(milliseconds(300)).has_value();
  }));
  ASSERT_TRUE(WaitFor([&] { return !shipper_->status().degraded; }));

  const auto start = Clock::now();
  WriteSome(*active_, 1, "wait", Durability::kReplicated);
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, milliseconds(190));
  EXPECT_LT(waited, milliseconds(200 + 400));
  ShipperStatus st = shipper_->status();
  EXPECT_TRUE(st.degraded);
  EXPECT_NE(st.degraded_reason.find("did not acknowledge"), std::string::npos)
      << st.degraded_reason;
  EXPECT_EQ(st.timed_out_commits, 1u);
  EXPECT_GE(st.lag_ms, 150u);
  // Degraded: further commits do not wait at all.
  const auto again = Clock::now();
  WriteSome(*active_, 5, "more", Durability::kReplicated);
  EXPECT_LT(Clock::now() - again, milliseconds(150));
  auto batches = standby.RecvKind<Batches>(milliseconds(2000));
  EXPECT_TRUE(batches.has_value());  // it was shipped, just never acknowledged
  // The sender goes first: only a quiet socket is safe to close (Link's class comment).
  shipper_->Stop();
}

TEST_F(ShipTest, WasActiveStandbyGetsACheckpointEvenWhenTheWalReaches) {
  WriteSome(*active_, 20, "x");
  WriteSome(*standby_, 3, "mine");  // its own tail, from when it was active
  StartShipper();
  std::atomic<SeqNo> resynced{0};
  std::atomic<bool> was_active{true};
  ReceiverOptions o = FastReceiver(url_);
  o.was_active_fn = [&] { return was_active.load(); };
  o.on_full_resync = [&](SeqNo seq) {
    was_active = false;
    resynced = seq;
  };
  StartReceiver(o);
  ASSERT_TRUE(WaitFor([&] { return InSync(); }));
  ExpectSameContents();
  EXPECT_TRUE(standby_->Get(Table::kConfig, "ext/mine0").status().IsNotFound());
  EXPECT_GE(resynced.load(), 1u);
  EXPECT_EQ(shipper_->status().checkpoints_sent, 1u);
  EXPECT_EQ(receiver_->status().checkpoints_installed, 1u);
  // Streaming follows the checkpoint without a gap or a duplicate.
  WriteSome(*active_, 10, "after", Durability::kReplicated);
  EXPECT_EQ(standby_->LatestSeq(), active_->LatestSeq());
  ExpectSameContents();
}

TEST_F(ShipTest, StandbyAwayLongerThanTheWalGetsACheckpointAndSubscribersAreTold) {
  // No WAL retention at all: once flushed, a WAL file is gone.
  shipper_.reset();
  active_.reset();
  std::filesystem::remove_all(dir_.Sub("active"));
  active_ = OpenDb(dir_.Sub("active"), /*wal_ttl=*/0, /*wal_mb=*/0);
  ASSERT_NE(active_, nullptr);
  WriteMeta(*active_, 1);
  StartShipper();
  std::atomic<int> resets{0};
  std::atomic<int> changes{0};
  store::Subscription sub = standby_->Subscribe(
      Table::kConfig, "ext/", [&](const store::Change& c) { (c.reset ? resets : changes)++; });
  StartReceiver();
  ASSERT_TRUE(WaitFor([&] { return InSync(); }));
  receiver_.reset();

  // While the standby is away, the active writes and its WAL is flushed away: a restart
  // (as after an upgrade) flushes the memtables and drops the old WAL files.
  WriteSome(*active_, 300, "away");
  shipper_.reset();
  active_.reset();
  active_ = OpenDb(dir_.Sub("active"), 0, 0);
  ASSERT_NE(active_, nullptr);
  WriteSome(*active_, 10, "later");
  ASSERT_EQ(active_->ReadWalSince(standby_->LatestSeq() + 1, 1).status().code(),
            Status::Code::kNotFound);
  StartShipper();

  const int changes_before = changes.load();
  const auto start = Clock::now();
  StartReceiver();
  ASSERT_TRUE(WaitFor([&] { return InSync(); }));
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  ExpectSameContents();
  EXPECT_EQ(shipper_->status().checkpoints_sent, 1u);
  EXPECT_EQ(receiver_->status().checkpoints_installed, 1u);
  EXPECT_EQ(resets.load(), 1);  // config replaced: this subscriber must re-read everything
  EXPECT_EQ(changes.load(), changes_before);
  std::cout << "[ measure ] checkpoint resync of " << Dump(*active_).size() << " records in "
            << static_cast<int>(secs * 1000) << " ms\n";

  // Then streaming, on the same objects.
  WriteSome(*active_, 10, "streamed", Durability::kReplicated);
  EXPECT_EQ(standby_->LatestSeq(), active_->LatestSeq());
  EXPECT_EQ(changes.load(), changes_before + 10);
  ExpectSameContents();
}

TEST_F(ShipTest, DifferentClusterIdIsRefused) {
  WriteSome(*active_, 5, "x");
  StartShipper();
  const SeqNo before = standby_->LatestSeq();
  ReceiverOptions o = FastReceiver(url_);
  o.cluster_id = "deadbeef";
  StartReceiver(o);
  ASSERT_TRUE(WaitFor([&] { return shipper_->status().refused > 0; }));
  const ShipperStatus st = shipper_->status();
  EXPECT_NE(st.last_refusal.find("cluster 'deadbeef'"), std::string::npos) << st.last_refusal;
  EXPECT_FALSE(st.connected);
  EXPECT_TRUE(st.degraded);
  ASSERT_TRUE(WaitFor([&] { return !receiver_->status().last_refusal.empty(); }));
  EXPECT_NE(receiver_->status().last_refusal.find("cluster mismatch"), std::string::npos)
      << receiver_->status().last_refusal;
  EXPECT_FALSE(receiver_->status().connected);
  EXPECT_EQ(standby_->LatestSeq(), before);
}

TEST_F(ShipTest, StandbyThatHasSeenANewerEpochMakesTheActiveStale) {
  // The standby's DB says epoch 3; this active ships in epoch 1: it is the old active.
  WriteMeta(*standby_, 3);
  StartShipper();
  StartReceiver();
  ASSERT_TRUE(WaitFor([&] { return shipper_->status().newer_epoch_seen == 3; }));
  EXPECT_FALSE(shipper_->status().connected);
  EXPECT_NE(shipper_->status().last_refusal.find("stale active"), std::string::npos);
  EXPECT_FALSE(receiver_->status().connected);
}

TEST_F(ShipTest, PromotionBumpsTheEpochAndTheOldActiveResyncs) {
  StartShipper();
  StartReceiver();
  WriteSome(*active_, 10, "x", Durability::kReplicated);
  ASSERT_TRUE(WaitFor([&] { return InSync(); }));
  // Failover: the standby is promoted (epoch 2) and the old active returns as standby.
  receiver_.reset();
  shipper_.reset();
  auto epoch = store::MetaRepo(*standby_).BumpEpoch();
  ASSERT_TRUE(epoch.ok());
  EXPECT_EQ(*epoch, 2u);
  WriteSome(*active_, 3, "lost");  // the old active wrote on after the split: never shipped
  std::swap(active_, standby_);
  url_.clear();
  StartShipper();
  EXPECT_EQ(shipper_->status().epoch, 2u);
  WriteSome(*active_, 5, "new");
  ReceiverOptions o = FastReceiver(url_);
  o.was_active_fn = [] { return true; };
  StartReceiver(o);
  ASSERT_TRUE(WaitFor([&] { return InSync(); }));
  ExpectSameContents();
  EXPECT_TRUE(standby_->Get(Table::kConfig, "ext/lost0").status().IsNotFound());
  EXPECT_EQ(receiver_->status().epoch, 2u);
}

TEST_F(ShipTest, StopIsPromptWhileCommitsWait) {
  StartShipper();
  RawPeer mute;
  mute.Dial(url_);
  auto cf_map = active_->Get(Table::kMeta, "cf_map");
  ASSERT_TRUE(WaitFor([&] {
    return mute.Send(
               Message{1, 7, 1, Hello{kCluster, "mute", active_->LatestSeq(), false, *cf_map}}) &&
           mute.RecvKind<Welcome>(milliseconds(300)).has_value();
  }));
  ASSERT_TRUE(WaitFor([&] { return !shipper_->status().degraded; }));
  ShipperOptions o = FastShipper();
  std::thread committer([&] { WriteSome(*active_, 1, "w", Durability::kReplicated); });
  const auto start = Clock::now();
  shipper_->Stop();
  committer.join();  // released by Stop, or by its timeout at worst
  EXPECT_LT(Clock::now() - start, milliseconds(1000));
  // Without a shipper, kReplicated is a local synced write.
  WriteSome(*active_, 3, "local", Durability::kReplicated);
}

}  // namespace
}  // namespace pbx::ship::test

namespace pbx::ship::test {
namespace {

// Stopping the standby while batches and keepalives are in flight is what made NNG 1.5.2's
// nng_close hang before the goodbye exchange (Link's class comment).
TEST_F(ShipTest, StandbyStopsAndStartsWhileTheActiveStreams) {
  ShipperOptions so = FastShipper();
  so.keepalive_interval = std::chrono::milliseconds(5);
  StartShipper(so);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    // kReplicated: paced by the standby's acks while it is there, by the local fsync when not.
    while (!done.load()) WriteSome(*active_, 5, "w", Durability::kReplicated);
  });
  const int rounds = getenv("PBX_SHIP_ROUNDS") ? atoi(getenv("PBX_SHIP_ROUNDS")) : 8;
  for (int round = 0; round < rounds && !HasFailure(); ++round) {
    StartReceiver();
    EXPECT_TRUE(WaitFor([&] { return receiver_->status().batches_applied > 0; })) << round;
    const auto start = Clock::now();
    receiver_.reset();
    EXPECT_LT(Clock::now() - start, milliseconds(1000)) << round;
  }
  done = true;
  writer.join();
  ASSERT_FALSE(HasFailure());
  StartReceiver();
  ASSERT_TRUE(WaitFor([&] { return InSync(); }));
  ExpectSameContents();
}

}  // namespace
}  // namespace pbx::ship::test

namespace pbx::ship::test {
namespace {

// The same from the other side: the active's shipper stops and starts (on the same port)
// while it streams, and the standby keeps redialling.
TEST_F(ShipTest, ActiveStopsAndStartsWhileItStreams) {
  ShipperOptions so = FastShipper();
  so.keepalive_interval = std::chrono::milliseconds(5);
  StartShipper(so);
  ReceiverOptions ro = FastReceiver(url_);
  ro.refused_retry = std::chrono::milliseconds(50);
  StartReceiver(ro);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    while (!done.load()) WriteSome(*active_, 5, "w", Durability::kReplicated);
  });
  const int rounds = getenv("PBX_SHIP_ROUNDS") ? atoi(getenv("PBX_SHIP_ROUNDS")) : 8;
  for (int round = 0; round < rounds && !HasFailure(); ++round) {
    const uint64_t applied = receiver_->status().batches_applied;
    EXPECT_TRUE(WaitFor([&] { return receiver_->status().batches_applied > applied; })) << round;
    const auto start = Clock::now();
    shipper_.reset();
    EXPECT_LT(Clock::now() - start, milliseconds(1000)) << round;
    StartShipper(so);
  }
  done = true;
  writer.join();
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(WaitFor([&] { return InSync(); }));
  ExpectSameContents();
}

}  // namespace
}  // namespace pbx::ship::test
