#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "media/sdp/sdp.h"
#include "node/core/status.h"

namespace pbx::media {

// The formats the relay passes through unchanged, so both sides must agree on one of them.
enum class Codec { kPcmu, kPcma, kG722, kTelephoneEvent };
inline constexpr std::array<Codec, 4> kRelayableCodecs = {Codec::kPcmu, Codec::kPcma, Codec::kG722,
                                                          Codec::kTelephoneEvent};

// Which relayable codec `f` is (by encoding name, case-insensitive, and clock rate; G.722
// says 8000 by RFC 3551's historical error), or nullopt.
std::optional<Codec> RelayableCodec(const RtpFormat& f);

// Narrows an offer's RTP stream to the relayable formats that are also in `allowed` (say,
// the extension's codec list), in the offerer's order. InvalidArgument, with `m`
// unchanged, when no audio codec would remain (telephone-event alone carries no voice).
// The usual B2BUA flow: KeepRelayable(offer) → Anchor → forward; then on the answer
// ChooseCodecs(offer, answer) → answer.KeepFormats(choice.answer_pts) → Anchor → forward.
Status KeepRelayable(MediaDescription& m, std::span<const Codec> allowed = kRelayableCodecs);

// The relayable formats both descriptions of one stream list, matched by codec (payload
// types may differ: telephone-event is dynamic), in `answer`'s order of preference.
struct CodecChoice {
  std::vector<uint8_t> offer_pts;   // in the offer's numbering
  std::vector<uint8_t> answer_pts;  // the same codecs, entry for entry, in the answer's
};
// InvalidArgument if the two have no audio codec in common, or a stream is not RTP.
Result<CodecChoice> ChooseCodecs(const MediaDescription& offer, const MediaDescription& answer);

}  // namespace pbx::media
