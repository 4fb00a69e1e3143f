#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "media/apps/endpoint.h"
#include "media/rtp/call_media.h"
#include "media/rtp/relay.h"
#include "replication/store/repos.h"
#include "replication/store/state_store.h"
#include "sip/calls/dial.h"
#include "sip/calls/forwarding.h"
#include "sip/calls/pin_prompt.h"
#include "sip/calls/trunk_leg.h"
#include "sip/registrar/registrar.h"
#include "sip/sip_service.h"
#include "sip/stack.h"
#include "sip/store_writer.h"

// The B2BUA: calls between registered extensions on the nta transaction layer. Side A is
// the caller's dialog (its INVITE is answered by us), side B ours towards the callee (we
// send the INVITE, to every binding of the extension at once; the first 200 wins and the
// other branches are cancelled). Every SDP passes through media::CallMedia, so media is
// anchored on the PBX address. Each call in progress is stored in runtime at answer and
// removed at the end, when its CDR is written to records.
// Signalling thread only, except construction; `stack`, `registrar`, `store`, `writer` and
// `relay` outlive it.
namespace pbx::sip {

struct CallOptions {
  std::string address;  // the PBX address in Contact headers and SDP (the VIP when clustered)
  uint16_t sip_port = 5060;
  // Whether this node serves; when it stops, its calls are let go silently (the peer
  // adopts them). Unset: always.
  std::function<bool()> serving;
};

class B2bua {
 public:
  B2bua(Stack& stack, Registrar& registrar, store::StateStore& store, StoreWriter& writer,
        media::RtpRelay& relay, CallOptions options);
  ~B2bua();
  B2bua(const B2bua&) = delete;
  B2bua& operator=(const B2bua&) = delete;

  // Installs the INVITE, ACK, BYE and CANCEL handlers and the 1 s timer. Signalling thread.
  Status Init();
  // Stops the timer and ends every call: with BYE to both sides and a CDR when
  // `end_calls` (a standalone node), else silently, leaving the runtime records for the
  // peer that adopts them (a pair member). Signalling thread.
  void Shutdown(bool end_calls = true);

  // Failover (recovery.cc): rebuilds an answered call from its runtime record (dialogs and
  // CSeqs, relay on the same ports, timers from the answer time), replacing a stale copy
  // of it. InvalidArgument for a record that cannot be rebuilt, Unavailable when its
  // ports are taken; nothing changes then. Signalling thread.
  Status Adopt(const store::ActiveCall& record);
  // Adopts every call of the runtime table; returns how many were. Signalling thread.
  size_t AdoptStored();

  std::vector<CallSummary> List() const;
  size_t call_count() const { return calls_.size(); }

 private:
  struct Peer;
  struct Branch;
  struct Call;
  struct Pending;
  struct Hop;
  enum class Purpose : uint8_t { kBranch, kReinvite, kBye, kRefresh };

  void OnInvite(nta_incoming_t* irq, const sip_t* sip, const Source& src);
  void OnReinvite(Call& call, media::Side from, nta_incoming_t* irq, const sip_t* sip);
  void OnBye(nta_incoming_t* irq, const sip_t* sip);
  void OnAck(const sip_t* sip);
  void OnCancelOrAck(nta_incoming_t* irq, const sip_t* sip);
  void OnResponse(nta_outgoing_t* orq, const sip_t* sip);
  void OnBranchResponse(Call& call, size_t branch, int status, const sip_t* sip);
  void OnReinviteResponse(Call& call, int status, const sip_t* sip);
  void Tick();
  // RFC 4028 (session_timer.h): an UPDATE refreshing a dialog, our refresh of one side, the
  // answer to it, and the timers of a call due at each tick.
  void OnUpdate(nta_incoming_t* irq, const sip_t* sip);
  void Refresh(Call& call, media::Side side);
  void OnRefreshResponse(Call& call, media::Side side, int status, const sip_t* sip);
  // False when the call ended (session expired).
  bool TickSessionTimers(Call& call);

