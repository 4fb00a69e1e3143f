// Replication benchmarks (issue: replication and failover), in one process over loopback:
//   commits  - commit throughput with 1/16/64 writers: kReplicated and kAsync with a
//              standby attached, each as a ratio to the same DB with no shipper at all;
//   lag      - replication lag p50/p99 (commit returned -> applied on the standby) at a
//              steady offered rate;
//   resync   - checkpoint resync speed of a fresh standby, records/s;
//   walread  - cost of one ReadWalSince at the tail of a growing WAL: with a new RocksDB
//              iterator each time, and continuing the previous call (the shipper's way).
// Usage: pbx_replication_bench [--quick] [--standby-sync-ms N] [--realtime P]
//                              [commits|lag|resync|walread ...]
//   --realtime P: runs under SCHED_RR priority P as pbxd does with [node] realtime_priority
//   (daemon::UseRealtimeScheduling, before any thread starts).
//   --standby-sync-ms N: the standby's background WAL sync interval (ReceiverOptions::
//   sync_interval; default its default). A huge N leaves the standby's fsyncs out, to tell
//   their share of the lag tail.
// Each run prints one line per figure; bench/RESULTS.md records them with the command.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "node/core/daemon.h"
#include "node/core/log.h"
#include "replication/ship/log_receiver.h"
#include "replication/ship/log_shipper.h"
#include "replication/store/state_store.h"
#include "replication/store/wal.h"

