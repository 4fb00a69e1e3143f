#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "node/core/status.h"
#include "replication/store/state_store.h"
#include "sip/sip_service.h"

namespace pbx::admin {

// The pair as this node sees it: the peer (from its heartbeats), replication, the virtual
// IP, the witness and the last failover.
struct ClusterStatus {
  std::string peer_name;  // empty until the peer was heard
  std::string peer_role;  // as its last heartbeat said
  uint64_t peer_epoch = 0;
  uint64_t peer_last_seq = 0;
  bool peer_alive = false;
  int64_t peer_heard_ms_ago = -1;  // -1: never
  double hb_rtt_ms = 0;
  uint64_t lag_seqs = 0;  // how far the standby is behind the active
  double lag_ms = 0;
  bool degraded = false;  // the active commits without its standby
  int64_t degraded_since_unix = 0;
  std::string vip;        // "10.99.0.100/24", empty if none
  std::string vip_owner;  // node name, empty if nobody holds it
  std::string witness;    // "none", "unreachable", "held by pbx-a", ...
  int64_t last_failover_unix = 0;
  std::string last_failover_reason;
};

// What GET /api/v1/status reports about this node. Filled by pbxd on each request.
struct NodeStatus {
  std::string node_name;
  std::string role = "standalone";  // standalone | starting | syncing | standby | active | ...
  std::string role_reason;          // why it has that role
  bool serving = true;              // takes writes (standalone, or active within its lease)
  std::string version;
  uint64_t epoch = 0;
  uint64_t last_seq = 0;
  int64_t started_unix = 0;
  std::optional<ClusterStatus> cluster;  // absent on a single node
};

// Where pbxd looks for the web admin when the bootstrap file names no [api] web_dir: the
// installed copy (<prefix>/share/pbx/web) if it exists, else the source tree's node/admin/web
// (a run from the build directory). Empty if neither exists.
std::string DefaultWebDir();

// What an admin may ask of the pair (POST /api/v1/cluster/...). Unset on a single node,
// where those endpoints answer 404.
struct ClusterOps {
  std::function<Status()> switchover;
  std::function<Status(bool on, bool force)> maintenance;
};

// What GET /api/v1/calls shows: the SIP service's calls and its media relay's counters.
struct CallsSnapshot {
  std::vector<sip::CallSummary> calls;
  media::RelayTotals relay;
};

struct ApiOptions {
  std::string bind_address = "127.0.0.1";
  uint16_t port = 8443;   // 0: pick a free port (see ApiServer::port())
  std::string cert_file;  // PEM certificate
  std::string key_file;   // PEM private key
  int threads = 4;
  int64_t token_ttl_seconds = 12 * 3600;  // lifetime of tokens and browser sessions
  // The web admin's static files (index.html, ES modules, CSS), served at "/"; empty: no
  // web admin, only the API. It must exist when set.
  std::string web_dir;
  // A plain-HTTP port on bind_address that redirects every request to HTTPS; nullopt: none,
  // 0: any free port (see ApiServer::http_port()).
  std::optional<uint16_t> http_port;
  // The calls in progress (GET /api/v1/calls); empty: that endpoint answers 503.
  std::function<CallsSnapshot()> calls;
};

// The REST API (JSON under /api/v1/) and the web admin over HTTPS. Runs its own thread pool;
// handlers read the store directly and write through its transactions. `store` and `status` must
// outlive it.
class ApiServer {
 public:
  virtual ~ApiServer() = default;
  // Binds, starts serving, and returns once the socket listens.
  static Result<std::unique_ptr<ApiServer>> Start(const ApiOptions& options,
                                                  store::StateStore& store,
                                                  std::function<NodeStatus()> status,
                                                  ClusterOps cluster_ops = {});
  // The port actually bound.
  virtual uint16_t port() const = 0;
  // The plain-HTTP redirect's port; 0 when there is none.
  virtual uint16_t http_port() const = 0;
  // Stops accepting and waits for requests in flight. Idempotent; the destructor calls it.
  virtual void Stop() = 0;
};

}  // namespace pbx::admin
