// LogShipper: the active's side of FORMAT.md. One thread; see the class comment.

#include "replication/ship/log_shipper.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "node/core/log.h"
#include "replication/ship/crc32c.h"
#include "replication/ship/link.h"
#include "replication/ship/wire.h"
#include "replication/store/repos.h"

namespace pbx::ship {
namespace {

constexpr const char* kLog = "ship";
using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

// Messages sent and not yet acknowledged, at most (besides window_bytes).
constexpr size_t kWindowMessages = 256;
// Bound on the commit-time queue behind lag_ms; beyond it the newest entries merge.
constexpr size_t kMaxUnackedTimes = 1024;
// Capnp framing per batch in a Batches message, on top of the batch bytes (generous).
constexpr size_t kBatchOverhead = 64;
// The largest frame a standby may send (its Hello carries the column-family map).
constexpr size_t kMaxStandbyFrame = 64 << 10;

// A goodbye (Refuse kShuttingDown) of session `id`: the peer sends nothing after it.
bool IsGoodbye(const std::string& bytes, uint64_t id) {
  Result<Message> m = DecodeFrame(bytes, 1 << 20);
  if (!m.ok() || m->session != id) return false;
  const Refuse* r = std::get_if<Refuse>(&m->body);
  return r != nullptr && r->reason == RefuseReason::kShuttingDown;
}

int64_t UnixMs() {
  return duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

uint64_t MetaEpoch(store::StateStore& db) {
  Result<store::ClusterMeta> meta = store::MetaRepo(db).Get();
  return meta.ok() ? meta->epoch : 0;
}

// What the shipper thread, the committing threads (gate and observer) and status() share.
// Held by shared_ptr: the gate's closure owns a reference, so a commit still inside the
// gate when the shipper is destroyed touches live memory.
struct Shared {
  explicit Shared(milliseconds timeout) : ack_timeout(timeout) {}

  const milliseconds ack_timeout;
  Link* link = nullptr;  // set before the observer is installed, valid while it is
  std::atomic<bool> wake_pending{false};

  mutable std::mutex mu;
  std::condition_variable acked_cv;  // signalled when `acked` grows, or degraded, or stopped
  // Guarded by mu:
  bool stopped = false;
  SeqNo acked = 0;  // the highest seq the standby has applied (written; it syncs behind)
  std::deque<std::pair<SeqNo, Clock::time_point>> unacked;  // commit times, for lag_ms
  ShipperStatus st;  // degraded*, counters; the thread keeps the rest up to date

  // The commit observer: under the store's commit lock, so cheap.
  void OnCommit(SeqNo seq) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (unacked.size() < kMaxUnackedTimes) {
        unacked.emplace_back(seq, Clock::now());
      } else {
        unacked.back().first = seq;  // keeps the older time: lag_ms errs on the high side
      }
    }
    // One wake-up per batch of commits the thread has not looked at yet.
    if (!wake_pending.exchange(true)) link->Wake();
  }

  // The replication gate: blocks a kReplicated commit until `seq` is acknowledged, the
  // node is degraded, or the shipper stops.
  void WaitAcked(SeqNo seq) {
    std::string entered;
    {
      std::unique_lock<std::mutex> lock(mu);
      if (acked >= seq) {  // the ack came before the committing thread got here
        ++st.replicated_commits;
        return;
      }
      if (stopped || st.degraded) return;
      const auto deadline = Clock::now() + ack_timeout;
      while (!stopped && !st.degraded && acked < seq) {
        if (acked_cv.wait_until(lock, deadline) == std::cv_status::timeout) break;
      }
      if (acked >= seq) {
        ++st.replicated_commits;
        return;
      }
      ++st.timed_out_commits;
      if (!stopped && !st.degraded) {
        entered = "standby did not acknowledge seq " + std::to_string(seq) + " within " +
                  std::to_string(ack_timeout.count()) + " ms";
        EnterDegradedLocked(entered);
      }
    }
    if (!entered.empty()) {
      PBX_LOG(kWarn, kLog, "degraded: {}; commits no longer wait for the standby", entered);
    }
  }

  // REQUIRES: mu held. True if this call made the node degraded.
  bool EnterDegradedLocked(const std::string& reason) {
    if (st.degraded) return false;
    st.degraded = true;
    st.degraded_reason = reason;
    st.degraded_since_unix_ms = UnixMs();
    ++st.degraded_count;
    acked_cv.notify_all();
    return true;
  }

