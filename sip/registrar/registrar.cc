#include "sip/registrar/registrar.h"

#include <strings.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include <fmt/format.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/url.h>

#include "node/core/log.h"
#include "sip/clock.h"

namespace pbx::sip {
namespace {

constexpr int64_t kNonceLifetimeSeconds = 300;
constexpr su_duration_t kTickMs = 1000;
constexpr size_t kMaxUri = 1024;

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string UrlString(const url_t* url) {
  char buf[kMaxUri];
  isize_t n = url_e(buf, sizeof(buf), url);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(buf)) return {};
  return std::string(buf, static_cast<size_t>(n));
}

std::optional<uint32_t> ParseSeconds(const char* text) {
  if (text == nullptr || *text == '\0') return std::nullopt;
  char* end = nullptr;
  unsigned long v = std::strtoul(text, &end, 10);
  if (end == text) return std::nullopt;
  return static_cast<uint32_t>(std::min<unsigned long>(v, UINT32_MAX));
}

// What a phone may change without it being news for the standby: the expiry and CSeq.
bool SameBinding(const store::Registration& a, const store::Registration& b) {
  return a.contact == b.contact && a.received_host == b.received_host &&
         a.received_port == b.received_port && a.transport == b.transport && a.path == b.path &&
         a.user_agent == b.user_agent && a.call_id == b.call_id && a.instance == b.instance;
}

}  // namespace

std::string BindingId(std::string_view instance_or_contact) {
  return DigestHash(DigestAlgorithm::kSha256, instance_or_contact).substr(0, 16);
}

struct Registrar::Qualify {
  std::string number;
  std::string binding_id;
  int64_t sent_ms = 0;
};

Registrar::Registrar(Stack& stack, store::StateStore& store, StoreWriter& writer,
                     std::function<bool()> serving, bool offer_sha256)
    : stack_(stack),
      store_(store),
      writer_(writer),
      serving_(std::move(serving)),
      offer_sha256_(offer_sha256),
      feed_(stack, store) {}

Registrar::~Registrar() {
  Unsubscribe();
  // Transactions in flight were freed with the agent; only our contexts remain.
  qualifies_.clear();
}

Status Registrar::Init() {
  auto on_change = [this](const store::Change& c) { OnChange(c); };
  feed_.Follow(store::Table::kConfig, store::ExtensionRepo::Prefix(), on_change);
  feed_.Follow(store::Table::kConfig, "settings/", on_change);
  feed_.Follow(store::Table::kRuntime, store::RegistrationRepo::Prefix(), on_change);
  feed_.Follow(store::Table::kRuntime, store::BanRepo::Prefix(), on_change);
  LoadSettings();
  LoadExtensions();
  LoadBindings();
  LoadBans();
  stack_.SetAdmission([this](const Source& src) { return Admit(src); });
  stack_.SetHandler(sip_method_register, [this](nta_incoming_t* irq, const sip_t* sip,
                                                const Source& src) { OnRegister(irq, sip, src); });
  timer_ = su_timer_create(su_root_task(stack_.root()), kTickMs);
  if (timer_ == nullptr) return Status::Internal("su_timer_create failed");
  auto tick = [](su_root_magic_t*, su_timer_t*, su_timer_arg_t* arg) {
    reinterpret_cast<Registrar*>(arg)->Tick();
  };
  su_timer_run(timer_, tick, reinterpret_cast<su_timer_arg_t*>(this));
  PBX_LOG(kInfo, "registrar", "ready: {} extensions, {} bound, {} bans", extensions_.size(),
          bindings_.size(), bans_.ban_count());
  return Status::Ok();
}

void Registrar::Unsubscribe() { feed_.Stop(); }

void Registrar::Shutdown() {
  Unsubscribe();
  if (timer_) su_timer_destroy(timer_);
  timer_ = nullptr;
}

// --- caches ---

