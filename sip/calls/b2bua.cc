#include "sip/calls/b2bua.h"

#include <strings.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <deque>
#include <random>

#include <fmt/format.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>

#include "media/sdp/sdp.h"
#include "node/core/log.h"
#include "sip/calls/dial.h"
#include "sip/calls/recovery.h"
#include "sip/calls/session_timer.h"
#include "sip/clock.h"
#include "sip/routing/routing.h"
#include "sip/trunk/carrier_auth.h"

namespace pbx::sip {
namespace {

using media::Side;

constexpr su_duration_t kTickMs = 1000;
constexpr int64_t kAckWaitMs = 32000;  // RFC 3261 timer H: give up on A's ACK
constexpr size_t kMaxUri = 1024;
constexpr int64_t kAdoptedSilenceMs = 20000;  // an adopted call with no RTP at all: ended
constexpr size_t kMaxForwardHops = 5;         // forwards of one call before it is a loop (482)

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string UrlText(const url_t* url) {
  char buf[kMaxUri];
  isize_t n = url_e(buf, sizeof(buf), url);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(buf)) return {};
  return std::string(buf, static_cast<size_t>(n));
}

// A From/To header value without its tag: ["display"] <uri>.
std::string AddrText(const sip_addr_t* a) {
  std::string uri = UrlText(a->a_url);
  if (a->a_display && *a->a_display) return fmt::format("{} <{}>", a->a_display, uri);
  return "<" + uri + ">";
}

std::string Body(const sip_t* sip) {
  if (!sip->sip_payload || !sip->sip_payload->pl_data) return {};
  return std::string(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
}

std::string RandomHex(std::mt19937_64& rng) { return fmt::format("{:016x}", rng()); }

std::string RouteTo(const std::string& host, uint16_t port, const std::string& transport) {
  bool v6 = host.find(':') != std::string::npos;
  return fmt::format("{}:{}{}{}:{};transport={}", transport == "tls" ? "sips" : "sip",
                     v6 ? "[" : "", host, v6 ? "]" : "", port,
                     transport.empty() ? "udp" : transport);
}

std::vector<media::Codec> AllowedCodecs(const std::vector<std::string>& names) {
  std::vector<media::Codec> out;
  for (const std::string& n : names) {
    if (strcasecmp(n.c_str(), "PCMU") == 0) out.push_back(media::Codec::kPcmu);
    if (strcasecmp(n.c_str(), "PCMA") == 0) out.push_back(media::Codec::kPcma);
    if (strcasecmp(n.c_str(), "G722") == 0) out.push_back(media::Codec::kG722);
  }
  if (out.empty()) out.assign(media::kRelayableCodecs.begin(), media::kRelayableCodecs.end());
  out.push_back(media::Codec::kTelephoneEvent);
  return out;
}

// The codecs of a call through a trunk: the trunk's list, in its order, that the caller's
// extension allows too (none in common: only telephone-event, which the offer refuses).
std::vector<media::Codec> TrunkCodecs(const std::vector<std::string>& caller,
                                      const std::vector<std::string>& trunk) {
  std::vector<media::Codec> mine = AllowedCodecs(caller);
  std::vector<media::Codec> out;
  for (media::Codec c : AllowedCodecs(trunk)) {
    if (std::find(mine.begin(), mine.end(), c) != mine.end()) out.push_back(c);
  }
  return out;
}

// A display name as sent, without its quotes and escapes ("" if none).
std::string Unquoted(const char* display) {
  std::string in = display ? display : "";
  if (in.size() < 2 || in.front() != '"' || in.back() != '"') return in;
  std::string out;
  for (size_t i = 1; i + 1 < in.size(); ++i) {
    if (in[i] == '\\' && i + 2 < in.size()) ++i;
    out += in[i];
  }
  return out;
}

thread_local std::mt19937_64 rng{std::random_device{}()};

// What a request or response says about RFC 4028 session timers.
TimerHeaders ReadTimer(const sip_t* sip) {
  TimerHeaders t;
  if (sip == nullptr) return t;
  t.supported =
      sip_has_feature(sip->sip_supported, "timer") || sip_has_feature(sip->sip_require, "timer");
  if (sip->sip_session_expires) {
    t.session_expires = static_cast<uint32_t>(sip->sip_session_expires->x_delta);
    const char* r = sip->sip_session_expires->x_refresher;
    if (r) t.refresher = strcasecmp(r, "uas") == 0 ? "uas" : "uac";
  }
  if (sip->sip_min_se) t.min_se = static_cast<uint32_t>(sip->sip_min_se->min_delta);
  return t;
}

// The Record-Route URIs of a message, in order; `reverse` for a UAC (RFC 3261 §12.1.2).
std::vector<std::string> RouteSet(const sip_t* sip, bool reverse) {
  std::vector<std::string> out;
  for (const sip_record_route_t* r = sip ? sip->sip_record_route : nullptr; r; r = r->r_next) {
    std::string uri = UrlText(r->r_url);
    if (!uri.empty()) out.push_back(std::move(uri));
  }
  if (reverse) std::reverse(out.begin(), out.end());
  return out;
}

// Loose routing: a dialog with a route set sends its requests to the first Route URI, with
// every URI in Route headers; the Request-URI stays the remote target.
void ApplyRouteSet(store::CallDialog& d, std::vector<std::string> route_set) {
  d.route_set = std::move(route_set);
  if (!d.route_set.empty()) d.route = d.route_set.front();
}

std::string RouteHeader(const store::CallDialog& d) {
  std::string out;
  for (const std::string& uri : d.route_set) out += (out.empty() ? "<" : ", <") + uri + ">";
  return out;
}

// The session timer headers of an INVITE the PBX sends as UAC of a new dialog.
std::string OfferHeaders(const UacOffer& o) {
  if (o.session_expires == 0) return {};
  return fmt::format("Supported: timer\r\nSession-Expires: {}\r\nMin-SE: {}", o.session_expires,
                     o.min_se);
}

// The Session-Expires of a request in an established dialog (the PBX its UAC).
std::string RefreshHeaders(const store::CallDialog& d) {
  if (d.session_interval == 0) return {};
  return "Supported: timer\r\nSession-Expires: " +
         SessionExpiresText({d.session_interval, d.session_pbx_refreshes}, /*pbx_is_uac=*/true);
}

}  // namespace

// One dialog of a call as the PBX holds it (store::CallDialog plus nothing).
struct B2bua::Peer : store::CallDialog {};

// One forked INVITE to one binding of the callee.
struct B2bua::Branch {
  nta_outgoing_t* orq = nullptr;  // until its final response (kept after a 2xx for resends)
  std::string target;             // the registered contact
  std::string route;
  std::string remote_tag;
  bool final = false;
  int status = 0;
  uint32_t cseq = 1;
  bool retried_422 = false;  // sent again with a larger Session-Expires once
};

struct B2bua::Call {
  uint64_t id = 0;
  enum class State : uint8_t { kRinging, kTalking } state = State::kRinging;
  std::string caller, caller_name, dialled, callee;
  int64_t start_ms = 0, answer_ms = 0;
  int64_t adopted_ms = 0;         // when this node rebuilt the call after a failover
  bool adoption_checked = false;  // RTP seen (or on hold) kAdoptedSilenceMs after that
  int64_t ack_deadline_ms = 0;    // while A's INVITE transaction waits for the ACK
  Peer a, b;
  nta_incoming_t* a_irq = nullptr;  // A's INVITE, until its ACK (or a final error)
  bool a_final = false;             // a final response was sent to A's INVITE
  std::vector<Branch> branches;
  std::optional<size_t> winner;
  bool early_sdp = false;  // A got B's anchored answer in a 18x already
  std::string a_answer;    // the anchored answer sent to A
  std::optional<media::CallMedia> media;
  std::string offer, answer;  // last raw offer/answer (for the runtime record)
  bool offer_from_b = false;
  // A re-INVITE in progress: from `re_from`, its server transaction, our client one.
  nta_incoming_t* re_irq = nullptr;
  nta_outgoing_t* re_orq = nullptr;
  Side re_from = Side::kA;
  std::string re_offer;
  int best_status = 0;  // the most telling final response of the branches so far
  // The call timers as the settings were when the call began (seconds; 0: off).
  uint32_t ring_timeout = 0, max_duration = 0, no_rtp_timeout = 0;
  // RFC 4028: the settings at the start, A's negotiation, each side's schedule; the SDP last
  // sent to each side, which a refresh re-INVITE resends unchanged (same o= version).
  SessionTimerConfig timers;
  UasNegotiation a_timer;
  SessionSchedule a_schedule, b_schedule;
  std::string sdp_to_a, sdp_to_b, re_out;
  // Late offer (an INVITE without SDP): B's 200 offers, A's ACK answers; our ACK to B waits
  // for it (the CSeq of B's 200 while it does), then carries the anchored answer.
  bool late_offer = false;
  std::vector<media::Codec> allowed;
  uint32_t b_ack_cseq = 0;
  std::string b_ack_sdp;
  std::string type = "internal";  // internal | outbound | inbound (the CDR's type)
  std::string trunk;              // the trunk of the B leg (outbound) or of A (inbound)
  // Outbound: the route's trunks in failover order, the one tried now and its state.
  std::vector<std::string> route_trunks;
  size_t trunk_index = 0;
  std::string caller_cli;         // the extension's outbound CLI
  std::string route_cli;          // the route's caller ID ("" : per trunk)
  std::string b_offer;            // the anchored offer sent to the trunk (resent with credentials)
  CarrierChallenge challenge;     // the carrier's last 401/407 for this INVITE
  bool auth_tried = false;        // the INVITE to this trunk answered a challenge already
  bool trunk_responded = false;   // any response to the INVITE to this trunk
  int64_t trunk_deadline_ms = 0;  // the trunk's no-answer timer
  // Forwarding (Follow/StartHop/Advance): whether the B leg is a trunk now, the extension
  // rung now (whose CFB/CFNA apply when it fails), when its ringing gives up, the numbers
  // this call reached (loops), the follow-me list still to try and whose it is.
  bool via_trunk = false;
  std::string rung_ext;
  int64_t stage_deadline_ms = 0;
  std::vector<std::string> visited;
  bool follow_me_started = false;
  std::string follow_me_owner;
  std::deque<store::FollowMeStep> follow_me;
  std::vector<std::string> caller_codecs;  // the caller's extension's (or trunk's) codecs
  std::string b_from;                      // From of B towards an extension
  size_t ringing_stored = 0;  // branches in this ringing call's runtime record (StoreRinging)
  // PIN entry (StartPinPrompt): the endpoint that answered A, in the relay's side B until
  // B answers; the entry's state; the route waiting for the PIN; the PIN accepted (the
  // CDR's). `a_answered`: A got our 200 before B answered.
  std::unique_ptr<media::MediaEndpoint> prompt;
  std::optional<PinEntry> pin_entry;
  DialTarget pin_target;
  std::string pin;
  bool a_answered = false;
  // A feature code (StartFeatureCode): the caller, answered by `prompt`, hears the
  // confirmation or error tone until `feature_end_ms`, then the PBX hangs up.
  bool feature = false;
  bool feature_ok = false;
  std::string feature_cause;
  int64_t feature_end_ms = 0;
};

// Where a call goes next (Follow): ring an extension, dial out, or refuse.
struct B2bua::Hop {
  enum class Kind : uint8_t { kRing, kOutbound, kReject } kind = Kind::kReject;
  std::string ext;       // kRing: the extension; kOutbound: whose permission and CLI; kReject: last
  DialTarget target;     // kOutbound: the route
  bool ring_own = true;  // kRing: false when busy or unregistered but follow-me goes on
  uint32_t ring_seconds = 0;                   // kRing: before CFNA (or the follow-me list)
  std::vector<store::FollowMeStep> follow_me;  // kRing: its follow-me list when enabled
  int status = 0;                              // kReject
  std::string cdr_status, cause;               // kReject
};

struct B2bua::Pending {
  uint64_t call = 0;
  Purpose purpose = Purpose::kBye;
  size_t branch = 0;
};

B2bua::B2bua(Stack& stack, Registrar& registrar, store::StateStore& store, StoreWriter& writer,
             media::RtpRelay& relay, CallOptions options)
    : stack_(stack),
      registrar_(registrar),
      store_(store),
      writer_(writer),
      relay_(relay),
      options_(std::move(options)),
      trunks_(stack, store),
      forwarding_(stack, store) {}

B2bua::~B2bua() {
  // Transactions were freed with the agent; only our contexts remain.
  pending_.clear();
  calls_.clear();
}

Status B2bua::Init() {
  PBX_TRY(trunks_.Init());
  PBX_TRY(forwarding_.Init());
  auto bind = [this](sip_method_t m, void (B2bua::*fn)(nta_incoming_t*, const sip_t*)) {
    stack_.SetHandler(m, [this, fn](nta_incoming_t* irq, const sip_t* sip, const Source&) {
      (this->*fn)(irq, sip);
    });
  };
  stack_.SetHandler(sip_method_invite, [this](nta_incoming_t* irq, const sip_t* sip,
                                              const Source& src) { OnInvite(irq, sip, src); });
  bind(sip_method_bye, &B2bua::OnBye);
  bind(sip_method_update, &B2bua::OnUpdate);
  stack_.SetHandler(sip_method_ack,
                    [this](nta_incoming_t*, const sip_t* sip, const Source&) { OnAck(sip); });
  // A CANCEL that matches no INVITE transaction (nta answers the others itself).
  stack_.SetHandler(sip_method_cancel, [](nta_incoming_t* irq, const sip_t*, const Source&) {
    nta_incoming_treply(irq, SIP_481_NO_TRANSACTION, TAG_END());
    nta_incoming_destroy(irq);
  });
  timer_ = su_timer_create(su_root_task(stack_.root()), kTickMs);
  if (timer_ == nullptr) return Status::Internal("su_timer_create failed");
  auto tick = [](su_root_magic_t*, su_timer_t*, su_timer_arg_t* arg) {
    reinterpret_cast<B2bua*>(arg)->Tick();
  };
  su_timer_run(timer_, tick, reinterpret_cast<su_timer_arg_t*>(this));
  return Status::Ok();
}

void B2bua::Shutdown(bool end_calls) {
  trunks_.Unsubscribe();
  forwarding_.Unsubscribe();
  while (end_calls && !calls_.empty()) {
    Call& c = *calls_.begin()->second;
    End(c, SIP_503_SERVICE_UNAVAILABLE, "failed", "shutdown", "pbx");
  }
  Release();
  if (timer_) su_timer_destroy(timer_);
  timer_ = nullptr;
}

std::string B2bua::Contact(const Peer& peer) const {
  // In-dialog requests come back over the dialog's transport (its route's), to the port we
  // listen on for it: a TCP/TLS trunk's BYE must not arrive over UDP.
  std::string transport = "udp";
  if (size_t at = peer.route.find(";transport="); at != std::string::npos) {
    at += strlen(";transport=");
    transport = peer.route.substr(at, peer.route.find_first_of(";>", at) - at);
    for (char& c : transport) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  BoundPorts ports = stack_.ports();
  uint16_t port = transport == "tcp" ? ports.tcp : transport == "tls" ? ports.tls : 0;
  bool v6 = options_.address.find(':') != std::string::npos;
  std::string host = v6 ? "[" + options_.address + "]" : options_.address;
  if (port == 0) return fmt::format("<sip:pbx@{}:{}>", host, options_.sip_port);
  return fmt::format("<sip:pbx@{}:{};transport={}>", host, port, transport);
}

std::vector<CallSummary> B2bua::List() const {
  std::vector<CallSummary> out;
  for (const auto& [id, c] : calls_) {
    CallSummary s;
    s.id = id;
    s.caller = c->caller;
    s.caller_name = c->caller_name;
    s.callee = c->callee;
    s.trunk = c->trunk;
    s.state = c->state == Call::State::kTalking        ? "talking"
              : c->pin_entry && c->pin_entry->active() ? "pin"
                                                       : "ringing";
    s.start_unix = c->start_ms / 1000;
    s.answer_unix = c->answer_ms / 1000;
    if (c->media) {
      s.a_port = c->media->ports().a_port;
      s.b_port = c->media->ports().b_port;
    }
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) { return x.id < y.id; });
  return out;
}

B2bua::Call* B2bua::FindByCallId(const std::string& call_id, Side* side) {
  auto it = by_call_id_.find(call_id);
  if (it == by_call_id_.end()) return nullptr;
  auto c = calls_.find(it->second);
  if (c == calls_.end()) return nullptr;
  *side = c->second->a.call_id == call_id ? Side::kA : Side::kB;
  return c->second.get();
}

// --- requests from the phones ---

void B2bua::OnInvite(nta_incoming_t* irq, const sip_t* sip, const Source& src) {
  auto reply = [irq](int status, const char* phrase) {
    nta_incoming_treply(irq, status, phrase, TAG_END());
    nta_incoming_destroy(irq);
  };
  if (!sip->sip_from || !sip->sip_from->a_tag || !sip->sip_to || !sip->sip_call_id ||
      !sip->sip_cseq || !sip->sip_contact || !sip->sip_from->a_url->url_user ||
      !sip->sip_request->rq_url->url_user) {
    return reply(SIP_400_BAD_REQUEST);
  }
  if (sip->sip_to->a_tag) {  // a re-INVITE
    Side side;
    Call* call = FindByCallId(sip->sip_call_id->i_id, &side);
    if (call == nullptr) return reply(SIP_481_NO_TRANSACTION);
    return OnReinvite(*call, side, irq, sip);
  }
  if (by_call_id_.count(sip->sip_call_id->i_id)) return reply(SIP_482_LOOP_DETECTED);
  std::string caller = sip->sip_from->a_url->url_user;
  // A carrier's INVITE is not challenged: its source (and, for a register trunk, the
  // Contact it was sent to) says which trunk it came from.
  const store::Trunk* in_trunk = trunks_.MatchInbound(src, sip->sip_request->rq_url->url_user);
  if (in_trunk == nullptr && !registrar_.Authenticate(irq, sip, src, caller, "INVITE")) return;
  nta_incoming_treply(irq, SIP_100_TRYING, TAG_END());

  std::string body = Body(sip);
  // No body: a late offer (B's 200 offers, A's ACK answers).
  if (!body.empty() && !media::SessionDescription::Parse(body).ok()) {
    return reply(400, "Bad SDP");
  }
  const store::SystemSettings& settings = registrar_.settings();
  SessionTimerConfig timers{settings.session_timers, settings.session_expires,
                            settings.session_min_se};
  UasNegotiation a_timer = NegotiateUas(timers, ReadTimer(sip));
  if (a_timer.status == 422) {  // the phone retries with at least our Min-SE
    std::string min_se = std::to_string(a_timer.min_se);
    nta_incoming_treply(irq, 422, "Session Interval Too Small", SIPTAG_MIN_SE_STR(min_se.c_str()),
                        TAG_END());
    nta_incoming_destroy(irq);
    return;
  }
  const Registrar::ExtInfo* caller_ext = in_trunk ? nullptr : registrar_.FindExtension(caller);
  std::string caller_name = caller_ext ? caller_ext->name : Unquoted(sip->sip_from->a_display);
  std::string dialled = sip->sip_request->rq_url->url_user;
  if (in_trunk) {
    dialled = InboundDid(*in_trunk, dialled, sip->sip_to->a_url->url_user ?: "");
  }
  std::string type = in_trunk ? "inbound" : "internal";
  // A call that was placed but could not be set up: the caller hears why, and it is logged.
  auto refuse = [&](int status, const char* phrase, const char* cdr_status, const char* cause,
                    const std::string& callee) {
    store::Cdr cdr;
    cdr.id = next_id_++;
    cdr.start_unix_ms = cdr.end_unix_ms = NowUnixMs();
    cdr.caller = caller;
    cdr.caller_name = caller_name;
    cdr.callee = dialled;
    cdr.final_callee = callee;
    cdr.type = type;
    cdr.trunk = in_trunk ? in_trunk->name : "";
    cdr.status = cdr_status;
    cdr.cause = cause;
    cdr.hangup_side = "pbx";
    store::WriteSet writes;
    store::CdrRepo::Append(cdr, writes);
    writer_.Submit(std::move(writes), store::Durability::kAsync, nullptr);
    reply(status, phrase);
  };
  routing::LocalTime now = routing::ToLocalTime(NowUnixMs() / 1000);
  DialTarget target;
  if (in_trunk) {
    routing::InboundDecision d =
        routing::RouteInbound({in_trunk->name, dialled, caller}, trunks_.tables(), now);
    PBX_LOG(kInfo, "calls", "inbound call on trunk {} from {} to {}: {}", in_trunk->name, caller,
            dialled, d.reason);
    if (d.kind == routing::InboundDecision::Kind::kRejected) {
      return refuse(SIP_403_FORBIDDEN, "failed", d.reason.c_str(), "");
    }
    if (d.kind == routing::InboundDecision::Kind::kNoRoute) {
      return refuse(SIP_404_NOT_FOUND, "failed", "no inbound route", "");
    }
    if (d.destination.type != "extension" || !registrar_.FindExtension(d.destination.id)) {
      // Only an extension can be rung; any other type is refused with its name logged.
      PBX_LOG(kInfo, "calls", "inbound call to {}: destination {} '{}' is not available", dialled,
              d.destination.type, d.destination.id);
      std::string cause = "destination " + d.destination.type + " not available";
      return refuse(SIP_480_TEMPORARILY_UNAVAILABLE, "failed", cause.c_str(), d.destination.id);
    }
    target.kind = DialTarget::Kind::kExtension;
    target.number = d.destination.id;
  } else {
    target = ResolveDial(
        dialled, [this](const std::string& n) { return registrar_.FindExtension(n) != nullptr; },
        [&](const std::string& n) {
          // The route's own caller ID only: the per-trunk rules pick the rest.
          return routing::RouteOutbound({caller_ext->dial_permission, n, ""}, trunks_.tables(),
                                        now);
        });
  }
  if (target.kind == DialTarget::Kind::kForbidden) {
    PBX_LOG(kInfo, "calls", "call from {} to {} refused: {}", caller, dialled, target.reason);
    return refuse(SIP_403_FORBIDDEN, "failed", target.reason.c_str(), "");
  }
  // A route with a PIN set: the PBX answers and asks for the PIN first (StartPinPrompt).
  bool needs_pin = target.kind == DialTarget::Kind::kNeedsPin;
  if (needs_pin && body.empty()) {
    return refuse(SIP_488_NOT_ACCEPTABLE, "failed", "PIN entry needs an SDP offer", "");
  }
  if (needs_pin) target.kind = DialTarget::Kind::kOutbound;
  // A feature code: the PBX answers with a tone that says whether it was done.
  bool feature = target.kind == DialTarget::Kind::kFeatureCode;
  if (feature && body.empty()) {
    return refuse(SIP_488_NOT_ACCEPTABLE, "failed", "a feature code needs an SDP offer", "");
  }
  if (target.kind != DialTarget::Kind::kOutbound && target.kind != DialTarget::Kind::kExtension &&
      !feature) {
    PBX_LOG(kInfo, "calls", "call from {} to {}: {}", caller, dialled,
            target.reason.empty() ? "no such number" : target.reason);
    return refuse(SIP_404_NOT_FOUND, "failed",
                  target.reason.empty() ? "no such number" : target.reason.c_str(), "");
  }
  // An extension's DND, CFU and busy-with-CFB are followed before anything rings.
  std::vector<std::string> visited;
  Hop hop;
  if (target.kind == DialTarget::Kind::kOutbound) {
    hop.kind = Hop::Kind::kOutbound;
    hop.ext = caller;
    hop.target = target;
  } else if (feature) {
    hop.ext = target.number;  // the code is the callee of its CDR
  } else {
    hop = Follow(target.number, "", visited);
    if (hop.kind == Hop::Kind::kReject) {
      PBX_LOG(kInfo, "calls", "call from {} to {} refused: {}", caller, dialled, hop.cause);
      return refuse(hop.status, sip_status_phrase(hop.status), hop.cdr_status.c_str(),
                    hop.cause.c_str(), hop.ext);
    }
  }
  bool outbound = hop.kind == Hop::Kind::kOutbound;
  std::string callee = outbound ? hop.target.route.number : hop.ext;
  std::optional<size_t> first_trunk;
  if (outbound) {
    first_trunk = NextTrunk(hop.target.route.trunks, 0, 0);
    if (!first_trunk) {
      return refuse(SIP_503_SERVICE_UNAVAILABLE, "failed", "every trunk of the route is full",
                    callee);
    }
  }

  Result<media::CallMedia> media = media::CallMedia::Create(relay_, options_.address);
  if (!media.ok()) {
    PBX_LOG(kWarn, "calls", "no relay for a call from {}: {}", caller, media.status().message());
    return refuse(SIP_503_SERVICE_UNAVAILABLE, "failed", "no RTP port", callee);
  }
  std::vector<std::string> caller_codecs = caller_ext ? caller_ext->codecs : in_trunk->codecs;
  std::vector<media::Codec> allowed =
      outbound
          ? TrunkCodecs(caller_codecs, trunks_.Find(hop.target.route.trunks[*first_trunk])->codecs)
          : AllowedCodecs(caller_codecs);
  if (needs_pin || feature) std::erase(allowed, media::Codec::kG722);  // the prompt: G.711
  Result<std::string> to_b =
      body.empty() ? Result<std::string>(std::string()) : media->Offer(Side::kA, body, allowed);
  if (!to_b.ok()) {
    PBX_LOG(kInfo, "calls", "offer from {} refused: {}", caller, to_b.status().message());
    return refuse(SIP_488_NOT_ACCEPTABLE, "failed", "no common codec", callee);
  }

  auto owned = std::make_unique<Call>();
  Call& call = *owned;
  call.id = next_id_++;
  call.caller = caller;
  call.caller_name = caller_name;
  call.dialled = dialled;
  call.callee = callee;
  call.start_ms = NowUnixMs();
  call.timers = timers;
  call.a_timer = a_timer;
  call.late_offer = body.empty();
  call.ring_timeout = settings.ring_timeout;
  call.max_duration = settings.max_call_duration;
  call.no_rtp_timeout = settings.no_rtp_timeout;
  call.type = outbound ? "outbound" : type;
  if (in_trunk) call.trunk = in_trunk->name;
  call.media.emplace(std::move(*media));
  call.offer = body;
  call.a_irq = irq;
  call.visited = std::move(visited);
  call.caller_codecs = std::move(caller_codecs);
  // Side A: the dialog A opened; we are its UAS.
  call.a.call_id = sip->sip_call_id->i_id;
  call.a.remote_tag = sip->sip_from->a_tag;
  const char* tag = nta_incoming_tag(irq, nullptr);
  call.a.local_tag = tag ? tag : RandomHex(rng);
  {
    sip_addr_t to = *sip->sip_to;  // as A sent it, without a tag
    to.a_params = nullptr;
    call.a.local_uri = AddrText(&to);
  }
  call.a.remote_uri = AddrText(sip->sip_from);
  call.a.target = UrlText(sip->sip_contact->m_url);
  call.a.route = RouteTo(src.ip_text, src.port, src.transport);
  ApplyRouteSet(call.a, RouteSet(sip, /*reverse=*/false));
  call.a.remote_cseq = sip->sip_cseq->cs_seq;
  call.a.local_cseq = 0;
  // Side B: ours, one Call-ID for every branch (and every forward).
  call.b.call_id = RandomHex(rng) + "@pbx";
  call.b.local_tag = RandomHex(rng);
  std::string name = call.caller_name.empty() ? caller : call.caller_name;
  bool v6 = options_.address.find(':') != std::string::npos;
  std::string host = v6 ? "[" + options_.address + "]" : options_.address;
  call.b_from = fmt::format("{} <sip:{}@{}>", Quoted(name), caller, host);
  call.b.local_uri = call.b_from;
  call.b.local_cseq = 1;
  calls_[call.id] = std::move(owned);
  by_call_id_[call.a.call_id] = call.id;
  by_call_id_[call.b.call_id] = call.id;
  BindCallerInvite(irq);
  if (outbound) {
    PBX_LOG(kInfo, "calls", "call {}: {} -> {} by route {} as {}", call.id, caller, dialled,
            hop.target.route.route, callee);
  }
  if (needs_pin) {
    StartPinPrompt(call, hop.target, *to_b);
    return;
  }
  if (feature) {
    StartFeatureCode(call, target.feature, *to_b);
    return;
  }
  if (!StartHop(call, hop, 0)) {
    End(call, SIP_480_TEMPORARILY_UNAVAILABLE, "failed",
        outbound ? "cannot reach any trunk" : "cannot reach callee", "pbx");
  }
}

// --- PIN entry (pin_prompt.h) ---

bool B2bua::AnswerWithEndpoint(Call& call, const std::string& to_prompt, const char* what,
                               media::MediaEndpoint::DigitCallback on_digit) {
  // The endpoint is the relay's side B until B answers: A's media is anchored as for any
  // call, and B's 200 only moves side B (CallMedia::Answer), so A is never re-INVITEd and
  // the runtime record of the answered call is the usual one.
  uint64_t id = call.id;
  Result<std::unique_ptr<media::MediaEndpoint>> prompt =
      media::MediaEndpoint::Create({.address = options_.address}, std::move(on_digit));
  if (!prompt.ok()) {
    PBX_LOG(kWarn, "calls", "call {}: no {}: {}", id, what, prompt.status().message());
    End(call, SIP_503_SERVICE_UNAVAILABLE, "failed", "no RTP port", "pbx");
    return false;
  }
  Result<std::string> answer = (*prompt)->Answer(to_prompt);
  Result<std::string> to_a = answer.ok() ? call.media->Answer(Side::kB, *answer) : answer.status();
  Result<media::SessionDescription> chosen =
      to_a.ok() ? media::SessionDescription::Parse(*answer) : to_a.status();
  if (!chosen.ok()) {
    PBX_LOG(kInfo, "calls", "call {}: {} refused the offer: {}", id, what,
            chosen.status().message());
    End(call, SIP_488_NOT_ACCEPTABLE, "failed", fmt::format("no G.711 for the {}", what), "pbx");
    return false;
  }
  // A now talks this codec; the trunks are offered it alone, as nothing transcodes.
  std::optional<media::Codec> codec;
  for (const media::MediaDescription& m : chosen->media) {
    if (m.port != 0 && !codec) codec = media::RelayableCodec(m.rtp_formats().front());
  }
  call.caller_codecs = {codec == media::Codec::kPcma ? "PCMA" : "PCMU"};
  call.prompt = std::move(*prompt);
  call.a_answered = true;
  call.a_answer = call.sdp_to_a = *to_a;
  ReplyA(call, SIP_200_OK, *to_a);
  return true;
}

bool B2bua::StartPinPrompt(Call& call, const DialTarget& target, const std::string& to_prompt) {
  uint64_t id = call.id;
  if (!AnswerWithEndpoint(call, to_prompt, "PIN prompt", [this, id](char digit) {
        stack_.Post([this, id, digit] { OnPinDigit(id, digit); });
      })) {
    return false;
  }
  size_t longest = 0;
  for (const store::PinSet& set : trunks_.tables().pin_sets) {
    if (set.name != target.route.pin_set) continue;
    for (const std::string& p : set.pins) longest = std::max(longest, p.size());
  }
  call.pin_entry.emplace(longest);
  call.pin_target = target;
  PBX_LOG(kInfo, "calls", "call {}: {} -> {}: route {} asks for a PIN of set {}", id, call.caller,
          call.dialled, target.route.route, target.route.pin_set);
  ApplyPinStep(call, call.pin_entry->Start(NowUnixMs()));
  return true;
}

void B2bua::ReleasePrompt(Call& call) {
  // B's 200 moves the relay's side B off the prompt (CallMedia::Answer forgets its latch),
  // so none of the prompt's frames may reach the relay after that, or the relay would latch
  // the prompt again and drop the callee. Stopping it joins its thread: its last frame is
  // then in the relay socket's queue. Two round trips to the relay's worker that change
  // nothing (the same peer keeps the latch) let it read that queue before the move.
  uint16_t port = call.prompt->rtp_port();
  call.prompt.reset();
  call.pin_entry.reset();
  for (int i = 0; i < 2; ++i) {
    Status s = relay_.SetPeer(call.media->ports().id, Side::kB, options_.address, port);
    if (!s.ok()) PBX_LOG(kWarn, "calls", "call {}: relay: {}", call.id, s.message());
  }
}

void B2bua::OnPinDigit(uint64_t call_id, char digit) {
  auto it = calls_.find(call_id);
  if (it == calls_.end() || !it->second->pin_entry) return;
  Call& call = *it->second;
  ApplyPinStep(call, call.pin_entry->OnDigit(digit, NowUnixMs()));
}

void B2bua::ApplyPinStep(Call& call, const PinStep& step) {
  if (step.play && call.prompt) call.prompt->Play(*step.play);
  if (step.hang_up) return End(call, 0, nullptr, "failed", "wrong PIN", "pbx");
  if (!step.check) return;
  const std::string& set = call.pin_target.route.pin_set;
  bool valid = routing::PinValid(trunks_.tables(), set, *step.check);
  PBX_LOG(kInfo, "calls", "call {}: PIN of set {} {} (attempt {})", call.id, set,
          valid ? "accepted" : "wrong", call.pin_entry->wrong() + 1);
  PinStep next = call.pin_entry->OnVerdict(valid, NowUnixMs());
  if (next.play && call.prompt) call.prompt->Play(*next.play);
  if (!valid) return;
  call.pin = *step.check;
  Hop hop;
  hop.kind = Hop::Kind::kOutbound;
  hop.ext = call.caller;
  hop.target = call.pin_target;
  PBX_LOG(kInfo, "calls", "call {}: {} -> {} by route {} as {}", call.id, call.caller, call.dialled,
          hop.target.route.route, hop.target.route.number);
  if (!StartHop(call, hop, 0)) {
    End(call, SIP_480_TEMPORARILY_UNAVAILABLE, "failed", "cannot reach any trunk", "pbx");
  }
}

// --- feature codes (feature_codes.h) ---

void B2bua::StartFeatureCode(Call& call, const FeatureCode& code, const std::string& to_prompt) {
  constexpr int64_t kCommitTimeoutMs = 10000;  // a standby that never acks: the error tone
  call.feature = true;
  if (!AnswerWithEndpoint(call, to_prompt, "feature code tone", [](char) {})) return;
  int64_t now = NowUnixMs();
  call.answer_ms = now;
  call.feature_end_ms = now + kCommitTimeoutMs;
  call.feature_cause = "feature code not committed";
  // The caller's own record, as the API would change it: the cache is the store's (it
  // follows "fwd/"), and an extension that never set anything has the defaults.
  const store::Forwarding* cached = forwarding_.Find(call.caller);
  store::Forwarding f = cached ? *cached : store::Forwarding{};
  f.extension = call.caller;
  if (Status s = ApplyFeatureCode(code, f); !s.ok()) {
    PBX_LOG(kInfo, "calls", "call {}: feature code {} from {} refused: {}", call.id, call.dialled,
            call.caller, s.message());
    return FinishFeatureCode(call, false, s.message());
  }
  f.updated_unix = now / 1000;
  store::WriteSet writes;
  store::ForwardingRepo::Put(f, writes);
  uint64_t id = call.id;
  writer_.Submit(std::move(writes), store::Durability::kReplicated, [this, id](const Status& s) {
    stack_.Post([this, id, s] {
      auto it = calls_.find(id);
      if (it == calls_.end() || !it->second->feature) return;
      Call& c = *it->second;
      if (!s.ok()) {
        PBX_LOG(kWarn, "calls", "call {}: feature code {} not stored: {}", id, c.dialled,
                s.message());
      } else {
        PBX_LOG(kInfo, "calls", "call {}: {} set feature code {}", id, c.caller, c.dialled);
      }
      FinishFeatureCode(c, s.ok(), s.ok() ? "feature code" : s.message());
    });
  });
}

void B2bua::FinishFeatureCode(Call& call, bool ok, const std::string& cause) {
  constexpr int64_t kToneMs = 1500;  // two beeps, or three cycles of the error tone
  call.prompt->Play(ok ? media::Tone::kConfirm : media::Tone::kError);
  call.feature_ok = ok;
  call.feature_cause = cause;
  call.feature_end_ms = NowUnixMs() + kToneMs;
}

// --- call forward, follow-me, DND ---

B2bua::Hop B2bua::Follow(std::string number, std::string by,
                         std::vector<std::string>& visited) const {
  Hop hop;
  auto reject = [&](int status, const char* cdr_status, std::string cause) {
    hop.kind = Hop::Kind::kReject;
    hop.ext = number;
    hop.status = status;
    hop.cdr_status = cdr_status;
    hop.cause = std::move(cause);
    return hop;
  };
  for (;;) {
    if (std::find(visited.begin(), visited.end(), number) != visited.end() ||
        visited.size() > kMaxForwardHops) {
      return reject(482, "failed", "forward loop at " + number);
    }
    visited.push_back(number);
    if (!by.empty()) {  // a forward: the number as the forwarding extension would dial it
      const Registrar::ExtInfo* owner = registrar_.FindExtension(by);
      routing::LocalTime now = routing::ToLocalTime(NowUnixMs() / 1000);
      DialTarget t = ResolveDial(
          number, [this](const std::string& n) { return registrar_.FindExtension(n) != nullptr; },
          [&](const std::string& n) {
            return routing::RouteOutbound({owner ? owner->dial_permission : "", n, ""},
                                          trunks_.tables(), now);
          });
      if (t.kind == DialTarget::Kind::kOutbound) {
        hop.kind = Hop::Kind::kOutbound;
        hop.ext = by;
        hop.target = std::move(t);
        return hop;
      }
      if (t.kind == DialTarget::Kind::kForbidden) {
        return reject(403, "failed", fmt::format("forward of {} to {}: {}", by, number, t.reason));
      }
      if (t.kind == DialTarget::Kind::kNeedsPin) {  // a forwarded caller is asked nothing
        return reject(403, "failed",
                      fmt::format("forward of {} to {}: route needs a PIN", by, number));
      }
      if (t.kind != DialTarget::Kind::kExtension) {
        return reject(404, "failed",
                      fmt::format("forward of {} to {}: no such number", by, number));
      }
      number = t.number;
    }
    const store::Forwarding* f = forwarding_.Find(number);
    if (f && f->dnd) return reject(static_cast<int>(f->dnd_status), "busy", "do not disturb");
    auto forward = [&](const store::ForwardRule& rule, const char* kind) {
      PBX_LOG(kInfo, "calls", "{} forwards ({}) to {}", number, kind, rule.number);
      by = number;
      number = rule.number;
    };
    if (f && f->always.active) {
      forward(f->always, "always");
      continue;
    }
    bool follow_me = f && f->follow_me;
    const Registrar::ExtInfo* ext = registrar_.FindExtension(number);
    bool busy =
        ext && !ext->call_waiting && std::any_of(calls_.begin(), calls_.end(), [&](const auto& kv) {
          return kv.second->callee == number || kv.second->caller == number;
        });
    bool registered = !registrar_.Contacts(number).empty();
    if (busy && f && f->busy.active) {
      forward(f->busy, "busy");
      continue;
    }
    if (busy && !follow_me) return reject(486, "busy", "in a call, call waiting off");
    if (!busy && !registered && !follow_me) {
      if (f && f->no_answer.active) {
        forward(f->no_answer, "not registered");
        continue;
      }
      return reject(480, "failed", "not registered");
    }
    hop.kind = Hop::Kind::kRing;
    hop.ext = number;
    hop.ring_own = !busy && registered;
    if (follow_me) {
      hop.follow_me = f->follow_me_list;
      hop.ring_seconds = f->follow_me_ring_seconds;
    } else {
      bool own = f && f->no_answer.active && f->ring_seconds;
      hop.ring_seconds = own ? f->ring_seconds : registrar_.settings().ring_timeout;
    }
    return hop;
  }
}

bool B2bua::StartHop(Call& call, const Hop& hop, uint32_t ring_seconds) {
  bool first = call.branches.empty();
  call.best_status = 0;
  call.early_sdp = false;
  if (hop.kind == Hop::Kind::kOutbound) {
    std::optional<size_t> trunk = NextTrunk(hop.target.route.trunks, 0, call.id);
    if (!trunk) return false;
    const Registrar::ExtInfo* by = registrar_.FindExtension(hop.ext);
    call.via_trunk = true;
    call.rung_ext.clear();
    call.callee = hop.target.route.number;
    call.route_trunks = hop.target.route.trunks;
    call.trunk_index = *trunk;
    call.caller_cli = by ? by->outbound_cli : "";
    call.route_cli = hop.target.route.caller_id;
    if (hop.target.route.time_limit) call.max_duration = hop.target.route.time_limit;
    call.auth_tried = false;
    call.allowed = TrunkCodecs(call.caller_codecs, trunks_.Find(call.route_trunks[*trunk])->codecs);
    Result<std::string> sdp = call.late_offer
                                  ? Result<std::string>(std::string())
                                  : call.media->Offer(Side::kA, call.offer, call.allowed);
    if (!sdp.ok()) return false;
    if (!first) {
      PBX_LOG(kInfo, "calls", "call {}: forwarded by {} to {} by route {}", call.id, hop.ext,
              call.callee, hop.target.route.route);
    }
    bool sent = SendTrunkInvite(call, *sdp, "") || RetryTrunk(call, 503, nullptr);
    if (sent && ring_seconds) call.trunk_deadline_ms = NowUnixMs() + int64_t{ring_seconds} * 1000;
    return sent;
  }
  call.via_trunk = false;
  call.rung_ext = hop.ext;
  call.callee = hop.ext;
  if (!call.follow_me_started && !hop.follow_me.empty()) {
    call.follow_me_started = true;
    call.follow_me_owner = hop.ext;
    call.follow_me.assign(hop.follow_me.begin(), hop.follow_me.end());
  }
  if (!hop.ring_own) return Advance(call, false);
  std::vector<store::Registration> contacts = registrar_.Contacts(hop.ext);
  call.allowed = AllowedCodecs(call.caller_codecs);
  Result<std::string> sdp = call.late_offer ? Result<std::string>(std::string())
                                            : call.media->Offer(Side::kA, call.offer, call.allowed);
  if (!sdp.ok() || contacts.empty()) return false;
  call.sdp_to_b = *sdp;
  bool v6 = options_.address.find(':') != std::string::npos;
  std::string host = v6 ? "[" + options_.address + "]" : options_.address;
  call.b.local_uri = call.b_from;
  call.b.remote_uri = fmt::format("<sip:{}@{}>", hop.ext, host);
  // A new INVITE on the same Call-ID: CSeq + 1, so no phone takes it for a merged request.
  uint32_t cseq = first ? 1 : ++call.b.local_cseq;
  uint32_t ring = ring_seconds ? ring_seconds : hop.ring_seconds;
  call.stage_deadline_ms = NowUnixMs() + int64_t{ring} * 1000;
  PBX_LOG(kInfo, "calls", "call {}: {} ({}) -> {}: ringing {} contact(s) for {} s", call.id,
          call.caller, call.caller_name, hop.ext, contacts.size(), ring);
  size_t from = call.branches.size();
  for (const store::Registration& r : contacts) {
    Branch br;
    br.target = r.contact;
    br.route = RouteTo(r.received_host, static_cast<uint16_t>(r.received_port), r.transport);
    br.cseq = cseq;
    call.branches.push_back(std::move(br));
  }
  bool sent = false;
  for (size_t i = from; i < call.branches.size(); ++i) {
    Peer p = call.b;
    p.target = call.branches[i].target;
    p.route = call.branches[i].route;
    call.branches[i].orq = Send(&call, Purpose::kBranch, "INVITE", p, call.sdp_to_b, cseq, i,
                                OfferHeaders(OfferUac(call.timers)));
    if (call.branches[i].orq == nullptr) {
      call.branches[i].final = true;
      call.branches[i].status = 503;
    }
    sent = sent || call.branches[i].orq != nullptr;
  }
  return sent;
}

bool B2bua::Advance(Call& call, bool busy) {
  for (;;) {
    std::string next, by;
    uint32_t ring = 0;
    if (call.follow_me_started) {
      if (call.follow_me.empty()) return false;
      next = call.follow_me.front().number;
      ring = call.follow_me.front().ring_seconds;
      by = call.follow_me_owner;
      call.follow_me.pop_front();
    } else {
      const store::Forwarding* f =
          call.rung_ext.empty() ? nullptr : forwarding_.Find(call.rung_ext);
      const store::ForwardRule* rule = f ? (busy ? &f->busy : &f->no_answer) : nullptr;
      if (rule == nullptr || !rule->active || rule->number.empty()) return false;
      PBX_LOG(kInfo, "calls", "call {}: {} {}, forwarding to {}", call.id, call.rung_ext,
              busy ? "busy" : "did not answer", rule->number);
      next = rule->number;
      by = call.rung_ext;
    }
    Hop hop = Follow(next, by, call.visited);
    if (hop.kind == Hop::Kind::kReject) {
      PBX_LOG(kInfo, "calls", "call {}: {} refused: {}", call.id, next, hop.cause);
      if (call.follow_me_started) continue;  // the list's next number
      End(call, hop.status, sip_status_phrase(hop.status), hop.cdr_status, hop.cause, "pbx");
      return true;
    }
    if (call.follow_me_started) {
      PBX_LOG(kInfo, "calls", "call {}: follow-me of {}: {} for {} s", call.id,
              call.follow_me_owner, next, ring);
    }
    if (StartHop(call, hop, ring)) return true;
    if (!call.follow_me_started) {
      End(call, SIP_480_TEMPORARILY_UNAVAILABLE, "failed", "cannot reach " + next, "pbx");
      return true;
    }
  }
}

void B2bua::OnReinvite(Call& call, Side from, nta_incoming_t* irq, const sip_t* sip) {
  Peer& peer = from == Side::kA ? call.a : call.b;
  if (call.state != Call::State::kTalking || call.re_irq != nullptr) {
    nta_incoming_treply(irq, SIP_491_REQUEST_PENDING, TAG_END());
    nta_incoming_destroy(irq);
    return;
  }
  peer.remote_cseq = sip->sip_cseq->cs_seq;
  if (sip->sip_contact) peer.target = UrlText(sip->sip_contact->m_url);
  std::string body = Body(sip);
  Result<std::string> out = body.empty() ? Result<std::string>(Status::InvalidArgument("no SDP"))
                                         : call.media->Offer(from, body);
  if (!out.ok()) {
    nta_incoming_treply(irq, SIP_488_NOT_ACCEPTABLE, TAG_END());
    nta_incoming_destroy(irq);
    return;
  }
  bool hold =
      body.find("a=sendonly") != std::string::npos || body.find("a=inactive") != std::string::npos;
  PBX_LOG(kInfo, "calls", "call {}: re-INVITE from {}: {}", call.id,
          from == Side::kA ? "caller" : "callee", hold ? "hold" : "resume");
  call.re_irq = irq;
  call.re_from = from;
  call.re_offer = body;
  call.re_out = *out;
  Peer& other = from == Side::kA ? call.b : call.a;
  call.re_orq = Send(&call, Purpose::kReinvite, "INVITE", other, *out, std::nullopt, 0,
                     RefreshHeaders(other));
  if (call.re_orq == nullptr) {
    nta_incoming_treply(irq, SIP_500_INTERNAL_SERVER_ERROR, TAG_END());
    nta_incoming_destroy(irq);
    call.re_irq = nullptr;
  }
  // Both CSeqs moved (the phone's and the one we sent on): a new active must go on above
  // them even if this re-INVITE fails. The offer/answer stored is still the settled one.
  StoreRuntime(call);
}

void B2bua::OnBye(nta_incoming_t* irq, const sip_t* sip) {
  Side side;
  Call* call = sip->sip_call_id ? FindByCallId(sip->sip_call_id->i_id, &side) : nullptr;
  if (call == nullptr || (side == Side::kB && !call->winner)) {
    nta_incoming_treply(irq, SIP_481_NO_TRANSACTION, TAG_END());
    nta_incoming_destroy(irq);
    return;
  }
  nta_incoming_treply(irq, SIP_200_OK, TAG_END());
  nta_incoming_destroy(irq);
  // A gave up before an answer (BYE, not CANCEL); a feature code's caller was answered.
  if (call->state == Call::State::kRinging && !call->feature) {
    CancelBranches(*call, std::nullopt);
    return End(*call, SIP_487_REQUEST_TERMINATED, "cancelled", "BYE before answer", "caller");
  }
  bool from_a = side == Side::kA;
  End(*call, 0, nullptr, "answered", from_a ? "caller hung up" : "callee hung up",
      from_a ? "caller" : "callee");
}

void B2bua::OnAck(const sip_t* sip) {
  Side side;
  Call* call = sip->sip_call_id ? FindByCallId(sip->sip_call_id->i_id, &side) : nullptr;
  if (call == nullptr || side != Side::kA || call->a_irq == nullptr || !call->a_final) return;
  nta_incoming_destroy(call->a_irq);
  call->a_irq = nullptr;
  AnswerLateOffer(*call, Body(sip));
}

void B2bua::AnswerLateOffer(Call& call, const std::string& sdp) {
  if (call.b_ack_cseq == 0) return;
  uint32_t cseq = call.b_ack_cseq;
  call.b_ack_cseq = 0;
  Result<std::string> to_b = sdp.empty() ? Result<std::string>(Status::InvalidArgument("none"))
                                         : call.media->Answer(Side::kA, sdp);
  if (!to_b.ok()) {
    PBX_LOG(kInfo, "calls", "call {}: the caller's ACK has no usable answer: {}", call.id,
            to_b.status().message());
    SendAck(call.b, cseq);  // B's 200 is acknowledged; then BYE to both
    return End(call, 0, nullptr, "failed", "no answer in ACK", "pbx");
  }
  call.answer = sdp;
  call.sdp_to_b = *to_b;
  call.b_ack_sdp = *to_b;
  SendAck(call.b, cseq, *to_b);
  StoreRuntime(call);
}

void B2bua::OnCancelOrAck(nta_incoming_t* irq, const sip_t* sip) {
  for (auto& [id, c] : calls_) {
    if (c->a_irq != irq) continue;
    Call& call = *c;
    // Inside nta's callback the transaction must stay alive: the rest runs from the loop.
    uint64_t call_id = call.id;
    if (sip && sip->sip_request && sip->sip_request->rq_method == sip_method_cancel) {
      if (call.state != Call::State::kRinging || call.a_final) return;
      PBX_LOG(kInfo, "calls", "call {}: cancelled by {}", call.id, call.caller);
      ReplyA(call, SIP_487_REQUEST_TERMINATED, "");
      stack_.Post([this, call_id] {
        auto it = calls_.find(call_id);
        if (it == calls_.end()) return;
        CancelBranches(*it->second, std::nullopt);
        End(*it->second, SIP_487_REQUEST_TERMINATED, "cancelled", "caller cancelled", "caller");
      });
      return;
    }
    // The ACK of our 2xx (or of an error; then the call is gone already).
    if (call.a_final) {
      std::string sdp = sip ? Body(sip) : std::string();
      stack_.Post([this, call_id, irq, sdp] {
        auto it = calls_.find(call_id);
        if (it == calls_.end() || it->second->a_irq != irq) return;
        nta_incoming_destroy(irq);
        it->second->a_irq = nullptr;
        AnswerLateOffer(*it->second, sdp);
      });
    }
    return;
  }
}

// --- responses from the phones ---

void B2bua::OnResponse(nta_outgoing_t* orq, const sip_t* sip) {
  auto it = pending_.find(orq);
  int status = sip && sip->sip_status ? sip->sip_status->st_status : nta_outgoing_status(orq);
  if (it == pending_.end()) {
    if (status >= 200) nta_outgoing_destroy(orq);
    return;
  }
  Pending p = *it->second;
  auto call_it = calls_.find(p.call);
  if (status >= 200 && (call_it == calls_.end() || p.purpose == Purpose::kBye)) {
    pending_.erase(it);
    nta_outgoing_destroy(orq);
    return;
  }
  if (call_it == calls_.end()) return;
  Call& call = *call_it->second;
  if (p.purpose == Purpose::kBranch) return OnBranchResponse(call, p.branch, status, sip);
  if (p.purpose == Purpose::kReinvite && status >= 200) {
    pending_.erase(it);
    call.re_orq = nullptr;
    OnReinviteResponse(call, status, sip);
    nta_outgoing_destroy(orq);
  }
  if (p.purpose == Purpose::kRefresh && status >= 200) {
    pending_.erase(it);
    OnRefreshResponse(call, p.branch == 0 ? Side::kA : Side::kB, status, sip);  // may End
    nta_outgoing_destroy(orq);
  }
}

void B2bua::OnBranchResponse(Call& call, size_t index, int status, const sip_t* sip) {
  Branch& br = call.branches[index];
  if (index + 1 == call.branches.size()) call.trunk_responded = true;
  // A PIN caller got our 200 already (a_answered); its B leg still rings.
  bool a_gone = call.a_final && !call.a_answered;
  if (status == 422 && !br.retried_422 && sip && sip->sip_min_se && !call.winner && !a_gone) {
    // RFC 4028 §7.3: once more with the callee's Min-SE, CSeq + 1 in the same dialog.
    br.retried_422 = true;
    pending_.erase(br.orq);
    nta_outgoing_destroy(br.orq);
    Peer p = call.b;
    p.target = br.target;
    p.route = br.route;
    uint32_t min_se = static_cast<uint32_t>(sip->sip_min_se->min_delta);
    br.orq = Send(&call, Purpose::kBranch, "INVITE", p, call.sdp_to_b, ++br.cseq, index,
                  OfferHeaders(OfferUac(call.timers, min_se)));
    if (br.orq) return;
    sip = nullptr;
  }
  if (status < 200) {
    if (status == 100 || call.state != Call::State::kRinging || call.a_final) return;
    std::string sdp = Body(sip);
    // A PIN caller hears the prompt's ringback; B's early media waits for its 200.
    if (!sdp.empty() && !call.early_sdp && !call.late_offer && !call.a_answered) {
      Result<std::string> to_a = call.media->Answer(Side::kB, sdp);
      if (to_a.ok()) {
        call.early_sdp = true;
        call.a_answer = *to_a;
        call.answer = sdp;
      }
    }
    // Early media once B sent SDP: 183 with the anchored answer, else plain ringing.
    if (call.early_sdp) {
      ReplyA(call, 183, "Session Progress", call.a_answer);
    } else {
      ReplyA(call, status, sip && sip->sip_status ? sip->sip_status->st_phrase : "Ringing", "");
    }
    StoreRinging(call);
    return;
  }
  if (status < 300) {
    if (sip && sip->sip_to && sip->sip_to->a_tag) br.remote_tag = sip->sip_to->a_tag;
    Peer dialog = call.b;
    dialog.target = sip && sip->sip_contact ? UrlText(sip->sip_contact->m_url) : br.target;
    dialog.route = br.route;
    ApplyRouteSet(dialog, RouteSet(sip, /*reverse=*/true));
    dialog.remote_tag = br.remote_tag;
    uint32_t cseq = sip && sip->sip_cseq ? sip->sip_cseq->cs_seq : 1;
    if (call.winner || a_gone) {
      // A retransmission of the winner's 200 (our ACK was lost) or a late 200 of another
      // branch, which is acknowledged and hung up at once.
      bool winner = call.winner && *call.winner == index;
      if (!winner || call.b_ack_cseq == 0) SendAck(dialog, cseq, winner ? call.b_ack_sdp : "");
      if (!winner) {
        br.final = true;
        Peer loser = dialog;
        loser.local_cseq = cseq + 1;
        Send(nullptr, Purpose::kBye, "BYE", loser, "");
      }
      return;
    }
    call.winner = index;
    br.final = true;
    call.b = dialog;
    call.b.local_cseq = std::max(call.b.local_cseq, cseq);
    if (!call.late_offer) SendAck(call.b, cseq);
    CancelBranches(call, index);
    std::string sdp = Body(sip);
    if (call.prompt) ReleasePrompt(call);
    if (!call.early_sdp) {
      Result<std::string> to_a = sdp.empty() ? Result<std::string>(Status::InvalidArgument("none"))
                                 : call.late_offer ? call.media->Offer(Side::kB, sdp, call.allowed)
                                                   : call.media->Answer(Side::kB, sdp);
      if (!to_a.ok()) {
        PBX_LOG(kInfo, "calls", "call {}: answer of {} refused: {}", call.id, call.callee,
                to_a.status().message());
        if (call.late_offer) SendAck(call.b, cseq);  // acknowledged, then hung up
        return End(call, SIP_488_NOT_ACCEPTABLE, "failed", "no common codec", "pbx");
      }
      call.a_answer = *to_a;
      call.answer = sdp;
      if (call.late_offer) {
        call.offer = sdp;
        call.offer_from_b = true;
        call.answer.clear();
        call.b_ack_cseq = cseq;
      }
    }
    call.state = Call::State::kTalking;
    call.answer_ms = NowUnixMs();
    if (!call.a_answered) call.sdp_to_a = call.a_answer;  // else A keeps the prompt's answer
    LegTimer b_timer = AcceptUac(ReadTimer(sip));
    call.b.session_interval = b_timer.interval;
    call.b.session_pbx_refreshes = b_timer.pbx_refreshes;
    call.a.session_interval = call.a_timer.timer.interval;
    call.a.session_pbx_refreshes = call.a_timer.timer.pbx_refreshes;
    call.a_schedule.Start(call.a_timer.timer, NowMs());
    call.b_schedule.Start(b_timer, NowMs());
    ReplyA(call, SIP_200_OK, call.a_answer);
    PBX_LOG(kInfo, "calls", "call {}: {} answered", call.id, call.callee);
    StoreRuntime(call);
    return;
  }
  // A final error from one branch; the call fails once every branch has.
  br.final = true;
  auto it = pending_.find(br.orq);
  if (it != pending_.end()) pending_.erase(it);
  // `sip` is the transaction's message: destroy the transaction when this returns, after all
  // below has read it (over TCP/TLS nta frees it at once; UDP's timer D only hid this).
  std::unique_ptr<nta_outgoing_t, void (*)(nta_outgoing_t*)> done(br.orq, nta_outgoing_destroy);
  br.orq = nullptr;
  br.status = status;
  // A carrier's challenge is answered; 503 or no answer moves on to the route's next trunk.
  if (call.via_trunk && !call.winner && RetryTrunk(call, status, sip)) return;
  // 486/600/603 say more about the callee than 408/480/503 of an unreachable phone.
  if (call.best_status == 0 || status == 486 || status == 600 || status == 603) {
    call.best_status = status;
  }
  if (call.winner || !std::all_of(call.branches.begin(), call.branches.end(),
                                  [](const Branch& b) { return b.final; })) {
    return;
  }
  int s = call.best_status;
  // CFB after busy or declined, CFNA (or the next follow-me number) after anything else.
  if (s != 487 && Advance(call, s == 486 || s == 600 || s == 603)) return;
  if (s == 486 || s == 600) return End(call, SIP_486_BUSY_HERE, "busy", "callee busy", "callee");
  if (s == 603) return End(call, SIP_603_DECLINE, "failed", "callee declined", "callee");
  if (s == 487) return End(call, SIP_487_REQUEST_TERMINATED, "cancelled", "cancelled", "pbx");
  End(call, SIP_480_TEMPORARILY_UNAVAILABLE, "failed", fmt::format("callee answered {}", s), "pbx");
}

void B2bua::OnReinviteResponse(Call& call, int status, const sip_t* sip) {
  nta_incoming_t* irq = call.re_irq;
  call.re_irq = nullptr;
  Peer& other = call.re_from == Side::kA ? call.b : call.a;
  Side answerer = call.re_from == Side::kA ? Side::kB : Side::kA;
  if (status >= 300) {
    if (irq) {
      nta_incoming_treply(
          irq, status, sip && sip->sip_status ? sip->sip_status->st_phrase : "Failed", TAG_END());
      nta_incoming_destroy(irq);
    }
    return;
  }
  SendAck(other, sip && sip->sip_cseq ? sip->sip_cseq->cs_seq : other.local_cseq);
  if (sip && sip->sip_contact) other.target = UrlText(sip->sip_contact->m_url);
  (answerer == Side::kA ? call.a_schedule : call.b_schedule).Refreshed(NowMs());
  std::string sdp = Body(sip);
  Result<std::string> back = sdp.empty() ? Result<std::string>(Status::InvalidArgument("none"))
                                         : call.media->Answer(answerer, sdp);
  if (!irq) return;
  if (!back.ok()) {
    nta_incoming_treply(irq, SIP_488_NOT_ACCEPTABLE, TAG_END());
    nta_incoming_destroy(irq);
    return;
  }
  call.offer = call.re_offer;
  call.answer = sdp;
  call.offer_from_b = call.re_from == Side::kB;
  (call.re_from == Side::kA ? call.sdp_to_b : call.sdp_to_a) = call.re_out;
  (call.re_from == Side::kA ? call.sdp_to_a : call.sdp_to_b) = *back;
  (call.re_from == Side::kA ? call.a_schedule : call.b_schedule).Refreshed(NowMs());
  const Peer& from = call.re_from == Side::kA ? call.a : call.b;
  std::string se = from.session_interval
                       ? SessionExpiresText({from.session_interval, from.session_pbx_refreshes},
                                            /*pbx_is_uac=*/false)
                       : "";
  std::string contact = Contact(from);
  nta_incoming_treply(irq, SIP_200_OK, SIPTAG_CONTACT_STR(contact.c_str()),
                      TAG_IF(!se.empty(), SIPTAG_SESSION_EXPIRES_STR(se.c_str())),
                      SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(back->c_str()),
                      TAG_END());
  // The ACK of this 2xx carries nothing we need; nta absorbs or drops it.
  nta_incoming_destroy(irq);
  StoreRuntime(call);
}

// --- sending ---

nta_outgoing_t* B2bua::Send(Call* call, Purpose purpose, const char* method, Peer& peer,
                            const std::string& body, std::optional<uint32_t> cseq, size_t branch,
                            const std::string& headers) {
  uint32_t seq = cseq ? *cseq : ++peer.local_cseq;
  msg_t* msg = nta_msg_create(stack_.agent(), 0);
  if (msg == nullptr) return nullptr;
  sip_t* sip = sip_object(msg);
  std::string request = fmt::format("{} {} SIP/2.0", method, peer.target);
  std::string from = fmt::format("{};tag={}", peer.local_uri, peer.local_tag);
  std::string to = peer.remote_tag.empty()
                       ? peer.remote_uri
                       : fmt::format("{};tag={}", peer.remote_uri, peer.remote_tag);
  std::string cseq_text = fmt::format("{} {}", seq, method);
  std::string route = RouteHeader(peer);
  std::string contact = Contact(peer);
  bool invite = strcmp(method, "INVITE") == 0;
  if (sip_add_tl(msg, sip, SIPTAG_REQUEST_STR(request.c_str()), SIPTAG_FROM_STR(from.c_str()),
                 SIPTAG_TO_STR(to.c_str()), SIPTAG_CALL_ID_STR(peer.call_id.c_str()),
                 SIPTAG_CSEQ_STR(cseq_text.c_str()), SIPTAG_MAX_FORWARDS_STR("70"),
                 TAG_IF(!route.empty(), SIPTAG_ROUTE_STR(route.c_str())),
                 TAG_IF(invite, SIPTAG_CONTACT_STR(contact.c_str())),
                 TAG_IF(invite, SIPTAG_ALLOW_STR("INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE")),
                 TAG_IF(!headers.empty(), SIPTAG_HEADER_STR(headers.c_str())),
                 TAG_IF(!body.empty(), SIPTAG_CONTENT_TYPE_STR("application/sdp")),
                 TAG_IF(!body.empty(), SIPTAG_PAYLOAD_STR(body.c_str())), TAG_END()) < 0) {
    msg_destroy(msg);
    return nullptr;
  }
  // From the VIP: the responses reach whichever node holds it (recovery.h, ringing calls).
  nta_outgoing_t* orq = nta_outgoing_mcreate(
      stack_.agent(), &B2bua::OnResponseThunk, reinterpret_cast<nta_outgoing_magic_t*>(this),
      URL_STRING_MAKE(peer.route.c_str()), msg,
      TAG_IF(stack_.has_vip_tports(), TPTAG_IDENT(Stack::kVipIdent)), TAG_END());
  if (orq == nullptr) return nullptr;  // nta destroyed msg
  auto p = std::make_unique<Pending>();
  p->call = call ? call->id : 0;
  p->purpose = purpose;
  p->branch = branch;
  pending_[orq] = std::move(p);
  return orq;
}

void B2bua::SendAck(Peer& peer, uint32_t cseq, const std::string& body) {
  msg_t* msg = nta_msg_create(stack_.agent(), 0);
  if (msg == nullptr) return;
  sip_t* sip = sip_object(msg);
  std::string request = fmt::format("ACK {} SIP/2.0", peer.target);
  std::string from = fmt::format("{};tag={}", peer.local_uri, peer.local_tag);
  std::string to = fmt::format("{};tag={}", peer.remote_uri, peer.remote_tag);
  std::string cseq_text = fmt::format("{} ACK", cseq);
  std::string route = RouteHeader(peer);
  if (sip_add_tl(msg, sip, SIPTAG_REQUEST_STR(request.c_str()), SIPTAG_FROM_STR(from.c_str()),
                 SIPTAG_TO_STR(to.c_str()), SIPTAG_CALL_ID_STR(peer.call_id.c_str()),
                 SIPTAG_CSEQ_STR(cseq_text.c_str()), SIPTAG_MAX_FORWARDS_STR("70"),
                 TAG_IF(!route.empty(), SIPTAG_ROUTE_STR(route.c_str())),
                 TAG_IF(!body.empty(), SIPTAG_CONTENT_TYPE_STR("application/sdp")),
                 TAG_IF(!body.empty(), SIPTAG_PAYLOAD_STR(body.c_str())), TAG_END()) < 0) {
    msg_destroy(msg);
    return;
  }
  nta_outgoing_t* orq = nta_outgoing_mcreate(stack_.agent(), nullptr, nullptr,
                                             URL_STRING_MAKE(peer.route.c_str()), msg, TAG_END());
  if (orq) nta_outgoing_destroy(orq);
}

void B2bua::CancelBranches(Call& call, std::optional<size_t> except) {
  for (size_t i = 0; i < call.branches.size(); ++i) {
    Branch& br = call.branches[i];
    if (except && *except == i) continue;
    if (br.orq == nullptr || br.final) continue;
    // nta sends the CANCEL and, the INVITE transaction being ours no more, absorbs the 487.
    nta_outgoing_cancel(br.orq);
    pending_.erase(br.orq);
    nta_outgoing_destroy(br.orq);
    br.orq = nullptr;
    br.final = true;
  }
}

void B2bua::ReplyA(Call& call, int status, const char* phrase, const std::string& sdp) {
  if (call.a_irq == nullptr || call.a_final) return;
  std::string contact = Contact(call.a);
  // RFC 4028 §9: the 2xx carries the negotiated Session-Expires.
  const std::string& se = call.a_timer.session_expires;
  bool timer = status >= 200 && status < 300 && !se.empty();
  nta_incoming_treply(call.a_irq, status, phrase, SIPTAG_CONTACT_STR(contact.c_str()),
                      TAG_IF(timer, SIPTAG_SESSION_EXPIRES_STR(se.c_str())),
                      TAG_IF(timer && call.a_timer.require, SIPTAG_REQUIRE_STR("timer")),
                      TAG_IF(!sdp.empty(), SIPTAG_CONTENT_TYPE_STR("application/sdp")),
                      TAG_IF(!sdp.empty(), SIPTAG_PAYLOAD_STR(sdp.c_str())), TAG_END());
  if (status >= 200) {
    call.a_final = true;
    call.ack_deadline_ms = NowUnixMs() + kAckWaitMs;
  }
}

// --- the end of a call ---

void B2bua::End(Call& call, int status, const char* phrase, const std::string& cdr_status,
                const std::string& cause, const char* side) {
  int64_t now = NowUnixMs();
  bool bye_a =
      (call.state == Call::State::kTalking || call.a_answered) && strcmp(side, "caller") != 0;
  bool bye_b = call.winner.has_value() && strcmp(side, "callee") != 0;
  if (call.a_irq) {
    if (!call.a_final && status >= 300) ReplyA(call, status, phrase, "");
    nta_incoming_destroy(call.a_irq);
    call.a_irq = nullptr;
  }
  if (call.re_irq) {
    nta_incoming_treply(call.re_irq, SIP_487_REQUEST_TERMINATED, TAG_END());
    nta_incoming_destroy(call.re_irq);
    call.re_irq = nullptr;
  }
  if (call.re_orq) {
    pending_.erase(call.re_orq);
    nta_outgoing_destroy(call.re_orq);
  }
  for (Branch& br : call.branches) {
    if (br.orq == nullptr) continue;
    pending_.erase(br.orq);
    nta_outgoing_destroy(br.orq);
    br.orq = nullptr;
  }
  if (bye_a) Send(nullptr, Purpose::kBye, "BYE", call.a, "");
  if (bye_b) Send(nullptr, Purpose::kBye, "BYE", call.b, "");
  call.prompt.reset();  // a PIN prompt's thread stops before its relay goes
  call.media.reset();   // releases the relay's ports

  store::WriteSet writes;
  if (call.answer_ms || call.ringing_stored) store::ActiveCallRepo::Delete(call.id, writes);
  store::Cdr cdr;
  cdr.id = call.id;
  cdr.start_unix_ms = call.start_ms;
  cdr.answer_unix_ms = call.answer_ms;
  cdr.end_unix_ms = now;
  cdr.caller = call.caller;
  cdr.caller_name = call.caller_name;
  cdr.callee = call.dialled;
  cdr.final_callee = call.callee;
  cdr.duration_seconds = static_cast<uint32_t>((now - call.start_ms) / 1000);
  cdr.billable_seconds = call.answer_ms ? static_cast<uint32_t>((now - call.answer_ms) / 1000) : 0;
  cdr.type = call.type;
  cdr.trunk = call.trunk;
  cdr.status = cdr_status;
  cdr.cause = cause;
  cdr.hangup_side = side;
  cdr.pin = call.pin;
  store::CdrRepo::Append(cdr, writes);
  writer_.Submit(std::move(writes), store::Durability::kAsync, nullptr);
  PBX_LOG(kInfo, "calls", "call {} ended: {} ({}), {} s billable", call.id, cdr.status, cause,
          cdr.billable_seconds);

  by_call_id_.erase(call.a.call_id);
  by_call_id_.erase(call.b.call_id);
  calls_.erase(call.id);  // `call` is gone from here on
}

// --- calls through trunks ---

std::optional<size_t> B2bua::NextTrunk(const std::vector<std::string>& trunks, size_t from,
                                       uint64_t self) const {
  for (size_t i = from; i < trunks.size(); ++i) {
    const store::Trunk* t = trunks_.Find(trunks[i]);
    if (t == nullptr) continue;
    size_t in_use = std::count_if(calls_.begin(), calls_.end(), [&](const auto& kv) {
      return kv.first != self && kv.second->trunk == t->name;
    });
    if (t->max_calls == 0 || in_use < t->max_calls) return i;
    PBX_LOG(kInfo, "calls", "trunk {} is full ({} calls)", t->name, in_use);
  }
  return std::nullopt;
}

bool B2bua::SendTrunkInvite(Call& call, const std::string& sdp, const std::string& auth_header) {
  const store::Trunk* t = trunks_.Find(call.route_trunks[call.trunk_index]);
  if (t == nullptr) return false;
  call.trunk = t->name;
  std::string cli = OutboundCallerId(call.route_cli, *t, call.caller_cli, call.caller);
  TrunkTarget target = OutboundTarget(*t, call.callee, cli, call.caller_name);
  call.b.local_uri = target.from;
  call.b.remote_uri = target.to;
  // One Call-ID for every attempt; each new INVITE (credentials, next trunk) is CSeq + 1.
  if (!call.branches.empty()) ++call.b.local_cseq;
  Branch br;
  br.target = target.request_uri;
  br.route = target.route;
  call.branches.push_back(br);
  size_t i = call.branches.size() - 1;
  Peer p = call.b;
  p.target = br.target;
  p.route = br.route;
  call.b_offer = sdp;
  call.trunk_responded = false;
  uint32_t wait = t->no_answer_timeout ? t->no_answer_timeout : call.ring_timeout;
  call.trunk_deadline_ms = NowUnixMs() + int64_t{wait} * 1000;
  call.branches[i].orq =
      Send(&call, Purpose::kBranch, "INVITE", p, sdp, call.b.local_cseq, i, auth_header);
  if (call.branches[i].orq == nullptr) {
    call.branches[i].final = true;
    call.branches[i].status = 503;
    return false;
  }
  return true;
}

bool B2bua::RetryTrunk(Call& call, int status, const sip_t* sip) {
  const store::Trunk* t = trunks_.Find(call.trunk);
  if (t && !call.auth_tried) {
    if (std::optional<CarrierChallenge> c = ParseCarrierChallenge(status, sip)) {
      call.challenge = *c;
      call.auth_tried = true;
      std::string uri = call.branches.back().target;
      std::string header =
          fmt::format("{}: {}", c->proxy ? "Proxy-Authorization" : "Authorization",
                      AnswerCarrierChallenge(call.challenge, *t, "INVITE", uri, rng));
      return SendTrunkInvite(call, call.b_offer, header);
    }
  }
  if (!routing::ShouldFailover(status)) return false;
  for (std::optional<size_t> next = NextTrunk(call.route_trunks, call.trunk_index + 1, call.id);
       next; next = NextTrunk(call.route_trunks, *next + 1, call.id)) {
    const store::Trunk* nt = trunks_.Find(call.route_trunks[*next]);
    Result<std::string> offer =
        call.media->Offer(Side::kA, call.offer, TrunkCodecs(call.caller_codecs, nt->codecs));
    if (!offer.ok()) continue;  // no codec in common with this trunk
    PBX_LOG(kInfo, "calls", "call {}: trunk {} answered {}, trying {}", call.id, call.trunk, status,
            nt->name);
    call.trunk_index = *next;
    call.auth_tried = false;
    if (SendTrunkInvite(call, *offer, "")) return true;
  }
  return false;
}

void B2bua::StoreRuntime(const Call& call) { PutRuntime(RuntimeRecord(call)); }

void B2bua::PutRuntime(const store::ActiveCall& r) {
  store::WriteSet writes;
  store::ActiveCallRepo::Put(r, writes);
  // Replicated, so a new active finds the call; the phones do not wait for it.
  writer_.Submit(std::move(writes), store::Durability::kReplicated, nullptr);
}

store::ActiveCall B2bua::RuntimeRecord(const Call& call) const {
  store::ActiveCall r;
  r.id = call.id;
  r.caller = call.caller;
  r.caller_name = call.caller_name;
  r.callee = call.callee;
  r.start_unix = call.start_ms / 1000;
  r.answer_unix = call.answer_ms / 1000;
  r.a = call.a;
  r.b = call.b;
  if (call.media) {
    r.a_port = call.media->ports().a_port;
    r.b_port = call.media->ports().b_port;
  }
  r.offer = call.offer;
  r.answer = call.answer;
  r.offer_from_b = call.offer_from_b;
  r.start_unix_ms = call.start_ms;
  r.answer_unix_ms = call.answer_ms;
  r.dialled = call.dialled;
  r.type = call.type;
  r.trunk = call.trunk;
  r.max_duration = call.max_duration;
  r.pin = call.pin;
  return r;
}

void B2bua::Release() {
  for (auto& [orq, p] : pending_) nta_outgoing_destroy(orq);
  pending_.clear();
  for (auto& [id, c] : calls_) {
    if (c->a_irq) nta_incoming_destroy(c->a_irq);
    if (c->re_irq) nta_incoming_destroy(c->re_irq);
  }
  if (!calls_.empty()) PBX_LOG(kInfo, "calls", "let go of {} calls for the peer", calls_.size());
  calls_.clear();  // each CallMedia releases its ports
  by_call_id_.clear();
}

Status B2bua::Adopt(const store::ActiveCall& r) {
  PBX_TRY(CheckActiveCall(r));
  for (const std::string* id : {&r.a.call_id, &r.b.call_id}) {
    auto it = by_call_id_.find(*id);
    if (it != by_call_id_.end() && it->second != r.id) {
      return Status::InvalidArgument(fmt::format("Call-ID {} belongs to call {}", *id, it->second));
    }
  }
  // A stale copy (this node served the call before) gives its ports back first.
  if (auto it = calls_.find(r.id); it != calls_.end()) it->second->media.reset();
  Result<RestoredMedia> m = RestoreMedia(relay_, options_.address, r);
  if (!m.ok()) return m.status();
  auto call = std::make_unique<Call>();
  call->id = r.id;
  call->state = Call::State::kTalking;
  call->caller = r.caller;
  call->caller_name = r.caller_name;
  call->dialled = r.dialled.empty() ? r.callee : r.dialled;
  call->callee = r.callee;
  call->start_ms = r.start_unix_ms ? r.start_unix_ms : r.start_unix * 1000;
  call->answer_ms = r.answer_unix_ms ? r.answer_unix_ms : r.answer_unix * 1000;
  call->adopted_ms = NowUnixMs();
  static_cast<store::CallDialog&>(call->a) = r.a;
  static_cast<store::CallDialog&>(call->b) = r.b;
  call->a_final = true;
  call->winner = 0;
  call->media.emplace(std::move(m->media));
  call->sdp_to_a = std::move(m->sdp_to_a);
  call->sdp_to_b = std::move(m->sdp_to_b);
  // Today's settings, the call's own trunk and limit, and each leg's session timer restarted
  // from the adoption (a full interval for the phones to refresh in).
  const store::SystemSettings& settings = registrar_.settings();
  call->max_duration = r.max_duration;
  call->no_rtp_timeout = settings.no_rtp_timeout;
  call->timers = {settings.session_timers, settings.session_expires, settings.session_min_se};
  call->a_schedule.Start({r.a.session_interval, r.a.session_pbx_refreshes}, NowMs());
  call->b_schedule.Start({r.b.session_interval, r.b.session_pbx_refreshes}, NowMs());
  if (!r.type.empty()) call->type = r.type;
  call->trunk = r.trunk;
  call->offer = r.offer;
  call->answer = r.answer;
  call->offer_from_b = r.offer_from_b;
  call->pin = r.pin;
  by_call_id_[r.a.call_id] = r.id;
  by_call_id_[r.b.call_id] = r.id;
  next_id_ = std::max(next_id_, r.id + 1);
  PBX_LOG(kInfo, "calls", "call {}: {} -> {} adopted on ports {}/{}", r.id, r.caller, r.callee,
          r.a_port, r.b_port);
  calls_[r.id] = std::move(call);
  return Status::Ok();
}

// --- ringing calls across a failover (recovery.h) ---

int B2bua::OnResponseThunk(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip) {
  reinterpret_cast<B2bua*>(magic)->OnResponse(orq, sip);
  return 0;
}

void B2bua::BindCallerInvite(nta_incoming_t* irq) {
  nta_incoming_bind(
      irq,
      [](nta_incoming_magic_t* magic, nta_incoming_t* tx, const sip_t* req) -> int {
        reinterpret_cast<B2bua*>(magic)->OnCancelOrAck(tx, req);
        return 0;
      },
      reinterpret_cast<nta_incoming_magic_t*>(this));
}

void B2bua::StoreRinging(Call& call) {
  // Pair members only (a peer may take over: the VIP has transports of its own), and calls
  // to extensions only (a trunk leg's state, route and challenge, is not in the record).
  if (!stack_.has_vip_tports() || call.via_trunk || call.a_irq == nullptr || call.a_final ||
      !call.media || call.ringing_stored == call.branches.size()) {
    return;
  }
  store::ActiveCall r = RuntimeRecord(call);
  msg_t* invite = nta_incoming_getrequest(call.a_irq);
  r.caller_invite = MessageText(invite);
  if (invite) msg_destroy(invite);
  for (const Branch& br : call.branches) {
    if (br.final || br.orq == nullptr) continue;
    msg_t* sent = nta_outgoing_getrequest(br.orq);
    r.ringing.push_back({MessageText(sent), br.target, br.route});
    if (sent) msg_destroy(sent);
  }
  r.ring_deadline_unix_ms = call.stage_deadline_ms;
  r.rung_extension = call.rung_ext;
  if (Status s = CheckRingingCall(r); !s.ok()) {
    PBX_LOG(kWarn, "calls", "call {}: cannot record the ringing call: {}", call.id, s.ToString());
    return;
  }
  PutRuntime(r);
  call.ringing_stored = call.branches.size();
}

Status B2bua::AdoptRinging(const store::ActiveCall& r) {
  PBX_TRY(CheckRingingCall(r));
  for (const std::string* id : {&r.a.call_id, &r.b.call_id}) {
    if (by_call_id_.count(*id)) {
      return Status::InvalidArgument(fmt::format("Call-ID {} is in use", *id));
    }
  }
  PBX_ASSIGN_OR_RETURN(media::CallMedia media,
                       media::CallMedia::CreateAt(relay_, options_.address, r.a_port, r.b_port));
  const Registrar::ExtInfo* caller_ext = registrar_.FindExtension(r.caller);
  std::vector<std::string> codecs = caller_ext ? caller_ext->codecs : std::vector<std::string>{};
  std::vector<media::Codec> allowed = AllowedCodecs(codecs);
  // The relay learns A's offer again; B has the anchored offer already (same ports).
  if (!r.offer.empty()) PBX_TRY(media.Offer(Side::kA, r.offer, allowed).status());
  PBX_ASSIGN_OR_RETURN(nta_incoming_t * irq,
                       RecreateCallerInvite(stack_, r.caller_invite, r.a.local_tag));
  BindCallerInvite(irq);

  const store::SystemSettings& settings = registrar_.settings();
  auto owned = std::make_unique<Call>();
  Call& call = *owned;
  call.id = r.id;
  call.caller = r.caller;
  call.caller_name = r.caller_name;
  call.dialled = r.dialled.empty() ? r.callee : r.dialled;
  call.callee = r.callee;
  call.start_ms = r.start_unix_ms ? r.start_unix_ms : r.start_unix * 1000;
  call.timers = {settings.session_timers, settings.session_expires, settings.session_min_se};
  msg_t* request = nta_incoming_getrequest(irq);
  call.a_timer = NegotiateUas(call.timers, ReadTimer(request ? sip_object(request) : nullptr));
  if (request) msg_destroy(request);
  call.ring_timeout = settings.ring_timeout;
  call.max_duration = r.max_duration;
  call.no_rtp_timeout = settings.no_rtp_timeout;
  if (!r.type.empty()) call.type = r.type;
  call.trunk = r.trunk;
  call.media.emplace(std::move(media));
  call.offer = r.offer;
  call.late_offer = r.offer.empty();
  call.allowed = std::move(allowed);
  call.caller_codecs = std::move(codecs);
  call.a_irq = irq;
  static_cast<store::CallDialog&>(call.a) = r.a;
  static_cast<store::CallDialog&>(call.b) = r.b;
  call.b_from = r.b.local_uri;
  call.rung_ext = r.rung_extension;
  call.visited = {r.callee};
  call.stage_deadline_ms = r.ring_deadline_unix_ms ? r.ring_deadline_unix_ms
                                                   : NowUnixMs() + settings.ring_timeout * 1000;
  call.ringing_stored = r.ringing.size();
  calls_[call.id] = std::move(owned);
  by_call_id_[r.a.call_id] = r.id;
  by_call_id_[r.b.call_id] = r.id;
  next_id_ = std::max(next_id_, r.id + 1);
  size_t sent = 0;
  for (const store::ActiveCall::Branch& stored : r.ringing) {
    Branch br;
    br.target = stored.target;
    br.route = stored.route;
    Result<ResentInvite> again =
        ResendCalleeInvite(stack_, stored.invite, stored.route, &B2bua::OnResponseThunk,
                           reinterpret_cast<nta_outgoing_magic_t*>(this));
    if (again.ok()) {
      br.orq = again->orq;
      br.cseq = again->cseq;
      call.b.local_cseq = std::max(call.b.local_cseq, again->cseq);
      pending_[br.orq] =
          std::make_unique<Pending>(Pending{call.id, Purpose::kBranch, call.branches.size()});
      ++sent;
    } else {
      PBX_LOG(kWarn, "calls", "call {}: {}", call.id, again.status().ToString());
      br.final = true;
      br.status = 503;
    }
    call.branches.push_back(std::move(br));
  }
  PBX_LOG(kInfo, "calls",
          "call {}: {} -> {} adopted ringing, {} of {} INVITE(s) to the callee resent", call.id,
          call.caller, call.callee, sent, r.ringing.size());
  // Nothing reaches the callee: the caller hears so, with the tags of its dialog.
  if (sent == 0)
    End(call, SIP_480_TEMPORARILY_UNAVAILABLE, "failed", "callee lost in failover", "pbx");
  return Status::Ok();
}

void B2bua::Tick() {
  int64_t now = NowUnixMs();
  if (options_.serving && !options_.serving()) {
    if (!calls_.empty()) Release();  // demoted: the peer adopts them
    return;
  }
  std::vector<uint64_t> ids;
  for (const auto& [id, c] : calls_) ids.push_back(id);
  for (uint64_t id : ids) {
    auto it = calls_.find(id);
    if (it == calls_.end()) continue;
    Call& call = *it->second;
    if (call.a_irq && call.a_final && now >= call.ack_deadline_ms) {
      nta_incoming_destroy(call.a_irq);  // no ACK: the phone is gone; BYE decides
      call.a_irq = nullptr;
      if (call.b_ack_cseq) {  // a late offer never answered
        AnswerLateOffer(call, "");
        continue;
      }
    }
    if (call.feature) {  // the tone has played: the PBX hangs up
      if (now >= call.feature_end_ms) {
        End(call, 0, nullptr, call.feature_ok ? "answered" : "failed", call.feature_cause, "pbx");
      }
      continue;
    }
    if (call.pin_entry && call.pin_entry->active()) {  // the timeouts of PIN entry
      ApplyPinStep(call, call.pin_entry->OnTick(now));
      continue;
    }
    if (call.state == Call::State::kRinging && call.via_trunk) {
      // The trunk's no-answer timer: a silent trunk yields to the next one; a ringing
      // callee that does not answer ends the call.
      if (now < call.trunk_deadline_ms) continue;
      bool silent = !call.trunk_responded;
      CancelBranches(call, std::nullopt);
      if (silent && RetryTrunk(call, 408, nullptr)) continue;
      PBX_LOG(kInfo, "calls", "call {}: no answer from trunk {}", call.id, call.trunk);
      if (Advance(call, false)) continue;
      End(call, SIP_480_TEMPORARILY_UNAVAILABLE, "no_answer",
          silent ? "no answer from the trunks" : "no answer", "pbx");
      continue;
    }
    if (call.state == Call::State::kRinging) {
      if (now >= call.stage_deadline_ms) {
        PBX_LOG(kInfo, "calls", "call {}: no answer from {}", call.id, call.callee);
        CancelBranches(call, std::nullopt);
        if (Advance(call, false)) continue;
        End(call, SIP_480_TEMPORARILY_UNAVAILABLE, "no_answer", "no answer", "pbx");
      }
      continue;
    }
    if (!TickSessionTimers(call)) continue;
    if (call.max_duration && now - call.answer_ms >= int64_t{call.max_duration} * 1000) {
      End(call, 0, nullptr, "answered", "maximum duration", "pbx");
      continue;
    }
    if (call.adopted_ms && !call.adoption_checked && call.media &&
        now - call.adopted_ms >= kAdoptedSilenceMs) {
      // An adopted call whose phones hung up while no node served (their BYE went
      // nowhere) would hold both extensions for hours; a live one, unless on hold, sends.
      Result<media::RelayStats> st = call.media->Stats();
      bool hold = call.answer.find("a=sendonly") != std::string::npos ||
                  call.answer.find("a=inactive") != std::string::npos ||
                  call.answer.find("a=recvonly") != std::string::npos;
      if (st.ok() && !hold && !st->a.last_packet && !st->b.last_packet) {
        End(call, 0, nullptr, "answered", "no RTP after failover", "pbx");
        continue;
      }
      call.adoption_checked = true;
    }
    if (call.no_rtp_timeout && call.media) {
      Result<media::RelayStats> st = call.media->Stats();
      auto limit = std::chrono::seconds(call.no_rtp_timeout);
      auto since = std::chrono::steady_clock::now() - limit;
      auto last = [&](const media::LegCounters& l) { return l.last_packet.value_or(since); };
      int64_t since_ms = std::max(call.answer_ms, call.adopted_ms);  // a new relay's counters
      if (st.ok() && now - since_ms >= int64_t{call.no_rtp_timeout} * 1000 &&
          last(st->a) <= since && last(st->b) <= since) {
        End(call, 0, nullptr, "answered", "no RTP", "pbx");
      }
    }
  }
}

// --- RFC 4028 session timers (sip/calls/session_timer.h) ---

// An UPDATE without SDP refreshes its dialog (one with SDP would be an offer: not handled,
// phones re-INVITE for that).
void B2bua::OnUpdate(nta_incoming_t* irq, const sip_t* sip) {
  Side side;
  Call* call = sip->sip_call_id ? FindByCallId(sip->sip_call_id->i_id, &side) : nullptr;
  if (call == nullptr || call->state != Call::State::kTalking || !sip->sip_cseq) {
    nta_incoming_treply(irq, SIP_481_NO_TRANSACTION, TAG_END());
    nta_incoming_destroy(irq);
    return;
  }
  if (!Body(sip).empty()) {
    nta_incoming_treply(irq, SIP_488_NOT_ACCEPTABLE, TAG_END());
    nta_incoming_destroy(irq);
    return;
  }
  Peer& peer = side == Side::kA ? call->a : call->b;
  peer.remote_cseq = sip->sip_cseq->cs_seq;
  (side == Side::kA ? call->a_schedule : call->b_schedule).Refreshed(NowMs());
  std::string se = peer.session_interval
                       ? SessionExpiresText({peer.session_interval, peer.session_pbx_refreshes},
                                            /*pbx_is_uac=*/false)
                       : "";
  std::string contact = Contact(peer);
  nta_incoming_treply(irq, SIP_200_OK, SIPTAG_CONTACT_STR(contact.c_str()),
                      TAG_IF(!se.empty(), SIPTAG_SESSION_EXPIRES_STR(se.c_str())),
                      TAG_IF(!se.empty(), SIPTAG_REQUIRE_STR("timer")), TAG_END());
  nta_incoming_destroy(irq);
}

// The PBX refreshes with a re-INVITE carrying the SDP it last sent to that side, unchanged
// (every phone takes a re-INVITE; UPDATE is optional in RFC 3311). The answer changes nothing.
void B2bua::Refresh(Call& call, Side side) {
  // A re-INVITE in progress refreshes both sides when it succeeds, and ours would glare.
  if (call.re_irq || call.re_orq) return;
  Peer& peer = side == Side::kA ? call.a : call.b;
  const std::string& sdp = side == Side::kA ? call.sdp_to_a : call.sdp_to_b;
  PBX_LOG(kDebug, "calls", "call {}: session refresh of the {}", call.id,
          side == Side::kA ? "caller" : "callee");
  Send(&call, Purpose::kRefresh, "INVITE", peer, sdp, std::nullopt, side == Side::kA ? 0 : 1,
       RefreshHeaders(peer));
}

void B2bua::OnRefreshResponse(Call& call, Side side, int status, const sip_t* sip) {
  Peer& peer = side == Side::kA ? call.a : call.b;
  if (status < 300) {
    SendAck(peer, sip && sip->sip_cseq ? sip->sip_cseq->cs_seq : peer.local_cseq);
    if (sip && sip->sip_contact) peer.target = UrlText(sip->sip_contact->m_url);
    (side == Side::kA ? call.a_schedule : call.b_schedule).Refreshed(NowMs());
    return;
  }
  // 408 and 481: the dialog is gone (RFC 5057); anything else waits for the expiry.
  if (status == 408 || status == 481) {
    End(call, 0, nullptr, "answered", "session refresh failed", "pbx");
  }
}

bool B2bua::TickSessionTimers(Call& call) {
  int64_t now = NowMs();
  for (Side side : {Side::kA, Side::kB}) {
    SessionSchedule& schedule = side == Side::kA ? call.a_schedule : call.b_schedule;
    SessionSchedule::Action action = schedule.Poll(now);
    if (action == SessionSchedule::Action::kRefresh) Refresh(call, side);
    if (action == SessionSchedule::Action::kExpire) {
      PBX_LOG(kInfo, "calls", "call {}: no session refresh from the {}", call.id,
              side == Side::kA ? "caller" : "callee");
      End(call, 0, nullptr, "answered", "session timer expired", "pbx");
      return false;
    }
  }
  return true;
}

}  // namespace pbx::sip