  void EnterDegraded(const std::string& reason) {
    bool entered;
    {
      std::lock_guard<std::mutex> lock(mu);
      entered = EnterDegradedLocked(reason);
    }
    if (entered) {
      PBX_LOG(kWarn, kLog, "degraded: {}; commits no longer wait for the standby", reason);
    }
  }

  void LeaveDegraded(const std::string& peer, SeqNo seq) {
    int64_t since = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!st.degraded) return;
      st.degraded = false;
      since = st.degraded_since_unix_ms;
      st.degraded_reason.clear();
      st.degraded_since_unix_ms = 0;
    }
    PBX_LOG(kInfo, kLog, "no longer degraded after {} ms: standby {} caught up at seq {}",
            UnixMs() - since, peer, seq);
  }

  // The standby has applied everything up to `seq`.
  void Acked(SeqNo seq) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (seq <= acked) return;
      acked = seq;
      while (!unacked.empty() && unacked.front().first <= seq) unacked.pop_front();
    }
    acked_cv.notify_all();
  }

  void Refused(const std::string& line) {
    PBX_LOG(kWarn, kLog, "{}", line);
    std::lock_guard<std::mutex> lock(mu);
    ++st.refused;
    st.last_refusal = line;
  }
};

}  // namespace

struct LogShipper::Impl {
  enum class Phase { kCheckpoint, kInstall, kStreaming };

  struct InFlight {
    uint64_t msg_seq;
    SeqNo end_seq;  // last seq of a Batches message; 0 for other messages
    size_t bytes;
    Clock::time_point sent_at;
  };

  // One standby's session, from its Hello on. Shipper thread only.
  struct Session {
    uint64_t id = 0;
    std::string peer;
    Phase phase = Phase::kStreaming;
    uint64_t sent_msg_seq = 0;
    uint64_t peer_msg_seq = 1;  // its Hello
    uint64_t acked_msg_seq = 0;
    SeqNo next_seq = 0;    // streaming: the first seq not yet sent
    SeqNo acked = 0;       // streaming: acknowledged by this standby
    bool at_tail = false;  // the last WAL read reached LatestSeq()
    std::deque<InFlight> inflight;
    size_t inflight_bytes = 0;
    size_t inflight_batches = 0;  // Batches messages among them
    Clock::time_point last_heard;
    Clock::time_point last_sent;
    // Checkpoint: made, then sent file by file.
    bool checkpoint_made = false;
    SeqNo checkpoint_seq = 0;
    std::vector<CheckpointFile> files;
    size_t file_index = 0;
    uint64_t file_offset = 0;
    uint32_t file_crc = 0;
    int fd = -1;
    uint64_t done_msg_seq = 0;
    Clock::time_point checkpoint_started;
  };

  Impl(store::ReplicatedDb& d, ShipperOptions o)
      : db(d), opt(std::move(o)), shared(std::make_shared<Shared>(opt.ack_timeout)) {}

  void Run();
  void Loop();
  void Handle(const std::string& bytes);
  void OnHello(const Message& m, const Hello& hello);
  void OnAck(const Message& m, const Ack& ack);
  void Pump();
  void Stream();
  void MakeCheckpoint();
  void SendChunks();
  bool Send(Body body, bool track, size_t bytes = 0, SeqNo end_seq = 0);
  void SendRefuse(uint64_t session, RefuseReason reason, const std::string& detail);
  void RefuseAndDrop(RefuseReason reason, const std::string& detail);
  void DropSession(const std::string& reason);
  void CloseCheckpoint();
  void CheckCaughtUp();
  void Publish();
  bool WindowHasRoom() const {
    return session->inflight.size() < kWindowMessages && session->inflight_bytes < opt.window_bytes;
  }
  bool CanSendBatches() const {
    return WindowHasRoom() && session->inflight_batches < opt.batches_in_flight;
  }
  std::string PhaseName() const;

  store::ReplicatedDb& db;
  const ShipperOptions opt;
  std::shared_ptr<Shared> shared;
  std::unique_ptr<Link> link;
  std::thread thread;
  std::string link_url;
  std::atomic<bool> stop{false};
  bool stopped = false;  // owner thread only

