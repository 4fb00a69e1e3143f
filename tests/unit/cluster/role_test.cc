// RoleMachine as tables: one machine ("a", its peer "b"), events at simulated times, the
// role and the actions expected after each. Nothing sleeps and nothing runs a loop. The
// rule numbers (R1..R13) are those of role.h. Two-node stories are in role_pair_test.cc.
#include "node/cluster/role.h"

#include <chrono>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace pbx::cluster {

// gtest prints action kinds by name.
void PrintTo(Action::Kind kind, std::ostream* os) { *os << ActionName(kind); }
void PrintTo(Role role, std::ostream* os) { *os << RoleName(role); }

namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using K = Action::Kind;

const RoleTime t0 = RoleTime{} + std::chrono::hours(1);
RoleTime At(milliseconds ms) { return t0 + ms; }

// Marks a heartbeat echo to be filled with the time of the last heartbeat the machine asked
// to send.
const RoleTime kEchoLast = RoleTime::max();

RoleConfig Config(std::string name = "a", TieBreaker tie = TieBreaker::kWitness,
                  milliseconds hb = 100ms) {
  RoleConfig c;
  c.node_name = std::move(name);
  c.tie_breaker = tie;
  c.hb_interval = hb;
  return c;
}

ev::PeerHeartbeat Hb(Role role, uint64_t epoch, uint64_t seq = 0, uint64_t take_over = 0,
                     RoleTime echo = {}, std::string name = "b") {
  ev::PeerHeartbeat h;
  h.node_name = std::move(name);
  h.role = role;
  h.position = Position{epoch, seq};
  h.take_over_at_seq = take_over;
  h.dead_after = 500ms;
  h.echo = echo;
  return h;
}

ev::Tick Tick(uint64_t epoch = 0, uint64_t seq = 0) { return ev::Tick{Position{epoch, seq}}; }

// A grant of the last RequestLease (its id and its lease counted from when it was asked).
ev::WitnessReply Grant() {
  ev::WitnessReply r;
  r.granted = true;
  return r;
}
ev::WitnessReply Refused(std::string holder, milliseconds remaining) {
  ev::WitnessReply r;
  r.holder = std::move(holder);
  r.remaining = remaining;
  return r;
}
ev::WitnessUnreachable Unreachable() { return ev::WitnessUnreachable{0, "timeout"}; }

// Steps one machine and plays the node's part where a table would be unreadable: fills in
// lease request ids and lease ends, echoes, and optionally answers the witness at once.
class Driver {
 public:
  enum class Witness { kManual, kGrant, kUnreachable };

  explicit Driver(RoleConfig config) : m_(std::move(config)) {}

  std::vector<Action> Step(milliseconds at, RoleEvent event) {
    const RoleTime now = At(at);
    if (auto* r = std::get_if<ev::WitnessReply>(&event)) {
      if (r->request_id == 0) r->request_id = last_request_id_;
      if (r->granted && r->lease_valid_until == RoleTime{}) {
        r->lease_valid_until = last_request_at_ + last_lease_;
      }
    }
    if (auto* u = std::get_if<ev::WitnessUnreachable>(&event); u && u->request_id == 0) {
      u->request_id = last_request_id_;
    }
    if (auto* h = std::get_if<ev::PeerHeartbeat>(&event); h && h->echo == kEchoLast) {
      h->echo = last_heartbeat_at_;
    }
    std::vector<Action> out = m_.Step(now, event);
    std::vector<Action> all;
    for (size_t i = 0; i < out.size(); ++i) {
      const Action& a = out[i];
      all.push_back(a);
      if (a.kind == K::kSendHeartbeat) last_heartbeat_at_ = now;
      if (a.kind != K::kRequestLease) continue;
      last_request_id_ = a.request_id;
      last_request_at_ = now;
      last_lease_ = a.lease;
      ++requests_;
      if (witness_ == Witness::kManual) continue;
      RoleEvent reply = witness_ == Witness::kGrant
                            ? RoleEvent(ev::WitnessReply{a.request_id, true, m_.config().node_name,
                                                         now + a.lease, 0ms})
                            : RoleEvent(ev::WitnessUnreachable{a.request_id, "down"});
      for (Action& b : m_.Step(now, reply)) out.push_back(std::move(b));
    }
    return all;
  }

  RoleMachine& m() { return m_; }
  void set_witness(Witness w) { witness_ = w; }
  RoleTime last_heartbeat_at() const { return last_heartbeat_at_; }
  int requests() const { return requests_; }

 private:
  RoleMachine m_;
  Witness witness_ = Witness::kManual;
  uint64_t last_request_id_ = 0;
  RoleTime last_request_at_{};
  milliseconds last_lease_{0};
  RoleTime last_heartbeat_at_{};
  int requests_ = 0;
};

// Action kinds without the log lines and heartbeats, which nearly every step has.
std::vector<K> Kinds(const std::vector<Action>& actions) {
  std::vector<K> kinds;
  for (const Action& a : actions) {
    if (a.kind != K::kLog && a.kind != K::kSendHeartbeat) kinds.push_back(a.kind);
  }
  return kinds;
}
bool Has(const std::vector<Action>& actions, K kind) {
  for (const Action& a : actions) {
    if (a.kind == kind) return true;
  }
  return false;
}
const Action* Find(const std::vector<Action>& actions, K kind) {
  for (const Action& a : actions) {
    if (a.kind == kind) return &a;
  }
  return nullptr;
}

struct Row {
  milliseconds at;
  RoleEvent event;
  Role role;             // after the step
  std::vector<K> kinds;  // exactly, without kLog and kSendHeartbeat
};

void Play(Driver& d, const std::vector<Row>& rows) {
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    SCOPED_TRACE(::testing::Message() << "row " << i << " at +" << row.at.count() << " ms");
    std::vector<Action> out = d.Step(row.at, row.event);
    EXPECT_EQ(d.m().role(), row.role) << d.m().reason();
    EXPECT_EQ(Kinds(out), row.kinds);
  }
}

const std::vector<K> kPromote = {K::kBumpEpoch, K::kAcquireVip, K::kStartShipper, K::kStartServing};
const std::vector<K> kPromoteFollower = {K::kStopReceiver, K::kBumpEpoch, K::kAcquireVip,
                                         K::kStartShipper, K::kStartServing};
const std::vector<K> kFence = {K::kFence, K::kReleaseVip, K::kStopShipper, K::kReleaseLease};

