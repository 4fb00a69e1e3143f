#include "media/sdp/sdp.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "media/sdp/codecs.h"

namespace pbx::media {
namespace {

// What a baresip-like phone offers: unknown lines (b=, a=ptime, a=rtcp-fb, a=x-...) must
// pass through untouched.
const char kOffer[] =
    "v=0\r\n"
    "o=- 2890844526 2890844527 IN IP4 192.168.1.20\r\n"
    "s=-\r\n"
    "c=IN IP4 192.168.1.20\r\n"
    "t=0 0\r\n"
    "a=tool:baresip 3.0\r\n"
    "m=audio 40000 RTP/AVP 96 9 0 8 101\r\n"
    "b=AS:64\r\n"
    "a=rtpmap:96 opus/48000/2\r\n"
    "a=fmtp:96 stereo=1;sprop-stereo=1\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=rtcp:40001\r\n"
    "a=ptime:20\r\n"
    "a=x-custom:keep me\r\n"
    "a=sendrecv\r\n";

SessionDescription MustParse(const std::string& text) {
  auto sd = SessionDescription::Parse(text);
  EXPECT_TRUE(sd.ok()) << sd.status().ToString();
  return sd.ok() ? *sd : SessionDescription{};
}

TEST(SdpTest, RoundTripKeepsEveryLine) {
  SessionDescription sd = MustParse(kOffer);
  EXPECT_EQ(sd.ToString(), kOffer);
  ASSERT_EQ(sd.media.size(), 1u);
  const MediaDescription& m = sd.media[0];
  EXPECT_EQ(m.media, "audio");
  EXPECT_EQ(m.port, 40000);
  EXPECT_EQ(m.proto, "RTP/AVP");
  EXPECT_EQ(m.formats, (std::vector<std::string>{"96", "9", "0", "8", "101"}));
  EXPECT_EQ(m.attribute("ptime"), "20");
  EXPECT_EQ(m.attribute("x-custom"), "keep me");
  EXPECT_EQ(m.attribute("sendrecv"), "");
  EXPECT_FALSE(m.attribute("nope"));
}

TEST(SdpTest, AcceptsBareLineFeedsAndWritesCrlf) {
  std::string lf = kOffer;
  for (size_t p; (p = lf.find("\r\n")) != std::string::npos;) lf.erase(p, 1);
  SessionDescription sd = MustParse(lf);
  EXPECT_EQ(sd.ToString(), kOffer);
}

TEST(SdpTest, ReadsConnectionsFormatsDirectionAndRtcp) {
  SessionDescription sd = MustParse(kOffer);
  ASSERT_TRUE(sd.connection());
  EXPECT_EQ(sd.connection()->address, "192.168.1.20");
  EXPECT_EQ(sd.connection()->addr_type, "IP4");
  EXPECT_FALSE(sd.media[0].connection());
  EXPECT_EQ(sd.ConnectionOf(0)->address, "192.168.1.20");
  EXPECT_EQ(sd.DirectionOf(0), Direction::kSendRecv);
  EXPECT_FALSE(sd.IsHold(0));
  EXPECT_EQ(sd.media[0].rtcp_port(), 40001);

  auto f = sd.media[0].rtp_formats();
  ASSERT_EQ(f.size(), 5u);
  EXPECT_EQ(f[0].encoding, "opus");
  EXPECT_EQ(f[0].clock_rate, 48000u);
  EXPECT_EQ(f[0].channels, 2u);
  EXPECT_EQ(f[0].fmtp, "stereo=1;sprop-stereo=1");
  EXPECT_EQ(f[1].encoding, "G722");
  EXPECT_EQ(f[2].encoding, "PCMU");  // static payload type, no rtpmap
  EXPECT_EQ(f[2].clock_rate, 8000u);
  EXPECT_EQ(f[3].encoding, "PCMA");
  EXPECT_EQ(f[4].encoding, "telephone-event");
  EXPECT_EQ(f[4].fmtp, "0-15");
}

TEST(SdpTest, MediaLevelConnectionAndDirectionWin) {
  SessionDescription sd = MustParse(
      "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\n"
      "a=recvonly\r\n"
      "m=audio 5004 RTP/AVP 0\r\nc=IN IP4 10.0.0.5/127\r\na=inactive\r\n"
      "m=audio 5006 RTP/AVP 8\r\n");
  EXPECT_EQ(sd.ConnectionOf(0)->address, "10.0.0.5");
  EXPECT_EQ(sd.ConnectionOf(1)->address, "2001:db8::1");
  EXPECT_EQ(sd.DirectionOf(0), Direction::kInactive);
  EXPECT_EQ(sd.DirectionOf(1), Direction::kRecvOnly);
  EXPECT_TRUE(sd.IsHold(0));
  EXPECT_FALSE(sd.IsHold(1));
}

TEST(SdpTest, HoldForms) {
  std::string base = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 ";
  EXPECT_TRUE(
      MustParse(base + "10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n").IsHold(0));
  EXPECT_TRUE(MustParse(base + "0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n").IsHold(0));
  EXPECT_FALSE(
      MustParse(base + "10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=recvonly\r\n").IsHold(0));
}

TEST(SdpTest, SetDirectionReplacesTheAttribute) {
  SessionDescription sd = MustParse(kOffer);
  sd.media[0].SetDirection(Direction::kSendOnly);
  EXPECT_EQ(sd.DirectionOf(0), Direction::kSendOnly);
  std::string out = sd.ToString();
  EXPECT_EQ(out.find("a=sendrecv"), std::string::npos);
  EXPECT_NE(out.find("a=sendonly\r\n"), std::string::npos);
  // Still SDP the parser accepts.
  EXPECT_TRUE(SessionDescription::Parse(out).ok());
}

TEST(SdpTest, AnchorRewritesAddressesPortsAndRtcpAndDropsIce) {
  SessionDescription sd = MustParse(
      "v=0\r\no=alice 7 9 IN IP4 192.168.1.20\r\ns=call\r\nt=0 0\r\n"
      "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
      "m=audio 40000 RTP/AVP 0 101\r\nc=IN IP4 192.168.1.20\r\n"
      "a=rtpmap:101 telephone-event/8000\r\na=rtcp:40001 IN IP4 192.168.1.20\r\n"
      "a=candidate:1 1 UDP 2130706431 192.168.1.20 40000 typ host\r\na=ptime:20\r\n"
      "m=video 0 RTP/AVP 31\r\nc=IN IP4 192.168.1.20\r\n");
  std::vector<uint16_t> ports = {10002, 10004};
  ASSERT_TRUE(sd.Anchor("203.0.113.5", ports).ok());
  EXPECT_EQ(sd.ToString(),
            "v=0\r\no=alice 7 9 IN IP4 203.0.113.5\r\ns=call\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n"
            "m=audio 10002 RTP/AVP 0 101\r\nc=IN IP4 203.0.113.5\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=rtcp:10003\r\na=ptime:20\r\n"
            "m=video 0 RTP/AVP 31\r\nc=IN IP4 203.0.113.5\r\n");
}

TEST(SdpTest, AnchorKeepsAnRfc2543HoldAsSendonly) {
  SessionDescription sd = MustParse(
      "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
      "m=audio 4000 RTP/AVP 0\r\n");
  std::vector<uint16_t> ports = {10000};
  ASSERT_TRUE(sd.Anchor("2001:db8::7", ports).ok());
  EXPECT_TRUE(sd.IsHold(0));
  EXPECT_EQ(sd.DirectionOf(0), Direction::kSendOnly);
  EXPECT_EQ(sd.connection()->addr_type, "IP6");
  EXPECT_EQ(sd.connection()->address, "2001:db8::7");
}

TEST(SdpTest, AnchorRefusesBadArgumentsAndChangesNothing) {
  SessionDescription sd = MustParse(kOffer);
  std::vector<uint16_t> one = {10000}, two = {10000, 10002}, odd = {65535};
  EXPECT_FALSE(sd.Anchor("pbx.example.com", one).ok());
  EXPECT_FALSE(sd.Anchor("10.0.0.1", two).ok());
  EXPECT_FALSE(sd.Anchor("10.0.0.1", odd).ok());
  EXPECT_EQ(sd.ToString(), kOffer);
}

struct BadCase {
  const char* sdp;
  const char* expect;  // a piece of the message
};

TEST(SdpTest, BadSdpNamesTheLine) {
  const std::string head = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n";
  const std::vector<BadCase> cases = {
      {"", "empty"},
      {"o=- 1 1 IN IP4 1.2.3.4\r\n", "line 1: first line must be v=0"},
      {"v=1\r\n", "line 1"},
      {"v=0\r\ns=-\r\n", "no o= line"},
      {"v=0\r\no=- 1 IN IP4 1.2.3.4\r\n", "line 2: bad o="},
      {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n", "line 3: second v="},
      {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nbogus\r\n", "line 3: not <letter>=<value>"},
      {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n\r\ns=-\r\n", "line 3: empty line"},
      {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nS=x\r\n", "line 3"},
      {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=a\rb\r\n", "line 3: control character"},
      {"c=IN IP4\r\n", "line 4: bad c="},
      {"c=XX IP4 1.2.3.4\r\n", "line 4: bad c="},
      {"m=audio 70000 RTP/AVP 0\r\n", "line 4: bad m= port"},
      {"m=audio x RTP/AVP 0\r\n", "line 4: bad m= port"},
      {"m=audio 4000/0 RTP/AVP 0\r\n", "line 4: bad m= port count"},
      {"m=audio 4000 RTP/AVP\r\n", "line 4: m= needs"},
      {"m=audio 4000 RTP/AVP 128\r\n", "line 4: m= RTP payload type"},
      {"m=audio 4000 RTP/AVP PCMU\r\n", "line 4: m= RTP payload type"},
      {"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0\r\n", "line 5: bad a=rtpmap"},
      {"m=audio 4000 RTP/AVP 0\r\na=rtpmap:200 X/8000\r\n", "line 5: bad a=rtpmap"},
      {"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/0\r\n", "line 5: bad a=rtpmap"},
      {"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000/x\r\n", "line 5: bad a=rtpmap"},
      {"m=audio 4000 RTP/AVP 0\r\na=fmtp:x 0-15\r\n", "line 5: bad a=fmtp"},
      {"m=audio 4000 RTP/AVP 0\r\na=rtcp:0\r\n", "line 5: bad a=rtcp"},
      {"m=audio 4000 RTP/AVP 0\r\na=rtcp:4001 IN IP4\r\n", "line 5: bad a=rtcp"},
      {"m=audio 4000 RTP/AVP 0\r\no=- 1 1 IN IP4 1.2.3.4\r\n", "line 5: misplaced o="},
  };
  for (const auto& c : cases) {
    std::string text = c.sdp;
    if (text.rfind("v=", 0) != 0 && text.rfind("o=", 0) != 0 && !text.empty()) {
      text = head + text;
    }
    auto r = SessionDescription::Parse(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << "for " << text << " got " << r.status().ToString();
  }
}

TEST(SdpTest, RefusesHugeInput) {
  std::string text = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n";
  while (text.size() <= 64 * 1024) text += "a=x-padding:0123456789012345678901234567890\r\n";
  auto r = SessionDescription::Parse(text);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("larger than"), std::string::npos);
}

TEST(SdpTest, NonRtpStreamsKeepTheirFormats) {
  SessionDescription sd = MustParse(
      "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n"
      "m=image 5000 udptl t38\r\na=T38FaxVersion:0\r\n");
  EXPECT_FALSE(sd.media[0].IsRtp());
  EXPECT_EQ(sd.media[0].formats, std::vector<std::string>{"t38"});
  EXPECT_FALSE(KeepRelayable(sd.media[0]).ok());
}

}  // namespace
}  // namespace pbx::media
