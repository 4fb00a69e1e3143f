// libFuzzer target over the SDP parser and everything the B2BUA does with a parsed SDP.
// Properties checked beyond "no crash, no sanitizer report":
//   - what Parse accepts, ToString writes so that Parse accepts it again, identically;
//   - Anchor and KeepRelayable keep it valid SDP.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "media/sdp/codecs.h"
#include "media/sdp/sdp.h"

using pbx::media::SessionDescription;

namespace {

void Require(bool cond) {
  if (!cond) abort();
}

SessionDescription Reparse(const SessionDescription& sd) {
  auto again = SessionDescription::Parse(sd.ToString());
  Require(again.ok());
  Require(again->ToString() == sd.ToString());
  return *again;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed =
      SessionDescription::Parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!parsed.ok()) return 0;
  SessionDescription sd = Reparse(*parsed);

  std::vector<uint16_t> ports;
  for (size_t i = 0; i < sd.media.size(); ++i) {
    (void)sd.ConnectionOf(i);
    (void)sd.DirectionOf(i);
    (void)sd.IsHold(i);
    auto& m = sd.media[i];
    (void)m.rtcp_port();
    if (m.IsRtp()) {
      (void)m.rtp_formats();
      auto offer = m;
      if (pbx::media::KeepRelayable(offer).ok()) {
        (void)pbx::media::ChooseCodecs(offer, m);
        (void)pbx::media::ChooseCodecs(m, offer);
      }
      if (i > 0 && sd.media[0].IsRtp()) (void)pbx::media::ChooseCodecs(sd.media[0], m);
    }
    ports.push_back(static_cast<uint16_t>(10000 + 2 * i));
  }
  SessionDescription anchored = sd;
  Require(anchored.Anchor("203.0.113.1", ports).ok());
  Reparse(anchored);
  for (auto& m : sd.media) {
    if (m.IsRtp()) (void)pbx::media::KeepRelayable(m);
  }
  Reparse(sd);
  return 0;
}
