// LogReceiver: the standby's side of FORMAT.md. One thread; see the class comment.

#include "replication/ship/log_receiver.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <random>
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
// Received batches are applied at the latest when this many bytes are waiting.
constexpr size_t kMaxPendingBytes = 8 << 20;

using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

uint64_t MetaEpoch(store::StateStore& db) {
  Result<store::ClusterMeta> meta = store::MetaRepo(db).Get();
  return meta.ok() ? meta->epoch : 0;
}

// A checkpoint file name from the wire: a plain name, never a path.
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
         name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

Status WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Io(std::string("write: ") + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace

struct LogReceiver::Impl {
  enum class Phase { kHello, kCheckpoint, kStreaming };

  struct ReceivedFile {
    uint64_t size = 0;
    uint32_t crc32c = 0;
  };

  // The session with an active, from our Hello on. Receiver thread only.
  struct Session {
    uint64_t id = 0;
    uint64_t epoch = 0;  // ours at the Hello, then the active's from its Welcome
    std::string peer;
    Phase phase = Phase::kHello;
    uint64_t sent_msg_seq = 0;
    uint64_t peer_msg_seq = 0;
    SeqNo expected = 0;  // streaming: the first seq of the next batch
    Clock::time_point hello_sent;
    Clock::time_point last_heard;
    // Checkpoint being received into opt.staging_dir, one file after the other.
    std::string file;
    uint64_t file_offset = 0;
    uint32_t file_crc = 0;
    int fd = -1;
    std::map<std::string, ReceivedFile> received;
    uint64_t checkpoint_bytes = 0;
    Clock::time_point checkpoint_started;
  };

  Impl(store::ReplicatedDb& d, ReceiverOptions o) : db(d), opt(std::move(o)) {
    std::random_device rd;
    rng.seed((static_cast<uint64_t>(rd()) << 32) ^ rd());
  }

  void Run();
  void Loop();
  // The syncer thread: syncs the WAL behind the receiver thread, at most every
  // opt.sync_interval, each fsync covering everything applied before it started.
  void SyncLoop();
  // Receiver thread: batches were applied; the syncer makes them durable soon.
  void RequestSync();
  // One SyncWal, counted in the status.
  void SyncNow();
  void StartSession();
  void Handle(const std::string& bytes);
  void OnWelcome(const Message& m, const Welcome& w);
  void OnBatches(const Message& m, Batches& bs);
  void OnChunk(const Message& m, const CheckpointChunk& c);
  void OnDone(const Message& m, const CheckpointDone& d);
  void SendAck(uint64_t acked_msg_seq);
  // Applies the batches received since the last call (one fsync) and acknowledges the last
  // message received, once for everything that queued up: group commit on this side.
  void FlushPending();
  bool Send(Body body);
  // Refuses the current message: logs, tells the active, drops the session and starts a
  // new one (the resync).
  void RefuseAndResync(RefuseReason reason, const std::string& detail);
  void DropSession(const std::string& reason);
  Status FinishFile();
  void CloseStaging();
  void Refused(const std::string& line);
  void UpdateStatus();
  // How long the active may be silent: longer while it makes the checkpoint it announced
  // (its thread is busy flushing and linking files, and sends nothing meanwhile).
  milliseconds SilenceLimit() const {
    const bool making_checkpoint = session && session->phase == Phase::kCheckpoint &&
                                   session->file.empty() && session->received.empty();
    return making_checkpoint ? std::max(opt.session_timeout, opt.checkpoint_wait)
                             : opt.session_timeout;
  }

  store::ReplicatedDb& db;
  const ReceiverOptions opt;
  std::unique_ptr<Link> link;
  std::thread thread;
  std::atomic<bool> stop{false};
  std::atomic<bool> abandon{false};  // stopping without the goodbye (Abandon)
  bool stopped = false;              // owner thread only

  // Receiver thread only:
  std::optional<Session> session;
  std::mt19937_64 rng;
  uint64_t my_epoch = 0;  // the highest epoch this node has seen: older messages are refused
  Clock::time_point next_hello_at{};
  std::string cf_map;
  // Checked batches of the messages received in one go, applied by FlushPending.
  std::vector<store::WalBatch> pending;
  size_t pending_bytes = 0;
  uint64_t pending_ack = 0;  // msgSeq to acknowledge; 0: none

  std::thread sync_thread;
  std::mutex sync_mu;
  std::condition_variable sync_cv;
  uint64_t applies = 0;    // guarded by sync_mu: FlushPending calls that wrote something
  bool sync_stop = false;  // guarded by sync_mu

  mutable std::mutex mu;
  ReceiverStatus st;                 // guarded by mu
  bool caught_up = true;             // guarded by mu
  Clock::time_point caught_up_at{};  // guarded by mu: when it last was
};

namespace {

// A thread entry point: nothing may escape (STYLE.md §5).
template <typename F>
void RunGuarded(const char* thread, F&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    PBX_LOG(kError, kLog, "{} thread: {}", thread, e.what());
    std::abort();
  } catch (...) {
    PBX_LOG(kError, kLog, "{} thread: unknown exception", thread);
    std::abort();
  }
}

}  // namespace

