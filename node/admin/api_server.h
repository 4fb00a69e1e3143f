#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "node/core/status.h"
#include "replication/store/state_store.h"

namespace pbx::admin {

// What GET /api/v1/status reports about this node. Filled by pbxd on each request.
struct NodeStatus {
  std::string node_name;
  std::string role = "standalone";  // standalone | starting | syncing | standby | active | ...
  std::string version;
  uint64_t epoch = 0;
  uint64_t last_seq = 0;
  int64_t started_unix = 0;
};

struct ApiOptions {
  std::string bind_address = "127.0.0.1";
  uint16_t port = 8443;   // 0: pick a free port (see ApiServer::port())
  std::string cert_file;  // PEM certificate
  std::string key_file;   // PEM private key
  int threads = 4;
  int64_t token_ttl_seconds = 12 * 3600;  // lifetime of tokens issued by POST /api/v1/login
};

// The REST API (JSON under /api/v1/) over HTTPS. Runs its own thread pool; handlers read the
// store directly and write through its transactions. `store` and `status` must outlive it.
class ApiServer {
 public:
  virtual ~ApiServer() = default;
  // Binds, starts serving, and returns once the socket listens.
  static Result<std::unique_ptr<ApiServer>> Start(const ApiOptions& options,
                                                  store::StateStore& store,
                                                  std::function<NodeStatus()> status);
  // The port actually bound.
  virtual uint16_t port() const = 0;
  // Stops accepting and waits for requests in flight. Idempotent; the destructor calls it.
  virtual void Stop() = 0;
};

}  // namespace pbx::admin
