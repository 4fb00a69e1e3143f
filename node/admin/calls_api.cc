// Calls in progress and call detail records (routes listed in routes.h). The calls come
// from the SIP service's signalling thread through its mailbox (ApiOptions::calls); the
// CDRs from the store's records table.

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "node/admin/routes.h"
#include "node/core/status.h"
#include "replication/store/repos.h"

namespace pbx::admin {
namespace {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;

constexpr size_t kDefaultCdrLimit = 100;
constexpr size_t kMaxCdrLimit = 10000;
constexpr size_t kMaxCdrOffset = 1000000;
constexpr const char* kCdrStatuses[] = {"answered", "no_answer", "busy", "failed", "cancelled"};

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
              {"recorded", c.recorded},
              {"pin", c.pin}};
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
  // Counters since pbxd started, both directions together: what a load test reads before
  // and after to compute loss (bench/run.sh sip --only media).
  json relay{{"packets", snap.relay.packets},
             {"bytes", snap.relay.bytes},
             {"dropped", snap.relay.dropped}};
  SendJson(res, 200,
           json{{"calls", std::move(list)}, {"relays", snap.relay.relays}, {"relay", relay}});
}

// A CDR search from the query string (routes.h). `own` is the extension whose calls an
// extension user sees: it replaces the caller and callee filters, which it refuses.
struct CdrSearch {
  store::CdrQuery query;
  size_t offset = 0;
  size_t limit = kDefaultCdrLimit;
  std::string status;  // filtered here
  bool csv = false;
};

std::optional<CdrSearch> ReadCdrSearch(const Request& req, Response& res, bool own) {
  CdrSearch s;
  int64_t from = 0, to = 0, offset = 0, limit = kDefaultCdrLimit;
  constexpr int64_t kMaxUnix = INT64_MAX / 1000 - 1;
  if (!IntParam(req, res, "from", 0, kMaxUnix, &from) ||
      !IntParam(req, res, "to", 0, kMaxUnix, &to) ||
      !IntParam(req, res, "offset", 0, kMaxCdrOffset, &offset) ||
      !IntParam(req, res, "limit", 1, kMaxCdrLimit, &limit)) {
    return std::nullopt;
  }
  s.query.from_unix_ms = from * 1000;
  if (req.has_param("to")) s.query.to_unix_ms = to * 1000;
  s.offset = static_cast<size_t>(offset);
  s.limit = static_cast<size_t>(limit);
  for (const char* name : {"caller", "callee", "pin"}) {
    if (own && req.has_param(name)) {
      SendError(res, 400, "invalid_argument",
                fmt::format("{} is not a filter of your own call log", name), name);
      return std::nullopt;
    }
  }
  s.query.caller = req.get_param_value("caller");
  s.query.callee = req.get_param_value("callee");
  s.query.type = req.get_param_value("type");
  s.query.pin = req.get_param_value("pin");
  if (!s.query.type.empty() && s.query.type != "internal" && s.query.type != "inbound" &&
      s.query.type != "outbound") {
    SendError(res, 400, "invalid_argument", "type must be internal, inbound or outbound", "type");
    return std::nullopt;
  }
  s.status = req.get_param_value("status");
  if (!s.status.empty() && std::find(std::begin(kCdrStatuses), std::end(kCdrStatuses), s.status) ==
                               std::end(kCdrStatuses)) {
    SendError(res, 400, "invalid_argument",
              "status must be answered, no_answer, busy, failed or cancelled", "status");
    return std::nullopt;
  }
  const std::string format = req.has_param("format") ? req.get_param_value("format") : "json";
  if (format != "json" && format != "csv") {
    SendError(res, 400, "invalid_argument", "format must be json or csv", "format");
    return std::nullopt;
  }
  s.csv = format == "csv";
  // One more than the page, to tell whether another page follows. The store does not
  // filter by status, so a status search reads the whole time range.
  s.query.limit = s.status.empty() ? s.offset + s.limit + 1 : 0;
  return s;
}