void LogReceiver::Impl::Run() {
  RunGuarded("receiver", [this] { Loop(); });
}

void LogReceiver::Impl::SyncLoop() {
  Clock::time_point last_start{};
  uint64_t covered = 0;  // applies made durable by a sync so far
  std::unique_lock<std::mutex> lock(sync_mu);
  while (true) {
    sync_cv.wait(lock, [&] { return sync_stop || applies > covered; });
    // What is applied while we wait out the interval joins this sync. Stop() syncs itself.
    if (sync_cv.wait_until(lock, last_start + opt.sync_interval, [&] { return sync_stop; })) {
      return;
    }
    const uint64_t target = applies;
    lock.unlock();
    last_start = Clock::now();
    SyncNow();  // a failure is logged; the next apply tries again
    lock.lock();
    covered = target;
  }
}

void LogReceiver::Impl::RequestSync() {
  {
    std::lock_guard<std::mutex> lock(sync_mu);
    ++applies;
  }
  sync_cv.notify_one();
}

void LogReceiver::Impl::SyncNow() {
  Result<SeqNo> synced = db.SyncWal();
  if (!synced.ok()) {
    PBX_LOG(kError, kLog, "syncing the WAL of {}: {}", db.Dir(), synced.status().ToString());
    return;
  }
  std::lock_guard<std::mutex> lock(mu);
  st.synced_seq = *synced;
  ++st.wal_syncs;
}

void LogReceiver::Impl::Loop() {
  while (!stop.load()) {
    const auto now = Clock::now();
    auto deadline = now + std::chrono::seconds(1);
    if (session) {
      deadline = session->phase == Phase::kHello ? session->hello_sent + opt.hello_retry
                                                 : session->last_heard + SilenceLimit();
    } else if (link->connected()) {
      deadline = std::max(now, next_hello_at);
    }
    Link::Events events = link->Wait(deadline);
    if (stop.load()) break;
    if (events.pipes_removed > 0 && session) DropSession("connection to the active lost");
    while (std::optional<std::string> bytes = link->TryRecv()) Handle(*bytes);
    FlushPending();
    const auto later = Clock::now();
    if (session && session->phase == Phase::kHello &&
        later - session->hello_sent >= opt.hello_retry) {
      PBX_LOG(kDebug, kLog, "no welcome for session {:016x}: saying hello again", session->id);
      session.reset();
    }
    if (session && session->phase != Phase::kHello &&
        later - session->last_heard > SilenceLimit()) {
      RefuseAndResync(RefuseReason::kResync, "nothing heard from the active for " +
                                                 std::to_string(SilenceLimit().count()) + " ms");
    }
    if (!session && link->connected() && later >= next_hello_at) StartSession();
    UpdateStatus();
  }
  // Leaving: say goodbye and take in what the active still had in flight, up to its own
  // goodbye, its last message; only then may the socket be closed (Link's class comment).
  // An abandoned session just ends: the active is dead and answers nothing.
  if (session && abandon.load()) session.reset();
  if (session) {
    const uint64_t id = session->id;
    Message bye{session->epoch, id, ++session->sent_msg_seq,
                Refuse{RefuseReason::kShuttingDown, "the standby is stopping"}};
    (void)link->Send(EncodeFrame(bye));
    CloseStaging();
    session.reset();
    link->DrainUntil(
        [&](const std::string& bytes) {
          Result<Message> m = DecodeFrame(bytes, opt.max_frame_bytes);
          if (!m.ok() || m->session != id) return false;
          const Refuse* r = std::get_if<Refuse>(&m->body);
          return r != nullptr && r->reason == RefuseReason::kShuttingDown;
        },
        opt.goodbye_timeout);
  }
  CloseStaging();
}

