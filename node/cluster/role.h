#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "node/cluster/witness_lease.h"
#include "node/core/log.h"
#include "node/core/status.h"

namespace pbx::cluster {

// The role machine's clock: monotonic, the same clock WitnessClient dates leases with.
using RoleClock = WitnessClock;
using RoleTime = RoleClock::time_point;

// DESIGN.md §4. Only kActive serves (VIP, SIP, media, writes).
enum class Role : uint8_t {
  kStarting,     // just started: listening for the peer before deciding
  kSyncing,      // following the active, not caught up yet (never promotes)
  kStandby,      // following the active and caught up: the one that may promote
  kActive,       // serving, holding the VIP, shipping the log
  kIsolated,     // neither the active peer nor the tie-breaker can be reached: serves nothing
  kMaintenance,  // an admin took the node out: serves and follows nothing
};
// "starting", "syncing", "standby", "active", "isolated", "maintenance".
std::string_view RoleName(Role role);

// What decides, when the peer cannot be heard, whether it is dead or merely cut off.
enum class TieBreaker : uint8_t {
  kNone,        // only for a node without a peer (standalone)
  kWitness,     // pbx-witness grants a lease to one node at a time
  kPingTarget,  // a reachable ping target (best effort: see the rules below)
};

// Where a node's replicated store is: the epoch in `meta` and the latest sequence number
// (committed on an active, applied on a follower). Ordered epoch first: a later epoch holds
// the newer history whatever the sequence numbers say.
struct Position {
  uint64_t epoch = 0;
  uint64_t seq = 0;
  auto operator<=>(const Position&) const = default;
};

struct RoleConfig {
  std::string node_name;
  // False: a single node ("standalone"), which is active from Start on.
  bool has_peer = true;
  TieBreaker tie_breaker = TieBreaker::kWitness;
  // Heartbeats and lease renewals go out every hb_interval; the peer is dead after hb_dead
  // intervals without a heartbeat. Both nodes of a pair should use the same values; each
  // heartbeat carries the sender's dead time and the smaller one is used where it matters.
  std::chrono::milliseconds hb_interval{100};
  int hb_dead = 5;
  // Witness lease length; 0 means hb_interval * hb_dead, so that an active that stops
  // renewing loses its lease about when its standby declares it dead.
  std::chrono::milliseconds lease{0};
  // Bound on each half of a switchover: drain + standby ack, then the peer's takeover.
  std::chrono::milliseconds switchover_timeout{3000};
};

// ---------------------------------------------------------------------------------------
// Events: what happened. Each is applied with the time it is processed at.
namespace ev {

// Once, first. `local` is the store's position at boot.
struct Start {
  Position local;
};
// Every hb_interval, and also at RoleMachine::NextWakeup(). `local`: the store now.
struct Tick {
  Position local;
};
// A heartbeat from the peer (HeartbeatLink; see ToPeerHeartbeat in heartbeat.h).
struct PeerHeartbeat {
  std::string node_name;
  Role role = Role::kStarting;
  Position position;
  uint64_t take_over_at_seq = 0;  // != 0: the peer hands over to us at this sequence number
  bool degraded = false;
  std::chrono::milliseconds dead_after{0};  // the peer's hb_interval * hb_dead; 0: unknown
  // On our clock: when we sent the newest of our heartbeats the peer had received when it
  // sent this one ({}: none). HeartbeatLink only passes echoes of heartbeats it really sent.
  RoleTime echo{};
};
// The answer to a RequestLease (not to a ReleaseLease: those are not reported).
struct WitnessReply {
  uint64_t request_id = 0;  // Action::request_id of the RequestLease
  bool granted = false;
  std::string holder;  // the current holder ("" if nobody)
  // Granted: the instant before which we hold the lease (WitnessClient's safety rule).
  RoleTime lease_valid_until{};
  // Refused: how much longer the holder's lease (or the witness's start-up hold) runs.
  std::chrono::milliseconds remaining{0};
};
// A RequestLease that got no usable answer (timeout, no connection, rejected request).
struct WitnessUnreachable {
  uint64_t request_id = 0;
  std::string why;
};
// The answer to a ProbePingTarget.
struct PingTargetResult {
  bool reachable = false;
};
// From the log receiver on a follower: `caught_up` = streaming from the active and
// applied within a small lag of it.
struct SyncProgress {
  bool caught_up = false;
  uint64_t applied_seq = 0;
};
// From the shipper on the active: the standby has applied everything up to `seq`.
struct ReplicationAcked {
  uint64_t seq = 0;
};
// After DrainWrites: no write is in flight any more and `last_seq` is the last committed.
struct WritesDrained {
  uint64_t last_seq = 0;
};
// Replication refused because the peer is in a newer epoch (or a peer refused our stream
// for that reason).
struct EpochRefused {
  uint64_t peer_epoch = 0;
};
// Admin requests (pbxctl maintenance on|off, pbxctl switchover).
struct MaintenanceOn {
  bool force = false;  // on an active without a caught-up standby: stop serving anyway
};
struct MaintenanceOff {};
struct SwitchoverRequest {};

}  // namespace ev

using RoleEvent =
    std::variant<ev::Start, ev::Tick, ev::PeerHeartbeat, ev::WitnessReply, ev::WitnessUnreachable,
                 ev::PingTargetResult, ev::SyncProgress, ev::ReplicationAcked, ev::WritesDrained,
                 ev::EpochRefused, ev::MaintenanceOn, ev::MaintenanceOff, ev::SwitchoverRequest>;

// The result of WitnessClient::Request for the RequestLease `request_id` as an event: an
// error is WitnessUnreachable.
RoleEvent WitnessEvent(uint64_t request_id, const Result<LeaseReply>& reply);

// ---------------------------------------------------------------------------------------
// Actions: what the node must do, in the order given. Each is executed before the next
// event is stepped; BumpEpoch in particular is durable before AcquireVip runs.
struct Action {
  enum class Kind : uint8_t {
    kLog,              // `text` at `level`, component "role"
    kSendHeartbeat,    // now, with role(), epoch(), take_over_at_seq() and the store's seq
    kRequestLease,     // ask the witness for `lease` (with `epoch`), within `timeout`; report
                       // the result as WitnessReply / WitnessUnreachable (WitnessEvent)
    kReleaseLease,     // give the lease up; the result is not reported
    kProbePingTarget,  // ping the target; report PingTargetResult
    kBumpEpoch,        // commit epoch = `epoch` in meta before serving
    kAcquireVip,
    kReleaseVip,
    kStartShipper,  // active side of the log
    kStopShipper,
    kStartReceiver,  // follower side of the log
    kStopReceiver,
    kStartServing,  // take over: trunks, media, line switch, admin on the VIP
    kFence,         // stop serving now (calls, writes, admin on the VIP); `text` says why
    kDrainWrites,   // stop accepting writes, then report WritesDrained
    kResumeWrites,  // a switchover was abandoned: accept writes again
    kRejectAdmin,   // the admin request cannot be done now; `text` says why
  };
  Kind kind = Kind::kLog;
  uint64_t epoch = 0;                    // kBumpEpoch: the new epoch; kRequestLease: ours
  uint64_t request_id = 0;               // kRequestLease: to put in the reply event
  std::chrono::milliseconds lease{0};    // kRequestLease
  std::chrono::milliseconds timeout{0};  // kRequestLease
  // kStopReceiver on a promotion: the active we followed is dead, so stop without waiting
  // for its goodbye (LogReceiver::Abandon); the wait would add to the failover time.
  bool peer_dead = false;
  log::Level level = log::Level::kInfo;  // kLog
  std::string text;                      // kLog, kFence, kRejectAdmin
};
std::string_view ActionName(Action::Kind kind);

// What this node knows of the witness, for status output.
enum class WitnessState : uint8_t {
  kNotConfigured,
  kUnknown,      // not asked yet
  kHeldByUs,     // our lease is valid
  kHeldByPeer,   // the witness refused: another node holds the lease
  kFree,         // nobody holds it (we released it, or the witness is in its start-up hold)
  kUnreachable,  // the last request got no answer
};

// A role change, kept for status output ("last failover and why").
struct RoleTransition {
  RoleTime at{};
  Role from = Role::kStarting;
  Role to = Role::kStarting;
  std::string reason;
};

// The role state machine of one node of the pair (DESIGN.md §4). Pure: no I/O, no clock,
// no threads. The node feeds it events with the time they are processed at and executes
// the actions it returns. Not thread-safe: one owner (the node's loop thread).
//
// Terms. dead_after = hb_interval * hb_dead. The peer is *alive* if heard within
// dead_after, *serving* if alive and its last heartbeat said kActive. A node *promotes* by
// StopReceiver (if following), BumpEpoch (max(our epoch, any peer epoch seen) + 1),
// AcquireVip, StartShipper, StartServing, and becomes kActive. It *fences* by Fence,
// ReleaseVip, StopShipper (ReleaseLease if it held one) and stops being kActive.
//
// Rules.
//  R1 Standalone (no peer): Start promotes at once; nothing is ever asked of a tie-breaker.
//  R2 kStarting, kIsolated: a serving peer whose epoch is not older than ours is followed:
//     StartReceiver, kSyncing. (An older-epoch active is stale; it fences on seeing our
//     heartbeats, R9.)
//  R3 kSyncing -> kStandby on SyncProgress{caught_up}. kStandby -> kSyncing on
//     SyncProgress{!caught_up} only while the peer is serving: a receiver that lost its
//     active has not fallen behind anything.
//  R4 Candidates. A node asks the tie-breaker for the right to promote when all hold:
//     a. it is kStandby, kIsolated, or kStarting for at least dead_after since Start (time to
//        hear an active peer); kSyncing and kMaintenance never (a syncing node would lose
//        acknowledged writes). Exception: a node the peer hands over to (R12) may be
//        kSyncing if it has applied the hand-over sequence number;
//     b. the peer is not serving (dead, or alive and saying it is not kActive);
//     c. if the peer is alive: we are not handing over ourselves, and either the peer hands
//        over to us and we have applied its hand-over seq, or the peer is kSyncing or
//        kMaintenance (it never promotes), or our Position is greater than the peer's
//        (ties: the smaller node name). So two live non-serving nodes agree on one.
//     The spec "promote only when the peer is dead" is widened to "dead or saying it does
//     not serve": a peer that fenced itself but still sends heartbeats would otherwise block
//     failover until it dies. Safety does not rest on it: see R5 and R7.
//  R5 Tie-breaker, witness: a candidate sends RequestLease (at most once per hb_interval,
//     one in flight; after a refusal while the peer is dead, not before the holder's lease
//     runs out) and promotes on a grant valid for more than hb_interval, if it is still a
//     candidate; an unwanted grant is released at once, and a grant for a request sent
//     before our last ReleaseLease is ignored (request ids). The witness grants only after the
//     previous holder's lease ended on its clock, which is after that holder's own
//     lease_valid_until (WitnessClient's safety rule), so the previous active has stopped.
//     Ping target: a candidate sends ProbePingTarget (once per hb_interval) and promotes on
//     a reachable result. This cannot tell "peer dead" from "replication link cut while both
//     see the target": it is a best-effort tie-breaker (DESIGN.md §4), use a witness where
//     split brain matters.
//  R6 kStarting after dead_after, with the peer dead and the tie-breaker unreachable (last
//     request unanswered or target unreachable) -> kIsolated. It keeps asking (R4/R5).
//     A refusal because the other node holds the lease keeps it waiting in kStarting.
//  R7 Serving license. An active may serve until
//       witness mode: max(lease_valid_until, peer license)
//       ping mode:    max(last reachable ping + dead_after, peer license)
//     where peer license = E + min(our dead_after, the peer's), E = the newest of our
//     heartbeats, sent since we became active, that the peer echoed in a heartbeat saying it
//     is not kActive. A non-active peer promotes only after declaring us dead, i.e. no
//     sooner than dead_after after it received E, which is after E was sent (R4b); so the
//     license lets a healthy pair ride out a witness outage without any overlap. The active
//     renews its lease every tick (RequestLease) and probes the ping target every tick.
//     Fencing: when now + hb_interval >= license, the active fences -> kIsolated; this is
//     checked at every event, and NextWakeup() tells the node when to tick at the latest, so
//     it fences strictly before the license ends even if ticks jitter.
//  R8 A refusal naming another holder while we are kActive: fence at once -> kIsolated.
//  R9 Two actives never coexist knowingly: an active that hears a peer with a newer epoch
//     (any role), or gets EpochRefused with a newer epoch, fences (-> kSyncing if the peer is
//     serving, else kIsolated; its tail may diverge, replication resyncs it). An active that
//     hears an active peer of the same epoch fences unless it holds a valid witness lease
//     (ping mode: unless its name is the smaller). An active peer of an older epoch is stale:
//     we go on and log it; it fences when it hears us.
//  R10 kIsolated promotes through R4/R5 like a standby (peer dead or not serving, and the
//     tie-breaker agrees), with a new epoch. It follows a serving peer (R2).
//  R11 Maintenance. MaintenanceOn: a follower stops its receiver; kStarting/kIsolated just
//     stop; an active with a caught-up standby hands over first (R12) and then enters
//     maintenance; an active without one refuses (kRejectAdmin) unless forced, when it
//     fences into maintenance and nothing serves. In kMaintenance the node only listens.
//     MaintenanceOff: follow a serving peer (kSyncing), else kStarting (the start-up wait
//     counts from Start, so it decides at once), standalone: promote.
//  R12 Switchover (SwitchoverRequest on an active whose peer is an alive kStandby):
//     1. DrainWrites; the node reports WritesDrained{N}.
//     2. Wait until the standby has applied N (ReplicationAcked{>= N} or a heartbeat with
//        seq >= N). No acknowledged write is lost: every write up to N is on the standby and
//        no write comes after N.
//     3. Fence, ReleaseVip, StopShipper, ReleaseLease, StartReceiver -> kStandby (or
//        kMaintenance), and heartbeats carry take_over_at_seq = N.
//     4. The standby, once it has applied N, is the candidate (R4c) and promotes through
//        the tie-breaker (the lease was released, so the witness grants it at once).
//     5. The old active clears take_over_at_seq when the peer serves, or after
//        switchover_timeout (then R4 applies as usual).
//     Steps 1-2 are abandoned (ResumeWrites) after switchover_timeout or if the standby
//     dies or stops being a follower.
//  R13 Admin requests that cannot be done now answer kRejectAdmin (switchover when not
//     active, without a caught-up standby, or while one is running).
// Every role change emits a kLog line with the reason, and a kSendHeartbeat so that the
// peer learns it at once.
//
// Driving it. The node steps ev::Start once, then ev::Tick every hb_interval and also at
// NextWakeup(), and every other event as it happens, each with the steady clock's now. It
// executes the actions in order before stepping the next event. Witness calls (RequestLease,
// ReleaseLease) go through one WitnessClient, one at a time, in the order they were given:
// a release must reach the witness before any later request, or a stale release could
// cancel a lease granted since. Each RequestLease is answered by exactly one
// WitnessEvent(request_id, result); a ReleaseLease is not answered.
//
// Timing (defaults: hb_interval 100 ms, hb_dead 5, lease 500 ms). The active renews every
// tick, so its lease ends at most lease after its last successful renewal, about when the
// standby, having heard its last heartbeat at the same time, declares it dead (500 ms). The
// standby then asks at once (NextWakeup is the death instant), and if the witness still
// counts the old lease, asks again the moment it ends (the refusal carries the remainder).
// Detection + handover is about 500-600 ms, plus the VIP: under 1 s. With hb_interval 30 ms:
// 150 ms + at most one more interval, under 300 ms. The promotion's own actions must stay
// short, since the new lease runs from the grant: a promotion after the peer's death stops
// the receiver without the goodbye (Action::peer_dead), and the node makes witness calls
// off its control loop (the answer to a renewal may take two intervals).
class RoleMachine {
 public:
  // REQUIRES: ValidateConfig(config).ok().
  explicit RoleMachine(RoleConfig config);
  RoleMachine(const RoleMachine&) = delete;
  RoleMachine& operator=(const RoleMachine&) = delete;