Registrar::ExtInfo Registrar::ToInfo(const store::Extension& e) {
  ExtInfo x;
  x.name = e.name;
  x.realm = e.realm;
  x.call_waiting = e.call_waiting;
  x.dial_permission = e.dial_permission;
  x.outbound_cli = e.outbound_cli;
  x.codecs = e.codecs;
  x.ha1_md5 = e.ha1_md5;
  x.ha1_sha256 = e.ha1_sha256;
  x.max_contacts = e.max_contacts;
  x.registration_expiry = e.registration_expiry;
  x.qualify_interval = e.qualify_interval;
  x.remote_registration = e.remote_registration;
  Result<std::vector<IpNetwork>> trusted = ParseNetworks(e.trusted_addresses);
  if (trusted.ok()) {
    x.trusted = std::move(*trusted);
  } else {
    PBX_LOG(kWarn, "registrar", "extension {}: trusted addresses ignored: {}", e.number,
            trusted.status().message());
  }
  return x;
}

void Registrar::LoadExtensions() {
  extensions_.clear();
  Result<std::vector<store::Extension>> all = store::ExtensionRepo(store_).List();
  if (!all.ok()) {
    PBX_LOG(kError, "registrar", "cannot load extensions: {}", all.status().ToString());
    return;
  }
  for (const auto& e : *all) extensions_[e.number] = ToInfo(e);
}

void Registrar::LoadSettings() {
  Result<store::SystemSettings> s = store::SettingsRepo(store_).Get();
  if (!s.ok()) {
    PBX_LOG(kError, "registrar", "cannot load settings: {}", s.status().ToString());
    return;
  }
  settings_ = *s;
  nonces_ = settings_.token_secret.empty()
                ? nullptr
                : std::make_unique<NonceAuthority>(settings_.token_secret, kNonceLifetimeSeconds);
  BanList::Policy p;
  p.enabled = settings_.ban_enabled;
  p.max_retries = settings_.ban_max_retries;
  p.find_time = settings_.ban_find_time;
  p.ban_time = settings_.ban_time;
  p.trust_private = settings_.ban_trust_private;
  Result<std::vector<IpNetwork>> allow = ParseNetworks(settings_.ip_allow);
  Result<std::vector<IpNetwork>> deny = ParseNetworks(settings_.ip_deny);
  if (allow.ok()) p.allow = std::move(*allow);
  if (deny.ok()) p.deny = std::move(*deny);
  if (!allow.ok() || !deny.ok()) {
    PBX_LOG(kWarn, "registrar", "IP list entries ignored: {}",
            (!allow.ok() ? allow.status() : deny.status()).message());
  }
  bans_.SetPolicy(std::move(p));
  www_sha256_.clear();
}

void Registrar::LoadBindings() {
  bindings_.clear();
  Result<std::vector<store::Registration>> all = store::RegistrationRepo(store_).List();
  if (!all.ok()) {
    PBX_LOG(kError, "registrar", "cannot load registrations: {}", all.status().ToString());
    return;
  }
  for (auto& r : *all) {
    std::string number = r.number;
    bindings_[number].push_back(Binding{std::move(r)});
  }
}

void Registrar::LoadBans() {
  bans_.Clear();
  Result<std::vector<store::Ban>> all = store::BanRepo(store_).List();
  if (!all.ok()) {
    PBX_LOG(kError, "registrar", "cannot load bans: {}", all.status().ToString());
    return;
  }
  for (const auto& b : *all) bans_.Apply(b);
}