void LogReceiver::Impl::UpdateStatus() {
  const SeqNo applied = db.LatestSeq();
  std::lock_guard<std::mutex> lock(mu);
  const bool established = session && session->phase != Phase::kHello;
  st.connected = established;
  st.peer_name = established ? session->peer : std::string();
  st.phase = !session                               ? "idle"
             : session->phase == Phase::kHello      ? "hello"
             : session->phase == Phase::kCheckpoint ? "checkpoint"
                                                    : "streaming";
  if (established) st.epoch = session->epoch;
  const bool now_caught_up = applied >= st.active_seq;
  if (now_caught_up || caught_up) caught_up_at = Clock::now();
  caught_up = now_caught_up;
}

void LogReceiver::Impl::Refused(const std::string& line) {
  PBX_LOG(kWarn, kLog, "{}", line);
  std::lock_guard<std::mutex> lock(mu);
  ++st.refused;
  st.last_refusal = line;
}

void LogReceiver::Impl::StartSession() {
  my_epoch = std::max(my_epoch, opt.epoch_fn ? opt.epoch_fn() : MetaEpoch(db));
  Session s;
  s.id = rng();
  s.epoch = my_epoch;
  s.hello_sent = s.last_heard = Clock::now();
  session = std::move(s);
  Hello hello{opt.cluster_id, opt.node_name, db.LatestSeq(),
              opt.was_active_fn ? opt.was_active_fn() : false, cf_map};
  PBX_LOG(kDebug, kLog, "hello to the active (session {:016x}): seq {}, epoch {}", session->id,
          hello.last_seq, my_epoch);
  if (!Send(std::move(hello))) next_hello_at = Clock::now() + opt.hello_retry;
}

bool LogReceiver::Impl::Send(Body body) {
  Message m{session->epoch, session->id, ++session->sent_msg_seq, std::move(body)};
  Status s = link->Send(EncodeFrame(m));
  if (!s.ok()) {
    DropSession("sending " + std::string(KindName(m.body)) + " failed: " + s.message());
    return false;
  }
  return true;
}

void LogReceiver::Impl::FlushPending() {
  if (!session) return;
  if (!pending.empty()) {
    const SeqNo from = pending.front().first_seq;
    const size_t count = pending.size();
    Status s = db.ApplyWalBatches(pending);
    pending.clear();
    if (!s.ok()) {
      const std::string detail =
          "batches from seq " + std::to_string(from) + " refused: " + s.ToString();
      Refused(detail);
      return RefuseAndResync(RefuseReason::kBadMessage, detail);
    }
    RequestSync();
    std::lock_guard<std::mutex> lock(mu);
    st.batches_applied += count;
    st.bytes_applied += pending_bytes;
  }
  pending_bytes = 0;
  if (pending_ack != 0) SendAck(std::exchange(pending_ack, 0));
}

void LogReceiver::Impl::SendAck(uint64_t acked_msg_seq) {
  if (Send(Ack{db.LatestSeq(), acked_msg_seq})) {
    std::lock_guard<std::mutex> lock(mu);
    ++st.acks_sent;
  }
}

void LogReceiver::Impl::RefuseAndResync(RefuseReason reason, const std::string& detail) {
  if (!session) return;
  if (session->phase != Phase::kHello) {
    Message m{session->epoch, session->id, ++session->sent_msg_seq, Refuse{reason, detail}};
    (void)link->Send(EncodeFrame(m));  // best effort: we start over either way
  } else {
    std::lock_guard<std::mutex> lock(mu);
    ++st.resyncs;  // DropSession counts established sessions only
  }
  DropSession(detail);
  next_hello_at = Clock::now();  // at once: the active restarts from what we announce
}

