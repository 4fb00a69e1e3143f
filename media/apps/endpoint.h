#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "node/core/status.h"

namespace pbx::media {

// What the endpoint plays (FEATURES §8 gives no region, so the ITU-T E.180 425 Hz set).
enum class Tone : uint8_t {
  kSilence,
  kDial,      // 425 Hz continuous
  kPrompt,    // "enter the PIN": 425 Hz stutter, 100 ms on, 100 ms off
  kRingback,  // 425 Hz, 1 s on, 4 s off
  kConfirm,   // two 1400 Hz beeps of 100 ms, once, then silence
  kError,     // congestion: 425 Hz, 250 ms on, 250 ms off
};

struct EndpointConfig {
  // The address the RTP/RTCP sockets bind and the answer's c= names.
  std::string address = "127.0.0.1";
  // RTP on an even port of [port_min, port_max], RTCP on the odd port above; 0 and 0: any
  // port pair the kernel gives (an endpoint that only the relay talks to).
  uint16_t port_min = 0;
  uint16_t port_max = 0;
};

struct EndpointStats {
  uint64_t sent = 0;      // RTP packets sent
  uint64_t received = 0;  // RTP packets received (voice and events)
  uint64_t digits = 0;    // DTMF digits delivered
};

// A media endpoint terminated on the PBX: one RTP session (G.711 µ-law or A-law, RFC 4733
// telephone-event) that plays tones in 20 ms frames and hears DTMF, both as RFC 4733
// events (each event once: retransmitted end packets and duplicates are recognised by
// their RTP timestamp) and in band (spandsp's DTMF receiver on the decoded voice, used
// only while the peer has sent no telephone-event).
//
// Threads: each endpoint runs one media thread that owns its sockets and spandsp state.
// Every public method is thread-safe (a change reaches the media thread at its next
// frame, at most 20 ms later). `on_digit` runs on the media thread: the owner posts it to
// its own thread (the B2BUA: Stack::Post), never blocks in it and must not destroy the
// endpoint from it. The destructor stops the thread; no callback runs after it returns.
class MediaEndpoint {
 public:
  using DigitCallback = std::function<void(char digit)>;

  // Binds the port pair and starts the media thread (which sends nothing before Answer).
  // InvalidArgument for an address that is not an IP literal; Unavailable when no port
  // pair of the range is free.
  static Result<std::unique_ptr<MediaEndpoint>> Create(const EndpointConfig& config,
                                                       DigitCallback on_digit);
  ~MediaEndpoint();
  MediaEndpoint(const MediaEndpoint&) = delete;
  MediaEndpoint& operator=(const MediaEndpoint&) = delete;

  uint16_t rtp_port() const;

  // Answers an SDP offer: the first RTP audio stream with a port gets the first of PCMU and
  // PCMA in the offerer's order, plus its telephone-event if it offered one; every other
  // m= line is rejected (port 0). Frames then go to the stream's address (until a packet
  // from elsewhere latches the source, as the relay does). Returns the answer.
  // InvalidArgument, and nothing changed, for bad SDP, no audio stream or no G.711.
  Result<std::string> Answer(std::string_view offer);

  // Starts `tone` from its beginning at the next frame.
  void Play(Tone tone);

  EndpointStats stats() const;

  class Impl;

 private:
  explicit MediaEndpoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pbx::media