  // Shipper thread only:
  std::optional<Session> session;
  uint64_t epoch = 0;
  std::string cf_map;
  std::string force_checkpoint;  // why the next handshake must send a checkpoint, if it must
  // Counters the thread owns; Publish() copies them into shared->st.
  uint64_t sessions = 0;
  uint64_t batches_shipped = 0;
  uint64_t bytes_shipped = 0;
  uint64_t messages_sent = 0;
  uint64_t acks_received = 0;
  uint64_t checkpoints_sent = 0;
  uint64_t checkpoint_bytes_sent = 0;
  uint64_t ack_latency_us = 0;
  uint64_t newer_epoch_seen = 0;
};

std::string LogShipper::Impl::PhaseName() const {
  if (!session) return "idle";
  switch (session->phase) {
    case Phase::kCheckpoint:
      return "checkpoint";
    case Phase::kInstall:
      return "install";
    case Phase::kStreaming:
      return "streaming";
  }
  return "?";
}

void LogShipper::Impl::Run() {
  // A thread entry point: nothing may escape (STYLE.md §5).
  try {
    Loop();
  } catch (const std::exception& e) {
    PBX_LOG(kError, kLog, "shipper thread: {}", e.what());
    std::abort();
  } catch (...) {
    PBX_LOG(kError, kLog, "shipper thread: unknown exception");
    std::abort();
  }
}

void LogShipper::Impl::Loop() {
  while (!stop.load()) {
    const auto now = Clock::now();
    auto deadline = now + std::chrono::seconds(1);
    if (session) {
      deadline = std::min(session->last_sent + opt.keepalive_interval,
                          session->last_heard + opt.session_timeout);
      if (session->phase == Phase::kCheckpoint && WindowHasRoom()) deadline = now;
      // Commits since the last read: the observer's wake-up may have been consumed by a
      // Wait that returned for another reason.
      if (session->phase == Phase::kStreaming && CanSendBatches() &&
          session->next_seq <= db.LatestSeq()) {
        deadline = now;
      }
    }
    Link::Events events = link->Wait(deadline);
    if (stop.load()) break;
    if (events.pipes_removed > 0 && session) DropSession("connection to the standby lost");
    while (std::optional<std::string> bytes = link->TryRecv()) Handle(*bytes);
    // Before Pump, which may take long to make a checkpoint: silence is judged on what
    // has been received by now.
    if (session && Clock::now() - session->last_heard > opt.session_timeout) {
      RefuseAndDrop(RefuseReason::kResync, "nothing heard from the standby for " +
                                               std::to_string(opt.session_timeout.count()) + " ms");
    }
    Pump();
    if (session && Clock::now() - session->last_sent >= opt.keepalive_interval) {
      Send(Keepalive{db.LatestSeq()}, /*track=*/false);
    }
    Publish();
  }
  // Leaving: say goodbye and take in what the standby still had in flight, up to its own
  // goodbye, its last message; only then may the socket be closed (Link's class comment).
  if (session) {
    const uint64_t id = session->id;
    SendRefuse(id, RefuseReason::kShuttingDown, "the active is stopping");
    CloseCheckpoint();
    session.reset();
    link->DrainUntil([id](const std::string& bytes) { return IsGoodbye(bytes, id); },
                     opt.goodbye_timeout);
  }
  CloseCheckpoint();
}

void LogShipper::Impl::Publish() {
  std::lock_guard<std::mutex> lock(shared->mu);
  ShipperStatus& st = shared->st;
  st.connected = session.has_value();
  st.peer_name = session ? session->peer : std::string();
  st.phase = PhaseName();
  st.epoch = epoch;
  st.sessions = sessions;
  st.batches_shipped = batches_shipped;
  st.bytes_shipped = bytes_shipped;
  st.messages_sent = messages_sent;
  st.acks_received = acks_received;
  st.checkpoints_sent = checkpoints_sent;
  st.checkpoint_bytes_sent = checkpoint_bytes_sent;
  st.ack_latency_us = ack_latency_us;
  st.newer_epoch_seen = newer_epoch_seen;
}

bool LogShipper::Impl::Send(Body body, bool track, size_t bytes, SeqNo end_seq) {
  Message m{epoch, session->id, ++session->sent_msg_seq, std::move(body)};
  const std::string frame = EncodeFrame(m);
  Status s = link->Send(frame);
  if (!s.ok()) {
    DropSession("sending " + std::string(KindName(m.body)) + " failed: " + s.message());
    return false;
  }
  ++messages_sent;
  const auto now = Clock::now();
  session->last_sent = now;
  if (track) {
    session->inflight.push_back(InFlight{m.msg_seq, end_seq, bytes, now});
    session->inflight_bytes += bytes;
    if (end_seq != 0) ++session->inflight_batches;
  }
  return true;
}

