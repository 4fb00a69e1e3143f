#include "node/main/cluster_controller.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <iterator>
#include <mutex>
#include <optional>
#include <thread>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/ip_icmp.h>
#include <sys/socket.h>

#include "node/cluster/heartbeat.h"
#include "node/cluster/role.h"
#include "node/cluster/vip.h"
#include "node/cluster/witness_client.h"
#include "node/core/log.h"
#include "replication/ship/log_receiver.h"
#include "replication/ship/log_shipper.h"
#include "replication/store/repos.h"

namespace pbx::node {
namespace {

using cluster::Action;
using cluster::RoleClock;
using cluster::RoleEvent;
using cluster::RoleTime;
using namespace std::chrono_literals;

// A new replicated DB's seq: its first batch holds the column-family map (wal.h).
constexpr uint64_t kFreshDbSeq = 1;
// A follower within this many sequence numbers of the active counts as caught up.
constexpr uint64_t kCaughtUpSeqs = 64;

std::string TcpUrl(const std::string& host, int port) {
  return host.find(':') != std::string::npos ? fmt::format("tcp://[{}]:{}", host, port)
                                             : fmt::format("tcp://{}:{}", host, port);
}

int64_t UnixNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Best-effort ICMP echo to the ping target (the tie-breaker without a witness): each probe
// sends one echo request and reports whether a reply to the previous one came back.
class PingProbe {
 public:
  explicit PingProbe(const std::string& target) {
    fd_ = ::socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
    addr_.sin_family = AF_INET;
    ok_ = fd_ >= 0 && inet_pton(AF_INET, target.c_str(), &addr_.sin_addr) == 1;
    if (!ok_) PBX_LOG(kWarn, "cluster", "ping target {} cannot be probed", target);
  }
  ~PingProbe() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool Probe() {
    if (!ok_) return false;
    bool replied = false;
    char buf[1500];
    ssize_t n;
    while ((n = ::recv(fd_, buf, sizeof buf, 0)) > 0) {
      size_t ihl = static_cast<size_t>(buf[0] & 0x0f) * 4;
      if (static_cast<size_t>(n) < ihl + sizeof(icmphdr)) continue;
      const auto* icmp = reinterpret_cast<const icmphdr*>(buf + ihl);
      if (icmp->type == ICMP_ECHOREPLY && icmp->un.echo.id == htons(kId) &&
          ntohs(icmp->un.echo.sequence) == seq_) {
        replied = true;
      }
    }
    icmphdr req{};
    req.type = ICMP_ECHO;
    req.un.echo.id = htons(kId);
    req.un.echo.sequence = htons(++seq_);
    req.checksum = Checksum(&req, sizeof req);
    ::sendto(fd_, &req, sizeof req, 0, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_);
    return replied;
  }

 private:
  static constexpr uint16_t kId = 0x7062;
  static uint16_t Checksum(const void* data, size_t len) {
    const auto* p = static_cast<const uint16_t*>(data);
    uint32_t sum = 0;
    for (; len > 1; len -= 2) sum += *p++;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
  }
  int fd_ = -1;
  bool ok_ = false;
  uint16_t seq_ = 0;
  sockaddr_in addr_{};
};

class ClusterControllerImpl final : public ClusterController {
 public:
  ClusterControllerImpl(const BootstrapConfig& config, store::ReplicatedDb& db,
                        store::LocalStore& local, WriteGate& gate, ServingHook on_serving,
                        cluster::RoleConfig role_config, hal::LineSwitch* lines)
      : config_(config),
        cl_(*config.cluster),
        db_(db),
        local_(local),
        gate_(gate),
        on_serving_(std::move(on_serving)),
        machine_(std::move(role_config)),
        lines_(lines) {}

  ~ClusterControllerImpl() override { Stop(); }

