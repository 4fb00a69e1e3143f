#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "node/core/status.h"
#include "replication/store/wal.h"

// The active's half of log shipping (DESIGN.md §3, FORMAT.md): tails the local WAL and
// ships every WriteBatch to the standby; makes Commit(..., kReplicated) wait for the
// standby's acknowledgement, or go on alone as degraded.
namespace pbx::ship {

using store::SeqNo;

struct ShipperOptions {
  std::string listen_url;  // "tcp://0.0.0.0:7701"; port 0 picks a free port (LogShipper::url())
  std::string cluster_id;  // a standby with another cluster id is refused
  std::string node_name;   // this node, as the standby's logs and status name it
  // The epoch this node is active in; read at every handshake, carried by every message.
  // Default: the epoch of the meta record (MetaRepo) of the shipped DB, 0 if none.
  std::function<uint64_t()> epoch_fn;
  // A kReplicated commit waits at most this long for the standby's ack, then the node is
  // degraded: commits return after the local sync until the standby has caught up again.
  std::chrono::milliseconds ack_timeout{200};
  size_t batch_bytes = 1 << 20;  // WAL read for one Batches message (about; whole batches)
  size_t chunk_bytes = 1 << 20;  // checkpoint chunk size
  // The largest frame the shipper sends; the receiver's max_frame_bytes (its decoder's limit
  // and, with headroom, its NNG_OPT_RECVMAXSZ) must be the same. A WriteBatch too large for
  // one frame is sent as part of a checkpoint instead. Must exceed chunk_bytes and
  // batch_bytes by a few KiB.
  size_t max_frame_bytes = 32 << 20;
  size_t window_bytes = 8 << 20;  // sent but not yet acknowledged, at most
  // Batches messages sent but not yet acknowledged, at most. Small on purpose: commits
  // that arrive while a message is in flight go together in the next one, covered by one
  // ack and one fsync on the standby (group commit); batch_bytes per round trip is still
  // plenty. Measured with 16 committing threads: 1 gives fewer acks and no less throughput
  // than 2.
  size_t batches_in_flight = 1;
  // Where checkpoints are made: on the DB's filesystem (hard links). Empty: "<db dir>-checkpoint".
  std::string checkpoint_dir;
  std::chrono::milliseconds keepalive_interval{100};  // sent when nothing else was
  std::chrono::milliseconds session_timeout{3000};    // silence that ends a session
  std::chrono::milliseconds send_timeout{1000};       // a send blocked this long ends it too
  // Stop() waits this long at most for the standby's answer to its goodbye (FORMAT.md).
  std::chrono::milliseconds goodbye_timeout{500};
};

// Everything an operator (or a benchmark) wants to know about the active's side.
struct ShipperStatus {
  bool connected = false;  // a standby has completed the handshake
  std::string peer_name;   // its node name
  std::string phase;       // "idle", "checkpoint", "install" or "streaming"
  uint64_t epoch = 0;      // the epoch this node ships in
  SeqNo latest_seq = 0;    // this node's LatestSeq()
  SeqNo peer_acked_seq = 0;
  uint64_t lag_seqs = 0;        // latest_seq - peer_acked_seq
  uint64_t lag_ms = 0;          // age of the oldest commit the standby has not acknowledged
  uint64_t ack_latency_us = 0;  // send-to-ack time of the last acknowledged Batches
  bool degraded = true;         // commits do not wait for the standby
  std::string degraded_reason;  // why, while degraded
  int64_t degraded_since_unix_ms = 0;
  uint64_t degraded_count = 0;   // times this node became degraded
  uint64_t sessions = 0;         // handshakes accepted
  uint64_t batches_shipped = 0;  // WriteBatches sent
  uint64_t bytes_shipped = 0;    // their bytes
  uint64_t messages_sent = 0;
  uint64_t acks_received = 0;
  uint64_t replicated_commits = 0;  // kReplicated commits that returned acknowledged
  // ... that returned without an ack: their own ack_timeout, the node becoming degraded
  // while they waited, or Stop(). (Commits made while degraded count in neither.)
  uint64_t timed_out_commits = 0;
  uint64_t checkpoints_sent = 0;
  uint64_t checkpoint_bytes_sent = 0;
  uint64_t refused = 0;      // messages or handshakes refused
  std::string last_refusal;  // the log line of the last one
  // Non-zero: a standby announced this epoch, newer than ours. This node is a stale active
  // and must step down (the role machine decides).
  uint64_t newer_epoch_seen = 0;
};

// Ships the WAL of `db` to one standby over NNG pair1 (the standby dials in).
//
// Thread affinity: Start, Stop and the destructor on the owner's thread; status() and
// url() from any thread. One shipper thread does all the work: it waits (poll, no busy
// loop) for a commit (woken by the store's commit observer), a message from the standby, or
// a timer; it reads the WAL, sends, and takes acks. Committing threads block only inside
// the store's replication gate, on a condition variable the shipper thread signals.
// Ownership: `db` is borrowed and must outlive the shipper; Start installs the commit
// observer and the replication gate on it and Stop removes them. Only one shipper per db.
class LogShipper {
 public:
  static Result<std::unique_ptr<LogShipper>> Start(store::ReplicatedDb& db, ShipperOptions options);
  ~LogShipper();
  LogShipper(const LogShipper&) = delete;
  LogShipper& operator=(const LogShipper&) = delete;

  // Removes the hooks (waiting commits return at once), stops the thread, closes the
  // socket. Idempotent.
  void Stop();

  ShipperStatus status() const;
  // The URL listened on, with the bound port (for listen_url with port 0).
  const std::string& url() const;

  struct Impl;

 private:
  explicit LogShipper(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pbx::ship
