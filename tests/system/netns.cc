#include "tests/system/netns.h"

#include <signal.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <regex>

#include "tests/support/process.h"

namespace pbx::test {
namespace {

constexpr std::chrono::seconds kIpTimeout{10};

std::string Join(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// Namespaces "<base><pid>_<role>" whose process is gone.
void RemoveStaleNamespaces(const std::string& base) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/var/run/netns", ec)) {
    std::string name = entry.path().filename();
    std::smatch m;
    if (!std::regex_match(name, m, std::regex(base + "([0-9]+)_[a-z]+"))) continue;
    pid_t pid = static_cast<pid_t>(std::stol(m[1]));
    if (kill(pid, 0) < 0 && errno == ESRCH) Run({"ip", "netns", "del", name}, kIpTimeout);
  }
}

}  // namespace

Netns::~Netns() { Run({"ip", "netns", "del", name_}, kIpTimeout); }

NetLab::NetLab(std::string prefix)
    : base_(std::move(prefix)), prefix_(base_ + std::to_string(getpid()) + "_") {}

bool NetLab::Create(std::string* why) {
  if (geteuid() != 0) {
    *why = "needs root: the test creates network namespaces (ip netns add)";
    return false;
  }
  RemoveStaleNamespaces(base_);
  CommandResult r = Run({"ip", "netns", "add", ns("sw")}, kIpTimeout);
  if (r.exit_code != 0) {
    *why = "cannot create network namespace " + ns("sw") + " (`ip netns add` exited " +
           std::to_string(r.exit_code) + "): " + r.err;
    return false;
  }
  netns_.push_back(std::make_unique<Netns>(ns("sw")));
  for (const std::vector<std::string>& c : std::vector<std::vector<std::string>>{
           {"ip", "-n", ns("sw"), "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"},
           {"ip", "-n", ns("sw"), "link", "set", "br0", "up"}}) {
    r = Run(c, kIpTimeout);
    if (r.exit_code != 0) {
      *why = Join(c) + ": " + r.err;
      return false;
    }
  }
  return true;
}

std::string NetLab::AddHost(const std::string& role, const std::string& mac,
                            const std::vector<std::string>& addresses) {
  const std::string host = ns(role);
  const std::string port = role + "1";
  CommandResult r = Run({"ip", "netns", "add", host}, kIpTimeout);
  if (r.exit_code != 0) return "ip netns add " + host + ": " + r.err;
  netns_.push_back(std::make_unique<Netns>(host));
  // Both ends are created inside namespaces: no name or address ever touches the host's.
  std::vector<std::vector<std::string>> cmds = {
      {"ip", "link", "add", "eth0", "netns", host, "address", mac, "type", "veth", "peer", "name",
       port, "netns", ns("sw")},
      {"ip", "-n", ns("sw"), "link", "set", port, "master", "br0", "up"},
      {"ip", "-n", host, "link", "set", "lo", "up"},
  };
  for (const std::string& a : addresses) {
    std::vector<std::string> c = {"ip", "-n", host, "addr", "add", a, "dev", "eth0"};
    if (a.find(':') != std::string::npos) c.push_back("nodad");
    cmds.push_back(std::move(c));
  }
  cmds.push_back({"ip", "-n", host, "link", "set", "eth0", "up"});
  for (const auto& c : cmds) {
    r = Run(c, kIpTimeout);
    if (r.exit_code != 0) return Join(c) + ": " + r.err;
  }
  return "";
}

}  // namespace pbx::test
