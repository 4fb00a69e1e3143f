#pragma once

#include <cstddef>
#include <cstdint>
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

  // Standby side: writes `batch` (synced) and feeds the change feed with it. Idempotent: a
  // batch that ends at or before LatestSeq() was already applied and is accepted without
  // writing. Any other batch whose first_seq != LatestSeq() + 1 (a gap or an overlap), or
  // whose bytes do not decode or do not hold `count` ops, is refused with Corruption and
  // changes nothing.
  virtual Status ApplyWalBatch(const WalBatch& batch) = 0;
};

// Opens (or creates) the replicated DB. OpenRocksStateStore returns the same object.
Result<std::unique_ptr<ReplicatedDb>> OpenReplicatedDb(const StoreOptions& options);

// Decodes WriteBatch bytes into the changes they make, one per op, numbered from
// `first_seq`. Corruption for malformed bytes, an unknown column family (ids are the fixed
// ones of kAllTables) or an op other than put/delete.
Result<std::vector<Change>> DecodeBatch(const std::string& batch_bytes, SeqNo first_seq);

}  // namespace pbx::store