void LogShipper::Impl::SendRefuse(uint64_t session_id, RefuseReason reason,
                                  const std::string& detail) {
  Message m{epoch, session_id, session && session->id == session_id ? ++session->sent_msg_seq : 1,
            Refuse{reason, detail}};
  (void)link->Send(EncodeFrame(m));  // best effort: the session ends either way
}

void LogShipper::Impl::RefuseAndDrop(RefuseReason reason, const std::string& detail) {
  if (!session) return;
  SendRefuse(session->id, reason, detail);
  DropSession(detail);
}

void LogShipper::Impl::DropSession(const std::string& reason) {
  if (!session) return;
  PBX_LOG(kWarn, kLog, "session {:016x} with standby {} ended: {}", session->id, session->peer,
          reason);
  CloseCheckpoint();
  session.reset();
  shared->EnterDegraded("no standby (" + reason + ")");
  Publish();
}

void LogShipper::Impl::CloseCheckpoint() {
  if (session && session->fd >= 0) {
    ::close(session->fd);
    session->fd = -1;
  }
  std::error_code ec;
  std::filesystem::remove_all(opt.checkpoint_dir, ec);
}

void LogShipper::Impl::Handle(const std::string& bytes) {
  Result<Message> decoded = DecodeFrame(bytes, kMaxStandbyFrame);
  if (!decoded.ok()) {
    const std::string detail = "message from the standby refused: " + decoded.status().message();
    shared->Refused(detail);
    RefuseAndDrop(RefuseReason::kBadMessage, detail);
    return;
  }
  const Message& m = *decoded;
  if (const Hello* hello = std::get_if<Hello>(&m.body)) {
    OnHello(m, *hello);
    return;
  }
  if (!session || m.session != session->id) {
    // Left over from an earlier session (or sent before our refusal arrived): harmless.
    PBX_LOG(kDebug, kLog, "ignoring {} of session {:016x}", KindName(m.body), m.session);
    return;
  }
  if (m.epoch < epoch) {
    const std::string detail = std::string(KindName(m.body)) + " from epoch " +
                               std::to_string(m.epoch) + " refused: this node is at epoch " +
                               std::to_string(epoch);
    shared->Refused(detail);
    RefuseAndDrop(RefuseReason::kOldEpoch, detail);
    return;
  }
  if (m.msg_seq != session->peer_msg_seq + 1) {
    const std::string detail = std::string(KindName(m.body)) + " #" + std::to_string(m.msg_seq) +
                               " refused: out of order after #" +
                               std::to_string(session->peer_msg_seq);
    shared->Refused(detail);
    RefuseAndDrop(RefuseReason::kBadMessage, detail);
    return;
  }
  session->peer_msg_seq = m.msg_seq;
  session->last_heard = Clock::now();
  if (const Ack* ack = std::get_if<Ack>(&m.body)) {
    OnAck(m, *ack);
  } else if (const Refuse* refuse = std::get_if<Refuse>(&m.body)) {
    if (refuse->reason == RefuseReason::kShuttingDown) {
      // Its goodbye: answer with ours, the last message of the session, so that it knows
      // nothing more is coming and may close its socket.
      SendRefuse(session->id, RefuseReason::kShuttingDown, "goodbye");
    }
    DropSession("the standby refused: " + std::string(RefuseReasonName(refuse->reason)) + ": " +
                refuse->detail);
  } else {
    const std::string detail =
        std::string(KindName(m.body)) + " refused: not something a standby sends";
    shared->Refused(detail);
    RefuseAndDrop(RefuseReason::kBadMessage, detail);
  }
}

