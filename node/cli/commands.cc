#include "node/cli/commands.h"

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <set>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "node/admin/credentials.h"
#include "node/cli/api_client.h"

namespace pbx::cli {
namespace {

using json = nlohmann::json;

constexpr size_t kGeneratedPasswordLength = 12;

// Terminal cells taken by `s` (UTF-8): one per code point, two for East Asian wide and
// full-width characters, so that tables of Chinese names line up.
size_t Width(std::string_view s) {
  size_t width = 0;
  for (size_t i = 0; i < s.size();) {
    auto b = static_cast<unsigned char>(s[i]);
    size_t len = b < 0x80           ? 1
                 : (b >> 5) == 0x6  ? 2
                 : (b >> 4) == 0xe  ? 3
                 : (b >> 3) == 0x1e ? 4
                                    : 1;
    uint32_t cp = len == 1 ? b : b & (0x7f >> len);
    for (size_t k = 1; k < len && i + k < s.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    }
    bool wide = (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) ||
                (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
                (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
                (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x20000 && cp <= 0x3fffd);
    width += wide ? 2 : 1;
    i += len;
  }
  return width;
}

std::string Pad(std::string_view s, size_t width) {
  std::string out(s);
  size_t w = Width(s);
  if (w < width) out.append(width - w, ' ');
  return out;
}

// A JSON value as a human reads it: strings bare, booleans yes/no, lists comma-separated.
std::string Text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_null()) return "";
  if (v.is_array()) {
    std::string s;
    for (const json& item : v) {
      if (!s.empty()) s += ", ";
      s += Text(item);
    }
    return s;
  }
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string Field(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it == obj.end() ? "" : Text(*it);
}

// "key   value" lines, keys padded to the longest.
std::string KeyValueLines(const std::vector<std::pair<std::string, std::string>>& rows) {
  size_t width = 0;
  for (const auto& [k, v] : rows) width = std::max(width, Width(k));
  std::string out;
  for (const auto& [k, v] : rows) {
    out += v.empty() ? k : Pad(k, width + 2) + v;
    out += '\n';
  }
  return out;
}

std::string UtcTime(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return std::to_string(unix_seconds);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string Duration(int64_t seconds) {
  if (seconds < 0) seconds = 0;
  int64_t d = seconds / 86400, h = seconds / 3600 % 24, m = seconds / 60 % 60, s = seconds % 60;
  if (d > 0) return fmt::format("{}d {}h {}m", d, h, m);
  if (h > 0) return fmt::format("{}h {}m", h, m);
  if (m > 0) return fmt::format("{}m {}s", m, s);
  return fmt::format("{}s", s);
}

void PrintJson(std::ostream& out, const json& j) {
  out << j.dump(2, ' ', false, json::error_handler_t::replace) << '\n';
}

// Reports a failed call and returns its exit code.
int Fail(std::ostream& err, const Status& st) {
  if (st.code() == Status::Code::kUnavailable) {
    err << "pbxd is not running (" << st.message() << ")\n";
    return kExitNotRunning;
  }
  err << "pbxctl: " << st.message() << '\n';
  return kExitError;
}

// A client for the API the global options point to, logged in; or the exit code.
struct Connection {
  std::unique_ptr<ApiClient> client;
  int exit_code = kExitOk;
};

Connection Connect(const GlobalOptions& g, std::ostream& err) {
  Connection c;
  auto fail = [&](int code, const std::string& message) {
    err << message << '\n';
    c.exit_code = code;
    return std::move(c);
  };
  const bool login = !g.user.empty() || !g.password.empty();
  if (login && (g.user.empty() || g.password.empty())) {
    return fail(kExitUsage, "pbxctl: --user and --password go together");
  }
  if (login && !g.token.empty()) {
    return fail(kExitUsage, "pbxctl: use either --token or --user/--password");
  }

  ClientOptions options;
  options.insecure = g.insecure;
  options.ca_file = g.ca_file;
  options.token = g.token;
  if (!g.api_url.empty()) {
    if (g.token.empty() && !login) {
      return fail(kExitUsage, "pbxctl: --api needs --token or --user and --password");
    }
    if (g.api_url.rfind("https://", 0) == 0 && g.ca_file.empty() && !g.insecure) {
      return fail(kExitUsage, "pbxctl: --api with https needs --ca FILE or --insecure");
    }
    options.url = g.api_url;
  } else {
    const std::string dir = g.run_dir.empty() ? DefaultRunDir() : g.run_dir;
    Result<RunInfo> info = ReadRunInfo(dir);
    if (!info.ok() && info.status().IsNotFound()) {
      return fail(kExitNotRunning, fmt::format("pbxd is not running (no {}/ready.json)", dir));
    }
    if (!info.ok()) return fail(kExitError, "pbxctl: " + info.status().message());
    if (!ProcessAlive(info->pid)) {
      return fail(
          kExitNotRunning,
          fmt::format("pbxd is not running (pid {} of {}/ready.json is gone)", info->pid, dir));
    }
    options.url = info->api_url;
    if (options.ca_file.empty()) options.ca_file = info->api_cert;
    if (options.token.empty() && !login) {
      const std::string token_file = dir + "/admin.token";
      Result<std::string> token = ReadTokenFile(token_file);
      if (!token.ok()) {
        return fail(kExitError, fmt::format("pbxctl: {} (use --user/--password or --token)",
                                            token.status().message()));
      }
      options.token = *token;
    }
  }

  Result<std::unique_ptr<ApiClient>> client = ApiClient::Create(options);
  if (!client.ok()) return fail(kExitUsage, "pbxctl: " + client.status().message());
  if (login) {
    if (Status st = (*client)->Login(g.user, g.password); !st.ok()) {
      c.exit_code = Fail(err, st);
      return c;
    }
  }
  c.client = std::move(client).value();
  return c;
}

// Extension numbers go into URL paths, so anything but digits is refused here.
bool CheckNumber(const std::string& number, std::ostream& err) {
  if (!number.empty() && number.size() <= 11 &&
      std::all_of(number.begin(), number.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
    return true;
  }
  err << "pbxctl: '" << number << "' is not an extension number (2-11 digits)\n";
  return false;
}

// Columns padded to their widest cell; the first row is the header.
std::string ColumnTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], Width(row[i]));
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += i + 1 < row.size() ? Pad(row[i], widths[i] + 2) : row[i];
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + '\n';
  }
  return out;
}

int64_t IntField(const json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_number()) return 0;
  return obj[key].get<int64_t>();
}

