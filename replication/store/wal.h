#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "node/core/status.h"
#include "replication/store/state_store.h"

// WAL access for log shipping (DESIGN.md §3). Internal to replication/: the shipper in
// replication/ship uses it; the rest of the code sees only state_store.h and repos.h.
namespace pbx::store {

// One RocksDB WriteBatch as it sits in the WAL: ops [first_seq, first_seq + count - 1].
// `data` is the WriteBatch representation, shipped unchanged (as capnp Data, never Text).
struct WalBatch {
  SeqNo first_seq = 0;
  uint32_t count = 0;
  std::string data;
};

// The replicated RocksDB, with the two extra operations log shipping needs.
// Thread-safe, like StateStore.
//
// Sequence numbers: a new DB's first batch (seq 1) records the column-family map in `meta`,
// identical bytes on every node, so a freshly created standby and its active agree up to
// seq 1 and the standby streams from seq 2. From then on the standby's replicated DB must be
// written only by ApplyWalBatch, so both DBs keep the same numbers.
class ReplicatedDb : public StateStore {
 public:
  // The WAL batches holding the writes from seq `from` on, in order, until about `max_bytes`
  // of batch data (always at least one batch if there is one). Empty if `from` is past
  // LatestSeq(). A batch that starts before `from` is trimmed to its ops from `from` on.
  // NotFound if the WAL no longer reaches back to `from` (send a checkpoint instead);
  // Corruption if the WAL has a hole. Safe to call concurrently with commits.
  virtual Result<std::vector<WalBatch>> ReadWalSince(SeqNo from, size_t max_bytes) const = 0;

  // Standby side: writes `batch` to the WAL (handed to the OS, not synced: see SyncWal) and
  // the memtable, and feeds the change feed with it. Idempotent: a batch that ends at or
  // before LatestSeq() was already applied and is accepted without writing. Any other batch
  // whose first_seq != LatestSeq() + 1 (a gap or an overlap), or whose bytes do not decode
  // or do not hold `count` ops, is refused with Corruption and changes nothing.
  virtual Status ApplyWalBatch(const WalBatch& batch) = 0;

  // Standby side: ApplyWalBatch for consecutive batches as one unit. Every batch is checked
  // first (each starts where the previous one ends, the first at LatestSeq() + 1 or inside
  // what is already applied; headers, counts and ops decode), so a bad one anywhere changes
  // nothing; then they are written (not synced) and fed to the change feed.
  virtual Status ApplyWalBatches(const std::vector<WalBatch>& batches) = 0;

  // Makes every write made before the call durable (fsync of the WAL) and returns the
  // sequence number that now is. Other writes go on meanwhile; concurrent callers (and
  // kReplicated commits) share one fsync. Applied batches survive a crash of this process
  // as soon as ApplyWalBatch returns (the OS has them); SyncWal makes them survive a crash
  // of the machine.
  virtual Result<SeqNo> SyncWal() = 0;

  // --- Hooks for the shipper (replication/ship) ---

  // Called after every write to this DB (Commit, ApplyWalBatch[es]) with the sequence number
  // of its last op: on the writing thread, under the commit lock, so in sequence order. It
  // must not block nor call the store; it exists to wake the shipper, which then reads the
  // WAL (no polling). nullptr removes it. Once SetCommitObserver returns, the previous
  // observer is neither running nor called again.
  // REQUIRES: not called from inside an observer or a change-feed callback (it takes the
  // commit lock).
  using CommitObserver = std::function<void(SeqNo last_seq)>;
  virtual void SetCommitObserver(CommitObserver observer) = 0;

  // How Commit(..., Durability::kReplicated) waits for the standby. After the batch is
  // written and synced locally, and with no lock of the store held (other commits go on),
  // Commit calls `gate(seq)` with the batch's last sequence number and returns once it
  // returns. The shipper's gate blocks until the standby has acknowledged `seq` or the ack
  // timeout makes the node degraded. It returns nothing on purpose: the batch is committed
  // and visible either way, so Commit's result does not depend on the standby. Without a
  // gate, kReplicated is a synced local write; kAsync never calls the gate. nullptr removes
  // it; calls already inside the old gate finish on their own, so a gate must own (share)
  // whatever it uses.
  using ReplicationGate = std::function<void(SeqNo seq)>;
  virtual void SetReplicationGate(ReplicationGate gate) = 0;

  // Active side: writes an openable copy of the DB into `dir`, which must not exist and
  // should be on the DB's filesystem (SST files are then hard links, not copies). Memtables
  // are flushed first, so the copy needs no WAL replay. Returns a sequence number the copy
  // holds at least; commits made while it is taken may be in it too, so a standby that
  // opens it continues from its own LatestSeq(), not from this number.
  virtual Result<SeqNo> CreateCheckpoint(const std::string& dir) = 0;

  // Standby side: replaces the whole contents of the DB with the checkpoint in `dir` (made
  // by CreateCheckpoint on the active and copied here), keeping this object: every other
  // holder of the store goes on using it and sees the new contents. The checkpoint is moved
  // (renamed) into the DB's place, so `dir` must be on the DB's filesystem; it is gone
  // afterwards. Commits and reads wait while the DB is closed and reopened. Afterwards
  // every change-feed subscriber gets one Change with `reset` for each table. If the
  // checkpoint does not open as a DB of our layout, the old contents are put back and the
  // error returned (Corruption). A crash in the middle leaves either the old or the new DB.
  virtual Status RestoreFromCheckpoint(const std::string& dir) = 0;

  // The DB's directory (StoreOptions::dir). Checkpoints go to siblings of it.
  virtual const std::string& Dir() const = 0;
};

// Opens (or creates) the replicated DB. OpenRocksStateStore returns the same object.
Result<std::unique_ptr<ReplicatedDb>> OpenReplicatedDb(const StoreOptions& options);

// Decodes WriteBatch bytes into the changes they make, one per op, numbered from
// `first_seq`. Corruption for malformed bytes, an unknown column family (ids are the fixed
// ones of kAllTables) or an op other than put/delete.
Result<std::vector<Change>> DecodeBatch(const std::string& batch_bytes, SeqNo first_seq);

}  // namespace pbx::store