  // hb_interval in [10 ms, 10 s], hb_dead in [3, 100], lease in [kMinWitnessLease,
  // kMaxWitnessLease] and >= 3 * hb_interval, a node name, and a tie-breaker for a pair.
  static Status ValidateConfig(const RoleConfig& config);

  // Applies `event` at `now` and returns what the node must do, in order.
  // REQUIRES: the first event is ev::Start, and only the first. A `now` earlier than the
  // previous one is taken as the previous one.
  std::vector<Action> Step(RoleTime now, const RoleEvent& event);

  // The latest time the node must Step a Tick again (besides every hb_interval): the fence
  // deadline of an active, the end of a holder's lease we wait for, switchover timeouts.
  // RoleTime::max() if nothing is pending.
  RoleTime NextWakeup() const;

  Role role() const { return role_; }
  RoleTime since() const { return since_; }
  // Why the node has its role ("peer pbx-a dead for 512 ms and the witness granted the lease").
  const std::string& reason() const { return reason_; }
  // The epoch we serve in (active) or our store holds.
  uint64_t epoch() const { return epoch_; }
  // What our heartbeats carry (R12): != 0 while we hand over to the peer.
  uint64_t take_over_at_seq() const { return take_over_at_seq_; }
  const RoleConfig& config() const { return config_; }
  std::chrono::milliseconds dead_after() const { return dead_after_; }
  std::chrono::milliseconds lease() const { return lease_; }