void LogReceiver::Impl::DropSession(const std::string& reason) {
  if (!session) return;
  if (session->phase != Phase::kHello) {
    PBX_LOG(kWarn, kLog, "session {:016x} with active {} ended: {}", session->id, session->peer,
            reason);
    std::lock_guard<std::mutex> lock(mu);
    ++st.resyncs;
  }
  CloseStaging();
  session.reset();
  // Batches not yet applied go too: the next Hello announces what is, and they come again.
  pending.clear();
  pending_bytes = 0;
  pending_ack = 0;
}

void LogReceiver::Impl::CloseStaging() {
  if (session && session->fd >= 0) {
    ::close(session->fd);
    session->fd = -1;
  }
  std::error_code ec;
  std::filesystem::remove_all(opt.staging_dir, ec);
}

void LogReceiver::Impl::Handle(const std::string& bytes) {
  Result<Message> decoded = DecodeFrame(bytes, opt.max_frame_bytes);
  if (!decoded.ok()) {
    const std::string detail = "message from the active refused: " + decoded.status().message();
    Refused(detail);
    RefuseAndResync(RefuseReason::kBadMessage, detail);
    return;
  }
  Message& m = *decoded;
  if (!session || m.session != session->id) {
    PBX_LOG(kDebug, kLog, "ignoring {} of session {:016x}", KindName(m.body), m.session);
    return;
  }
  const std::string kind(KindName(m.body));
  if (m.epoch < my_epoch) {
    const std::string detail = kind + " from epoch " + std::to_string(m.epoch) +
                               " refused: this node has seen epoch " + std::to_string(my_epoch);
    Refused(detail);
    RefuseAndResync(RefuseReason::kOldEpoch, detail);
    // An old active does not get better by retrying at once.
    next_hello_at = Clock::now() + opt.refused_retry;
    return;
  }
  if (m.msg_seq != session->peer_msg_seq + 1) {
    const std::string detail = kind + " #" + std::to_string(m.msg_seq) +
                               " refused: out of order after #" +
                               std::to_string(session->peer_msg_seq);
    Refused(detail);
    return RefuseAndResync(RefuseReason::kBadMessage, detail);
  }
  session->peer_msg_seq = m.msg_seq;
  session->last_heard = Clock::now();

  const Phase phase = session->phase;
  if (const Refuse* r = std::get_if<Refuse>(&m.body)) {
    if (r->reason == RefuseReason::kShuttingDown) {
      // Its goodbye: answer with ours, the last message of the session, so that it knows
      // nothing more is coming and may close its socket.
      (void)Send(Refuse{RefuseReason::kShuttingDown, "goodbye"});
    }
    const std::string line =
        "the active refused: " + std::string(RefuseReasonName(r->reason)) + ": " + r->detail;
    PBX_LOG(kWarn, kLog, "{}", line);
    DropSession(line);
    const bool retry_now =
        r->reason == RefuseReason::kBadMessage || r->reason == RefuseReason::kResync;
    {
      std::lock_guard<std::mutex> lock(mu);
      st.last_refusal = line;
    }
    next_hello_at = Clock::now() + (retry_now ? milliseconds(0) : opt.refused_retry);
  } else if (const Welcome* w = std::get_if<Welcome>(&m.body); w && phase == Phase::kHello) {
    OnWelcome(m, *w);
  } else if (Batches* bs = std::get_if<Batches>(&m.body); bs && phase == Phase::kStreaming) {
    OnBatches(m, *bs);
  } else if (const CheckpointChunk* c = std::get_if<CheckpointChunk>(&m.body);
             c && phase == Phase::kCheckpoint) {
    OnChunk(m, *c);
  } else if (const CheckpointDone* d = std::get_if<CheckpointDone>(&m.body);
             d && phase == Phase::kCheckpoint) {
    OnDone(m, *d);
  } else if (const Keepalive* k = std::get_if<Keepalive>(&m.body); k && phase != Phase::kHello) {
    {
      std::lock_guard<std::mutex> lock(mu);
      st.active_seq = std::max(st.active_seq, k->active_seq);
    }
    pending_ack = m.msg_seq;
  } else {
    const std::string detail = kind + " #" + std::to_string(m.msg_seq) +
                               " refused: not expected from an active in this state";
    Refused(detail);
    RefuseAndResync(RefuseReason::kBadMessage, detail);
  }
}