void LogShipper::Impl::OnHello(const Message& m, const Hello& hello) {
  if (session) DropSession("standby " + hello.node_name + " started a new session");
  epoch = opt.epoch_fn ? opt.epoch_fn() : MetaEpoch(db);
  PBX_LOG(kInfo, kLog, "hello from standby {} (session {:016x}): seq {}, epoch {}{}",
          hello.node_name, m.session, hello.last_seq, m.epoch,
          hello.was_active ? ", was active" : "");
  auto refuse = [&](RefuseReason reason, const std::string& detail) {
    shared->Refused(detail);
    SendRefuse(m.session, reason, detail);
  };
  if (m.msg_seq != 1) {
    return refuse(RefuseReason::kBadMessage,
                  "hello #" + std::to_string(m.msg_seq) + " refused: a hello is message #1");
  }
  if (hello.cluster_id != opt.cluster_id) {
    return refuse(RefuseReason::kClusterMismatch,
                  "standby " + hello.node_name + " refused: it belongs to cluster '" +
                      hello.cluster_id + "', this node to '" + opt.cluster_id + "'");
  }
  if (m.epoch > epoch) {
    newer_epoch_seen = std::max(newer_epoch_seen, m.epoch);
    const std::string detail = "standby " + hello.node_name + " has seen epoch " +
                               std::to_string(m.epoch) + ", newer than this node's " +
                               std::to_string(epoch) + ": this node is a stale active";
    PBX_LOG(kError, kLog, "{}", detail);
    return refuse(RefuseReason::kStaleActive, detail);
  }
  if (hello.cf_map != cf_map) {
    return refuse(RefuseReason::kCfMapMismatch,
                  "standby " + hello.node_name + " refused: its column-family map differs");
  }

  Session s;
  s.id = m.session;
  s.peer = hello.node_name;
  s.last_heard = s.last_sent = Clock::now();
  session = std::move(s);
  ++sessions;

  const SeqNo latest = db.LatestSeq();
  std::string why_checkpoint;
  if (hello.was_active) {
    why_checkpoint = "it was active since its last full resync";
  } else if (hello.last_seq > latest) {
    why_checkpoint = "it is ahead of this node (seq " + std::to_string(hello.last_seq) + " > " +
                     std::to_string(latest) + ")";
  } else if (!force_checkpoint.empty()) {
    why_checkpoint = force_checkpoint;
  } else if (hello.last_seq < latest) {
    Result<std::vector<store::WalBatch>> probe = db.ReadWalSince(hello.last_seq + 1, 1);
    if (!probe.ok()) why_checkpoint = probe.status().message();
  }

  Welcome w{opt.cluster_id, opt.node_name, Welcome::Mode::kStream, hello.last_seq + 1, latest};
  if (why_checkpoint.empty()) {
    session->phase = Phase::kStreaming;
    session->next_seq = hello.last_seq + 1;
    session->acked = hello.last_seq;
    PBX_LOG(kInfo, kLog, "streaming to standby {} from seq {} (this node is at {})",
            hello.node_name, hello.last_seq + 1, latest);
  } else {
    session->phase = Phase::kCheckpoint;
    w.mode = Welcome::Mode::kCheckpoint;
    PBX_LOG(kInfo, kLog, "sending a checkpoint to standby {}: {}", hello.node_name, why_checkpoint);
  }
  if (!Send(std::move(w), /*track=*/false)) return;
  if (session->phase == Phase::kStreaming) {
    // Its DB holds everything up to where it stands: nothing of that needs shipping.
    shared->Acked(hello.last_seq);
    CheckCaughtUp();
  }
}

