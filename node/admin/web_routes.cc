// The web admin's files and the two things a browser needs before it logs in: which node it
// reached (and whether it serves), and a way from http:// to https://.

#include <filesystem>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "node/admin/routes.h"
#include "node/core/log.h"

namespace pbx::admin {
namespace {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;

// The VIP without its prefix length: "10.99.0.100/24" -> "10.99.0.100".
std::string VipAddress(const std::string& vip) { return vip.substr(0, vip.find('/')); }

// A Host header we are willing to echo in a Location: a name or an address, with or without
// a port. Anything else is replaced by the address the redirect listens on.
bool IsPlainHost(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return true;
}

// "host:port" / "[v6]:port" / "host" -> host (brackets kept for IPv6).
std::string_view HostPart(std::string_view host) {
  if (!host.empty() && host.front() == '[') return host.substr(0, host.find(']') + 1);
  size_t colon = host.find(':');
  if (colon != std::string_view::npos && host.find(':', colon + 1) == std::string_view::npos) {
    return host.substr(0, colon);
  }
  return host;
}

}  // namespace

Status AddWebRoutes(httplib::Server& server, const RouteContext& ctx, const std::string& web_dir) {
  server.Get("/api/v1/web/info", [ctx](const Request&, Response& res) {
    NodeStatus s = ctx.status ? ctx.status() : NodeStatus{};
    json body{{"node_name", s.node_name}, {"role", s.role}, {"serving", s.serving}};
    if (s.cluster) {
      body["vip"] = VipAddress(s.cluster->vip);
      body["vip_owner"] = s.cluster->vip_owner;
    }
    SendJson(res, 200, body);
  });
  if (web_dir.empty()) return Status::Ok();
  std::error_code ec;
  if (!std::filesystem::is_directory(web_dir, ec) || !server.set_mount_point("/", web_dir)) {
    return Status::Unavailable(fmt::format("web admin directory {} does not exist", web_dir));
  }
  PBX_LOG(kInfo, "api", "serving the web admin from {}", web_dir);
  return Status::Ok();
}

std::string DefaultWebDir() {
  std::error_code ec;
  for (const char* dir : {PBX_WEB_DIR_INSTALLED, PBX_WEB_DIR_SOURCE}) {
    if (std::filesystem::exists(std::filesystem::path(dir) / "index.html", ec)) return dir;
  }
  return {};
}

Result<std::unique_ptr<HttpRedirect>> StartHttpRedirect(const std::string& address, uint16_t port,
                                                        uint16_t https_port) {
  auto redirect = std::make_unique<HttpRedirect>();
  const std::string fallback_host = address == "0.0.0.0" ? "127.0.0.1" : address;
  redirect->server_.set_pre_routing_handler([=](const Request& req, Response& res) {
    std::string host = req.get_header_value("Host");
    std::string_view name = IsPlainHost(host) ? HostPart(host) : std::string_view(fallback_host);
    // req.target is the path and query as sent; only an origin-form target is kept.
    std::string target = !req.target.empty() && req.target[0] == '/' ? req.target : "/";
    std::string location = https_port == 443
                               ? fmt::format("https://{}{}", name, target)
                               : fmt::format("https://{}:{}{}", name, https_port, target);
    res.set_redirect(location, 308);
    return httplib::Server::HandlerResponse::Handled;
  });
  redirect->thread_ = std::make_unique<ServerThread>(redirect->server_);
  PBX_TRY(redirect->thread_->Start(address, port));
  PBX_LOG(kInfo, "api", "redirecting http://{}:{} to https", address, redirect->thread_->port());
  return redirect;
}

}  // namespace pbx::admin
