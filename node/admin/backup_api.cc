// Backup and restore of the configuration (Table::kConfig). Routes are listed in routes.h.
// The file is JSON:
//   {"format": "pbx-config-backup", "version": 1, "created_unix", "node",
//    "records": [{"key", "value": base64url of the stored record}, ...],
//    "sha256": hex SHA-256 of the "records" array as compact JSON}
// The checksum catches a truncated or edited file; it is not a signature (whoever may
// restore may also change every record through the API).

#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "node/admin/credentials.h"
#include "node/admin/routes.h"
#include "node/core/log.h"
#include "replication/store/repos.h"

namespace pbx::admin {
namespace {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;

constexpr std::string_view kFormat = "pbx-config-backup";
constexpr int kVersion = 1;

// The records of a backup file, or a 400 naming what is wrong with it.
std::optional<std::vector<store::ConfigRecord>> ParseBackup(const json& file, Response& res) {
  auto refuse = [&](std::string field, std::string message) {
    SendFieldError(res, {std::move(field), std::move(message)});
    return std::nullopt;
  };
  if (file.value("format", "") != kFormat) {
    return refuse("format", fmt::format("is not \"{}\": not a configuration backup", kFormat));
  }
  auto version = file.find("version");
  if (version == file.end() || !version->is_number_integer() || *version != kVersion) {
    return refuse("version",
                  fmt::format("is {}, but this node reads version {}",
                              version == file.end() ? "missing" : version->dump(), kVersion));
  }
  auto records = file.find("records");
  if (records == file.end() || !records->is_array()) return refuse("records", "must be a list");
  auto sum = file.find("sha256");
  if (sum == file.end() || !sum->is_string()) return refuse("sha256", "is missing");
  if (Sha256Hex(records->dump()) != sum->get<std::string>()) {
    return refuse("sha256", "does not match the records: the file is damaged or was edited");
  }
  std::vector<store::ConfigRecord> out;
  out.reserve(records->size());
  for (const json& r : *records) {
    std::optional<std::string> value;
    if (r.is_object() && r.contains("key") && r["key"].is_string() && r.contains("value") &&
        r["value"].is_string()) {
      value = Base64UrlDecode(r["value"].get<std::string>());
    }
    if (!value) {
      return refuse("records",
                    fmt::format("entry {} is not {{key, value}} in base64url", out.size() + 1));
    }
    out.push_back({r["key"].get<std::string>(), std::move(*value)});
  }
  return out;
}

class BackupRoutes {
 public:
  explicit BackupRoutes(const RouteContext& ctx) : store_(ctx.store), status_(ctx.status) {}

  void Backup(const Request& req, Response& res, const Principal& who) const {
    Result<std::vector<store::ConfigRecord>> records = store::ExportConfig(store_);
    if (!records.ok()) return SendStatus(req, res, records.status());
    json list = json::array();
    for (const store::ConfigRecord& r : *records) {
      list.push_back(json{{"key", r.key}, {"value", Base64UrlEncode(r.value)}});
    }
    const std::string node = status_ ? status_().node_name : "pbx";
    const int64_t now = NowUnix();
    json file{{"format", kFormat},
              {"version", kVersion},
              {"created_unix", now},
              {"node", node},
              {"sha256", Sha256Hex(list.dump())},
              {"records", std::move(list)}};
    PBX_LOG(kInfo, "api", "configuration backup ({} records) downloaded by {}", records->size(),
            who.user);
    res.set_header("Content-Disposition",
                   fmt::format("attachment; filename=\"pbx-backup-{}-{}.json\"", node, now));
    SendJson(res, 200, file);
  }

  // Replaces the whole configuration in one replicated commit, or changes nothing.
  void Restore(const Request& req, Response& res, const Principal& who) const {
    std::optional<json> body = ParseBody(req, res);
    if (!body) return;
    std::optional<std::vector<store::ConfigRecord>> records = ParseBackup(*body, res);
    if (!records) return;
    store::WriteSet writes;
    if (Status st = store::AddConfigReplace(store_, *records, writes); !st.ok()) {
      if (st.code() == Status::Code::kInvalidArgument) {
        return SendFieldError(res, {"records", st.message()});
      }
      return SendStatus(req, res, st);
    }
    AddAudit(req, who, "config.restore", "system",
             fmt::format("{} records from a backup of {} made at {}", records->size(),
                         body->value("node", "?"), body->value("created_unix", int64_t{0})),
             writes);
    Result<store::SeqNo> seq = store_.Commit(writes, store::Durability::kReplicated);
    if (!seq.ok()) return SendStatus(req, res, seq.status());
    PBX_LOG(kInfo, "api", "configuration restored ({} records) by {} at seq {}", records->size(),
            who.user, *seq);
    SendJson(res, 200, json{{"restored", records->size()}});
  }

 private:
  store::StateStore& store_;
  std::function<NodeStatus()> status_;
};

}  // namespace

void AddBackupRoutes(httplib::Server& server, const RouteContext& ctx) {
  auto routes = std::make_shared<BackupRoutes>(ctx);
  server.Get("/api/v1/backup",
             ctx.Bind(Permission::kManageSettings, routes, &BackupRoutes::Backup));
  server.Post("/api/v1/restore",
              ctx.Bind(Permission::kManageSettings, routes, &BackupRoutes::Restore));
}

}  // namespace pbx::admin
