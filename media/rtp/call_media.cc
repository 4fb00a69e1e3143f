#include "media/rtp/call_media.h"

#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>

namespace pbx::media {
namespace {

Status CheckAddress(std::string_view address) {
  std::string z(address);
  in6_addr buf;
  if (inet_pton(AF_INET, z.c_str(), &buf) == 1 || inet_pton(AF_INET6, z.c_str(), &buf) == 1) {
    return Status::Ok();
  }
  return Status::InvalidArgument(fmt::format("SDP address '{}' is not an IP literal", address));
}

Side Other(Side s) { return s == Side::kA ? Side::kB : Side::kA; }

// The stream the relay carries: the first RTP audio stream that is not rejected.
std::optional<size_t> RelayedStream(const SessionDescription& sdp) {
  for (size_t i = 0; i < sdp.media.size(); ++i) {
    const MediaDescription& m = sdp.media[i];
    if (m.media == "audio" && m.IsRtp() && m.port != 0) return i;
  }
  return std::nullopt;
}

// Anchors every stream on `port` (rejected ones stay at port 0) and writes it.
Result<std::string> AnchorAndWrite(SessionDescription& sdp, std::string_view address,
                                   uint16_t port) {
  std::vector<uint16_t> ports(sdp.media.size(), port);
  PBX_TRY(sdp.Anchor(address, ports));
  return sdp.ToString();
}

}  // namespace

Result<CallMedia> CallMedia::Create(RtpRelay& relay, std::string_view sdp_address) {
  PBX_TRY(CheckAddress(sdp_address));
  PBX_ASSIGN_OR_RETURN(RelayPorts ports, relay.Allocate());
  return CallMedia(&relay, std::string(sdp_address), ports);
}

Result<CallMedia> CallMedia::CreateAt(RtpRelay& relay, std::string_view sdp_address,
                                      uint16_t a_port, uint16_t b_port) {
  PBX_TRY(CheckAddress(sdp_address));
  PBX_ASSIGN_OR_RETURN(RelayPorts ports, relay.AllocateAt(a_port, b_port));
  return CallMedia(&relay, std::string(sdp_address), ports);
}

CallMedia::~CallMedia() {
  if (relay_ != nullptr) (void)relay_->Release(ports_.id);
}

CallMedia::CallMedia(CallMedia&& other) noexcept
    : relay_(std::exchange(other.relay_, nullptr)),
      address_(std::move(other.address_)),
      ports_(other.ports_),
      pending_(std::move(other.pending_)) {}

CallMedia& CallMedia::operator=(CallMedia&& other) noexcept {
  if (this != &other) {
    if (relay_ != nullptr) (void)relay_->Release(ports_.id);
    relay_ = std::exchange(other.relay_, nullptr);
    address_ = std::move(other.address_);
    ports_ = other.ports_;
    pending_ = std::move(other.pending_);
  }
  return *this;
}

Status CallMedia::SetPeer(Side side, const SessionDescription& sdp, size_t i) {
  std::optional<Connection> c = sdp.ConnectionOf(i);
  if (!c) return Status::InvalidArgument(fmt::format("no c= line for m= line {}", i + 1));
  const MediaDescription& m = sdp.media[i];
  return relay_->SetPeer(ports_.id, side, c->address, m.port, m.rtcp_port().value_or(0));
}

Result<std::string> CallMedia::Offer(Side from, std::string_view sdp,
                                     std::span<const Codec> allowed) {
  PBX_ASSIGN_OR_RETURN(SessionDescription offer, SessionDescription::Parse(sdp));
  std::optional<size_t> stream = RelayedStream(offer);
  if (!stream) return Status::InvalidArgument("the offer has no RTP audio stream");
  PBX_TRY(KeepRelayable(offer.media[*stream], allowed));
  for (size_t i = 0; i < offer.media.size(); ++i) {
    if (i != *stream) offer.media[i].port = 0;
  }
  // Where `from` receives is read before Anchor rewrites it; SetPeer checks the address
  // before it changes anything, and nothing after it can fail but the write.
  SessionDescription phone = offer;
  PBX_ASSIGN_OR_RETURN(std::string out, AnchorAndWrite(offer, address_, PortFacing(Other(from))));
  PBX_TRY(SetPeer(from, phone, *stream));
  pending_ = Pending{from, *stream, std::move(offer)};
  return out;
}

Result<std::string> CallMedia::Answer(Side from, std::string_view sdp) {
  if (!pending_ || pending_->from == from) {
    return Status::InvalidArgument("an answer with no offer from the other side pending");
  }
  PBX_ASSIGN_OR_RETURN(SessionDescription answer, SessionDescription::Parse(sdp));
  const size_t i = pending_->stream;
  if (answer.media.size() != pending_->sent.media.size()) {
    return Status::InvalidArgument(fmt::format("the answer has {} m= lines, the offer {}",
                                               answer.media.size(), pending_->sent.media.size()));
  }
  MediaDescription& m = answer.media[i];
  const bool rejected = m.port == 0;  // the answerer refused the audio: no media flows
  if (!rejected) {
    PBX_ASSIGN_OR_RETURN(CodecChoice choice, ChooseCodecs(pending_->sent.media[i], m));
    m.KeepFormats(choice.answer_pts);
  }
  SessionDescription phone = answer;
  PBX_ASSIGN_OR_RETURN(std::string out,
                       AnchorAndWrite(answer, address_, PortFacing(pending_->from)));
  if (!rejected) PBX_TRY(SetPeer(from, phone, i));
  pending_.reset();
  return out;
}

}  // namespace pbx::media
