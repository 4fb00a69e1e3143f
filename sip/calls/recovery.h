#pragma once

#include <string>

#include "media/rtp/call_media.h"
#include "media/rtp/relay.h"
#include "node/core/status.h"
#include "replication/store/repos.h"
#include "sip/stack.h"

// Rebuilding a call from its replicated runtime record (store::ActiveCall) on the node
// that takes over: an answered call (B2bua::Adopt) and one still ringing
// (B2bua::AdoptRinging), kept apart from the B2BUA's call flow.
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

// A ringing call goes on where it was. The record holds the caller's INVITE as received
// and each INVITE sent to the callee, Via included (B2bua::StoreRinging). The new active
// re-creates the caller's server transaction (same To tag), and sends each INVITE to the
// callee again with the same Via branch and sent-by (the VIP, Stack::kVipIdent): the
// callee's server transaction takes it for a retransmission and repeats its 180, and its
// 200 or error then reaches the new client transaction, so the call is answered (or
// refused) through the usual B2BUA flow.

// InvalidArgument naming the first gap when a ringing record cannot be continued.
Status CheckRingingCall(const store::ActiveCall& call);

// The text of a SIP message as sofia holds it (Via received/rport included); "" on error.
std::string MessageText(msg_t* msg);

// The caller's INVITE server transaction again, from its text, with the To tag its 18x
// carried, on the VIP's transport of the INVITE's Via (its responses go by that Via).
// InvalidArgument when the text is not an initial INVITE, Unavailable without that
// transport.
Result<nta_incoming_t*> RecreateCallerInvite(Stack& stack, const std::string& invite,
                                             const std::string& to_tag);

// The INVITE `invite` (as first sent, Via included) sent again to `route` on a new client
// transaction with the same Via branch, from the VIP; `callback` gets its responses.
struct ResentInvite {
  nta_outgoing_t* orq = nullptr;
  uint32_t cseq = 0;
};
Result<ResentInvite> ResendCalleeInvite(Stack& stack, const std::string& invite,
                                        const std::string& route, nta_response_f* callback,
                                        nta_outgoing_magic_t* magic);

}  // namespace pbx::sip
