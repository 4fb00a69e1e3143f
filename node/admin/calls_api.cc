// Calls in progress and call detail records (routes listed in routes.h). The calls come
// from the SIP service's signalling thread through its mailbox (ApiOptions::calls); the
// CDRs from the store's records table.

#include <cstdlib>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "node/admin/routes.h"
#include "replication/store/repos.h"

namespace pbx::admin {
namespace {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;

constexpr size_t kDefaultCdrLimit = 100;
constexpr size_t kMaxCdrLimit = 10000;

// An optional integer query parameter in [min, max]; false after sending 400.
bool IntParam(const Request& req, Response& res, const char* name, int64_t min, int64_t max,
              int64_t* out) {
  if (!req.has_param(name)) return true;
  std::string text = req.get_param_value(name);
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < min || v > max) {
    SendError(res, 400, "invalid_argument",
              fmt::format("{} must be an integer {}-{}", name, min, max), name);
    return false;
  }
  *out = v;
  return true;
}

json CdrToJson(const store::Cdr& c) {
  return json{{"id", c.id},
              {"start_unix_ms", c.start_unix_ms},
              {"answer_unix_ms", c.answer_unix_ms},
              {"end_unix_ms", c.end_unix_ms},
              {"caller", c.caller},
              {"caller_name", c.caller_name},
              {"callee", c.callee},
              {"final_callee", c.final_callee},
              {"duration", c.duration_seconds},
              {"billable", c.billable_seconds},
              {"trunk", c.trunk},
              {"type", c.type},
              {"status", c.status},
              {"cause", c.cause},
              {"hangup_side", c.hangup_side},
              {"recorded", c.recorded}};
}

void ListCalls(const RouteContext& ctx, const Request&, Response& res) {
  if (!ctx.calls) return SendError(res, 503, "unavailable", "SIP is not running");
  CallsSnapshot snap = ctx.calls();
  json list = json::array();
  for (const sip::CallSummary& c : snap.calls) {
    list.push_back(json{{"id", c.id},
                        {"caller", c.caller},
                        {"caller_name", c.caller_name},
                        {"callee", c.callee},
                        {"trunk", c.trunk},
                        {"state", c.state},
                        {"start_unix", c.start_unix},
                        {"answer_unix", c.answer_unix},
                        {"rtp_ports", {c.a_port, c.b_port}}});
  }
  SendJson(res, 200, json{{"calls", std::move(list)}, {"relays", snap.relays}});
}

void ListCdr(store::StateStore& store, const Request& req, Response& res) {
  store::CdrQuery q;
  int64_t from = 0, to = 0, limit = kDefaultCdrLimit;
  constexpr int64_t kMaxUnix = INT64_MAX / 1000 - 1;
  if (!IntParam(req, res, "from", 0, kMaxUnix, &from) ||
      !IntParam(req, res, "to", 0, kMaxUnix, &to) ||
      !IntParam(req, res, "limit", 1, kMaxCdrLimit, &limit)) {
    return;
  }
  q.from_unix_ms = from * 1000;
  if (req.has_param("to")) q.to_unix_ms = to * 1000;
  q.limit = static_cast<size_t>(limit);
  q.caller = req.get_param_value("caller");
  q.callee = req.get_param_value("callee");
  q.type = req.get_param_value("type");
  if (!q.type.empty() && q.type != "internal" && q.type != "inbound" && q.type != "outbound") {
    return SendError(res, 400, "invalid_argument", "type must be internal, inbound or outbound",
                     "type");
  }
  Result<std::vector<store::Cdr>> rows = store::CdrRepo(store).Query(q);
  if (!rows.ok()) return SendStatus(req, res, rows.status());
  json list = json::array();
  for (const store::Cdr& c : *rows) list.push_back(CdrToJson(c));
  SendJson(res, 200, json{{"records", std::move(list)}});
}

}  // namespace

void AddCallRoutes(httplib::Server& server, const RouteContext& ctx) {
  server.Get("/api/v1/calls", ctx.guarded(Permission::kViewStatus,
                                          [ctx](const Request& req, Response& res,
                                                const Principal&) { ListCalls(ctx, req, res); }));
  store::StateStore* store = &ctx.store;
  server.Get("/api/v1/cdr", ctx.guarded(Permission::kViewStatus,
                                        [store](const Request& req, Response& res,
                                                const Principal&) { ListCdr(*store, req, res); }));
}

}  // namespace pbx::admin
