#include "sip/calls/b2bua.h"

#include <strings.h>

#include <algorithm>
#include <chrono>
#include <random>

#include <fmt/format.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/url.h>

#include "media/sdp/sdp.h"
#include "node/core/log.h"
#include "sip/calls/dial.h"
#include "sip/calls/recovery.h"

namespace pbx::sip {
namespace {

using media::Side;

constexpr su_duration_t kTickMs = 1000;
constexpr int64_t kAckWaitMs = 32000;  // RFC 3261 timer H: give up on A's ACK
constexpr size_t kMaxUri = 1024;
constexpr int64_t kAdoptedSilenceMs = 20000;  // an adopted call with no RTP at all: ended

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

// Quotes a display name for a From header.
std::string Quoted(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') out += '\\';
    if (c != '\r' && c != '\n') out += c;
  }
  return out + "\"";
}

thread_local std::mt19937_64 rng{std::random_device{}()};

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
      options_(std::move(options)) {}

B2bua::~B2bua() {
  // Transactions were freed with the agent; only our contexts remain.
  pending_.clear();
  calls_.clear();
}

Status B2bua::Init() {
  auto bind = [this](sip_method_t m, void (B2bua::*fn)(nta_incoming_t*, const sip_t*)) {
    stack_.SetHandler(m, [this, fn](nta_incoming_t* irq, const sip_t* sip, const Source&) {
      (this->*fn)(irq, sip);
    });
  };
  stack_.SetHandler(sip_method_invite, [this](nta_incoming_t* irq, const sip_t* sip,
                                              const Source& src) { OnInvite(irq, sip, src); });
  bind(sip_method_bye, &B2bua::OnBye);
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
  while (end_calls && !calls_.empty()) {
    Call& c = *calls_.begin()->second;
    End(c, SIP_503_SERVICE_UNAVAILABLE, "failed", "shutdown", "pbx");
  }
  Release();
  if (timer_) su_timer_destroy(timer_);
  timer_ = nullptr;
}

std::string B2bua::Contact() const {
  bool v6 = options_.address.find(':') != std::string::npos;
  return fmt::format("<sip:pbx@{}{}{}:{}>", v6 ? "[" : "", options_.address, v6 ? "]" : "",
                     options_.sip_port);
}

std::vector<CallSummary> B2bua::List() const {
  std::vector<CallSummary> out;
  for (const auto& [id, c] : calls_) {
    CallSummary s;
    s.id = id;
    s.caller = c->caller;
    s.caller_name = c->caller_name;
    s.callee = c->callee;
    s.state = c->state == Call::State::kRinging ? "ringing" : "talking";
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
  if (!registrar_.Authenticate(irq, sip, src, caller, "INVITE")) return;
  nta_incoming_treply(irq, SIP_100_TRYING, TAG_END());

  std::string body = Body(sip);
  if (body.empty()) return reply(488, "Offer Required");  // late offer is not supported
  if (!media::SessionDescription::Parse(body).ok()) return reply(400, "Bad SDP");
  const Registrar::ExtInfo* caller_ext = registrar_.FindExtension(caller);
  std::string dialled = sip->sip_request->rq_url->url_user;
  // A call that was placed but could not be set up: the caller hears why, and it is logged.
  auto refuse = [&](int status, const char* phrase, const char* cdr_status, const char* cause,
                    const std::string& callee) {
    store::Cdr cdr;
    cdr.id = next_id_++;
    cdr.start_unix_ms = cdr.end_unix_ms = NowUnixMs();
    cdr.caller = caller;
    cdr.caller_name = caller_ext->name;
    cdr.callee = dialled;
    cdr.final_callee = callee;
    cdr.status = cdr_status;
    cdr.cause = cause;
    cdr.hangup_side = "pbx";
    store::WriteSet writes;
    store::CdrRepo::Append(cdr, writes);
    writer_.Submit(std::move(writes), store::Durability::kAsync, nullptr);
    reply(status, phrase);
  };
  DialTarget target = ResolveDial(
      dialled, [this](const std::string& n) { return registrar_.FindExtension(n) != nullptr; });
  if (target.kind != DialTarget::Kind::kExtension) {
    return refuse(SIP_404_NOT_FOUND, "failed", "no such number", "");
  }
  std::vector<store::Registration> contacts = registrar_.Contacts(target.number);
  if (contacts.empty()) {
    return refuse(SIP_480_TEMPORARILY_UNAVAILABLE, "failed", "not registered", target.number);
  }
  const Registrar::ExtInfo* callee_ext = registrar_.FindExtension(target.number);
  bool busy = std::any_of(calls_.begin(), calls_.end(), [&](const auto& kv) {
    return kv.second->callee == target.number || kv.second->caller == target.number;
  });
  if (busy && !callee_ext->call_waiting) {
    return refuse(SIP_486_BUSY_HERE, "busy", "in a call, call waiting off", target.number);
  }

  Result<media::CallMedia> media = media::CallMedia::Create(relay_, options_.address);
  if (!media.ok()) {
    PBX_LOG(kWarn, "calls", "no relay for a call from {}: {}", caller, media.status().message());
    return refuse(SIP_503_SERVICE_UNAVAILABLE, "failed", "no RTP port", target.number);
  }
  std::vector<media::Codec> allowed = AllowedCodecs(caller_ext->codecs);
  Result<std::string> to_b = media->Offer(Side::kA, body, allowed);
  if (!to_b.ok()) {
    PBX_LOG(kInfo, "calls", "offer from {} refused: {}", caller, to_b.status().message());
    return refuse(SIP_488_NOT_ACCEPTABLE, "failed", "no common codec", target.number);
  }

  auto owned = std::make_unique<Call>();
  Call& call = *owned;
  call.id = next_id_++;
  call.caller = caller;
  call.caller_name = caller_ext->name;
  call.dialled = dialled;
  call.callee = target.number;
  call.start_ms = NowUnixMs();
  call.media.emplace(std::move(*media));
  call.offer = body;
  call.a_irq = irq;
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
  call.a.remote_cseq = sip->sip_cseq->cs_seq;
  call.a.local_cseq = 0;
  // Side B: ours, one Call-ID for every branch.
  call.b.call_id = RandomHex(rng) + "@pbx";
  call.b.local_tag = RandomHex(rng);
  std::string name = call.caller_name.empty() ? caller : call.caller_name;
  bool v6 = options_.address.find(':') != std::string::npos;
  std::string host = v6 ? "[" + options_.address + "]" : options_.address;
  call.b.local_uri = fmt::format("{} <sip:{}@{}>", Quoted(name), caller, host);
  call.b.remote_uri = fmt::format("<sip:{}@{}>", target.number, host);
  call.b.local_cseq = 1;
  calls_[call.id] = std::move(owned);
  by_call_id_[call.a.call_id] = call.id;
  by_call_id_[call.b.call_id] = call.id;
  // CANCEL (and the ACK) of this INVITE reach us through the transaction.
  nta_incoming_bind(
      irq,
      [](nta_incoming_magic_t* magic, nta_incoming_t* tx, const sip_t* req) -> int {
        reinterpret_cast<B2bua*>(magic)->OnCancelOrAck(tx, req);
        return 0;
      },
      reinterpret_cast<nta_incoming_magic_t*>(this));

  PBX_LOG(kInfo, "calls", "call {}: {} ({}) -> {}: ringing {} contact(s)", call.id, caller,
          call.caller_name, target.number, contacts.size());
  for (const store::Registration& r : contacts) {
    Branch br;
    br.target = r.contact;
    br.route = RouteTo(r.received_host, static_cast<uint16_t>(r.received_port), r.transport);
    call.branches.push_back(std::move(br));
  }
  for (size_t i = 0; i < call.branches.size(); ++i) {
    Peer p = call.b;
    p.target = call.branches[i].target;
    p.route = call.branches[i].route;
    call.branches[i].orq = Send(&call, Purpose::kBranch, "INVITE", p, *to_b, 1, i);
    if (call.branches[i].orq == nullptr) {
      call.branches[i].final = true;
      call.branches[i].status = 503;
    }
  }
  if (std::all_of(call.branches.begin(), call.branches.end(),
                  [](const Branch& b) { return b.final; })) {
    End(call, SIP_480_TEMPORARILY_UNAVAILABLE, "failed", "cannot reach callee", "pbx");
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
  Peer& other = from == Side::kA ? call.b : call.a;
  call.re_orq = Send(&call, Purpose::kReinvite, "INVITE", other, *out);
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
  if (call->state == Call::State::kRinging) {  // A gave up before an answer (BYE, not CANCEL)
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
      stack_.Post([this, call_id, irq] {
        auto it = calls_.find(call_id);
        if (it == calls_.end() || it->second->a_irq != irq) return;
        nta_incoming_destroy(irq);
        it->second->a_irq = nullptr;
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
}

void B2bua::OnBranchResponse(Call& call, size_t index, int status, const sip_t* sip) {
  Branch& br = call.branches[index];
  if (status < 200) {
    if (status == 100 || call.state != Call::State::kRinging || call.a_final) return;
    std::string sdp = Body(sip);
    if (!sdp.empty() && !call.early_sdp) {
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
    return;
  }
  if (status < 300) {
    if (sip && sip->sip_to && sip->sip_to->a_tag) br.remote_tag = sip->sip_to->a_tag;
    Peer dialog = call.b;
    dialog.target = sip && sip->sip_contact ? UrlText(sip->sip_contact->m_url) : br.target;
    dialog.route = br.route;
    dialog.remote_tag = br.remote_tag;
    uint32_t cseq = sip && sip->sip_cseq ? sip->sip_cseq->cs_seq : 1;
    if (call.winner || call.a_final) {
      // A retransmission of the winner's 200 (our ACK was lost) or a late 200 of another
      // branch, which is acknowledged and hung up at once.
      SendAck(dialog, cseq);
      if (!call.winner || *call.winner != index) {
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
    SendAck(call.b, cseq);
    CancelBranches(call, index);
    std::string sdp = Body(sip);
    if (!call.early_sdp) {
      Result<std::string> to_a = sdp.empty() ? Result<std::string>(Status::InvalidArgument("none"))
                                             : call.media->Answer(Side::kB, sdp);
      if (!to_a.ok()) {
        PBX_LOG(kInfo, "calls", "call {}: answer of {} refused: {}", call.id, call.callee,
                to_a.status().message());
        return End(call, SIP_488_NOT_ACCEPTABLE, "failed", "no common codec", "pbx");
      }
      call.a_answer = *to_a;
      call.answer = sdp;
    }
    call.state = Call::State::kTalking;
    call.answer_ms = NowUnixMs();
    ReplyA(call, SIP_200_OK, call.a_answer);
    PBX_LOG(kInfo, "calls", "call {}: {} answered", call.id, call.callee);
    StoreRuntime(call);
    return;
  }
  // A final error from one branch; the call fails once every branch has.
  br.final = true;
  auto it = pending_.find(br.orq);
  if (it != pending_.end()) pending_.erase(it);
  if (br.orq) nta_outgoing_destroy(br.orq);
  br.orq = nullptr;
  br.status = status;
  // 486/600/603 say more about the callee than 408/480/503 of an unreachable phone.
  if (call.best_status == 0 || status == 486 || status == 600 || status == 603) {
    call.best_status = status;
  }
  if (call.winner || !std::all_of(call.branches.begin(), call.branches.end(),
                                  [](const Branch& b) { return b.final; })) {
    return;
  }
  int s = call.best_status;
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
  std::string contact = Contact();
  nta_incoming_treply(irq, SIP_200_OK, SIPTAG_CONTACT_STR(contact.c_str()),
                      SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(back->c_str()),
                      TAG_END());
  // The ACK of this 2xx carries nothing we need; nta absorbs or drops it.
  nta_incoming_destroy(irq);
  StoreRuntime(call);
}

// --- sending ---

nta_outgoing_t* B2bua::Send(Call* call, Purpose purpose, const char* method, Peer& peer,
                            const std::string& body, std::optional<uint32_t> cseq, size_t branch) {
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
  std::string contact = Contact();
  bool invite = strcmp(method, "INVITE") == 0;
  if (sip_add_tl(msg, sip, SIPTAG_REQUEST_STR(request.c_str()), SIPTAG_FROM_STR(from.c_str()),
                 SIPTAG_TO_STR(to.c_str()), SIPTAG_CALL_ID_STR(peer.call_id.c_str()),
                 SIPTAG_CSEQ_STR(cseq_text.c_str()), SIPTAG_MAX_FORWARDS_STR("70"),
                 TAG_IF(invite, SIPTAG_CONTACT_STR(contact.c_str())),
                 TAG_IF(invite, SIPTAG_ALLOW_STR("INVITE, ACK, CANCEL, BYE, OPTIONS")),
                 TAG_IF(!body.empty(), SIPTAG_CONTENT_TYPE_STR("application/sdp")),
                 TAG_IF(!body.empty(), SIPTAG_PAYLOAD_STR(body.c_str())), TAG_END()) < 0) {
    msg_destroy(msg);
    return nullptr;
  }
  auto cb = [](nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* reply) -> int {
    reinterpret_cast<B2bua*>(magic)->OnResponse(orq, reply);
    return 0;
  };
  nta_outgoing_t* orq =
      nta_outgoing_mcreate(stack_.agent(), cb, reinterpret_cast<nta_outgoing_magic_t*>(this),
                           URL_STRING_MAKE(peer.route.c_str()), msg, TAG_END());
  if (orq == nullptr) return nullptr;  // nta destroyed msg
  auto p = std::make_unique<Pending>();
  p->call = call ? call->id : 0;
  p->purpose = purpose;
  p->branch = branch;
  pending_[orq] = std::move(p);
  return orq;
}

void B2bua::SendAck(Peer& peer, uint32_t cseq) {
  msg_t* msg = nta_msg_create(stack_.agent(), 0);
  if (msg == nullptr) return;
  sip_t* sip = sip_object(msg);
  std::string request = fmt::format("ACK {} SIP/2.0", peer.target);
  std::string from = fmt::format("{};tag={}", peer.local_uri, peer.local_tag);
  std::string to = fmt::format("{};tag={}", peer.remote_uri, peer.remote_tag);
  std::string cseq_text = fmt::format("{} ACK", cseq);
  if (sip_add_tl(msg, sip, SIPTAG_REQUEST_STR(request.c_str()), SIPTAG_FROM_STR(from.c_str()),
                 SIPTAG_TO_STR(to.c_str()), SIPTAG_CALL_ID_STR(peer.call_id.c_str()),
                 SIPTAG_CSEQ_STR(cseq_text.c_str()), SIPTAG_MAX_FORWARDS_STR("70"),
                 TAG_END()) < 0) {
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
  std::string contact = Contact();
  nta_incoming_treply(call.a_irq, status, phrase, SIPTAG_CONTACT_STR(contact.c_str()),
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
  bool bye_a = call.state == Call::State::kTalking && strcmp(side, "caller") != 0;
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
  call.media.reset();  // releases the relay's ports

  store::WriteSet writes;
  if (call.answer_ms) store::ActiveCallRepo::Delete(call.id, writes);
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
  cdr.type = "internal";
  cdr.status = cdr_status;
  cdr.cause = cause;
  cdr.hangup_side = side;
  store::CdrRepo::Append(cdr, writes);
  writer_.Submit(std::move(writes), store::Durability::kAsync, nullptr);
  PBX_LOG(kInfo, "calls", "call {} ended: {} ({}), {} s billable", call.id, cdr.status, cause,
          cdr.billable_seconds);

  by_call_id_.erase(call.a.call_id);
  by_call_id_.erase(call.b.call_id);
  calls_.erase(call.id);  // `call` is gone from here on
}

void B2bua::StoreRuntime(const Call& call) {
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
  store::WriteSet writes;
  store::ActiveCallRepo::Put(r, writes);
  // Replicated, so a new active finds the call; the phones do not wait for it.
  writer_.Submit(std::move(writes), store::Durability::kReplicated, nullptr);
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
  Result<media::CallMedia> m = RestoreMedia(relay_, options_.address, r);
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
  call->media.emplace(std::move(*m));
  call->offer = r.offer;
  call->answer = r.answer;
  call->offer_from_b = r.offer_from_b;
  by_call_id_[r.a.call_id] = r.id;
  by_call_id_[r.b.call_id] = r.id;
  next_id_ = std::max(next_id_, r.id + 1);
  PBX_LOG(kInfo, "calls", "call {}: {} -> {} adopted on ports {}/{}", r.id, r.caller, r.callee,
          r.a_port, r.b_port);
  calls_[r.id] = std::move(call);
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
    }
    if (call.state == Call::State::kRinging) {
      if (now - call.start_ms >= int64_t{options_.ring_timeout} * 1000) {
        PBX_LOG(kInfo, "calls", "call {}: no answer from {} in {} s", call.id, call.callee,
                options_.ring_timeout);
        CancelBranches(call, std::nullopt);
        End(call, SIP_480_TEMPORARILY_UNAVAILABLE, "no_answer", "no answer", "pbx");
      }
      continue;
    }
    if (options_.max_duration && now - call.answer_ms >= int64_t{options_.max_duration} * 1000) {
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
    if (options_.no_rtp_timeout && call.media) {
      Result<media::RelayStats> st = call.media->Stats();
      auto limit = std::chrono::seconds(options_.no_rtp_timeout);
      auto since = std::chrono::steady_clock::now() - limit;
      auto last = [&](const media::LegCounters& l) { return l.last_packet.value_or(since); };
      int64_t since_ms = std::max(call.answer_ms, call.adopted_ms);  // a new relay's counters
      if (st.ok() && now - since_ms >= int64_t{options_.no_rtp_timeout} * 1000 &&
          last(st->a) <= since && last(st->b) <= since) {
        End(call, 0, nullptr, "answered", "no RTP", "pbx");
      }
    }
  }
}

}  // namespace pbx::sip
