// pbxd: the PBX daemon. Parses flags, builds the node, waits for SIGINT/SIGTERM.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "node/core/daemon.h"
#include "node/core/log.h"
#include "node/main/bootstrap_config.h"
#include "node/main/node.h"

int main(int argc, char** argv) {
  using namespace pbx;
  CLI::App app{"pbxd: the HA-cluster PBX daemon"};
  std::string config_file;
  std::string data_dir;
  std::string run_dir;
  std::string log_level;
  app.add_option("--config", config_file, "bootstrap file (TOML); without it, the embedded default")
      ->check(CLI::ExistingFile);
  app.add_option("--data-dir", data_dir, "where the stores live (overrides the file)");
  app.add_option("--run-dir", run_dir, "where ready.json and admin.token go (overrides the file)");
  app.add_option("--log-level", log_level, "debug, info, warn or error (overrides the file)");
  app.set_version_flag("--version", PBX_VERSION);
  CLI11_PARSE(app, argc, argv);

  Result<node::BootstrapConfig> config =
      config_file.empty() ? node::BootstrapConfig() : node::LoadBootstrapConfig(config_file);
  if (!config.ok()) {
    std::fprintf(stderr, "pbxd: %s\n", config.status().message().c_str());
    return 2;
  }
  if (!data_dir.empty()) config->data_dir = data_dir;
  if (!run_dir.empty()) config->run_dir = run_dir;
  if (!log_level.empty()) config->log_level = log_level;
  log::Level level;
  if (!log::ParseLevel(config->log_level, &level)) {
    std::fprintf(stderr, "pbxd: --log-level must be debug, info, warn or error\n");
    return 2;
  }
  log::SetLevel(level);

  const sigset_t stop_signals = daemon::BlockStopSignals();  // before any thread starts
  if (config->realtime_priority > 0) {  // also before any thread starts: they inherit it
    if (Status st = daemon::UseRealtimeScheduling(config->realtime_priority); !st.ok()) {
      PBX_LOG(kWarn, "pbxd", "{}; running at normal priority", st.message());
    } else {
      PBX_LOG(kInfo, "pbxd", "running under SCHED_RR priority {}", config->realtime_priority);
    }
  }

  Result<std::unique_ptr<node::Node>> node = node::Node::Start(*config);
  if (!node.ok()) {
    PBX_LOG(kError, "pbxd", "start-up failed: {}", node.status().ToString());
    return 1;
  }
  // Not inside PBX_LOG, whose arguments are not evaluated below the log level.
  const char* signal_name = daemon::WaitForStopSignal(stop_signals);
  PBX_LOG(kInfo, "pbxd", "{} received, stopping", signal_name);
  (*node)->Stop();
  PBX_LOG(kInfo, "pbxd", "stopped");
  return 0;
}