  // Sends an in-dialog request to `peer` (CSeq from its counter unless `cseq` is given).
  // `headers`: extra header lines ("Name: value\r\n"...), e.g. the session timer's.
  nta_outgoing_t* Send(Call* call, Purpose purpose, const char* method, Peer& peer,
                       const std::string& body, std::optional<uint32_t> cseq = std::nullopt,
                       size_t branch = 0, const std::string& headers = "");
  void SendAck(Peer& peer, uint32_t cseq, const std::string& body = "");
  // Late offer: A's ACK (`sdp`) answers B's offer and goes to B in our ACK. Without a usable
  // answer the call ends (BYE to both). `call` may be destroyed.
  void AnswerLateOffer(Call& call, const std::string& sdp);
  void CancelBranches(Call& call, std::optional<size_t> except);
  // Replies a final status to A's INVITE (if not done yet) and ends the call: BYE to each
  // answered side but `side` ("caller" | "callee" | "pbx": who hung up), relay released,
  // runtime record deleted, CDR written. `call` is destroyed.
  void End(Call& call, int status, const char* phrase, const std::string& cdr_status,
           const std::string& cause, const char* side);
  void ReplyA(Call& call, int status, const char* phrase, const std::string& sdp);
  void StoreRuntime(const Call& call);
  // The call's runtime record as it is now, and its replicated write.
  store::ActiveCall RuntimeRecord(const Call& call) const;
  void PutRuntime(const store::ActiveCall& record);
  // A ringing call across a failover (recovery.h): its runtime record, written at its first
  // provisional response to A (and again when it rings other branches), and its
  // continuation on the node that takes over. Signalling thread.
  void StoreRinging(Call& call);
  Status AdoptRinging(const store::ActiveCall& record);
  // A's INVITE transaction reports its CANCEL and ACK to OnCancelOrAck.
  void BindCallerInvite(nta_incoming_t* irq);
  static int OnResponseThunk(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip);
  // Calls through trunks (the helpers of trunk_leg.h do the addressing): the first trunk
  // of `trunks` from `from` on that exists, is enabled and has room (`self` not counted).
  std::optional<size_t> NextTrunk(const std::vector<std::string>& trunks, size_t from,
                                  uint64_t self) const;
  // A new INVITE to the call's current trunk (CSeq + 1 after the first); false if not sent.
  bool SendTrunkInvite(Call& call, const std::string& sdp, const std::string& auth_header);
  // After a final error from the trunk: answers a 401/407 once, else on 503/408 moves to the
  // next trunk that has room and a codec in common. False: nothing left to try.
  bool RetryTrunk(Call& call, int status, const sip_t* sip);
  // Call forward, follow-me and DND (forwarding.h, FEATURES.md §7.1, §7.2). Where a call to
  // `number` ends up: the extension to ring (its DND, CFU, and busy with CFB followed), an
  // external number through the outbound routes with the permission of the extension that
  // forwarded (`by`; empty: `number` is an extension already resolved), or a refusal (loop:
  // a number met twice or more than kMaxForwardHops forwards, 482). `visited` accumulates.
  Hop Follow(std::string number, std::string by, std::vector<std::string>& visited) const;
  // Rings the extension or trunk of `hop` as the call's new B leg (a new CSeq on the same
  // Call-ID); false if no INVITE could be sent.
  bool StartHop(Call& call, const Hop& hop, uint32_t ring_seconds);
  // The B leg failed (`busy`: 486/600/603; else no answer, unreachable, 480/408): the next
  // follow-me number, or CFB / CFNA of the extension rung. True if the call goes on or was
  // ended here; false: nothing to try, the caller decides how the call ends.
  bool Advance(Call& call, bool busy);
  // PIN entry (pin_prompt.h, FEATURES §5.9): A is answered by a media::MediaEndpoint that
  // sits where B will be (the relay's side B), plays the prompt and hears the PIN; once it
  // is accepted the route's trunks are called as usual while A hears ringback from it, and
  // B's 200 moves the relay's side B to the callee. `to_prompt` is A's offer as anchored
  // for side B. False: the call was ended here.
  // Answers A with a MediaEndpoint (call.prompt) that answers `to_prompt`; false after
  // ending the call when it cannot. `what` names it in the log and the CDR.
  bool AnswerWithEndpoint(Call& call, const std::string& to_prompt, const char* what,
                          media::MediaEndpoint::DigitCallback on_digit);
  bool StartPinPrompt(Call& call, const DialTarget& target, const std::string& to_prompt);
  // A feature code from an extension: answers, stores the change to its own forwarding
  // (kReplicated), plays the confirmation or error tone, then hangs up (Tick).
  void StartFeatureCode(Call& call, const FeatureCode& code, const std::string& to_prompt);
  void FinishFeatureCode(Call& call, bool ok, const std::string& cause);
  void OnPinDigit(uint64_t call_id, char digit);
  // Stops the prompt when B answers, leaving the relay's side B ready to move to B.
  void ReleasePrompt(Call& call);
  // Plays what `step` says, checks a PIN it submits, starts the B leg or hangs up. `call`
  // may be destroyed.
  void ApplyPinStep(Call& call, const PinStep& step);
  // Drops every call without a word to the phones or the store (this node stopped serving).
  void Release();
  Call* FindByCallId(const std::string& call_id, media::Side* side);
  // Our Contact towards `peer`, for its transport.
  std::string Contact(const Peer& peer) const;

  Stack& stack_;
  Registrar& registrar_;
  store::StateStore& store_;
  StoreWriter& writer_;
  media::RtpRelay& relay_;
  CallOptions options_;
  TrunkDirectory trunks_;
  ForwardingDirectory forwarding_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Call>> calls_;
  std::unordered_map<std::string, uint64_t> by_call_id_;  // A's and B's Call-IDs
  std::unordered_map<nta_outgoing_t*, std::unique_ptr<Pending>> pending_;
  su_timer_t* timer_ = nullptr;
};

}  // namespace pbx::sip
