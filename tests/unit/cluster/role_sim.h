// A deterministic simulation of a pair for RoleMachine tests: two machines, the real
// WitnessLease, links with delays, drops and partitions, paused (hung) and crashed nodes, and
// a toy log shipper. Time is simulated: nothing sleeps. Test-only.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "node/cluster/role.h"
#include "node/cluster/witness_lease.h"

namespace pbx::cluster::sim {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

inline const RoleTime kT0 = RoleTime{} + std::chrono::hours(1);

// One node: its role machine (while the process runs) and what the node would hold.
struct SimNode {
  std::string name;
  RoleConfig config;
  std::unique_ptr<RoleMachine> machine;  // null while crashed
  uint64_t incarnation = 0;              // events for an earlier process are dropped
  bool hung = false;                     // paused: deliveries wait until it resumes
  RoleTime hung_until{};
  Position store;  // survives crashes
  bool shipper = false, receiver = false, serving = false, vip = false, draining = false;
  int receiver_warmup = 0;  // ship messages still reported as "not caught up"
  bool reported_caught_up = false;
  uint64_t reported_seq = 0;
  RoleTime next_tick{};
  RoleTime pending_wakeup = RoleTime::max();
  bool have_peer_stamp = false;
  RoleTime peer_stamp{};  // the peer's send time of the newest heartbeat we got (to echo)
  // WitnessClient emulation (the node runs its witness requests in order on one client):
  // one request at a time, each sent once the previous one got its reply or timed out, over
  // one connection (FIFO); a lease it holds is presented to a restarted witness. A new
  // process has a new client.
  struct WitnessCall {
    uint64_t id = 0;
    uint64_t epoch = 0;
    milliseconds lease{0};
    milliseconds timeout{0};
    bool release = false;
  };
  std::deque<WitnessCall> client_queue;
  bool client_busy = false;
  uint64_t client_token = 0;  // the call in progress; completions of others are ignored
  RoleTime client_last_arrival{};
  uint64_t held_boot_id = 0;
  RoleTime held_until{};
  std::vector<std::string> rejects;  // kRejectAdmin texts
  uint64_t promotions = 0;
  std::vector<std::function<void()>> deferred;  // events that arrived while paused
};

class PairSim {
 public:
  struct Options {
    RoleConfig a;
    RoleConfig b;
    bool witness = true;  // else: ping target
    milliseconds delay_min{1};
    milliseconds delay_max{4};
    milliseconds witness_delay_max{3};
    milliseconds tick_jitter{0};
    milliseconds write_every{20};
    milliseconds ship_every{25};
    WitnessLease::Options lease{milliseconds(2000), milliseconds(0), 16};
    uint64_t seed = 1;
    // Trace every action and witness decision, not only role changes (for debugging).
    bool verbose = false;
  };

  explicit PairSim(Options options) : options_(std::move(options)), rng_(options_.seed) {
    options_.a.node_name = "a";
    options_.b.node_name = "b";
    if (!options_.witness) {
      options_.a.tie_breaker = options_.b.tie_breaker = TieBreaker::kPingTarget;
    }
    nodes_[0].name = "a";
    nodes_[0].config = options_.a;
    nodes_[1].name = "b";
    nodes_[1].config = options_.b;
    witness_ = std::make_unique<WitnessLease>(options_.lease, ++witness_boot_, now_);
  }

  // --- Control -------------------------------------------------------------------------
  RoleTime now() const { return now_; }
  SimNode& node(int i) { return nodes_[i]; }
  RoleMachine& m(int i) { return *nodes_[i].machine; }
  WitnessLease& witness() { return *witness_; }

