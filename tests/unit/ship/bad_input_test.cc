// Bad input on the link: each kind of broken message, sent by a raw NNG pair1 socket that
// plays the active (to a real LogReceiver) or the standby (to a real LogShipper), is
// refused with a log line naming the problem, changes nothing, and the link recovers
// through a new session.

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "replication/ship/crc32c.h"
#include "tests/unit/ship/ship_test_util.h"

namespace pbx::ship::test {
namespace {

using std::chrono::milliseconds;

// --- A fake active in front of a real LogReceiver ---

class FakeActiveTest : public ::testing::Test {
 protected:
  static constexpr size_t kMaxFrame = 256 << 10;

  void SetUp() override {
    source_ = OpenDb(dir_.Sub("source"));  // what the fake active ships, from its real WAL
    standby_ = OpenDb(dir_.Sub("standby"));
    ASSERT_NE(source_, nullptr);
    ASSERT_NE(standby_, nullptr);
    WriteMeta(*source_, 1);
    WriteSome(*source_, 10, "a");
    url_ = active_.Listen();
    ReceiverOptions o = FastReceiver(url_);
    o.max_frame_bytes = kMaxFrame;
    o.refused_retry = milliseconds(100);
    auto r = LogReceiver::Start(*standby_, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    receiver_ = std::move(r).value();
    Handshake();
    ASSERT_TRUE(ShipFrom(standby_->LatestSeq() + 1));
    ASSERT_EQ(standby_->LatestSeq(), source_->LatestSeq());
    WriteSome(*source_, 5, "b");  // what the bad messages try to deliver
  }

  // Waits for the receiver's hello and welcomes it to stream.
  void Handshake() {
    auto hello = active_.RecvKind<Hello>(milliseconds(5000));
    ASSERT_TRUE(hello.has_value());
    session_ = hello->first.session;
    EXPECT_EQ(hello->first.msg_seq, 1u);
    EXPECT_EQ(hello->second.cluster_id, kCluster);
    EXPECT_EQ(hello->second.node_name, "beta");
    EXPECT_EQ(hello->second.last_seq, standby_->LatestSeq());
    msg_seq_ = 0;
    ASSERT_TRUE(active_.Send(Next(Welcome{kCluster, "fake", Welcome::Mode::kStream,
                                          hello->second.last_seq + 1, source_->LatestSeq()})));
  }

  Message Next(Body body, uint64_t epoch = 1) {
    return Message{epoch, session_, ++msg_seq_, std::move(body)};
  }

  Batches Read(SeqNo from) {
    auto read = source_->ReadWalSince(from, 1 << 20);
    EXPECT_TRUE(read.ok()) << read.status().ToString();
    Batches bs;
    bs.active_seq = source_->LatestSeq();
    if (read.ok()) {
      for (auto& b : *read) bs.batches.push_back(MakeWireBatch(std::move(b)));
    }
    return bs;
  }

  // Ships everything from `from` and waits for the ack that covers it.
  bool ShipFrom(SeqNo from) {
    const Message m = Next(Read(from));
    if (!active_.Send(m)) return false;
    auto ack = active_.RecvKind<Ack>();
    return ack && ack->second.acked_msg_seq == m.msg_seq &&
           ack->second.applied_seq == source_->LatestSeq();
  }

  // Sends `frame`; expects it refused (naming `what`), nothing changed, and a new session
  // that then streams the rest.
  void ExpectRefusedAndRecovers(const std::string& frame, const std::string& what,
                                bool link_drops = false) {
    const SeqNo seq = standby_->LatestSeq();
    const auto before = Dump(*standby_);
    const ReceiverStatus st = receiver_->status();
    ASSERT_TRUE(active_.SendBytes(frame));
    if (!link_drops) {
      auto refuse = active_.RecvKind<Refuse>();
      ASSERT_TRUE(refuse.has_value()) << what;
      EXPECT_NE(refuse->second.detail.find(what), std::string::npos) << refuse->second.detail;
      const ReceiverStatus now = receiver_->status();
      EXPECT_EQ(now.refused, st.refused + 1);
      EXPECT_NE(now.last_refusal.find(what), std::string::npos) << now.last_refusal;
    }
    Handshake();  // the receiver starts over, announcing where it stands
    EXPECT_EQ(standby_->LatestSeq(), seq);
    EXPECT_TRUE(Dump(*standby_) == before);
    ASSERT_TRUE(ShipFrom(seq + 1));
    EXPECT_EQ(standby_->LatestSeq(), source_->LatestSeq());
    EXPECT_TRUE(Dump(*standby_) == Dump(*source_));
  }

  TempDir dir_;
  std::unique_ptr<ReplicatedDb> source_;
  std::unique_ptr<ReplicatedDb> standby_;
  // Before receiver_, so destroyed after it: a receiver says goodbye and stops sending
  // before it closes, and only a quiet socket is safe to close (Link's class comment).
  RawPeer active_;
  std::string url_;
  std::unique_ptr<LogReceiver> receiver_;
  uint64_t session_ = 0;
  uint64_t msg_seq_ = 0;
};

// Leaving an active that answers (Stop) and one known dead (Abandon, on a promotion after
// the active died): only the first is told goodbye and waited for. The fake active here
// answers nothing, as a paused or cut-off one; Stop() would wait goodbye_timeout for it.
TEST_F(FakeActiveTest, StopSaysGoodbye) {
  receiver_->Stop();
  auto bye = active_.RecvKind<Refuse>(milliseconds(2000));
  ASSERT_TRUE(bye.has_value());
  EXPECT_EQ(bye->second.reason, RefuseReason::kShuttingDown);
  EXPECT_FALSE(receiver_->status().connected);
}

TEST_F(FakeActiveTest, AbandonLeavesADeadActiveWithoutAGoodbye) {
  receiver_->Abandon();
  EXPECT_FALSE(receiver_->status().connected);
  EXPECT_FALSE(active_.RecvKind<Refuse>(milliseconds(300)).has_value());
}

TEST_F(FakeActiveTest, CorruptFrame) {
  std::string frame = EncodeFrame(Next(Read(standby_->LatestSeq() + 1)));
  frame[frame.size() / 2] ^= 0x40;
  ExpectRefusedAndRecovers(frame, "frame checksum mismatch");
}

TEST_F(FakeActiveTest, TruncatedFrame) {
  std::string frame = EncodeFrame(Next(Read(standby_->LatestSeq() + 1)));
  frame.resize(frame.size() - 40);
  ExpectRefusedAndRecovers(frame, "truncated frame");
}

TEST_F(FakeActiveTest, NotCapnp) {
  const std::string body(64, '\x5a');
  std::string frame = EncodeFrame(Next(Keepalive{1})).substr(0, kFrameHeaderSize) + body;
  const uint32_t size = static_cast<uint32_t>(body.size());
  const uint32_t crc = Crc32c(body);
  for (int i = 0; i < 4; ++i) {
    frame[8 + i] = static_cast<char>((size >> (8 * i)) & 0xff);
    frame[12 + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  }
  ExpectRefusedAndRecovers(frame, "not a Cap'n Proto message");
}

TEST_F(FakeActiveTest, OversizedFrame) {
  Batches bs = Read(standby_->LatestSeq() + 1);
  Message m = Next(Keepalive{1});
  // Above max_frame_bytes, within NNG's limit: decoded far enough to be named.
  m.body = CheckpointChunk{"x", 0, 0, std::string(kMaxFrame + 1000, 'x')};
  ExpectRefusedAndRecovers(EncodeFrame(m), "oversized frame");
}

TEST_F(FakeActiveTest, FarAboveTheNngLimitTheConnectionDrops) {
  Message m = Next(CheckpointChunk{"x", 0, 0, std::string(4 * kMaxFrame, 'x')});
  ExpectRefusedAndRecovers(EncodeFrame(m), "", /*link_drops=*/true);
}

TEST_F(FakeActiveTest, OtherProtocolVersion) {
  ExpectRefusedAndRecovers(EncodeFrameWithVersion(Next(Read(standby_->LatestSeq() + 1)), 9),
                           "unsupported protocol version 9");
}

TEST_F(FakeActiveTest, BatchChecksumMismatch) {
  Batches bs = Read(standby_->LatestSeq() + 1);
  bs.batches.back().crc32c ^= 1;
  ExpectRefusedAndRecovers(EncodeFrame(Next(bs)), "checksum mismatch");
}

TEST_F(FakeActiveTest, BatchDataDamagedUnderAValidChecksum) {
  Batches bs = Read(standby_->LatestSeq() + 1);
  store::WalBatch& b = bs.batches.back().batch;
  b.data.resize(b.data.size() - 3);
  bs.batches.back() = MakeWireBatch(b);
  ExpectRefusedAndRecovers(EncodeFrame(Next(bs)), "Corruption");
}

TEST_F(FakeActiveTest, Gap) {
  // Starts one op late: a batch trimmed at seq + 2.
  ExpectRefusedAndRecovers(EncodeFrame(Next(Read(standby_->LatestSeq() + 2))), "(a gap)");
}

TEST_F(FakeActiveTest, Overlap) {
  // Starts one op early: the last applied op again, then new ones.
  ExpectRefusedAndRecovers(EncodeFrame(Next(Read(standby_->LatestSeq()))), "(an overlap)");
}

TEST_F(FakeActiveTest, OldEpoch) {
  ExpectRefusedAndRecovers(EncodeFrame(Next(Read(standby_->LatestSeq() + 1), /*epoch=*/0)),
                           "from epoch 0 refused");
}

TEST_F(FakeActiveTest, OutOfOrderMessage) {
  ++msg_seq_;  // one message "lost"
  ExpectRefusedAndRecovers(EncodeFrame(Next(Read(standby_->LatestSeq() + 1))), "out of order");
}

TEST_F(FakeActiveTest, WrongKindOfMessage) {
  ExpectRefusedAndRecovers(EncodeFrame(Next(Ack{1, 1})), "not expected from an active");
}

TEST_F(FakeActiveTest, CheckpointChunkWithAPath) {
  // A checkpoint session, then a chunk that tries to write outside the staging dir.
  ASSERT_TRUE(active_.SendBytes(EncodeFrame(Next(Refuse{RefuseReason::kResync, "test"}))));
  auto hello = active_.RecvKind<Hello>();
  ASSERT_TRUE(hello.has_value());
  session_ = hello->first.session;
  msg_seq_ = 0;
  ASSERT_TRUE(active_.Send(Next(Welcome{kCluster, "fake", Welcome::Mode::kCheckpoint, 0, 0})));
  ExpectRefusedAndRecovers(EncodeFrame(Next(CheckpointChunk{"../evil", 0, Crc32c("x"), "x"})),
                           "not a plain file name");
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("evil")));
}

TEST_F(FakeActiveTest, WelcomeFromAnotherCluster) {
  ASSERT_TRUE(active_.SendBytes(EncodeFrame(Next(Refuse{RefuseReason::kResync, "test"}))));
  auto hello = active_.RecvKind<Hello>();
  ASSERT_TRUE(hello.has_value());
  session_ = hello->first.session;
  msg_seq_ = 0;
  ASSERT_TRUE(active_.Send(
      Next(Welcome{"other", "fake", Welcome::Mode::kStream, hello->second.last_seq + 1, 0})));
  auto refuse = active_.RecvKind<Refuse>();
  ASSERT_TRUE(refuse.has_value());
  EXPECT_EQ(refuse->second.reason, RefuseReason::kClusterMismatch);
  EXPECT_NE(receiver_->status().last_refusal.find("cluster 'other'"), std::string::npos)
      << receiver_->status().last_refusal;
  EXPECT_FALSE(receiver_->status().connected);
}

// --- A fake standby in front of a real LogShipper ---

class FakeStandbyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    active_ = OpenDb(dir_.Sub("active"));
    replica_ = OpenDb(dir_.Sub("replica"));  // the fake standby applies into this
    ASSERT_NE(active_, nullptr);
    ASSERT_NE(replica_, nullptr);
    WriteMeta(*active_, 1);
    WriteSome(*active_, 10, "a");
    auto s = LogShipper::Start(*active_, FastShipper());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    shipper_ = std::move(s).value();
    standby_.Dial(shipper_->url());
    Hello();
    ASSERT_TRUE(CatchUp());
    ASSERT_TRUE(WaitFor([&] { return !shipper_->status().degraded; }));
    WriteSome(*active_, 3, "b");  // sent, and not yet acknowledged
  }

