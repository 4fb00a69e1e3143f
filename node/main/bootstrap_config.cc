#include "node/main/bootstrap_config.h"

#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <toml++/toml.h>

#include "node/core/log.h"

namespace pbx::node {
namespace {

bool IsIpv4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}
bool IsIpv6(const std::string& s) {
  in6_addr a{};
  return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

// Reads one table's keys into a BootstrapConfig, reporting FILE:LINE for the first problem.
class Reader {
 public:
  explicit Reader(const std::string& source) : source_(source) {}

  Status Error(const toml::source_region& where, std::string_view what) const {
    return Status::InvalidArgument(fmt::format("{}:{}: {}", source_, where.begin.line, what));
  }

  // Refuses keys that the table does not define, so that a typo is not silently ignored.
  Status OnlyKeys(const toml::table& t, std::string_view table,
                  std::initializer_list<std::string_view> known) const {
    for (const auto& [key, node] : t) {
      bool ok = false;
      for (auto k : known) ok = ok || key.str() == k;
      if (!ok)
        return Error(node.source(), fmt::format("unknown key '{}' in [{}]", key.str(), table));
    }
    return Status::Ok();
  }

  Status String(const toml::table& t, std::string_view key, std::string& out) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return Status::Ok();
    if (!n->is_string()) return Error(n->source(), fmt::format("'{}' must be a string", key));
    out = n->as_string()->get();
    if (out.empty()) return Error(n->source(), fmt::format("'{}' must not be empty", key));
    return Status::Ok();
  }

  Status Bool(const toml::table& t, std::string_view key, bool& out) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return Status::Ok();
    if (!n->is_boolean()) return Error(n->source(), fmt::format("'{}' must be true or false", key));
    out = n->as_boolean()->get();
    return Status::Ok();
  }

  template <typename T>
  Status Int(const toml::table& t, std::string_view key, T& out, int64_t min, int64_t max) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return Status::Ok();
    if (!n->is_integer()) return Error(n->source(), fmt::format("'{}' must be an integer", key));
    int64_t v = n->as_integer()->get();
    if (v < min || v > max) {
      return Error(n->source(),
                   fmt::format("'{}' must be between {} and {}, not {}", key, min, max, v));
    }
    out = static_cast<T>(v);
    return Status::Ok();
  }

  Status Address(const toml::table& t, std::string_view key, std::string& out) const {
    PBX_TRY(String(t, key, out));
    const toml::node* n = t.get(key);
    if (n != nullptr && !IsIpv4(out) && !IsIpv6(out)) {
      return Error(n->source(), fmt::format("'{}' is not an IP address: '{}'", key, out));
    }
    return Status::Ok();
  }

  Status EndpointKey(const toml::table& t, std::string_view key,
                     std::optional<Endpoint>& out) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return Status::Ok();
    std::string text;
    PBX_TRY(String(t, key, text));
    Result<Endpoint> ep = ParseEndpoint(text);
    if (!ep.ok()) return Error(n->source(), fmt::format("'{}': {}", key, ep.status().message()));
    out = *ep;
    return Status::Ok();
  }

  const toml::table* Table(const toml::table& root, std::string_view name, Status& st) const {
    const toml::node* n = root.get(name);
    if (n == nullptr) return nullptr;
    if (!n->is_table()) st = Error(n->source(), fmt::format("'{}' must be a table", name));
    return n->as_table();
  }

 private:
  const std::string& source_;
};

