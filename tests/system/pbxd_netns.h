#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/process.h"

// One pbxd in a network namespace, listening for SIP on `address` (5060 UDP/TCP, TLS 5062)
// with its API on an ephemeral port of the namespace's loopback (or on 0.0.0.0:`api_port`
// when that is not 0); pbxctl runs beside it.
// PBXD_PATH and PBXCTL_PATH come from the build.
namespace pbx::test {

class NetnsPbxd {
 public:
  // Writes `dir`/pbx.toml (plus `extra_config`, TOML sections of the test's own) and starts
  // pbxd; a `dir` used before is a restart with the same data. libre 1.x (baresip) and sipp
  // refuse a 401 that offers SHA-256, so digests are MD5 only.
  NetnsPbxd(std::string netns, const TempDir& dir, const std::string& name,
            const std::string& address, bool demo_extensions, const std::string& extra_config = "",
            int api_port = 0);
  ~NetnsPbxd();
  NetnsPbxd(const NetnsPbxd&) = delete;
  NetnsPbxd& operator=(const NetnsPbxd&) = delete;

  // Waits for ready.json (of this start).
  bool WaitReady(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  CommandResult Pbxctl(std::vector<std::string> args) const;
  // `pbxctl <args> --json`; an empty object when it fails or prints no JSON.
  nlohmann::json PbxctlJson(std::vector<std::string> args) const;
  // Whether `pbxctl reg list` shows a binding of extension `number`.
  bool Registered(const std::string& number) const;
  std::string Log() const { return process_->Log(); }
  const std::string& run_dir() const { return run_dir_; }
  Process& process() { return *process_; }

 private:
  std::string netns_;
  std::string run_dir_;
  std::unique_ptr<Process> process_;
};

}  // namespace pbx::test
