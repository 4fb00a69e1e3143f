// pbx-witness: the split-brain tie-breaker of an active/standby pair. Grants a lease to one
// node of a cluster at a time (DESIGN.md §4); runs on any third machine.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "node/cluster/witness_server.h"
#include "node/core/log.h"

namespace {

namespace fs = std::filesystem;
using pbx::Status;

// Through a temporary file and a rename, so a reader never sees half a file.
Status WriteFileAtomically(const fs::path& path, const std::string& content) {
  fs::path tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Io(fmt::format("cannot write {}: {}", tmp.string(), strerror(errno)));
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::Io(fmt::format("cannot write {}: {}", path.string(), strerror(errno)));
  }
  return Status::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pbx;
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

  // Block the stop signals before NNG starts its threads, so they all inherit the mask and
  // only sigwait() below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

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
    Status s = WriteFileAtomically(
        ready, fmt::format("{{\"pid\": {}, \"port\": {}}}\n", ::getpid(), server.port()));
    if (!s.ok()) {
      PBX_LOG(kError, "witness", "{}", s.ToString());
      return 1;
    }
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  PBX_LOG(kInfo, "witness", "{} received, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  server.Stop();
  if (!ready.empty()) {
    std::error_code ec;
    fs::remove(ready, ec);
  }
  PBX_LOG(kInfo, "witness", "stopped");
  return 0;
}
