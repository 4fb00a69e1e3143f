#include "media/rtp/relay.h"

#include <poll.h>
#include <unistd.h>

#include <string>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "tests/support/process.h"
#include "tests/unit/media/phone.h"

namespace pbx::media {
namespace {

// Each test gets its own slice of ports below the kernel's ephemeral range (32768+), so
// parallel test processes and the phones' port-0 sockets never collide with a relay.
RelayConfig Config(uint16_t first, uint16_t count = 100) {
  RelayConfig c;
  c.bind_address = "127.0.0.1";
  c.port_min = first;
  c.port_max = static_cast<uint16_t>(first + count - 1);
  c.workers = 2;
  return c;
}

using test::Phone;

std::unique_ptr<RtpRelay> MakeRelay(const RelayConfig& c) {
  auto r = RtpRelay::Create(c);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

// An RTP packet: version 2, payload type `pt`, the given sequence number, and a payload.
std::string Rtp(uint8_t pt, uint16_t seq, const std::string& payload) {
  std::string p(12, '\0');
  p[0] = static_cast<char>(0x80);
  p[1] = static_cast<char>(pt);
  p[2] = static_cast<char>(seq >> 8);
  p[3] = static_cast<char>(seq & 0xff);
  return p + payload;
}

TEST(RelayTest, RelaysBothWaysUnchanged) {
  auto relay = MakeRelay(Config(24000));
  auto ports = relay->Allocate();
  ASSERT_TRUE(ports.ok()) << ports.status().ToString();
  EXPECT_EQ(ports->a_port % 2, 0);
  EXPECT_EQ(ports->b_port % 2, 0);
  Phone a, b;
  ASSERT_TRUE(relay->SetPeer(ports->id, Side::kA, "127.0.0.1", a.port()).ok());
  ASSERT_TRUE(relay->SetPeer(ports->id, Side::kB, "127.0.0.1", b.port()).ok());

  std::string voice = Rtp(0, 1, std::string(160, '\x55'));
  a.SendTo(ports->a_port, voice);
  uint16_t from = 0;
  EXPECT_EQ(b.Receive(&from), voice);
  EXPECT_EQ(from, ports->b_port);  // symmetric: B hears the PBX port it sends to

  // An RFC 4733 telephone-event (digit 5, end bit, volume 10, duration 800) passes as is.
  std::string dtmf = Rtp(101, 7, std::string("\x05\x8a\x03\x20", 4));
  b.SendTo(ports->b_port, dtmf);
  EXPECT_EQ(a.Receive(&from), dtmf);
  EXPECT_EQ(from, ports->a_port);

  ASSERT_TRUE(test::WaitFor([&] { return relay->Totals().packets == 2; }));
  auto stats = relay->Stats(ports->id);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->a.packets, 1u);
  EXPECT_EQ(stats->a.bytes, voice.size());
  EXPECT_EQ(stats->b.packets, 1u);
  EXPECT_EQ(stats->b.bytes, dtmf.size());
  EXPECT_TRUE(stats->a.last_packet.has_value());
  EXPECT_EQ(stats->a.dropped, 0u);
  RelayTotals t = relay->Totals();
  EXPECT_EQ(t.packets, 2u);
  EXPECT_EQ(t.relays, 1u);
}

TEST(RelayTest, RelaysRtcpOnThePortAbove) {
  auto relay = MakeRelay(Config(24100));
  auto ports = relay->Allocate();
  ASSERT_TRUE(ports.ok());
  Phone a_rtp, a_rtcp, b_rtp, b_rtcp;
  // B's RTCP port is not RTP+1 (an a=rtcp line said where).
  ASSERT_TRUE(relay->SetPeer(ports->id, Side::kA, "127.0.0.1", a_rtp.port(), a_rtcp.port()).ok());
  ASSERT_TRUE(relay->SetPeer(ports->id, Side::kB, "127.0.0.1", b_rtp.port(), b_rtcp.port()).ok());
  std::string sr = "\x80\xc8\x00\x06 sender report";
  a_rtcp.SendTo(ports->a_port + 1, sr);
  uint16_t from = 0;
  EXPECT_EQ(b_rtcp.Receive(&from), sr);
  EXPECT_EQ(from, ports->b_port + 1);
  b_rtcp.SendTo(ports->b_port + 1, "rr");
  EXPECT_EQ(a_rtcp.Receive(&from), "rr");
  EXPECT_EQ(from, ports->a_port + 1);
}

TEST(RelayTest, SendsToTheSdpAddressUntilLatchedThenToTheNatSource) {
  auto relay = MakeRelay(Config(24200));
  auto ports = relay->Allocate();
  ASSERT_TRUE(ports.ok());
  Phone sdp_a, nat_a, b;  // A's SDP names sdp_a, but A's packets come from nat_a
  ASSERT_TRUE(relay->SetPeer(ports->id, Side::kA, "127.0.0.1", sdp_a.port()).ok());
  ASSERT_TRUE(relay->SetPeer(ports->id, Side::kB, "127.0.0.1", b.port()).ok());

  b.SendTo(ports->b_port, "before latch");
  EXPECT_EQ(sdp_a.Receive(), "before latch");

  nat_a.SendTo(ports->a_port, "from nat");
  EXPECT_EQ(b.Receive(), "from nat");
  b.SendTo(ports->b_port, "after latch");
  EXPECT_EQ(nat_a.Receive(), "after latch");

  // The SDP address is now someone else: dropped. Packets from one socket keep their
  // order, so had it been relayed, B would read it before the next one.
  sdp_a.SendTo(ports->a_port, "stale");
  nat_a.SendTo(ports->a_port, "still nat");
  EXPECT_EQ(b.Receive(), "still nat");
  // The counters follow the send by a moment.
  EXPECT_TRUE(test::WaitFor([&] {
    auto stats = relay->Stats(ports->id);
    return stats->a.dropped == 1 && stats->a.packets == 2;
  }));

  // A re-INVITE to the same address keeps the latch; a new address starts over.
  ASSERT_TRUE(relay->SetPeer(ports->id, Side::kA, "127.0.0.1", sdp_a.port()).ok());
  b.SendTo(ports->b_port, "same sdp");
  EXPECT_EQ(nat_a.Receive(), "same sdp");
  Phone moved_a;
  ASSERT_TRUE(relay->SetPeer(ports->id, Side::kA, "127.0.0.1", moved_a.port()).ok());
  b.SendTo(ports->b_port, "moved");
  EXPECT_EQ(moved_a.Receive(), "moved");
}

TEST(RelayTest, DropsAndCountsIntruders) {
  auto relay = MakeRelay(Config(24300));
  auto ports = relay->Allocate();
  ASSERT_TRUE(ports.ok());
  Phone a, b, intruder;
  ASSERT_TRUE(relay->SetPeer(ports->id, Side::kA, "127.0.0.1", a.port()).ok());
  ASSERT_TRUE(relay->SetPeer(ports->id, Side::kB, "127.0.0.1", b.port()).ok());
  a.SendTo(ports->a_port, "hello");
  EXPECT_EQ(b.Receive(), "hello");
  b.SendTo(ports->b_port, "hi");
  EXPECT_EQ(a.Receive(), "hi");

  intruder.SendTo(ports->a_port, "inject to b");
  intruder.SendTo(ports->b_port, "inject to a");
  a.SendTo(ports->a_port, "a2");
  b.SendTo(ports->b_port, "b2");
  EXPECT_EQ(b.Receive(), "a2");
  EXPECT_EQ(a.Receive(), "b2");
  ASSERT_TRUE(test::WaitFor([&] { return relay->Totals().dropped == 2; }));
  auto stats = relay->Stats(ports->id);
  EXPECT_EQ(stats->a.dropped, 1u);
  EXPECT_EQ(stats->b.dropped, 1u);
  EXPECT_EQ(intruder.Receive(nullptr, 0), "");
}

TEST(RelayTest, DropsWhileTheOtherSideIsUnknown) {
  auto relay = MakeRelay(Config(24400, 50));
  auto ports = relay->Allocate();
  ASSERT_TRUE(ports.ok());
  Phone a;
  a.SendTo(ports->a_port, "nowhere to go");
  ASSERT_TRUE(test::WaitFor([&] { return relay->Stats(ports->id)->a.dropped == 1; }));
}

TEST(RelayTest, AnUnspecifiedAddressGetsNothingUntilItSends) {
  auto relay = MakeRelay(Config(24450, 50));
  auto ports = relay->Allocate();
  ASSERT_TRUE(ports.ok());
  Phone a, b;
  // A holds the RFC 2543 way (c=0.0.0.0): B's packets must not go to 0.0.0.0 (= this host).
  ASSERT_TRUE(relay->SetPeer(ports->id, Side::kA, "0.0.0.0", a.port()).ok());
  ASSERT_TRUE(relay->SetPeer(ports->id, Side::kB, "127.0.0.1", b.port()).ok());
  b.SendTo(ports->b_port, "on hold");
  ASSERT_TRUE(test::WaitFor([&] { return relay->Stats(ports->id)->b.dropped == 1; }));
  a.SendTo(ports->a_port, "back");  // A speaks again and is latched
  EXPECT_EQ(b.Receive(), "back");
  b.SendTo(ports->b_port, "welcome");
  EXPECT_EQ(a.Receive(), "welcome");
  // The same hold SDP again (a refreshing re-INVITE) keeps what A latched.
  ASSERT_TRUE(relay->SetPeer(ports->id, Side::kA, "0.0.0.0", a.port()).ok());
  b.SendTo(ports->b_port, "still here");
  EXPECT_EQ(a.Receive(), "still here");
  ASSERT_TRUE(test::WaitFor([&] { return relay->Totals().last_packet.has_value(); }));
}

TEST(RelayTest, ReleaseFreesThePorts) {
  auto relay = MakeRelay(Config(24500));
  auto ports = relay->Allocate();
  ASSERT_TRUE(ports.ok());
  ASSERT_TRUE(relay->Release(ports->id).ok());
  for (uint16_t p : {ports->a_port, ports->b_port}) {
    Phone rtp(p), rtcp(static_cast<uint16_t>(p + 1));
    EXPECT_TRUE(rtp.bound()) << p;
    EXPECT_TRUE(rtcp.bound()) << p + 1;
  }
  EXPECT_TRUE(relay->Release(ports->id).IsNotFound());
  EXPECT_TRUE(relay->Stats(ports->id).status().IsNotFound());
  EXPECT_TRUE(relay->SetPeer(ports->id, Side::kA, "127.0.0.1", 4000).IsNotFound());
  EXPECT_EQ(relay->Totals().relays, 0u);
}

TEST(RelayTest, RecreatesARelayOnExplicitPorts) {
  auto relay = MakeRelay(Config(24600));
  auto first = relay->Allocate();
  ASSERT_TRUE(first.ok());
  // The old active's relay dies with it; the new one takes the same ports.
  ASSERT_TRUE(relay->Release(first->id).ok());
  auto again = relay->AllocateAt(first->a_port, first->b_port);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->a_port, first->a_port);
  EXPECT_EQ(again->b_port, first->b_port);
  Phone a, b;
  ASSERT_TRUE(relay->SetPeer(again->id, Side::kA, "127.0.0.1", a.port()).ok());
  ASSERT_TRUE(relay->SetPeer(again->id, Side::kB, "127.0.0.1", b.port()).ok());
  a.SendTo(again->a_port, "resumed");
  EXPECT_EQ(b.Receive(), "resumed");

