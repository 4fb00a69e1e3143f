#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "node/core/status.h"
#include "replication/store/wal.h"

// The standby's half of log shipping (DESIGN.md §3, FORMAT.md): dials the active, announces
// where its DB stands, and applies what the active sends (WAL batches unchanged, or a
// checkpoint), acknowledging each message once it is written (synced in the background).
namespace pbx::ship {

using store::SeqNo;

struct ReceiverOptions {
  std::string peer_url;    // the active's listen URL
  std::string cluster_id;  // an active with another cluster id is refused
  std::string node_name;   // this node, as the active's logs and status name it
  // True if this node has been active since its last full resync (its WAL may hold commits
  // the new active never saw): it then always gets a checkpoint. Read at every handshake.
  // Default: false.
  std::function<bool()> was_active_fn;
  // Called on the receiver thread after a checkpoint was installed, with the DB's new seq:
  // the place to clear the persistent was-active flag. Must not block for long.
  std::function<void(SeqNo)> on_full_resync;
  // This node's own epoch; messages from older epochs are refused. Default: the epoch of
  // the meta record (MetaRepo) of the replicated DB, 0 if none.
  std::function<uint64_t()> epoch_fn;
  size_t max_frame_bytes = 32 << 20;  // must equal the shipper's
  // Where an incoming checkpoint is assembled; must be on the DB's filesystem (it is moved
  // into place). Empty: "<db dir>-incoming".
  std::string staging_dir;
  std::chrono::milliseconds hello_retry{500};       // a Hello unanswered this long is resent
  std::chrono::milliseconds refused_retry{1000};    // after a refusal, wait this long
  std::chrono::milliseconds session_timeout{3000};  // silence from the active that ends a session
  // ... except between a checkpoint Welcome and the first chunk, while the active makes it.
  std::chrono::milliseconds checkpoint_wait{60000};
  std::chrono::milliseconds send_timeout{1000};
  // Stop() waits this long at most for the active's answer to its goodbye (FORMAT.md).
  std::chrono::milliseconds goodbye_timeout{500};
  std::chrono::milliseconds reconnect_min{50};   // NNG redial interval, first ...
  std::chrono::milliseconds reconnect_max{500};  // ... and at most
  // Batches are acknowledged once written (the OS has them), and the WAL is synced in the
  // background: one fsync at most every sync_interval, covering everything applied before
  // it started (replication/README.md, "Durability"). Stop() always syncs.
  std::chrono::milliseconds sync_interval{5};
};

struct ReceiverStatus {
  bool connected = false;  // a session with an active is established
  std::string peer_name;   // the active's node name
  std::string phase;       // "idle", "hello", "checkpoint" or "streaming"
  uint64_t epoch = 0;      // the session's epoch (the active's)
  SeqNo applied_seq = 0;   // LatestSeq() of the replicated DB
  SeqNo active_seq = 0;    // the active's latest seq, as last heard
  uint64_t lag_seqs = 0;   // active_seq - applied_seq
  uint64_t lag_ms = 0;     // time since this node was last caught up (0 if it is)
  uint64_t sessions = 0;   // sessions established
  uint64_t resyncs = 0;    // sessions that ended other than by Stop (bad input, silence, link
                           // loss, a refusal by the active): each is followed by a new Hello
  uint64_t checkpoints_installed = 0;
  uint64_t batches_applied = 0;
  uint64_t bytes_applied = 0;
  uint64_t acks_sent = 0;
  SeqNo synced_seq = 0;      // the WAL is synced up to here (the last background sync)
  uint64_t wal_syncs = 0;    // background syncs done
  uint64_t refused = 0;      // messages refused
  std::string last_refusal;  // the log line of the last one
};

// Receives the log of an active into `db`.
//
// Thread affinity: Start, Stop and the destructor on the owner's thread; status() from any
// thread. One receiver thread receives, checks, applies and acknowledges; a second one
// syncs the WAL behind it, so that an fsync never delays an apply or an ack.
// Ownership: `db` is borrowed and must outlive the receiver. Nothing but the receiver may
// write to it while it runs (both DBs must keep the same sequence numbers).
class LogReceiver {
 public:
  // Dials in the background and keeps redialling; returns at once.
  static Result<std::unique_ptr<LogReceiver>> Start(store::ReplicatedDb& db,
                                                    ReceiverOptions options);
  ~LogReceiver();
  LogReceiver(const LogReceiver&) = delete;
  LogReceiver& operator=(const LogReceiver&) = delete;

  // Stops the threads, syncs the WAL (so a standby that is about to be promoted has made
  // durable everything it acknowledged) and closes the socket. Idempotent.
  void Stop();
  // Stop() without the goodbye to the active: for an active known to be dead (killed,
  // paused, cut off), which cannot answer it. Waiting goodbye_timeout for that answer would
  // only delay the promotion this stop precedes. Nothing is applied after the session ends,
  // with or without the goodbye.
  void Abandon();
  ReceiverStatus status() const;

  struct Impl;

 private:
  explicit LogReceiver(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pbx::ship
