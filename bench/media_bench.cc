// pbx_media_bench: how many concurrent G.711 calls the RTP relay carries with < 0.1 % loss.
//
// Each simulated call is two phones sending 20 ms G.711 packets (12-byte RTP header + 160
// bytes, 50 packets/s each way) through one relay (RtpRelay on 127.0.0.1). The generator
// runs in this process: G threads (default 1), each owning two UDP sockets (side A, side
// B) that send for all of its calls with sendmmsg, spread over the 20 ms period, and read
// what the relay forwards with recvmmsg. Every packet carries its call, direction and
// send time, so loss and one-way delay are counted per packet.
//
//   pbx_media_bench [--quick] [--calls 250,500,...] [--seconds S] [--workers W]
//                   [--gen-threads G] [--ports MIN-MAX] [--relay-ports FILE]
//
// Without --calls it steps up the call count and stops after the first step with
// >= 0.1 % loss. --quick: 50 calls for 1 s, fails above 1 % loss (the ctest smoke run).
// --relay-ports FILE: no relay in this process; the calls are the ones a running pbxd set
// up through SIP, one "A_PORT B_PORT" line each (the relay's ports on 127.0.0.1, from GET
// /api/v1/calls; bench/run.sh sip --media-source generator writes it). The generator's
// first packet on each port latches it (symmetric RTP), so a latching pass goes first and
// is not counted. The relay's CPU is then pbxd's, measured by the caller.
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "media/rtp/relay.h"

namespace {

using pbx::media::RtpRelay;

constexpr int kPeriodMs = 20;         // G.711 ptime
constexpr size_t kPacketBytes = 172;  // 12-byte RTP header + 160 bytes of 8 kHz audio
constexpr int kBatch = 64;
constexpr int kDrainMs = 300;             // reading on after the last send
constexpr double kMaxLateMs = kPeriodMs;  // a generator later than this measures itself

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

double CpuSeconds(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

double ProcessCpuSeconds() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

int UdpSocket(uint16_t* port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int big = 16 << 20;
  // Root may exceed rmem_max; otherwise the plain option gets what the sysctl allows.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
  }
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    perror("bind");
    exit(1);
  }
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

struct SimCall {
  uint32_t index = 0;
  sockaddr_in to[2]{};  // the relay port each side sends to
  uint64_t sent[2] = {0, 0};
  uint64_t received[2] = {0, 0};  // by the direction it was sent in
};

// One-way delay histogram: 10 µs buckets up to 100 ms.
struct Delays {
  std::array<uint64_t, 10000> buckets{};
  uint64_t count = 0;
  void Add(int64_t ns) {
    size_t b = std::min<size_t>(buckets.size() - 1, std::max<int64_t>(0, ns) / 10'000);
    ++buckets[b];
    ++count;
  }
  double PercentileUs(double q) const {
    uint64_t want = static_cast<uint64_t>(q * count), seen = 0;
    for (size_t i = 0; i < buckets.size(); ++i) {
      seen += buckets[i];
      if (seen > want) return (i + 1) * 10.0;
    }
    return buckets.size() * 10.0;
  }
  void Merge(const Delays& o) {
    for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += o.buckets[i];
    count += o.count;
  }
};

// One generator thread: its calls' phones on two sockets.
class Generator {
 public:
  explicit Generator(std::vector<SimCall*> calls) : calls_(std::move(calls)) {
    for (int s = 0; s < 2; ++s) fd_[s] = UdpSocket(&port_[s]);
  }
  ~Generator() {
    for (int fd : fd_) close(fd);
  }
  uint16_t port(int side) const { return port_[side]; }

  // One packet per call and side, so that an external relay latches this generator's
  // sockets as its peers before anything is counted.
  void Latch() {
    for (SimCall* c : calls_) {
      for (int side = 0; side < 2; ++side) Queue(side, *c);
    }
    Flush(0);
    Flush(1);
  }