  // Whether we are kActive and within the serving license (R7) at `now`. The node may gate
  // writes on it: it is false after a pause longer than the license even before the next
  // Step fences.
  bool Serving(RoleTime now) const { return role_ == Role::kActive && now < ServingUntil(); }
  // The end of the serving license (R7); RoleTime::max() for a standalone node. Meaningful
  // while kActive.
  RoleTime ServingUntil() const;

  bool peer_alive(RoleTime now) const;
  // Empty until the peer was heard.
  std::optional<RoleTime> peer_last_heard() const;
  const std::string& peer_name() const { return peer_name_; }
  Role peer_role() const { return peer_role_; }
  Position peer_position() const { return peer_position_; }
  bool peer_degraded() const { return peer_degraded_; }

  WitnessState witness_state(RoleTime now) const;
  // "none", "unknown", "held by pbx-a", "free", "unreachable".
  std::string WitnessText(RoleTime now) const;
  RoleTime lease_valid_until() const { return lease_valid_until_; }

  // For a node whose loop is busy carrying out a promotion's claim (epoch commit, VIP and
  // lines, shipper, serving; each may take a second under disk load): the RequestLease a
  // Tick would send now, if one is due (R7 renewals, witness mode, kActive), so that a slow
  // claim cannot run the lease out; its reply is stepped as usual, afterwards.
  std::optional<Action> ClaimRenewal(RoleTime now);

