#include "media/sdp/codecs.h"

#include <strings.h>

#include <algorithm>
#include <string>
#include <utility>

namespace pbx::media {
namespace {

bool NameIs(const std::string& encoding, const char* name) {
  return strcasecmp(encoding.c_str(), name) == 0;
}

// The audio codec or telephone-event of each format (nullopt: not relayable).
std::vector<std::optional<Codec>> Classify(const std::vector<RtpFormat>& formats) {
  std::vector<std::optional<Codec>> out;
  for (const auto& f : formats) out.push_back(RelayableCodec(f));
  return out;
}

}  // namespace

std::optional<Codec> RelayableCodec(const RtpFormat& f) {
  if (f.clock_rate != 8000 || f.channels != 1) return std::nullopt;
  if (NameIs(f.encoding, "PCMU")) return Codec::kPcmu;
  if (NameIs(f.encoding, "PCMA")) return Codec::kPcma;
  if (NameIs(f.encoding, "G722")) return Codec::kG722;
  if (NameIs(f.encoding, "telephone-event")) return Codec::kTelephoneEvent;
  return std::nullopt;
}

Status KeepRelayable(MediaDescription& m, std::span<const Codec> allowed) {
  if (!m.IsRtp()) return Status::InvalidArgument("m=" + m.media + " is not an RTP stream");
  std::vector<RtpFormat> formats = m.rtp_formats();
  std::vector<std::optional<Codec>> codecs = Classify(formats);
  std::vector<uint8_t> keep;
  bool have_audio = false;
  bool have_event = false;
  for (size_t i = 0; i < formats.size(); ++i) {
    if (!codecs[i] || std::find(allowed.begin(), allowed.end(), *codecs[i]) == allowed.end()) {
      continue;
    }
    // One telephone-event is enough; a second only confuses the far end.
    if (*codecs[i] == Codec::kTelephoneEvent && std::exchange(have_event, true)) continue;
    have_audio |= *codecs[i] != Codec::kTelephoneEvent;
    keep.push_back(formats[i].pt);
  }
  if (!have_audio) {
    return Status::InvalidArgument("no relayable audio codec (PCMU, PCMA, G722) in m=" + m.media);
  }
  m.KeepFormats(keep);
  return Status::Ok();
}

Result<CodecChoice> ChooseCodecs(const MediaDescription& offer, const MediaDescription& answer) {
  if (!offer.IsRtp() || !answer.IsRtp()) return Status::InvalidArgument("stream is not RTP");
  std::vector<RtpFormat> of = offer.rtp_formats(), af = answer.rtp_formats();
  std::vector<std::optional<Codec>> oc = Classify(of), ac = Classify(af);
  CodecChoice choice;
  bool have_audio = false;
  for (size_t i = 0; i < af.size(); ++i) {
    if (!ac[i]) continue;
    auto it = std::find(oc.begin(), oc.end(), ac[i]);
    if (it == oc.end()) continue;
    uint8_t offer_pt = of[it - oc.begin()].pt;
    // Each codec once, even if the answer lists it twice.
    if (std::find(choice.offer_pts.begin(), choice.offer_pts.end(), offer_pt) !=
        choice.offer_pts.end()) {
      continue;
    }
    have_audio |= *ac[i] != Codec::kTelephoneEvent;
    choice.offer_pts.push_back(offer_pt);
    choice.answer_pts.push_back(af[i].pt);
  }
  if (!have_audio) {
    return Status::InvalidArgument("offer and answer have no relayable audio codec in common");
  }
  return choice;
}

}  // namespace pbx::media
