#include "media/sdp/codecs.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace pbx::media {
namespace {

MediaDescription Audio(const std::string& formats, const std::string& attrs = "") {
  auto sd = SessionDescription::Parse(
      "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP " + formats + "\r\n" +
      attrs);
  EXPECT_TRUE(sd.ok()) << sd.status().ToString();
  return sd.ok() ? sd->media[0] : MediaDescription{};
}

std::vector<uint8_t> Pts(const MediaDescription& m) {
  std::vector<uint8_t> out;
  for (const auto& f : m.rtp_formats()) out.push_back(f.pt);
  return out;
}

const char kRich[] =
    "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\na=rtpmap:18 G729/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    "a=rtpmap:102 telephone-event/48000\r\na=ptime:20\r\n";

TEST(CodecsTest, RelayableCodecByNameAndRate) {
  EXPECT_EQ(RelayableCodec({0, "PCMU", 8000, 1, ""}), Codec::kPcmu);
  EXPECT_EQ(RelayableCodec({8, "pcma", 8000, 1, ""}), Codec::kPcma);
  EXPECT_EQ(RelayableCodec({9, "G722", 8000, 1, ""}), Codec::kG722);
  EXPECT_EQ(RelayableCodec({101, "Telephone-Event", 8000, 1, "0-15"}), Codec::kTelephoneEvent);
  EXPECT_FALSE(RelayableCodec({102, "telephone-event", 48000, 1, ""}));
  EXPECT_FALSE(RelayableCodec({96, "opus", 48000, 2, ""}));
  EXPECT_FALSE(RelayableCodec({97, "PCMU", 8000, 2, ""}));
}

TEST(CodecsTest, KeepRelayableFiltersInTheOfferersOrder) {
  MediaDescription m = Audio("96 9 18 8 0 101 102", kRich);
  ASSERT_TRUE(KeepRelayable(m).ok());
  EXPECT_EQ(m.formats, (std::vector<std::string>{"9", "8", "0", "101"}));
  EXPECT_EQ(Pts(m), (std::vector<uint8_t>{9, 8, 0, 101}));
  // The rtpmap/fmtp of what went are gone; other attributes stay.
  std::vector<SdpLine> want = {
      {'a', "rtpmap:101 telephone-event/8000"}, {'a', "fmtp:101 0-16"}, {'a', "ptime:20"}};
  EXPECT_EQ(m.lines, want);
}

TEST(CodecsTest, KeepRelayableHonoursTheAllowedList) {
  MediaDescription m = Audio("9 0 8 101", kRich);
  std::vector<Codec> allowed = {Codec::kPcma, Codec::kPcmu};
  ASSERT_TRUE(KeepRelayable(m, allowed).ok());
  EXPECT_EQ(m.formats, (std::vector<std::string>{"0", "8"}));
}

TEST(CodecsTest, KeepRelayableRefusesWhenNoVoiceCodecRemains) {
  for (const char* formats : {"96 18", "101", "96 101"}) {
    MediaDescription m = Audio(formats, kRich);
    MediaDescription before = m;
    Status s = KeepRelayable(m);
    EXPECT_FALSE(s.ok()) << formats;
    EXPECT_NE(s.message().find("no relayable audio codec"), std::string::npos);
    EXPECT_EQ(m.formats, before.formats);
    EXPECT_EQ(m.lines, before.lines);
  }
}

TEST(CodecsTest, ChooseCodecsFollowsTheAnswerAndMapsDynamicTypes) {
  MediaDescription offer = Audio("9 0 8 101", "a=rtpmap:101 telephone-event/8000\r\n");
  MediaDescription answer = Audio("8 0 96", "a=rtpmap:96 telephone-event/8000\r\n");
  auto choice = ChooseCodecs(offer, answer);
  ASSERT_TRUE(choice.ok()) << choice.status().ToString();
  EXPECT_EQ(choice->offer_pts, (std::vector<uint8_t>{8, 0, 101}));
  EXPECT_EQ(choice->answer_pts, (std::vector<uint8_t>{8, 0, 96}));

  answer.KeepFormats(choice->answer_pts);
  EXPECT_EQ(answer.formats, (std::vector<std::string>{"8", "0", "96"}));
}

TEST(CodecsTest, ChooseCodecsNeedsACommonVoiceCodec) {
  MediaDescription offer = Audio("9 101", "a=rtpmap:101 telephone-event/8000\r\n");
  MediaDescription answer = Audio("0 101", "a=rtpmap:101 telephone-event/8000\r\n");
  auto choice = ChooseCodecs(offer, answer);
  ASSERT_FALSE(choice.ok());
  EXPECT_EQ(choice.status().code(), Status::Code::kInvalidArgument);

  MediaDescription g722 = Audio("0 9");
  choice = ChooseCodecs(offer, g722);
  ASSERT_TRUE(choice.ok());
  EXPECT_EQ(choice->offer_pts, std::vector<uint8_t>{9});
}

}  // namespace
}  // namespace pbx::media
