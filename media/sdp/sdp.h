#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "node/core/status.h"

namespace pbx::media {

// One SDP line, `<type>=<value>`, kept verbatim ("a=rtpmap:0 PCMU/8000" is {'a', "rtpmap:0
// PCMU/8000"}). Lines the PBX does not understand pass through unchanged.
struct SdpLine {
  char type = 0;
  std::string value;
  bool operator==(const SdpLine&) const = default;
};

// c=IN <addr_type> <address>[/ttl...]; only the "IN" network type exists.
struct Connection {
  std::string addr_type;  // "IP4" or "IP6"
  std::string address;    // without any /ttl suffix
};

// a=sendrecv / sendonly / recvonly / inactive (RFC 4566 §6; hold is RFC 3264 §8.4).
enum class Direction { kSendRecv, kSendOnly, kRecvOnly, kInactive };
std::string_view DirectionName(Direction d);

// A payload format of an RTP stream with its rtpmap and fmtp applied, or the static
// defaults of RFC 3551 for PT 0, 8 and 9 when there is no rtpmap.
struct RtpFormat {
  uint8_t pt = 0;
  std::string encoding;  // as written ("PCMU", "telephone-event"); compare case-insensitively
  uint32_t clock_rate = 0;
  uint32_t channels = 1;
  std::string fmtp;  // "0-16", or empty
};

// One m= section: the m= line parsed, and every line after it verbatim.
// A value type: copy it, edit it, write it.
struct MediaDescription {
  std::string media;  // "audio", "video", ...
  uint16_t port = 0;  // 0: the stream is rejected or disabled
  std::optional<uint16_t> port_count;
  std::string proto;                 // "RTP/AVP", "RTP/SAVP", "udptl", ...
  std::vector<std::string> formats;  // as listed on the m= line; numeric for RTP protos
  std::vector<SdpLine> lines;        // c=, b=, a=, ... after the m= line, in order

  bool IsRtp() const;                            // proto is RTP/... (AVP, SAVP, AVPF, SAVPF)
  std::optional<Connection> connection() const;  // media-level c=
  std::optional<Direction> direction() const;    // media-level attribute, if any
  // Each format of the m= line, in order. REQUIRES: IsRtp() (formats are numbers; Parse
  // checked that).
  std::vector<RtpFormat> rtp_formats() const;
  std::optional<uint16_t> rtcp_port() const;  // a=rtcp:<port>
  // The first attribute named `name` ("ptime" for "a=ptime:20"): its value after ':', or ""
  // for a flag attribute. nullopt when absent.
  std::optional<std::string> attribute(std::string_view name) const;

  // Replaces any media-level direction attribute with `d` (appended if there was none).
  void SetDirection(Direction d);
  // Keeps only the formats whose PT is in `pts`, in the order of `pts`, and drops the
  // rtpmap/fmtp lines of the others. REQUIRES: IsRtp().
  void KeepFormats(std::span<const uint8_t> pts);
};

// An SDP session description (RFC 4566). Parse() validates what the PBX relies on and
// keeps everything else verbatim; ToString() writes it back with CRLF line ends.
struct SessionDescription {
  std::vector<SdpLine> session;  // v=, o=, s=, c=, t=, a=, ... before the first m=
  std::vector<MediaDescription> media;

  // Refuses (InvalidArgument naming the line number and what is wrong) text that is not
  // SDP: no "v=0" first, no o=, a line not "<letter>=<value>", a bad c=, m=, a=rtpmap,
  // a=fmtp or a=rtcp, an RTP payload type outside 0-127, more than 64 KiB.
  static Result<SessionDescription> Parse(std::string_view text);
  std::string ToString() const;

  std::optional<Connection> connection() const;  // session-level c=
  // Where stream `i` is: its media-level c=, else the session-level one. REQUIRES: i < size.
  std::optional<Connection> ConnectionOf(size_t i) const;
  // Stream `i`'s direction: media level, else session level, else sendrecv.
  Direction DirectionOf(size_t i) const;
  // True when stream `i` is held by its sender: sendonly, inactive, or the RFC 2543 form
  // c=0.0.0.0.
  bool IsHold(size_t i) const;

  // Anchors the media on the PBX: every c= and the o= address become `address` (IP4 or
  // IP6 literal), stream i's port becomes ports[i] (a rejected stream, port 0, stays 0),
  // a=rtcp becomes ports[i]+1, and ICE attributes are dropped (the phone's candidates mean
  // nothing once the PBX relays). The o= version is left alone: the rewrite is a function
  // of the phone's SDP and the relay's ports, so it changes exactly when theirs does. An
  // RFC 2543 hold (c=0.0.0.0) becomes a=sendonly so the hold survives the address change.
  // InvalidArgument, and nothing changed, if `address` is not an IP literal or `ports`
  // does not have one entry per m= line.
  Status Anchor(std::string_view address, std::span<const uint16_t> ports);
};

}  // namespace pbx::media
