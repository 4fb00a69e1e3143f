// The frame codec (FORMAT.md): round trips of every message kind, and every way a frame can
// be damaged, each refused with Corruption naming the problem (like LevelDB's log_test).

#include "replication/ship/wire.h"

#include <string>

#include <gtest/gtest.h>

#include "replication/ship/crc32c.h"

namespace pbx::ship {
namespace {

TEST(Crc32cTest, KnownValues) {
  // RFC 3720 B.4 test vectors, and the classic check value.
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(""), 0u);
}

TEST(Crc32cTest, ExtendEqualsWhole) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data += static_cast<char>(i * 7);
  for (size_t cut : {0, 1, 7, 8, 9, 500, 999, 1000}) {
    uint32_t crc = Crc32cExtend(0, data.data(), cut);
    crc = Crc32cExtend(crc, data.data() + cut, data.size() - cut);
    EXPECT_EQ(crc, Crc32c(data)) << cut;
  }
}

Message Sample(Body body) { return Message{7, 0x1234567890abcdefULL, 3, std::move(body)}; }

Message RoundTrip(const Message& m) {
  auto decoded = DecodeFrame(EncodeFrame(m), 1 << 20);
  EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
  if (!decoded.ok()) return {};
  EXPECT_EQ(decoded->epoch, m.epoch);
  EXPECT_EQ(decoded->session, m.session);
  EXPECT_EQ(decoded->msg_seq, m.msg_seq);
  EXPECT_EQ(decoded->body.index(), m.body.index());
  return std::move(decoded).value();
}

TEST(WireTest, EveryKindRoundTrips) {
  {
    auto m = RoundTrip(Sample(Hello{"c1", "beta", 42, true, std::string("\0map", 4)}));
    const Hello& h = std::get<Hello>(m.body);
    EXPECT_EQ(h.cluster_id, "c1");
    EXPECT_EQ(h.node_name, "beta");
    EXPECT_EQ(h.last_seq, 42u);
    EXPECT_TRUE(h.was_active);
    EXPECT_EQ(h.cf_map, std::string("\0map", 4));
  }
  {
    auto m = RoundTrip(Sample(Welcome{"c1", "alpha", Welcome::Mode::kCheckpoint, 43, 99}));
    const Welcome& w = std::get<Welcome>(m.body);
    EXPECT_EQ(w.mode, Welcome::Mode::kCheckpoint);
    EXPECT_EQ(w.start_seq, 43u);
    EXPECT_EQ(w.active_seq, 99u);
  }
  {
    auto m = RoundTrip(Sample(Refuse{RefuseReason::kStaleActive, "why"}));
    EXPECT_EQ(std::get<Refuse>(m.body).reason, RefuseReason::kStaleActive);
    EXPECT_EQ(std::get<Refuse>(m.body).detail, "why");
  }
  {
    Batches bs;
    bs.active_seq = 12;
    bs.batches.push_back(MakeWireBatch(store::WalBatch{10, 2, std::string("\x01\0\xff", 3)}));
    bs.batches.push_back(MakeWireBatch(store::WalBatch{12, 1, "x"}));
    auto m = RoundTrip(Sample(bs));
    const Batches& got = std::get<Batches>(m.body);
    ASSERT_EQ(got.batches.size(), 2u);
    EXPECT_EQ(got.batches[0].batch.first_seq, 10u);
    EXPECT_EQ(got.batches[0].batch.count, 2u);
    EXPECT_EQ(got.batches[0].batch.data, std::string("\x01\0\xff", 3));
    EXPECT_EQ(got.batches[0].crc32c, Crc32c(std::string("\x01\0\xff", 3)));
    EXPECT_EQ(got.active_seq, 12u);
  }
  {
    auto m = RoundTrip(Sample(CheckpointChunk{"000012.sst", 4096, Crc32c("abc"), "abc"}));
    const auto& c = std::get<CheckpointChunk>(m.body);
    EXPECT_EQ(c.file, "000012.sst");
    EXPECT_EQ(c.offset, 4096u);
    EXPECT_EQ(c.data, "abc");
  }
  {
    auto m = RoundTrip(Sample(CheckpointDone{77, {{"CURRENT", 16, 5}, {"MANIFEST-1", 0, 0}}}));
    const auto& d = std::get<CheckpointDone>(m.body);
    EXPECT_EQ(d.seq, 77u);
    ASSERT_EQ(d.files.size(), 2u);
    EXPECT_EQ(d.files[0].name, "CURRENT");
    EXPECT_EQ(d.files[0].size, 16u);
    EXPECT_EQ(d.files[0].crc32c, 5u);
  }
  {
    auto m = RoundTrip(Sample(Ack{88, 9}));
    EXPECT_EQ(std::get<Ack>(m.body).applied_seq, 88u);
    EXPECT_EQ(std::get<Ack>(m.body).acked_msg_seq, 9u);
  }
  {
    auto m = RoundTrip(Sample(Keepalive{5}));
    EXPECT_EQ(std::get<Keepalive>(m.body).active_seq, 5u);
  }
}