void LogShipper::Impl::OnAck(const Message& m, const Ack& ack) {
  if (ack.acked_msg_seq < session->acked_msg_seq || ack.acked_msg_seq > session->sent_msg_seq) {
    const std::string detail = "ack #" + std::to_string(m.msg_seq) + " refused: it answers #" +
                               std::to_string(ack.acked_msg_seq) + ", outside #" +
                               std::to_string(session->acked_msg_seq) + "..#" +
                               std::to_string(session->sent_msg_seq);
    shared->Refused(detail);
    return RefuseAndDrop(RefuseReason::kBadMessage, detail);
  }
  const SeqNo latest = db.LatestSeq();
  if (session->phase == Phase::kStreaming) {
    if (ack.applied_seq < session->acked || ack.applied_seq >= session->next_seq) {
      const std::string detail =
          "ack #" + std::to_string(m.msg_seq) + " refused: seq " + std::to_string(ack.applied_seq) +
          " is outside what was acknowledged and sent (" + std::to_string(session->acked) + ".." +
          std::to_string(session->next_seq - 1) + ")";
      shared->Refused(detail);
      return RefuseAndDrop(RefuseReason::kBadMessage, detail);
    }
  } else if (session->phase == Phase::kInstall && ack.acked_msg_seq == session->done_msg_seq) {
    if (ack.applied_seq < session->checkpoint_seq || ack.applied_seq > latest) {
      const std::string detail =
          "ack #" + std::to_string(m.msg_seq) + " refused: seq " + std::to_string(ack.applied_seq) +
          " after installing the checkpoint of seq " + std::to_string(session->checkpoint_seq) +
          " (this node is at " + std::to_string(latest) + ")";
      shared->Refused(detail);
      return RefuseAndDrop(RefuseReason::kBadMessage, detail);
    }
    PBX_LOG(kInfo, kLog,
            "standby {} installed the checkpoint in {} ms and is at seq {}; streaming from there",
            session->peer,
            duration_cast<milliseconds>(Clock::now() - session->checkpoint_started).count(),
            ack.applied_seq);
    session->phase = Phase::kStreaming;
    session->next_seq = ack.applied_seq + 1;
    session->acked = ack.applied_seq;
  }
  // Before the install, applied_seq is the standby's old DB: it acknowledges nothing of ours.

  ++acks_received;
  session->acked_msg_seq = ack.acked_msg_seq;
  const auto now = Clock::now();
  while (!session->inflight.empty() && session->inflight.front().msg_seq <= ack.acked_msg_seq) {
    const InFlight& f = session->inflight.front();
    if (f.end_seq != 0) {
      ack_latency_us =
          std::chrono::duration_cast<std::chrono::microseconds>(now - f.sent_at).count();
      --session->inflight_batches;
    }
    session->inflight_bytes -= f.bytes;
    session->inflight.pop_front();
  }
  if (session->phase == Phase::kStreaming) {
    session->acked = ack.applied_seq;
    shared->Acked(ack.applied_seq);
    CheckCaughtUp();
  }
}

// Degraded ends once the standby has acknowledged everything sent, and the last WAL read
// had reached the end of the WAL: at that moment it had every commit there was.
void LogShipper::Impl::CheckCaughtUp() {
  if (!session || session->phase != Phase::kStreaming) return;
  if (session->at_tail && session->acked + 1 >= session->next_seq) {
    shared->LeaveDegraded(session->peer, session->acked);
  }
}

void LogShipper::Impl::Pump() {
  if (!session) return;
  if (session->phase == Phase::kCheckpoint) {
    if (!session->checkpoint_made) MakeCheckpoint();
    if (session && session->checkpoint_made) SendChunks();
  } else if (session->phase == Phase::kStreaming) {
    Stream();
  }
}

void LogShipper::Impl::Stream() {
  while (session && session->phase == Phase::kStreaming && CanSendBatches()) {
    shared->wake_pending.exchange(false);  // acq_rel: the commits it stood for are visible
    const SeqNo latest = db.LatestSeq();
    if (session->next_seq > latest) {
      session->at_tail = true;
      CheckCaughtUp();
      return;
    }
    Result<std::vector<store::WalBatch>> read = db.ReadWalSince(session->next_seq, opt.batch_bytes);
    if (!read.ok()) {
      force_checkpoint = "reading the WAL from seq " + std::to_string(session->next_seq) +
                         " failed: " + read.status().message();
      PBX_LOG(kWarn, kLog, "{}; the standby gets a checkpoint", force_checkpoint);
      return RefuseAndDrop(RefuseReason::kResync, force_checkpoint);
    }
    Batches message;
    message.active_seq = latest;
    size_t bytes = 0;
    auto flush = [&]() -> bool {
      if (message.batches.empty()) return true;
      const store::WalBatch& last = message.batches.back().batch;
      const SeqNo end = last.first_seq + last.count - 1;
      const size_t n = message.batches.size();
      size_t data_bytes = 0;
      for (const WireBatch& b : message.batches) data_bytes += b.batch.data.size();
      if (!Send(std::move(message), /*track=*/true, bytes, end)) return false;
      batches_shipped += n;
      bytes_shipped += data_bytes;
      session->next_seq = end + 1;
      message = Batches{};
      message.active_seq = latest;
      bytes = 0;
      return true;
    };
    for (store::WalBatch& batch : *read) {
      const size_t need = batch.data.size() + kBatchOverhead;
      if (need + kFrameOverhead > opt.max_frame_bytes) {
        force_checkpoint = "the batch at seq " + std::to_string(batch.first_seq) + " (" +
                           std::to_string(batch.data.size()) +
                           " bytes) does not fit in a frame (max_frame_bytes " +
                           std::to_string(opt.max_frame_bytes) + ")";
        if (!flush()) return;
        PBX_LOG(kWarn, kLog, "{}; the standby gets a checkpoint", force_checkpoint);
        return RefuseAndDrop(RefuseReason::kResync, force_checkpoint);
      }
      if (bytes + need + kFrameOverhead > opt.max_frame_bytes && !flush()) return;
      bytes += need;
      message.batches.push_back(MakeWireBatch(std::move(batch)));
    }
    if (!flush()) return;
    session->at_tail = session->next_seq > latest;
  }
}