Status Fill(const toml::table& root, const Reader& r, BootstrapConfig& c) {
  PBX_TRY(
      r.OnlyKeys(root, "top level", {"node", "api", "sip", "media", "cluster", "store", "demo"}));
  Status st;

  if (const toml::table* t = r.Table(root, "node", st)) {
    PBX_TRY(
        r.OnlyKeys(*t, "node", {"name", "data_dir", "run_dir", "log_level", "realtime_priority"}));
    PBX_TRY(r.Int(*t, "realtime_priority", c.realtime_priority, 0, 99));
    PBX_TRY(r.String(*t, "name", c.node_name));
    PBX_TRY(r.String(*t, "data_dir", c.data_dir));
    PBX_TRY(r.String(*t, "run_dir", c.run_dir));
    PBX_TRY(r.String(*t, "log_level", c.log_level));
    log::Level level;
    if (!log::ParseLevel(c.log_level, &level)) {
      return r.Error(t->get("log_level")->source(),
                     "'log_level' must be one of debug, info, warn, error");
    }
    for (char ch : c.node_name) {
      if (!isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.') {
        return r.Error(t->get("name")->source(),
                       "'name' may hold only letters, digits, '-', '_' and '.'");
      }
    }
  }
  PBX_TRY(st);

  if (const toml::table* t = r.Table(root, "api", st)) {
    PBX_TRY(r.OnlyKeys(*t, "api", {"listen", "port", "admin_password", "web_dir", "http_port"}));
    PBX_TRY(r.Address(*t, "listen", c.api_listen));
    PBX_TRY(r.Int(*t, "port", c.api_port, 0, 65535));
    PBX_TRY(r.String(*t, "web_dir", c.web_dir));
    PBX_TRY(r.Int(*t, "http_port", c.http_port, 0, 65535));
    std::string pw;
    PBX_TRY(r.String(*t, "admin_password", pw));
    if (!pw.empty()) c.admin_password = pw;
  }
  PBX_TRY(st);

  if (const toml::table* t = r.Table(root, "sip", st)) {
    PBX_TRY(r.OnlyKeys(*t, "sip", {"listen", "udp_port", "tcp_port", "tls_port", "digest_sha256"}));
    PBX_TRY(r.Address(*t, "listen", c.sip_listen));
    PBX_TRY(r.Int(*t, "udp_port", c.sip_udp_port, 0, 65535));
    PBX_TRY(r.Int(*t, "tcp_port", c.sip_tcp_port, 0, 65535));
    PBX_TRY(r.Int(*t, "tls_port", c.sip_tls_port, 0, 65535));
    PBX_TRY(r.Bool(*t, "digest_sha256", c.sip_digest_sha256));
  }
  PBX_TRY(st);

  if (const toml::table* t = r.Table(root, "media", st)) {
    PBX_TRY(r.OnlyKeys(*t, "media", {"address", "rtp_port_min", "rtp_port_max"}));
    PBX_TRY(r.Address(*t, "address", c.media_address));
    PBX_TRY(r.Int(*t, "rtp_port_min", c.rtp_port_min, 1024, 65534));
    PBX_TRY(r.Int(*t, "rtp_port_max", c.rtp_port_max, 1025, 65535));
    if (c.rtp_port_max < c.rtp_port_min + 3) {
      return r.Error(t->source(), "[media] rtp_port_max must be at least rtp_port_min + 3");
    }
  }
  PBX_TRY(st);

  if (const toml::table* t = r.Table(root, "cluster", st)) {
    PBX_TRY(r.OnlyKeys(*t, "cluster",
                       {"name", "listen", "peer", "vip", "interface", "witness", "ping_target",
                        "hb_interval_ms", "hb_dead", "trunk_reregister_window_ms"}));
    BootstrapConfig::Cluster cl;
    for (std::string_view key : {"listen", "peer"}) {
      if (t->get(key) == nullptr) {
        return r.Error(t->source(), fmt::format("[cluster] needs '{}' (host:port)", key));
      }
    }
    std::optional<Endpoint> ep;
    PBX_TRY(r.EndpointKey(*t, "listen", ep));
    cl.listen = *ep;
    PBX_TRY(r.EndpointKey(*t, "peer", ep));
    cl.peer = *ep;
    PBX_TRY(r.EndpointKey(*t, "witness", cl.witness));
    PBX_TRY(r.String(*t, "name", cl.name));
    for (const auto* ep2 : {&cl.listen, &cl.peer}) {
      if (ep2->port == 65535) {
        return r.Error(t->source(), "[cluster] ports must leave room for the heartbeat (port + 1)");
      }
    }
    if (const toml::node* n = t->get("vip")) {
      std::string text;
      PBX_TRY(r.String(*t, "vip", text));
      Result<Prefix> p = ParsePrefix(text);
      if (!p.ok()) return r.Error(n->source(), fmt::format("'vip': {}", p.status().message()));
      cl.vip = *p;
      if (t->get("interface") == nullptr) {
        return r.Error(n->source(), "'vip' needs 'interface' (the device that carries it)");
      }
    }
    PBX_TRY(r.String(*t, "interface", cl.interface));
    if (t->get("ping_target") != nullptr) {
      std::string target;
      PBX_TRY(r.Address(*t, "ping_target", target));
      cl.ping_target = target;
    }
    PBX_TRY(r.Int(*t, "hb_interval_ms", cl.hb_interval_ms, 10, 10000));
    PBX_TRY(r.Int(*t, "hb_dead", cl.hb_dead, 2, 100));
    PBX_TRY(r.Int(*t, "trunk_reregister_window_ms", cl.trunk_reregister_window_ms, 0, 60000));
    c.cluster = std::move(cl);
  }
  PBX_TRY(st);

  if (const toml::table* t = r.Table(root, "store", st)) {
    PBX_TRY(r.OnlyKeys(*t, "store", {"wal_ttl_seconds", "wal_size_limit_mb"}));
    PBX_TRY(r.Int(*t, "wal_ttl_seconds", c.wal_ttl_seconds, 1, int64_t{30} * 24 * 3600));
    PBX_TRY(r.Int(*t, "wal_size_limit_mb", c.wal_size_limit_mb, 0, 1 << 20));
  }
  PBX_TRY(st);

  c.demo_extensions = false;  // a real deployment opts in
  if (const toml::table* t = r.Table(root, "demo", st)) {
    PBX_TRY(r.OnlyKeys(*t, "demo", {"extensions"}));
    PBX_TRY(r.Bool(*t, "extensions", c.demo_extensions));
  }
  return st;
}

}  // namespace

