#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "media/rtp/relay.h"
#include "media/sdp/codecs.h"
#include "media/sdp/sdp.h"
#include "node/core/status.h"

namespace pbx::media {

// One call's media as a B2BUA sees it: a relay on the PBX address and the SDP rewriting
// around it. The B2BUA hands each SDP body it receives to Offer or Answer and sends on
// the body that comes back; the phones then talk RTP to the PBX and nothing else.
//
// One audio stream per call is relayed (the first RTP audio m= line with a port); every
// other m= line is rejected (port 0) in the forwarded offer, as RFC 3264 §6 lets an
// answerer do. Not thread-safe: one call belongs to one signalling thread.
class CallMedia {
 public:
  // A relay from the range; `sdp_address` is the address the rewritten SDP names (the
  // VIP; the relay's bind address unless that is 0.0.0.0). InvalidArgument if it is not an
  // IP literal; Unavailable when the port range is exhausted.
  static Result<CallMedia> Create(RtpRelay& relay, std::string_view sdp_address);
  // The same on exactly the ports a call had before a failover (RelayPorts from the
  // replicated call record). Then feed the call's last offer and answer to Offer and
  // Answer again: the rewritten SDP comes out byte for byte as before, so nothing is sent.
  static Result<CallMedia> CreateAt(RtpRelay& relay, std::string_view sdp_address, uint16_t a_port,
                                    uint16_t b_port);
  ~CallMedia();  // releases the relay's ports
  CallMedia(CallMedia&& other) noexcept;
  CallMedia& operator=(CallMedia&& other) noexcept;
  CallMedia(const CallMedia&) = delete;
  CallMedia& operator=(const CallMedia&) = delete;

  const RelayPorts& ports() const { return ports_; }
  Result<RelayStats> Stats() const { return relay_->Stats(ports_.id); }

  // An offer (INVITE, re-INVITE or UPDATE body) from side `from`'s phone. Narrows the
  // audio stream to the relayable codecs in `allowed`, points the relay at where `from`
  // receives, and returns the SDP to send to the other side (pointing at its relay port).
  // InvalidArgument (488 Not Acceptable Here), and nothing changed, for bad SDP, no audio
  // stream, no relayable codec, or a connection address that is not an IP literal of the
  // relay's family.
  Result<std::string> Offer(Side from, std::string_view sdp,
                            std::span<const Codec> allowed = kRelayableCodecs);
  // The answer to the latest Offer, from the other side's phone. Keeps the codecs both
  // agreed on, points the relay at where `from` receives, and returns the SDP to send to
  // the offerer. InvalidArgument, and nothing changed, for bad SDP, an answer with no
  // codec in common, or no Offer from the other side pending.
  Result<std::string> Answer(Side from, std::string_view sdp);

 private:
  CallMedia(RtpRelay* relay, std::string address, RelayPorts ports)
      : relay_(relay), address_(std::move(address)), ports_(ports) {}
  uint16_t PortFacing(Side side) const { return side == Side::kA ? ports_.a_port : ports_.b_port; }
  // Tells the relay where `side` receives stream `i` of `sdp`.
  Status SetPeer(Side side, const SessionDescription& sdp, size_t i);

  RtpRelay* relay_ = nullptr;  // nullptr once moved from
  std::string address_;
  RelayPorts ports_;
  // The offer as forwarded (before anchoring), its offerer and its relayed stream.
  struct Pending {
    Side from;
    size_t stream;
    SessionDescription sent;
  };
  std::optional<Pending> pending_;
};

}  // namespace pbx::media