  // The last change into or out of kActive.
  const std::optional<RoleTransition>& last_failover() const { return last_failover_; }
  // A switchover this node runs as the active: none, draining, or awaiting the ack.
  bool switchover_running() const { return handover_ != Handover::kNone; }

 private:
  enum class Handover : uint8_t { kNone, kDraining, kAwaitingAck };

  void OnEvent(RoleTime now, const ev::Start& e, std::vector<Action>& out);
  void OnEvent(RoleTime now, const ev::Tick& e, std::vector<Action>& out);
  void OnEvent(RoleTime now, const ev::PeerHeartbeat& e, std::vector<Action>& out);
  void OnEvent(RoleTime now, const ev::WitnessReply& e, std::vector<Action>& out);
  void OnEvent(RoleTime now, const ev::WitnessUnreachable& e, std::vector<Action>& out);
  void OnEvent(RoleTime now, const ev::PingTargetResult& e, std::vector<Action>& out);
  void OnEvent(RoleTime now, const ev::SyncProgress& e, std::vector<Action>& out);
  void OnEvent(RoleTime now, const ev::ReplicationAcked& e, std::vector<Action>& out);
  void OnEvent(RoleTime now, const ev::WritesDrained& e, std::vector<Action>& out);
  void OnEvent(RoleTime now, const ev::EpochRefused& e, std::vector<Action>& out);
  void OnEvent(RoleTime now, const ev::MaintenanceOn& e, std::vector<Action>& out);
  void OnEvent(RoleTime now, const ev::MaintenanceOff& e, std::vector<Action>& out);
  void OnEvent(RoleTime now, const ev::SwitchoverRequest& e, std::vector<Action>& out);