namespace pbx {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

bool g_quick = false;
std::optional<std::chrono::milliseconds> g_standby_sync;

struct Dir {
  Dir() {
    char tmpl[] = "/tmp/pbxbench.XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~Dir() { fs::remove_all(path); }
  std::string path;
};

// Polls `done` every millisecond until it holds (true) or `limit` passes (false). Every wait
// in this file is bounded, so a stuck run fails with a CHECK naming the line.
template <typename F>
bool WaitUntil(F done, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

std::unique_ptr<store::ReplicatedDb> Open(const std::string& dir) {
  store::StoreOptions o;
  o.dir = dir;
  auto db = store::OpenReplicatedDb(o);
  PBX_CHECK(db.ok());
  return std::move(*db);
}

// Listens on a port the kernel picks; the receiver dials shipper->url().
std::unique_ptr<ship::LogShipper> StartShipper(store::ReplicatedDb& db) {
  ship::ShipperOptions o;
  o.listen_url = "tcp://127.0.0.1:0";
  o.cluster_id = "bench";
  o.node_name = "a";
  auto s = ship::LogShipper::Start(db, o);
  PBX_CHECK(s.ok());
  return std::move(*s);
}

// `was_active` forces a checkpoint, as for a node that served before a failover.
std::unique_ptr<ship::LogReceiver> StartReceiver(store::ReplicatedDb& db, const std::string& url,
                                                 bool was_active) {
  ship::ReceiverOptions o;
  o.peer_url = url;
  o.cluster_id = "bench";
  o.node_name = "b";
  o.was_active_fn = [was_active] { return was_active; };
  if (g_standby_sync) o.sync_interval = *g_standby_sync;
  auto r = ship::LogReceiver::Start(db, o);
  PBX_CHECK(r.ok());
  return std::move(*r);
}

// An active DB with a standby receiving it, both in this process.
struct Pair {
  explicit Pair(bool with_standby) {
    active = Open(dir.path + "/a");
    if (!with_standby) return;
    standby = Open(dir.path + "/b");
    shipper = StartShipper(*active);
    receiver = StartReceiver(*standby, shipper->url(), false);
    PBX_CHECK(WaitUntil([&] { return !shipper->status().degraded; }, 30s));
  }
  ~Pair() {
    receiver.reset();
    shipper.reset();
  }
  Dir dir;
  std::unique_ptr<store::ReplicatedDb> active;
  std::unique_ptr<store::ReplicatedDb> standby;
  std::unique_ptr<ship::LogShipper> shipper;
  std::unique_ptr<ship::LogReceiver> receiver;
};

store::WriteSet Registration(int writer, int i) {
  store::WriteSet w;
  w.Put(store::Table::kRuntime, fmt::format("reg/{}/{}", writer, i % 500),
        std::string(120, static_cast<char>('a' + i % 26)));
  return w;
}

// Commits per second with `writers` threads for `duration`.
double Throughput(store::StateStore& db, int writers, store::Durability d,
                  std::chrono::milliseconds duration) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> commits{0};
  std::vector<std::thread> threads;
  auto start = Clock::now();
  for (int t = 0; t < writers; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        PBX_CHECK(db.Commit(Registration(t, i), d).ok());
        commits.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::this_thread::sleep_for(duration);
  stop = true;
  for (auto& th : threads) th.join();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(commits.load()) / secs;
}

void Commits() {
  auto duration = g_quick ? 300ms : 3s;
  std::printf("%-8s %12s %14s %12s %10s %10s\n", "writers", "local/s", "replicated/s", "async/s",
              "repl/local", "async/loc");
  for (int writers : {1, 16, 64}) {
    double local, replicated, async;
    {
      Pair p(false);  // the same DB and sync writes, no standby: the baseline
      local = Throughput(*p.active, writers, store::Durability::kReplicated, duration);
    }
    {
      Pair p(true);
      replicated = Throughput(*p.active, writers, store::Durability::kReplicated, duration);
      PBX_CHECK(p.shipper->status().timed_out_commits == 0 || g_quick);
      async = Throughput(*p.active, writers, store::Durability::kAsync, duration);
    }
    std::printf("%-8d %12.0f %14.0f %12.0f %10.2f %10.2f\n", writers, local, replicated, async,
                replicated / local, async / local);
  }
}

void Lag() {
  const int rate = 5000;
  const int total = g_quick ? 1000 : 20000;
  Pair p(true);
  std::vector<Clock::time_point> committed(total + 1);
  std::vector<double> lag_us;
  lag_us.reserve(total);
  std::mutex mu;
  store::SeqNo first = p.active->LatestSeq() + 1;
  // Seq -> index: one op per commit, so seq = first + index.
  store::Subscription sub =
      p.standby->Subscribe(store::Table::kRuntime, "reg/", [&](const store::Change& c) {
        auto now = Clock::now();
        size_t i = c.seq - first;
        std::lock_guard<std::mutex> lock(mu);
        if (i < committed.size()) {
          lag_us.push_back(std::chrono::duration<double, std::micro>(now - committed[i]).count());
        }
      });
  auto start = Clock::now();
  for (int i = 0; i < total; ++i) {
    std::this_thread::sleep_until(start + std::chrono::microseconds(1000000LL * i / rate));
    {
      std::lock_guard<std::mutex> lock(mu);
      committed[i] = Clock::now();
    }
    PBX_CHECK(p.active->Commit(Registration(0, i), store::Durability::kAsync).ok());
  }
  PBX_CHECK(WaitUntil(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return lag_us.size() >= static_cast<size_t>(total);
      },
      30s));
  std::lock_guard<std::mutex> lock(mu);
  std::sort(lag_us.begin(), lag_us.end());
  auto pct = [&](double q) { return lag_us[static_cast<size_t>(q * (lag_us.size() - 1))]; };
  std::printf(
      "lag at %d writes/s (async commits, %zu samples): p50 %.0f us  p99 %.0f us  "
      "max %.0f us\n",
      rate, lag_us.size(), pct(0.5), pct(0.99), lag_us.back());
}

void Resync() {
  const int records = g_quick ? 5000 : 300000;
  Dir dir;
  auto active = Open(dir.path + "/a");
  for (int i = 0; i < records;) {
    store::WriteSet w;
    for (int j = 0; j < 1000 && i < records; ++j, ++i) {
      w.Put(store::Table::kRecords, fmt::format("cdr/{:09}", i), std::string(200, 'x'));
    }
    PBX_CHECK(active->Commit(w, store::Durability::kAsync).ok());
  }
  auto shipper = StartShipper(*active);
  auto standby = Open(dir.path + "/b");
  auto start = Clock::now();
  auto receiver = StartReceiver(*standby, shipper->url(), /*was_active=*/true);
  store::SeqNo target = active->LatestSeq();
  PBX_CHECK(WaitUntil([&] { return standby->LatestSeq() >= target; }, 120s));
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  // The receiver counts the install a moment after the DB shows it: wait for the count
  // too (checking it at once aborted the --quick smoke run now and then).
  PBX_CHECK(WaitUntil([&] { return receiver->status().checkpoints_installed >= 1; }, 10s));
  std::printf("checkpoint resync of %d records (%.0f MB of values): %.2f s = %.0f records/s\n",
              records, records * 200 / 1e6, secs, records / secs);
  receiver.reset();
  shipper.reset();
}

void WalRead() {
  Dir dir;
  auto db = Open(dir.path + "/a");
  int written = 0;
  const int rounds = 50;
  std::printf("%-16s %14s %14s\n", "commits in WAL", "new iter us", "continued us");
  const std::vector<int> sizes =
      g_quick ? std::vector<int>{500, 2000} : std::vector<int>{1000, 10000, 100000};
  for (int size : sizes) {
    for (; written < size; ++written) {
      PBX_CHECK(db->Commit(Registration(0, written), store::Durability::kAsync).ok());
    }
    // New iterator: the same `from` again, which the store cannot continue from.
    std::vector<double> fresh, continued;
    const store::SeqNo latest = db->LatestSeq();
    for (int i = 0; i < rounds; ++i) {
      auto t0 = Clock::now();
      PBX_CHECK(db->ReadWalSince(latest, 1 << 20).ok());
      fresh.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    // Continued: one commit, then a read from where the last one ended.
    store::SeqNo next = latest + 1;
    for (int i = 0; i < rounds; ++i) {
      PBX_CHECK(db->Commit(Registration(1, i), store::Durability::kAsync).ok());
      auto t0 = Clock::now();
      Result<std::vector<store::WalBatch>> r = db->ReadWalSince(next, 1 << 20);
      continued.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      PBX_CHECK(r.ok() && !r->empty() && r->front().first_seq == next);
      next = r->back().first_seq + r->back().count;
    }
    written += rounds;
    std::sort(fresh.begin(), fresh.end());
    std::sort(continued.begin(), continued.end());
    std::printf("%-16d %14.0f %14.1f\n", size, fresh[rounds / 2], continued[rounds / 2]);
  }
}

}  // namespace
}  // namespace pbx

int main(int argc, char** argv) {
  pbx::log::SetLevel(pbx::log::Level::kWarn);
  // Line-buffered even into a pipe or file (ctest): an abort must not swallow the figures.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::vector<std::string> which;
  int realtime = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      pbx::g_quick = true;
    } else if (a == "--standby-sync-ms" && i + 1 < argc) {
      pbx::g_standby_sync = std::chrono::milliseconds(std::atoll(argv[++i]));
    } else if (a == "--realtime" && i + 1 < argc) {
      realtime = std::atoi(argv[++i]);
    } else if (a == "commits" || a == "lag" || a == "resync" || a == "walread") {
      which.push_back(a);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--quick] [--standby-sync-ms N] [--realtime P] "
                   "[commits|lag|resync|walread ...]\n",
                   argv[0]);
      return 2;
    }
  }
  if (which.empty()) which = {"commits", "lag", "resync", "walread"};
  if (realtime > 0) {
    if (pbx::Status st = pbx::daemon::UseRealtimeScheduling(realtime); !st.ok()) {
      std::fprintf(stderr, "%s\n", st.message().c_str());
      return 1;
    }
  }
  for (const std::string& w : which) {
    if (w == "commits") pbx::Commits();
    if (w == "lag") pbx::Lag();
    if (w == "resync") pbx::Resync();
    if (w == "walread") pbx::WalRead();
  }
  return 0;
}
