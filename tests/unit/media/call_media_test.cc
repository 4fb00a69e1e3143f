#include "media/rtp/call_media.h"

#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/unit/media/phone.h"

namespace pbx::media {
namespace {

// Each test has its own port slice below the ephemeral range (relay_test uses 24000-24999).
std::unique_ptr<RtpRelay> MakeRelay(uint16_t first) {
  RelayConfig c;
  c.bind_address = "127.0.0.1";
  c.port_min = first;
  c.port_max = static_cast<uint16_t>(first + 99);
  c.workers = 1;
  auto r = RtpRelay::Create(c);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

using test::Phone;

// A's INVITE: PCMU, PCMA, G.729 (not relayable), DTMF as 101, and a video stream.
std::string OfferFromA(uint16_t port) {
  return fmt::format(
      "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
      "m=audio {} RTP/AVP 0 8 18 101\r\na=rtpmap:18 G729/8000\r\n"
      "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
      "m=video 40000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n",
      port);
}

// B's 200 OK: PCMA and DTMF (numbered 96 by B), video refused.
std::string AnswerFromB(uint16_t port) {
  return fmt::format(
      "v=0\r\no=bob 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
      "m=audio {} RTP/AVP 8 96\r\na=rtpmap:96 telephone-event/8000\r\n"
      "m=video 0 RTP/AVP 96\r\n",
      port);
}

TEST(CallMediaTest, OfferAndAnswerAnchorTheCallAndMediaFlows) {
  auto relay = MakeRelay(25000);
  auto call = CallMedia::Create(*relay, "127.0.0.1");
  ASSERT_TRUE(call.ok()) << call.status().ToString();
  Phone a, b;

  auto to_b = call->Offer(Side::kA, OfferFromA(a.port()));
  ASSERT_TRUE(to_b.ok()) << to_b.status().ToString();
  auto sent = SessionDescription::Parse(*to_b);
  ASSERT_TRUE(sent.ok());
  EXPECT_EQ(sent->ConnectionOf(0)->address, "127.0.0.1");
  EXPECT_EQ(sent->media[0].port, call->ports().b_port);  // B talks to the PBX's B port
  EXPECT_EQ(sent->media[0].formats, (std::vector<std::string>{"0", "8", "101"}));
  EXPECT_EQ(sent->media[1].port, 0);  // video is not relayed: refused

  auto to_a = call->Answer(Side::kB, AnswerFromB(b.port()));
  ASSERT_TRUE(to_a.ok()) << to_a.status().ToString();
  auto answered = SessionDescription::Parse(*to_a);
  ASSERT_TRUE(answered.ok());
  EXPECT_EQ(answered->media[0].port, call->ports().a_port);
  EXPECT_EQ(answered->media[0].formats, (std::vector<std::string>{"8", "96"}));

  a.SendTo(call->ports().a_port, "voice from a");
  EXPECT_EQ(b.Receive(), "voice from a");
  b.SendTo(call->ports().b_port, "voice from b");
  EXPECT_EQ(a.Receive(), "voice from b");
  auto stats = call->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->a.packets, 1u);
}

TEST(CallMediaTest, RefusesBadInputAndChangesNothing) {
  auto relay = MakeRelay(25100);
  EXPECT_FALSE(CallMedia::Create(*relay, "pbx.example.com").ok());
  EXPECT_EQ(relay->Totals().relays, 0u);
  auto call = CallMedia::Create(*relay, "127.0.0.1");
  ASSERT_TRUE(call.ok());
  Phone a, b;
  // An answer before any offer, garbage, and an offer with nothing relayable.
  EXPECT_FALSE(call->Answer(Side::kB, AnswerFromB(b.port())).ok());
  EXPECT_FALSE(call->Offer(Side::kA, "not sdp").ok());
  std::string g729_only =
      "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
      "m=audio 4000 RTP/AVP 18\r\n";
  auto refused = call->Offer(Side::kA, g729_only);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().ToString().find("no relayable audio codec"), std::string::npos);
  std::string hostname = OfferFromA(a.port());
  hostname.replace(hostname.find("c=IN IP4 127.0.0.1"), 18, "c=IN IP4 a.example");
  EXPECT_FALSE(call->Offer(Side::kA, hostname).ok());
  // None of that left an offer pending, and the offerer cannot answer itself.
  EXPECT_FALSE(call->Answer(Side::kB, AnswerFromB(b.port())).ok());
  ASSERT_TRUE(call->Offer(Side::kA, OfferFromA(a.port())).ok());
  EXPECT_FALSE(call->Answer(Side::kA, AnswerFromB(b.port())).ok());
  // An answer with no codec in common leaves the offer pending.
  std::string g722 = AnswerFromB(b.port());
  g722.replace(g722.find("RTP/AVP 8 96"), 12, "RTP/AVP 9");
  EXPECT_FALSE(call->Answer(Side::kB, g722).ok());
  EXPECT_TRUE(call->Answer(Side::kB, AnswerFromB(b.port())).ok());
}

TEST(CallMediaTest, AfterAFailoverTheSameSdpComesOutOnTheSamePorts) {
  auto relay = MakeRelay(25200);
  Phone a, b;
  std::string to_b, to_a;
  RelayPorts ports;
  {
    auto call = CallMedia::Create(*relay, "127.0.0.1");
    ASSERT_TRUE(call.ok());
    ports = call->ports();
    to_b = *call->Offer(Side::kA, OfferFromA(a.port()));
    to_a = *call->Answer(Side::kB, AnswerFromB(b.port()));
  }  // the old active's relay is gone: its ports are free
  EXPECT_EQ(relay->Totals().relays, 0u);

  auto again = CallMedia::CreateAt(*relay, "127.0.0.1", ports.a_port, ports.b_port);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again->Offer(Side::kA, OfferFromA(a.port())), to_b);
  EXPECT_EQ(*again->Answer(Side::kB, AnswerFromB(b.port())), to_a);
  a.SendTo(ports.a_port, "still talking");
  EXPECT_EQ(b.Receive(), "still talking");

  // Moving the call keeps one relay; the moved-from object releases nothing.
  CallMedia moved = std::move(*again);
  EXPECT_EQ(relay->Totals().relays, 1u);
  b.SendTo(ports.b_port, "and back");
  EXPECT_EQ(a.Receive(), "and back");
}

}  // namespace
}  // namespace pbx::media