  void Hello(uint64_t epoch = 1) {
    auto cf_map = replica_->Get(Table::kMeta, "cf_map");
    ASSERT_TRUE(cf_map.ok());
    session_ = next_session_++;
    msg_seq_ = 0;
    ASSERT_TRUE(WaitFor([&] {
      return standby_.Send(
          Message{epoch, session_, ++msg_seq_,
                  ship::Hello{kCluster, "fake", replica_->LatestSeq(), false, *cf_map}});
    }));
    auto welcome = standby_.RecvKind<Welcome>();
    ASSERT_TRUE(welcome.has_value());
    ASSERT_EQ(welcome->first.session, session_);
    EXPECT_EQ(welcome->second.mode, Welcome::Mode::kStream);
    EXPECT_EQ(welcome->second.start_seq, replica_->LatestSeq() + 1);  // from what we announce
    peer_msg_seq_ = welcome->first.msg_seq;
  }

  Message Next(Body body, uint64_t epoch = 1) {
    return Message{epoch, session_, ++msg_seq_, std::move(body)};
  }

  // Applies and acknowledges Batches until the replica is at the active's seq.
  bool CatchUp() {
    while (replica_->LatestSeq() < active_->LatestSeq()) {
      auto m = standby_.RecvKind<Batches>();
      if (!m || m->first.session != session_) return false;
      std::vector<store::WalBatch> batches;
      for (auto& b : m->second.batches) batches.push_back(b.batch);
      if (!replica_->ApplyWalBatches(batches).ok()) return false;
      last_batches_msg_ = m->first.msg_seq;
      if (!standby_.Send(Next(Ack{replica_->LatestSeq(), m->first.msg_seq}))) return false;
    }
    return true;
  }

