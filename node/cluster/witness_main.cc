// pbx-witness: the split-brain tie-breaker of an active/standby pair. Grants a lease to one
// node of a cluster at a time (DESIGN.md §4); runs on any third machine.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "node/cluster/witness_server.h"
#include "node/core/daemon.h"
#include "node/core/log.h"

int main(int argc, char** argv) {
  using namespace pbx;
  namespace fs = std::filesystem;
  CLI::App app{"pbx-witness: grants a lease to one node of a PBX pair at a time"};
  std::string listen_url;
  std::string run_dir;
  std::string log_level = "info";
  int64_t max_lease_ms = cluster::kMaxWitnessLease.count();
  std::optional<int64_t> startup_hold_ms;
  app.add_option("--listen", listen_url, "URL to listen on, e.g. tcp://0.0.0.0:7500")->required();
  app.add_option("--run-dir", run_dir, "where witness.json ({\"pid\", \"port\"}) is written");
  app.add_option("--log-level", log_level, "debug, info, warn or error");
  app.add_option("--max-lease-ms", max_lease_ms, "longest lease granted")
      ->check(CLI::Range(cluster::kMinWitnessLease.count(), cluster::kMaxWitnessLease.count()));
  app.add_option("--startup-hold-ms", startup_hold_ms,
                 "after start, grant a cluster only to the holder of a lease from before the "
                 "restart for this long (default: the longest lease; 0 for tests)")
      ->check(CLI::Range(int64_t{0}, int64_t{24} * 3600 * 1000));
  CLI11_PARSE(app, argc, argv);

  log::Level level;
  if (!log::ParseLevel(log_level, &level)) {
    std::fprintf(stderr, "pbx-witness: --log-level must be debug, info, warn or error\n");
    return 2;
  }
  log::SetLevel(level);

  const sigset_t stop_signals = daemon::BlockStopSignals();  // before NNG starts its threads

  cluster::WitnessServer::Options options;
  options.lease.max_lease = std::chrono::milliseconds(max_lease_ms);
  options.lease.startup_hold = std::chrono::milliseconds(startup_hold_ms.value_or(max_lease_ms));
  cluster::WitnessServer server(options);
  if (Status s = server.Start(listen_url); !s.ok()) {
    PBX_LOG(kError, "witness", "start-up failed: {}", s.ToString());
    return 1;
  }

  fs::path ready;
  if (!run_dir.empty()) {
    std::error_code ec;
    fs::create_directories(run_dir, ec);
    ready = fs::path(run_dir) / "witness.json";
    Status s = daemon::WriteFileAtomically(
        ready.string(), fmt::format("{{\"pid\": {}, \"port\": {}}}\n", ::getpid(), server.port()),
        0644);
    if (!s.ok()) {
      PBX_LOG(kError, "witness", "{}", s.ToString());
      return 1;
    }
  }

  // Not inside PBX_LOG, whose arguments are not evaluated below the log level.
  const char* signal_name = daemon::WaitForStopSignal(stop_signals);
  PBX_LOG(kInfo, "witness", "{} received, stopping", signal_name);
  server.Stop();
  if (!ready.empty()) {
    std::error_code ec;
    fs::remove(ready, ec);
  }
  PBX_LOG(kInfo, "witness", "stopped");
  return 0;
}
