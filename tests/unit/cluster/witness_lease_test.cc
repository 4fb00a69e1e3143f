// WitnessLease as a table: time is passed in, so nothing here sleeps. Plus the wire codec
// against well-formed and hostile input.
#include "node/cluster/witness_lease.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace pbx::cluster {
namespace {

using namespace std::chrono_literals;
using Kind = LeaseEvent::Kind;

constexpr uint64_t kBoot = 0xb007;
const WitnessClock::time_point t0 = WitnessClock::time_point{} + 1h;

WitnessLease::Options NoHold() {
  WitnessLease::Options o;
  o.startup_hold = 0ms;
  return o;
}

LeaseRequest Req(std::string node, uint32_t lease_ms = 1000, std::string cluster = "pair1") {
  LeaseRequest r;
  r.cluster_id = std::move(cluster);
  r.node_name = std::move(node);
  r.epoch = 7;
  r.lease_ms = lease_ms;
  return r;
}

LeaseRequest Release(std::string node, std::string cluster = "pair1") {
  LeaseRequest r = Req(std::move(node), 0, std::move(cluster));
  r.release = true;
  return r;
}

TEST(WitnessLeaseTest, FirstRequestIsGranted) {
  WitnessLease lease(NoHold(), kBoot, t0);
  LeaseEvent ev;
  LeaseReply r = lease.Decide(Req("a"), t0, &ev);
  EXPECT_TRUE(r.granted);
  EXPECT_EQ(r.holder, "a");
  EXPECT_EQ(r.remaining_ms, 1000u);
  EXPECT_EQ(r.witness_boot_id, kBoot);
  EXPECT_TRUE(r.error.empty());
  EXPECT_EQ(ev.kind, Kind::kGrant);
  EXPECT_EQ(ev.epoch, 7u);
  EXPECT_EQ(ev.lease_end, t0 + 1000ms);
}

TEST(WitnessLeaseTest, HolderRenewsFromNow) {
  WitnessLease lease(NoHold(), kBoot, t0);
  ASSERT_TRUE(lease.Decide(Req("a"), t0).granted);
  LeaseEvent ev;
  LeaseReply r = lease.Decide(Req("a", 2000), t0 + 900ms, &ev);
  EXPECT_TRUE(r.granted);
  EXPECT_EQ(r.remaining_ms, 2000u);
  EXPECT_EQ(ev.kind, Kind::kRenew);
  EXPECT_EQ(ev.lease_end, t0 + 2900ms);
  // Still held by "a" past the first lease's end.
  EXPECT_FALSE(lease.Decide(Req("b"), t0 + 2800ms).granted);
}

TEST(WitnessLeaseTest, OtherNodeIsRefusedWhileHeld) {
  WitnessLease lease(NoHold(), kBoot, t0);
  ASSERT_TRUE(lease.Decide(Req("a"), t0).granted);
  struct Case {
    std::chrono::microseconds at;
    uint32_t remaining_ms;
  } cases[] = {{0us, 1000}, {300ms, 700}, {300500us, 700}, {999ms, 1}, {999999us, 1}};
  for (const Case& c : cases) {
    LeaseEvent ev;
    LeaseReply r = lease.Decide(Req("b"), t0 + c.at, &ev);
    EXPECT_FALSE(r.granted) << c.at.count();
    EXPECT_EQ(r.holder, "a");
    // Rounded up: the refused node never underestimates the holder's time.
    EXPECT_EQ(r.remaining_ms, c.remaining_ms) << c.at.count();
    EXPECT_TRUE(r.error.empty());
    EXPECT_EQ(ev.kind, Kind::kRefuse);
    EXPECT_EQ(ev.previous_holder, "a");
  }
}

TEST(WitnessLeaseTest, OtherNodeIsGrantedOnceTheLeaseExpired) {
  WitnessLease lease(NoHold(), kBoot, t0);
  ASSERT_TRUE(lease.Decide(Req("a"), t0).granted);
  LeaseEvent ev;
  LeaseReply r = lease.Decide(Req("b"), t0 + 1000ms, &ev);
  EXPECT_TRUE(r.granted);
  EXPECT_EQ(r.holder, "b");
  EXPECT_EQ(ev.kind, Kind::kHandover);
  EXPECT_EQ(ev.previous_holder, "a");
  // And now "a" is the one refused.
  r = lease.Decide(Req("a"), t0 + 1001ms);
  EXPECT_FALSE(r.granted);
  EXPECT_EQ(r.holder, "b");
  EXPECT_EQ(r.remaining_ms, 999u);
}

TEST(WitnessLeaseTest, SameNodeRegrantedAfterExpiryIsAGrant) {
  WitnessLease lease(NoHold(), kBoot, t0);
  ASSERT_TRUE(lease.Decide(Req("a"), t0).granted);
  LeaseEvent ev;
  EXPECT_TRUE(lease.Decide(Req("a"), t0 + 5s, &ev).granted);
  EXPECT_EQ(ev.kind, Kind::kGrant);
}

TEST(WitnessLeaseTest, ReleaseEndsTheLeaseAtOnce) {
  WitnessLease lease(NoHold(), kBoot, t0);
  ASSERT_TRUE(lease.Decide(Req("a"), t0).granted);

  // From a node that does not hold it: nothing changes.
  LeaseEvent ev;
  LeaseReply r = lease.Decide(Release("b"), t0 + 10ms, &ev);
  EXPECT_FALSE(r.granted);
  EXPECT_EQ(r.holder, "a");
  EXPECT_EQ(ev.kind, Kind::kNone);

  r = lease.Decide(Release("a"), t0 + 100ms, &ev);
  EXPECT_FALSE(r.granted);
  EXPECT_EQ(r.holder, "");
  EXPECT_EQ(r.remaining_ms, 0u);
  EXPECT_EQ(ev.kind, Kind::kRelease);

  r = lease.Decide(Req("b"), t0 + 100ms, &ev);
  EXPECT_TRUE(r.granted);
  EXPECT_EQ(ev.kind, Kind::kHandover);
  EXPECT_EQ(ev.previous_holder, "a");
  // A released lease is not reported again as an expiry.
  std::vector<LeaseEvent> expired = lease.Expire(t0 + 10s);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].node_name, "b");
}

