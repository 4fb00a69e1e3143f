#pragma once

#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/process.h"

// The one way tests/integration starts a pbxd: one node on loopback, every port ephemeral
// (read back from ready.json), its files under `dir`; pbxctl and the admin's REST API to
// configure it. PBXD_PATH and PBXCTL_PATH come from the build.
namespace pbx::test {

// Started and ready (ready.json written), or nullptr after 30 s (the log is
// dir.Sub("pbxd.log")). `extra_config`: TOML tables appended to the bootstrap file.
inline std::unique_ptr<Process> StartPbxd(const TempDir& dir, const std::string& name,
                                          bool demo_extensions,
                                          const std::string& extra_config = "") {
  std::string config = dir.Sub("pbx.toml");
  std::ofstream(config) << "[node]\nname = \"" << name << "\"\n"
                        << "data_dir = \"" << dir.Sub("data") << "\"\n"
                        << "run_dir = \"" << dir.Sub("run") << "\"\n"
                        << "[api]\nport = 0\n"
                        << "[sip]\nlisten = \"127.0.0.1\"\nudp_port = 0\ntcp_port = 0\n"
                        << "tls_port = 0\n"
                        << "[demo]\nextensions = " << (demo_extensions ? "true" : "false") << "\n"
                        << extra_config;
  auto pbxd = std::make_unique<Process>(std::vector<std::string>{PBXD_PATH, "--config", config},
                                        dir.Sub("pbxd.log"));
  if (!WaitFor([&] { return std::filesystem::exists(dir.Sub("run/ready.json")); },
               std::chrono::seconds(30))) {
    return nullptr;
  }
  return pbxd;
}

// run/ready.json of a started pbxd: "sip_udp", "sip_tcp", "sip_tls", "api", "api_cert", ...
inline nlohmann::json ReadyJson(const TempDir& dir) {
  return nlohmann::json::parse(ReadFile(dir.Sub("run/ready.json")), nullptr, false);
}

inline CommandResult Pbxctl(const TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), {PBXCTL_PATH, "--run-dir", dir.Sub("run")});
  return Run(args);
}

// pbxctl ARGS --json, parsed (discarded JSON if it failed).
inline nlohmann::json PbxctlJson(const TempDir& dir, std::vector<std::string> args) {
  args.push_back("--json");
  CommandResult r = Pbxctl(dir, args);
  if (r.exit_code != 0) return nlohmann::json::value_t::discarded;
  return nlohmann::json::parse(r.out, nullptr, false);
}

// `pbxctl ext add NUMBER --name NAME --password PASSWORD EXTRA...`; the failure's output, or
// empty on success.
inline std::string AddExtension(const TempDir& dir, const std::string& number,
                                const std::string& name, const std::string& password,
                                std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"ext", "add", number, "--name", name, "--password", password};
  args.insert(args.end(), extra.begin(), extra.end());
  CommandResult r = Pbxctl(dir, args);
  return r.exit_code == 0 ? std::string() : r.out + r.err;
}

// A JSON request to the REST API as the admin (run/admin.token over HTTPS, trusting the
// node's own certificate): the HTTP status (0: no answer) and the parsed body.
inline std::pair<int, nlohmann::json> Api(const TempDir& dir, const std::string& method,
                                          const std::string& path,
                                          const nlohmann::json& body = nullptr) {
  nlohmann::json ready = ReadyJson(dir);
  httplib::SSLClient c("127.0.0.1", ready["api"].get<int>());
  c.set_ca_cert_path(ready["api_cert"].get<std::string>().c_str());
  c.enable_server_certificate_verification(true);
  std::string token = ReadFile(dir.Sub("run/admin.token"));
  while (!token.empty() && token.back() == '\n') token.pop_back();
  c.set_bearer_token_auth(token.c_str());
  std::string text = body.is_null() ? std::string() : body.dump();
  httplib::Result r = method == "GET"    ? c.Get(path)
                      : method == "POST" ? c.Post(path, text, "application/json")
                      : method == "PUT"  ? c.Put(path, text, "application/json")
                                         : c.Delete(path);
  if (!r) return {0, nullptr};
  return {r->status, nlohmann::json::parse(r->body, nullptr, false)};
}

}  // namespace pbx::test