void LogShipper::Impl::MakeCheckpoint() {
  namespace fs = std::filesystem;
  const auto started = Clock::now();
  CloseCheckpoint();
  Result<SeqNo> seq = db.CreateCheckpoint(opt.checkpoint_dir);
  if (!seq.ok()) {
    const std::string detail = "cannot make a checkpoint: " + seq.status().message();
    PBX_LOG(kError, kLog, "{}", detail);
    return RefuseAndDrop(RefuseReason::kResync, detail);
  }
  std::vector<CheckpointFile> files;
  uint64_t total = 0;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(opt.checkpoint_dir, ec)) {
    if (!e.is_regular_file()) continue;
    files.push_back(CheckpointFile{e.path().filename().string(), e.file_size(), 0});
    total += files.back().size;
  }
  if (ec) {
    const std::string detail = "cannot list the checkpoint: " + ec.message();
    PBX_LOG(kError, kLog, "{}", detail);
    return RefuseAndDrop(RefuseReason::kResync, detail);
  }
  std::sort(files.begin(), files.end(),
            [](const CheckpointFile& a, const CheckpointFile& b) { return a.name < b.name; });
  force_checkpoint.clear();
  session->checkpoint_made = true;
  session->checkpoint_seq = *seq;
  session->files = std::move(files);
  session->checkpoint_started = started;
  PBX_LOG(kInfo, kLog, "checkpoint at seq {} for standby {}: {} files, {} bytes, made in {} ms",
          *seq, session->peer, session->files.size(), total,
          duration_cast<milliseconds>(Clock::now() - started).count());
}

void LogShipper::Impl::SendChunks() {
  while (session && session->phase == Phase::kCheckpoint && WindowHasRoom()) {
    Session& s = *session;
    if (s.file_index == s.files.size()) {
      CheckpointDone done{s.checkpoint_seq, s.files};
      if (!Send(std::move(done), /*track=*/true)) return;
      session->done_msg_seq = session->sent_msg_seq;
      session->phase = Phase::kInstall;
      ++checkpoints_sent;
      CloseCheckpoint();  // every byte is read: the standby has what it needs
      return;
    }
    CheckpointFile& f = s.files[s.file_index];
    if (s.file_offset == f.size) {
      f.crc32c = s.file_crc;
      if (s.fd >= 0) ::close(s.fd);
      s.fd = -1;
      ++s.file_index;
      s.file_offset = 0;
      s.file_crc = 0;
      continue;
    }
    const std::string path = opt.checkpoint_dir + "/" + f.name;
    if (s.fd < 0) s.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (s.fd < 0) {
      return RefuseAndDrop(RefuseReason::kResync, "cannot open " + path + " of the checkpoint");
    }
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(opt.chunk_bytes, f.size - s.file_offset));
    std::string data(n, '\0');
    const ssize_t got = ::pread(s.fd, data.data(), n, static_cast<off_t>(s.file_offset));
    if (got != static_cast<ssize_t>(n)) {
      return RefuseAndDrop(RefuseReason::kResync,
                           "short read of " + path + " at offset " + std::to_string(s.file_offset));
    }
    s.file_crc = Crc32cExtend(s.file_crc, data.data(), n);
    CheckpointChunk chunk{f.name, s.file_offset, Crc32c(data), std::move(data)};
    s.file_offset += n;
    if (!Send(std::move(chunk), /*track=*/true, n)) return;
    checkpoint_bytes_sent += n;
  }
}