TEST(WitnessLeaseTest, ReleaseOfAnUnknownClusterIsHarmless) {
  WitnessLease lease(NoHold(), kBoot, t0);
  LeaseEvent ev;
  LeaseReply r = lease.Decide(Release("a", "nobody"), t0, &ev);
  EXPECT_FALSE(r.granted);
  EXPECT_EQ(r.holder, "");
  EXPECT_EQ(ev.kind, Kind::kNone);
  EXPECT_EQ(lease.cluster_count(), 0u);
}

TEST(WitnessLeaseTest, ClustersAreIndependent) {
  WitnessLease lease(NoHold(), kBoot, t0);
  EXPECT_TRUE(lease.Decide(Req("a", 1000, "pair1"), t0).granted);
  EXPECT_TRUE(lease.Decide(Req("b", 1000, "pair2"), t0).granted);
  // The same node names in another pair do not collide either.
  EXPECT_TRUE(lease.Decide(Req("a", 1000, "pair3"), t0).granted);
  EXPECT_FALSE(lease.Decide(Req("b", 1000, "pair1"), t0).granted);
  EXPECT_FALSE(lease.Decide(Req("a", 1000, "pair2"), t0).granted);
  EXPECT_TRUE(lease.Decide(Release("b", "pair2"), t0 + 1ms).holder.empty());
  EXPECT_EQ(lease.Decide(Req("b", 1000, "pair1"), t0 + 1ms).holder, "a");
  EXPECT_EQ(lease.cluster_count(), 3u);
}