void LogReceiver::Impl::OnWelcome(const Message& m, const Welcome& w) {
  if (w.cluster_id != opt.cluster_id) {
    const std::string detail = "active " + w.node_name + " refused: it belongs to cluster '" +
                               w.cluster_id + "', this node to '" + opt.cluster_id + "'";
    Refused(detail);
    Message refuse{session->epoch, session->id, ++session->sent_msg_seq,
                   Refuse{RefuseReason::kClusterMismatch, detail}};
    (void)link->Send(EncodeFrame(refuse));
    session.reset();
    next_hello_at = Clock::now() + opt.refused_retry;
    return;
  }
  session->peer = w.node_name;
  session->epoch = m.epoch;
  my_epoch = std::max(my_epoch, m.epoch);
  const SeqNo applied = db.LatestSeq();
  if (w.mode == Welcome::Mode::kStream) {
    if (w.start_seq != applied + 1) {
      const std::string detail = "welcome refused: it streams from seq " +
                                 std::to_string(w.start_seq) + ", but this DB is at " +
                                 std::to_string(applied);
      Refused(detail);
      return RefuseAndResync(RefuseReason::kBadMessage, detail);
    }
    session->phase = Phase::kStreaming;
    session->expected = w.start_seq;
    PBX_LOG(kInfo, kLog, "streaming from active {} (epoch {}) at seq {}; it is at {}", w.node_name,
            m.epoch, w.start_seq, w.active_seq);
  } else {
    std::error_code ec;
    std::filesystem::remove_all(opt.staging_dir, ec);
    std::filesystem::create_directories(opt.staging_dir, ec);
    if (ec) {
      PBX_LOG(kError, kLog, "cannot make {}: {}", opt.staging_dir, ec.message());
      return RefuseAndResync(RefuseReason::kResync, "the standby cannot stage a checkpoint");
    }
    session->phase = Phase::kCheckpoint;
    session->checkpoint_started = Clock::now();
    PBX_LOG(kInfo, kLog, "receiving a checkpoint from active {} (epoch {}); this DB is at seq {}",
            w.node_name, m.epoch, applied);
  }
  std::lock_guard<std::mutex> lock(mu);
  ++st.sessions;
  st.active_seq = std::max(st.active_seq, w.active_seq);
}

void LogReceiver::Impl::OnBatches(const Message& m, Batches& bs) {
  SeqNo expected = session->expected;
  size_t bytes = 0;
  // Everything is checked before anything is applied: a bad message changes nothing.
  for (const WireBatch& wb : bs.batches) {
    const store::WalBatch& b = wb.batch;
    const std::string what = "batch at seq " + std::to_string(b.first_seq);
    if (Crc32c(b.data) != wb.crc32c) {
      Refused(what + " refused: checksum mismatch");
      return RefuseAndResync(RefuseReason::kBadMessage, what + ": checksum mismatch");
    }
    if (b.first_seq != expected || b.count == 0) {
      const std::string detail = what + " refused: expected seq " + std::to_string(expected) +
                                 (b.count == 0             ? " (empty batch)"
                                  : b.first_seq > expected ? " (a gap)"
                                                           : " (an overlap)");
      Refused(detail);
      return RefuseAndResync(RefuseReason::kBadMessage, detail);
    }
    expected = b.first_seq + b.count;
    bytes += b.data.size();
  }
  // Applied by FlushPending, together with whatever else queued up.
  for (WireBatch& wb : bs.batches) pending.push_back(std::move(wb.batch));
  pending_bytes += bytes;
  pending_ack = m.msg_seq;
  session->expected = expected;
  {
    std::lock_guard<std::mutex> lock(mu);
    st.active_seq = std::max({st.active_seq, bs.active_seq, expected - 1});
  }
  if (pending_bytes >= kMaxPendingBytes) FlushPending();
}

