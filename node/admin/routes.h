#pragma once

#include <httplib.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "node/admin/api_http.h"
#include "node/admin/api_server.h"
#include "node/admin/server_thread.h"
#include "node/core/status.h"
#include "replication/store/state_store.h"

// Route groups of the API server besides its own (api_server.cc), each in its own file.
// Internal to pbx_admin.
namespace pbx::admin {

// What a route group needs from the server. Everything here is thread-safe and outlives
// the routes.
struct RouteContext {
  store::StateStore& store;
  const std::function<NodeStatus()>& status;  // may be empty
  // Wraps a handler with authentication (session.h), the role check and exception safety.
  std::function<httplib::Server::Handler(Permission, GuardedHandler)> guarded;
  const std::function<CallsSnapshot()>& calls;  // may be empty (no SIP)
};

// users_api.cc:
//   GET    /api/v1/users                 admin
//   POST   /api/v1/users                 admin   {name, role, password}
//   PUT    /api/v1/users/{name}          admin   {role?, password?}
//   DELETE /api/v1/users/{name}          admin
//   GET    /api/v1/settings              admin
//   PUT    /api/v1/settings              admin   {sip_realm}
//   GET    /api/v1/audit?limit=N         admin   newest first
//   GET    /api/v1/me                    anyone logged in: who am I (and my extension)
//   PUT    /api/v1/me                    extension users: {email, voicemail, voicemail_pin,
//                                        password} of their own extension
void AddAccountRoutes(httplib::Server& server, const RouteContext& ctx);

// calls_api.cc:
//   GET /api/v1/calls   admin, operator, api   {calls: [...], relays: N}
//   GET /api/v1/cdr     admin, operator, api   ?from=&to= (unix s, start time), caller=,
//                       callee=, type=internal|inbound|outbound, limit= (1-10000, 100)
void AddCallRoutes(httplib::Server& server, const RouteContext& ctx);

// web_routes.cc:
//   GET /api/v1/web/info   no login: node name, role, whether it serves, the VIP, so that a
//                          standby's page can point to the active node
//   GET /...               the files of `web_dir` (none if empty); Unavailable if it is set
//                          but not a directory
Status AddWebRoutes(httplib::Server& server, const RouteContext& ctx, const std::string& web_dir);

// A plain-HTTP server that answers every request with a redirect to the same host and path
// over HTTPS on `https_port`.
class HttpRedirect {
 public:
  HttpRedirect() = default;
  HttpRedirect(const HttpRedirect&) = delete;
  HttpRedirect& operator=(const HttpRedirect&) = delete;
  ~HttpRedirect() { Stop(); }
  uint16_t port() const { return thread_ ? thread_->port() : 0; }
  void Stop() {
    if (thread_) thread_->Stop();
  }

 private:
  friend Result<std::unique_ptr<HttpRedirect>> StartHttpRedirect(const std::string&, uint16_t,
                                                                 uint16_t);
  httplib::Server server_;
  std::unique_ptr<ServerThread> thread_;
};
Result<std::unique_ptr<HttpRedirect>> StartHttpRedirect(const std::string& address, uint16_t port,
                                                        uint16_t https_port);

}  // namespace pbx::admin