// "a" alone with the witness, active from +502 ms (epoch 1, lease until +1000 ms).
void MakeActiveAlone(Driver& d) {
  Play(d, {
              {0ms, ev::Start{}, Role::kStarting, {}},
              {500ms, Tick(), Role::kStarting, {K::kRequestLease}},
              {502ms, Grant(), Role::kActive, kPromote},
          });
}

// "a" following the active "b" (epoch 1) and caught up at seq 30.
void MakeStandby(Driver& d) {
  Play(d, {
              {0ms, ev::Start{Position{1, 10}}, Role::kStarting, {}},
              {10ms, Hb(Role::kActive, 1, 30), Role::kSyncing, {K::kStartReceiver}},
              {20ms, ev::SyncProgress{true, 30}, Role::kStandby, {}},
          });
}

// --- Configuration -----------------------------------------------------------------------

TEST(RoleConfigTest, Validates) {
  EXPECT_TRUE(RoleMachine::ValidateConfig(Config()).ok());
  RoleConfig c = Config();
  c.node_name.clear();
  EXPECT_FALSE(RoleMachine::ValidateConfig(c).ok());
  c = Config("a", TieBreaker::kWitness, 5ms);
  EXPECT_FALSE(RoleMachine::ValidateConfig(c).ok());
  c = Config();
  c.hb_dead = 2;
  EXPECT_FALSE(RoleMachine::ValidateConfig(c).ok());
  c = Config("a", TieBreaker::kNone);
  EXPECT_FALSE(RoleMachine::ValidateConfig(c).ok()) << "a pair without a tie-breaker";
  c.has_peer = false;
  EXPECT_TRUE(RoleMachine::ValidateConfig(c).ok()) << "standalone needs none";
  c = Config("a", TieBreaker::kWitness, 10ms);  // default lease 50 ms: the witness minimum
  EXPECT_TRUE(RoleMachine::ValidateConfig(c).ok());
  c.hb_dead = 4;  // 40 ms
  EXPECT_FALSE(RoleMachine::ValidateConfig(c).ok());
  c = Config();
  c.lease = 300ms;  // fine: >= 3 intervals
  EXPECT_TRUE(RoleMachine::ValidateConfig(c).ok());
  c.lease = 250ms;
  EXPECT_FALSE(RoleMachine::ValidateConfig(c).ok());
  c = Config("a", TieBreaker::kPingTarget);
  EXPECT_TRUE(RoleMachine::ValidateConfig(c).ok());
}

TEST(RoleConfigTest, DefaultLeaseEndsWhenThePeerIsDeclaredDead) {
  RoleMachine m(Config());
  EXPECT_EQ(m.dead_after(), 500ms);
  EXPECT_EQ(m.lease(), 500ms);
  RoleMachine fast(Config("a", TieBreaker::kWitness, 30ms));
  EXPECT_EQ(fast.dead_after(), 150ms);
  EXPECT_EQ(fast.lease(), 150ms);
}

// --- R1: standalone ------------------------------------------------------------------------

TEST(RoleTest, StandaloneIsActiveAtOnce) {
  RoleConfig c = Config("solo", TieBreaker::kNone);
  c.has_peer = false;
  Driver d(c);
  Play(d, {
              {0ms,
               ev::Start{Position{4, 100}},
               Role::kActive,
               {K::kBumpEpoch, K::kAcquireVip, K::kStartServing}},
              {100ms, Tick(5, 100), Role::kActive, {}},
              {200ms, ev::MaintenanceOn{}, Role::kActive, {K::kRejectAdmin}},
              {300ms, ev::SwitchoverRequest{}, Role::kActive, {K::kRejectAdmin}},
              {400ms, ev::MaintenanceOn{true}, Role::kMaintenance, {K::kFence, K::kReleaseVip}},
              {500ms,
               ev::MaintenanceOff{},
               Role::kActive,
               {K::kBumpEpoch, K::kAcquireVip, K::kStartServing}},
          });
  EXPECT_EQ(d.m().epoch(), 6u);
  EXPECT_TRUE(d.m().Serving(At(1000h)));
  EXPECT_EQ(d.m().NextWakeup(), RoleTime::max());
  EXPECT_EQ(d.m().WitnessText(At(0ms)), "none");
}

// --- Start, R2, R3, R4, R5, R6 ---------------------------------------------------------

TEST(RoleTest, FirstNodeAloneBecomesActiveWithTheWitness) {
  Driver d(Config());
  Play(d, {
              {0ms, ev::Start{}, Role::kStarting, {}},
              {100ms, Tick(), Role::kStarting, {}},
              {400ms, Tick(), Role::kStarting, {}},
              // dead_after without a peer: ask the witness.
              {500ms, Tick(), Role::kStarting, {K::kRequestLease}},
              {502ms, Grant(), Role::kActive, kPromote},
              // R7: renewed every tick.
              {600ms, Tick(1), Role::kActive, {K::kRequestLease}},
              {601ms, Grant(), Role::kActive, {}},
          });
  RoleMachine& m = d.m();
  EXPECT_EQ(m.epoch(), 1u);
  EXPECT_EQ(m.reason(), "no peer heard for 502 ms and the witness granted the lease");
  ASSERT_TRUE(m.last_failover().has_value());
  EXPECT_EQ(m.last_failover()->to, Role::kActive);
  EXPECT_EQ(m.last_failover()->at, At(502ms));
  EXPECT_EQ(m.lease_valid_until(), At(1100ms));
  EXPECT_TRUE(m.Serving(At(1099ms)));
  EXPECT_FALSE(m.Serving(At(1100ms)));
  EXPECT_EQ(m.WitnessText(At(700ms)), "held by a");
  EXPECT_EQ(m.since(), At(502ms));
}

TEST(RoleTest, RequestsCarryTheLeaseAndTheEpoch) {
  Driver d(Config());
  d.Step(0ms, ev::Start{Position{7, 0}});
  std::vector<Action> out = d.Step(500ms, Tick(7));
  const Action* req = Find(out, K::kRequestLease);
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(req->lease, 500ms);
  EXPECT_EQ(req->timeout, 200ms);  // two intervals: a late answer still renews
  EXPECT_EQ(req->epoch, 7u);
  EXPECT_GT(req->request_id, 0u);
  out = d.Step(501ms, Grant());
  const Action* bump = Find(out, K::kBumpEpoch);
  ASSERT_NE(bump, nullptr);
  EXPECT_EQ(bump->epoch, 8u);
}