TEST(WitnessLeaseTest, BadRequestsAreRefusedWithAnError) {
  WitnessLease::Options o = NoHold();
  o.max_lease = 10s;
  WitnessLease lease(o, kBoot, t0);
  struct Case {
    LeaseRequest request;
    bool ok;
  } cases[] = {
      {Req("a", 0), false},
      {Req("a", 49), false},
      {Req("a", 50), true},
      {Req("a", 10000), true},
      {Req("a", 10001), false},
      {Req("a", 60000), false},
      {Req("", 1000), false},
      {Req("a b", 1000), false},
      {Req("a\n", 1000), false},
      {Req(std::string("a\0b", 3), 1000), false},
      {Req(std::string(64, 'n'), 1000), true},
      {Req(std::string(65, 'n'), 1000), false},
      {Req("a", 1000, ""), false},
      {Req("a", 1000, "pair\"1"), false},
      {Req("node-2.site_b:x@y", 1000, "0123abcd"), true},
  };
  int i = 0;
  for (const Case& c : cases) {
    // Each in its own cluster, so that earlier grants do not interfere.
    LeaseRequest r = c.request;
    if (!r.cluster_id.empty() && r.cluster_id != "pair\"1") r.cluster_id += std::to_string(i++);
    LeaseEvent ev;
    LeaseReply reply = lease.Decide(r, t0, &ev);
    EXPECT_EQ(reply.granted, c.ok) << "node=" << r.node_name << " lease_ms=" << r.lease_ms;
    EXPECT_EQ(reply.error.empty(), c.ok) << reply.error;
    EXPECT_EQ(ev.kind, c.ok ? Kind::kGrant : Kind::kBadRequest);
    EXPECT_EQ(reply.witness_boot_id, kBoot);
  }
  // A release needs no lease length.
  EXPECT_TRUE(lease.Decide(Release("a"), t0).error.empty());
}

TEST(WitnessLeaseTest, ExpiriesAreReportedOnce) {
  WitnessLease lease(NoHold(), kBoot, t0);
  ASSERT_TRUE(lease.Decide(Req("a", 100, "pair1"), t0).granted);
  ASSERT_TRUE(lease.Decide(Req("b", 300, "pair2"), t0).granted);
  EXPECT_TRUE(lease.Expire(t0 + 99ms).empty());
  std::vector<LeaseEvent> expired = lease.Expire(t0 + 100ms);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].kind, Kind::kExpire);
  EXPECT_EQ(expired[0].cluster_id, "pair1");
  EXPECT_EQ(expired[0].node_name, "a");
  EXPECT_EQ(expired[0].epoch, 7u);
  EXPECT_TRUE(lease.Expire(t0 + 200ms).empty());
  // A renewal pushes the expiry out.
  ASSERT_TRUE(lease.Decide(Req("b", 300, "pair2"), t0 + 250ms).granted);
  EXPECT_TRUE(lease.Expire(t0 + 400ms).empty());
  EXPECT_EQ(lease.Expire(t0 + 550ms).size(), 1u);
}

TEST(WitnessLeaseTest, StartupHoldGrantsOnlyTheHolderOfAnEarlierLease) {
  WitnessLease::Options o;
  o.startup_hold = 5s;
  WitnessLease lease(o, kBoot, t0);

  // Nobody presents an earlier lease: refused, nobody holds it, come back when the hold ends.
  LeaseEvent ev;
  LeaseReply r = lease.Decide(Req("b"), t0 + 1s, &ev);
  EXPECT_FALSE(r.granted);
  EXPECT_EQ(r.holder, "");
  EXPECT_EQ(r.remaining_ms, 4000u);
  EXPECT_TRUE(r.error.empty());
  EXPECT_EQ(ev.kind, Kind::kRefuse);

  // Our own boot id is not a lease from before the restart.
  LeaseRequest own = Req("b");
  own.held_boot_id = kBoot;
  EXPECT_FALSE(lease.Decide(own, t0 + 1s).granted);

  // The active presents the lease it got from the previous witness process.
  LeaseRequest active = Req("a");
  active.held_boot_id = 0x01d;
  EXPECT_TRUE(lease.Decide(active, t0 + 1s).granted);
  r = lease.Decide(Req("b"), t0 + 1500ms);
  EXPECT_FALSE(r.granted);
  EXPECT_EQ(r.holder, "a");
  // Its plain renewals are fine: it holds the lease of this process now.
  EXPECT_TRUE(lease.Decide(Req("a"), t0 + 1900ms).granted);
  // Once granted here, the cluster is known: after a release the other node may have it.
  EXPECT_EQ(lease.Decide(Release("a"), t0 + 2s).holder, "");
  EXPECT_TRUE(lease.Decide(Req("b"), t0 + 2s).granted);

  // Another cluster, nobody presenting: refused until the hold ends, then normal rules.
  EXPECT_FALSE(lease.Decide(Req("c", 1000, "pair2"), t0 + 4999ms).granted);
  EXPECT_TRUE(lease.Decide(Req("c", 1000, "pair2"), t0 + 5s).granted);
  // After the hold, an old lease is neither needed nor privileged.
  LeaseRequest late = Req("d", 1000, "pair2");
  late.held_boot_id = 0x01d;
  EXPECT_FALSE(lease.Decide(late, t0 + 5500ms).granted);
}