  // Reads and forgets what arrived, and starts counting from zero.
  void ResetCounts() {
    ReceiveUntil(NowNs());
    for (SimCall* c : calls_) *c = SimCall{.index = c->index, .to = {c->to[0], c->to[1]}};
    delays_ = Delays{};
  }

  // Sends until `stop_ns`, then reads for `drain_ms` more.
  void Run(int64_t stop_ns, int drain_ms) {
    int64_t tick = NowNs();
    uint64_t slot = 0;
    while (tick < stop_ns) {
      // Call i sends in millisecond slot i % 20 of each 20 ms period.
      for (size_t i = slot % kPeriodMs; i < calls_.size(); i += kPeriodMs) {
        for (int side = 0; side < 2; ++side) Queue(side, *calls_[i]);
      }
      Flush(0);
      Flush(1);
      ++slot;
      tick += 1'000'000;
      // How far behind its schedule the generator fell: a late generator measures itself,
      // not the relay.
      max_late_ns_ = std::max(max_late_ns_, NowNs() - tick);
      ReceiveUntil(tick);
    }
    ReceiveUntil(NowNs() + int64_t{drain_ms} * 1'000'000);
    cpu_seconds_ = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
  }

  double cpu_seconds() const { return cpu_seconds_; }
  int64_t max_late_ns() const { return max_late_ns_; }
  uint64_t send_errors() const { return send_errors_; }
  const Delays& delays() const { return delays_; }

 private:
  void Queue(int side, SimCall& c) {
    int n = pending_[side];
    char* p = out_[side][n].data();
    memset(p, 0, kPacketBytes);
    p[0] = static_cast<char>(0x80);  // RTP v2, PT 0 (PCMU)
    uint32_t seq = static_cast<uint32_t>(c.sent[side]);
    uint32_t ssrc = htonl(c.index * 2 + side);
    uint16_t seq16 = htons(static_cast<uint16_t>(seq));
    memcpy(p + 2, &seq16, 2);
    memcpy(p + 8, &ssrc, 4);
    int64_t now = NowNs();
    memcpy(p + 12, &c.index, 4);
    p[16] = static_cast<char>(side);
    memcpy(p + 20, &now, 8);
    iov_[side][n] = {p, kPacketBytes};
    msgs_[side][n].msg_hdr = {};
    msgs_[side][n].msg_hdr.msg_name = &c.to[side];
    msgs_[side][n].msg_hdr.msg_namelen = sizeof(sockaddr_in);
    msgs_[side][n].msg_hdr.msg_iov = &iov_[side][n];
    msgs_[side][n].msg_hdr.msg_iovlen = 1;
    ++c.sent[side];
    if (++pending_[side] == kBatch) Flush(side);
  }

  void Flush(int side) {
    int n = pending_[side], done = 0;
    while (done < n) {
      int k = sendmmsg(fd_[side], msgs_[side].data() + done, n - done, 0);
      if (k <= 0) {
        send_errors_ += n - done;
        break;
      }
      done += k;
    }
    pending_[side] = 0;
  }

  void ReceiveUntil(int64_t until_ns) {
    for (;;) {
      bool any = false;
      for (int s = 0; s < 2; ++s) any |= Drain(s);
      int64_t now = NowNs();
      if (now >= until_ns) return;
      if (!any) {  // wait for a packet or the next tick, whichever comes first
        pollfd p[2] = {{fd_[0], POLLIN, 0}, {fd_[1], POLLIN, 0}};
        timespec ts{0, static_cast<long>(until_ns - now)};
        ppoll(p, 2, &ts, nullptr);
      }
    }
  }