TEST(RoleTest, SecondNodeSyncsThenBecomesStandby) {
  Driver d(Config());
  Play(d, {
              {0ms, ev::Start{Position{3, 90}}, Role::kStarting, {}},
              // R2: an active peer is followed at once.
              {50ms, Hb(Role::kActive, 3, 100), Role::kSyncing, {K::kStartReceiver}},
              {60ms, ev::SyncProgress{false, 95}, Role::kSyncing, {}},
              // R3.
              {70ms, ev::SyncProgress{true, 100}, Role::kStandby, {}},
              {150ms, Hb(Role::kActive, 3, 120), Role::kStandby, {}},
              {160ms, ev::SyncProgress{false, 100}, Role::kSyncing, {}},
              {170ms, ev::SyncProgress{true, 120}, Role::kStandby, {}},
              // The active is alive: nothing is asked of the witness.
              {600ms, Tick(3, 120), Role::kStandby, {}},
          });
  EXPECT_EQ(d.m().reason(), "caught up with b at seq 120");
  EXPECT_TRUE(d.m().peer_alive(At(600ms)));
  EXPECT_EQ(d.m().peer_last_heard(), At(150ms));
  EXPECT_EQ(d.m().peer_role(), Role::kActive);
  EXPECT_EQ(d.requests(), 0);
}

TEST(RoleTest, AnActiveOfAnOlderEpochIsNotFollowed) {
  Driver d(Config());
  Play(d, {
              {0ms, ev::Start{Position{5, 0}}, Role::kStarting, {}},
              {50ms, Hb(Role::kActive, 4, 100), Role::kStarting, {}},
              {100ms, Hb(Role::kActive, 4, 100), Role::kStarting, {}},
              // R2 + R9: once it fenced and became a standby of nobody, the newer node leads.
              {200ms, Hb(Role::kIsolated, 4, 100), Role::kStarting, {}},
              {500ms, Tick(5, 0), Role::kStarting, {K::kRequestLease}},
          });
}

TEST(RoleTest, StandbyPromotesWhenTheActiveDiesAndTheWitnessGrants) {
  Driver d(Config());
  MakeStandby(d);
  Play(d, {
              {110ms, Hb(Role::kActive, 1, 30), Role::kStandby, {}},
              {310ms, Hb(Role::kActive, 1, 30), Role::kStandby, {}},
              {800ms, Tick(1, 30), Role::kStandby, {}},
          });
  // The node ticks at NextWakeup: exactly when the peer is declared dead.
  EXPECT_EQ(d.m().NextWakeup(), At(810ms));
  Play(d, {
              {810ms, Tick(1, 30), Role::kStandby, {K::kRequestLease}},
              {812ms, Grant(), Role::kActive, kPromoteFollower},
          });
  RoleMachine& m = d.m();
  EXPECT_EQ(m.epoch(), 2u);
  EXPECT_EQ(m.reason(), "peer b dead for 502 ms and the witness granted the lease");
  EXPECT_FALSE(m.peer_alive(At(812ms)));
  ASSERT_TRUE(m.last_failover().has_value());
  EXPECT_EQ(m.last_failover()->from, Role::kStandby);
}

// Issue 6, SIGSTOP of the active: the standby that promotes because the active is dead
// stops its receiver without waiting for the dead active's goodbye (LogReceiver::Abandon).
// The wait (goodbye_timeout, 500 ms) ran inside the promotion, after the grant: it pushed
// service back to ~1.05 s and used up the new lease, so the new active fenced at once
// ("serving license ended 96 ms ago") and promoted a second time.
TEST(RoleTest, PromotionAfterThePeersDeathDoesNotWaitForItsGoodbye) {
  Driver d(Config());
  MakeStandby(d);
  d.Step(110ms, Hb(Role::kActive, 1, 30));  // its last heartbeat: stopped right after
  EXPECT_EQ(d.m().NextWakeup(), At(610ms));
  EXPECT_FALSE(Has(d.Step(609ms, Tick(1, 30)), K::kRequestLease)) << "alive until +610 ms";
  ASSERT_TRUE(Has(d.Step(610ms, Tick(1, 30)), K::kRequestLease));
  std::vector<Action> out = d.Step(611ms, Grant());
  ASSERT_EQ(d.m().role(), Role::kActive);
  EXPECT_EQ(Kinds(out), kPromoteFollower);
  const Action* stop = Find(out, K::kStopReceiver);
  ASSERT_NE(stop, nullptr);
  EXPECT_TRUE(stop->peer_dead);
  // Serving 1 ms after the death instant, with the whole lease ahead for the promotion.
  EXPECT_EQ(d.m().ServingUntil(), At(1110ms));
}

// A switchover's peer is alive and answers the goodbye: the receiver stops as usual.
TEST(RoleTest, PromotionBySwitchoverSaysGoodbyeToTheLivePeer) {
  Driver d(Config());
  MakeStandby(d);
  ASSERT_TRUE(Has(d.Step(100ms, Hb(Role::kStandby, 1, 30, 30)), K::kRequestLease));
  std::vector<Action> out = d.Step(102ms, Grant());
  ASSERT_EQ(d.m().role(), Role::kActive);
  const Action* stop = Find(out, K::kStopReceiver);
  ASSERT_NE(stop, nullptr);
  EXPECT_FALSE(stop->peer_dead);
}

TEST(RoleTest, StandbyWaitsForTheHoldersLeaseWhenRefused) {
  Driver d(Config());
  MakeStandby(d);
  Play(d, {
              {810ms, Tick(1, 30), Role::kStandby, {K::kRequestLease}},
              // A cut replication link: b is alive and holds the lease.
              {812ms, Refused("b", 300ms), Role::kStandby, {}},
              {900ms, Tick(1, 30), Role::kStandby, {}},
              {1000ms, Tick(1, 30), Role::kStandby, {}},
          });
  EXPECT_EQ(d.m().WitnessText(At(1000ms)), "held by b");
  EXPECT_EQ(d.m().NextWakeup(), At(1112ms));
  Play(d, {
              {1112ms, Tick(1, 30), Role::kStandby, {K::kRequestLease}},
              {1113ms, Refused("b", 400ms), Role::kStandby, {}},
              // b renews: its lease keeps running, and b keeps serving alone.
              {1300ms, Tick(1, 30), Role::kStandby, {}},
              {1513ms, Tick(1, 30), Role::kStandby, {K::kRequestLease}},
              {1514ms, Grant(), Role::kActive, kPromoteFollower},
          });
}

