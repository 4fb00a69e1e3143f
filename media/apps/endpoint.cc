#include "media/apps/endpoint.h"

#include <poll.h>
#include <spandsp.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "media/sdp/codecs.h"
#include "media/sdp/sdp.h"

namespace pbx::media {
namespace {

constexpr int kFrameSamples = 160;  // 20 ms at 8 kHz
constexpr auto kFrame = std::chrono::milliseconds(20);
constexpr size_t kRtpHeader = 12;

struct ToneSpec {
  int f1, l1, f2, l2, d1, d2, d3, d4;
  bool repeat;
};
// tone_gen: up to two frequencies (Hz, dBm0), on/off/on/off cadence (ms), repeated or once.
ToneSpec SpecOf(Tone t) {
  switch (t) {
    case Tone::kDial:
      return {425, -13, 0, 0, 1000, 0, 0, 0, true};
    case Tone::kPrompt:
      return {425, -13, 0, 0, 100, 100, 0, 0, true};
    case Tone::kRingback:
      return {425, -13, 0, 0, 1000, 4000, 0, 0, true};
    case Tone::kConfirm:
      return {1400, -13, 0, 0, 100, 100, 100, 0, false};
    case Tone::kError:
      return {425, -13, 0, 0, 250, 250, 0, 0, true};
    case Tone::kSilence:
      break;
  }
  return {0, 0, 0, 0, 0, 0, 0, 0, false};
}

char EventDigit(uint8_t event) {
  static constexpr char kDigits[] = "0123456789*#ABCD";
  return event < 16 ? kDigits[event] : 0;
}

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

// An IPv4 or IPv6 literal and port as a socket address; nullopt if not a literal.
std::optional<sockaddr_storage> SockAddr(const std::string& ip, uint16_t port, socklen_t* len) {
  sockaddr_storage ss{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    *len = sizeof(sockaddr_in);
    return ss;
  }
  if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    *len = sizeof(sockaddr_in6);
    return ss;
  }
  return std::nullopt;
}

Result<Fd> BindUdp(const std::string& ip, uint16_t port, uint16_t* bound) {
  socklen_t len = 0;
  std::optional<sockaddr_storage> sa = SockAddr(ip, port, &len);
  if (!sa) return Status::InvalidArgument(fmt::format("'{}' is not an IP literal", ip));
  Fd s(socket(sa->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (s.fd < 0) return Status::Io(fmt::format("socket: {}", strerror(errno)));
  if (bind(s.fd, reinterpret_cast<sockaddr*>(&*sa), len) != 0) {
    return Status::Unavailable(fmt::format("bind {}:{}: {}", ip, port, strerror(errno)));
  }
  sockaddr_storage got{};
  socklen_t got_len = sizeof(got);
  getsockname(s.fd, reinterpret_cast<sockaddr*>(&got), &got_len);
  *bound = ntohs(got.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&got)->sin_port
                                          : reinterpret_cast<sockaddr_in6*>(&got)->sin6_port);
  return s;
}

bool SameAddr(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    auto& x = reinterpret_cast<const sockaddr_in&>(a);
    auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  auto& x = reinterpret_cast<const sockaddr_in6&>(a);
  auto& y = reinterpret_cast<const sockaddr_in6&>(b);
  return x.sin6_port == y.sin6_port && memcmp(&x.sin6_addr, &y.sin6_addr, 16) == 0;
}

}  // namespace

class MediaEndpoint::Impl {
 public:
  Impl(std::string address, Fd rtp, Fd rtcp, uint16_t port, DigitCallback on_digit)
      : address_(std::move(address)),
        rtp_(std::move(rtp)),
        rtcp_(std::move(rtcp)),
        port_(port),
        on_digit_(std::move(on_digit)),
        wake_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    std::random_device rd;
    ssrc_ = rd();
    seq_ = static_cast<uint16_t>(rd());
    ts_ = rd();
    dtmf_rx_ = dtmf_rx_init(nullptr, &Impl::OnInband, this);
    thread_ = std::thread([this] { Run(); });
  }
  ~Impl() {
    stop_.store(true);
    uint64_t one = 1;
    (void)!write(wake_.fd, &one, sizeof(one));
    thread_.join();
    if (tone_) tone_gen_free(tone_);
    dtmf_rx_free(dtmf_rx_);
  }

  uint16_t port() const { return port_; }

