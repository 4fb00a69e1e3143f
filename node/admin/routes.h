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

  // A guarded handler that calls `method` of a route group's shared `routes` object.
  template <typename Routes, typename Method>
  httplib::Server::Handler Bind(Permission permission, std::shared_ptr<Routes> routes,
                                Method method) const {
    return guarded(permission, [routes = std::move(routes), method](
                                   const httplib::Request& req, httplib::Response& res,
                                   const Principal& who) { ((*routes).*method)(req, res, who); });
  }
};

// users_api.cc:
//   GET    /api/v1/users                 admin
//   POST   /api/v1/users                 admin   {name, role, password}
//   PUT    /api/v1/users/{name}          admin   {role?, password?}
//   DELETE /api/v1/users/{name}          admin
//   GET    /api/v1/settings              admin
//   PUT    /api/v1/settings              admin   {sip_realm, ban_enabled, ban_max_retries,
//                                        ban_find_time, ban_time, ban_trust_private,
//                                        ip_allow, ip_deny}: any subset
//   GET    /api/v1/audit?limit=N         admin   newest first
//   GET    /api/v1/me                    anyone logged in: who am I (and my extension)
//   PUT    /api/v1/me                    extension users: {email, voicemail, voicemail_pin,
//                                        password} of their own extension
void AddAccountRoutes(httplib::Server& server, const RouteContext& ctx);

// backup_api.cc:
//   GET    /api/v1/backup                admin   the configuration as a file (format in
//                                        backup_api.cc), without runtime state or records
//   POST   /api/v1/restore               admin   that file: replaces the configuration in one
//                                        replicated commit, or 400 and nothing changes
void AddBackupRoutes(httplib::Server& server, const RouteContext& ctx);

// certificate_api.cc:
//   GET    /api/v1/certificate           admin   what HTTPS serves: {source: uploaded |
//                                        self-signed, subject, issuer, not_before_unix,
//                                        not_after_unix, sha256, names}
//   PUT    /api/v1/certificate           admin   {key, certificate, chain?} PEM: checked with
//                                        OpenSSL, stored (replicated config), served to new
//                                        connections at once on both nodes
// `self_signed_file` is the node's own certificate, served until one is uploaded.
void AddCertificateRoutes(httplib::SSLServer& server, const RouteContext& ctx,
                          const std::string& self_signed_file);
// trunks_api.cc:
//   GET    /api/v1/trunks                admin, operator, api: with each trunk's status
//   POST   /api/v1/trunks                admin, operator, api   {name, host, mode, ...}
//   GET    /api/v1/trunks/{name}         admin, operator, api
//   PUT    /api/v1/trunks/{name}         admin, operator, api   any field but name
//   DELETE /api/v1/trunks/{name}         admin, operator, api
void AddTrunkRoutes(httplib::Server& server, const RouteContext& ctx);

// routing_api.cc: the dial plan, one shape per kind (KIND below; {key} is the name, or the
// trunk of an inbound route, or the number of a blacklist entry):
//   GET /api/v1/KIND, GET /api/v1/KIND/{key}          admin, operator, api
//   POST /api/v1/KIND, PUT|DELETE /api/v1/KIND/{key}  admin, operator, api
//   KIND: routes/outbound, routes/inbound, dids, blacklist, time-conditions, permissions,
//         pin-sets
//   GET|PUT /api/v1/routing-settings   {block_anonymous, office_pause, office_pause_destination}
void AddRoutingRoutes(httplib::Server& server, const RouteContext& ctx);
// calls_api.cc:
//   GET /api/v1/calls   admin, operator, api   {calls: [...], relays: N (allocated now),
//                       relay: {packets, bytes, dropped} (RTP and RTCP since start)}
//   GET /api/v1/cdr     admin, operator, api   ?from=&to= (unix s, start time), caller=,
//                       callee=, type=internal|inbound|outbound, status=answered|no_answer|
//                       busy|failed|cancelled, offset= (0-), limit= (1-10000, 100),
//                       format=json|csv: {records, offset, limit, more}, oldest first; or
//                       the page as RFC 4180 CSV (a download)
//   GET /api/v1/me/cdr  extension users: the same for their own extension's calls (placed
//                       or received); caller= and callee= are refused
void AddCallRoutes(httplib::Server& server, const RouteContext& ctx);

// forwarding_api.cc: call forward (always, busy, no answer), follow-me and DND (FEATURES.md
// §7.1, §7.2): {dnd, dnd_status, always|busy|no_answer: {active, number}, ring_seconds,
// follow_me: {enabled, ring_seconds, numbers: [{number, ring_seconds}]}}; PUT: any subset
//   GET|PUT /api/v1/extensions/{number}/forwarding   admin, operator, api
//   GET|PUT /api/v1/me/forwarding                    extension users: their own
void AddForwardingRoutes(httplib::Server& server, const RouteContext& ctx);

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
