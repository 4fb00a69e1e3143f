// Two RoleMachines in a simulated pair (role_sim.h): the real WitnessLease, links with
// delays and partitions, paused and crashed nodes, simulated time. After every step the
// simulation checks that at most one node serves (kActive within its serving license) and
// that no running node stays kActive past its license. First the stories of DESIGN.md §4,
// then random schedules.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "node/cluster/role.h"
#include "tests/unit/cluster/role_sim.h"

namespace pbx::cluster {
namespace {

using namespace std::chrono_literals;
using sim::PairSim;
using std::chrono::milliseconds;

constexpr int A = 0;
constexpr int B = 1;

PairSim::Options Opts(milliseconds hb = 100ms, bool witness = true, uint64_t seed = 1) {
  PairSim::Options o;
  o.a.hb_interval = o.b.hb_interval = hb;
  o.witness = witness;
  o.seed = seed;
  return o;
}

#define EXPECT_SIM_OK(s) EXPECT_EQ((s).failure(), "") << (s).TraceText()

Role RoleOf(PairSim& s, int i) { return s.m(i).role(); }

// a boots alone and becomes active; b joins, syncs and becomes its standby.
void FormPair(PairSim& s) {
  s.Boot(A);
  ASSERT_TRUE(s.RunUntilTrue([&] { return s.Active(A); }, 2s)) << s.TraceText();
  s.RunFor(300ms);
  s.Boot(B);
  ASSERT_TRUE(s.RunUntilTrue([&] { return RoleOf(s, B) == Role::kStandby; }, 2s)) << s.TraceText();
}

TEST(RolePairTest, FirstNodeAloneThenSecondSyncsAndStandsBy) {
  PairSim s(Opts());
  const RoleTime boot = s.now();
  s.Boot(A);
  ASSERT_TRUE(s.RunUntilTrue([&] { return s.Active(A); }, 2s));
  // dead_after to listen, then the witness.
  EXPECT_LE(s.now() - boot, 600ms);
  EXPECT_EQ(s.node(A).store.epoch, 1u);
  EXPECT_TRUE(s.node(A).vip);
  EXPECT_TRUE(s.node(A).shipper);
  s.RunFor(300ms);
  s.Boot(B);
  ASSERT_TRUE(s.RunUntilTrue([&] { return RoleOf(s, B) == Role::kSyncing; }, 500ms));
  ASSERT_TRUE(s.RunUntilTrue([&] { return RoleOf(s, B) == Role::kStandby; }, 1s));
  s.RunFor(3s);
  EXPECT_TRUE(s.Serving(A));
  EXPECT_EQ(RoleOf(s, B), Role::kStandby);
  EXPECT_TRUE(s.node(B).receiver);
  EXPECT_FALSE(s.node(B).vip);
  EXPECT_EQ(s.node(B).store.epoch, 1u);
  EXPECT_GT(s.node(A).store.seq, 100u);
  EXPECT_SIM_OK(s);
}

// The active dies: the standby promotes after hb_dead intervals with the lease, in a new
// epoch, with the VIP. Failover targets: <= 1 s with 100 ms heartbeats, <= 300 ms with 30 ms.
TEST(RolePairTest, ActiveDiesStandbyPromotes) {
  for (milliseconds hb : {100ms, 30ms}) {
    SCOPED_TRACE(::testing::Message() << "hb " << hb.count() << " ms");
    PairSim s(Opts(hb));
    FormPair(s);
    s.RunFor(1s);
    const uint64_t seq_before = s.node(A).store.seq;
    s.Crash(A);
    const RoleTime died = s.now();
    ASSERT_TRUE(s.RunUntilTrue([&] { return s.Active(B); }, 3s)) << s.TraceText();
    const milliseconds took = std::chrono::ceil<milliseconds>(s.now() - died);
    EXPECT_LE(took, hb == 100ms ? 1000ms : 300ms);
    // Not before the peer is dead.
    EXPECT_GE(took, hb * 5 - hb);
    EXPECT_EQ(s.node(B).store.epoch, 2u);
    EXPECT_TRUE(s.node(B).vip);
    EXPECT_TRUE(s.node(B).shipper);
    EXPECT_FALSE(s.node(B).receiver);
    EXPECT_GE(s.node(B).store.seq + 5, seq_before);
    ASSERT_TRUE(s.m(B).last_failover().has_value());
    EXPECT_NE(s.m(B).reason().find("dead for"), std::string::npos) << s.m(B).reason();
    EXPECT_NE(s.m(B).reason().find("witness granted"), std::string::npos);
    // The old active comes back and follows.
    s.Boot(A);
    ASSERT_TRUE(s.RunUntilTrue([&] { return RoleOf(s, A) == Role::kStandby; }, 2s))
        << s.TraceText();
    EXPECT_EQ(s.node(A).store.epoch, 2u);
    EXPECT_TRUE(s.Serving(B));
    EXPECT_SIM_OK(s);
  }
}

// A hung active (no heartbeats, no renewals) loses its role; when it resumes, still believing
// it is active in the old epoch, it fences at its first step and follows the new active.
TEST(RolePairTest, HungActiveFencesWhenItResumes) {
  PairSim::Options o = Opts();
  o.verbose = std::getenv("PBX_ROLE_VERBOSE") != nullptr;
  PairSim s(o);
  FormPair(s);
  s.RunFor(1s);
  s.Hang(A, 2500ms);
  ASSERT_TRUE(s.RunUntilTrue([&] { return s.Active(B); }, 2s)) << s.TraceText();
  EXPECT_EQ(RoleOf(s, A), Role::kActive) << "paused: it has not noticed anything";
  EXPECT_FALSE(s.Serving(A)) << "but its license ran out";
  EXPECT_EQ(s.node(B).store.epoch, 2u);
  ASSERT_TRUE(s.RunUntilTrue([&] { return RoleOf(s, A) != Role::kActive; }, 3s)) << s.TraceText();
  EXPECT_FALSE(s.node(A).serving);
  EXPECT_FALSE(s.node(A).vip);
  ASSERT_TRUE(s.RunUntilTrue([&] { return RoleOf(s, A) == Role::kStandby; }, 2s)) << s.TraceText();
  EXPECT_TRUE(s.Serving(B));
  EXPECT_SIM_OK(s);
}

// The replication link is cut; the witness is reachable from one side only. Exactly one
// node serves, the one that reaches the witness.
TEST(RolePairTest, PartitionWithTheWitnessOnOneSide) {
  for (int witness_side : {A, B}) {
    SCOPED_TRACE(witness_side == A ? "witness with the active" : "witness with the standby");
    PairSim s(Opts());
    FormPair(s);
    s.RunFor(500ms);
    s.SetPairLink(false);
    s.SetWitnessLink(1 - witness_side, false);
    s.RunFor(3s);
    EXPECT_TRUE(s.Serving(witness_side)) << s.TraceText();
    EXPECT_FALSE(s.Active(1 - witness_side));
    EXPECT_EQ(s.ServingCount(), 1);
    EXPECT_SIM_OK(s);
    // Healed: the other one follows.
    s.SetPairLink(true);
    s.SetWitnessLink(1 - witness_side, true);
    ASSERT_TRUE(s.RunUntilTrue([&] { return RoleOf(s, 1 - witness_side) == Role::kStandby; }, 3s))
        << s.TraceText();
    EXPECT_TRUE(s.Serving(witness_side));
    EXPECT_SIM_OK(s);
  }
}

// Witness unreachable from both and the replication link cut: the active fences strictly
// before its lease ends; the standby cannot get the lease and does not promote.
TEST(RolePairTest, WitnessUnreachableFromBothAndLinkCut) {
  PairSim s(Opts());
  FormPair(s);
  s.RunFor(500ms);
  s.SetWitnessLink(A, false);
  s.SetWitnessLink(B, false);
  s.SetPairLink(false);
  // Replies already on their way are lost with the link, so this is the last grant.
  const RoleTime lease_end = s.m(A).lease_valid_until();
  ASSERT_TRUE(s.RunUntilTrue([&] { return !s.Active(A); }, 2s));
  EXPECT_LE(s.now() + 100ms, lease_end);
  EXPECT_EQ(RoleOf(s, A), Role::kIsolated);
  s.RunFor(3s);
  EXPECT_EQ(s.ServingCount(), 0);
  EXPECT_EQ(RoleOf(s, B), Role::kStandby);
  EXPECT_SIM_OK(s);
  // Everything back: one of them serves again.
  s.SetWitnessLink(A, true);
  s.SetWitnessLink(B, true);
  s.SetPairLink(true);
  ASSERT_TRUE(s.RunUntilTrue([&] { return s.ServingCount() == 1; }, 3s)) << s.TraceText();
  EXPECT_SIM_OK(s);
}

// Witness unreachable from both while the pair itself is healthy: the active keeps serving
// on its standby's echoes (R7), and fences in time when the link fails as well.
TEST(RolePairTest, WitnessOutageAloneDoesNotStopTheService) {
  PairSim s(Opts());
  FormPair(s);
  s.SetWitnessLink(A, false);
  s.SetWitnessLink(B, false);
  s.RunFor(10s);
  EXPECT_TRUE(s.Serving(A)) << s.TraceText();
  EXPECT_EQ(RoleOf(s, B), Role::kStandby);
  EXPECT_EQ(s.m(A).WitnessText(s.now()), "unreachable");
  s.SetPairLink(false);
  ASSERT_TRUE(s.RunUntilTrue([&] { return !s.Active(A); }, 1s));
  s.RunFor(3s);
  EXPECT_EQ(s.ServingCount(), 0);
  // The witness comes back on b's side only: b takes over.
  s.SetWitnessLink(B, true);
  ASSERT_TRUE(s.RunUntilTrue([&] { return s.Serving(B); }, 2s)) << s.TraceText();
  EXPECT_SIM_OK(s);
}

// Without a witness, a reachable ping target breaks the tie.
TEST(RolePairTest, PingTargetWithoutAWitness) {
  PairSim s(Opts(100ms, /*witness=*/false));
  FormPair(s);
  s.RunFor(1s);
  s.SetPingLink(B, false);
  s.Crash(A);
  s.RunFor(2s);
  EXPECT_EQ(RoleOf(s, B), Role::kStandby) << "no tie-breaker: it waits";
  s.SetPingLink(B, true);
  ASSERT_TRUE(s.RunUntilTrue([&] { return s.Active(B); }, 1s)) << s.TraceText();
  EXPECT_NE(s.m(B).reason().find("ping target is reachable"), std::string::npos);
  EXPECT_EQ(s.node(B).store.epoch, 2u);
  // The active loses its standby and the ping target: it fences.
  s.SetPingLink(B, false);
  ASSERT_TRUE(s.RunUntilTrue([&] { return !s.Active(B); }, 1s));
  EXPECT_EQ(RoleOf(s, B), Role::kIsolated);
  EXPECT_SIM_OK(s);
}

// Planned switchover: drain, hand over at an exact sequence number, nothing lost.
TEST(RolePairTest, SwitchoverHandsOverAtAnExactSeq) {
  PairSim s(Opts());
  FormPair(s);
  s.RunFor(1s);
  s.Admin(A, ev::SwitchoverRequest{});
  ASSERT_TRUE(s.RunUntilTrue([&] { return s.Active(B); }, 2s)) << s.TraceText();
  // At b's promotion: every write a took is on b, and a took none after the hand-over.
  EXPECT_EQ(s.node(B).store.seq, s.node(A).store.seq);
  EXPECT_EQ(s.node(B).store.epoch, 2u);
  EXPECT_EQ(RoleOf(s, A), Role::kStandby);
  EXPECT_FALSE(s.node(A).vip);
  EXPECT_NE(s.m(B).reason().find("switchover"), std::string::npos) << s.m(B).reason();
  ASSERT_TRUE(s.RunUntilTrue([&] { return s.m(A).take_over_at_seq() == 0; }, 1s));
  s.RunFor(2s);
  EXPECT_TRUE(s.Serving(B));
  EXPECT_EQ(RoleOf(s, A), Role::kStandby);
  EXPECT_EQ(s.node(A).store.epoch, 2u);
  // And back.
  s.Admin(B, ev::SwitchoverRequest{});
  ASSERT_TRUE(s.RunUntilTrue([&] { return s.Active(A); }, 2s)) << s.TraceText();
  EXPECT_EQ(s.node(A).store.seq, s.node(B).store.seq);
  EXPECT_EQ(s.node(A).store.epoch, 3u);
  EXPECT_SIM_OK(s);
}

TEST(RolePairTest, Maintenance) {
  PairSim s(Opts());
  FormPair(s);
  s.RunFor(500ms);
  // The active hands over first, then leaves.
  s.Admin(A, ev::MaintenanceOn{});
  ASSERT_TRUE(s.RunUntilTrue([&] { return s.Active(B); }, 2s)) << s.TraceText();
  EXPECT_EQ(RoleOf(s, A), Role::kMaintenance);
  EXPECT_FALSE(s.node(A).receiver);
  // With nobody to hand over to, b refuses unless forced.
  s.Admin(B, ev::MaintenanceOn{});
  ASSERT_EQ(s.node(B).rejects.size(), 1u);
  EXPECT_TRUE(s.Serving(B));
  s.RunFor(2s);
  EXPECT_EQ(RoleOf(s, A), Role::kMaintenance);
  s.Admin(A, ev::MaintenanceOff{});
  EXPECT_EQ(RoleOf(s, A), Role::kSyncing);
  ASSERT_TRUE(s.RunUntilTrue([&] { return RoleOf(s, A) == Role::kStandby; }, 1s));
  // A standby's maintenance does not touch the active.
  s.Admin(A, ev::MaintenanceOn{});
  EXPECT_EQ(RoleOf(s, A), Role::kMaintenance);
  s.RunFor(1s);
  EXPECT_TRUE(s.Serving(B));
  s.Admin(B, ev::MaintenanceOn{true});
  EXPECT_EQ(RoleOf(s, B), Role::kMaintenance);
  s.RunFor(2s);
  EXPECT_EQ(s.ServingCount(), 0);
  s.Admin(A, ev::MaintenanceOff{});
  ASSERT_TRUE(s.RunUntilTrue([&] { return s.Serving(A); }, 2s)) << s.TraceText();
  EXPECT_SIM_OK(s);
}

// Random schedules: partitions (either direction), witness links, message drops, delay,
// paused and crashed nodes, witness restarts, switchovers and maintenance, at random times.
// Safety is checked after every step by the simulation; after each schedule everything is
// healed and exactly one node must serve, the other following it as a standby.
TEST(RolePairTest, RandomSchedulesNeverHaveTwoServingNodes) {
  constexpr int kSchedules = 2000;
  uint64_t promotions = 0;
  uint64_t steps = 0;
  int failures = 0;
  // PBX_ROLE_SEED=n replays one schedule with a verbose trace.
  const char* only = std::getenv("PBX_ROLE_SEED");
  for (int seed = 1; seed <= kSchedules && failures < 3; ++seed) {
    if (only != nullptr && seed != std::atoi(only)) continue;
    std::mt19937_64 rng(seed * 7919);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
    PairSim::Options o = Opts(100ms, true, seed);
    o.verbose = only != nullptr;
    o.tick_jitter = milliseconds(pick(6));
    o.delay_max = milliseconds(1 + pick(30));
    o.witness_delay_max = milliseconds(1 + pick(20));
    PairSim s(o);
    s.Boot(A);
    s.RunFor(milliseconds(pick(1500)));
    s.Boot(B);
    const RoleTime chaos_end = s.now() + milliseconds(4000 + pick(4000));
    while (s.now() < chaos_end && s.failure().empty()) {
      s.RunFor(milliseconds(20 + pick(300)));
      const int n = pick(2);
      switch (pick(14)) {
        case 0:
          s.SetPairLink(false);
          break;
        case 1:
          s.SetPairLink(true);
          break;
        case 2:
          s.SetLink(n, 1 - n, !s.pair_link(n, 1 - n));  // one direction only
          break;
        case 3:
        case 4:
          s.SetWitnessLink(n, pick(2) == 0);
          break;
        case 5:
          s.SetHeartbeatDropRate(pick(3) * 0.2);
          break;
        case 6:
          s.Hang(n, milliseconds(100 + pick(1500)));
          break;
        case 7:
          if (s.Up(n)) {
            s.Crash(n);
          } else {
            s.Boot(n);
          }
          break;
        case 8:
          if (!s.Up(n)) s.Boot(n);
          break;
        case 9:
          s.RestartWitness(milliseconds(pick(800)));
          break;
        case 10:
          s.Admin(n, ev::SwitchoverRequest{});
          break;
        case 11:
          s.Admin(n, ev::MaintenanceOn{pick(4) == 0});
          break;
        case 12:
          s.Admin(n, ev::MaintenanceOff{});
          break;
        case 13:
          s.RunFor(milliseconds(pick(1000)));
          break;
      }
    }
    // Heal everything and let it settle.
    s.SetPairLink(true);
    s.SetWitnessLink(A, true);
    s.SetWitnessLink(B, true);
    s.SetHeartbeatDropRate(0);
    for (int i : {A, B}) {
      if (!s.Up(i)) s.Boot(i);
    }
    // Paused nodes resume; a restarted witness leaves its start-up hold.
    s.RunUntilTrue([&] { return !s.node(A).hung && !s.node(B).hung; }, 5s);
    s.RunFor(500ms);
    for (int i : {A, B}) s.Admin(i, ev::MaintenanceOff{});
    const bool settled = s.RunUntilTrue(
        [&] { return s.ServingCount() == 1 && RoleOf(s, s.Serving(A) ? B : A) == Role::kStandby; },
        10s);
    promotions += s.promotions();
    steps += s.steps();
    if (only != nullptr) {
      std::printf("simulated %lld ms, %llu steps\n%s",
                  static_cast<long long>((s.now() - sim::kT0) / 1ms),
                  static_cast<unsigned long long>(s.steps()), s.TraceText().c_str());
    }
    if (!s.failure().empty() || !settled) {
      ++failures;
      ADD_FAILURE() << "seed " << seed << ": "
                    << (!s.failure().empty()
                            ? s.failure()
                            : fmt::format("did not settle: a {} b {}", RoleName(RoleOf(s, A)),
                                          RoleName(RoleOf(s, B))))
                    << "\n"
                    << s.TraceText();
    }
  }
  // Beyond each schedule's first promotion, there were failovers to check.
  if (only == nullptr) {
    EXPECT_GT(promotions, 3u * kSchedules / 2);
  }
  RecordProperty("promotions", static_cast<int>(promotions));
  RecordProperty("steps", static_cast<int>(steps));
  std::printf("%d schedules, %llu role steps, %llu promotions\n", kSchedules,
              static_cast<unsigned long long>(steps), static_cast<unsigned long long>(promotions));
}

}  // namespace
}  // namespace pbx::cluster