  Result<std::string> Answer(std::string_view offer_text) {
    PBX_ASSIGN_OR_RETURN(SessionDescription offer, SessionDescription::Parse(offer_text));
    std::optional<size_t> stream;
    for (size_t i = 0; i < offer.media.size() && !stream; ++i) {
      const MediaDescription& m = offer.media[i];
      if (m.media == "audio" && m.port != 0 && m.IsRtp()) stream = i;
    }
    if (!stream) return Status::InvalidArgument("the offer has no audio RTP stream");
    Session s;
    std::string formats, attrs;
    for (const RtpFormat& f : offer.media[*stream].rtp_formats()) {
      std::optional<Codec> c = RelayableCodec(f);
      if (!c) continue;
      if (!s.audio_pt && (*c == Codec::kPcmu || *c == Codec::kPcma)) {
        s.audio_pt = f.pt;
        s.alaw = *c == Codec::kPcma;
        formats += fmt::format(" {}", f.pt);
        attrs += fmt::format("a=rtpmap:{} {}/8000\r\n", f.pt, s.alaw ? "PCMA" : "PCMU");
      } else if (!s.event_pt && *c == Codec::kTelephoneEvent) {
        s.event_pt = f.pt;
      }
    }
    if (!s.audio_pt) return Status::InvalidArgument("the offer has no G.711 (PCMU or PCMA)");
    if (s.event_pt) {
      formats += fmt::format(" {}", *s.event_pt);
      attrs += fmt::format("a=rtpmap:{} telephone-event/8000\r\na=fmtp:{} 0-16\r\n", *s.event_pt,
                           *s.event_pt);
    }
    std::optional<Connection> c = offer.ConnectionOf(*stream);
    if (!c) return Status::InvalidArgument("the audio stream has no connection address");
    socklen_t len = 0;
    std::optional<sockaddr_storage> remote = SockAddr(c->address, offer.media[*stream].port, &len);
    if (!remote) {
      return Status::InvalidArgument(fmt::format("'{}' is not an IP literal", c->address));
    }
    s.remote = *remote;
    s.remote_len = len;

    bool v6 = address_.find(':') != std::string::npos;
    const char* family = v6 ? "IP6" : "IP4";
    uint64_t version = ++sdp_version_;
    std::string sdp = fmt::format("v=0\r\no=pbx {} {} IN {} {}\r\ns=pbx\r\nc=IN {} {}\r\nt=0 0\r\n",
                                  session_id_, version, family, address_, family, address_);
    for (size_t i = 0; i < offer.media.size(); ++i) {
      const MediaDescription& m = offer.media[i];
      if (i != *stream) {  // RFC 3264 §6: one m= line per offered one, the others rejected
        sdp += fmt::format("m={} 0 {} {}\r\n", m.media, m.proto,
                           m.formats.empty() ? "0" : m.formats.front());
        continue;
      }
      sdp += fmt::format("m=audio {} RTP/AVP{}\r\n{}a=ptime:20\r\na=sendrecv\r\n", port_, formats,
                         attrs);
    }
    {
      std::lock_guard lock(mu_);
      next_session_ = s;
    }
    changed_.store(true);
    return sdp;
  }

  void Play(Tone t) {
    {
      std::lock_guard lock(mu_);
      next_tone_ = t;
    }
    changed_.store(true);
  }

  EndpointStats stats() const {
    return {sent_.load(std::memory_order_relaxed), received_.load(std::memory_order_relaxed),
            digits_.load(std::memory_order_relaxed)};
  }

 private:
  struct Session {
    std::optional<uint8_t> audio_pt, event_pt;
    bool alaw = false;
    sockaddr_storage remote{};
    socklen_t remote_len = 0;
  };

  static void OnInband(void* user, const char* digits, int len) {
    auto* self = static_cast<Impl*>(user);
    for (int i = 0; i < len; ++i) self->Deliver(digits[i]);
  }

  void Deliver(char digit) {
    if (digit == 0) return;
    digits_.fetch_add(1, std::memory_order_relaxed);
    if (on_digit_) on_digit_(digit);
  }

  // Media thread: takes what Answer and Play changed (one lock per change, not per packet).
  void TakeChanges() {
    if (!changed_.exchange(false)) return;
    std::lock_guard lock(mu_);
    if (next_session_) {
      session_ = *next_session_;
      next_session_.reset();
      latched_ = false;
      event_.reset();
      events_seen_ = false;
    }
    if (next_tone_) {
      tone_kind_ = *next_tone_;
      next_tone_.reset();
      if (tone_) tone_gen_free(tone_);
      tone_ = nullptr;
      ToneSpec t = SpecOf(tone_kind_);
      if (tone_kind_ != Tone::kSilence) {
        // The descriptor is opaque in 0.0.6: allocated, copied by tone_gen_init, freed.
        tone_gen_descriptor_t* desc = tone_gen_descriptor_init(nullptr, t.f1, t.l1, t.f2, t.l2,
                                                               t.d1, t.d2, t.d3, t.d4, t.repeat);
        tone_ = tone_gen_init(nullptr, desc);
        tone_gen_descriptor_free(desc);
      }
    }
  }