// Both nodes of the pair, then replication, VIP, witness and the last failover.
std::string FormatCluster(const json& s, const json& c, int64_t now_unix) {
  const json& peer = c.contains("peer") ? c["peer"] : json::object();
  int64_t heard = IntField(peer, "heard_ms_ago");
  std::string peer_heard = heard < 0 ? "never" : fmt::format("{} ms ago", heard);
  if (heard >= 0 && !peer.value("alive", false)) peer_heard += " (dead)";
  std::string out = ColumnTable({
      {"NODE", "ROLE", "EPOCH", "LAST SEQ", "HEARD"},
      {Field(s, "node_name"), Field(s, "role"), Field(s, "epoch"), Field(s, "last_seq"),
       "this node"},
      {Field(peer, "name").empty() ? "(peer)" : Field(peer, "name"),
       Field(peer, "role").empty() ? "unknown" : Field(peer, "role"), Field(peer, "epoch"),
       Field(peer, "last_seq"), peer_heard},
  });
  std::string degraded = "no";
  if (c.value("degraded", false)) {
    degraded = "YES, committing without the standby";
    if (int64_t since = IntField(c, "degraded_since_unix"); since > 0) {
      degraded += fmt::format(" for {}", Duration(now_unix - since));
    }
  }
  std::vector<std::pair<std::string, std::string>> rows = {
      {"replication lag",
       fmt::format("{} seqs, {:.1f} ms", IntField(c, "lag_seqs"), c.value("lag_ms", 0.0))},
      {"heartbeat rtt", fmt::format("{:.2f} ms", c.value("hb_rtt_ms", 0.0))},
      {"degraded", degraded},
  };
  if (!Field(c, "vip").empty()) {
    std::string owner = Field(c, "vip_owner");
    rows.emplace_back("vip", Field(c, "vip") + " on " + (owner.empty() ? "nobody" : owner));
  }
  rows.emplace_back("witness", Field(c, "witness"));
  const json& failover = c.contains("last_failover") ? c["last_failover"] : json::object();
  if (int64_t when = IntField(failover, "unix"); when > 0) {
    rows.emplace_back("last failover",
                      fmt::format("{}: {}", UtcTime(when), Field(failover, "reason")));
  } else {
    rows.emplace_back("last failover", "none");
  }
  return out + "\n" + KeyValueLines(rows);
}

