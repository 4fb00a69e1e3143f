#include "sip/calls/recovery.h"

#include <cctype>

#include <fmt/format.h>
#include <sofia-sip/msg.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_protos.h>
#include <sofia-sip/tport_tag.h>

#include "node/core/log.h"
#include "sip/calls/b2bua.h"

namespace pbx::sip {
namespace {

Status CheckDialog(const char* side, const store::CallDialog& d) {
  const std::pair<const char*, const std::string*> fields[] = {
      {"Call-ID", &d.call_id},     {"local tag", &d.local_tag},   {"remote tag", &d.remote_tag},
      {"local URI", &d.local_uri}, {"remote URI", &d.remote_uri}, {"target", &d.target},
      {"route", &d.route},
  };
  for (const auto& [name, value] : fields) {
    if (value->empty()) return Status::InvalidArgument(fmt::format("{} dialog: no {}", side, name));
  }
  return Status::Ok();
}

// A request parsed from its text; nullptr (and `why`) when it is not a complete one.
msg_t* ParseRequest(const std::string& text, std::string& why) {
  msg_t* msg = msg_make(sip_default_mclass(), 0, text.data(), static_cast<ssize_t>(text.size()));
  sip_t* sip = msg ? sip_object(msg) : nullptr;
  if (sip == nullptr || !sip->sip_request || !sip->sip_via || !sip->sip_cseq || !sip->sip_call_id ||
      !sip->sip_from || !sip->sip_to || sip->sip_error) {
    why = "not a complete request";
    if (msg) msg_destroy(msg);
    return nullptr;
  }
  return msg;
}

}  // namespace

Status CheckRingingCall(const store::ActiveCall& call) {
  const std::pair<const char*, const std::string*> fields[] = {
      {"caller Call-ID", &call.a.call_id},
      {"caller tag", &call.a.remote_tag},
      {"To tag sent to the caller", &call.a.local_tag},
      {"callee Call-ID", &call.b.call_id},
      {"From tag sent to the callee", &call.b.local_tag},
      {"caller INVITE", &call.caller_invite},
  };
  for (const auto& [name, value] : fields) {
    if (value->empty()) return Status::InvalidArgument(fmt::format("ringing call: no {}", name));
  }
  if (call.ringing.empty()) return Status::InvalidArgument("ringing call: no INVITE to the callee");
  for (const store::ActiveCall::Branch& b : call.ringing) {
    if (b.invite.empty() || b.route.empty() || b.target.empty()) {
      return Status::InvalidArgument("ringing call: a branch without INVITE, route or target");
    }
  }
  if (call.a_port == 0 || call.b_port == 0) return Status::InvalidArgument("no relay ports");
  return Status::Ok();
}

std::string MessageText(msg_t* msg) {
  if (msg == nullptr) return {};
  su_home_t home[1] = {SU_HOME_INIT(home)};
  size_t len = 0;
  char* text = msg_as_string(home, msg, nullptr, 0, &len);
  std::string out = text ? std::string(text, len) : std::string();
  su_home_deinit(home);
  return out;
}

Result<nta_incoming_t*> RecreateCallerInvite(Stack& stack, const std::string& invite,
                                             const std::string& to_tag) {
  std::string why;
  msg_t* msg = ParseRequest(invite, why);
  if (msg == nullptr) return Status::InvalidArgument("caller INVITE: " + why);
  sip_t* sip = sip_object(msg);
  if (sip->sip_request->rq_method != sip_method_invite || sip->sip_to->a_tag) {
    msg_destroy(msg);
    return Status::InvalidArgument("caller INVITE: not an initial INVITE");
  }
  const char* via_proto = sip_via_transport(sip->sip_via);
  std::string proto = via_proto ? via_proto : "UDP";
  for (char& c : proto) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  tport_t* tp = stack.VipTport(proto.c_str());
  if (tp == nullptr) {
    msg_destroy(msg);
    return Status::Unavailable("no VIP transport for " + proto);
  }
  // The transaction keeps the message (nta_incoming_create takes it over, as for one
  // received); its responses go by the INVITE's Via.
  nta_incoming_t* irq =
      nta_incoming_create(stack.agent(), nullptr, msg, sip, NTATAG_TPORT(tp), TAG_END());
  if (irq == nullptr) {
    msg_destroy(msg);
    return Status::Internal("nta_incoming_create failed");
  }
  if (nta_incoming_tag(irq, to_tag.c_str()) == nullptr) {
    nta_incoming_destroy(irq);
    return Status::Internal("cannot set the To tag");
  }
  return irq;
}

Result<ResentInvite> ResendCalleeInvite(Stack& stack, const std::string& invite,
                                        const std::string& route, nta_response_f* callback,
                                        nta_outgoing_magic_t* magic) {
  std::string why;
  msg_t* msg = ParseRequest(invite, why);
  if (msg == nullptr) return Status::InvalidArgument("callee INVITE: " + why);
  sip_t* sip = sip_object(msg);
  if (sip->sip_request->rq_method != sip_method_invite || !sip->sip_via->v_branch) {
    msg_destroy(msg);
    return Status::InvalidArgument("callee INVITE: not an INVITE with a Via branch");
  }
  // nta writes the Via again, from the VIP's transport, with the same branch.
  const std::string branch = sip->sip_via->v_branch;
  const uint32_t cseq = sip->sip_cseq->cs_seq;
  while (sip->sip_via) sip_header_remove(msg, sip, reinterpret_cast<sip_header_t*>(sip->sip_via));
  nta_outgoing_t* orq = nta_outgoing_mcreate(
      stack.agent(), callback, magic, URL_STRING_MAKE(route.c_str()), msg,
      NTATAG_BRANCH_KEY(branch.c_str()),
      TAG_IF(stack.has_vip_tports(), TPTAG_IDENT(Stack::kVipIdent)), TAG_END());
  if (orq == nullptr) return Status::Unavailable("cannot send the INVITE to " + route);
  return ResentInvite{orq, cseq};
}

Status CheckActiveCall(const store::ActiveCall& call) {
  PBX_TRY(CheckDialog("caller", call.a));
  PBX_TRY(CheckDialog("callee", call.b));
  if (call.a_port == 0 || call.b_port == 0) return Status::InvalidArgument("no relay ports");
  if (call.offer.empty() || call.answer.empty()) {
    return Status::InvalidArgument("no offer/answer to replay");
  }
  if (call.answer_unix == 0 && call.answer_unix_ms == 0) {
    return Status::InvalidArgument("not answered");
  }
  return Status::Ok();
}

Result<RestoredMedia> RestoreMedia(media::RtpRelay& relay, const std::string& address,
                                   const store::ActiveCall& call) {
  PBX_ASSIGN_OR_RETURN(media::CallMedia m,
                       media::CallMedia::CreateAt(relay, address, call.a_port, call.b_port));
  media::Side offerer = call.offer_from_b ? media::Side::kB : media::Side::kA;
  media::Side answerer = call.offer_from_b ? media::Side::kA : media::Side::kB;
  PBX_ASSIGN_OR_RETURN(std::string to_answerer, m.Offer(offerer, call.offer));
  PBX_ASSIGN_OR_RETURN(std::string to_offerer, m.Answer(answerer, call.answer));
  RestoredMedia out{std::move(m), {}, {}};
  out.sdp_to_a = call.offer_from_b ? std::move(to_answerer) : std::move(to_offerer);
  out.sdp_to_b = call.offer_from_b ? std::move(to_offerer) : std::move(to_answerer);
  return out;
}

// Every call in the runtime table, adopted one by one: a record that cannot be rebuilt is
// logged and left for the operator (pbxctl calls shows what was rebuilt).
size_t B2bua::AdoptStored() {
  Result<std::vector<store::ActiveCall>> stored = store::ActiveCallRepo(store_).List();
  if (!stored.ok()) {
    PBX_LOG(kError, "calls", "cannot read the calls in progress: {}", stored.status().ToString());
    return 0;
  }
  size_t adopted = 0;
  for (const store::ActiveCall& r : *stored) {
    const bool ringing = r.answer_unix == 0 && r.answer_unix_ms == 0;
    if (Status s = ringing ? AdoptRinging(r) : Adopt(r); !s.ok()) {
      PBX_LOG(kWarn, "calls", "call {} ({} -> {}) not adopted: {}", r.id, r.caller, r.callee,
              s.ToString());
      // A ringing call not continued now never will be (its phones give up): forgotten.
      if (ringing) {
        store::WriteSet writes;
        store::ActiveCallRepo::Delete(r.id, writes);
        writer_.Submit(std::move(writes), store::Durability::kReplicated, nullptr);
      }
      continue;
    }
    ++adopted;
  }
  if (!stored->empty()) {
    PBX_LOG(kInfo, "calls", "adopted {} of {} calls in progress", adopted, stored->size());
  }
  return adopted;
}

}  // namespace pbx::sip