void Registrar::OnChange(const store::Change& c) {
  if (c.table == store::Table::kConfig) {
    if (c.reset) {
      LoadSettings();
      LoadExtensions();
    } else if (c.key.starts_with("settings/")) {
      LoadSettings();
    } else if (Result<store::Extension> e = store::ExtensionRepo::Decode(c); e.ok()) {
      extensions_[e->number] = ToInfo(*e);
    } else if (e.status().IsNotFound()) {
      extensions_.erase(c.key.substr(store::ExtensionRepo::Prefix().size()));
    }
    return;
  }
  if (c.reset) {
    LoadBindings();
    LoadBans();
    return;
  }
  if (c.key.starts_with(store::BanRepo::Prefix())) {
    if (Result<store::Ban> b = store::BanRepo::Decode(c); b.ok()) {
      bans_.Apply(*b);
    } else if (b.status().IsNotFound()) {
      bans_.Lift(c.key.substr(store::BanRepo::Prefix().size()));
    }
    return;
  }
  std::string number, id;
  if (!store::RegistrationRepo::KeyParts(c.key, &number, &id)) return;
  std::vector<Binding>& list = bindings_[number];
  auto it = std::find_if(list.begin(), list.end(),
                         [&](const Binding& b) { return b.reg.binding_id == id; });
  if (!c.value) {
    if (it != list.end()) list.erase(it);
  } else if (Result<store::Registration> r = store::RegistrationRepo::Decode(c); r.ok()) {
    if (it != list.end()) {
      it->reg = std::move(*r);
    } else {
      list.push_back(Binding{std::move(*r)});
    }
  }
  if (list.empty()) bindings_.erase(number);
}

// --- requests ---

bool Registrar::Admit(const Source& src) {
  if (!serving_()) {
    ++counters_.dropped;
    return false;  // a standby keeps its sockets but answers nothing until it serves
  }
  if (bans_.Admit(src.ip, src.ip_text, NowUnix())) return true;
  ++counters_.dropped;
  return false;
}

void Registrar::Reply(nta_incoming_t* irq, int status, const char* phrase) {
  nta_incoming_treply(irq, status, phrase, TAG_END());
  nta_incoming_destroy(irq);
}

void Registrar::Challenge(nta_incoming_t* irq, bool stale, int64_t now) {
  if (!nonces_) return Reply(irq, SIP_503_SERVICE_UNAVAILABLE);  // not provisioned yet
  ++counters_.challenges;
  std::string nonce = nonces_->Issue(settings_.sip_realm, now);
  // RFC 8760: the preferred algorithm first; both with qop=auth.
  www_md5_ = fmt::format("Digest realm=\"{}\", nonce=\"{}\", algorithm=MD5, qop=\"auth\"{}",
                         settings_.sip_realm, nonce, stale ? ", stale=true" : "");
  if (!offer_sha256_) {
    nta_incoming_treply(irq, SIP_401_UNAUTHORIZED, SIPTAG_WWW_AUTHENTICATE_STR(www_md5_.c_str()),
                        TAG_END());
  } else {
    www_sha256_ =
        fmt::format("Digest realm=\"{}\", nonce=\"{}\", algorithm=SHA-256, qop=\"auth\"{}",
                    settings_.sip_realm, nonce, stale ? ", stale=true" : "");
    nta_incoming_treply(irq, SIP_401_UNAUTHORIZED, SIPTAG_WWW_AUTHENTICATE_STR(www_sha256_.c_str()),
                        SIPTAG_WWW_AUTHENTICATE_STR(www_md5_.c_str()), TAG_END());
  }
  nta_incoming_destroy(irq);
}

void Registrar::Fail(nta_incoming_t* irq, const Source& src, int64_t now, const std::string& why,
                     bool challenge) {
  ++counters_.auth_failures;
  PBX_LOG(kInfo, "registrar", "auth failure from {}:{}: {}", src.ip_text, src.port, why);
  std::optional<store::Ban> ban = bans_.RecordFailure(src.ip, src.ip_text, now, why);
  if (ban) {
    ++counters_.bans;
    PBX_LOG(kWarn, "registrar", "banned {} for {} s after {} failures (last: {})", ban->ip,
            ban->until_unix - ban->banned_unix, ban->failures, why);
    store::WriteSet writes;
    store::BanRepo(store_).Put(*ban, writes);
    writer_.Submit(std::move(writes), store::Durability::kAsync, nullptr);
  }
  if (challenge) return Challenge(irq, false, now);
  Reply(irq, SIP_403_FORBIDDEN);
}