  void ExpectRefusedAndRecovers(const std::string& frame, const std::string& what) {
    const ShipperStatus st = shipper_->status();
    ASSERT_TRUE(standby_.SendBytes(frame));
    auto refuse = standby_.RecvKind<Refuse>();
    ASSERT_TRUE(refuse.has_value()) << what;
    EXPECT_NE(refuse->second.detail.find(what), std::string::npos) << refuse->second.detail;
    ASSERT_TRUE(WaitFor([&] {
      const ShipperStatus now = shipper_->status();
      return now.refused == st.refused + 1 && !now.connected && now.degraded;
    }));
    EXPECT_NE(shipper_->status().last_refusal.find(what), std::string::npos)
        << shipper_->status().last_refusal;
    // The standby starts over; the active streams from the seq it announces.
    Hello();
    ASSERT_TRUE(CatchUp());
    ASSERT_TRUE(WaitFor([&] { return !shipper_->status().degraded; }));
    EXPECT_TRUE(Dump(*replica_) == Dump(*active_));
  }

  TempDir dir_;
  std::unique_ptr<ReplicatedDb> active_;
  std::unique_ptr<ReplicatedDb> replica_;
  RawPeer standby_;  // destroyed after shipper_, as in FakeActiveTest
  std::unique_ptr<LogShipper> shipper_;
  uint64_t next_session_ = 100;
  uint64_t session_ = 0;
  uint64_t msg_seq_ = 0;
  uint64_t peer_msg_seq_ = 0;
  uint64_t last_batches_msg_ = 0;
};