  pbx::Status Init() {
    // Writes made outside any epoch of a pair (the DB served a standalone node): the peer
    // never saw them, so the first time this node follows it must take a checkpoint.
    if (db_.LatestSeq() > kFreshDbSeq && LocalPosition().epoch == 0) {
      MarkWasActive("the store has writes from outside the pair");
    }
    cluster::HeartbeatLink::Options hb;
    hb.on_heartbeat = [this](const cluster::ReceivedHeartbeat& h) {
      Post(cluster::ToPeerHeartbeat(h), nullptr);
    };
    link_ = std::make_unique<cluster::HeartbeatLink>(std::move(hb));
    PBX_TRY(link_->Start(TcpUrl(cl_.listen.host, cl_.listen.port + 1),
                         TcpUrl(cl_.peer.host, cl_.peer.port + 1), cl_.name, config_.node_name));
    if (cl_.witness) {
      PBX_ASSIGN_OR_RETURN(
          witness_, cluster::WitnessClient::Connect(TcpUrl(cl_.witness->host, cl_.witness->port)));
    } else if (cl_.ping_target) {
      ping_ = std::make_unique<PingProbe>(*cl_.ping_target);
    }
    if (cl_.vip) {
      cluster::VirtualIpConfig vc;
      vc.interface = cl_.interface;
      vc.address = cl_.vip->address;
      vc.prefix_len = cl_.vip->length;
      PBX_ASSIGN_OR_RETURN(vip_, cluster::VirtualIp::Create(std::move(vc)));
      // A VIP left behind by a crash of this node must not answer while we decide.
      if (Status s = vip_->Release(); !s.ok()) return s;
    }
    // Lines still switched to this node by a crash, likewise.
    if (lines_) PBX_TRY(lines_->Release());
    if (witness_) witness_thread_ = std::thread([this] { RunWitness(); });
    thread_ = std::thread([this] { Run(); });
    return Status::Ok();
  }

  void Stop() override {
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    queue_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    {
      std::lock_guard<std::mutex> lock(witness_mu_);
      witness_stopping_ = true;
    }
    witness_cv_.notify_all();
    if (witness_thread_.joinable()) witness_thread_.join();
    gate_.Close("the node is shutting down");
    if (hook_thread_.joinable()) hook_thread_.join();
    shipper_.reset();
    receiver_.reset();
    if (vip_) {
      if (Status s = vip_->Release(); !s.ok()) PBX_LOG(kWarn, "cluster", "{}", s.ToString());
    }
    ReleaseLines();
    if (witness_ && machine_.role() == cluster::Role::kActive) {
      cluster::LeaseRequest r = LeaseRequestFor(0);
      r.release = true;
      (void)witness_->Request(r, 200ms);
    }
    if (link_) link_->Stop();
  }

  std::string role() const override {
    std::lock_guard<std::mutex> lock(mu_);
    // Between the role machine's decision and the gate opening, the promotion's actions
    // (epoch, VIP, shipper) are still running: say so rather than "active".
    if (machine_.role() == cluster::Role::kActive && !gate_.is_open()) return "promoting";
    return std::string(cluster::RoleName(machine_.role()));
  }

  bool Serving() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return machine_.Serving(RoleClock::now());
  }

  std::string role_reason() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return machine_.reason();
  }

  admin::ClusterStatus Snapshot() const override {
    admin::ClusterStatus s;
    RoleTime now = RoleClock::now();
    int64_t unix_now_ms = UnixNowMs();
    {
      std::lock_guard<std::mutex> lock(mu_);
      s.peer_name = machine_.peer_name();
      if (!s.peer_name.empty()) s.peer_role = std::string(cluster::RoleName(machine_.peer_role()));
      s.peer_epoch = machine_.peer_position().epoch;
      s.peer_last_seq = machine_.peer_position().seq;
      s.peer_alive = machine_.peer_alive(now);
      if (auto heard = machine_.peer_last_heard()) {
        s.peer_heard_ms_ago =
            std::chrono::duration_cast<std::chrono::milliseconds>(now - *heard).count();
      }
      s.witness = machine_.WitnessText(now);
      if (const auto& f = machine_.last_failover()) {
        auto ago = std::chrono::duration_cast<std::chrono::milliseconds>(now - f->at).count();
        s.last_failover_unix = (unix_now_ms - ago) / 1000;
        s.last_failover_reason = fmt::format("{} -> {}: {}", cluster::RoleName(f->from),
                                             cluster::RoleName(f->to), f->reason);
      }
      bool we_serve = machine_.role() == cluster::Role::kActive;
      if (cl_.vip) {
        s.vip = fmt::format("{}/{}", cl_.vip->address, cl_.vip->length);
        if (we_serve) {
          s.vip_owner = config_.node_name;
        } else if (s.peer_alive && machine_.peer_role() == cluster::Role::kActive) {
          s.vip_owner = s.peer_name;
        }
      }
    }
    if (auto rtt = link_->rtt()) s.hb_rtt_ms = static_cast<double>(rtt->count()) / 1000.0;
    std::lock_guard<std::mutex> lock(log_mu_);
    if (shipper_) {
      ship::ShipperStatus st = shipper_->status();
      s.lag_seqs = st.lag_seqs;
      s.lag_ms = static_cast<double>(st.lag_ms);
      s.degraded = st.degraded;
      s.degraded_since_unix = st.degraded ? st.degraded_since_unix_ms / 1000 : 0;
    } else if (receiver_) {
      ship::ReceiverStatus st = receiver_->status();
      s.lag_seqs = st.lag_seqs;
      s.lag_ms = static_cast<double>(st.lag_ms);
    }
    return s;
  }

