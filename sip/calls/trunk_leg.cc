#include "sip/calls/trunk_leg.h"

#include <netdb.h>

#include <algorithm>

#include <fmt/format.h>
#include <sys/socket.h>

#include "node/core/log.h"

namespace pbx::sip {
namespace {

// The numeric addresses of `host` ("name", "1.2.3.4", "[::1]", optionally with ":port").
std::vector<std::string> Resolve(std::string host) {
  if (!host.empty() && host.front() == '[') {
    host = host.substr(1, host.find(']') - 1);
  } else if (std::count(host.begin(), host.end(), ':') == 1) {
    host = host.substr(0, host.find(':'));
  }
  std::vector<std::string> out;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (host.empty() || getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) return out;
  for (addrinfo* a = res; a; a = a->ai_next) {
    char text[NI_MAXHOST];
    if (getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) ==
        0) {
      out.emplace_back(text);
    }
  }
  freeaddrinfo(res);
  return out;
}

std::string Bracketed(const std::string& host) {
  return host.find(':') != std::string::npos && host.front() != '[' ? "[" + host + "]" : host;
}

}  // namespace

std::string Quoted(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') out += '\\';
    if (c != '\r' && c != '\n') out += c;
  }
  return out + "\"";
}

Status TrunkDirectory::Init() {
  // Any change reloads every table: they are small and change rarely.
  auto reload = [this](const store::Change&) { Reload(); };
  feed_.Follow(store::Table::kConfig, store::TrunkRepo::Prefix(), reload);
  feed_.Follow(store::Table::kConfig, "route/", reload);
  feed_.Follow(store::Table::kConfig, "settings/routing", reload);
  Reload();
  return Status::Ok();
}

void TrunkDirectory::Reload() {
  Result<std::vector<store::Trunk>> trunks = store::TrunkRepo(store_).List();
  Result<routing::RoutingTables> tables = routing::LoadRoutingTables(store_);
  if (!trunks.ok() || !tables.ok()) {
    PBX_LOG(kWarn, "calls", "cannot load trunks and routes: {}",
            (!trunks.ok() ? trunks.status() : tables.status()).ToString());
    return;
  }
  std::map<std::string, Entry> next;
  for (store::Trunk& t : *trunks) {
    Entry e;
    // An existing entry with the same hosts keeps its addresses: no lookup per change.
    auto old = trunks_.find(t.name);
    if (old != trunks_.end() && old->second.trunk.host == t.host &&
        old->second.trunk.outbound_proxy == t.outbound_proxy) {
      e.addresses = old->second.addresses;
    } else {
      e.addresses = Resolve(t.host);
      for (std::string& a : Resolve(t.outbound_proxy)) e.addresses.push_back(std::move(a));
    }
    e.trunk = std::move(t);
    next[e.trunk.name] = std::move(e);
  }
  trunks_ = std::move(next);
  tables_ = std::move(*tables);
}

const store::Trunk* TrunkDirectory::Find(const std::string& name) const {
  auto it = trunks_.find(name);
  return it != trunks_.end() && it->second.trunk.enabled ? &it->second.trunk : nullptr;
}

const store::Trunk* TrunkDirectory::MatchInbound(const Source& src,
                                                 const std::string& request_user) const {
  for (const auto& [name, e] : trunks_) {
    const store::Trunk& t = e.trunk;
    if (!t.enabled) continue;
    if (std::find(e.addresses.begin(), e.addresses.end(), src.ip_text) == e.addresses.end()) {
      continue;
    }
    if (t.mode == "peer" || request_user == t.username) return &t;
  }
  return nullptr;
}

TrunkTarget OutboundTarget(const store::Trunk& t, const std::string& number,
                           const std::string& caller_id, const std::string& display) {
  TrunkTarget out;
  std::string host = Bracketed(t.host);
  std::string domain = t.domain.empty() ? host : Bracketed(t.domain);
  const char* scheme = t.transport == "tls" ? "sips" : "sip";
  out.request_uri = t.port == 5060 ? fmt::format("{}:{}@{}", scheme, number, host)
                                   : fmt::format("{}:{}@{}:{}", scheme, number, host, t.port);
  std::string next_hop =
      t.outbound_proxy.empty() ? fmt::format("{}:{}", host, t.port) : t.outbound_proxy;
  out.route = fmt::format("{}:{};transport={}", scheme, next_hop, t.transport);
  out.from = display.empty() ? fmt::format("<sip:{}@{}>", caller_id, domain)
                             : fmt::format("{} <sip:{}@{}>", Quoted(display), caller_id, domain);
  out.to = fmt::format("<sip:{}@{}>", number, domain);
  return out;
}

std::string OutboundCallerId(const std::string& route_cli, const store::Trunk& t,
                             const std::string& extension_cli, const std::string& extension) {
  if (!route_cli.empty()) return route_cli;
  if (!t.outbound_cli.empty() && (t.cli_mode == "trunk" || extension_cli.empty())) {
    return t.outbound_cli;
  }
  return extension_cli.empty() ? extension : extension_cli;
}

std::string InboundDid(const store::Trunk& t, const std::string& request_user,
                       const std::string& to_user) {
  if (t.mode == "register" && request_user == t.username && !to_user.empty()) return to_user;
  return request_user;
}

}  // namespace pbx::sip