LogShipper::LogShipper(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LogShipper::~LogShipper() { Stop(); }

Result<std::unique_ptr<LogShipper>> LogShipper::Start(store::ReplicatedDb& db,
                                                      ShipperOptions options) {
  if (options.max_frame_bytes < options.chunk_bytes + kFrameOverhead ||
      options.max_frame_bytes < options.batch_bytes + kFrameOverhead) {
    return Status::InvalidArgument("ShipperOptions.max_frame_bytes must exceed chunk_bytes and " +
                                   std::string("batch_bytes by ") + std::to_string(kFrameOverhead));
  }
  if (options.chunk_bytes == 0) return Status::InvalidArgument("ShipperOptions.chunk_bytes is 0");
  if (options.batches_in_flight == 0) {
    return Status::InvalidArgument("ShipperOptions.batches_in_flight is 0");
  }
  if (options.checkpoint_dir.empty()) options.checkpoint_dir = db.Dir() + "-checkpoint";
  auto impl = std::make_unique<Impl>(db, std::move(options));
  const ShipperOptions& opt = impl->opt;
  LinkOptions link_options;
  // A standby sends only small messages (hello, acks, refusals).
  link_options.recv_max_bytes = RecvMaxBytes(kMaxStandbyFrame);
  link_options.send_timeout = opt.send_timeout;
  PBX_ASSIGN_OR_RETURN(impl->link, Link::Listen(opt.listen_url, link_options));
  impl->link_url = impl->link->url();
  impl->epoch = opt.epoch_fn ? opt.epoch_fn() : MetaEpoch(db);
  Result<std::string> cf_map = db.Get(store::Table::kMeta, "cf_map");
  impl->cf_map = cf_map.ok() ? *cf_map : std::string();
  std::error_code ec;
  std::filesystem::remove_all(opt.checkpoint_dir, ec);  // left over from a crash

  Shared& shared = *impl->shared;
  shared.link = impl->link.get();
  {
    std::lock_guard<std::mutex> lock(shared.mu);
    shared.st.degraded = true;  // until a standby has caught up
    shared.st.degraded_reason = "no standby connected yet";
    shared.st.degraded_since_unix_ms = UnixMs();
    shared.st.degraded_count = 1;
  }
  impl->Publish();
  std::shared_ptr<Shared> ref = impl->shared;
  db.SetCommitObserver([ref](SeqNo seq) { ref->OnCommit(seq); });
  db.SetReplicationGate([ref](SeqNo seq) { ref->WaitAcked(seq); });
  PBX_LOG(kInfo, kLog, "shipping {} on {} (epoch {}, ack timeout {} ms)", db.Dir(),
          impl->link->url(), impl->epoch, opt.ack_timeout.count());
  impl->thread = std::thread([raw = impl.get()] { raw->Run(); });
  return std::unique_ptr<LogShipper>(new LogShipper(std::move(impl)));
}

void LogShipper::Stop() {
  Impl& impl = *impl_;
  if (impl.stopped) return;
  impl.stopped = true;
  // Hooks first: no commit enters the gate any more, none calls the observer (whose Link
  // is about to go); then release the commits already waiting.
  impl.db.SetReplicationGate(nullptr);
  impl.db.SetCommitObserver(nullptr);
  {
    std::lock_guard<std::mutex> lock(impl.shared->mu);
    impl.shared->stopped = true;
    impl.shared->st.connected = false;
  }
  impl.shared->acked_cv.notify_all();
  // The thread says goodbye to the standby and drains the link before it ends (bounded by
  // send_timeout and kMaxDrain: it never blocks for good), and only then is the socket
  // closed. Closing it under the thread would race NNG's close with arriving messages,
  // which can hang NNG 1.5.2 (Link's class comment).
  impl.stop.store(true);
  impl.link->Wake();
  impl.thread.join();
  impl.link->Close();
  impl.link.reset();
  PBX_LOG(kInfo, kLog, "shipper on {} stopped", impl.opt.listen_url);
}

ShipperStatus LogShipper::status() const {
  const SeqNo latest = impl_->db.LatestSeq();
  std::lock_guard<std::mutex> lock(impl_->shared->mu);
  ShipperStatus st = impl_->shared->st;
  st.latest_seq = latest;
  st.peer_acked_seq = impl_->shared->acked;
  st.lag_seqs = latest > st.peer_acked_seq ? latest - st.peer_acked_seq : 0;
  const auto& unacked = impl_->shared->unacked;
  st.lag_ms = unacked.empty()
                  ? 0
                  : static_cast<uint64_t>(
                        duration_cast<milliseconds>(Clock::now() - unacked.front().second).count());
  return st;
}

const std::string& LogShipper::url() const { return impl_->link_url; }

}  // namespace pbx::ship