enum class Verb { kGet, kPost, kDelete };

// The one shape of a command: a request to the API, then its reply printed as JSON under
// --json (when there is one), else as `text` renders it.
int Request(const GlobalOptions& g, Verb verb, const std::string& path, const json& body,
            const std::function<std::string(const json&)>& text, std::ostream& out,
            std::ostream& err) {
  Connection c = Connect(g, err);
  if (!c.client) return c.exit_code;
  Result<json> reply = verb == Verb::kGet    ? c.client->Get(path)
                       : verb == Verb::kPost ? c.client->Post(path, body)
                                             : c.client->Delete(path);
  if (!reply.ok()) return Fail(err, reply.status());
  if (g.json && !reply->is_null()) {
    PrintJson(out, *reply);
  } else {
    out << text(*reply);
  }
  return kExitOk;
}

// The list under `key` of a reply, or an empty one.
const json& ListOf(const json& reply, const char* key) {
  static const json kEmpty = json::array();
  return reply.is_object() && reply.contains(key) && reply[key].is_array() ? reply[key] : kEmpty;
}

}  // namespace

std::string FormatStatus(const json& s, int64_t now_unix) {
  std::vector<std::pair<std::string, std::string>> rows = {
      {"node", Field(s, "node_name")},    {"role", Field(s, "role")},
      {"version", Field(s, "version")},   {"epoch", Field(s, "epoch")},
      {"last seq", Field(s, "last_seq")},
  };
  if (!Field(s, "role_reason").empty()) rows.emplace_back("why", Field(s, "role_reason"));
  if (int64_t started = IntField(s, "started_unix"); started > 0) {
    rows.emplace_back("started",
                      fmt::format("{} (up {})", UtcTime(started), Duration(now_unix - started)));
  }
  if (s.is_object() && s.contains("counts") && s["counts"].is_object()) {
    for (const auto& [key, value] : s["counts"].items()) rows.emplace_back(key, Text(value));
  }
  std::string out = KeyValueLines(rows);
  if (s.is_object() && s.contains("cluster") && s["cluster"].is_object()) {
    out += "\n" + FormatCluster(s, s["cluster"], now_unix);
  }
  return out;
}

std::string FormatExtensionTable(const json& list) {
  static constexpr const char* kColumns[] = {"number", "name", "email", "transport"};
  std::vector<std::vector<std::string>> rows = {{"NUMBER", "NAME", "EMAIL", "TRANSPORT"}};
  if (list.is_array()) {
    for (const json& ext : list) {
      std::vector<std::string> row;
      for (const char* c : kColumns) row.push_back(Field(ext, c));
      rows.push_back(std::move(row));
    }
  }
  return ColumnTable(rows);
}

std::string FormatExtension(const json& ext) {
  // The usual reading order first; anything else the API adds follows alphabetically.
  static constexpr const char* kOrder[] = {"number",
                                           "name",
                                           "email",
                                           "mobile",
                                           "transport",
                                           "dtmf_mode",
                                           "codecs",
                                           "nat",
                                           "max_contacts",
                                           "registration_expiry",
                                           "qualify_interval",
                                           "remote_registration",
                                           "trusted_addresses",
                                           "voicemail",
                                           "recording",
                                           "web_login",
                                           "dial_permission",
                                           "outbound_cli",
                                           "language",
                                           "moh"};
  std::vector<std::pair<std::string, std::string>> rows;
  std::set<std::string> shown;
  if (!ext.is_object()) return "";
  for (const char* key : kOrder) {
    auto it = ext.find(key);
    if (it == ext.end()) continue;
    std::string value = Text(*it);
    if (std::string_view(key) == "trusted_addresses" && value.empty()) value = "any";
    rows.emplace_back(key, value);
    shown.insert(key);
  }
  for (const auto& [key, value] : ext.items()) {
    if (shown.count(key) > 0) continue;
    if (key == "created_unix" || key == "updated_unix") {
      if (value.is_number_integer() && value.get<int64_t>() > 0) {
        rows.emplace_back(key.substr(0, key.size() - 5), UtcTime(value.get<int64_t>()));
      }
      continue;
    }
    rows.emplace_back(key, Text(value));
  }
  return KeyValueLines(rows);
}

