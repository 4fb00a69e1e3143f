#include "sip/stack.h"

#include <strings.h>

#include <cstdlib>
#include <cstring>
#include <future>

#include <fmt/format.h>
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/tport_tag.h>

#include "node/core/log.h"
#include "sip/freebind.h"

extern "C" su_log_t nta_log[];
extern "C" su_log_t tport_log[];

namespace pbx::sip {
namespace {

// sofia-sip's own log lines (SOFIA_DEBUG etc. still raise its levels) go to our sink.
void SofiaLog(void*, char const* fmt, va_list ap) {
  char buf[1024];
  int n = vsnprintf(buf, sizeof(buf), fmt, ap);
  if (n <= 0) return;
  std::string_view line(buf, std::min<size_t>(n, sizeof(buf) - 1));
  while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty()) PBX_LOG(kDebug, "sofia", "{}", line);
}

std::string HostForUrl(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace

Stack::Stack(const StackOptions& options) : options_(options) {}

Stack::~Stack() { Stop(); }

Result<std::unique_ptr<Stack>> Stack::Start(const StackOptions& options) {
  std::unique_ptr<Stack> stack(new Stack(options));
  std::promise<Status> started;
  std::future<Status> result = started.get_future();
  stack->thread_ = std::thread([s = stack.get(), &started] { s->ThreadMain(&started); });
  Status s = result.get();
  if (!s.ok()) {
    stack->thread_.join();
    return s;
  }
  return stack;
}

void Stack::ThreadMain(std::promise<Status>* started) {
  su_init();
  su_log_redirect(nullptr, SofiaLog, nullptr);
  // nta_agent_destroy logs every pending transaction at shutdown; keep that quiet.
  if (std::getenv("NTA_DEBUG") == nullptr) su_log_set_level(nta_log, 0);
  if (std::getenv("TPORT_DEBUG") == nullptr) su_log_set_level(tport_log, 0);
  root_ = su_root_create(this);
  Status s = root_ ? Bind() : Status::Internal("su_root_create failed");
  if (!s.ok()) {
    if (agent_) nta_agent_destroy(agent_);
    agent_ = nullptr;
    if (root_) su_root_destroy(root_);
    root_ = nullptr;
    su_deinit();
    started->set_value(s);
    return;
  }
  started->set_value(Status::Ok());
  su_root_run(root_);
  nta_agent_destroy(agent_);
  agent_ = nullptr;
  su_root_destroy(root_);
  root_ = nullptr;
  su_deinit();
}

Status Stack::Bind() {
  std::string host = HostForUrl(options_.listen);
  std::string first = fmt::format("sip:{}:{};transport=udp", host, options_.udp_port);
  agent_ = nta_agent_create(root_, URL_STRING_MAKE(first.c_str()), &Stack::OnMessage,
                            reinterpret_cast<nta_agent_magic_t*>(this), NTATAG_SERVER_RPORT(1),
                            NTATAG_UA(0), TPTAG_IDENT(kNodeIdent), TAG_END());
  if (agent_ == nullptr) {
    return Status::Unavailable(fmt::format("cannot bind SIP UDP {}:{}", host, options_.udp_port));
  }
  // Every transport has an ident: sofia compares a request's ident with each one's unchecked.
  auto add = [this](const std::string& url, bool tls, const char* ident = kNodeIdent) -> Status {
    int rc = tls ? nta_agent_add_tport(agent_, URL_STRING_MAKE(url.c_str()),
                                       TPTAG_CERTIFICATE(options_.tls_dir.c_str()),
                                       TPTAG_TLS_VERIFY_POLICY(TPTLS_VERIFY_NONE),
                                       TPTAG_IDENT(ident), TAG_END())
                 : nta_agent_add_tport(agent_, URL_STRING_MAKE(url.c_str()), TPTAG_IDENT(ident),
                                       TAG_END());
    if (rc < 0) return Status::Unavailable("cannot bind SIP transport " + url);
    return Status::Ok();
  };
  PBX_TRY(add(fmt::format("sip:{}:{};transport=tcp", host, options_.tcp_port), false));
  bool tls = !options_.tls_dir.empty();
  if (tls) PBX_TRY(add(fmt::format("sips:{}:{};transport=tls", host, options_.tls_port), true));

  // The virtual IP: bound now, on the standby too, so takeover has nothing to open. A
  // wildcard listen address already covers it.
  if (!options_.vip.empty() && options_.listen != "0.0.0.0" && options_.listen != "::") {
    FreebindScope freebind;
    std::string vip = HostForUrl(options_.vip);
    PBX_TRY(add(fmt::format("sip:{}:{};transport=udp", vip, options_.udp_port), false, kVipIdent));
    PBX_TRY(add(fmt::format("sip:{}:{};transport=tcp", vip, options_.tcp_port), false, kVipIdent));
    if (tls) {
      PBX_TRY(
          add(fmt::format("sips:{}:{};transport=tls", vip, options_.tls_port), true, kVipIdent));
    }
    has_vip_tports_ = true;
  }

  for (tport_t* tp = tport_primaries(nta_agent_tports(agent_)); tp; tp = tport_next(tp)) {
    const tp_name_t* name = tport_name(tp);
    uint16_t port = static_cast<uint16_t>(std::atoi(name->tpn_port));
    std::string_view proto = name->tpn_proto;
    // The node address's ports (the VIP's are the same numbers when configured).
    if (proto == "udp" && ports_.udp == 0) ports_.udp = port;
    if (proto == "tcp" && ports_.tcp == 0) ports_.tcp = port;
    if (proto == "tls" && ports_.tls == 0) ports_.tls = port;
  }
  PBX_LOG(kInfo, "sip", "listening on {} udp={} tcp={} tls={}{}", options_.listen, ports_.udp,
          ports_.tcp, ports_.tls, options_.vip.empty() ? "" : " vip=" + options_.vip);
  return Status::Ok();
}

tport_t* Stack::VipTport(const char* proto) const {
  if (!has_vip_tports_) return nullptr;
  for (tport_t* tp = tport_primaries(nta_agent_tports(agent_)); tp; tp = tport_next(tp)) {
    const char* ident = tport_ident(tp);
    if (ident && strcmp(ident, kVipIdent) == 0 &&
        strcasecmp(tport_name(tp)->tpn_proto, proto) == 0) {
      return tp;
    }
  }
  return nullptr;
}

void Stack::Post(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || root_ == nullptr) return;
  mailbox_.push_back(std::move(fn));
  if (wake_pending_) return;
  // One su_msg wakes the loop for everything queued until it runs.
  su_msg_r m = SU_MSG_R_INIT;
  if (su_msg_new(m, 0) != 0) return;
  auto wake = [](su_root_magic_t* magic, su_msg_r, su_msg_arg_t*) {
    reinterpret_cast<Stack*>(magic)->DrainMailbox();
  };
  if (su_msg_send_to(m, su_root_task(root_), wake) == 0) wake_pending_ = true;
}

void Stack::DrainMailbox() {
  std::deque<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(mailbox_);
    wake_pending_ = false;
  }
  for (auto& fn : batch) fn();
}