  // Starts (or restarts after a crash) node i now.
  void Boot(int i) {
    SimNode& n = nodes_[i];
    n.machine = std::make_unique<RoleMachine>(n.config);
    ++n.incarnation;
    n.hung = false;
    n.deferred.clear();
    n.shipper = n.receiver = n.serving = n.vip = n.draining = false;
    n.have_peer_stamp = false;
    n.pending_wakeup = RoleTime::max();
    n.client_queue.clear();
    n.client_busy = false;
    ++n.client_token;
    n.held_boot_id = 0;
    StepNode(i, ev::Start{n.store});
    n.next_tick = now_ + n.config.hb_interval;
    ScheduleTick(i, n.next_tick);
    ScheduleWrites(i, now_ + options_.write_every);
    ScheduleShip(i, now_ + options_.ship_every);
  }
  // kill -9: the process is gone (its store stays).
  void Crash(int i) {
    SimNode& n = nodes_[i];
    n.machine.reset();
    ++n.incarnation;
    n.hung = false;
    n.deferred.clear();
    n.shipper = n.receiver = n.serving = n.vip = n.draining = false;
  }
  bool Up(int i) const { return nodes_[i].machine != nullptr; }
  // SIGSTOP for `d`: nothing runs on the node, events to it wait.
  void Hang(int i, milliseconds d) {
    SimNode& n = nodes_[i];
    if (!n.machine || n.hung) return;
    n.hung = true;
    n.hung_until = now_ + d;
    const uint64_t inc = n.incarnation;
    At(n.hung_until, [this, i, inc] {
      SimNode& h = nodes_[i];
      if (h.incarnation != inc || !h.hung) return;
      h.hung = false;
      std::vector<std::function<void()>> held;
      held.swap(h.deferred);
      for (auto& f : held) f();
      if (h.machine && h.incarnation == inc) StepTick(i);
    });
  }
  void RestartWitness(milliseconds down) {
    witness_up_ = false;
    At(now_ + down, [this] {
      witness_up_ = true;
      // A new process forgets every lease; its start-up hold covers the old ones.
      WitnessLease::Options o = options_.lease;
      o.startup_hold = options_.lease.max_lease;
      witness_ = std::make_unique<WitnessLease>(o, ++witness_boot_, now_);
    });
  }

  // Links: direction i -> j between the nodes; node <-> witness (both ways); ping target.
  void SetLink(int from, int to, bool up) { link_[from][to] = up; }
  void SetPairLink(bool up) { link_[0][1] = link_[1][0] = up; }
  void SetWitnessLink(int i, bool up) { witness_link_[i] = up; }
  void SetPingLink(int i, bool up) { ping_link_[i] = up; }
  void SetHeartbeatDropRate(double p) { drop_rate_ = p; }
  bool pair_link(int from, int to) const { return link_[from][to]; }

  // Applies an admin event to node i now.
  void Admin(int i, const RoleEvent& event) {
    if (!nodes_[i].machine || nodes_[i].hung) return;
    StepNode(i, event);
  }

  // --- Running -------------------------------------------------------------------------
  // Runs every event up to now + d; the invariants are checked after each step.
  void RunFor(milliseconds d) { RunUntil(now_ + d); }
  void RunUntil(RoleTime end) {
    while (!queue_.empty() && queue_.top().at <= end) {
      Item item = PopNext();
      now_ = std::max(now_, item.at);
      item.fn();
      Check();
    }
    now_ = std::max(now_, end);
  }
  // Runs until `pred` holds (checked after each event) or `limit` passes; returns whether it
  // held.
  bool RunUntilTrue(const std::function<bool()>& pred, milliseconds limit) {
    const RoleTime end = now_ + limit;
    if (pred()) return true;
    while (!queue_.empty() && queue_.top().at <= end) {
      Item item = PopNext();
      now_ = std::max(now_, item.at);
      item.fn();
      Check();
      if (pred()) return true;
    }
    now_ = std::max(now_, end);
    return pred();
  }

