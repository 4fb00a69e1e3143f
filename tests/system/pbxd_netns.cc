#include "tests/system/pbxd_netns.h"

#include <filesystem>
#include <fstream>

namespace pbx::test {

NetnsPbxd::NetnsPbxd(std::string netns, const TempDir& dir, const std::string& name,
                     const std::string& address, bool demo_extensions,
                     const std::string& extra_config, int api_port)
    : netns_(std::move(netns)), run_dir_(dir.Sub("run")) {
  std::filesystem::remove(run_dir_ + "/ready.json");  // a kill -9 leaves it behind
  std::string config = dir.Sub("pbx.toml");
  std::ofstream(config) << "[node]\nname = \"" << name << "\"\n"
                        << "data_dir = \"" << dir.Sub("data") << "\"\n"
                        << "run_dir = \"" << run_dir_ << "\"\n"
                        << (api_port == 0 ? "[api]\nport = 0\n"
                                          : "[api]\nlisten = \"0.0.0.0\"\nport = " +
                                                std::to_string(api_port) + "\n")
                        << "[sip]\nlisten = \"" << address << "\"\n"
                        << "udp_port = 5060\ntcp_port = 5060\ntls_port = 5062\n"
                        << "digest_sha256 = false\n"
                        << "[demo]\nextensions = " << (demo_extensions ? "true" : "false") << "\n"
                        << extra_config;
  process_ = std::make_unique<Process>(
      std::vector<std::string>{"ip", "netns", "exec", netns_, PBXD_PATH, "--config", config},
      dir.Sub("pbxd.log"));
}

NetnsPbxd::~NetnsPbxd() = default;

bool NetnsPbxd::WaitReady(std::chrono::milliseconds timeout) {
  return WaitFor([&] { return std::filesystem::exists(run_dir_ + "/ready.json"); }, timeout);
}

CommandResult NetnsPbxd::Pbxctl(std::vector<std::string> args) const {
  std::vector<std::string> cmd = {"ip",        "netns",     "exec",  netns_,
                                  PBXCTL_PATH, "--run-dir", run_dir_};
  cmd.insert(cmd.end(), args.begin(), args.end());
  return Run(cmd);
}

nlohmann::json NetnsPbxd::PbxctlJson(std::vector<std::string> args) const {
  args.push_back("--json");
  CommandResult r = Pbxctl(std::move(args));
  if (r.exit_code != 0) return nlohmann::json::object();
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  return j.is_discarded() ? nlohmann::json::object() : j;
}

bool NetnsPbxd::Registered(const std::string& number) const {
  nlohmann::json regs = PbxctlJson({"reg", "list"});
  if (!regs.contains("registrations")) return false;
  for (const nlohmann::json& r : regs["registrations"]) {
    if (r["number"] == number) return true;
  }
  return false;
}

}  // namespace pbx::test