TEST(RoleTest, StandbyWithoutTheWitnessStaysStandby) {
  Driver d(Config());
  MakeStandby(d);
  d.set_witness(Driver::Witness::kUnreachable);
  Play(d, {
              {810ms, Tick(1, 30), Role::kStandby, {K::kRequestLease}},
              {900ms, Tick(1, 30), Role::kStandby, {K::kRequestLease}},
              {1000ms, Tick(1, 30), Role::kStandby, {K::kRequestLease}},
          });
  EXPECT_EQ(d.m().WitnessText(At(1000ms)), "unreachable");
}

TEST(RoleTest, StartingAloneWithoutTheWitnessIsIsolatedUntilItAnswers) {
  Driver d(Config());
  Play(d, {
              {0ms, ev::Start{}, Role::kStarting, {}},
              {500ms, Tick(), Role::kStarting, {K::kRequestLease}},
              // R6; it keeps asking.
              {600ms, Unreachable(), Role::kIsolated, {K::kRequestLease}},
              {700ms, Unreachable(), Role::kIsolated, {K::kRequestLease}},
              // R10.
              {705ms, Grant(), Role::kActive, kPromote},
          });
  EXPECT_EQ(d.m().reason(), "no peer heard for 705 ms and the witness granted the lease");
}

TEST(RoleTest, IsolatedFollowsAnActivePeer) {
  Driver d(Config());
  Play(d, {
              {0ms, ev::Start{}, Role::kStarting, {}},
              {500ms, Tick(), Role::kStarting, {K::kRequestLease}},
              {600ms, Unreachable(), Role::kIsolated, {K::kRequestLease}},
              {650ms, Hb(Role::kActive, 2, 10), Role::kSyncing, {K::kStartReceiver}},
              // A late grant of the request sent while isolated: not wanted, given back (R5).
              {660ms, Grant(), Role::kSyncing, {K::kReleaseLease}},
          });
}

TEST(RoleTest, SyncingNeverPromotes) {
  Driver d(Config());
  d.set_witness(Driver::Witness::kGrant);
  Play(d, {
              {0ms, ev::Start{}, Role::kStarting, {}},
              {10ms, Hb(Role::kActive, 1, 1000), Role::kSyncing, {K::kStartReceiver}},
              {20ms, ev::SyncProgress{false, 200}, Role::kSyncing, {}},
          });
  for (int t = 100; t <= 3000; t += 100) {
    std::vector<Action> out = d.Step(milliseconds(t), Tick(1, 200));
    EXPECT_EQ(d.m().role(), Role::kSyncing) << t;
  }
  EXPECT_EQ(d.requests(), 0);
}

TEST(RoleTest, ColdStartOfBothNodesPicksOne) {
  // Same position: the smaller name asks.
  Driver a(Config("a"));
  Play(a, {
              {0ms, ev::Start{Position{2, 50}}, Role::kStarting, {}},
              {100ms, Hb(Role::kStarting, 2, 50), Role::kStarting, {}},
              {400ms, Hb(Role::kStarting, 2, 50), Role::kStarting, {}},
              {500ms, Tick(2, 50), Role::kStarting, {K::kRequestLease}},
          });
  Driver c(Config("c"));
  Play(c, {
              {0ms, ev::Start{Position{2, 50}}, Role::kStarting, {}},
              {400ms, Hb(Role::kStarting, 2, 50), Role::kStarting, {}},
              {500ms, Tick(2, 50), Role::kStarting, {}},
              {600ms, Tick(2, 50), Role::kStarting, {}},
              // The newer store asks, whatever the names.
              {700ms, Hb(Role::kStarting, 2, 40), Role::kStarting, {K::kRequestLease}},
          });
  Driver e(Config("a"));
  Play(e, {
              {0ms, ev::Start{Position{2, 50}}, Role::kStarting, {}},
              {400ms, Hb(Role::kStarting, 3, 1), Role::kStarting, {}},
              {500ms, Tick(2, 50), Role::kStarting, {}},
              // ... and once it serves, it is followed.
              {700ms, Hb(Role::kActive, 4, 1), Role::kSyncing, {K::kStartReceiver}},
          });
}

TEST(RoleTest, StandbyTakesOverFromAPeerThatStoppedServing) {
  // R4b: b fenced itself (isolated) but still sends heartbeats.
  Driver d(Config());
  MakeStandby(d);
  Play(d, {
              {100ms, Hb(Role::kIsolated, 1, 30), Role::kStandby, {K::kRequestLease}},
              {102ms, Grant(), Role::kActive, kPromoteFollower},
          });
  EXPECT_EQ(d.m().reason(),
            "peer b is isolated at epoch 1 seq 30, we are at epoch 1 seq 30, and the witness "
            "granted the lease");
  // Not if the peer holds more of the history.
  Driver e(Config());
  MakeStandby(e);
  Play(e, {
              {100ms, Hb(Role::kIsolated, 1, 31), Role::kStandby, {}},
              {200ms, Tick(1, 30), Role::kStandby, {}},
          });
}

// --- R7: the serving license -------------------------------------------------------------

TEST(RoleTest, ActiveFencesBeforeItsLeaseEndsWhenItCannotRenew) {
  Driver d(Config());
  MakeActiveAlone(d);  // lease until +1000
  Play(d, {
              {600ms, Tick(1), Role::kActive, {K::kRequestLease}},
              {650ms, Unreachable(), Role::kActive, {}},
              {700ms, Tick(1), Role::kActive, {K::kRequestLease}},
              {750ms, Unreachable(), Role::kActive, {}},
              {800ms, Tick(1), Role::kActive, {K::kRequestLease}},
              {850ms, Unreachable(), Role::kActive, {}},
          });
  EXPECT_EQ(d.m().ServingUntil(), At(1000ms));
  EXPECT_EQ(d.m().NextWakeup(), At(900ms));
  EXPECT_TRUE(d.m().Serving(At(899ms)));
  std::vector<Action> out = d.Step(900ms, Tick(1));
  EXPECT_EQ(d.m().role(), Role::kIsolated);
  // Fenced, and (alone, no peer) it asks again at once: R10.
  std::vector<K> expected = kFence;
  expected.push_back(K::kRequestLease);
  EXPECT_EQ(Kinds(out), expected);
  EXPECT_EQ(d.m().reason(), "serving license ends in 100 ms: witness unreachable, no peer heard");
  ASSERT_TRUE(d.m().last_failover().has_value());
  EXPECT_EQ(d.m().last_failover()->from, Role::kActive);
  EXPECT_EQ(d.m().last_failover()->to, Role::kIsolated);
}