  // --- Invariants ----------------------------------------------------------------------
  // Whether node i serves at `now`: its process runs (or is paused) in kActive within the
  // serving license.
  bool Serving(int i) const { return nodes_[i].machine && nodes_[i].machine->Serving(now_); }
  bool Active(int i) const {
    return nodes_[i].machine && nodes_[i].machine->role() == Role::kActive;
  }
  int ServingCount() const { return static_cast<int>(Serving(0)) + static_cast<int>(Serving(1)); }

  // Set when an invariant broke; the first failure is kept.
  const std::string& failure() const { return failure_; }
  uint64_t steps() const { return steps_; }
  const std::deque<std::string>& trace() const { return trace_; }
  std::string TraceText() const {
    std::string s;
    for (const std::string& line : trace_) s += line + "\n";
    return s;
  }

 private:
  struct Item {
    RoleTime at;
    uint64_t order;
    std::function<void()> fn;
    bool operator<(const Item& o) const {
      return at != o.at ? at > o.at : order > o.order;  // min-heap
    }
  };

  Item PopNext() {
    // priority_queue only gives const access to its top; moving out of it right before pop()
    // is safe and saves copying the closure (this loop is the simulation's hot path).
    Item item = std::move(const_cast<Item&>(queue_.top()));
    queue_.pop();
    return item;
  }
  void At(RoleTime at, std::function<void()> fn) {
    queue_.push(Item{std::max(at, now_), ++order_, std::move(fn)});
  }
  milliseconds Delay(milliseconds lo, milliseconds hi) {
    return milliseconds(std::uniform_int_distribution<int64_t>(lo.count(), hi.count())(rng_));
  }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  // Runs `fn` on node i's current process now, or when it resumes; drops it if the process
  // it was meant for is gone.
  void OnNode(int i, uint64_t inc, std::function<void()> fn) {
    SimNode& n = nodes_[i];
    if (!n.machine || n.incarnation != inc) return;
    if (n.hung) {
      n.deferred.push_back(std::move(fn));
      return;
    }
    fn();
  }
  void Deliver(int i, uint64_t inc, RoleTime at, RoleEvent event) {
    At(at, [this, i, inc, event = std::move(event)] {
      OnNode(i, inc, [this, i, event] { StepNode(i, event); });
    });
  }

  void ScheduleTick(int i, RoleTime at) {
    const uint64_t inc = nodes_[i].incarnation;
    At(at, [this, i, inc] {
      SimNode& n = nodes_[i];
      if (!n.machine || n.incarnation != inc) return;
      milliseconds jitter{0};
      if (options_.tick_jitter.count() > 0)
        jitter = Delay(-options_.tick_jitter, options_.tick_jitter);
      n.next_tick = now_ + n.config.hb_interval + jitter;
      ScheduleTick(i, n.next_tick);
      OnNode(i, inc, [this, i] { StepTick(i); });
    });
  }
  void StepTick(int i) { StepNode(i, ev::Tick{nodes_[i].store}); }

  // An extra tick at the machine's NextWakeup (the node arms a timer for it).
  void ScheduleWakeup(int i) {
    SimNode& n = nodes_[i];
    if (!n.machine) return;
    const RoleTime w = n.machine->NextWakeup();
    if (w == RoleTime::max() || w <= now_ || w >= n.next_tick || w >= n.pending_wakeup) return;
    n.pending_wakeup = w;
    const uint64_t inc = n.incarnation;
    At(w, [this, i, inc, w] {
      SimNode& h = nodes_[i];
      if (!h.machine || h.incarnation != inc) return;
      if (h.pending_wakeup == w) h.pending_wakeup = RoleTime::max();
      OnNode(i, inc, [this, i] { StepTick(i); });
    });
  }

  void ScheduleWrites(int i, RoleTime at) {
    const uint64_t inc = nodes_[i].incarnation;
    At(at, [this, i, inc] {
      SimNode& n = nodes_[i];
      if (!n.machine || n.incarnation != inc) return;
      ScheduleWrites(i, now_ + options_.write_every);
      if (n.hung) return;
      // The node gates writes on the license, as pbxd's write path does.
      if (n.serving && !n.draining && n.machine->Serving(now_)) ++n.store.seq;
    });
  }