  void SendFrame() {
    if (!session_.audio_pt) return;
    std::array<int16_t, kFrameSamples> pcm{};
    if (tone_) tone_gen(tone_, pcm.data(), kFrameSamples);  // fewer samples once over: silence
    std::array<uint8_t, kRtpHeader + kFrameSamples> pkt{};
    pkt[0] = 0x80;
    pkt[1] = static_cast<uint8_t>(*session_.audio_pt | (sent_.load() == 0 ? 0x80 : 0));
    pkt[2] = static_cast<uint8_t>(seq_ >> 8);
    pkt[3] = static_cast<uint8_t>(seq_);
    for (int i = 0; i < 4; ++i) {
      pkt[4 + i] = static_cast<uint8_t>(ts_ >> (24 - 8 * i));
      pkt[8 + i] = static_cast<uint8_t>(ssrc_ >> (24 - 8 * i));
    }
    for (int i = 0; i < kFrameSamples; ++i) {
      pkt[kRtpHeader + i] = session_.alaw ? linear_to_alaw(pcm[i]) : linear_to_ulaw(pcm[i]);
    }
    ++seq_;
    ts_ += kFrameSamples;
    if (sendto(rtp_.fd, pkt.data(), pkt.size(), 0,
               reinterpret_cast<const sockaddr*>(&session_.remote), session_.remote_len) > 0) {
      sent_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void Receive() {
    std::array<uint8_t, 2048> buf;
    for (;;) {
      sockaddr_storage from{};
      socklen_t from_len = sizeof(from);
      ssize_t n = recvfrom(rtp_.fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from),
                           &from_len);
      if (n < 0) return;
      if (n < static_cast<ssize_t>(kRtpHeader) || (buf[0] >> 6) != 2 || !session_.audio_pt) {
        continue;
      }
      // Symmetric RTP: the first packet's source is where frames go from then on.
      if (!latched_) {
        latched_ = true;
        if (!SameAddr(from, session_.remote)) {
          session_.remote = from;
          session_.remote_len = from_len;
        }
      } else if (!SameAddr(from, session_.remote)) {
        continue;
      }
      received_.fetch_add(1, std::memory_order_relaxed);
      size_t header = kRtpHeader + 4 * (buf[0] & 0x0f);
      if (buf[0] & 0x10) {  // header extension
        if (static_cast<size_t>(n) < header + 4) continue;
        header += 4 + 4 * ((buf[header + 2] << 8) | buf[header + 3]);
      }
      if (static_cast<size_t>(n) < header) continue;
      size_t len = n - header;
      if (buf[0] & 0x20) {  // padding
        size_t pad = buf[n - 1];
        if (pad > len) continue;
        len -= pad;
      }
      uint8_t pt = buf[1] & 0x7f;
      uint32_t ts = (uint32_t{buf[4]} << 24) | (uint32_t{buf[5]} << 16) | (buf[6] << 8) | buf[7];
      const uint8_t* payload = buf.data() + header;
      if (session_.event_pt && pt == *session_.event_pt) {
        if (len >= 4) OnEvent(ts, payload[0], (payload[1] & 0x80) != 0);
      } else if (pt == *session_.audio_pt && !events_seen_) {
        std::array<int16_t, 2048> pcm;
        for (size_t i = 0; i < len; ++i) {
          pcm[i] = session_.alaw ? alaw_to_linear(payload[i]) : ulaw_to_linear(payload[i]);
        }
        dtmf_rx(dtmf_rx_, pcm.data(), static_cast<int>(len));
      }
    }
  }

  // RFC 4733 §2.5: one event is every packet with its timestamp; it counts once, at its
  // first end packet (the end is sent three times), or when the next event begins if
  // every end packet was lost.
  void OnEvent(uint32_t ts, uint8_t event, bool end) {
    events_seen_ = true;  // a phone that sends events may also leave the tones in the voice
    if (!event_ || event_->ts != ts) {
      if (event_ && !event_->delivered) Deliver(EventDigit(event_->event));
      event_ = Event{ts, event, false};
    }
    if (end && !event_->delivered) {
      event_->delivered = true;
      Deliver(EventDigit(event));
    }
  }

  void Run() {
    pollfd fds[3] = {{rtp_.fd, POLLIN, 0}, {rtcp_.fd, POLLIN, 0}, {wake_.fd, POLLIN, 0}};
    auto next = std::chrono::steady_clock::now() + kFrame;
    while (!stop_.load()) {
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
          next - std::chrono::steady_clock::now());
      int timeout = wait.count() > 0 ? static_cast<int>(wait.count()) : 0;
      int ready = poll(fds, 3, timeout);
      // Before reading: a packet sent after Answer returned finds its session in place.
      TakeChanges();
      if (ready > 0) {
        if (fds[0].revents & POLLIN) Receive();
        if (fds[1].revents & POLLIN) {  // RTCP: read and let go
          std::array<uint8_t, 2048> buf;
          while (recv(rtcp_.fd, buf.data(), buf.size(), 0) > 0) {
          }
        }
        if (fds[2].revents & POLLIN) {
          uint64_t n;
          (void)!read(wake_.fd, &n, sizeof(n));
        }
      }
      auto now = std::chrono::steady_clock::now();
      if (now >= next) {
        SendFrame();
        next += kFrame;
        if (now - next > 5 * kFrame) next = now + kFrame;  // stalled: do not burst to catch up
      }
    }
  }