// Issue 6, role flap under load: a loaded witness (or machine) answers a renewal late.
// The answer may take two intervals (the node makes witness calls off its control loop, so
// heartbeats go on meanwhile) and still renews: the lease counts from the request's send.
TEST(RoleTest, ALateRenewalStillRenewsTheLease) {
  Driver d(Config());
  MakeActiveAlone(d);  // lease until +1000
  Play(d, {
              {600ms, Tick(1), Role::kActive, {K::kRequestLease}},
              // In flight: the next tick does not pile a second request on the witness.
              {700ms, Tick(1), Role::kActive, {}},
              {790ms, Grant(), Role::kActive, {}},
              {800ms, Tick(1), Role::kActive, {K::kRequestLease}},
          });
  EXPECT_EQ(d.m().ServingUntil(), At(1100ms)) << "600 ms + the 500 ms lease";
  // The next one is never answered: given up after two intervals, when the license (+1100)
  // is one interval from its end, so the node fences and, alone, asks again (R10).
  Play(d, {
              {900ms, Tick(1), Role::kActive, {}},
              {990ms, Tick(1), Role::kActive, {}},
              {1000ms,
               Tick(1),
               Role::kIsolated,
               {K::kFence, K::kReleaseVip, K::kStopShipper, K::kReleaseLease, K::kRequestLease}},
          });
}

// A promotion's slow claim (epoch commit, VIP, under disk load) runs while the node cannot
// step: the renewals it sends meanwhile (ClaimRenewal) keep the lease, and the last one's
// grant, stepped after the claim, counts before the license check. A stale grant does not.
TEST(RoleTest, RenewalsDuringASlowClaimKeepTheLicense) {
  for (bool fresh : {true, false}) {
    Driver d(Config());
    MakeActiveAlone(d);  // asked at +500, granted until +1000; the claim starts at +502
    EXPECT_FALSE(d.m().ClaimRenewal(At(510ms)).has_value()) << "just renewed";
    std::optional<Action> first = d.m().ClaimRenewal(At(600ms));
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->kind, K::kRequestLease);
    EXPECT_FALSE(d.m().ClaimRenewal(At(650ms)).has_value()) << "one in flight";
    std::optional<Action> last = d.m().ClaimRenewal(At(900ms));  // the first one timed out
    ASSERT_TRUE(last.has_value());
    EXPECT_GT(last->request_id, first->request_id);
    // The claim ends at +1150, past the first lease: the grant of the last renewal.
    ev::WitnessReply r{fresh ? last->request_id : first->request_id, true, "a",
                       fresh ? At(1400ms) : At(1100ms), 0ms};
    d.m().Step(At(1150ms), r);
    EXPECT_EQ(d.m().role(), fresh ? Role::kActive : Role::kIsolated) << d.m().reason();
    if (fresh) {
      EXPECT_EQ(d.m().ServingUntil(), At(1400ms));
    }
  }
  Driver standby(Config());
  EXPECT_FALSE(standby.m().ClaimRenewal(At(0ms)).has_value()) << "not active";
}

TEST(RoleTest, ActiveRidesOutAWitnessOutageOnItsStandbysEchoes) {
  Driver d(Config());
  MakeActiveAlone(d);
  d.set_witness(Driver::Witness::kUnreachable);
  // b follows a and echoes a's heartbeats (R7's peer license); the witness is down.
  RoleTime last_echo{};
  for (int t = 650; t <= 5050; t += 100) {
    d.Step(milliseconds(t - 50), Tick(1, 10));
    last_echo = d.last_heartbeat_at();
    d.Step(milliseconds(t), Hb(Role::kStandby, 1, 10, 0, kEchoLast));
    ASSERT_EQ(d.m().role(), Role::kActive) << t;
    EXPECT_EQ(d.m().ServingUntil(), last_echo + 500ms);
  }
  // The replication link is cut too: no more echoes. a fences before b could declare it
  // dead (b heard a's last heartbeat no earlier than it was sent).
  const RoleTime b_declares_dead_at_earliest = last_echo + 500ms;
  RoleTime fenced_at{};
  for (int t = 5100; t <= 6000; t += 100) {
    d.Step(milliseconds(t), Tick(1, 10));
    if (d.m().role() != Role::kActive) {
      fenced_at = At(milliseconds(t));
      break;
    }
  }
  ASSERT_NE(fenced_at, RoleTime{});
  EXPECT_EQ(d.m().role(), Role::kIsolated);
  EXPECT_LE(fenced_at + 100ms, b_declares_dead_at_earliest);
}

TEST(RoleTest, EchoesOfHeartbeatsFromBeforeTheTermDoNotCount) {
  Driver d(Config());
  Play(d, {
              {0ms, ev::Start{}, Role::kStarting, {}},
              {500ms, Tick(), Role::kStarting, {K::kRequestLease}},
              {502ms, Grant(), Role::kActive, kPromote},
              // An echo of a heartbeat sent while starting: b may have seen us not serving.
              {550ms, Hb(Role::kStandby, 1, 0, 0, At(400ms)), Role::kActive, {}},
          });
  EXPECT_EQ(d.m().ServingUntil(), At(1000ms));
  // An echo from an active peer does not bind it either (and here it fences us: R9).
  Play(d, {
              {560ms, Hb(Role::kActive, 0, 0, 0, At(502ms)), Role::kActive, {}},
          });
  EXPECT_EQ(d.m().ServingUntil(), At(1000ms));
  // An echo from the future (a bogus clock) is ignored.
  Play(d, {
              {570ms, Hb(Role::kStandby, 1, 0, 0, At(9000ms)), Role::kActive, {}},
          });
  EXPECT_EQ(d.m().ServingUntil(), At(1000ms));
}