// The CDRs of extension `number`: those it placed and those it was called on (as dialled
// or as the phone that answered), oldest first, each once.
Result<std::vector<store::Cdr>> OwnCdrs(store::StateStore& store, store::CdrQuery q,
                                        const std::string& number) {
  store::CdrRepo repo(store);
  q.caller = number;
  PBX_ASSIGN_OR_RETURN(std::vector<store::Cdr> rows, repo.Query(q));
  q.caller.clear();
  q.callee = number;
  PBX_ASSIGN_OR_RETURN(std::vector<store::Cdr> called, repo.Query(q));
  rows.insert(rows.end(), called.begin(), called.end());
  auto key = [](const store::Cdr& c) { return std::pair(c.start_unix_ms, c.id); };
  std::sort(rows.begin(), rows.end(),
            [&](const auto& a, const auto& b) { return key(a) < key(b); });
  rows.erase(std::unique(rows.begin(), rows.end(),
                         [](const auto& a, const auto& b) { return a.id == b.id; }),
             rows.end());
  if (q.limit != 0 && rows.size() > q.limit) rows.resize(q.limit);
  return rows;
}

std::string IsoTime(int64_t unix_ms) {
  if (unix_ms == 0) return {};
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break, with
// each quote doubled.
void AppendCsvField(std::string& out, std::string_view v) {
  if (v.find_first_of(",\"\r\n") == std::string_view::npos) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

std::string CdrCsv(const std::vector<store::Cdr>& rows) {
  std::string out =
      "id,start,answer,end,caller,caller_name,callee,final_callee,duration,billable,trunk,"
      "type,status,cause,hangup_side,recorded,pin\r\n";
  for (const store::Cdr& c : rows) {
    const std::string fields[] = {std::to_string(c.id),
                                  IsoTime(c.start_unix_ms),
                                  IsoTime(c.answer_unix_ms),
                                  IsoTime(c.end_unix_ms),
                                  c.caller,
                                  c.caller_name,
                                  c.callee,
                                  c.final_callee,
                                  std::to_string(c.duration_seconds),
                                  std::to_string(c.billable_seconds),
                                  c.trunk,
                                  c.type,
                                  c.status,
                                  c.cause,
                                  c.hangup_side,
                                  c.recorded ? "yes" : "no",
                                  c.pin};
    for (size_t i = 0; i < std::size(fields); ++i) {
      if (i) out += ',';
      AppendCsvField(out, fields[i]);
    }
    out += "\r\n";
  }
  return out;
}

// GET /api/v1/cdr (everyone's, `own` false) and /api/v1/me/cdr (the caller's extension).
void ListCdr(store::StateStore& store, const Request& req, Response& res, const Principal& who,
             bool own) {
  if (own && who.role != store::Role::kExtension) {
    return SendError(res, 403, "forbidden", "only extension users have an own call log");
  }
  std::optional<CdrSearch> s = ReadCdrSearch(req, res, own);
  if (!s) return;
  Result<std::vector<store::Cdr>> rows =
      own ? OwnCdrs(store, s->query, who.user) : store::CdrRepo(store).Query(s->query);
  if (!rows.ok()) return SendStatus(req, res, rows.status());
  // A PIN is an audit trail for the administrator; a user's own log does not show which PIN
  // (perhaps a colleague's) was entered on the phone.
  if (own) {
    for (store::Cdr& c : *rows) c.pin.clear();
  }
  if (!s->status.empty()) {
    std::erase_if(*rows, [&](const store::Cdr& c) { return c.status != s->status; });
  }
  std::vector<store::Cdr> page;
  for (size_t i = s->offset; i < rows->size() && page.size() < s->limit; ++i) {
    page.push_back(std::move((*rows)[i]));
  }
  const bool more = rows->size() > s->offset + s->limit;
  if (s->csv) {
    res.set_header("Content-Disposition", "attachment; filename=\"cdr.csv\"");
    res.status = 200;
    res.set_content(CdrCsv(page), "text/csv; charset=utf-8");
    return;
  }
  json list = json::array();
  for (const store::Cdr& c : page) list.push_back(CdrToJson(c));
  SendJson(res, 200,
           json{{"records", std::move(list)},
                {"offset", s->offset},
                {"limit", s->limit},
                {"more", more}});
}

}  // namespace

void AddCallRoutes(httplib::Server& server, const RouteContext& ctx) {
  server.Get("/api/v1/calls", ctx.guarded(Permission::kViewStatus,
                                          [ctx](const Request& req, Response& res,
                                                const Principal&) { ListCalls(ctx, req, res); }));
  store::StateStore* store = &ctx.store;
  server.Get("/api/v1/cdr",
             ctx.guarded(Permission::kViewStatus,
                         [store](const Request& req, Response& res, const Principal& who) {
                           ListCdr(*store, req, res, who, false);
                         }));
  server.Get("/api/v1/me/cdr",
             ctx.guarded(Permission::kOwnAccount,
                         [store](const Request& req, Response& res, const Principal& who) {
                           ListCdr(*store, req, res, who, true);
                         }));
}

}  // namespace pbx::admin