TEST(WitnessLeaseTest, ClusterTableIsBounded) {
  WitnessLease::Options o = NoHold();
  o.max_clusters = 2;
  WitnessLease lease(o, kBoot, t0);
  EXPECT_TRUE(lease.Decide(Req("a", 100, "p1"), t0).granted);
  EXPECT_TRUE(lease.Decide(Req("a", 1000, "p2"), t0).granted);
  LeaseReply r = lease.Decide(Req("a", 1000, "p3"), t0 + 50ms);
  EXPECT_FALSE(r.granted);
  EXPECT_FALSE(r.error.empty());
  // Once p1's lease ended, its entry makes room.
  EXPECT_TRUE(lease.Decide(Req("a", 1000, "p3"), t0 + 100ms).granted);
  EXPECT_EQ(lease.cluster_count(), 2u);
}

TEST(WitnessLeaseTest, OptionsAreValidated) {
  WitnessLease::Options o;
  EXPECT_TRUE(WitnessLease::ValidateOptions(o).ok());
  o.max_lease = 49ms;
  EXPECT_FALSE(WitnessLease::ValidateOptions(o).ok());
  o.max_lease = 61s;
  EXPECT_FALSE(WitnessLease::ValidateOptions(o).ok());
  o = {};
  o.startup_hold = -1ms;
  EXPECT_FALSE(WitnessLease::ValidateOptions(o).ok());
  o = {};
  o.max_clusters = 0;
  EXPECT_FALSE(WitnessLease::ValidateOptions(o).ok());
}

// --- Wire codec ---

TEST(WitnessCodecTest, RequestRoundTrips) {
  LeaseRequest in = Req("node-a", 1500, "c0ffee");
  in.epoch = 1ull << 40;
  in.release = true;
  in.held_boot_id = 0xfeedface12345678;
  std::string bytes = EncodeLeaseRequest(in);
  EXPECT_EQ(bytes.size() % 8, 0u);
  Result<LeaseRequest> out = DecodeLeaseRequest(bytes);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->cluster_id, "c0ffee");
  EXPECT_EQ(out->node_name, "node-a");
  EXPECT_EQ(out->epoch, 1ull << 40);
  EXPECT_EQ(out->lease_ms, 1500u);
  EXPECT_TRUE(out->release);
  EXPECT_EQ(out->held_boot_id, 0xfeedface12345678u);
}

TEST(WitnessCodecTest, ReplyRoundTrips) {
  LeaseReply in;
  in.granted = true;
  in.holder = "node-b";
  in.remaining_ms = 123;
  in.witness_boot_id = 42;
  in.error = "";
  Result<LeaseReply> out = DecodeLeaseReply(EncodeLeaseReply(in));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_TRUE(out->granted);
  EXPECT_EQ(out->holder, "node-b");
  EXPECT_EQ(out->remaining_ms, 123u);
  EXPECT_EQ(out->witness_boot_id, 42u);
  in.granted = false;
  in.error = "lease_ms 0 is outside [50, 60000]";
  out = DecodeLeaseReply(EncodeLeaseReply(in));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->error, in.error);
}