TEST(RoleTest, APausedActiveFencesOnItsFirstStepBack) {
  Driver d(Config());
  MakeActiveAlone(d);
  Play(d, {
              {600ms, Tick(1), Role::kActive, {K::kRequestLease}},
              {601ms, Grant(), Role::kActive, {}},  // until +1100
          });
  EXPECT_TRUE(d.m().Serving(At(1099ms)));
  EXPECT_FALSE(d.m().Serving(At(1100ms))) << "writes are gated even before the next step";
  // Paused from +601 to +3000; meanwhile b promoted in epoch 2. The first event back is b's
  // heartbeat: a fences before anything else, then follows b.
  Play(d, {
              {3000ms,
               Hb(Role::kActive, 2, 500),
               Role::kSyncing,
               {K::kFence, K::kReleaseVip, K::kStopShipper, K::kStartReceiver}},
          });
  EXPECT_EQ(d.m().epoch(), 1u) << "the store's epoch moves only by replication";
}

TEST(RoleTest, APausedActiveBackOnATickFencesToo) {
  Driver d(Config());
  MakeActiveAlone(d);
  Play(d, {
              {3000ms,
               Tick(1),
               Role::kIsolated,
               {K::kFence, K::kReleaseVip, K::kStopShipper, K::kRequestLease}},
          });
  EXPECT_EQ(d.m().reason(), "serving license ended 2000 ms ago: witness free, no peer heard");
}

// --- R8, R9 --------------------------------------------------------------------------------

TEST(RoleTest, ActiveFencesWhenTheWitnessNamesAnotherHolder) {
  Driver d(Config());
  MakeActiveAlone(d);
  Play(d, {
              {600ms, Tick(1), Role::kActive, {K::kRequestLease}},
              // Our lease would run until +1000 by our count; the witness knows better.
              {601ms, Refused("b", 400ms), Role::kIsolated, kFence},
          });
  EXPECT_EQ(d.m().reason(), "the witness says b holds the lease");
}

TEST(RoleTest, TwoActivesNeverStayTwo) {
  // An older-epoch active peer is stale: we stay.
  Driver d(Config());
  MakeActiveAlone(d);
  Play(d, {
              {550ms, Hb(Role::kActive, 0, 10), Role::kActive, {}},
              // Same epoch: we hold a valid lease, the peer cannot; we stay.
              {560ms, Hb(Role::kActive, 1, 10), Role::kActive, {}},
          });
  // A newer epoch: we fence and resync from it.
  std::vector<K> to_syncing = kFence;
  to_syncing.push_back(K::kStartReceiver);
  Play(d, {
              {570ms, Hb(Role::kActive, 2, 10), Role::kSyncing, to_syncing},
          });
  EXPECT_EQ(d.m().reason(), "peer b is active in the newer epoch 2 (ours 1)");

  // A newer epoch on a peer that does not serve: fence; it has the newer history, so it is the
  // one that promotes (R4c), not us.
  Driver e(Config());
  MakeActiveAlone(e);
  Play(e, {
              {550ms, Hb(Role::kStandby, 2, 10), Role::kIsolated, kFence},
              {600ms, Tick(1), Role::kIsolated, {}},
          });
}

TEST(RoleTest, SameEpochActivesWithoutAWitnessKeepTheSmallerName) {
  for (const char* name : {"a", "c"}) {
    SCOPED_TRACE(name);
    Driver d(Config(name, TieBreaker::kPingTarget));
    Play(d, {
                {0ms, ev::Start{}, Role::kStarting, {}},
                {500ms, Tick(), Role::kStarting, {K::kProbePingTarget}},
                {501ms, ev::PingTargetResult{true}, Role::kActive, kPromote},
            });
    const bool smaller = std::string(name) < "b";
    std::vector<K> fence = {K::kFence, K::kReleaseVip, K::kStopShipper, K::kStartReceiver};
    Play(d, {
                {550ms, Hb(Role::kActive, 1, 10), smaller ? Role::kActive : Role::kSyncing,
                 smaller ? std::vector<K>{} : fence},
            });
  }
}

TEST(RoleTest, EpochRefusedFencesTheActive) {
  Driver d(Config());
  MakeActiveAlone(d);
  Play(d, {
              // The standby's receiver refused us: it has seen epoch 3.
              {550ms, ev::EpochRefused{3}, Role::kIsolated, kFence},
              {600ms, Tick(1), Role::kIsolated, {K::kRequestLease}},
              {601ms, Grant(), Role::kActive, kPromote},
          });
  EXPECT_EQ(d.m().epoch(), 4u) << "above every epoch seen";
  // On a follower it is only logged.
  Driver f(Config());
  MakeStandby(f);
  std::vector<Action> out = f.Step(100ms, ev::EpochRefused{0});
  EXPECT_EQ(Kinds(out), std::vector<K>{});
  EXPECT_TRUE(Has(out, K::kLog));
}

TEST(RoleTest, AGrantSentBeforeAReleaseIsNotUsed) {
  Driver d(Config());
  MakeActiveAlone(d);  // lease until +1000
  Play(d, {
              {600ms, Tick(1), Role::kActive, {K::kRequestLease}},
              // The witness is slow: no answer; asked again once the request counts as lost.
              {700ms, Tick(1), Role::kActive, {}},
              {800ms, Tick(1), Role::kActive, {K::kRequestLease}},
          });
  std::vector<K> fenced = kFence;
  Play(d, {
              // Fenced with the renewal of +800 in flight; released.
              {900ms, Tick(1), Role::kIsolated, fenced},
              // Its grant arrives: sent before the release, so the witness no longer holds it
              // for us. Not used; a new request goes out instead.
              {905ms, Grant(), Role::kIsolated, {K::kRequestLease}},
              {906ms, Grant(), Role::kActive, kPromote},
          });
  EXPECT_EQ(d.m().epoch(), 2u);
}

// --- R12: switchover -----------------------------------------------------------------------

TEST(RoleTest, SwitchoverOnTheActive) {
  Driver d(Config());
  MakeActiveAlone(d);
  Play(d, {
              {550ms, Hb(Role::kStandby, 1, 30), Role::kActive, {}},
              {560ms, ev::SwitchoverRequest{}, Role::kActive, {K::kDrainWrites}},
              {565ms, ev::SwitchoverRequest{}, Role::kActive, {K::kRejectAdmin}},
              {570ms, ev::WritesDrained{40}, Role::kActive, {}},
              {580ms, ev::ReplicationAcked{35}, Role::kActive, {}},
              // Still renewing while it waits.
              {600ms, Tick(1, 40), Role::kActive, {K::kRequestLease}},
              {601ms, Grant(), Role::kActive, {}},
          });
  EXPECT_TRUE(d.m().switchover_running());
  EXPECT_EQ(d.m().take_over_at_seq(), 0u);
  std::vector<K> handed = kFence;
  handed.push_back(K::kStartReceiver);
  Play(d, {
              // Everything up to the drained seq is on the standby: hand over.
              {610ms, ev::ReplicationAcked{40}, Role::kStandby, handed},
          });
  EXPECT_FALSE(d.m().switchover_running());
  EXPECT_EQ(d.m().take_over_at_seq(), 40u);
  EXPECT_EQ(d.m().reason(), "switchover: b has applied seq 40; handing over");
  Play(d, {
              // We do not compete with the peer we handed over to.
              {650ms, Hb(Role::kStandby, 1, 40), Role::kStandby, {}},
              {700ms, Tick(1, 40), Role::kStandby, {}},
              {750ms, Hb(Role::kActive, 2, 40), Role::kStandby, {}},
          });
  EXPECT_EQ(d.m().take_over_at_seq(), 0u);
  EXPECT_EQ(d.requests(), 2);
}

