#pragma once

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"

// A pbxd of the trunk and routing tests: one node on loopback, every port ephemeral, its
// files under `dir`. PBXD_PATH and PBXCTL_PATH come from the build.
namespace pbx::test {

// Started and ready (ready.json written), or nullptr after 30 s.
inline std::unique_ptr<Process> StartPbxd(const TempDir& dir, const std::string& name,
                                          bool demo_extensions) {
  std::string config = dir.Sub("pbx.toml");
  std::ofstream(config) << "[node]\nname = \"" << name << "\"\n"
                        << "data_dir = \"" << dir.Sub("data") << "\"\n"
                        << "run_dir = \"" << dir.Sub("run") << "\"\n"
                        << "[api]\nport = 0\n"
                        << "[sip]\nlisten = \"127.0.0.1\"\nudp_port = 0\ntcp_port = 0\n"
                        << "tls_port = 0\n"
                        << "[demo]\nextensions = " << (demo_extensions ? "true" : "false") << "\n";
  auto pbxd = std::make_unique<Process>(std::vector<std::string>{PBXD_PATH, "--config", config},
                                        dir.Sub("pbxd.log"));
  if (!WaitFor([&] { return std::filesystem::exists(dir.Sub("run/ready.json")); },
               std::chrono::seconds(30))) {
    return nullptr;
  }
  return pbxd;
}

inline CommandResult Pbxctl(const TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), {PBXCTL_PATH, "--run-dir", dir.Sub("run")});
  return Run(args);
}

}  // namespace pbx::test