const Registrar::ExtInfo* Registrar::FindExtension(const std::string& number) const {
  auto it = extensions_.find(number);
  return it == extensions_.end() ? nullptr : &it->second;
}

std::vector<store::Registration> Registrar::Contacts(const std::string& number) const {
  std::vector<store::Registration> out;
  auto it = bindings_.find(number);
  if (it == bindings_.end()) return out;
  int64_t now = NowUnix();
  for (const Binding& b : it->second) {
    if (b.reg.expires_unix > now) out.push_back(b.reg);
  }
  return out;
}

void Registrar::OnRegister(nta_incoming_t* irq, const sip_t* sip, const Source& src) {
  ++counters_.registers;
  if (!sip->sip_to || !sip->sip_to->a_url->url_user || !sip->sip_call_id || !sip->sip_cseq) {
    return Reply(irq, SIP_400_BAD_REQUEST);
  }
  std::string number = sip->sip_to->a_url->url_user;
  if (!Authenticate(irq, sip, src, number, "REGISTER")) return;
  UpdateBindings(irq, sip, src, number, extensions_.at(number), NowUnix());
}

bool Registrar::Authenticate(nta_incoming_t* irq, const sip_t* sip, const Source& src,
                             const std::string& number, const char* method) {
  int64_t now = NowUnix();
  auto ext_it = extensions_.find(number);
  const msg_auth_t* auth = sip->sip_authorization;
  for (; auth; auth = auth->au_next) {
    if (auth->au_scheme && strcasecmp(auth->au_scheme, "Digest") == 0 &&
        DigestParam(auth->au_params, "realm") == settings_.sip_realm) {
      break;
    }
  }
  if (auth == nullptr) {
    // A scan of numbers counts, and gets the same challenge a real extension gets.
    if (ext_it == extensions_.end()) {
      Fail(irq, src, now, "unknown extension " + number, true);
      return false;
    }
    Challenge(irq, false, now);
    return false;
  }
  if (ext_it == extensions_.end()) {
    Fail(irq, src, now, "unknown extension " + number, false);
    return false;
  }
  const ExtInfo& ext = ext_it->second;

  DigestCredentials c;
  c.username = DigestParam(auth->au_params, "username");
  c.realm = DigestParam(auth->au_params, "realm");
  c.nonce = DigestParam(auth->au_params, "nonce");
  c.uri = DigestParam(auth->au_params, "uri");
  c.response = DigestParam(auth->au_params, "response");
  c.qop = DigestParam(auth->au_params, "qop");
  c.nc = DigestParam(auth->au_params, "nc");
  c.cnonce = DigestParam(auth->au_params, "cnonce");
  std::optional<DigestAlgorithm> alg =
      ParseDigestAlgorithm(DigestParam(auth->au_params, "algorithm"));
  if (!alg || (!c.qop.empty() && c.qop != "auth") || c.nonce.empty() || c.response.empty()) {
    Challenge(irq, false, now);
    return false;
  }
  if (c.username != number) {
    Fail(irq, src, now, "user " + std::string(c.username) + " acting as " + number, false);
    return false;
  }
  const std::string& ha1 = *alg == DigestAlgorithm::kMd5 ? ext.ha1_md5 : ext.ha1_sha256;
  if (ha1.empty() || ext.realm != settings_.sip_realm) {
    Fail(irq, src, now, "no credentials for " + number + " in this realm", false);
    return false;
  }
  std::string expected = DigestExpectedResponse(*alg, ha1, method, c);
  if (!ConstantTimeEqual(expected, c.response)) {
    Fail(irq, src, now, "wrong password for " + number, false);
    return false;
  }
  // The password is right; the nonce decides whether it is fresh.
  NonceAuthority::Verdict v = nonces_ ? nonces_->Check(c.nonce, settings_.sip_realm, now)
                                      : NonceAuthority::Verdict::kInvalid;
  if (v != NonceAuthority::Verdict::kValid) {
    Challenge(irq, v == NonceAuthority::Verdict::kStale, now);
    return false;
  }
  bool trusted =
      ext.trusted.empty() || std::any_of(ext.trusted.begin(), ext.trusted.end(),
                                         [&](const IpNetwork& n) { return n.Contains(src.ip); });
  bool wan = !src.ip.IsPrivate() && !src.ip.IsLoopback();
  if (!trusted || (wan && !ext.remote_registration)) {
    PBX_LOG(kInfo, "registrar", "{} refused from {}: not a trusted address", number, src.ip_text);
    Reply(irq, SIP_403_FORBIDDEN);
    return false;
  }
  return true;
}