  struct Event {
    uint32_t ts;
    uint8_t event;
    bool delivered;
  };

  const std::string address_;
  Fd rtp_, rtcp_;
  const uint16_t port_;
  DigitCallback on_digit_;
  Fd wake_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> changed_{false};
  std::atomic<uint64_t> sent_{0}, received_{0}, digits_{0};
  uint64_t session_id_ = std::random_device{}();
  std::atomic<uint64_t> sdp_version_{0};

  std::mutex mu_;  // guards the next_* fields
  std::optional<Session> next_session_;
  std::optional<Tone> next_tone_;

  // Media thread only.
  Session session_;
  bool latched_ = false;
  Tone tone_kind_ = Tone::kSilence;
  tone_gen_state_t* tone_ = nullptr;
  dtmf_rx_state_t* dtmf_rx_ = nullptr;
  std::optional<Event> event_;
  bool events_seen_ = false;
  uint32_t ssrc_ = 0, ts_ = 0;
  uint16_t seq_ = 0;
  std::thread thread_;  // last: starts once everything above exists
};

Result<std::unique_ptr<MediaEndpoint>> MediaEndpoint::Create(const EndpointConfig& config,
                                                             DigitCallback on_digit) {
  socklen_t len = 0;
  if (!SockAddr(config.address, 0, &len)) {
    return Status::InvalidArgument(fmt::format("'{}' is not an IP literal", config.address));
  }
  auto bind_pair = [&](uint16_t port) -> Result<std::pair<Fd, Fd>> {
    uint16_t rtp_port = 0, rtcp_port = 0;
    PBX_ASSIGN_OR_RETURN(Fd rtp, BindUdp(config.address, port, &rtp_port));
    if (rtp_port % 2 != 0) return Status::Unavailable("odd RTP port");  // RTP takes the even one
    PBX_ASSIGN_OR_RETURN(Fd rtcp, BindUdp(config.address, rtp_port + 1, &rtcp_port));
    return std::make_pair(std::move(rtp), std::move(rtcp));
  };
  std::optional<std::pair<Fd, Fd>> socks;
  if (config.port_min == 0 && config.port_max == 0) {
    for (int attempt = 0; attempt < 16 && !socks; ++attempt) {  // an even port from the kernel
      Result<std::pair<Fd, Fd>> p = bind_pair(0);
      if (p.ok()) socks = std::move(*p);
    }
  } else {
    if (config.port_min > config.port_max) {
      return Status::InvalidArgument("port_min is above port_max");
    }
    // Next fit from a random even port, so endpoints made one after another spread out.
    uint32_t first = config.port_min + (config.port_min & 1);
    uint32_t pairs = (config.port_max >= first + 1) ? (config.port_max - first - 1) / 2 + 1 : 0;
    uint32_t start = pairs ? std::random_device{}() % pairs : 0;
    for (uint32_t i = 0; i < pairs && !socks; ++i) {
      Result<std::pair<Fd, Fd>> p = bind_pair(first + 2 * ((start + i) % pairs));
      if (p.ok()) socks = std::move(*p);
    }
  }
  if (!socks) {
    return Status::Unavailable(fmt::format("no free RTP port pair on {} in {}-{}", config.address,
                                           config.port_min, config.port_max));
  }
  uint16_t port = 0;
  {
    sockaddr_storage got{};
    socklen_t got_len = sizeof(got);
    getsockname(socks->first.fd, reinterpret_cast<sockaddr*>(&got), &got_len);
    port = ntohs(got.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&got)->sin_port
                                          : reinterpret_cast<sockaddr_in6*>(&got)->sin6_port);
  }
  auto impl = std::make_unique<Impl>(config.address, std::move(socks->first),
                                     std::move(socks->second), port, std::move(on_digit));
  return std::unique_ptr<MediaEndpoint>(new MediaEndpoint(std::move(impl)));
}

MediaEndpoint::MediaEndpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MediaEndpoint::~MediaEndpoint() = default;
uint16_t MediaEndpoint::rtp_port() const { return impl_->port(); }
Result<std::string> MediaEndpoint::Answer(std::string_view offer) { return impl_->Answer(offer); }
void MediaEndpoint::Play(Tone tone) { impl_->Play(tone); }
EndpointStats MediaEndpoint::stats() const { return impl_->stats(); }

}  // namespace pbx::media