  // What every event is followed by: the license check, peer liveness, following,
  // candidacy, renewals, switchover progress and timeouts.
  void Evaluate(RoleTime now, std::vector<Action>& out);
  // R7: fences an active whose license is about to end.
  void CheckLicense(RoleTime now, std::vector<Action>& out);
  void EvaluateCandidate(RoleTime now, std::vector<Action>& out);
  void EvaluateHandover(RoleTime now, std::vector<Action>& out);

  bool PeerServing(RoleTime now) const;
  bool Candidate(RoleTime now) const;
  bool PreferredOverPeer(RoleTime now) const;
  bool PeerIsCaughtUpStandby(RoleTime now) const;
  bool LeaseRequestDue(RoleTime now) const;
  // Why a candidate may promote now (for the reason text); `tie` names the tie-breaker.
  std::string CandidateReason(RoleTime now, std::string_view tie) const;

  bool ProbeDue(RoleTime now) const;
  void ProbePingTarget(RoleTime now, std::vector<Action>& out);
  void SetWitnessState(WitnessState state, std::string_view detail, std::vector<Action>& out);
  void RequestLease(RoleTime now, std::vector<Action>& out);
  void ReleaseLease(RoleTime now, std::vector<Action>& out);
  void Promote(RoleTime now, std::string reason, std::vector<Action>& out);
  void Fence(RoleTime now, Role to, std::string reason, std::vector<Action>& out);
  void StartHandover(RoleTime now, bool then_maintenance, std::vector<Action>& out);
  void CompleteHandover(RoleTime now, std::vector<Action>& out);
  void AbortHandover(std::string why, std::vector<Action>& out);
  void SetRole(RoleTime now, Role to, std::string reason, log::Level level,
               std::vector<Action>& out);