void Registrar::UpdateBindings(nta_incoming_t* irq, const sip_t* sip, const Source& src,
                               const std::string& number, const ExtInfo& ext, int64_t now) {
  const sip_contact_t* contacts = sip->sip_contact;
  if (contacts == nullptr) return ReplyOk(irq, number, now);  // a query
  std::vector<Binding>& current = bindings_[number];
  store::RegistrationRepo repo(store_);
  store::WriteSet writes;
  bool news = false;

  if (contacts->m_url->url_type == url_any) {  // Contact: *
    if (contacts->m_next || !sip->sip_expires || sip->sip_expires->ex_delta != 0) {
      return Reply(irq, SIP_400_BAD_REQUEST);
    }
    for (const Binding& b : current) repo.Delete(number, b.reg.binding_id, writes);
    news = !current.empty();
    bindings_.erase(number);
  } else {
    std::optional<uint32_t> header_expiry;
    if (sip->sip_expires) header_expiry = static_cast<uint32_t>(sip->sip_expires->ex_delta);
    std::vector<Binding> next = current;
    for (const sip_contact_t* m = contacts; m; m = m->m_next) {
      if (m->m_url->url_type == url_any) return Reply(irq, SIP_400_BAD_REQUEST);
      std::optional<uint32_t> requested = ParseSeconds(m->m_expires);
      if (!requested) requested = header_expiry;
      ExpiryDecision d = DecideExpiry(requested, ext.registration_expiry, settings_.reg_expiry_min,
                                      settings_.reg_expiry_max);
      if (d.kind == ExpiryDecision::Kind::kTooBrief) {
        std::string min = std::to_string(d.seconds);
        nta_incoming_treply(irq, SIP_423_INTERVAL_TOO_BRIEF, SIPTAG_MIN_EXPIRES_STR(min.c_str()),
                            TAG_END());
        nta_incoming_destroy(irq);
        return;
      }
      std::string uri = UrlString(m->m_url);
      if (uri.empty()) return Reply(irq, SIP_400_BAD_REQUEST);
      const char* instance = msg_params_find(m->m_params, "+sip.instance=");
      std::string id = BindingId(instance ? std::string_view(instance) : std::string_view(uri));
      auto it = std::find_if(next.begin(), next.end(),
                             [&](const Binding& b) { return b.reg.binding_id == id; });
      if (it != next.end() && it->reg.call_id == sip->sip_call_id->i_id &&
          sip->sip_cseq->cs_seq <= it->reg.cseq) {
        return Reply(irq, 500, "Out of Order CSeq");  // RFC 3261 10.3 step 7
      }
      if (d.kind == ExpiryDecision::Kind::kRemove) {
        if (it != next.end()) {
          repo.Delete(number, id, writes);
          next.erase(it);
          news = true;
        }
        continue;
      }
      store::Registration r;
      r.number = number;
      r.binding_id = id;
      r.contact = std::move(uri);
      r.received_host = src.ip_text;
      r.received_port = src.port;
      r.transport = src.transport;
      for (const sip_path_t* p = sip->sip_path; p; p = p->r_next) {
        r.path.push_back("<" + UrlString(p->r_url) + ">");
      }
      r.expires_unix = now + RandomizeExpiry(d.seconds, rng_());
      r.registered_unix = now;
      if (sip->sip_user_agent && sip->sip_user_agent->g_string) {
        r.user_agent = sip->sip_user_agent->g_string;
      }
      r.call_id = sip->sip_call_id->i_id;
      r.cseq = sip->sip_cseq->cs_seq;
      if (instance) r.instance = instance;
      if (it == next.end()) {
        news = true;
        repo.Put(r, writes);
        next.push_back(Binding{std::move(r), now + ext.qualify_interval});
      } else {
        news = news || !SameBinding(it->reg, r);
        r.registered_unix = it->reg.registered_unix;
        r.qualify_ok = it->reg.qualify_ok;
        r.qualify_rtt_ms = it->reg.qualify_rtt_ms;
        r.qualify_unix = it->reg.qualify_unix;
        repo.Put(r, writes);
        it->reg = std::move(r);
      }
    }
    if (next.size() > std::max<uint32_t>(ext.max_contacts, 1) && next.size() > current.size()) {
      return Reply(irq, 403, "Too Many Registrations");
    }
    current = std::move(next);
    if (current.empty()) bindings_.erase(number);
  }

  if (writes.empty()) return ReplyOk(irq, number, now);
  if (!news) {
    // A pure refresh: losing it costs nothing (the phone refreshes again), so no waiting.
    writer_.Submit(std::move(writes), store::Durability::kAsync, nullptr);
    return ReplyOk(irq, number, now);
  }
  writer_.Submit(std::move(writes), store::Durability::kReplicated,
                 [this, irq, number](const Status& s) {
                   stack_.Post([this, irq, number, s] {
                     if (s.ok()) return ReplyOk(irq, number, NowUnix());
                     // The cache ran ahead of the store: take the store's word again.
                     LoadBindings();
                     Reply(irq, SIP_500_INTERNAL_SERVER_ERROR);
                   });
                 });
}