  pbx::Status Switchover() override { return Admin(cluster::ev::SwitchoverRequest{}); }

  pbx::Status Maintenance(bool on, bool force) override {
    if (on) return Admin(cluster::ev::MaintenanceOn{force});
    return Admin(cluster::ev::MaintenanceOff{});
  }

 private:
  struct Pending {
    RoleEvent event;
    std::promise<pbx::Status>* reply;  // admin requests wait for their verdict
  };
  struct WitnessCall {
    cluster::LeaseRequest request;
    std::chrono::milliseconds timeout{0};
    std::optional<uint64_t> request_id;  // a RequestLease's, whose answer becomes an event
    // A renewal during a claim: only the last answer becomes an event (claim_reply_), once
    // the claim is done, so that the license check meets the newest lease, not a stale one.
    bool claim = false;
  };

  void Post(RoleEvent event, std::promise<pbx::Status>* reply) {
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      if (stopping_) {
        if (reply) reply->set_value(Status::Unavailable("the node is shutting down"));
        return;
      }
      queue_.push_back({std::move(event), reply});
    }
    queue_cv_.notify_all();
  }

  pbx::Status Admin(RoleEvent event) {
    std::promise<pbx::Status> reply;
    std::future<pbx::Status> verdict = reply.get_future();
    Post(std::move(event), &reply);
    if (verdict.wait_for(5s) != std::future_status::ready) {
      return Status::Timeout("the cluster control loop did not answer");
    }
    return verdict.get();
  }

  cluster::Position LocalPosition() const {
    cluster::Position p;
    p.seq = db_.LatestSeq();
    if (Result<store::ClusterMeta> meta = store::MetaRepo(db_).Get(); meta.ok()) {
      p.epoch = meta->epoch;
    }
    return p;
  }

  cluster::LeaseRequest LeaseRequestFor(uint64_t lease_ms) const {
    cluster::LeaseRequest r;
    r.cluster_id = cl_.name;
    r.node_name = config_.node_name;
    r.epoch = machine_.epoch();
    r.lease_ms = static_cast<uint32_t>(lease_ms);
    return r;
  }

  // The control loop: every event from the queue, a Tick every hb_interval (and at the
  // role machine's own deadlines), the log's progress as events.
  void Run() {
    Step(cluster::ev::Start{LocalPosition()}, nullptr);
    RoleTime next_tick = RoleClock::now();
    while (true) {
      std::deque<Pending> batch;
      {
        std::unique_lock<std::mutex> lock(queue_mu_);
        RoleTime wake = next_tick;
        {
          std::lock_guard<std::mutex> m(mu_);
          wake = std::min(wake, machine_.NextWakeup());
        }
        queue_cv_.wait_until(lock, wake, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) break;
        batch.swap(queue_);
      }
      for (Pending& p : batch) {
        StepWitnessReplies();
        Step(std::move(p.event), p.reply);
      }
      StepWitnessReplies();
      RoleTime now = RoleClock::now();
      bool wakeup_due;
      {
        std::lock_guard<std::mutex> m(mu_);
        wakeup_due = now >= machine_.NextWakeup();
      }
      if (now >= next_tick || wakeup_due) {
        PollLog();
        Step(cluster::ev::Tick{LocalPosition()}, nullptr);
        if (now >= next_tick) next_tick = now + cl_.hb_interval_ms * 1ms;
      }
    }
    std::lock_guard<std::mutex> lock(queue_mu_);
    for (Pending& p : queue_) {
      if (p.reply) p.reply->set_value(Status::Unavailable("the node is shutting down"));
    }
  }

  // Turns the shipper's and receiver's progress into role events.
  void PollLog() {
    std::lock_guard<std::mutex> lock(log_mu_);
    if (shipper_) {
      ship::ShipperStatus st = shipper_->status();
      if (st.newer_epoch_seen > 0) {
        follow_ups_.push_back(cluster::ev::EpochRefused{st.newer_epoch_seen});
      } else if (st.connected && st.peer_acked_seq > last_acked_) {
        last_acked_ = st.peer_acked_seq;
        follow_ups_.push_back(cluster::ev::ReplicationAcked{st.peer_acked_seq});
      }
    }
    if (receiver_) {
      ship::ReceiverStatus st = receiver_->status();
      // Caught up means: applied what the active had when last heard. A link that just
      // dropped (the active died, most likely) is not falling behind; a checkpoint still
      // being installed, or no session yet, is.
      bool streamed = st.connected ? st.phase == "streaming" : st.sessions > 0;
      bool caught_up = streamed && st.lag_seqs <= kCaughtUpSeqs;
      follow_ups_.push_back(cluster::ev::SyncProgress{caught_up, st.applied_seq});
    }
  }

  // Steps the machine with `event` and with every event its actions produce, in order.
  void Step(RoleEvent event, std::promise<pbx::Status>* reply) {
    std::string rejected;
    follow_ups_.push_front(std::move(event));
    while (!follow_ups_.empty()) {
      RoleEvent e = std::move(follow_ups_.front());
      follow_ups_.pop_front();
      std::vector<Action> actions;
      {
        std::lock_guard<std::mutex> lock(mu_);
        actions = machine_.Step(RoleClock::now(), e);
      }
      const bool claim = std::any_of(actions.begin(), actions.end(), [](const Action& a) {
        return a.kind == Action::Kind::kBumpEpoch;
      });
      if (claim) {
        Claim(actions, rejected);
      } else {
        for (const Action& a : actions) Execute(a, rejected);
      }
    }
    if (prepared_) {
      // A standby whose active serves again is no candidate any more.
      bool following_a_server;
      {
        std::lock_guard<std::mutex> lock(mu_);
        const cluster::Role r = machine_.role();
        following_a_server = (r == cluster::Role::kSyncing || r == cluster::Role::kStandby) &&
                             machine_.peer_alive(RoleClock::now()) &&
                             machine_.peer_role() == cluster::Role::kActive;
      }
      if (following_a_server) Unprepare();
    }
    if (reply) {
      reply->set_value(rejected.empty() ? Status::Ok() : Status::Unavailable(rejected));
    }
  }

  // Phase two of a promotion: the actions that claim (epoch, VIP and lines, shipper,
  // serving), with the lease renewed every interval while they run (ClaimRenewal), since
  // the control loop cannot tick meanwhile. A claim step that would start after the lease
  // is over is skipped: the next event fences (R7), and fencing releases what was taken.
  void Claim(const std::vector<Action>& actions, std::string& rejected) {
    std::mutex stop_mu;
    std::condition_variable stop_cv;
    bool stop = false;
    uint64_t last_call = 0;  // the renewer's last witness call
    std::thread renewer;
    if (witness_) {
      renewer = std::thread([&] {
        std::unique_lock<std::mutex> lock(stop_mu);
        while (!stop_cv.wait_for(lock, cl_.hb_interval_ms * 1ms / 2, [&] { return stop; })) {
          std::optional<Action> renewal;
          {
            std::lock_guard<std::mutex> m(mu_);
            renewal = machine_.ClaimRenewal(RoleClock::now());
          }
          if (renewal) last_call = RequestLease(*renewal, /*claim=*/true);
        }
      });
    }
    bool lapsed = false;
    for (const Action& a : actions) {
      const bool claims = a.kind == Action::Kind::kAcquireVip ||
                          a.kind == Action::Kind::kStartShipper ||
                          a.kind == Action::Kind::kStartServing;
      if (claims && (lapsed || !LeaseHoldsForClaim())) {
        if (!lapsed) {
          PBX_LOG(kWarn, "cluster", "the lease ran out during the promotion: {} skipped",
                  cluster::ActionName(a.kind));
        }
        lapsed = true;
        continue;
      }
      Execute(a, rejected);
    }
    if (renewer.joinable()) {
      {
        std::lock_guard<std::mutex> lock(stop_mu);
        stop = true;
      }
      stop_cv.notify_all();
      renewer.join();
      // Its last renewal's answer is what the next license check must see: wait for it
      // (bounded by the request's own timeout) so that it is queued before the next Tick.
      std::optional<std::pair<uint64_t, Result<cluster::LeaseReply>>> last;
      {
        std::unique_lock<std::mutex> lock(witness_mu_);
        witness_cv_.wait_for(lock, cl_.hb_interval_ms * 1ms * 4,
                             [&] { return witness_done_ >= last_call; });
        last.swap(claim_reply_);
      }
      if (last) Post(cluster::WitnessEvent(last->first, last->second), nullptr);
    }
  }

  // Whether the witness lease (as granted so far, answers not yet stepped included) lasts
  // past one more interval. Without a witness the license is the ping's: not renewed here.
  bool LeaseHoldsForClaim() {
    const RoleTime now = RoleClock::now();
    RoleTime until;
    {
      std::lock_guard<std::mutex> lock(mu_);
      until = machine_.ServingUntil();
    }
    if (witness_) {
      std::lock_guard<std::mutex> lock(witness_mu_);
      until = std::max(until, granted_until_);
    }
    return now + cl_.hb_interval_ms * 1ms < until;
  }

  // Witness answers queued while the loop was busy (a claim's renewals) are stepped before
  // anything else: each says how long the lease runs, which every license check needs.
  void StepWitnessReplies() {
    std::deque<Pending> replies;
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      auto witness_event = [](const Pending& p) {
        return std::holds_alternative<cluster::ev::WitnessReply>(p.event) ||
               std::holds_alternative<cluster::ev::WitnessUnreachable>(p.event);
      };
      auto it = std::stable_partition(queue_.begin(), queue_.end(), witness_event);
      std::move(queue_.begin(), it, std::back_inserter(replies));
      queue_.erase(queue_.begin(), it);
    }
    for (Pending& p : replies) Step(std::move(p.event), p.reply);
  }

  // The answer a claim's renewals report once it is done (witness_mu_ held): the newest
  // grant, which a later unanswered renewal does not take back (a grant is worth its
  // validity whenever it is stepped); a refusal naming another holder, which no later answer
  // hides (R8); else the last answer.
  void KeepClaimReply(uint64_t request_id, const Result<cluster::LeaseReply>& reply) {
    auto refused_by_other = [&](const Result<cluster::LeaseReply>& r) {
      return r.ok() && !r->granted && !r->holder.empty() && r->holder != config_.node_name;
    };
    auto granted = [](const Result<cluster::LeaseReply>& r) { return r.ok() && r->granted; };
    if (claim_reply_ && refused_by_other(claim_reply_->second)) return;
    if (claim_reply_ && granted(claim_reply_->second) && !granted(reply) &&
        !refused_by_other(reply)) {
      return;
    }
    claim_reply_.emplace(request_id, reply);
  }

  // Queues a RequestLease action's call; returns its number (CallWitness).
  uint64_t RequestLease(const Action& a, bool claim = false) {
    cluster::LeaseRequest r = LeaseRequestFor(static_cast<uint64_t>(a.lease.count()));
    r.epoch = a.epoch;
    return CallWitness({std::move(r), a.timeout, a.request_id, claim});
  }

  // Phase one of a promotion, before a candidate's lease request goes out (the lease runs
  // from the send): what is slow and claims nothing. The durable was_active mark, one fsync
  // (seconds under disk load), which must precede the epoch commit anyway. A candidacy that
  // ends in following again takes the mark back (Unprepare): no epoch was written.
  void Prepare() {
    if (prepared_) return;
    prepared_ = true;
    if (local_.Get(kWasActiveKey).ok()) return;
    MarkWasActive("preparing to promote");
    prepared_mark_ = true;
  }

  void Unprepare() {
    if (prepared_mark_) {
      if (Status s = local_.Delete(kWasActiveKey); !s.ok()) {
        PBX_LOG(kWarn, "cluster", "cannot clear the was_active mark: {}", s.ToString());
      } else {
        PBX_LOG(kInfo, "cluster", "not promoted: the store follows by streaming again");
      }
    }
    prepared_ = false;
    prepared_mark_ = false;
  }

  void Execute(const Action& a, std::string& rejected) {
    switch (a.kind) {
      case Action::Kind::kLog:
        if (log::Enabled(a.level, "role")) log::Write(a.level, "role", a.text);
        break;
      case Action::Kind::kSendHeartbeat: {
        bool degraded = false;
        {
          std::lock_guard<std::mutex> lock(log_mu_);
          if (shipper_) degraded = shipper_->status().degraded;
        }
        cluster::HeartbeatInfo info;
        {
          std::lock_guard<std::mutex> lock(mu_);
          info = cluster::HeartbeatFromRole(machine_, db_.LatestSeq(), degraded);
        }
        (void)link_->Send(info);  // a lost heartbeat is covered by the next one
        break;
      }
      case Action::Kind::kRequestLease: {
        bool candidate;
        {
          std::lock_guard<std::mutex> lock(mu_);
          candidate = machine_.role() != cluster::Role::kActive;
        }
        if (candidate) Prepare();
        RequestLease(a);
        break;
      }
      case Action::Kind::kReleaseLease: {
        cluster::LeaseRequest r = LeaseRequestFor(0);
        r.release = true;
        // Waited for (as the calls before it): the heartbeat that follows may tell the peer
        // to take over, and its request should find the lease free.
        const std::chrono::milliseconds timeout = cl_.hb_interval_ms * 1ms;
        const uint64_t n = CallWitness({std::move(r), timeout, std::nullopt});
        std::unique_lock<std::mutex> lock(witness_mu_);
        witness_cv_.wait_for(lock, timeout * 4, [&] { return witness_done_ >= n; });
        break;
      }
      case Action::Kind::kProbePingTarget:
        follow_ups_.push_back(cluster::ev::PingTargetResult{ping_ && ping_->Probe()});
        break;
      case Action::Kind::kBumpEpoch:
        // Before the bump: a crash right after it leaves a DB that may hold writes of the
        // new epoch, which must not be trusted when the node rejoins.
        MarkWasActive("promoted");
        prepared_ = false;
        prepared_mark_ = false;  // needed now: the epoch below is written
        BumpEpoch(a.epoch);
        break;
      case Action::Kind::kAcquireVip:
        if (vip_) {
          if (Status s = vip_->Acquire(); !s.ok()) {
            PBX_LOG(kError, "cluster", "cannot take the virtual IP: {}", s.ToString());
          }
        }
        if (lines_) {
          if (Status s = lines_->Take(); !s.ok()) {
            PBX_LOG(kError, "cluster", "cannot take the analog lines: {}", s.ToString());
          }
        }
        break;
      case Action::Kind::kReleaseVip:
        if (vip_) {
          if (Status s = vip_->Release(); !s.ok()) {
            PBX_LOG(kError, "cluster", "cannot release the virtual IP: {}", s.ToString());
          }
        }
        ReleaseLines();
        break;
      case Action::Kind::kStartShipper:
        StartShipper();
        break;
      case Action::Kind::kStopShipper: {
        // Stopped outside log_mu_: a stop can wait for a standby that is gone, and the
        // status API (Snapshot) must not answer with the old role after that wait.
        decltype(shipper_) stopping;
        {
          std::lock_guard<std::mutex> lock(log_mu_);
          stopping = std::move(shipper_);
        }
        stopping.reset();
        break;
      }
      case Action::Kind::kStartReceiver:
        Unprepare();  // before the receiver reads the mark
        StartReceiver();
        break;
      case Action::Kind::kStopReceiver: {
        decltype(receiver_) stopping;  // stopped outside log_mu_, as the shipper
        {
          std::lock_guard<std::mutex> lock(log_mu_);
          stopping = std::move(receiver_);
        }
        if (stopping && a.peer_dead) stopping->Abandon();
        stopping.reset();
        break;
      }
      case Action::Kind::kStartServing:
        gate_.Open();
        RunServingHook();
        break;
      case Action::Kind::kFence:
        gate_.Close(a.text);
        break;
      case Action::Kind::kDrainWrites:
        gate_.Close("a switchover is in progress");
        follow_ups_.push_back(cluster::ev::WritesDrained{db_.LatestSeq()});
        break;
      case Action::Kind::kResumeWrites:
        gate_.Open();
        break;
      case Action::Kind::kRejectAdmin:
        rejected = a.text;
        break;
    }
  }

  void ReleaseLines() {
    if (!lines_) return;
    if (Status s = lines_->Release(); !s.ok()) {
      PBX_LOG(kError, "cluster", "cannot release the analog lines: {}", s.ToString());
    }
  }

  // Witness calls leave the control thread: a slow witness must not hold up heartbeats,
  // the log or the license check. One thread makes them, in the order given (a release
  // must reach the witness before any later request), and posts each RequestLease's
  // answer as an event; the lease is dated from the send (WitnessClient), so a late answer
  // is still worth what it says.
  // Returns the call's number: it is done when witness_done_ reaches it.
  uint64_t CallWitness(WitnessCall call) {
    uint64_t n;
    {
      std::lock_guard<std::mutex> lock(witness_mu_);
      witness_calls_.push_back(std::move(call));
      n = ++witness_queued_;
    }
    witness_cv_.notify_all();
    return n;
  }

  void RunWitness() {
    std::unique_lock<std::mutex> lock(witness_mu_);
    while (true) {
      witness_cv_.wait(lock, [&] { return witness_stopping_ || !witness_calls_.empty(); });
      if (witness_stopping_) return;
      WitnessCall call = std::move(witness_calls_.front());
      witness_calls_.pop_front();
      lock.unlock();
      Result<cluster::LeaseReply> reply = witness_->Request(call.request, call.timeout);
      if (call.request_id && !call.claim) {
        Post(cluster::WitnessEvent(*call.request_id, reply), nullptr);
      }
      lock.lock();
      if (call.claim) KeepClaimReply(*call.request_id, reply);
      if (call.request.release) {
        granted_until_ = {};
      } else if (reply.ok() && reply->granted) {
        granted_until_ = std::max(granted_until_, reply->lease_valid_until);
      }
      ++witness_done_;
      witness_cv_.notify_all();
    }
  }

  // The hook runs on its own thread: first-boot provisioning hashes passwords, seconds on a
  // loaded machine, and meanwhile the control thread must go on renewing the lease and
  // sending heartbeats, or the node loses its license while it provisions.
  void RunServingHook() {
    if (!on_serving_) return;
    if (hook_thread_.joinable()) hook_thread_.join();  // the previous promotion's, long done
    hook_thread_ = std::thread([this] { on_serving_(); });
  }

  // Records, durably, that this DB may hold writes the peer never saw, so that it resyncs by
  // checkpoint when it next follows. A node that cannot record it must not write.
  void MarkWasActive(std::string_view why) {
    if (local_.Get(kWasActiveKey).ok()) return;
    Status s = local_.Put(kWasActiveKey, "1");
    if (!s.ok()) PBX_LOG(kError, "cluster", "cannot record the active role: {}", s.ToString());
    PBX_CHECK(s.ok());
    PBX_LOG(kInfo, "cluster", "this store will resync by checkpoint when it follows: {}", why);
  }

  // Commits the new epoch before anything is served or shipped in it. The meta record is
  // created here on the first promotion of a new pair.
  void BumpEpoch(uint64_t epoch) {
    store::MetaRepo meta(db_);
    store::ClusterMeta m;
    if (Result<store::ClusterMeta> existing = meta.Get(); existing.ok()) {
      m = *existing;
    } else {
      m.cluster_id = cl_.name;
      m.created_unix = UnixNowMs() / 1000;
    }
    m.epoch = std::max(epoch, m.epoch + 1);
    store::WriteSet writes;
    meta.Put(m, writes);
    Result<store::SeqNo> r = db_.Commit(writes, store::Durability::kReplicated);
    PBX_CHECK(r.ok());  // a node that cannot record its epoch must not serve in it
    PBX_LOG(kInfo, "cluster", "epoch {} begins at seq {}", m.epoch, *r);
  }

  void StartShipper() {
    ship::ShipperOptions o;
    o.listen_url = TcpUrl(cl_.listen.host, cl_.listen.port);
    o.cluster_id = cl_.name;
    o.node_name = config_.node_name;
    Result<std::unique_ptr<ship::LogShipper>> s = ship::LogShipper::Start(db_, std::move(o));
    if (!s.ok()) {
      PBX_LOG(kError, "cluster", "cannot start the log shipper: {}", s.status().ToString());
      return;
    }
    std::lock_guard<std::mutex> lock(log_mu_);
    shipper_ = std::move(*s);
    last_acked_ = 0;
  }

  void StartReceiver() {
    ship::ReceiverOptions o;
    o.peer_url = TcpUrl(cl_.peer.host, cl_.peer.port);
    o.cluster_id = cl_.name;
    o.node_name = config_.node_name;
    o.was_active_fn = [this] { return local_.Get(kWasActiveKey).ok(); };
    o.on_full_resync = [this](store::SeqNo seq) {
      (void)local_.Delete(kWasActiveKey);
      PBX_LOG(kInfo, "cluster", "full resync installed at seq {}", seq);
    };
    Result<std::unique_ptr<ship::LogReceiver>> r = ship::LogReceiver::Start(db_, std::move(o));
    if (!r.ok()) {
      PBX_LOG(kError, "cluster", "cannot start the log receiver: {}", r.status().ToString());
      return;
    }
    std::lock_guard<std::mutex> lock(log_mu_);
    receiver_ = std::move(*r);
  }

  const BootstrapConfig config_;
  const BootstrapConfig::Cluster cl_;
  store::ReplicatedDb& db_;
  store::LocalStore& local_;
  WriteGate& gate_;
  ServingHook on_serving_;

  mutable std::mutex mu_;  // guards machine_ (stepped on the control thread, read by Status)
  cluster::RoleMachine machine_;

  std::unique_ptr<cluster::HeartbeatLink> link_;
  std::unique_ptr<cluster::WitnessClient> witness_;
  std::unique_ptr<PingProbe> ping_;
  std::unique_ptr<cluster::VirtualIp> vip_;
  hal::LineSwitch* const lines_;  // may be null: no analog hardware

  mutable std::mutex log_mu_;  // guards shipper_, receiver_ (replaced on the control thread)
  std::unique_ptr<ship::LogShipper> shipper_;
  std::unique_ptr<ship::LogReceiver> receiver_;
  uint64_t last_acked_ = 0;

  // Control thread only: events produced while stepping (ping results, drained writes, the
  // log's progress).
  std::deque<RoleEvent> follow_ups_;
  // Control thread only: a candidate prepared its promotion (Prepare), and set the
  // was_active mark in doing so.
  bool prepared_ = false;
  bool prepared_mark_ = false;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Pending> queue_;  // guarded by queue_mu_
  bool stopping_ = false;      // guarded by queue_mu_
  std::thread thread_;
  std::thread hook_thread_;  // runs on_serving_; control thread only, then Stop()

  std::mutex witness_mu_;
  std::condition_variable witness_cv_;
  std::deque<WitnessCall> witness_calls_;  // guarded by witness_mu_
  uint64_t witness_queued_ = 0;            // guarded by witness_mu_: calls queued so far
  uint64_t witness_done_ = 0;              // guarded by witness_mu_: calls made so far
  RoleTime granted_until_{};               // guarded by witness_mu_: latest grant's end
  // Guarded by witness_mu_: the last answer to a claim's renewal, not reported yet.
  std::optional<std::pair<uint64_t, Result<cluster::LeaseReply>>> claim_reply_;
  bool witness_stopping_ = false;  // guarded by witness_mu_
  std::thread witness_thread_;     // RunWitness
};

}  // namespace