int RunStatus(const GlobalOptions& g, std::ostream& out, std::ostream& err) {
  return Request(
      g, Verb::kGet, "/api/v1/status", {},
      [](const json& s) { return FormatStatus(s, static_cast<int64_t>(std::time(nullptr))); }, out,
      err);
}

int RunExtList(const GlobalOptions& g, std::ostream& out, std::ostream& err) {
  return Request(
      g, Verb::kGet, "/api/v1/extensions", {},
      [](const json& r) { return FormatExtensionTable(ListOf(r, "extensions")); }, out, err);
}

int RunExtShow(const GlobalOptions& g, const std::string& number, std::ostream& out,
               std::ostream& err) {
  if (!CheckNumber(number, err)) return kExitUsage;
  return Request(g, Verb::kGet, "/api/v1/extensions/" + number, {}, FormatExtension, out, err);
}

int RunExtAdd(const GlobalOptions& g, const ExtAddOptions& add, std::ostream& out,
              std::ostream& err) {
  std::string password = add.password;
  const bool generated = password.empty();
  while (password.empty()) {
    Result<std::string> pw = admin::GeneratePassword(kGeneratedPasswordLength);
    if (!pw.ok()) return Fail(err, pw.status());
    if (!admin::CheckPasswordStrength(*pw, add.number)) password = std::move(pw).value();
  }
  json body = {{"number", add.number}, {"name", add.name}, {"password", password}};
  auto set_if = [&](const char* key, const std::string& value) {
    if (!value.empty()) body[key] = value;
  };
  set_if("email", add.email);
  set_if("mobile", add.mobile);
  set_if("transport", add.transport);
  set_if("dtmf_mode", add.dtmf_mode);
  set_if("voicemail_pin", add.voicemail_pin);
  if (add.max_contacts) body["max_contacts"] = *add.max_contacts;
  if (add.web_login) body["web_login"] = *add.web_login;
  if (add.call_waiting) body["call_waiting"] = *add.call_waiting;
  if (!add.codecs.empty()) body["codecs"] = add.codecs;

  Connection c = Connect(g, err);
  if (!c.client) return c.exit_code;
  Result<json> created = c.client->Post("/api/v1/extensions", body);
  if (!created.ok()) return Fail(err, created.status());
  if (g.json) {
    json shown = *created;
    // The only time a generated password can be seen: put it in the output.
    if (generated && shown.is_object()) shown["password"] = password;
    PrintJson(out, shown);
  } else {
    out << fmt::format("created extension {} ({})\n", Field(*created, "number"),
                       Field(*created, "name"));
    if (generated) out << "password: " << password << "  (shown only now)\n";
  }
  return kExitOk;
}

int RunExtDel(const GlobalOptions& g, const std::string& number, std::ostream& out,
              std::ostream& err) {
  if (!CheckNumber(number, err)) return kExitUsage;
  return Request(
      g, Verb::kDelete, "/api/v1/extensions/" + number, {},
      [&](const json&) { return "deleted extension " + number + "\n"; }, out, err);
}

namespace {
// GET `path` and print `key`'s list with `columns` (JSON key, heading), or the JSON.
int ListCommand(const GlobalOptions& g, const std::string& path, const char* key,
                const std::vector<std::pair<const char*, const char*>>& columns, std::ostream& out,
                std::ostream& err) {
  auto table = [&](const json& reply) {
    std::vector<std::vector<std::string>> rows(1);
    for (const auto& [field, heading] : columns) rows[0].push_back(heading);
    for (const json& item : ListOf(reply, key)) {
      std::vector<std::string> row;
      for (const auto& [field, heading] : columns) {
        // "a.b": field b of object a (a trunk's status.state).
        std::string_view f(field);
        size_t dot = f.find('.');
        const json& obj = dot == std::string_view::npos || !item.contains(f.substr(0, dot))
                              ? item
                              : item[std::string(f.substr(0, dot))];
        row.push_back(dot == std::string_view::npos ? Field(obj, field)
                                                    : Field(obj, field + dot + 1));
      }
      rows.push_back(std::move(row));
    }
    return ColumnTable(rows);
  };
  return Request(g, Verb::kGet, path, {}, table, out, err);
}
}  // namespace