  bool Drain(int side) {
    bool any = false;
    for (;;) {
      for (int i = 0; i < kBatch; ++i) {
        rx_iov_[i] = {rx_[i].data(), rx_[i].size()};
        rx_msgs_[i].msg_hdr = {};
        rx_msgs_[i].msg_hdr.msg_iov = &rx_iov_[i];
        rx_msgs_[i].msg_hdr.msg_iovlen = 1;
      }
      int n = recvmmsg(fd_[side], rx_msgs_.data(), kBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) return any;
      any = true;
      int64_t now = NowNs();
      for (int i = 0; i < n; ++i) {
        if (rx_msgs_[i].msg_len != kPacketBytes) continue;
        uint32_t index;
        int64_t sent_ns;
        memcpy(&index, rx_[i].data() + 12, 4);
        int dir = rx_[i][16];
        memcpy(&sent_ns, rx_[i].data() + 20, 8);
        // Only calls of this generator reach its sockets; the index finds the call.
        auto it = std::lower_bound(calls_.begin(), calls_.end(), index,
                                   [](const SimCall* c, uint32_t v) { return c->index < v; });
        if (it == calls_.end() || (*it)->index != index || dir != 1 - side) continue;
        ++(*it)->received[dir];
        delays_.Add(now - sent_ns);
      }
    }
  }