TEST_F(FakeStandbyTest, CorruptFrame) {
  std::string frame = EncodeFrame(Next(Ack{replica_->LatestSeq(), last_batches_msg_}));
  frame[kFrameHeaderSize + 3] ^= 1;
  ExpectRefusedAndRecovers(frame, "frame checksum mismatch");
}

TEST_F(FakeStandbyTest, TruncatedFrame) {
  std::string frame = EncodeFrame(Next(Ack{replica_->LatestSeq(), last_batches_msg_}));
  ExpectRefusedAndRecovers(frame.substr(0, frame.size() - 8), "truncated frame");
}

TEST_F(FakeStandbyTest, OtherProtocolVersion) {
  ExpectRefusedAndRecovers(
      EncodeFrameWithVersion(Next(Ack{replica_->LatestSeq(), last_batches_msg_}), 2),
      "unsupported protocol version 2");
}

TEST_F(FakeStandbyTest, AckFromAnOldEpoch) {
  ExpectRefusedAndRecovers(EncodeFrame(Next(Ack{replica_->LatestSeq(), last_batches_msg_}, 0)),
                           "from epoch 0 refused");
}

TEST_F(FakeStandbyTest, OutOfOrderMessage) {
  ++msg_seq_;
  ExpectRefusedAndRecovers(EncodeFrame(Next(Ack{replica_->LatestSeq(), last_batches_msg_})),
                           "out of order");
}

TEST_F(FakeStandbyTest, AckForASeqNeverSent) {
  ExpectRefusedAndRecovers(EncodeFrame(Next(Ack{active_->LatestSeq() + 1000, last_batches_msg_})),
                           "outside what was acknowledged and sent");
}

TEST_F(FakeStandbyTest, AckForAMessageNeverSent) {
  ExpectRefusedAndRecovers(EncodeFrame(Next(Ack{replica_->LatestSeq(), 1000000})),
                           "it answers #1000000");
}

TEST_F(FakeStandbyTest, WrongKindOfMessage) {
  ExpectRefusedAndRecovers(EncodeFrame(Next(Batches{})), "not something a standby sends");
}

TEST_F(FakeStandbyTest, HelloFromAnotherCluster) {
  auto cf_map = replica_->Get(Table::kMeta, "cf_map");
  ASSERT_TRUE(
      standby_.Send(Message{1, 555, 1, ship::Hello{"other", "intruder", 1, false, *cf_map}}));
  auto refuse = standby_.RecvKind<Refuse>();
  ASSERT_TRUE(refuse.has_value());
  EXPECT_EQ(refuse->first.session, 555u);
  EXPECT_EQ(refuse->second.reason, RefuseReason::kClusterMismatch);
  EXPECT_TRUE(WaitFor([&] { return !shipper_->status().connected; }));
  Hello();  // the real standby comes back
  ASSERT_TRUE(CatchUp());
}

TEST_F(FakeStandbyTest, HelloWithAnotherColumnFamilyMap) {
  ASSERT_TRUE(standby_.Send(Message{1, 556, 1, ship::Hello{kCluster, "odd", 1, false, "x"}}));
  auto refuse = standby_.RecvKind<Refuse>();
  ASSERT_TRUE(refuse.has_value());
  EXPECT_EQ(refuse->second.reason, RefuseReason::kCfMapMismatch);
}

}  // namespace
}  // namespace pbx::ship::test
