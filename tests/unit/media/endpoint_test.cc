// MediaEndpoint over real UDP sockets on 127.0.0.1: SDP answers, RFC 4733 and in-band DTMF
// in, tones out (their frequency checked with spandsp's Goertzel filter).
#include "media/apps/endpoint.h"

#include <spandsp.h>

#include <array>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "media/sdp/sdp.h"
#include "tests/support/process.h"
#include "tests/unit/media/phone.h"

namespace pbx::media {
namespace {

using test::Phone;

std::string Offer(uint16_t port, const std::string& formats, const std::string& attrs,
                  const std::string& extra = "") {
  return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio " +
         std::to_string(port) + " RTP/AVP " + formats + "\r\n" + attrs + extra;
}
const char kTe[] = "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";

// Digits the endpoint delivered (its callback runs on the media thread).
struct Digits {
  std::mutex mu;
  std::string got;
  MediaEndpoint::DigitCallback Callback() {
    return [this](char d) {
      std::lock_guard lock(mu);
      got += d;
    };
  }
  std::string Get() {
    std::lock_guard lock(mu);
    return got;
  }
};

std::string Rtp(uint8_t pt, uint16_t seq, uint32_t ts, const std::string& payload,
                bool marker = false) {
  std::string p(12, '\0');
  p[0] = static_cast<char>(0x80);
  p[1] = static_cast<char>(pt | (marker ? 0x80 : 0));
  p[2] = static_cast<char>(seq >> 8);
  p[3] = static_cast<char>(seq);
  for (int i = 0; i < 4; ++i) p[4 + i] = static_cast<char>(ts >> (24 - 8 * i));
  p[8] = 0x12;
  return p + payload;
}

std::string Event(uint8_t event, bool end, uint16_t duration) {
  return std::string{static_cast<char>(event), static_cast<char>((end ? 0x80 : 0) | 10),
                     static_cast<char>(duration >> 8), static_cast<char>(duration)};
}

TEST(MediaEndpoint, AnswersWithG711AndTelephoneEvent) {
  Digits d;
  auto ep = MediaEndpoint::Create({}, d.Callback());
  ASSERT_TRUE(ep.ok()) << ep.status().message();
  EXPECT_EQ((*ep)->rtp_port() % 2, 0);
  auto answer = (*ep)->Answer(Offer(4000, "9 8 0 101", std::string(kTe),
                                    "m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"));
  ASSERT_TRUE(answer.ok()) << answer.status().message();
  auto sdp = SessionDescription::Parse(*answer);
  ASSERT_TRUE(sdp.ok()) << *answer;
  ASSERT_EQ(sdp->media.size(), 2u);
  EXPECT_EQ(sdp->media[0].port, (*ep)->rtp_port());
  EXPECT_EQ(sdp->media[0].formats, (std::vector<std::string>{"8", "101"}));  // PCMA, first G.711
  EXPECT_EQ(sdp->media[1].port, 0);
  EXPECT_EQ(sdp->ConnectionOf(0)->address, "127.0.0.1");

  EXPECT_FALSE((*ep)->Answer(Offer(4000, "9", "")).ok());  // no G.711
  EXPECT_FALSE((*ep)->Answer("not sdp").ok());
  EXPECT_FALSE(MediaEndpoint::Create({.address = "localhost"}, nullptr).ok());
}

TEST(MediaEndpoint, PortPairFromTheRange) {
  auto a = MediaEndpoint::Create({.address = "127.0.0.1", .port_min = 31000, .port_max = 31003},
                                 nullptr);
  ASSERT_TRUE(a.ok()) << a.status().message();
  auto b = MediaEndpoint::Create({.address = "127.0.0.1", .port_min = 31000, .port_max = 31003},
                                 nullptr);
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_NE((*a)->rtp_port(), (*b)->rtp_port());
  for (auto* e : {a->get(), b->get()}) {
    EXPECT_TRUE(e->rtp_port() == 31000 || e->rtp_port() == 31002);
  }
  auto c = MediaEndpoint::Create({.address = "127.0.0.1", .port_min = 31000, .port_max = 31003},
                                 nullptr);
  EXPECT_EQ(c.status().code(), Status::Code::kUnavailable);
}

TEST(MediaEndpoint, Rfc4733EventsCountOnce) {
  Digits d;
  auto ep = MediaEndpoint::Create({}, d.Callback());
  ASSERT_TRUE(ep.ok());
  Phone phone;
  ASSERT_TRUE((*ep)->Answer(Offer(phone.port(), "0 101", kTe)).ok());
  uint16_t seq = 100;
  uint32_t ts = 8000;
  // "1", "2", "#": start, continuation, then the end three times, as phones send them.
  for (uint8_t ev : {1, 2, 11}) {
    phone.SendTo((*ep)->rtp_port(), Rtp(101, seq++, ts, Event(ev, false, 160), true));
    phone.SendTo((*ep)->rtp_port(), Rtp(101, seq++, ts, Event(ev, false, 320)));
    for (int i = 0; i < 3; ++i) {
      phone.SendTo((*ep)->rtp_port(), Rtp(101, seq++, ts, Event(ev, true, 480)));
    }
    ts += 1600;
  }
  // A retransmitted end of "#" after the fact, then "5" whose end packets were all lost,
  // followed by "7": "5" still counts once.
  phone.SendTo((*ep)->rtp_port(), Rtp(101, seq++, ts - 1600, Event(11, true, 480)));
  phone.SendTo((*ep)->rtp_port(), Rtp(101, seq++, ts, Event(5, false, 160), true));
  ts += 1600;
  phone.SendTo((*ep)->rtp_port(), Rtp(101, seq++, ts, Event(7, false, 160), true));
  phone.SendTo((*ep)->rtp_port(), Rtp(101, seq++, ts, Event(7, true, 320)));
  ASSERT_TRUE(test::WaitFor([&] { return d.Get().size() >= 5; }, std::chrono::seconds(5)));
  EXPECT_EQ(d.Get(), "12#57");
  EXPECT_EQ((*ep)->stats().digits, 5u);
}

TEST(MediaEndpoint, InBandDtmfWithSpandsp) {
  Digits d;
  auto ep = MediaEndpoint::Create({}, d.Callback());
  ASSERT_TRUE(ep.ok());
  Phone phone;
  ASSERT_TRUE((*ep)->Answer(Offer(phone.port(), "8", "")).ok());  // A-law, no events
  dtmf_tx_state_t* tx = dtmf_tx_init(nullptr);
  dtmf_tx_put(tx, "4096*", -1);
  uint16_t seq = 1;
  uint32_t ts = 0;
  for (int frame = 0; frame < 100; ++frame) {  // 2 s of audio, paced loosely
    std::array<int16_t, 160> pcm{};
    dtmf_tx(tx, pcm.data(), 160);
    std::string payload(160, '\0');
    for (int i = 0; i < 160; ++i) payload[i] = static_cast<char>(linear_to_alaw(pcm[i]));
    phone.SendTo((*ep)->rtp_port(), Rtp(8, seq++, ts, payload));
    ts += 160;
    if (frame % 10 == 9) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  dtmf_tx_free(tx);
  ASSERT_TRUE(test::WaitFor([&] { return d.Get().size() >= 5; }, std::chrono::seconds(5)));
  EXPECT_EQ(d.Get(), "4096*");
}

// Power at `freq` relative to the whole signal's power, over `pcm`.
double ToneShare(const std::vector<int16_t>& pcm, float freq) {
  goertzel_descriptor_t desc;
  make_goertzel_descriptor(&desc, freq, static_cast<int>(pcm.size()));
  goertzel_state_t* g = goertzel_init(nullptr, &desc);
  goertzel_update(g, pcm.data(), static_cast<int>(pcm.size()));
  double power = goertzel_result(g);
  goertzel_free(g);
  double energy = 0;
  for (int16_t s : pcm) energy += static_cast<double>(s) * s;
  // Only ratios between frequencies are compared, so spandsp's scaling does not matter.
  return energy > 0 ? power / energy : 0;
}

std::vector<int16_t> ReceiveAudio(Phone& phone, int frames, bool alaw) {
  std::vector<int16_t> pcm;
  for (int i = 0; i < frames; ++i) {
    std::string p = phone.Receive();
    if (p.size() != 172) break;
    for (size_t j = 12; j < p.size(); ++j) {
      uint8_t b = static_cast<uint8_t>(p[j]);
      pcm.push_back(alaw ? alaw_to_linear(b) : ulaw_to_linear(b));
    }
  }
  return pcm;
}

TEST(MediaEndpoint, PlaysTonesInTwentyMillisecondFrames) {
  auto ep = MediaEndpoint::Create({}, nullptr);
  ASSERT_TRUE(ep.ok());
  Phone phone;
  ASSERT_TRUE((*ep)->Answer(Offer(phone.port(), "0 101", kTe)).ok());
  (*ep)->Play(Tone::kDial);
  ReceiveAudio(phone, 3, false);  // frames from before the tone took effect
  std::vector<int16_t> dial = ReceiveAudio(phone, 10, false);
  ASSERT_EQ(dial.size(), 1600u);
  EXPECT_GT(ToneShare(dial, 425), 20 * ToneShare(dial, 1000));
  EXPECT_GT(ToneShare(dial, 425), 20 * ToneShare(dial, 1400));

  (*ep)->Play(Tone::kConfirm);
  std::vector<int16_t> beep;
  for (int i = 0; i < 20 && beep.empty(); ++i) {  // skip to the first frame with sound
    std::vector<int16_t> f = ReceiveAudio(phone, 1, false);
    if (ToneShare(f, 1400) > 20 * ToneShare(f, 425)) beep = f;
  }
  ASSERT_FALSE(beep.empty()) << "no 1400 Hz beep";
  // The confirmation is played once: silence follows it.
  std::vector<int16_t> after = ReceiveAudio(phone, 25, false);  // 500 ms: past the second beep
  std::vector<int16_t> tail(after.end() - 160 * 3, after.end());
  double energy = 0;
  for (int16_t s : tail) energy += static_cast<double>(s) * s;
  EXPECT_LT(energy / tail.size(), 100.0);
  EXPECT_GT((*ep)->stats().sent, 20u);
}

}  // namespace
}  // namespace pbx::media