TEST(RoleTest, SwitchoverAckMayComeWithAHeartbeat) {
  Driver d(Config());
  MakeActiveAlone(d);
  std::vector<K> handed = kFence;
  handed.push_back(K::kStartReceiver);
  Play(d, {
              {550ms, Hb(Role::kStandby, 1, 30), Role::kActive, {}},
              {560ms, ev::SwitchoverRequest{}, Role::kActive, {K::kDrainWrites}},
              {570ms, ev::WritesDrained{40}, Role::kActive, {}},
              {580ms, Hb(Role::kStandby, 1, 40), Role::kStandby, handed},
          });
}

TEST(RoleTest, SwitchoverIsRefusedOrAbandoned) {
  {
    Driver d(Config());
    MakeStandby(d);
    Play(d, {{100ms, ev::SwitchoverRequest{}, Role::kStandby, {K::kRejectAdmin}}});
  }
  {
    Driver d(Config());
    MakeActiveAlone(d);
    Play(d, {
                {550ms, ev::SwitchoverRequest{}, Role::kActive, {K::kRejectAdmin}},
                {560ms, Hb(Role::kSyncing, 1, 5), Role::kActive, {}},
                {570ms, ev::SwitchoverRequest{}, Role::kActive, {K::kRejectAdmin}},
            });
  }
  {
    // The standby dies while we drain: writes resume.
    Driver d(Config());
    d.set_witness(Driver::Witness::kGrant);
    Play(
        d,
        {
            {0ms, ev::Start{}, Role::kStarting, {}},
            {500ms,
             Tick(),
             Role::kActive,
             {K::kRequestLease, K::kBumpEpoch, K::kAcquireVip, K::kStartShipper, K::kStartServing}},
            {550ms, Hb(Role::kStandby, 1, 30), Role::kActive, {}},
            {560ms, ev::SwitchoverRequest{}, Role::kActive, {K::kDrainWrites}},
            {570ms, ev::WritesDrained{40}, Role::kActive, {}},
            {600ms, Tick(1, 40), Role::kActive, {K::kRequestLease}},
            {700ms, Tick(1, 40), Role::kActive, {K::kRequestLease}},
            {800ms, Tick(1, 40), Role::kActive, {K::kRequestLease}},
            {900ms, Tick(1, 40), Role::kActive, {K::kRequestLease}},
            {1000ms, Tick(1, 40), Role::kActive, {K::kRequestLease}},
            {1050ms, Tick(1, 40), Role::kActive, {K::kResumeWrites}},
        });
    EXPECT_FALSE(d.m().switchover_running());
  }
  {
    // The standby never applies the drained seq: abandoned after switchover_timeout.
    Driver d(Config());
    d.set_witness(Driver::Witness::kGrant);
    d.Step(0ms, ev::Start{});
    d.Step(500ms, Tick());
    d.Step(550ms, Hb(Role::kStandby, 1, 30));
    d.Step(560ms, ev::SwitchoverRequest{});
    d.Step(570ms, ev::WritesDrained{40});
    bool resumed = false;
    for (int t = 600; t <= 3600 && !resumed; t += 100) {
      d.Step(milliseconds(t - 50), Hb(Role::kStandby, 1, 39));
      std::vector<Action> out = d.Step(milliseconds(t), Tick(1, 40));
      resumed = Has(out, K::kResumeWrites);
      if (resumed) {
        EXPECT_EQ(t, 3600);
      }
    }
    EXPECT_TRUE(resumed);
    EXPECT_EQ(d.m().role(), Role::kActive);
  }
}

TEST(RoleTest, SwitchoverOnTheStandby) {
  Driver d(Config());
  MakeStandby(d);  // applied 30
  Play(d, {
              {100ms, Hb(Role::kActive, 1, 40), Role::kStandby, {}},
              // b hands over at 40; we have not applied it yet.
              {110ms, Hb(Role::kStandby, 1, 40, 40), Role::kStandby, {}},
              {120ms, ev::SyncProgress{true, 40}, Role::kStandby, {K::kRequestLease}},
              // b's release has not reached the witness yet; asked again on the next tick.
              {125ms, Refused("b", 300ms), Role::kStandby, {}},
              {200ms, Tick(1, 40), Role::kStandby, {K::kRequestLease}},
              {201ms, Grant(), Role::kActive, kPromoteFollower},
          });
  EXPECT_EQ(d.m().epoch(), 2u);
  EXPECT_EQ(d.m().reason(),
            "switchover: b handed over at seq 40 and the witness granted the lease");
}

TEST(RoleTest, HandedOverNodeResumesTheNormalRulesAfterTheTimeout) {
  Driver d(Config());
  MakeActiveAlone(d);
  std::vector<K> handed = kFence;
  handed.push_back(K::kStartReceiver);
  Play(d, {
              {550ms, Hb(Role::kStandby, 1, 30), Role::kActive, {}},
              {560ms, ev::SwitchoverRequest{}, Role::kActive, {K::kDrainWrites}},
              {570ms, ev::WritesDrained{40}, Role::kActive, {}},
              {580ms, ev::ReplicationAcked{40}, Role::kStandby, handed},
          });
  // b never takes over (say its witness link is down) but stays alive as a standby.
  for (int t = 600; t < 3580; t += 100) {
    d.Step(milliseconds(t), Hb(Role::kStandby, 1, 40));
    EXPECT_EQ(d.m().take_over_at_seq(), 40u) << t;
  }
  EXPECT_EQ(d.m().NextWakeup(), At(3580ms));
  // After the timeout "a" ("a" < "b", same position) is the candidate again.
  Play(d, {{3580ms, Tick(1, 40), Role::kStandby, {K::kRequestLease}}});
  EXPECT_EQ(d.m().take_over_at_seq(), 0u);
}