  void ScheduleShip(int i, RoleTime at) {
    const uint64_t inc = nodes_[i].incarnation;
    At(at, [this, i, inc] {
      SimNode& n = nodes_[i];
      if (!n.machine || n.incarnation != inc) return;
      ScheduleShip(i, now_ + options_.ship_every);
      if (n.hung || !n.shipper || !link_[i][1 - i]) return;
      const int j = 1 - i;
      const Position batch = n.store;
      const uint64_t to_inc = nodes_[j].incarnation;
      At(now_ + Delay(options_.delay_min, options_.delay_max), [this, i, j, inc, to_inc, batch] {
        OnNode(j, to_inc, [this, i, j, inc, batch] { Receive(j, i, inc, batch); });
      });
    });
  }

  // Follower j applies a batch shipped by i (the toy log: j adopts i's position).
  void Receive(int j, int i, uint64_t from_inc, Position batch) {
    SimNode& f = nodes_[j];
    if (!f.receiver) return;
    const milliseconds back = Delay(options_.delay_min, options_.delay_max);
    if (batch.epoch < f.store.epoch) {
      if (link_[j][i]) Deliver(i, from_inc, now_ + back, ev::EpochRefused{f.store.epoch});
      return;
    }
    f.store = batch;
    bool caught_up = true;
    if (f.receiver_warmup > 0) {
      --f.receiver_warmup;
      caught_up = false;
    }
    if (caught_up != f.reported_caught_up || f.store.seq != f.reported_seq) {
      f.reported_caught_up = caught_up;
      f.reported_seq = f.store.seq;
      StepNode(j, ev::SyncProgress{caught_up, f.store.seq});
    }
    if (link_[j][i]) {
      const uint64_t seq = f.store.seq;
      At(now_ + back, [this, i, from_inc, seq] {
        OnNode(i, from_inc, [this, i, seq] { StepNode(i, ev::ReplicationAcked{seq}); });
      });
    }
  }

  void StepNode(int i, const RoleEvent& event) {
    SimNode& n = nodes_[i];
    const Role before = n.machine->role();
    std::vector<Action> actions = n.machine->Step(now_, event);
    ++steps_;
    for (const Action& a : actions) Execute(i, a);
    if (before != n.machine->role()) {
      Trace(fmt::format("{} {} -> {} ({})", n.name, RoleName(before), RoleName(n.machine->role()),
                        n.machine->reason()));
    }
    ScheduleWakeup(i);
    Check();
  }