  const RoleConfig config_;
  const std::chrono::milliseconds dead_after_;
  const std::chrono::milliseconds lease_;

  bool started_ = false;
  RoleTime started_at_{};
  RoleTime last_now_{};
  Role role_ = Role::kStarting;
  RoleTime since_{};
  std::string reason_ = "not started";
  std::optional<RoleTransition> last_failover_;
  uint64_t epoch_ = 0;
  uint64_t local_seq_ = 0;
  RoleTime active_since_{};
  bool heartbeat_due_ = false;  // a role change to announce
  bool ticked_ = false;         // the event being stepped is a Tick

  // The peer, as its last heartbeat said.
  bool peer_heard_ = false;
  bool peer_alive_logged_ = false;  // what the last peer alive/dead log line said
  RoleTime peer_last_heard_{};
  std::string peer_name_;
  Role peer_role_ = Role::kStarting;
  Position peer_position_;
  uint64_t peer_take_over_at_seq_ = 0;
  bool peer_degraded_ = false;
  std::chrono::milliseconds peer_dead_after_{0};
  uint64_t max_peer_epoch_ = 0;
  RoleTime peer_license_until_{};

  // The witness.
  RoleTime lease_valid_until_{};
  bool lease_in_flight_ = false;
  bool lease_ever_sent_ = false;
  RoleTime lease_sent_at_{};
  RoleTime lease_retry_at_{};  // do not ask before (the holder's lease runs until then)
  uint64_t last_request_id_ = 0;
  uint64_t release_barrier_ = 0;  // replies to requests up to this id predate a release
  WitnessState witness_state_ = WitnessState::kUnknown;
  std::string witness_holder_;

  // The ping target.
  bool ping_ok_ever_ = false;
  RoleTime ping_last_ok_{};
  bool ping_ever_sent_ = false;
  RoleTime ping_sent_at_{};
  bool ping_unreachable_ = false;  // the last result

  // Switchover, as the active (R12 steps 1-3).
  Handover handover_ = Handover::kNone;
  RoleTime handover_started_{};
  uint64_t handover_seq_ = 0;
  uint64_t acked_seq_ = 0;
  bool maintenance_after_handover_ = false;
  // As the node that handed over (R12 step 5).
  uint64_t take_over_at_seq_ = 0;
  RoleTime handed_over_at_{};
};

}  // namespace pbx::cluster
