#include "sip/registrar/ban_list.h"

#include <gtest/gtest.h>

namespace pbx::sip {
namespace {

IpAddress Ip(const char* text) { return *IpAddress::Parse(text); }

TEST(IpTest, ParseNetworksAndMatch) {
  EXPECT_EQ(Ip("::ffff:192.0.2.1"), Ip("192.0.2.1"));
  EXPECT_FALSE(IpAddress::Parse("300.1.1.1"));
  EXPECT_TRUE(Ip("10.1.2.3").IsPrivate());
  EXPECT_TRUE(Ip("172.31.0.1").IsPrivate());
  EXPECT_FALSE(Ip("172.32.0.1").IsPrivate());
  EXPECT_TRUE(Ip("fd00::1").IsPrivate());
  EXPECT_FALSE(Ip("127.0.0.1").IsPrivate());
  EXPECT_TRUE(Ip("127.0.0.1").IsLoopback());
  EXPECT_TRUE(Ip("::1").IsLoopback());
  auto net = IpNetwork::Parse("192.0.2.0/25");
  ASSERT_TRUE(net);
  EXPECT_TRUE(net->Contains(Ip("192.0.2.127")));
  EXPECT_FALSE(net->Contains(Ip("192.0.2.128")));
  EXPECT_FALSE(net->Contains(Ip("2001:db8::1")));
  EXPECT_TRUE(IpNetwork::Parse("2001:db8::/32")->Contains(Ip("2001:db8:ffff::1")));
  EXPECT_FALSE(IpNetwork::Parse("10.0.0.0/33"));
  EXPECT_FALSE(IpNetwork::Parse("10.0.0.0/"));
  Result<std::vector<IpNetwork>> bad = ParseNetworks({"10.0.0.1", "nonsense"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("nonsense"), std::string::npos);
}

TEST(BanListTest, FiveFailuresWithinTheWindowBan) {
  BanList bans;
  bans.SetPolicy({});  // 5 in 60 s, 1 h
  IpAddress ip = Ip("203.0.113.9");
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(bans.RecordFailure(ip, "203.0.113.9", 100 + i, "x"));
  EXPECT_TRUE(bans.Admit(ip, "203.0.113.9", 104));
  std::optional<store::Ban> ban = bans.RecordFailure(ip, "203.0.113.9", 104, "wrong password");
  ASSERT_TRUE(ban);
  EXPECT_EQ(ban->until_unix, 104 + 3600);
  EXPECT_EQ(ban->failures, 5u);
  EXPECT_FALSE(bans.Admit(ip, "203.0.113.9", 105));
  EXPECT_TRUE(bans.Admit(Ip("203.0.113.10"), "203.0.113.10", 105));
  // The ban lifts itself when its time is over.
  EXPECT_TRUE(bans.Expired(3703).empty());
  EXPECT_EQ(bans.Expired(3704), std::vector<std::string>{"203.0.113.9"});
  EXPECT_TRUE(bans.Admit(ip, "203.0.113.9", 3704));
}

TEST(BanListTest, FailuresOutsideTheWindowDoNotAddUp) {
  BanList bans;
  bans.SetPolicy({});
  IpAddress ip = Ip("198.51.100.1");
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(bans.RecordFailure(ip, "198.51.100.1", i * 20, "x")) << i;  // 3 per minute
  }
  bans.Prune(10000);
  EXPECT_FALSE(bans.RecordFailure(ip, "198.51.100.1", 10000, "x"));
}

TEST(BanListTest, TrustedSourcesAreNeverBannedAndDenyAlwaysDrops) {
  BanList::Policy p;
  p.allow = *ParseNetworks({"198.51.100.0/24"});
  p.deny = *ParseNetworks({"192.0.2.66"});
  BanList bans;
  bans.SetPolicy(p);
  for (int i = 0; i < 10; ++i) {
    EXPECT_FALSE(bans.RecordFailure(Ip("198.51.100.7"), "198.51.100.7", 1, "x"));
    EXPECT_FALSE(bans.RecordFailure(Ip("10.0.0.7"), "10.0.0.7", 1, "x"));  // RFC 1918
  }
  EXPECT_FALSE(bans.Admit(Ip("192.0.2.66"), "192.0.2.66", 1));
  // A replicated ban of an allowed address does not drop it either.
  bans.Apply({"198.51.100.7", "manual", 1, 1000, 5});
  EXPECT_TRUE(bans.Admit(Ip("198.51.100.7"), "198.51.100.7", 2));
  bans.Apply({"203.0.113.1", "replicated", 1, 1000, 5});
  EXPECT_FALSE(bans.Admit(Ip("203.0.113.1"), "203.0.113.1", 2));
  bans.Lift("203.0.113.1");
  EXPECT_TRUE(bans.Admit(Ip("203.0.113.1"), "203.0.113.1", 2));
  p.enabled = false;
  p.trust_private = false;
  bans.SetPolicy(p);
  EXPECT_FALSE(bans.RecordFailure(Ip("203.0.113.5"), "203.0.113.5", 1, "x"));
}

TEST(ExpiryTest, DecideExpiry) {
  using K = ExpiryDecision::Kind;
  EXPECT_EQ(DecideExpiry(0u, 120, 60, 3600).kind, K::kRemove);
  ExpiryDecision brief = DecideExpiry(30u, 120, 60, 3600);
  EXPECT_EQ(brief.kind, K::kTooBrief);
  EXPECT_EQ(brief.seconds, 60u);
  EXPECT_EQ(DecideExpiry(std::nullopt, 120, 60, 3600).seconds, 120u);
  EXPECT_EQ(DecideExpiry(std::nullopt, 30, 60, 3600).seconds, 60u);  // our own default is lifted
  EXPECT_EQ(DecideExpiry(86400u, 120, 60, 3600).seconds, 3600u);
  EXPECT_EQ(DecideExpiry(600u, 120, 60, 3600).seconds, 600u);
}

TEST(ExpiryTest, RandomizedDownByAtMostTenPercent) {
  uint32_t lo = 3600, hi = 0;
  for (uint64_t r = 0; r < 1000; ++r) {
    uint32_t g = RandomizeExpiry(3600, r * 7919);
    lo = std::min(lo, g);
    hi = std::max(hi, g);
  }
  EXPECT_EQ(hi, 3600u);
  EXPECT_EQ(lo, 3240u);
  EXPECT_EQ(RandomizeExpiry(5, 12345), 5u);
  EXPECT_GE(RandomizeExpiry(1, 0), 1u);
}

}  // namespace
}  // namespace pbx::sip
