#include "node/cluster/role.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

namespace pbx::cluster {
namespace {

using std::chrono::milliseconds;

int64_t Ms(RoleClock::duration d) { return std::chrono::floor<milliseconds>(d).count(); }

Action Make(Action::Kind kind) {
  Action a;
  a.kind = kind;
  return a;
}

Action LogAction(log::Level level, std::string text) {
  Action a = Make(Action::Kind::kLog);
  a.level = level;
  a.text = std::move(text);
  return a;
}

// Renewals and probes go out once per tick; ticks jitter, so "once per tick" is measured
// with a quarter interval of slack rather than a full one.
RoleClock::duration MinSpacing(milliseconds hb_interval) { return hb_interval - hb_interval / 4; }

// How long a lease request may wait for its answer. The node runs witness calls off its
// control loop, so a slow witness costs no heartbeat; and a grant is dated from its send
// time, so an answer that takes two intervals still renews a lease of five or more.
milliseconds WitnessTimeout(milliseconds hb_interval) { return hb_interval * 2; }

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kStarting:
      return "starting";
    case Role::kSyncing:
      return "syncing";
    case Role::kStandby:
      return "standby";
    case Role::kActive:
      return "active";
    case Role::kIsolated:
      return "isolated";
    case Role::kMaintenance:
      return "maintenance";
  }
  return "?";
}

std::string_view ActionName(Action::Kind kind) {
  using K = Action::Kind;
  switch (kind) {
    case K::kLog:
      return "Log";
    case K::kSendHeartbeat:
      return "SendHeartbeat";
    case K::kRequestLease:
      return "RequestLease";
    case K::kReleaseLease:
      return "ReleaseLease";
    case K::kProbePingTarget:
      return "ProbePingTarget";
    case K::kBumpEpoch:
      return "BumpEpoch";
    case K::kAcquireVip:
      return "AcquireVip";
    case K::kReleaseVip:
      return "ReleaseVip";
    case K::kStartShipper:
      return "StartShipper";
    case K::kStopShipper:
      return "StopShipper";
    case K::kStartReceiver:
      return "StartReceiver";
    case K::kStopReceiver:
      return "StopReceiver";
    case K::kStartServing:
      return "StartServing";
    case K::kFence:
      return "Fence";
    case K::kDrainWrites:
      return "DrainWrites";
    case K::kResumeWrites:
      return "ResumeWrites";
    case K::kRejectAdmin:
      return "RejectAdmin";
  }
  return "?";
}

RoleEvent WitnessEvent(uint64_t request_id, const Result<LeaseReply>& reply) {
  if (!reply.ok()) return ev::WitnessUnreachable{request_id, reply.status().ToString()};
  ev::WitnessReply e;
  e.request_id = request_id;
  e.granted = reply->granted;
  e.holder = reply->holder;
  e.lease_valid_until = reply->lease_valid_until;
  e.remaining = milliseconds(reply->remaining_ms);
  return e;
}