Status LogReceiver::Impl::FinishFile() {
  Session& s = *session;
  if (s.file.empty()) return Status::Ok();
  Status status = Status::Ok();
  if (s.fd >= 0) {
    // Durable before the install, which renames the directory into the DB's place.
    if (::fsync(s.fd) != 0) status = Status::Io("fsync " + s.file + ": " + std::strerror(errno));
    ::close(s.fd);
    s.fd = -1;
  }
  s.received[s.file] = ReceivedFile{s.file_offset, s.file_crc};
  s.file.clear();
  return status;
}

void LogReceiver::Impl::OnChunk(const Message& m, const CheckpointChunk& c) {
  Session& s = *session;
  const std::string what =
      "checkpoint chunk of " + c.file + " at offset " + std::to_string(c.offset);
  auto refuse = [&](const std::string& problem) {
    Refused(what + " refused: " + problem);
    RefuseAndResync(RefuseReason::kBadMessage, what + ": " + problem);
  };
  if (!IsPlainFileName(c.file)) return refuse("not a plain file name");
  if (Crc32c(c.data) != c.crc32c) return refuse("checksum mismatch");
  if (c.file != s.file) {
    if (c.offset != 0) return refuse("a file starts at offset 0");
    if (s.received.count(c.file) != 0) return refuse("that file was already sent");
    if (Status st_finish = FinishFile(); !st_finish.ok()) return refuse(st_finish.ToString());
    const std::string path = opt.staging_dir + "/" + c.file;
    s.fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (s.fd < 0) return refuse("cannot create " + path + ": " + std::strerror(errno));
    s.file = c.file;
    s.file_offset = 0;
    s.file_crc = 0;
  }
  if (c.offset != s.file_offset) {
    return refuse("expected offset " + std::to_string(s.file_offset));
  }
  if (Status w = WriteAll(s.fd, c.data); !w.ok()) return refuse(w.ToString());
  s.file_offset += c.data.size();
  s.file_crc = Crc32cExtend(s.file_crc, c.data.data(), c.data.size());
  s.checkpoint_bytes += c.data.size();
  pending_ack = m.msg_seq;
}

void LogReceiver::Impl::OnDone(const Message& m, const CheckpointDone& d) {
  auto refuse = [&](const std::string& problem) {
    Refused("checkpoint refused: " + problem);
    RefuseAndResync(RefuseReason::kBadMessage, "checkpoint: " + problem);
  };
  if (Status finish = FinishFile(); !finish.ok()) return refuse(finish.ToString());
  Session& s = *session;
  for (const CheckpointFile& f : d.files) {
    if (!IsPlainFileName(f.name)) return refuse("'" + f.name + "' is not a plain file name");
    auto it = s.received.find(f.name);
    if (it == s.received.end()) {
      if (f.size != 0) return refuse(f.name + " was never sent");
      // Empty files travel in the list only.
      const std::string path = opt.staging_dir + "/" + f.name;
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0) return refuse("cannot create " + path + ": " + std::strerror(errno));
      ::close(fd);
      it = s.received.emplace(f.name, ReceivedFile{0, 0}).first;
    }
    if (it->second.size != f.size || it->second.crc32c != f.crc32c) {
      return refuse(f.name + ": received " + std::to_string(it->second.size) +
                    " bytes that do not match the list (" + std::to_string(f.size) +
                    " bytes, or the checksum)");
    }
  }
  if (s.received.size() != d.files.size()) {
    return refuse(std::to_string(s.received.size()) + " files received, the list has " +
                  std::to_string(d.files.size()));
  }
  const SeqNo before = db.LatestSeq();
  Status installed = db.RestoreFromCheckpoint(opt.staging_dir);
  if (!installed.ok()) return refuse("installing it failed: " + installed.ToString());
  const SeqNo now = db.LatestSeq();
  if (now < d.seq) {
    return refuse("it holds seq " + std::to_string(now) + ", less than the announced " +
                  std::to_string(d.seq));
  }
  const auto took = duration_cast<milliseconds>(Clock::now() - s.checkpoint_started).count();
  PBX_LOG(kInfo, kLog,
          "installed a checkpoint from active {}: seq {} -> {}, {} files, {} bytes, in {} ms",
          s.peer, before, now, d.files.size(), s.checkpoint_bytes, took);
  s.phase = Phase::kStreaming;
  s.expected = now + 1;
  s.received.clear();
  {
    std::lock_guard<std::mutex> lock(mu);
    ++st.checkpoints_installed;
    st.active_seq = std::max(st.active_seq, now);
  }
  if (opt.on_full_resync) opt.on_full_resync(now);
  pending_ack = 0;
  SendAck(m.msg_seq);
}