int RunRegList(const GlobalOptions& g, std::ostream& out, std::ostream& err) {
  return ListCommand(g, "/api/v1/registrations", "registrations",
                     {{"number", "NUMBER"},
                      {"contact", "CONTACT"},
                      {"received", "RECEIVED"},
                      {"transport", "TRANSPORT"},
                      {"expires_in", "EXPIRES"},
                      {"qualify_ok", "REACHABLE"},
                      {"user_agent", "USER AGENT"}},
                     out, err);
}

int RunBanList(const GlobalOptions& g, std::ostream& out, std::ostream& err) {
  return ListCommand(
      g, "/api/v1/bans", "bans",
      {{"ip", "IP"}, {"remaining", "REMAINING"}, {"failures", "FAILURES"}, {"reason", "REASON"}},
      out, err);
}

int RunCalls(const GlobalOptions& g, std::ostream& out, std::ostream& err) {
  return ListCommand(g, "/api/v1/calls", "calls",
                     {{"id", "ID"},
                      {"caller", "CALLER"},
                      {"caller_name", "NAME"},
                      {"callee", "CALLEE"},
                      {"state", "STATE"},
                      {"start_unix", "START"},
                      {"answer_unix", "ANSWER"}},
                     out, err);
}

int RunCdr(const GlobalOptions& g, const CdrFilter& f, std::ostream& out, std::ostream& err) {
  for (const std::string* n : {&f.caller, &f.callee, &f.pin}) {
    if (n->find_first_not_of("0123456789*#+") != std::string::npos) {
      err << "pbxctl: '" << *n << "' is not a number\n";
      return kExitUsage;
    }
  }
  std::string query;
  auto add = [&](const char* name, const std::string& value) {
    if (value.empty()) return;
    query += (query.empty() ? "?" : "&") + std::string(name) + "=" + value;
  };
  if (f.from) add("from", std::to_string(*f.from));
  if (f.to) add("to", std::to_string(*f.to));
  add("caller", f.caller);
  add("callee", f.callee);
  add("type", f.type);
  add("pin", f.pin);
  if (f.limit) add("limit", std::to_string(*f.limit));
  return ListCommand(g, "/api/v1/cdr" + query, "records",
                     {{"start_unix_ms", "START (ms)"},
                      {"caller", "CALLER"},
                      {"callee", "CALLEE"},
                      {"type", "TYPE"},
                      {"status", "STATUS"},
                      {"duration", "DURATION"},
                      {"billable", "BILLABLE"},
                      {"hangup_side", "HUNG UP"},
                      {"pin", "PIN"},
                      {"cause", "CAUSE"}},
                     out, err);
}

int RunBanDel(const GlobalOptions& g, const std::string& ip, std::ostream& out, std::ostream& err) {
  if (ip.empty() || ip.size() > 45 ||
      ip.find_first_not_of("0123456789abcdefABCDEF.:") != std::string::npos) {
    err << "pbxctl: '" << ip << "' is not an IP address\n";
    return kExitUsage;
  }
  return Request(
      g, Verb::kDelete, "/api/v1/bans/" + ip, {},
      [&](const json&) { return "lifted the ban of " + ip + "\n"; }, out, err);
}

int RunSwitchover(const GlobalOptions& g, std::ostream& out, std::ostream& err) {
  return Request(
      g, Verb::kPost, "/api/v1/cluster/switchover", json::object(),
      [](const json&) {
        return "switchover started: the standby takes over once it has every write; watch "
               "'pbxctl status'\n";
      },
      out, err);
}

int RunMaintenance(const GlobalOptions& g, bool on, bool force, std::ostream& out,
                   std::ostream& err) {
  json body = {{"on", on}};
  if (force) body["force"] = true;
  return Request(
      g, Verb::kPost, "/api/v1/cluster/maintenance", body,
      [&](const json&) {
        return on ? "maintenance on: this node leaves service\n"
                  : "maintenance off: this node rejoins the pair\n";
      },
      out, err);
}

int RunTrunkList(const GlobalOptions& g, std::ostream& out, std::ostream& err) {
  return ListCommand(g, "/api/v1/trunks", "trunks",
                     {{"name", "NAME"},
                      {"mode", "MODE"},
                      {"host", "HOST"},
                      {"transport", "TRANSPORT"},
                      {"status.state", "STATE"},
                      {"status.last_code", "CODE"},
                      {"status.last_reason", "REASON"},
                      {"status.expires_unix", "EXPIRES (UNIX)"}},
                     out, err);
}

