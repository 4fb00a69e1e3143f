#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "media/rtp/relay.h"
#include "node/core/status.h"
#include "replication/store/state_store.h"

// The SIP service as node/ sees it: the signalling thread with its transports, the
// registrar and intrusion protection, and the committer thread that writes for them.
// No sofia-sip type appears here.
namespace pbx::sip {

struct SipOptions {
  std::string listen = "0.0.0.0";
  std::string vip;  // bound too (IP_FREEBIND) when set and `listen` is not a wildcard
  uint16_t udp_port = 5060;
  uint16_t tcp_port = 5060;
  uint16_t tls_port = 5062;  // the seed's default (FEATURES §8.2), not IANA 5061
  std::string tls_dir;       // agent.pem (key + certificate) and cafile.pem; empty: no TLS
  // 401s offer SHA-256 (first, RFC 8760) and MD5; false: MD5 only. libre/baresip 1.x fail
  // on a 401 that lists any algorithm other than MD5, even after an MD5 one.
  bool digest_sha256 = true;
  // Calls: the media relay binds `media_address` (the VIP when clustered, else the node
  // address; the SDP and Contact headers name it) on even ports of [rtp_port_min, max].
  std::string media_address = "127.0.0.1";
  uint16_t rtp_port_min = 10000;
  uint16_t rtp_port_max = 20000;
  // A pair member: Stop() and a demotion leave calls in progress to the peer (no BYE, the
  // runtime records stay); a standalone node's Stop() ends them.
  bool pair_member = false;
  // When this node starts serving, each trunk re-registers after a random delay in
  // [0, this] ms (a pair's [cluster] setting; 0: at once).
  uint32_t trunk_takeover_window_ms = 0;
};

// One call in progress as `pbxctl calls` shows it.
struct CallSummary {
  uint64_t id = 0;
  std::string caller;
  std::string caller_name;
  std::string callee;
  std::string trunk;  // the trunk of a call that leaves or enters through one
  std::string state;  // "ringing" | "talking"
  int64_t start_unix = 0;
  int64_t answer_unix = 0;  // 0 while ringing
  uint16_t a_port = 0;      // the relay's ports
  uint16_t b_port = 0;
};

struct SipPorts {
  uint16_t udp = 0;
  uint16_t tcp = 0;
  uint16_t tls = 0;
};

class SipService {
 public:
  // `store` is what SIP writes through (the node's WriteGate); `serving` says whether this
  // node answers requests now (a standby keeps its sockets and answers nothing). Both
  // must outlive the service; `serving` is called on the signalling thread.
  static Result<std::unique_ptr<SipService>> Start(const SipOptions& options,
                                                   store::StateStore& store,
                                                   std::function<bool()> serving);
  virtual ~SipService() = default;
  virtual SipPorts ports() const = 0;
  // The calls in progress, fetched from the signalling thread. Thread-safe.
  virtual std::vector<CallSummary> Calls() = 0;
  // Rebuilds every answered call of the runtime table (the node just started serving:
  // a takeover, a switchover, or a restart). Returns how many; thread-safe, blocks until
  // the signalling thread is done.
  virtual size_t AdoptCalls() = 0;
  // The media relay's counters: relays allocated now, and packets relayed and dropped since
  // the service started (all zero when no relay exists). Thread-safe.
  virtual media::RelayTotals relay_totals() const = 0;
  // Stops the signalling and committer threads. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace pbx::sip