LogReceiver::LogReceiver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LogReceiver::~LogReceiver() { Stop(); }

Result<std::unique_ptr<LogReceiver>> LogReceiver::Start(store::ReplicatedDb& db,
                                                        ReceiverOptions options) {
  if (options.staging_dir.empty()) options.staging_dir = db.Dir() + "-incoming";
  auto impl = std::make_unique<Impl>(db, std::move(options));
  const ReceiverOptions& opt = impl->opt;
  LinkOptions link_options;
  link_options.recv_max_bytes = RecvMaxBytes(opt.max_frame_bytes);
  link_options.send_timeout = opt.send_timeout;
  link_options.reconnect_min = opt.reconnect_min;
  link_options.reconnect_max = opt.reconnect_max;
  PBX_ASSIGN_OR_RETURN(impl->link, Link::Dial(opt.peer_url, link_options));
  Result<std::string> cf_map = db.Get(store::Table::kMeta, "cf_map");
  impl->cf_map = cf_map.ok() ? *cf_map : std::string();
  std::error_code ec;
  std::filesystem::remove_all(opt.staging_dir, ec);  // left over from a crash
  {
    std::lock_guard<std::mutex> lock(impl->mu);
    impl->st.phase = "idle";
    impl->caught_up_at = Clock::now();
  }
  impl->thread = std::thread([raw = impl.get()] { raw->Run(); });
  impl->sync_thread =
      std::thread([raw = impl.get()] { RunGuarded("WAL sync", [raw] { raw->SyncLoop(); }); });
  PBX_LOG(kInfo, kLog, "receiving into {} from {} (this DB is at seq {})", db.Dir(), opt.peer_url,
          db.LatestSeq());
  return std::unique_ptr<LogReceiver>(new LogReceiver(std::move(impl)));
}

void LogReceiver::Abandon() {
  impl_->abandon.store(true);
  Stop();
}

void LogReceiver::Stop() {
  Impl& impl = *impl_;
  if (impl.stopped) return;
  impl.stopped = true;
  // As in LogShipper::Stop: the thread says goodbye and drains the link, then the socket
  // is closed.
  impl.stop.store(true);
  impl.link->Wake();
  impl.thread.join();
  impl.link->Close();
  impl.link.reset();
  {
    std::lock_guard<std::mutex> lock(impl.sync_mu);
    impl.sync_stop = true;
  }
  impl.sync_cv.notify_one();
  impl.sync_thread.join();
  // Everything acknowledged is durable before the owner goes on (to a promotion, say).
  impl.SyncNow();
  std::lock_guard<std::mutex> lock(impl.mu);
  impl.st.connected = false;
  impl.st.phase = "idle";
  PBX_LOG(kInfo, kLog, "receiver from {} stopped", impl.opt.peer_url);
}

ReceiverStatus LogReceiver::status() const {
  const SeqNo applied = impl_->db.LatestSeq();
  std::lock_guard<std::mutex> lock(impl_->mu);
  ReceiverStatus st = impl_->st;
  st.applied_seq = applied;
  st.lag_seqs = st.active_seq > applied ? st.active_seq - applied : 0;
  st.lag_ms = st.active_seq > applied
                  ? static_cast<uint64_t>(
                        duration_cast<milliseconds>(Clock::now() - impl_->caught_up_at).count())
                  : 0;
  return st;
}

}  // namespace pbx::ship
