#include "sip/calls/recovery.h"

#include <fmt/format.h>

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

}  // namespace

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
    if (Status s = Adopt(r); !s.ok()) {
      PBX_LOG(kWarn, "calls", "call {} ({} -> {}) not adopted: {}", r.id, r.caller, r.callee,
              s.ToString());
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