Result<Endpoint> ParseEndpoint(std::string_view text) {
  std::string s(text);
  std::string host;
  std::string port;
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return Status::InvalidArgument(fmt::format("'{}' is not [IPv6]:port", s));
    }
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
    if (!IsIpv6(host))
      return Status::InvalidArgument(fmt::format("'{}' is not an IPv6 address", host));
  } else {
    size_t colon = s.rfind(':');
    if (colon == std::string::npos || s.find(':') != colon) {
      return Status::InvalidArgument(fmt::format("'{}' is not host:port", s));
    }
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (host.empty()) return Status::InvalidArgument(fmt::format("'{}' has no host", s));
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
      std::stoi(port) > 65535) {
    return Status::InvalidArgument(fmt::format("'{}' has no valid port (1-65535)", s));
  }
  return Endpoint{host, static_cast<uint16_t>(std::stoi(port))};
}

Result<Prefix> ParsePrefix(std::string_view text) {
  std::string s(text);
  size_t slash = s.find('/');
  if (slash == std::string::npos) {
    return Status::InvalidArgument(
        fmt::format("'{}' needs a prefix length, like 10.0.0.100/24", s));
  }
  Prefix p;
  p.address = s.substr(0, slash);
  std::string len = s.substr(slash + 1);
  p.ipv6 = IsIpv6(p.address);
  if (!p.ipv6 && !IsIpv4(p.address)) {
    return Status::InvalidArgument(fmt::format("'{}' is not an IP address", p.address));
  }
  int max = p.ipv6 ? 128 : 32;
  if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(len) < 1 || std::stoi(len) > max) {
    return Status::InvalidArgument(fmt::format("prefix length must be 1-{}, not '{}'", max, len));
  }
  p.length = std::stoi(len);
  return p;
}

Result<BootstrapConfig> ParseBootstrapConfig(std::string_view text, const std::string& source) {
  toml::table root;
  // toml++ reports syntax errors by exception; this is its only boundary with our code.
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(
        fmt::format("{}:{}: {}", source, e.source().begin.line, e.description()));
  }
  BootstrapConfig config;
  config.source = source;
  PBX_TRY(Fill(root, Reader(source), config));
  return config;
}

Result<BootstrapConfig> LoadBootstrapConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound(fmt::format("{}: cannot open the bootstrap file", path));
  std::stringstream buf;
  buf << in.rdbuf();
  return ParseBootstrapConfig(buf.str(), path);
}

}  // namespace pbx::node