void Registrar::ReplyOk(nta_incoming_t* irq, const std::string& number, int64_t now) {
  std::string contacts;
  auto it = bindings_.find(number);
  if (it != bindings_.end()) {
    for (const Binding& b : it->second) {
      if (!contacts.empty()) contacts += ", ";
      fmt::format_to(std::back_inserter(contacts), "<{}>;expires={}", b.reg.contact,
                     std::max<int64_t>(b.reg.expires_unix - now, 0));
    }
  }
  nta_incoming_treply(irq, SIP_200_OK,
                      TAG_IF(!contacts.empty(), SIPTAG_CONTACT_STR(contacts.c_str())), TAG_END());
  nta_incoming_destroy(irq);
}

// --- housekeeping: expiry of bindings and bans, keep-alive OPTIONS ---

void Registrar::Tick() {
  int64_t now = NowUnix();
  bool serving = serving_();
  store::WriteSet writes;
  store::RegistrationRepo regs(store_);
  for (auto it = bindings_.begin(); it != bindings_.end();) {
    auto& list = it->second;
    for (auto b = list.begin(); b != list.end();) {
      if (b->reg.expires_unix > now) {
        auto ext = extensions_.find(it->first);
        if (serving && ext != extensions_.end() && ext->second.qualify_interval > 0 &&
            !b->qualify_in_flight && b->next_qualify <= now) {
          b->next_qualify = now + ext->second.qualify_interval;
          SendQualify(*b, now);
        }
        ++b;
        continue;
      }
      if (serving) regs.Delete(b->reg.number, b->reg.binding_id, writes);
      b = list.erase(b);
    }
    it = list.empty() ? bindings_.erase(it) : std::next(it);
  }
  for (const std::string& ip : bans_.Expired(now)) {
    PBX_LOG(kInfo, "registrar", "ban of {} lifted (time over)", ip);
    bans_.Lift(ip);
    if (serving) store::BanRepo(store_).Delete(ip, false, writes);
  }
  bans_.Prune(now);
  if (!writes.empty()) writer_.Submit(std::move(writes), store::Durability::kAsync, nullptr);
}