int RunTrunkAdd(const GlobalOptions& g, const TrunkAddOptions& add, std::ostream& out,
                std::ostream& err) {
  json body = {{"name", add.name}, {"host", add.host}};
  for (const std::string& kv : add.set) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      err << "pbxctl: --set wants KEY=VALUE, not '" << kv << "'\n";
      return kExitUsage;
    }
    // Numbers, true/false and lists go as JSON; anything else as a string.
    std::string value = kv.substr(eq + 1);
    json v = json::parse(value, nullptr, /*allow_exceptions=*/false);
    body[kv.substr(0, eq)] = v.is_discarded() || v.is_object() ? json(value) : v;
  }
  return Request(
      g, Verb::kPost, "/api/v1/trunks", body,
      [&](const json&) { return "created trunk " + add.name + "\n"; }, out, err);
}

namespace {
constexpr std::string_view kNameChars =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";

// DELETE `path`/`key` after checking that `key` is 1-33 of `chars`; says "deleted `what`".
int DeleteCommand(const GlobalOptions& g, const std::string& path, const std::string& key,
                  std::string_view chars, const std::string& what, std::ostream& out,
                  std::ostream& err) {
  if (key.empty() || key.size() > 33 || key.find_first_not_of(chars) != std::string::npos) {
    err << "pbxctl: '" << key << "' is not a valid name\n";
    return kExitUsage;
  }
  return Request(
      g, Verb::kDelete, path + "/" + key, {},
      [&](const json&) { return "deleted " + what + " " + key + "\n"; }, out, err);
}
}  // namespace

int RunTrunkDel(const GlobalOptions& g, const std::string& name, std::ostream& out,
                std::ostream& err) {
  return DeleteCommand(g, "/api/v1/trunks", name, kNameChars, "trunk", out, err);
}

namespace {
// The API path of a dial plan kind, or "" (after a usage message) for an unknown one.
std::string DialPlanPath(const std::string& kind, std::ostream& err) {
  static const std::vector<std::pair<std::string, std::string>> kKinds = {
      {"outbound", "routes/outbound"},
      {"inbound", "routes/inbound"},
      {"did", "dids"},
      {"blacklist", "blacklist"},
      {"time-condition", "time-conditions"},
      {"permission", "permissions"},
      {"pin-set", "pin-sets"}};
  for (const auto& [name, path] : kKinds) {
    if (name == kind) return "/api/v1/" + path;
  }
  err << "pbxctl: unknown kind '" << kind
      << "' (outbound, inbound, did, blacklist, time-condition, permission, pin-set)\n";
  return "";
}
}  // namespace

int RunRouteList(const GlobalOptions& g, const std::string& kind, std::ostream& out,
                 std::ostream& err) {
  std::string path = DialPlanPath(kind, err);
  if (path.empty()) return kExitUsage;
  // One line per record: its JSON, compact (the records are nested; --json for scripts).
  auto lines = [](const json& reply) {
    std::string text;
    for (const json& item : ListOf(reply, "items")) text += item.dump() + "\n";
    return text;
  };
  return Request(g, Verb::kGet, path, {}, lines, out, err);
}

int RunRouteAdd(const GlobalOptions& g, const std::string& kind, const std::string& body,
                std::ostream& out, std::ostream& err) {
  std::string path = DialPlanPath(kind, err);
  if (path.empty()) return kExitUsage;
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    err << "pbxctl: the record must be a JSON object\n";
    return kExitUsage;
  }
  return Request(
      g, Verb::kPost, path, j,
      [&](const json& created) { return "created " + kind + " " + created.dump() + "\n"; }, out,
      err);
}

int RunRouteDel(const GlobalOptions& g, const std::string& kind, const std::string& key,
                std::ostream& out, std::ostream& err) {
  std::string path = DialPlanPath(kind, err);
  if (path.empty()) return kExitUsage;
  // Blacklist entries are numbers and may end in '*'.
  std::string chars = std::string(kNameChars) + "+*";
  return DeleteCommand(g, path, key, chars, kind, out, err);
}

}  // namespace pbx::cli