// --- R11: maintenance ----------------------------------------------------------------------

TEST(RoleTest, MaintenanceOfTheStandby) {
  Driver d(Config());
  MakeStandby(d);
  Play(d, {
              {100ms, ev::MaintenanceOn{}, Role::kMaintenance, {K::kStopReceiver}},
              {150ms, ev::MaintenanceOn{}, Role::kMaintenance, {}},
              {200ms, Hb(Role::kActive, 1, 50), Role::kMaintenance, {}},
              // Even with the peer dead it stays out.
              {1000ms, Tick(1, 30), Role::kMaintenance, {}},
              {1100ms, Hb(Role::kActive, 1, 60), Role::kMaintenance, {}},
              {1200ms, ev::MaintenanceOff{}, Role::kSyncing, {K::kStartReceiver}},
              {1300ms, ev::MaintenanceOff{}, Role::kSyncing, {K::kRejectAdmin}},
          });
}

TEST(RoleTest, MaintenanceOffWithoutAnActivePeerDecidesAtOnce) {
  Driver d(Config());
  MakeStandby(d);
  Play(d, {
              {100ms, ev::MaintenanceOn{}, Role::kMaintenance, {K::kStopReceiver}},
              {2000ms, ev::MaintenanceOff{}, Role::kStarting, {K::kRequestLease}},
              {2001ms, Grant(), Role::kActive, kPromote},
          });
}

TEST(RoleTest, MaintenanceOfTheActiveHandsOverFirst) {
  Driver d(Config());
  MakeActiveAlone(d);
  Play(d, {
              {540ms, ev::MaintenanceOn{}, Role::kActive, {K::kRejectAdmin}},
              {550ms, Hb(Role::kStandby, 1, 30), Role::kActive, {}},
              {560ms, ev::MaintenanceOn{}, Role::kActive, {K::kDrainWrites}},
              {570ms, ev::WritesDrained{40}, Role::kActive, {}},
              {580ms, ev::ReplicationAcked{40}, Role::kMaintenance, kFence},
          });
  EXPECT_EQ(d.m().take_over_at_seq(), 40u);
  // The peer takes over; we stay out until told otherwise.
  Play(d, {
              {650ms, Hb(Role::kActive, 2, 40), Role::kMaintenance, {}},
              {700ms, ev::MaintenanceOff{}, Role::kSyncing, {K::kStartReceiver}},
          });
}

TEST(RoleTest, ForcedMaintenanceOfALoneActive) {
  Driver d(Config());
  MakeActiveAlone(d);
  Play(d, {
              {550ms, ev::MaintenanceOn{true}, Role::kMaintenance, kFence},
              {2000ms, Tick(1), Role::kMaintenance, {}},
          });
  Driver s(Config());
  Play(s, {
              {0ms, ev::Start{}, Role::kStarting, {}},
              {100ms, ev::MaintenanceOn{}, Role::kMaintenance, {}},
              {1000ms, Tick(), Role::kMaintenance, {}},
          });
  EXPECT_EQ(s.requests(), 0);
}

// --- Ping target ---------------------------------------------------------------------------

TEST(RoleTest, PingTargetBreaksTheTie) {
  Driver d(Config("a", TieBreaker::kPingTarget));
  MakeStandby(d);
  Play(d, {
              {510ms, Tick(1, 30), Role::kStandby, {K::kProbePingTarget}},
              {512ms, ev::PingTargetResult{false}, Role::kStandby, {}},
              {610ms, Tick(1, 30), Role::kStandby, {K::kProbePingTarget}},
              {612ms, ev::PingTargetResult{true}, Role::kActive, kPromoteFollower},
          });
  EXPECT_EQ(d.m().reason(), "peer b dead for 602 ms and the ping target is reachable");
  EXPECT_EQ(d.m().WitnessText(At(612ms)), "none");
  // R7 in ping mode: the active probes every tick; without the peer and without replies it
  // fences one interval before last reply + dead_after.
  Play(d, {
              {700ms, Tick(2, 30), Role::kActive, {K::kProbePingTarget}},
              {702ms, ev::PingTargetResult{true}, Role::kActive, {}},
              {800ms, Tick(2, 30), Role::kActive, {K::kProbePingTarget}},
              {802ms, ev::PingTargetResult{false}, Role::kActive, {}},
          });
  EXPECT_EQ(d.m().ServingUntil(), At(1202ms));
  EXPECT_EQ(d.m().NextWakeup(), At(1102ms));
  Play(d, {
              {1102ms,
               Tick(2, 30),
               Role::kIsolated,
               {K::kFence, K::kReleaseVip, K::kStopShipper, K::kProbePingTarget}},
          });
}

TEST(RoleTest, WitnessEventMapsClientResults) {
  LeaseReply reply;
  reply.granted = true;
  reply.holder = "a";
  reply.remaining_ms = 500;
  reply.lease_valid_until = At(800ms);
  RoleEvent e = WitnessEvent(7, Result<LeaseReply>(reply));
  ASSERT_TRUE(std::holds_alternative<ev::WitnessReply>(e));
  const auto& r = std::get<ev::WitnessReply>(e);
  EXPECT_EQ(r.request_id, 7u);
  EXPECT_TRUE(r.granted);
  EXPECT_EQ(r.holder, "a");
  EXPECT_EQ(r.lease_valid_until, At(800ms));
  EXPECT_EQ(r.remaining, 500ms);
  RoleEvent u = WitnessEvent(8, Result<LeaseReply>(Status::Timeout("no reply")));
  ASSERT_TRUE(std::holds_alternative<ev::WitnessUnreachable>(u));
  EXPECT_EQ(std::get<ev::WitnessUnreachable>(u).request_id, 8u);
  EXPECT_EQ(std::get<ev::WitnessUnreachable>(u).why, "Timeout: no reply");
}

TEST(RoleTest, Names) {
  EXPECT_EQ(RoleName(Role::kStandby), "standby");
  EXPECT_EQ(RoleName(Role::kMaintenance), "maintenance");
  EXPECT_EQ(ActionName(K::kBumpEpoch), "BumpEpoch");
  EXPECT_EQ(ActionName(K::kRejectAdmin), "RejectAdmin");
}

}  // namespace
}  // namespace pbx::cluster