// Cap'n Proto words, little-endian as on the wire.
std::string Words(std::initializer_list<uint64_t> words) {
  std::string bytes(words.size() * 8, '\0');
  size_t i = 0;
  for (uint64_t w : words) {
    for (int b = 0; b < 8; ++b) bytes[i++] = static_cast<char>((w >> (8 * b)) & 0xff);
  }
  return bytes;
}
constexpr uint64_t SegmentTable(uint64_t words) { return words << 32; }  // one segment
constexpr uint64_t StructPtr(uint64_t offset, uint64_t data, uint64_t ptrs) {
  return (offset << 2) | (data << 32) | (ptrs << 48);
}
constexpr uint64_t ByteListPtr(uint64_t offset, uint64_t count) {
  return 1 | (offset << 2) | (2ull << 32) | (count << 35);
}

// clusterId and nodeName both point at one 80-byte text: each word of the message is read
// more than once, which only the traversal limit catches (amplification).
std::string Overlapping() {
  std::string m =
      Words({SegmentTable(14), StructPtr(0, 1, 2), 1, ByteListPtr(1, 80), ByteListPtr(0, 80)});
  return m + std::string(79, 'a') + std::string(1, '\0');
}

TEST(WitnessCodecTest, HostileInputIsCorruptionNotACrash) {
  std::string valid = EncodeLeaseRequest(Req("a"));
  std::string random(64, '\0');
  uint32_t x = 12345;
  for (char& c : random) c = static_cast<char>((x = x * 1103515245 + 12345) >> 24);
  struct Case {
    const char* name;
    std::string bytes;
  } cases[] = {
      {"empty", ""},
      {"not whole words", "abc"},
      {"text", "hello, witness!!"},
      {"all ones", std::string(16, '\xff')},
      {"random", random},
      {"truncated", valid.substr(0, valid.size() - 8)},
      {"trailing bytes", valid + std::string(8, '\0')},
      {"too large", std::string(kMaxWitnessMessageBytes + 8, '\0')},
      {"segment count huge", Words({0xffffffffull, 0})},
      {"segment larger than message", Words({SegmentTable(100), 0})},
      {"null root (no version)", Words({SegmentTable(1), 0})},
      {"root is a list", Words({SegmentTable(2), ByteListPtr(0, 8), 0x41})},
      {"root out of bounds", Words({SegmentTable(1), StructPtr(100, 1, 0)})},
      {"struct where text expected",
       Words({SegmentTable(4), StructPtr(0, 1, 1), 1, StructPtr(0, 1, 0), 0x41})},
      {"text without NUL",
       Words({SegmentTable(4), StructPtr(0, 1, 1), 1, ByteListPtr(0, 8), 0x6867666564636261})},
      {"overlapping texts", Overlapping()},
  };
  for (const Case& c : cases) {
    Result<LeaseRequest> r = DecodeLeaseRequest(c.bytes);
    EXPECT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.status().code(), Status::Code::kCorruption)
        << c.name << ": " << r.status().ToString();
    Result<LeaseReply> reply = DecodeLeaseReply(c.bytes);
    EXPECT_FALSE(reply.ok()) << c.name;
  }
}

TEST(WitnessCodecTest, ValidShapeWithBadValuesDecodesAndIsRefusedByTheLease) {
  // A reply decoded as a request: well-formed, the right pointer kinds, nonsense values.
  LeaseReply reply;
  reply.holder = "x y";
  reply.error = "zzz";
  reply.remaining_ms = 5;
  Result<LeaseRequest> r = DecodeLeaseRequest(EncodeLeaseReply(reply));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  WitnessLease lease(NoHold(), kBoot, t0);
  EXPECT_FALSE(lease.Decide(*r, t0).error.empty());
}

}  // namespace
}  // namespace pbx::cluster