  auto busy = relay->AllocateAt(first->a_port, 24698);
  EXPECT_EQ(busy.status().code(), Status::Code::kUnavailable) << busy.status().ToString();
  Phone squatter(24696);
  ASSERT_TRUE(squatter.bound());
  busy = relay->AllocateAt(24694, 24696);
  EXPECT_EQ(busy.status().code(), Status::Code::kUnavailable) << busy.status().ToString();
  // 24694 was freed again when 24696 failed.
  EXPECT_TRUE(relay->AllocateAt(24694, 24692).ok());
  EXPECT_EQ(relay->AllocateAt(24601, 24602).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(relay->AllocateAt(24800, 24602).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(relay->AllocateAt(24610, 24610).status().code(), Status::Code::kInvalidArgument);
}

TEST(RelayTest, ExhaustedRangeSaysSoAndRecovers) {
  auto relay = MakeRelay(Config(24700, 10));  // 24700-24709: five pairs, two relays
  Phone squatter(24704);                      // someone else holds one pair: skipped
  ASSERT_TRUE(squatter.bound());
  auto r1 = relay->Allocate();
  auto r2 = relay->Allocate();
  ASSERT_TRUE(r1.ok() && r2.ok());
  auto r3 = relay->Allocate();
  ASSERT_FALSE(r3.ok());
  EXPECT_EQ(r3.status().code(), Status::Code::kUnavailable);
  EXPECT_NE(r3.status().message().find("24700-24709 exhausted"), std::string::npos)
      << r3.status().ToString();
  ASSERT_TRUE(relay->Release(r1->id).ok());
  EXPECT_TRUE(relay->Allocate().ok());
}

TEST(RelayTest, RefusesBadConfigAndPeers) {
  RelayConfig c = Config(24800);
  c.bind_address = "pbx.local";
  EXPECT_FALSE(RtpRelay::Create(c).ok());
  c = Config(24800);
  c.port_max = c.port_min;
  EXPECT_FALSE(RtpRelay::Create(c).ok());
  c = Config(24800);
  c.workers = -1;
  EXPECT_FALSE(RtpRelay::Create(c).ok());

  auto relay = MakeRelay(Config(24800));
  auto ports = relay->Allocate();
  ASSERT_TRUE(ports.ok());
  EXPECT_EQ(relay->SetPeer(ports->id, Side::kA, "::1", 4000).code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(relay->SetPeer(ports->id, Side::kA, "phone.local", 4000).code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(relay->SetPeer(ports->id, Side::kA, "127.0.0.1", 0).code(),
            Status::Code::kInvalidArgument);
}

TEST(RelayTest, BindsAnAddressThisHostDoesNotHaveYet) {
  // The standby binds the VIP before it owns it (IP_FREEBIND).
  RelayConfig c = Config(24900);
  c.bind_address = "192.0.2.77";  // TEST-NET-1: on no interface
  auto relay = MakeRelay(c);
  EXPECT_TRUE(relay->Allocate().ok());
}

}  // namespace
}  // namespace pbx::media
