#pragma once

#include <httplib.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "node/admin/extension_json.h"
#include "node/core/status.h"
#include "replication/store/repos.h"

// What the route groups of the REST API share (api_server.cc, web_routes.cc, users_api.cc):
// reply helpers, the caller's identity, and what each role may do. Internal to pbx_admin.
// Every function here is thread-safe (httplib calls handlers on its worker threads).
namespace pbx::admin {

// What the API lets a role do (FEATURES.md §16).
enum class Permission {
  kViewStatus,        // admin, operator, api
  kManageExtensions,  // admin, operator, api
  kManageCluster,     // admin
  kManageSecurity,    // admin, operator, api: bans (seed 004's intrusion protection)
  kManageUsers,       // admin
  kManageSettings,    // admin: settings, backup and restore, the HTTPS certificate
  kViewAudit,         // admin
  kOwnAccount,        // everyone who logged in: who am I, change my own extension's settings
};
bool Allowed(store::Role role, Permission permission);

// The authenticated caller of a request.
struct Principal {
  std::string user;
  store::Role role;
  bool cookie = false;  // a browser session (subject to CSRF checks), not a bearer token
};

// A handler behind authentication and a role check.
using GuardedHandler =
    std::function<void(const httplib::Request&, httplib::Response&, const Principal&)>;

int64_t NowUnix();

void SendJson(httplib::Response& res, int http_status, const nlohmann::json& body);
// {"error": {"code", "message"[, "field"]}}
void SendError(httplib::Response& res, int http_status, std::string_view code,
               std::string_view message, std::string_view field = {});
void SendFieldError(httplib::Response& res, const FieldError& e);
// Maps a Status to the HTTP reply. Internal details (store corruption, I/O) are logged and
// replaced by a generic message.
void SendStatus(const httplib::Request& req, httplib::Response& res, const Status& st,
                std::string_view field = {});
// The request body as a JSON object, or nullopt after sending 400.
std::optional<nlohmann::json> ParseBody(const httplib::Request& req, httplib::Response& res);

// The keys of a request body, comma-separated: what an update changed, for the audit log.
std::string ChangedFields(const nlohmann::json& body);

// Sets both HA1 values of `ext` for `password` under `realm`.
Status SetCredentials(store::Extension& ext, const std::string& realm, const std::string& password);

// Adds to `writes` the update of the existing extension `in.ext` (validated by
// ParseExtensionBody): stamps updated_unix, hashes a new password under the realm in force
// now (which may differ from the realm of the old HA1 values if the admin changed it since),
// and requires the extension to still exist, so that an update racing a delete fails the
// commit with Conflict instead of bringing the extension back.
Status AddExtensionUpdate(store::StateStore& store, ExtensionInput& in, store::WriteSet& writes);

// Commits `writes` (kReplicated); a Conflict (a precondition failed: the record appeared or
// vanished meanwhile) is answered `conflict_status` ("not_found" for 404, else "conflict")
// with `conflict_message`, any other failure through SendStatus. True if committed.
bool CommitOrReply(const httplib::Request& req, httplib::Response& res, store::StateStore& store,
                   const store::WriteSet& writes, int conflict_status,
                   std::string_view conflict_message);

// Adds an audit record of a change made through the API to `writes`, so that the change and
// its record commit together (or not at all). `action` is "<object>.<verb>", e.g.
// "extension.create"; `target` names the object; `detail` says what changed (never a secret).
void AddAudit(const httplib::Request& req, const Principal& who, std::string action,
              std::string target, std::string detail, store::WriteSet& writes);

}  // namespace pbx::admin