Status RoleMachine::ValidateConfig(const RoleConfig& config) {
  if (config.node_name.empty()) return Status::InvalidArgument("the node needs a name");
  if (config.hb_interval < milliseconds(10) || config.hb_interval > milliseconds(10'000)) {
    return Status::InvalidArgument(
        fmt::format("heartbeat interval {} ms is outside [10, 10000]", config.hb_interval.count()));
  }
  if (config.hb_dead < 3 || config.hb_dead > 100) {
    return Status::InvalidArgument(
        fmt::format("hb_dead {} is outside [3, 100] intervals", config.hb_dead));
  }
  if (config.switchover_timeout < config.hb_interval * 3) {
    return Status::InvalidArgument("the switchover timeout must be at least 3 heartbeat intervals");
  }
  if (!config.has_peer) return Status::Ok();
  if (config.tie_breaker == TieBreaker::kNone) {
    return Status::InvalidArgument(
        "a pair needs a tie-breaker: a witness or a ping target (without one, a cut "
        "replication link would make both nodes active)");
  }
  const milliseconds lease =
      config.lease.count() != 0 ? config.lease : config.hb_interval * config.hb_dead;
  if (config.tie_breaker == TieBreaker::kWitness) {
    if (lease < kMinWitnessLease || lease > kMaxWitnessLease) {
      return Status::InvalidArgument(fmt::format("lease {} ms is outside [{}, {}]", lease.count(),
                                                 kMinWitnessLease.count(),
                                                 kMaxWitnessLease.count()));
    }
    // Renewed every interval and given up one interval before its end: with less than three
    // intervals a single late reply would fence a healthy active.
    if (lease < config.hb_interval * 3) {
      return Status::InvalidArgument(
          fmt::format("lease {} ms is shorter than 3 heartbeat intervals", lease.count()));
    }
  }
  return Status::Ok();
}

RoleMachine::RoleMachine(RoleConfig config)
    : config_(std::move(config)),
      dead_after_(config_.hb_interval * config_.hb_dead),
      lease_(config_.lease.count() != 0 ? config_.lease : dead_after_) {
  PBX_CHECK(ValidateConfig(config_).ok());
  if (!config_.has_peer || config_.tie_breaker != TieBreaker::kWitness) {
    witness_state_ = WitnessState::kNotConfigured;
  }
}

std::vector<Action> RoleMachine::Step(RoleTime now, const RoleEvent& event) {
  PBX_CHECK(started_ != std::holds_alternative<ev::Start>(event));
  if (now < last_now_) now = last_now_;
  last_now_ = now;
  std::vector<Action> out;
  // A grant counts before the license check: dated from its send (WitnessClient), it says
  // how long the lease runs even when stepped late (the renewals of a slow claim, R7).
  if (const auto* reply = std::get_if<ev::WitnessReply>(&event);
      reply && reply->granted && reply->request_id > release_barrier_) {
    lease_valid_until_ = std::max(lease_valid_until_, reply->lease_valid_until);
  }
  // Before anything else: a node back from a long pause must not act on a lapsed license.
  if (started_) CheckLicense(now, out);
  std::visit([&](const auto& e) { OnEvent(now, e, out); }, event);
  Evaluate(now, out);
  return out;
}

// ---------------------------------------------------------------------------------------
// Queries.

RoleTime RoleMachine::ServingUntil() const {
  if (!config_.has_peer) return RoleTime::max();
  RoleTime until = peer_license_until_;
  if (config_.tie_breaker == TieBreaker::kWitness) until = std::max(until, lease_valid_until_);
  if (config_.tie_breaker == TieBreaker::kPingTarget && ping_ok_ever_) {
    until = std::max(until, ping_last_ok_ + dead_after_);
  }
  return until;
}

bool RoleMachine::peer_alive(RoleTime now) const {
  return peer_heard_ && now - peer_last_heard_ < dead_after_;
}

std::optional<RoleTime> RoleMachine::peer_last_heard() const {
  if (!peer_heard_) return std::nullopt;
  return peer_last_heard_;
}

WitnessState RoleMachine::witness_state(RoleTime now) const {
  if (witness_state_ == WitnessState::kHeldByUs && lease_valid_until_ <= now) {
    return WitnessState::kFree;
  }
  return witness_state_;
}

std::string RoleMachine::WitnessText(RoleTime now) const {
  switch (witness_state(now)) {
    case WitnessState::kNotConfigured:
      return "none";
    case WitnessState::kUnknown:
      return "unknown";
    case WitnessState::kHeldByUs:
      return "held by " + config_.node_name;
    case WitnessState::kHeldByPeer:
      return "held by " + witness_holder_;
    case WitnessState::kFree:
      return "free";
    case WitnessState::kUnreachable:
      return "unreachable";
  }
  return "?";
}

RoleTime RoleMachine::NextWakeup() const {
  RoleTime t = RoleTime::max();
  if (!started_ || !config_.has_peer) return t;
  if (role_ == Role::kActive) t = std::min(t, ServingUntil() - config_.hb_interval);
  if (peer_alive(last_now_)) t = std::min(t, peer_last_heard_ + dead_after_);
  if (role_ == Role::kStarting && last_now_ < started_at_ + dead_after_) {
    t = std::min(t, started_at_ + dead_after_);
  }
  if (lease_retry_at_ > last_now_) t = std::min(t, lease_retry_at_);
  if (handover_ != Handover::kNone) t = std::min(t, handover_started_ + config_.switchover_timeout);
  if (take_over_at_seq_ != 0) t = std::min(t, handed_over_at_ + config_.switchover_timeout);
  return t;
}

bool RoleMachine::PeerServing(RoleTime now) const {
  return peer_alive(now) && peer_role_ == Role::kActive;
}

bool RoleMachine::PeerIsCaughtUpStandby(RoleTime now) const {
  return peer_alive(now) && peer_role_ == Role::kStandby;
}

bool RoleMachine::Candidate(RoleTime now) const {
  if (!config_.has_peer || PeerServing(now)) return false;
  const bool designated = peer_alive(now) && peer_take_over_at_seq_ != 0 &&
                          local_seq_ >= peer_take_over_at_seq_ && take_over_at_seq_ == 0;
  switch (role_) {
    case Role::kStandby:
    case Role::kIsolated:
      break;
    case Role::kStarting:
      if (now - started_at_ < dead_after_) return false;
      break;
    case Role::kSyncing:
      if (!designated) return false;
      break;
    case Role::kActive:
    case Role::kMaintenance:
      return false;
  }
  return PreferredOverPeer(now);
}

bool RoleMachine::PreferredOverPeer(RoleTime now) const {
  if (!peer_alive(now)) return true;
  if (take_over_at_seq_ != 0) return false;
  if (peer_take_over_at_seq_ != 0) return local_seq_ >= peer_take_over_at_seq_;
  if (peer_role_ == Role::kSyncing || peer_role_ == Role::kMaintenance) return true;
  const Position ours{epoch_, local_seq_};
  if (ours != peer_position_) return ours > peer_position_;
  return config_.node_name < peer_name_;
}

std::string RoleMachine::CandidateReason(RoleTime now, std::string_view tie) const {
  if (!peer_heard_) {
    return fmt::format("no peer heard for {} ms and {}", Ms(now - started_at_), tie);
  }
  if (!peer_alive(now)) {
    return fmt::format("peer {} dead for {} ms and {}", peer_name_, Ms(now - peer_last_heard_),
                       tie);
  }
  if (peer_take_over_at_seq_ != 0) {
    return fmt::format("switchover: {} handed over at seq {} and {}", peer_name_,
                       peer_take_over_at_seq_, tie);
  }
  return fmt::format("peer {} is {} at epoch {} seq {}, we are at epoch {} seq {}, and {}",
                     peer_name_, RoleName(peer_role_), peer_position_.epoch, peer_position_.seq,
                     epoch_, local_seq_, tie);
}

bool RoleMachine::LeaseRequestDue(RoleTime now) const {
  if (lease_in_flight_ && now - lease_sent_at_ < WitnessTimeout(config_.hb_interval)) {
    return false;
  }
  if (lease_retry_at_ != RoleTime{}) return now >= lease_retry_at_;
  return !lease_ever_sent_ || now - lease_sent_at_ >= MinSpacing(config_.hb_interval);
}

bool RoleMachine::ProbeDue(RoleTime now) const {
  return !ping_ever_sent_ || now - ping_sent_at_ >= MinSpacing(config_.hb_interval);
}

// ---------------------------------------------------------------------------------------
// Events.

void RoleMachine::OnEvent(RoleTime now, const ev::Start& e, std::vector<Action>& out) {
  started_ = true;
  started_at_ = now;
  since_ = now;
  epoch_ = e.local.epoch;
  local_seq_ = e.local.seq;
  reason_ = "started";
  out.push_back(
      LogAction(log::Level::kInfo, fmt::format("started at epoch {} seq {}", epoch_, local_seq_)));
  if (!config_.has_peer) {
    Promote(now, "standalone: no peer configured", out);
    return;
  }
  reason_ = fmt::format("listening for the peer for {} ms", dead_after_.count());
  heartbeat_due_ = true;
}

void RoleMachine::OnEvent(RoleTime, const ev::Tick& e, std::vector<Action>&) {
  epoch_ = std::max(epoch_, e.local.epoch);
  local_seq_ = e.local.seq;
  ticked_ = true;
}

void RoleMachine::OnEvent(RoleTime now, const ev::PeerHeartbeat& e, std::vector<Action>& out) {
  if (!config_.has_peer) return;
  const bool was_active = peer_alive(now) && peer_role_ == Role::kActive;
  peer_heard_ = true;
  peer_last_heard_ = now;
  peer_name_ = e.node_name;
  peer_role_ = e.role;
  peer_position_ = e.position;
  peer_take_over_at_seq_ = e.take_over_at_seq;
  peer_degraded_ = e.degraded;
  peer_dead_after_ = e.dead_after;
  max_peer_epoch_ = std::max(max_peer_epoch_, e.position.epoch);

  if (role_ != Role::kActive) return;
  // R7: a peer that is not active echoed a heartbeat we sent while active.
  if (e.role != Role::kActive && e.echo >= active_since_ && e.echo <= now) {
    milliseconds d = dead_after_;
    if (e.dead_after.count() > 0) d = std::min(d, e.dead_after);
    peer_license_until_ = std::max(peer_license_until_, e.echo + d);
  }
  // R9.
  if (e.position.epoch > epoch_) {
    Fence(now, e.role == Role::kActive ? Role::kSyncing : Role::kIsolated,
          fmt::format("peer {} is {} in the newer epoch {} (ours {})", e.node_name,
                      RoleName(e.role), e.position.epoch, epoch_),
          out);
  } else if (e.role == Role::kActive && e.position.epoch == epoch_) {
    const bool keep = config_.tie_breaker == TieBreaker::kWitness ? lease_valid_until_ > now
                                                                  : config_.node_name < e.node_name;
    if (keep) {
      if (!was_active) {
        out.push_back(
            LogAction(log::Level::kWarn,
                      fmt::format("peer {} claims to be active in our epoch {}; we "
                                  "hold the {} and stay active",
                                  e.node_name, epoch_,
                                  config_.tie_breaker == TieBreaker::kWitness ? "witness lease"
                                                                              : "smaller name")));
      }
    } else {
      Fence(
          now, Role::kSyncing,
          fmt::format("peer {} is active in the same epoch {} and {}", e.node_name, epoch_,
                      config_.tie_breaker == TieBreaker::kWitness ? "we hold no valid witness lease"
                                                                  : "has the smaller name"),
          out);
    }
  } else if (e.role == Role::kActive && !was_active) {
    out.push_back(LogAction(log::Level::kWarn,
                            fmt::format("peer {} claims to be active in the older epoch {} (ours "
                                        "{}): it is stale and will fence",
                                        e.node_name, e.position.epoch, epoch_)));
  }
}

void RoleMachine::OnEvent(RoleTime now, const ev::WitnessReply& e, std::vector<Action>& out) {
  if (e.request_id == last_request_id_) lease_in_flight_ = false;
  if (e.granted) {
    // A grant for a request sent before we released is not ours any more (R5).
    if (e.request_id <= release_barrier_) return;
    SetWitnessState(WitnessState::kHeldByUs, {}, out);
    witness_holder_ = config_.node_name;
    lease_valid_until_ = std::max(lease_valid_until_, e.lease_valid_until);
    lease_retry_at_ = {};
    return;  // promotion, or release of an unwanted grant, is decided by Evaluate
  }
  witness_holder_ = e.holder;
  SetWitnessState(e.holder.empty() ? WitnessState::kFree : WitnessState::kHeldByPeer, {}, out);
  if (e.holder.empty() || e.holder == config_.node_name) return;
  if (role_ == Role::kActive) {
    Fence(now, Role::kIsolated, fmt::format("the witness says {} holds the lease", e.holder), out);
  }
  // Asking again before the holder's lease ends is pointless while the peer is dead. A peer
  // that is alive may be about to release (switchover): ask again on the next tick.
  if (!peer_alive(now)) lease_retry_at_ = now + e.remaining;
}

void RoleMachine::OnEvent(RoleTime, const ev::WitnessUnreachable& e, std::vector<Action>& out) {
  if (e.request_id == last_request_id_) lease_in_flight_ = false;
  SetWitnessState(WitnessState::kUnreachable, e.why, out);
}

void RoleMachine::OnEvent(RoleTime now, const ev::PingTargetResult& e, std::vector<Action>& out) {
  if (e.reachable) {
    ping_ok_ever_ = true;
    ping_last_ok_ = now;
  }
  if (ping_unreachable_ != !e.reachable) {
    ping_unreachable_ = !e.reachable;
    out.push_back(LogAction(e.reachable ? log::Level::kInfo : log::Level::kWarn,
                            e.reachable ? "ping target reachable" : "ping target unreachable"));
  }
}

void RoleMachine::OnEvent(RoleTime now, const ev::SyncProgress& e, std::vector<Action>& out) {
  if (role_ != Role::kSyncing && role_ != Role::kStandby) return;
  local_seq_ = e.applied_seq;
  if (role_ == Role::kSyncing && e.caught_up) {
    SetRole(now, Role::kStandby,
            fmt::format("caught up with {} at seq {}", peer_name_, e.applied_seq),
            log::Level::kInfo, out);
  } else if (role_ == Role::kStandby && !e.caught_up && PeerServing(now)) {
    SetRole(now, Role::kSyncing,
            fmt::format("fell behind {}: applied seq {}, the active is at seq {}", peer_name_,
                        e.applied_seq, peer_position_.seq),
            log::Level::kWarn, out);
  }
}

void RoleMachine::OnEvent(RoleTime, const ev::ReplicationAcked& e, std::vector<Action>&) {
  acked_seq_ = std::max(acked_seq_, e.seq);
}

void RoleMachine::OnEvent(RoleTime, const ev::WritesDrained& e, std::vector<Action>& out) {
  if (handover_ != Handover::kDraining) return;
  handover_ = Handover::kAwaitingAck;
  handover_seq_ = e.last_seq;
  out.push_back(LogAction(log::Level::kInfo,
                          fmt::format("switchover: writes drained at seq {}, waiting for {} to "
                                      "apply it",
                                      e.last_seq, peer_name_)));
}

void RoleMachine::OnEvent(RoleTime now, const ev::EpochRefused& e, std::vector<Action>& out) {
  max_peer_epoch_ = std::max(max_peer_epoch_, e.peer_epoch);
  if (role_ == Role::kActive && e.peer_epoch > epoch_) {
    Fence(now, PeerServing(now) ? Role::kSyncing : Role::kIsolated,
          fmt::format("replication refused: the peer is in the newer epoch {} (ours {})",
                      e.peer_epoch, epoch_),
          out);
    return;
  }
  out.push_back(LogAction(log::Level::kWarn,
                          fmt::format("replication refused over epochs: the peer is at {}, "
                                      "we are at {} ({})",
                                      e.peer_epoch, epoch_, RoleName(role_))));
}

void RoleMachine::OnEvent(RoleTime now, const ev::MaintenanceOn& e, std::vector<Action>& out) {
  switch (role_) {
    case Role::kMaintenance:
      return;
    case Role::kActive:
      if (handover_ != Handover::kNone) {
        maintenance_after_handover_ = true;
        out.push_back(LogAction(log::Level::kInfo,
                                "maintenance: entering it once the running switchover is done"));
      } else if (config_.has_peer && PeerIsCaughtUpStandby(now)) {
        StartHandover(now, /*then_maintenance=*/true, out);
      } else if (e.force) {
        Fence(now, Role::kMaintenance,
              "maintenance forced without a caught-up standby: nothing serves", out);
      } else {
        Action a = Make(Action::Kind::kRejectAdmin);
        a.text =
            "no caught-up standby to hand over to; maintenance now would stop the service "
            "(force it to do so anyway)";
        out.push_back(std::move(a));
      }
      return;
    case Role::kSyncing:
    case Role::kStandby:
      out.push_back(Make(Action::Kind::kStopReceiver));
      [[fallthrough]];
    case Role::kStarting:
    case Role::kIsolated:
      take_over_at_seq_ = 0;
      SetRole(now, Role::kMaintenance, "maintenance requested", log::Level::kInfo, out);
      return;
  }
}

void RoleMachine::OnEvent(RoleTime now, const ev::MaintenanceOff&, std::vector<Action>& out) {
  if (role_ != Role::kMaintenance) {
    Action a = Make(Action::Kind::kRejectAdmin);
    a.text = fmt::format("not in maintenance (role {})", RoleName(role_));
    out.push_back(std::move(a));
    return;
  }
  if (!config_.has_peer) {
    Promote(now, "maintenance ended (standalone)", out);
  } else if (PeerServing(now)) {
    out.push_back(Make(Action::Kind::kStartReceiver));
    SetRole(now, Role::kSyncing, fmt::format("maintenance ended; following {}", peer_name_),
            log::Level::kInfo, out);
  } else {
    SetRole(now, Role::kStarting, "maintenance ended; no active peer", log::Level::kInfo, out);
  }
}

void RoleMachine::OnEvent(RoleTime now, const ev::SwitchoverRequest&, std::vector<Action>& out) {
  std::string why;
  if (role_ != Role::kActive) {
    why = fmt::format("only the active node hands over (this one is {})", RoleName(role_));
  } else if (!config_.has_peer) {
    why = "no peer configured";
  } else if (handover_ != Handover::kNone) {
    why = "a switchover is already running";
  } else if (!PeerIsCaughtUpStandby(now)) {
    why = peer_alive(now) ? fmt::format("peer {} is {}, not a caught-up standby", peer_name_,
                                        RoleName(peer_role_))
                          : "the peer is not alive";
  }
  if (!why.empty()) {
    Action a = Make(Action::Kind::kRejectAdmin);
    a.text = std::move(why);
    out.push_back(std::move(a));
    return;
  }
  StartHandover(now, /*then_maintenance=*/false, out);
}

// ---------------------------------------------------------------------------------------
// Evaluation after every event.

void RoleMachine::Evaluate(RoleTime now, std::vector<Action>& out) {
  if (!config_.has_peer) {
    heartbeat_due_ = ticked_ = false;  // nobody to send heartbeats to
    return;
  }
  CheckLicense(now, out);

  const bool alive = peer_alive(now);
  if (alive != peer_alive_logged_) {
    peer_alive_logged_ = alive;
    out.push_back(
        alive ? LogAction(log::Level::kInfo, fmt::format("peer {} is alive ({}, epoch {}, seq {})",
                                                         peer_name_, RoleName(peer_role_),
                                                         peer_position_.epoch, peer_position_.seq))
              : LogAction(log::Level::kWarn, fmt::format("peer {} is dead: no heartbeat for {} ms",
                                                         peer_name_, Ms(now - peer_last_heard_))));
  }

  // R2: follow a serving peer that is not from an older epoch.
  if ((role_ == Role::kStarting || role_ == Role::kIsolated) && PeerServing(now) &&
      peer_position_.epoch >= epoch_) {
    out.push_back(Make(Action::Kind::kStartReceiver));
    SetRole(now, Role::kSyncing,
            fmt::format("following the active {} (epoch {})", peer_name_, peer_position_.epoch),
            log::Level::kInfo, out);
  }

  EvaluateHandover(now, out);
  EvaluateCandidate(now, out);

  // A grant we cannot use blocks the peer (R5): give it back.
  if (role_ != Role::kActive && lease_valid_until_ > now) ReleaseLease(now, out);

  // R7: an active renews its lease, or refreshes its ping, every tick (and only on ticks,
  // so that the cadence does not depend on how many other events come in).
  if (role_ == Role::kActive && ticked_) {
    if (config_.tie_breaker == TieBreaker::kWitness && LeaseRequestDue(now)) {
      RequestLease(now, out);
    }
    if (config_.tie_breaker == TieBreaker::kPingTarget && ProbeDue(now)) {
      ProbePingTarget(now, out);
    }
  }

  if (heartbeat_due_ || ticked_) out.push_back(Make(Action::Kind::kSendHeartbeat));
  heartbeat_due_ = false;
  ticked_ = false;
}

void RoleMachine::CheckLicense(RoleTime now, std::vector<Action>& out) {
  if (role_ != Role::kActive || !config_.has_peer) return;
  const RoleTime until = ServingUntil();
  if (now + config_.hb_interval < until) return;
  const std::string tie = config_.tie_breaker == TieBreaker::kWitness
                              ? "witness " + WitnessText(now)
                              : (ping_unreachable_ ? "ping target unreachable"
                                                   : "no recent reply from the ping target");
  const std::string peer =
      peer_alive(now) ? fmt::format("peer {} not confirming us", peer_name_)
      : peer_heard_ ? fmt::format("peer {} dead for {} ms", peer_name_, Ms(now - peer_last_heard_))
                    : std::string("no peer heard");
  const std::string when = until > now
                               ? fmt::format("serving license ends in {} ms", Ms(until - now))
                               : fmt::format("serving license ended {} ms ago", Ms(now - until));
  Fence(now, Role::kIsolated, fmt::format("{}: {}, {}", when, tie, peer), out);
}

void RoleMachine::EvaluateCandidate(RoleTime now, std::vector<Action>& out) {
  if (!Candidate(now)) {
    return;
  }
  if (config_.tie_breaker == TieBreaker::kWitness) {
    if (lease_valid_until_ > now + config_.hb_interval) {
      Promote(now, CandidateReason(now, "the witness granted the lease"), out);
      return;
    }
    if (LeaseRequestDue(now)) RequestLease(now, out);
  } else {
    if (ping_ok_ever_ && now - ping_last_ok_ < config_.hb_interval) {
      Promote(now, CandidateReason(now, "the ping target is reachable"), out);
      return;
    }
    if (ProbeDue(now)) ProbePingTarget(now, out);
  }
  // R6: alone, and the tie-breaker cannot be reached either.
  const bool tie_unreachable = config_.tie_breaker == TieBreaker::kWitness
                                   ? witness_state_ == WitnessState::kUnreachable
                                   : ping_unreachable_;
  if (role_ == Role::kStarting && !peer_alive(now) && tie_unreachable) {
    SetRole(now, Role::kIsolated,
            fmt::format("{} and the {} is unreachable",
                        peer_heard_ ? fmt::format("peer {} dead for {} ms", peer_name_,
                                                  Ms(now - peer_last_heard_))
                                    : fmt::format("no peer heard for {} ms", Ms(now - started_at_)),
                        config_.tie_breaker == TieBreaker::kWitness ? "witness" : "ping target"),
            log::Level::kWarn, out);
  }
}

void RoleMachine::EvaluateHandover(RoleTime now, std::vector<Action>& out) {
  if (handover_ != Handover::kNone) {
    if (role_ != Role::kActive) {
      handover_ = Handover::kNone;
    } else if (!peer_alive(now) || (peer_role_ != Role::kStandby && peer_role_ != Role::kSyncing)) {
      AbortHandover(peer_alive(now)
                        ? fmt::format("peer {} became {}", peer_name_, RoleName(peer_role_))
                        : fmt::format("peer {} died", peer_name_),
                    out);
    } else if (now - handover_started_ >= config_.switchover_timeout) {
      AbortHandover(
          handover_ == Handover::kDraining
              ? fmt::format("writes not drained within {} ms", config_.switchover_timeout.count())
              : fmt::format("{} did not apply seq {} within {} ms", peer_name_, handover_seq_,
                            config_.switchover_timeout.count()),
          out);
    } else if (handover_ == Handover::kAwaitingAck &&
               (acked_seq_ >= handover_seq_ ||
                (peer_position_.epoch == epoch_ && peer_position_.seq >= handover_seq_))) {
      CompleteHandover(now, out);
    }
  }
  if (take_over_at_seq_ != 0) {
    if (PeerServing(now)) {
      out.push_back(LogAction(log::Level::kInfo,
                              fmt::format("switchover: {} took over (epoch {}) after seq {}",
                                          peer_name_, peer_position_.epoch, take_over_at_seq_)));
      take_over_at_seq_ = 0;
      heartbeat_due_ = true;
    } else if (now - handed_over_at_ >= config_.switchover_timeout) {
      out.push_back(LogAction(
          log::Level::kWarn,
          fmt::format("switchover: {} did not take over within {} ms; the normal rules decide",
                      peer_name_, config_.switchover_timeout.count())));
      take_over_at_seq_ = 0;
      heartbeat_due_ = true;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Doing things.

void RoleMachine::SetWitnessState(WitnessState state, std::string_view detail,
                                  std::vector<Action>& out) {
  const bool was_unreachable = witness_state_ == WitnessState::kUnreachable;
  const bool unreachable = state == WitnessState::kUnreachable;
  witness_state_ = state;
  if (unreachable && !was_unreachable) {
    out.push_back(LogAction(log::Level::kWarn, fmt::format("witness unreachable: {}", detail)));
  } else if (!unreachable && was_unreachable) {
    out.push_back(LogAction(log::Level::kInfo, "witness reachable again"));
  }
}

void RoleMachine::RequestLease(RoleTime now, std::vector<Action>& out) {
  Action a = Make(Action::Kind::kRequestLease);
  a.lease = lease_;
  a.timeout = WitnessTimeout(config_.hb_interval);
  a.epoch = epoch_;
  a.request_id = ++last_request_id_;
  out.push_back(std::move(a));
  lease_in_flight_ = true;
  lease_ever_sent_ = true;
  lease_sent_at_ = now;
  lease_retry_at_ = {};
}

std::optional<Action> RoleMachine::ClaimRenewal(RoleTime now) {
  if (now < last_now_) now = last_now_;
  if (role_ != Role::kActive || config_.tie_breaker != TieBreaker::kWitness ||
      !LeaseRequestDue(now)) {
    return std::nullopt;
  }
  std::vector<Action> out;
  RequestLease(now, out);
  return std::move(out.front());
}

void RoleMachine::ReleaseLease(RoleTime, std::vector<Action>& out) {
  out.push_back(Make(Action::Kind::kReleaseLease));
  lease_valid_until_ = {};
  release_barrier_ = last_request_id_;
  witness_holder_.clear();
  if (witness_state_ == WitnessState::kHeldByUs) witness_state_ = WitnessState::kFree;
}

void RoleMachine::ProbePingTarget(RoleTime now, std::vector<Action>& out) {
  out.push_back(Make(Action::Kind::kProbePingTarget));
  ping_ever_sent_ = true;
  ping_sent_at_ = now;
}

void RoleMachine::Promote(RoleTime now, std::string reason, std::vector<Action>& out) {
  if (role_ == Role::kSyncing || role_ == Role::kStandby) {
    // Before the epoch is written: a late batch of the old active must not land after it.
    Action stop = Make(Action::Kind::kStopReceiver);
    stop.peer_dead = config_.has_peer && !peer_alive(now);
    out.push_back(std::move(stop));
  }
  // Above every epoch anyone has used that we know of, so that replication refuses the
  // history of any node that served before us.
  epoch_ = std::max(epoch_, max_peer_epoch_) + 1;
  Action bump = Make(Action::Kind::kBumpEpoch);
  bump.epoch = epoch_;
  out.push_back(std::move(bump));
  out.push_back(Make(Action::Kind::kAcquireVip));
  if (config_.has_peer) out.push_back(Make(Action::Kind::kStartShipper));
  out.push_back(Make(Action::Kind::kStartServing));
  active_since_ = now;
  peer_license_until_ = {};
  acked_seq_ = 0;
  handover_ = Handover::kNone;
  maintenance_after_handover_ = false;
  take_over_at_seq_ = 0;
  lease_retry_at_ = {};
  SetRole(now, Role::kActive, std::move(reason), log::Level::kInfo, out);
}

void RoleMachine::Fence(RoleTime now, Role to, std::string reason, std::vector<Action>& out) {
  PBX_CHECK(role_ == Role::kActive && to != Role::kActive);
  Action fence = Make(Action::Kind::kFence);
  fence.text = reason;
  out.push_back(std::move(fence));
  out.push_back(Make(Action::Kind::kReleaseVip));
  if (config_.has_peer) out.push_back(Make(Action::Kind::kStopShipper));
  if (config_.tie_breaker == TieBreaker::kWitness && lease_valid_until_ > now) {
    ReleaseLease(now, out);
  }
  lease_valid_until_ = {};
  peer_license_until_ = {};
  handover_ = Handover::kNone;
  if (to == Role::kSyncing || to == Role::kStandby) {
    out.push_back(Make(Action::Kind::kStartReceiver));
  }
  const bool planned = take_over_at_seq_ != 0 || to == Role::kMaintenance;
  SetRole(now, to, std::move(reason), planned ? log::Level::kInfo : log::Level::kWarn, out);
}

void RoleMachine::StartHandover(RoleTime now, bool then_maintenance, std::vector<Action>& out) {
  handover_ = Handover::kDraining;
  handover_started_ = now;
  handover_seq_ = 0;
  maintenance_after_handover_ = then_maintenance;
  out.push_back(Make(Action::Kind::kDrainWrites));
  out.push_back(LogAction(log::Level::kInfo,
                          fmt::format("switchover to {} started{}: draining writes", peer_name_,
                                      then_maintenance ? " (then maintenance)" : "")));
}

void RoleMachine::CompleteHandover(RoleTime now, std::vector<Action>& out) {
  const uint64_t seq = handover_seq_;
  const bool maintenance = maintenance_after_handover_;
  handover_ = Handover::kNone;
  maintenance_after_handover_ = false;
  // Set first: Fence logs a planned hand-over at info level, and the heartbeat that Fence's
  // role change triggers already carries it.
  take_over_at_seq_ = seq;
  handed_over_at_ = now;
  Fence(now, maintenance ? Role::kMaintenance : Role::kStandby,
        fmt::format("switchover: {} has applied seq {}; handing over{}", peer_name_, seq,
                    maintenance ? " and entering maintenance" : ""),
        out);
}

void RoleMachine::AbortHandover(std::string why, std::vector<Action>& out) {
  handover_ = Handover::kNone;
  const bool maintenance = maintenance_after_handover_;
  maintenance_after_handover_ = false;
  out.push_back(Make(Action::Kind::kResumeWrites));
  out.push_back(LogAction(log::Level::kWarn,
                          fmt::format("switchover abandoned{}: {}; accepting writes again",
                                      maintenance ? " (maintenance not entered)" : "", why)));
}

void RoleMachine::SetRole(RoleTime now, Role to, std::string reason, log::Level level,
                          std::vector<Action>& out) {
  RoleTransition t{now, role_, to, reason};
  out.push_back(
      LogAction(level, fmt::format("role {} -> {}: {}", RoleName(role_), RoleName(to), reason)));
  if (role_ == Role::kActive || to == Role::kActive) last_failover_ = t;
  role_ = to;
  since_ = now;
  reason_ = std::move(reason);
  heartbeat_due_ = true;
}

}  // namespace pbx::cluster