Result<std::unique_ptr<ClusterController>> ClusterController::Start(
    const BootstrapConfig& config, store::ReplicatedDb& db, store::LocalStore& local,
    WriteGate& gate, ServingHook on_serving, hal::LineSwitch* lines) {
  if (!config.cluster) return Status::InvalidArgument("no [cluster] in the bootstrap file");
  const BootstrapConfig::Cluster& cl = *config.cluster;
  cluster::RoleConfig rc;
  rc.node_name = config.node_name;
  rc.has_peer = true;
  rc.tie_breaker = cl.witness       ? cluster::TieBreaker::kWitness
                   : cl.ping_target ? cluster::TieBreaker::kPingTarget
                                    : cluster::TieBreaker::kNone;
  if (rc.tie_breaker == cluster::TieBreaker::kNone) {
    return Status::InvalidArgument(
        "[cluster] needs 'witness' or 'ping_target': without a tie-breaker a pair cannot tell "
        "a dead peer from a cut link");
  }
  rc.hb_interval = std::chrono::milliseconds(cl.hb_interval_ms);
  rc.hb_dead = static_cast<int>(cl.hb_dead);
  PBX_TRY(cluster::RoleMachine::ValidateConfig(rc));
  auto c = std::make_unique<ClusterControllerImpl>(config, db, local, gate, std::move(on_serving),
                                                   std::move(rc), lines);
  PBX_TRY(c->Init());
  return std::unique_ptr<ClusterController>(std::move(c));
}

}  // namespace pbx::node
