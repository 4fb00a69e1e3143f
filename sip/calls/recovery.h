#pragma once

#include <string>

#include "media/rtp/call_media.h"
#include "media/rtp/relay.h"
#include "node/core/status.h"
#include "replication/store/repos.h"

// Rebuilding an answered call from its replicated runtime record (store::ActiveCall) on the
// node that takes over: what B2bua::Adopt uses, kept apart from the B2BUA's call flow.
namespace pbx::sip {

// InvalidArgument naming the first gap when `call` cannot be rebuilt: both dialogs need a
// Call-ID, both tags, URIs, a target and a route; the relay ports and the offer and answer
// must be there.
Status CheckActiveCall(const store::ActiveCall& call);

// The call's media on exactly its old relay ports, with its last offer and answer replayed
// so the relay points at both phones as before; nothing needs to be sent to them. The SDP
// each phone last had from the PBX comes back too (a session refresh resends it unchanged).
// Unavailable when a port is taken.
struct RestoredMedia {
  media::CallMedia media;
  std::string sdp_to_a, sdp_to_b;
};
Result<RestoredMedia> RestoreMedia(media::RtpRelay& relay, const std::string& address,
                                   const store::ActiveCall& call);

}  // namespace pbx::sip