  void Execute(int i, const Action& a) {
    SimNode& n = nodes_[i];
    const int j = 1 - i;
    using K = Action::Kind;
    if (options_.verbose && a.kind != K::kSendHeartbeat) {
      Trace(fmt::format("{} {} {}{}", n.name, ActionName(a.kind), a.text,
                        a.kind == K::kRequestLease ? fmt::format("#{}", a.request_id) : ""));
    }
    switch (a.kind) {
      case K::kLog:
        break;
      case K::kSendHeartbeat:
        SendHeartbeat(i, j);
        break;
      case K::kRequestLease:
        WitnessCallLater(i, {a.request_id, a.epoch, a.lease, a.timeout, false});
        break;
      case K::kReleaseLease:
        WitnessCallLater(i, {0, n.machine->epoch(), milliseconds(0), n.config.hb_interval, true});
        break;
      case K::kProbePingTarget: {
        const bool ok = ping_link_[i];
        Deliver(i, n.incarnation, now_ + Delay(options_.delay_min, options_.delay_max),
                ev::PingTargetResult{ok});
        break;
      }
      case K::kBumpEpoch:
        if (a.epoch <= n.store.epoch) {
          Fail(fmt::format("{} bumps the epoch to {} but its store has {}", n.name, a.epoch,
                           n.store.epoch));
        }
        n.store.epoch = a.epoch;
        break;
      case K::kAcquireVip:
        n.vip = true;
        break;
      case K::kReleaseVip:
        n.vip = false;
        break;
      case K::kStartShipper:
        n.shipper = true;
        break;
      case K::kStopShipper:
        n.shipper = false;
        break;
      case K::kStartReceiver:
        n.receiver = true;
        n.receiver_warmup = static_cast<int>(Delay(0ms, 3ms).count());
        n.reported_caught_up = false;
        n.reported_seq = UINT64_MAX;
        break;
      case K::kStopReceiver:
        n.receiver = false;
        break;
      case K::kStartServing:
        n.serving = true;
        n.draining = false;
        ++n.promotions;
        ++promotions_;
        break;
      case K::kFence:
        n.serving = false;
        break;
      case K::kDrainWrites: {
        n.draining = true;
        const uint64_t inc = n.incarnation;
        At(now_ + 2ms, [this, i, inc] {
          OnNode(i, inc, [this, i] { StepNode(i, ev::WritesDrained{nodes_[i].store.seq}); });
        });
        break;
      }
      case K::kResumeWrites:
        n.draining = false;
        break;
      case K::kRejectAdmin:
        n.rejects.push_back(a.text);
        break;
    }
  }

  void SendHeartbeat(int i, int j) {
    SimNode& n = nodes_[i];
    if (!link_[i][j] || Chance(drop_rate_)) return;
    ev::PeerHeartbeat hb;
    hb.node_name = n.name;
    hb.role = n.machine->role();
    hb.position = Position{n.machine->epoch(), n.store.seq};
    hb.take_over_at_seq = n.machine->take_over_at_seq();
    hb.dead_after = n.machine->dead_after();
    hb.echo = n.have_peer_stamp ? n.peer_stamp : RoleTime{};
    const RoleTime sent = now_;
    // FIFO per direction, as over one TCP connection.
    RoleTime at = std::max(now_ + Delay(options_.delay_min, options_.delay_max), last_hb_[i]);
    last_hb_[i] = at;
    const uint64_t to_inc = nodes_[j].incarnation;
    At(at, [this, j, to_inc, hb, sent] {
      OnNode(j, to_inc, [this, j, hb, sent] {
        SimNode& r = nodes_[j];
        r.have_peer_stamp = true;
        r.peer_stamp = sent;
        StepNode(j, hb);
      });
    });
  }

  void WitnessCallLater(int i, SimNode::WitnessCall call) {
    SimNode& n = nodes_[i];
    n.client_queue.push_back(call);
    if (!n.client_busy) WitnessCallNext(i);
  }