void Stack::Run(const std::function<void()>& fn) {
  if (OnLoopThread()) return fn();
  std::promise<void> done;
  std::future<void> f = done.get_future();
  Post([&] {
    fn();
    done.set_value();
  });
  f.wait();
}

void Stack::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
  }
  if (thread_.joinable()) {
    Post([this] { su_root_break(root_); });
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    thread_.join();
  }
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = true;
  mailbox_.clear();
}

void Stack::SetHandler(sip_method_t method, Handler handler) {
  handlers_[static_cast<int>(method)] = std::move(handler);
}

int Stack::OnMessage(nta_agent_magic_t* self, nta_agent_t*, msg_t* msg, sip_t* sip) {
  auto* stack = reinterpret_cast<Stack*>(self);
  if (sip && sip->sip_request) {
    stack->OnRequest(msg, sip);
  } else {
    msg_destroy(msg);  // a stray response: no transaction of ours wants it
  }
  return 0;
}

void Stack::OnRequest(msg_t* msg, sip_t* sip) {
  Source src;
  su_sockaddr_t const* from = msg_addr(msg);
  std::optional<IpAddress> ip = from ? IpAddress::FromSockaddr(from) : std::nullopt;
  if (!ip) {
    msg_destroy(msg);
    return;
  }
  src.ip = *ip;
  src.ip_text = ip->ToString();
  src.port = ntohs(from->su_port);
  // Admission before any transaction state: a banned source gets nothing at all.
  if (admission_ && !admission_(src)) {
    msg_destroy(msg);
    return;
  }
  sip_method_t method = sip->sip_request->rq_method;
  if (method == sip_method_ack) {  // no transaction: the ACK of a 2xx, or a stray one
    auto ack = handlers_.find(static_cast<int>(method));
    if (ack != handlers_.end()) ack->second(nullptr, sip, src);
    msg_destroy(msg);
    return;
  }
  nta_incoming_t* irq = nta_incoming_create(agent_, nullptr, msg, sip, TAG_END());
  if (irq == nullptr) {
    msg_destroy(msg);
    return;
  }
  tport_t* tp = nta_incoming_transport(agent_, irq, nullptr);
  src.transport = tp ? tport_name(tp)->tpn_proto : "udp";
  if (tp) tport_unref(tp);
  auto it = handlers_.find(static_cast<int>(method));
  if (it != handlers_.end()) {
    it->second(irq, sip, src);
    return;
  }
  if (method == sip_method_options) {
    nta_incoming_treply(irq, SIP_200_OK,
                        SIPTAG_ALLOW_STR("REGISTER, OPTIONS, INVITE, ACK, CANCEL, BYE"), TAG_END());
  } else {
    nta_incoming_treply(irq, SIP_501_NOT_IMPLEMENTED, TAG_END());
  }
  nta_incoming_destroy(irq);
}

}  // namespace pbx::sip