  std::vector<SimCall*> calls_;
  int fd_[2] = {-1, -1};
  uint16_t port_[2] = {0, 0};
  int pending_[2] = {0, 0};
  std::array<std::array<char, kPacketBytes>, kBatch> out_[2];
  std::array<iovec, kBatch> iov_[2];
  std::array<mmsghdr, kBatch> msgs_[2];
  std::array<std::array<char, 2048>, kBatch> rx_;
  std::array<iovec, kBatch> rx_iov_;
  std::array<mmsghdr, kBatch> rx_msgs_;
  Delays delays_;
  double cpu_seconds_ = 0;
  uint64_t send_errors_ = 0;
  int64_t max_late_ns_ = 0;
};

struct StepResult {
  int calls = 0;
  uint64_t sent = 0, received = 0, relay_dropped = 0, send_errors = 0;
  double seconds = 0, relay_cpu = 0, gen_cpu = 0;
  double p50_us = 0, p99_us = 0;
  double late_ms = 0;  // the generator's worst lag behind its schedule
  double loss() const { return sent == 0 ? 1.0 : 1.0 - double(received) / double(sent); }
};

struct Options {
  std::vector<int> calls;
  double seconds = 10;
  int workers = 0;
  int gen_threads = 1;
  uint16_t port_min = 20000, port_max = 31999;
  bool quick = false;
  std::vector<pbx::media::RelayPorts> external;  // --relay-ports: pbxd's calls
};

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

// Generators for `calls`, each owning every G-th call.
std::vector<std::unique_ptr<Generator>> MakeGenerators(std::vector<SimCall>& calls, int g_count) {
  std::vector<std::unique_ptr<Generator>> gens;
  for (int g = 0; g < g_count; ++g) {
    std::vector<SimCall*> mine;
    for (size_t i = g; i < calls.size(); i += g_count) mine.push_back(&calls[i]);
    gens.push_back(std::make_unique<Generator>(std::move(mine)));
  }
  return gens;
}

// Sends on schedule for `seconds` and sums up what every generator counted.
void RunGenerators(std::vector<std::unique_ptr<Generator>>& gens, const std::vector<SimCall>& calls,
                   double seconds, StepResult* r) {
  int64_t t0 = NowNs();
  int64_t stop = t0 + static_cast<int64_t>(seconds * 1e9);
  std::vector<std::thread> threads;
  for (auto& g : gens) threads.emplace_back([&g, stop] { g->Run(stop, kDrainMs); });
  // Sending ends when the schedule does; a late generator ends later.
  for (auto& t : threads) t.join();
  r->seconds = (NowNs() - t0) / 1e9;  // sending time plus the drain
  r->calls = static_cast<int>(calls.size());
  Delays all;
  for (auto& g : gens) {
    r->gen_cpu += g->cpu_seconds();
    r->late_ms = std::max(r->late_ms, g->max_late_ns() / 1e6);
    r->send_errors += g->send_errors();
    all.Merge(g->delays());
  }
  for (const auto& c : calls) {
    r->sent += c.sent[0] + c.sent[1];
    r->received += c.received[0] + c.received[1];
  }
  r->p50_us = all.PercentileUs(0.5);
  r->p99_us = all.PercentileUs(0.99);
}

// The calls pbxd set up: its relay's ports, latched by a first pass, then `seconds` of
// media. The relay's CPU and drops are pbxd's (NaN and 0 here).
bool RunExternalStep(const Options& o, int n, StepResult* r) {
  std::vector<SimCall> calls(n);
  for (int i = 0; i < n; ++i) {
    calls[i].index = static_cast<uint32_t>(i);
    calls[i].to[0] = Loopback(o.external[i].a_port);
    calls[i].to[1] = Loopback(o.external[i].b_port);
  }
  auto gens = MakeGenerators(calls, o.gen_threads);
  for (auto& g : gens) g->Latch();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (auto& g : gens) g->ResetCounts();
  RunGenerators(gens, calls, o.seconds, r);
  r->relay_cpu = std::nan("");
  return true;
}

bool RunStep(const Options& o, int n, StepResult* r) {
  pbx::media::RelayConfig cfg;
  cfg.bind_address = "127.0.0.1";
  cfg.port_min = o.port_min;
  cfg.port_max = o.port_max;
  cfg.workers = o.workers;
  auto relay = RtpRelay::Create(cfg);
  if (!relay.ok()) {
    fmt::print(stderr, "relay: {}\n", relay.status().ToString());
    return false;
  }
  std::vector<SimCall> calls(n);
  std::vector<pbx::media::RelayPorts> ports;
  for (int i = 0; i < n; ++i) {
    auto p = (*relay)->Allocate();
    if (!p.ok()) {
      fmt::print(stderr, "allocate call {}: {}\n", i, p.status().ToString());
      return false;
    }
    ports.push_back(*p);
    calls[i].index = static_cast<uint32_t>(i);
    uint16_t port[2] = {p->a_port, p->b_port};
    for (int s = 0; s < 2; ++s) {
      calls[i].to[s].sin_family = AF_INET;
      calls[i].to[s].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      calls[i].to[s].sin_port = htons(port[s]);
    }
  }
  auto gens = MakeGenerators(calls, o.gen_threads);
  for (int i = 0; i < n; ++i) {
    Generator& g = *gens[i % o.gen_threads];
    for (int s = 0; s < 2; ++s) {
      auto side = s == 0 ? pbx::media::Side::kA : pbx::media::Side::kB;
      auto st = (*relay)->SetPeer(ports[i].id, side, "127.0.0.1", g.port(s));
      if (!st.ok()) {
        fmt::print(stderr, "set peer: {}\n", st.ToString());
        return false;
      }
    }
  }

  double cpu0 = ProcessCpuSeconds();
  double main0 = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
  RunGenerators(gens, calls, o.seconds, r);
  double process_cpu = ProcessCpuSeconds() - cpu0;
  double main_cpu = CpuSeconds(CLOCK_THREAD_CPUTIME_ID) - main0;
  r->relay_cpu = process_cpu - r->gen_cpu - main_cpu;
  r->relay_dropped = (*relay)->Totals().dropped;
  return true;
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--quick") {
      o->quick = true;
    } else if (a == "--calls") {
      std::string v = next();
      for (size_t p = 0; p < v.size();) {
        size_t q = v.find(',', p);
        if (q == std::string::npos) q = v.size();
        o->calls.push_back(std::atoi(v.substr(p, q - p).c_str()));
        p = q + 1;
      }
    } else if (a == "--seconds") {
      o->seconds = std::atof(next().c_str());
    } else if (a == "--workers") {
      o->workers = std::atoi(next().c_str());
    } else if (a == "--gen-threads") {
      o->gen_threads = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--ports") {
      unsigned lo = 0, hi = 0;
      if (sscanf(next().c_str(), "%u-%u", &lo, &hi) != 2 || lo >= hi || hi > 65535) return false;
      o->port_min = static_cast<uint16_t>(lo);
      o->port_max = static_cast<uint16_t>(hi);
    } else if (a == "--relay-ports") {
      std::ifstream in(next());
      unsigned pa = 0, pb = 0;
      while (in >> pa >> pb) {
        if (pa == 0 || pa > 65535 || pb == 0 || pb > 65535) return false;
        o->external.push_back(
            {.id = {}, .a_port = static_cast<uint16_t>(pa), .b_port = static_cast<uint16_t>(pb)});
      }
      if (o->external.empty()) return false;
    } else {
      return false;
    }
  }
  if (std::any_of(o->calls.begin(), o->calls.end(), [](int c) { return c <= 0; })) return false;
  return o->seconds > 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, &o)) {
    fmt::print(stderr,
               "usage: pbx_media_bench [--quick] [--calls N,N,...] [--seconds S] [--workers W] "
               "[--gen-threads G] [--ports MIN-MAX] [--relay-ports FILE]\n");
    return 2;
  }
  bool search = o.calls.empty();
  if (!o.external.empty()) {
    o.calls = {static_cast<int>(o.external.size())};
    search = false;
  } else if (o.quick) {
    if (search) o.calls = {50};
    o.seconds = 1;
    search = false;
  } else if (search) {
    o.calls = {250, 500, 750, 1000, 1250, 1500, 1750, 2000, 2500, 3000};
  }
  int workers = o.workers > 0 ? o.workers : static_cast<int>(std::thread::hardware_concurrency());
  fmt::print("relay workers {}, generator threads {}, {} s a step, {} cores\n", workers,
             o.gen_threads, o.seconds, std::thread::hardware_concurrency());
  fmt::print("{:>6} {:>9} {:>10} {:>9} {:>8} {:>10} {:>10} {:>7} {:>8} {:>8} {:>8}\n", "calls",
             "pkt/s", "sent", "loss %", "dropped", "relay CPU", "CPU/call", "us/pkt", "p50 us",
             "p99 us", "late ms");
  int best = 0;
  bool failed = false;
  for (int n : o.calls) {
    StepResult r;
    if (!(o.external.empty() ? RunStep(o, n, &r) : RunExternalStep(o, n, &r))) return 1;
    double elapsed = r.seconds - kDrainMs / 1e3;
    double relay_pct = 100.0 * r.relay_cpu / elapsed;  // of one core
    if (getenv("PBX_BENCH_DEBUG"))
      fmt::print(stderr, "gen cpu {:.2f} s, relay cpu {:.2f} s, elapsed {:.2f} s\n", r.gen_cpu,
                 r.relay_cpu, elapsed);
    bool valid = r.late_ms <= kMaxLateMs && r.send_errors == 0;
    fmt::print(
        "{:>6} {:>9.0f} {:>10} {:>9.4f} {:>8} {:>9.1f}% {:>9.4f}% {:>7.2f} {:>8.0f} {:>8.0f} "
        "{:>8.1f}{}\n",
        n, r.received / elapsed, r.sent, 100 * r.loss(), r.relay_dropped, relay_pct, relay_pct / n,
        1e6 * r.relay_cpu / std::max<uint64_t>(1, r.received), r.p50_us, r.p99_us, r.late_ms,
        valid ? ""
              : fmt::format("  not valid: the generator {}",
                            r.send_errors ? fmt::format("had {} send errors", r.send_errors)
                                          : std::string("fell behind its schedule")));
    std::fflush(stdout);
    if (o.quick && (r.loss() > 0.01 || r.received == 0)) failed = true;
    if (valid && r.loss() < 0.001) {
      best = std::max(best, n);
    } else if (search) {
      break;
    }
  }
  if (!o.quick) fmt::print("largest call count with < 0.1 % loss: {}\n", best);
  return failed ? 1 : 0;
}