// Decodes `frame` and expects Corruption whose message contains `what`.
void ExpectRefused(const std::string& frame, const std::string& what, size_t max = 1 << 20) {
  auto r = DecodeFrame(frame, max);
  ASSERT_FALSE(r.ok()) << what;
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
  EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().message();
}

TEST(WireTest, DamagedFramesAreRefusedByName) {
  const std::string good = EncodeFrame(Sample(Ack{1, 1}));
  ASSERT_TRUE(DecodeFrame(good, 1 << 20).ok());

  ExpectRefused("", "truncated frame");
  ExpectRefused(good.substr(0, 10), "truncated frame");
  ExpectRefused(good.substr(0, good.size() - 8), "truncated frame: header says");
  ExpectRefused(good + "12345678", "after its body");
  ExpectRefused(good, "oversized frame", good.size() - 1);

  std::string magic = good;
  magic[0] ^= 1;
  ExpectRefused(magic, "bad magic");

  ExpectRefused(EncodeFrameWithVersion(Sample(Ack{1, 1}), 2), "unsupported protocol version 2");

  // Every single flipped bit in the body is caught by the frame checksum.
  for (size_t i = kFrameHeaderSize; i < good.size(); ++i) {
    std::string flipped = good;
    flipped[i] ^= 0x10;
    ExpectRefused(flipped, "checksum mismatch");
  }
  std::string bad_crc = good;
  bad_crc[12] ^= 1;
  ExpectRefused(bad_crc, "checksum mismatch");
}

// A frame whose header and checksum are right around a body that is not a message.
std::string Reframe(const std::string& body) {
  std::string frame = EncodeFrame(Sample(Keepalive{1})).substr(0, kFrameHeaderSize);
  const uint32_t size = static_cast<uint32_t>(body.size());
  const uint32_t crc = Crc32c(body);
  for (int i = 0; i < 4; ++i) {
    frame[8 + i] = static_cast<char>((size >> (8 * i)) & 0xff);
    frame[12 + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  }
  return frame + body;
}

TEST(WireTest, ChecksummedGarbageIsNotCapnp) {
  ExpectRefused(Reframe("1234567"), "not a whole number of words");
  ExpectRefused(Reframe(std::string(16, '\xff')), "not a Cap'n Proto message");
  ExpectRefused(Reframe("this is not capnp!!!!!!!"), "not a Cap'n Proto message");
  // A real message cut short, checksummed again: capnp notices the missing segment.
  const std::string body = EncodeFrame(Sample(CheckpointChunk{"f", 0, 0, std::string(500, 'x')}))
                               .substr(kFrameHeaderSize);
  ExpectRefused(Reframe(body.substr(0, body.size() - 64)), "not a Cap'n Proto message");
}

}  // namespace
}  // namespace pbx::ship
