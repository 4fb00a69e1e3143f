#include "node/admin/api_http.h"

#include <chrono>
#include <ctime>
#include <utility>

#include "node/admin/credentials.h"
#include "node/core/log.h"

namespace pbx::admin {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;

bool Allowed(store::Role role, Permission permission) {
  if (permission == Permission::kOwnAccount) return true;
  switch (role) {
    case store::Role::kAdmin:
      return true;
    case store::Role::kOperator:
    case store::Role::kApi:
      return permission == Permission::kViewStatus || permission == Permission::kManageExtensions ||
             permission == Permission::kManageSecurity;
    case store::Role::kExtension:
      return false;  // the portal: kOwnAccount only
  }
  return false;
}

int64_t NowUnix() { return static_cast<int64_t>(std::time(nullptr)); }

namespace {
// Never throws: a value from the store that is not valid UTF-8 is replaced, not fatal.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }
}  // namespace

void SendJson(Response& res, int http_status, const json& body) {
  res.status = http_status;
  res.set_content(Dump(body), "application/json");
}

void SendError(Response& res, int http_status, std::string_view code, std::string_view message,
               std::string_view field) {
  json error = {{"code", code}, {"message", message}};
  if (!field.empty()) error["field"] = field;
  if (http_status == 401) res.set_header("WWW-Authenticate", "Bearer realm=\"pbx\"");
  SendJson(res, http_status, json{{"error", std::move(error)}});
}

void SendFieldError(Response& res, const FieldError& e) {
  SendError(res, 400, "invalid_argument", e.field.empty() ? e.message : e.field + " " + e.message,
            e.field);
}

void SendStatus(const Request& req, Response& res, const Status& st, std::string_view field) {
  switch (st.code()) {
    case Status::Code::kInvalidArgument:
      return SendError(res, 400, "invalid_argument", st.message(), field);
    case Status::Code::kUnauthenticated:
      return SendError(res, 401, "unauthenticated", st.message());
    case Status::Code::kPermissionDenied:
      return SendError(res, 403, "permission_denied", st.message());
    case Status::Code::kNotFound:
      return SendError(res, 404, "not_found", st.message(), field);
    case Status::Code::kConflict:
      return SendError(res, 409, "conflict", st.message(), field);
    case Status::Code::kUnavailable:
    case Status::Code::kTimeout:
      PBX_LOG(kWarn, "api", "{} {}: {}", req.method, req.path, st.ToString());
      return SendError(res, 503, "unavailable", st.message());
    case Status::Code::kOk:
    case Status::Code::kCorruption:
    case Status::Code::kIo:
    case Status::Code::kInternal:
      break;
  }
  PBX_LOG(kError, "api", "{} {}: {}", req.method, req.path, st.ToString());
  SendError(res, 500, "internal", "internal error");
}

std::optional<json> ParseBody(const Request& req, Response& res) {
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    SendError(res, 400, "invalid_argument", "body is not valid JSON");
    return std::nullopt;
  }
  if (!body.is_object()) {
    SendError(res, 400, "invalid_argument", "body must be a JSON object");
    return std::nullopt;
  }
  return body;
}

std::string ChangedFields(const json& body) {
  std::string out;
  for (const auto& [key, value] : body.items()) {
    if (!out.empty()) out += ",";
    out += key;
  }
  return out;
}

Status SetCredentials(store::Extension& ext, const std::string& realm,
                      const std::string& password) {
  ext.realm = realm;
  PBX_ASSIGN_OR_RETURN(ext.ha1_md5, DigestHa1Md5(ext.number, realm, password));
  PBX_ASSIGN_OR_RETURN(ext.ha1_sha256, DigestHa1Sha256(ext.number, realm, password));
  return Status::Ok();
}

Status AddExtensionUpdate(store::StateStore& store, ExtensionInput& in, store::WriteSet& writes) {
  if (in.password) {
    PBX_ASSIGN_OR_RETURN(store::SystemSettings settings, store::SettingsRepo(store).Get());
    PBX_TRY(SetCredentials(in.ext, settings.sip_realm, *in.password));
  }
  in.ext.updated_unix = NowUnix();
  store::ExtensionRepo(store).Put(in.ext, /*create=*/false, writes);
  writes.ExpectPresent(store::Table::kConfig, store::ExtensionRepo::Prefix() + in.ext.number);
  return Status::Ok();
}

// Commits `writes`; a Conflict (a precondition failed: the record appeared or vanished
// meanwhile) is reported as `conflict_status` with `conflict_message`.
bool CommitOrReply(const Request& req, Response& res, store::StateStore& store,
                   const store::WriteSet& writes, int conflict_status,
                   std::string_view conflict_message) {
  Result<store::SeqNo> seq = store.Commit(writes, store::Durability::kReplicated);
  if (seq.ok()) return true;
  if (seq.status().code() == Status::Code::kConflict) {
    SendError(res, conflict_status, conflict_status == 404 ? "not_found" : "conflict",
              conflict_message);
  } else {
    SendStatus(req, res, seq.status());
  }
  return false;
}

void AddAudit(const Request& req, const Principal& who, std::string action, std::string target,
              std::string detail, store::WriteSet& writes) {
  store::AuditEntry entry;
  entry.unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  entry.user = who.user;
  entry.role = std::string(store::RoleName(who.role));
  entry.source = req.remote_addr;
  entry.action = std::move(action);
  entry.target = std::move(target);
  entry.detail = std::move(detail);
  store::AuditRepo::Append(entry, writes);
}

}  // namespace pbx::admin
