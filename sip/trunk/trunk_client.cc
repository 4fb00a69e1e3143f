#include "sip/trunk/trunk_client.h"

#include <strings.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include <fmt/format.h>
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/url.h>

#include "node/core/log.h"
#include "sip/clock.h"
#include "sip/registrar/digest.h"

namespace pbx::sip {
namespace {

constexpr su_duration_t kTickMs = 250;
constexpr uint32_t kMaxBackoffSeconds = 3600;

int StatusOf(nta_outgoing_t* orq, const sip_t* reply) {
  return reply && reply->sip_status ? reply->sip_status->st_status : nta_outgoing_status(orq);
}

// Whether the carrier said nothing: nta reports no answer as 408 without a reply, and a
// transport failure (a refused or reset TCP/TLS connection) as a 503 it makes itself, which
// unlike a carrier's reply never came from an address.
bool NoAnswer(nta_outgoing_t* orq, int status, const sip_t* reply) {
  if (status != 408 && status != 503) return false;
  if (reply == nullptr) return true;
  msg_t* response = nta_outgoing_getresponse(orq);
  if (response == nullptr) return true;
  const su_sockaddr_t* from = msg_addr(response);
  bool local = from == nullptr || from->su_family == 0;
  msg_destroy(response);
  return local;
}

std::string HostPort(const std::string& host, uint32_t port) {
  bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  return fmt::format("{}{}{}:{}", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

// The granted expiry of a 2xx: our Contact's expires parameter, else Expires, else asked.
uint32_t GrantedExpiry(const sip_t* reply, uint32_t asked) {
  if (reply->sip_contact && reply->sip_contact->m_expires) {
    return static_cast<uint32_t>(std::strtoul(reply->sip_contact->m_expires, nullptr, 10));
  }
  if (reply->sip_expires) return static_cast<uint32_t>(reply->sip_expires->ex_delta);
  return asked;
}

}  // namespace

TrunkClient::TrunkClient(Stack& stack, store::StateStore& store, StoreWriter& writer,
                         std::function<bool()> serving, uint32_t takeover_window_ms)
    : stack_(stack),
      store_(store),
      writer_(writer),
      serving_(std::move(serving)),
      takeover_window_ms_(takeover_window_ms),
      feed_(stack, store) {}

TrunkClient::~TrunkClient() { Unsubscribe(); }

Status TrunkClient::Init() {
  auto on_change = [this](const store::Change& c) { OnChange(c); };
  feed_.Follow(store::Table::kConfig, store::TrunkRepo::Prefix(), on_change);
  feed_.Follow(store::Table::kRuntime, store::TrunkStateRepo::Prefix(), on_change);
  PBX_TRY(Load());
  timer_ = su_timer_create(su_root_task(stack_.root()), kTickMs);
  if (timer_ == nullptr) return Status::Internal("su_timer_create failed");
  auto tick = [](su_root_magic_t*, su_timer_t*, su_timer_arg_t* arg) {
    reinterpret_cast<TrunkClient*>(arg)->Tick();
  };
  su_timer_run(timer_, tick, reinterpret_cast<su_timer_arg_t*>(this));
  PBX_LOG(kInfo, "trunk", "ready: {} trunks", lines_.size());
  return Status::Ok();
}

void TrunkClient::Unsubscribe() { feed_.Stop(); }

void TrunkClient::Shutdown() {
  Unsubscribe();
  if (timer_) su_timer_destroy(timer_);
  timer_ = nullptr;
  for (auto& [orq, what] : in_flight_) nta_outgoing_destroy(orq);
  in_flight_.clear();
}

// --- config and state from the feed ---

Status TrunkClient::Load() {
  PBX_ASSIGN_OR_RETURN(std::vector<store::Trunk> trunks, store::TrunkRepo(store_).List());
  for (auto it = lines_.begin(); it != lines_.end();) {
    bool kept = std::any_of(trunks.begin(), trunks.end(),
                            [&](const store::Trunk& t) { return t.name == it->first; });
    it = kept ? std::next(it) : lines_.erase(it);
  }
  for (const store::Trunk& t : trunks) Apply(t);
  PBX_ASSIGN_OR_RETURN(std::vector<store::TrunkState> states, store::TrunkStateRepo(store_).List());
  for (const store::TrunkState& s : states) {
    auto it = lines_.find(s.name);
    if (it != lines_.end()) it->second.state = s;
  }
  return Status::Ok();
}

void TrunkClient::OnChange(const store::Change& change) {
  if (change.reset) {  // a standby's table was replaced at once (checkpoint catch-up)
    if (Status s = Load(); !s.ok()) PBX_LOG(kWarn, "trunk", "reload failed: {}", s.ToString());
    return;
  }
  if (change.table == store::Table::kConfig) {
    std::string name = change.key.substr(store::TrunkRepo::Prefix().size());
    Result<store::Trunk> t = store::TrunkRepo::Decode(change);
    if (t.ok()) return Apply(*t);
    if (!t.status().IsNotFound()) {
      PBX_LOG(kWarn, "trunk", "ignoring {}: {}", change.key, t.status().ToString());
      return;
    }
    if (auto it = lines_.find(name); it != lines_.end()) Unregister(it->second);
    lines_.erase(name);  // in-flight replies for it find no line and are dropped
    return;
  }
  // Runtime state: what the active wrote. A standby keeps it to continue from at takeover;
  // the active wrote it itself and already has it.
  if (serving_() || !change.value) return;
  std::string name = change.key.substr(store::TrunkStateRepo::Prefix().size());
  auto it = lines_.find(name);
  if (it == lines_.end()) return;
  Result<store::TrunkState> s = store::TrunkStateRepo(store_).Get(name);
  if (s.ok()) it->second.state = *s;
}

void TrunkClient::Apply(const store::Trunk& trunk) {
  Line& line = lines_[trunk.name];
  bool changed = !(line.trunk == trunk);
  if (line.trunk.enabled && !trunk.enabled) Unregister(line);
  line.trunk = trunk;
  line.state.name = trunk.name;
  if (changed) {  // register (again) at once with the new settings
    line.next_register_ms = 0;
    line.next_qualify_ms = 0;
    line.given_up = false;
    line.auth_tried = false;
    line.challenge = {};
    line.state.failures = 0;
  }
}

// --- the tick ---

void TrunkClient::Tick() {
  bool serving = serving_();
  if (serving && !was_serving_) {
    // Takeover: re-register every trunk, continuing the replicated Call-ID and CSeq, each
    // after its own random delay in the window.
    std::uniform_int_distribution<int64_t> delay(0, takeover_window_ms_);
    int64_t now = NowMs();
    for (auto& [name, line] : lines_) line.next_register_ms = now + delay(rng_);
  }
  was_serving_ = serving;
  if (!serving) return;
  int64_t now = NowMs();
  for (auto& [name, line] : lines_) {
    const store::Trunk& t = line.trunk;
    if (!t.enabled || t.host.empty()) continue;
    if (t.mode == "register" && !InFlight(name, Kind::kRegister) && !line.given_up &&
        now >= line.next_register_ms) {
      line.auth_tried = false;
      SendRegister(line, line.trunk.new_call_id_per_register);
    }
    if (t.qualify_interval > 0 && !InFlight(name, Kind::kQualify) && now >= line.next_qualify_ms) {
      SendQualify(line, now);
    }
  }
}

std::string TrunkClient::Target(const store::Trunk& t) const {
  // Where requests go: the outbound proxy if set, else the carrier itself.
  std::string host = t.outbound_proxy.empty() ? HostPort(t.host, t.port) : t.outbound_proxy;
  return fmt::format("{}:{};transport={}", t.transport == "tls" ? "sips" : "sip", host,
                     t.transport);
}

std::string TrunkClient::ContactOf(const store::Trunk& t) const {
  std::string host = contact_host_;
  if (host.empty()) {
    const sip_contact_t* m = nta_agent_contact(stack_.agent());
    if (m == nullptr || m->m_url->url_host == nullptr) return "";
    host = m->m_url->url_host;
  }
  // TCP and TLS contacts name their transport: the carrier opens a connection to that port
  // for calls (RFC 3261 §19.1.4; a plain sip: URI with transport=tls, as carriers expect).
  BoundPorts ports = stack_.ports();
  uint16_t port = t.transport == "tls" ? ports.tls : t.transport == "tcp" ? ports.tcp : ports.udp;
  std::string params = t.transport == "udp" ? "" : ";transport=" + t.transport;
  return fmt::format("<sip:{}@{}{}>", t.username, HostPort(host, port), params);
}

std::string TrunkClient::NewCallId() { return fmt::format("{:016x}{:08x}@pbx", rng_(), rng_()); }

std::string TrunkClient::Authorization(Line& line) {
  if (!line.challenge.valid) return "";
  const store::Trunk& t = line.trunk;
  std::string uri = "sip:" + (t.domain.empty() ? t.host : t.domain);
  return AnswerCarrierChallenge(line.challenge, t, "REGISTER", uri, rng_);
}

void TrunkClient::Unregister(Line& line) {
  if (!serving_() || line.trunk.mode != "register" || line.state.state != "registered") return;
  PBX_LOG(kInfo, "trunk", "{} unregistering from {}", line.trunk.name, line.trunk.host);
  SendRegister(line, false, true);
  line.state.state = "idle";
  line.state.expires_unix = 0;
  Save(line);
}

void TrunkClient::SendRegister(Line& line, bool fresh_call_id, bool unregister) {
  const store::Trunk& t = line.trunk;
  store::TrunkState& s = line.state;
  // RFC 3261 §10.2.4: the same Call-ID for every REGISTER to this registrar, CSeq + 1 each
  // time; the carrier quirk gets a fresh Call-ID per registration (its challenge answer
  // still shares it, as it must).
  std::string authorization = Authorization(line);
  bool proxy_auth = line.challenge.proxy;
  if (s.call_id.empty() || fresh_call_id) {
    s.call_id = NewCallId();
    line.from_tag.clear();
  }
  if (line.from_tag.empty()) line.from_tag = fmt::format("{:x}", rng_());
  s.cseq += 1;
  Save(line);  // the sequence survives a failover before the reply arrives

  const std::string& domain = t.domain.empty() ? t.host : t.domain;
  std::string request = fmt::format("REGISTER sip:{} SIP/2.0", domain);
  std::string aor = fmt::format("<sip:{}@{}>", t.username, domain);
  std::string from = aor + ";tag=" + line.from_tag;
  std::string cseq = fmt::format("{} REGISTER", s.cseq);
  std::string expires = unregister ? "0" : std::to_string(t.expiry);
  std::string contact = ContactOf(t);
  msg_t* msg = NewRequest(request, aor, from, s.call_id, cseq);
  if (msg == nullptr) return;
  if (sip_add_tl(msg, sip_object(msg),
                 SIPTAG_CONTACT_STR(contact.empty() ? nullptr : contact.c_str()),
                 SIPTAG_EXPIRES_STR(expires.c_str()), SIPTAG_USER_AGENT_STR("pbx"),
                 TAG_IF(!authorization.empty() && !proxy_auth,
                        SIPTAG_AUTHORIZATION_STR(authorization.c_str())),
                 TAG_IF(!authorization.empty() && proxy_auth,
                        SIPTAG_PROXY_AUTHORIZATION_STR(authorization.c_str())),
                 TAG_END()) < 0) {
    msg_destroy(msg);
    return;
  }
  if (!Send(line, Kind::kRegister, msg)) Failed(line, 503, "cannot send REGISTER");
}

msg_t* TrunkClient::NewRequest(const std::string& request, const std::string& to,
                               const std::string& from, const std::string& call_id,
                               const std::string& cseq) {
  msg_t* msg = nta_msg_create(stack_.agent(), 0);
  if (msg == nullptr) return nullptr;
  if (sip_add_tl(msg, sip_object(msg), SIPTAG_REQUEST_STR(request.c_str()),
                 SIPTAG_TO_STR(to.c_str()), SIPTAG_FROM_STR(from.c_str()),
                 SIPTAG_CALL_ID_STR(call_id.c_str()), SIPTAG_CSEQ_STR(cseq.c_str()),
                 SIPTAG_MAX_FORWARDS_STR("70"), TAG_END()) < 0) {
    msg_destroy(msg);
    return nullptr;
  }
  return msg;
}

bool TrunkClient::Send(const Line& line, Kind kind, msg_t* msg) {
  auto cb = [](nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* reply) -> int {
    int status = StatusOf(orq, reply);
    if (status < 200) return 0;
    auto* self = reinterpret_cast<TrunkClient*>(magic);
    auto it = self->in_flight_.find(orq);
    if (it != self->in_flight_.end()) {
      auto [name, k] = it->second;
      self->in_flight_.erase(it);
      if (k == Kind::kRegister) {
        self->OnRegisterReply(name, status, NoAnswer(orq, status, reply) ? nullptr : reply);
      } else {  // any answer at all means the carrier is there; only silence is not
        self->OnQualifyReply(name, NoAnswer(orq, status, reply) ? status : 200);
      }
    }
    nta_outgoing_destroy(orq);
    return 0;
  };
  std::string target = Target(line.trunk);
  nta_outgoing_t* orq =
      nta_outgoing_mcreate(stack_.agent(), cb, reinterpret_cast<nta_outgoing_magic_t*>(this),
                           URL_STRING_MAKE(target.c_str()), msg, TAG_END());
  if (orq == nullptr) return false;  // nta destroyed msg
  in_flight_[orq] = {line.trunk.name, kind};
  return true;
}

bool TrunkClient::InFlight(const std::string& name, Kind kind) const {
  return std::any_of(in_flight_.begin(), in_flight_.end(), [&](const auto& f) {
    return f.second.first == name && f.second.second == kind;
  });
}

void TrunkClient::OnRegisterReply(const std::string& name, int status, const sip_t* reply) {
  auto it = lines_.find(name);
  if (it == lines_.end() || !serving_()) return;  // deleted meanwhile, or demoted
  Line& line = it->second;
  const store::Trunk& t = line.trunk;
  if (!t.enabled) {  // the reply to our unregistration: answer a fresh challenge, no more
    if (!line.auth_tried) {
      if (std::optional<CarrierChallenge> c = ParseCarrierChallenge(status, reply)) {
        line.challenge = *c;
        line.auth_tried = true;
        SendRegister(line, false, true);
      }
    }
    return;
  }
  if (status >= 200 && status < 300 && reply != nullptr) {
    uint32_t granted = std::max<uint32_t>(GrantedExpiry(reply, t.expiry), 1);
    line.state.state = "registered";
    line.state.expires_unix = NowUnix() + granted;
    line.state.last_code = static_cast<uint32_t>(status);
    line.state.last_reason = reply->sip_status ? reply->sip_status->st_phrase : "";
    line.state.failures = 0;
    line.next_register_ms = NowMs() + int64_t{granted} * 10 * t.refresh_percent;
    PBX_LOG(kInfo, "trunk", "{} registered at {} for {} s (call-id {} cseq {})", name, t.host,
            granted, line.state.call_id, line.state.cseq);
    Save(line);
    return;
  }
  if (!line.auth_tried) {
    if (std::optional<CarrierChallenge> c = ParseCarrierChallenge(status, reply)) {
      line.challenge = *c;
      line.auth_tried = true;
      SendRegister(line, false);
      return;
    }
  }
  std::string phrase = reply && reply->sip_status && reply->sip_status->st_phrase
                           ? reply->sip_status->st_phrase
                           : (status == 408 ? "Request Timeout" : "Service Unavailable");
  Failed(line, status, reply == nullptr ? "no answer: " + phrase : phrase);
}

void TrunkClient::Failed(Line& line, int status, std::string reason) {
  const store::Trunk& t = line.trunk;
  line.state.state = status == 408 || status == 503 ? "unreachable" : "failed";
  line.state.last_code = static_cast<uint32_t>(status);
  line.state.last_reason = std::move(reason);
  line.state.failures += 1;
  // Retry after retry_interval, doubling per consecutive failure, at most an hour.
  uint32_t shift = std::min<uint32_t>(line.state.failures - 1, 10);
  uint32_t delay = std::min<uint32_t>(t.retry_interval << shift, kMaxBackoffSeconds);
  line.next_register_ms = NowMs() + int64_t{delay} * 1000;
  if (t.max_retries > 0 && line.state.failures >= t.max_retries) line.given_up = true;
  PBX_LOG(kWarn, "trunk", "{} registration failed: {} {} (failure {}, {})", t.name, status,
          line.state.last_reason, line.state.failures,
          line.given_up ? "given up" : fmt::format("retry in {} s", delay));
  Save(line);
}

// --- OPTIONS health check ---

void TrunkClient::SendQualify(Line& line, int64_t now_ms) {
  const store::Trunk& t = line.trunk;
  line.next_qualify_ms = now_ms + int64_t{t.qualify_interval} * 1000;
  const std::string& domain = t.domain.empty() ? t.host : t.domain;
  std::string request = fmt::format("OPTIONS sip:{} SIP/2.0", HostPort(t.host, t.port));
  std::string to = fmt::format("<sip:{}>", domain);
  std::string from =
      fmt::format("<sip:{}@{}>;tag={:x}", t.username.empty() ? "pbx" : t.username, domain, rng_());
  msg_t* msg = NewRequest(request, to, from, NewCallId(), "1 OPTIONS");
  if (msg != nullptr && Send(line, Kind::kQualify, msg)) line.qualify_sent_ms = now_ms;
}

void TrunkClient::OnQualifyReply(const std::string& name, int status) {
  auto it = lines_.find(name);
  if (it == lines_.end() || !serving_()) return;
  Line& line = it->second;
  bool ok = status == 200;
  bool changed = ok != line.state.qualify_ok || line.state.qualify_unix == 0;
  line.state.qualify_ok = ok;
  line.state.qualify_rtt_ms = ok ? static_cast<uint32_t>(NowMs() - line.qualify_sent_ms) : 0;
  line.state.qualify_unix = NowUnix();
  if (line.trunk.mode == "peer") line.state.state = ok ? "reachable" : "unreachable";
  if (changed) {  // only a change of reachability is worth a write
    PBX_LOG(kInfo, "trunk", "{} is {}", name, ok ? "reachable" : "unreachable");
    Save(line);
  }
}

void TrunkClient::Save(Line& line) {
  line.state.updated_unix = NowUnix();
  store::WriteSet writes;
  store::TrunkStateRepo(store_).Put(line.state, writes);
  writer_.Submit(std::move(writes), store::Durability::kAsync, nullptr);
}

}  // namespace pbx::sip