  // WitnessClient::Request: dated before sending (the safety rule); the reply is used only
  // if it arrives within the timeout.
  void WitnessCallNext(int i) {
    SimNode& n = nodes_[i];
    if (n.client_queue.empty()) {
      n.client_busy = false;
      return;
    }
    n.client_busy = true;
    const SimNode::WitnessCall call = n.client_queue.front();
    n.client_queue.pop_front();
    const uint64_t token = ++n.client_token;
    const uint64_t inc = n.incarnation;
    const RoleTime sent = now_;
    const RoleTime deadline = sent + call.timeout;
    LeaseRequest req;
    req.cluster_id = "pair";
    req.node_name = n.name;
    req.epoch = call.epoch;
    req.lease_ms = static_cast<uint32_t>(call.lease.count());
    req.release = call.release;
    req.held_boot_id = (n.held_boot_id != 0 && sent < n.held_until) ? n.held_boot_id : 0;

    // Completion by timeout, unless the reply came first.
    At(deadline, [this, i, inc, token, call] {
      SimNode& c = nodes_[i];
      if (c.incarnation != inc || c.client_token != token) return;
      ++c.client_token;
      if (!call.release) {
        OnNode(i, inc, [this, i, call] {
          StepNode(i, ev::WitnessUnreachable{call.id, "timeout"});
        });
      }
      WitnessCallNext(i);
    });
    if (!witness_up_ || !witness_link_[i]) return;  // not sent: no connection
    const RoleTime arrive =
        std::max(sent + Delay(0ms, options_.witness_delay_max), n.client_last_arrival);
    n.client_last_arrival = arrive;
    At(arrive, [this, i, inc, token, req, call, sent, deadline] {
      if (!witness_up_ || !witness_link_[i]) return;  // lost with the connection
      LeaseReply reply = witness_->Decide(req, now_);
      if (options_.verbose) {
        Trace(fmt::format("witness#{} {} {} {}: {} holder={} held_boot={}", witness_boot_,
                          call.release ? "release" : "request", req.node_name, call.id,
                          reply.granted ? "granted" : "refused", reply.holder, req.held_boot_id));
      }
      const RoleTime back = now_ + Delay(0ms, options_.witness_delay_max);
      if (back >= deadline) return;  // the client gave up first
      At(back, [this, i, inc, token, reply, call, sent] {
        SimNode& c = nodes_[i];
        if (c.incarnation != inc || c.client_token != token || !witness_link_[i]) return;
        ++c.client_token;
        if (reply.granted) {
          c.held_boot_id = reply.witness_boot_id;
          c.held_until = sent + call.lease;
        } else {
          c.held_boot_id = 0;
        }
        if (!call.release) {
          ev::WitnessReply e;
          e.request_id = call.id;
          e.granted = reply.granted;
          e.holder = reply.holder;
          e.lease_valid_until = reply.granted ? sent + call.lease : sent;
          e.remaining = milliseconds(reply.remaining_ms);
          OnNode(i, inc, [this, i, e] { StepNode(i, e); });
        }
        WitnessCallNext(i);
      });
    });
  }

  void Check() {
    if (!failure_.empty()) return;
    if (ServingCount() > 1) {
      Fail(fmt::format("two nodes serve: a until +{} ms, b until +{} ms",
                       (nodes_[0].machine->ServingUntil() - now_) / 1ms,
                       (nodes_[1].machine->ServingUntil() - now_) / 1ms));
    }
    for (const SimNode& n : nodes_) {
      // A node that runs (not paused) never stays active past its license: it fences first.
      if (n.machine && !n.hung && n.machine->role() == Role::kActive && !n.machine->Serving(now_)) {
        Fail(fmt::format("{} is active after its serving license ended", n.name));
      }
    }
  }
  void Fail(std::string what) {
    if (failure_.empty()) {
      failure_ = fmt::format("at +{} ms: {}", (now_ - kT0) / 1ms, what);
    }
  }
  void Trace(std::string line) {
    trace_.push_back(fmt::format("+{} ms {}", (now_ - kT0) / 1ms, line));
    if (trace_.size() > (options_.verbose ? 400u : 60u)) trace_.pop_front();
  }

 public:
  uint64_t promotions() const { return promotions_; }

 private:
  Options options_;
  std::mt19937_64 rng_;
  RoleTime now_ = kT0;
  uint64_t order_ = 0;
  std::priority_queue<Item> queue_;
  std::array<SimNode, 2> nodes_;
  std::unique_ptr<WitnessLease> witness_;
  uint64_t witness_boot_ = 0;
  bool witness_up_ = true;
  bool link_[2][2] = {{true, true}, {true, true}};
  bool witness_link_[2] = {true, true};
  bool ping_link_[2] = {true, true};
  double drop_rate_ = 0;
  RoleTime last_hb_[2] = {};
  std::string failure_;
  uint64_t steps_ = 0;
  uint64_t promotions_ = 0;
  std::deque<std::string> trace_;
};

}  // namespace pbx::cluster::sim