void Registrar::SendQualify(Binding& b, int64_t now) {
  const store::Registration& r = b.reg;
  bool v6 = r.received_host.find(':') != std::string::npos;
  // To the address the REGISTER came from: behind NAT, that is the only way in.
  std::string route =
      fmt::format("{}:{}{}{}:{};transport={}", r.transport == "tls" ? "sips" : "sip", v6 ? "[" : "",
                  r.received_host, v6 ? "]" : "", r.received_port, r.transport);
  msg_t* msg = nta_msg_create(stack_.agent(), 0);
  if (msg == nullptr) return;
  sip_t* sip = sip_object(msg);
  std::string request = "OPTIONS " + r.contact + " SIP/2.0";
  std::string to = "<" + r.contact + ">";
  std::string from = fmt::format("<sip:pbx@{}>;tag={:x}", settings_.sip_realm, rng_());
  std::string call_id = fmt::format("q{:x}{:x}", rng_(), now);
  if (sip_add_tl(msg, sip, SIPTAG_REQUEST_STR(request.c_str()), SIPTAG_TO_STR(to.c_str()),
                 SIPTAG_FROM_STR(from.c_str()), SIPTAG_CALL_ID_STR(call_id.c_str()),
                 SIPTAG_CSEQ_STR("1 OPTIONS"), SIPTAG_MAX_FORWARDS_STR("70"), TAG_END()) < 0) {
    msg_destroy(msg);
    return;
  }
  auto cb = [](nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* reply) -> int {
    int status =
        reply && reply->sip_status ? reply->sip_status->st_status : nta_outgoing_status(orq);
    if (status >= 200) reinterpret_cast<Registrar*>(magic)->OnQualifyDone(orq, status);
    return 0;
  };
  nta_outgoing_t* orq =
      nta_outgoing_mcreate(stack_.agent(), cb, reinterpret_cast<nta_outgoing_magic_t*>(this),
                           URL_STRING_MAKE(route.c_str()), msg, TAG_END());
  if (orq == nullptr) return;  // nta destroyed msg
  auto q = std::make_unique<Qualify>();
  q->number = r.number;
  q->binding_id = r.binding_id;
  q->sent_ms = NowMs();
  qualifies_[orq] = std::move(q);
  b.qualify_in_flight = true;
}

void Registrar::OnQualifyDone(nta_outgoing_t* orq, int status) {
  auto qit = qualifies_.find(orq);
  nta_outgoing_destroy(orq);
  if (qit == qualifies_.end()) return;
  std::unique_ptr<Qualify> q = std::move(qit->second);
  qualifies_.erase(qit);
  auto list = bindings_.find(q->number);
  if (list == bindings_.end()) return;
  for (Binding& b : list->second) {
    if (b.reg.binding_id != q->binding_id) continue;
    b.qualify_in_flight = false;
    // 408 and 503 are what nta reports for no answer and for a transport error.
    bool ok = status != 408 && status != 503;
    uint32_t rtt = static_cast<uint32_t>(NowMs() - q->sent_ms);
    bool changed = ok != b.reg.qualify_ok || b.reg.qualify_unix == 0;
    b.reg.qualify_ok = ok;
    b.reg.qualify_rtt_ms = ok ? rtt : 0;
    b.reg.qualify_unix = NowUnix();
    if (changed && serving_()) {  // only a change of reachability is worth a write
      PBX_LOG(kInfo, "registrar", "{} at {} is {} ({} ms)", b.reg.number, b.reg.contact,
              ok ? "reachable" : "unreachable", rtt);
      store::WriteSet writes;
      store::RegistrationRepo(store_).Put(b.reg, writes);
      writer_.Submit(std::move(writes), store::Durability::kAsync, nullptr);
    }
    return;
  }
}

}  // namespace pbx::sip
