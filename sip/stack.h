#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include <sofia-sip/nta.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/su_wait.h>  // first: sofia headers need su_config.h before the rest
#include <sofia-sip/tport.h>

#include "node/core/status.h"
#include "sip/registrar/ban_list.h"

// The signalling thread: one su_root, one nta agent (the transaction layer, used directly:
// NOTES-deps measured it carrying far more load than nua), and a mailbox for other threads.
// Internal to sip/: its users are the request handlers (registrar, later calls), which
// run on the signalling thread and may use sofia types. node/ sees sip_service.h only.
namespace pbx::sip {

struct StackOptions {
  std::string listen = "0.0.0.0";  // the node's address
  std::string vip;  // also bound (IP_FREEBIND, so a standby holds it before takeover); may be ""
  uint16_t udp_port = 5060;  // 0: ephemeral (tests); see Stack::ports()
  uint16_t tcp_port = 5060;
  uint16_t tls_port = 5062;  // 0 with tls_dir empty: no TLS
  std::string tls_dir;       // dir/agent.pem (key + certificate) and dir/cafile.pem
};

struct BoundPorts {
  uint16_t udp = 0;
  uint16_t tcp = 0;
  uint16_t tls = 0;
};

// Where a request came from.
struct Source {
  IpAddress ip;
  std::string ip_text;
  uint16_t port = 0;
  std::string transport;  // "udp" | "tcp" | "tls"
};

class Stack {
 public:
  // Decides, before a transaction exists, whether a request gets any answer (bans, the
  // deny list, a node that does not serve). Signalling thread.
  using Admission = std::function<bool(const Source&)>;
  // Handles a request in a new server transaction. Reply now or later (keep `irq`; it
  // lives until replied to or until the stack stops). Signalling thread. An ACK has no
  // transaction: its handler gets `irq` nullptr and `sip` only for the call.
  using Handler = std::function<void(nta_incoming_t* irq, const sip_t* sip, const Source&)>;

  // Binds every transport and starts the thread. Unavailable if a socket cannot be bound.
  static Result<std::unique_ptr<Stack>> Start(const StackOptions& options);
  ~Stack();
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  // Thread-safe. Runs `fn` on the signalling thread; dropped if the stack stops first.
  void Post(std::function<void()> fn);
  // Thread-safe. Runs `fn` on the signalling thread and waits for it.
  void Run(const std::function<void()>& fn);
  // Stops the loop and joins the thread; every transaction still pending is dropped.
  void Stop();

  BoundPorts ports() const { return ports_; }
  bool OnLoopThread() const { return std::this_thread::get_id() == thread_.get_id(); }

  // Signalling thread only (or before the first request, from Run()).
  void SetAdmission(Admission admission) { admission_ = std::move(admission); }
  void SetHandler(sip_method_t method, Handler handler);
  nta_agent_t* agent() const { return agent_; }
  su_root_t* root() const { return root_; }

  // The VIP's own transports carry this ident (TPTAG_IDENT). A request sent with
  // TPTAG_IDENT(kVipIdent) leaves from the VIP and its Via names it, so its responses reach
  // whichever node holds the VIP: what lets a new active go on with a ringing call.
  static constexpr char kVipIdent[] = "vip";
  static constexpr char kNodeIdent[] = "node";  // the listen address's transports
  // Whether the VIP has transports of its own (a VIP, and a listen address that is not a
  // wildcard); without, requests leave from the listen address.
  bool has_vip_tports() const { return has_vip_tports_; }
  // The VIP's primary transport for `proto` ("udp", "tcp", "tls"); nullptr if none.
  // Signalling thread.
  tport_t* VipTport(const char* proto) const;

 private:
  explicit Stack(const StackOptions& options);
  void ThreadMain(std::promise<Status>* started);
  Status Bind();
  void DrainMailbox();
  static int OnMessage(nta_agent_magic_t* self, nta_agent_t* agent, msg_t* msg, sip_t* sip);
  void OnRequest(msg_t* msg, sip_t* sip);

  StackOptions options_;
  BoundPorts ports_;
  std::thread thread_;
  su_root_t* root_ = nullptr;
  nta_agent_t* agent_ = nullptr;
  bool has_vip_tports_ = false;
  Admission admission_;
  std::unordered_map<int, Handler> handlers_;  // by sip_method_t

  std::mutex mu_;
  std::deque<std::function<void()>> mailbox_;  // guarded by mu_
  bool wake_pending_ = false;                  // guarded by mu_
  bool stopping_ = false;                      // guarded by mu_
};

}  // namespace pbx::sip
