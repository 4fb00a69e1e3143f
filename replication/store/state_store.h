#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "node/core/status.h"

namespace pbx::store {

// A RocksDB sequence number. Equal on active and standby for the same replicated state.
using SeqNo = uint64_t;

// The column families of the replicated DB (DESIGN.md §3). They are created in this order,
// and only in this order, on every node, so that column-family ids match between nodes.
enum class Table : uint8_t {
  kConfig = 0,   // extensions, users, trunks, routes, settings (admin and CLI write here)
  kRuntime = 1,  // registrations, trunk state, flags, bans, dialogs of calls in progress
  kRecords = 2,  // CDR, audit log, fax log
  kBlobs = 3,    // voicemail, prompts, recordings
  kMeta = 4,     // cluster identity, epoch, column-family map
};
inline constexpr Table kAllTables[] = {Table::kConfig, Table::kRuntime, Table::kRecords,
                                       Table::kBlobs, Table::kMeta};
std::string_view TableName(Table table);

// How long Commit waits. kReplicated returns once the standby has acknowledged the batch
// (or, with no standby, once it is synced to the local WAL); kAsync returns once it is in
// the local WAL, for state whose loss is harmless.
enum class Durability : uint8_t { kAsync, kReplicated };

// An atomic set of writes with optional preconditions, checked under the commit lock.
class WriteSet {
 public:
  struct Op {
    enum class Kind : uint8_t { kPut, kDelete, kExpectAbsent, kExpectPresent };
    Kind kind;
    Table table;
    std::string key;
    std::string value;  // kPut only
  };
  void Put(Table table, std::string key, std::string value) {
    ops_.push_back({Op::Kind::kPut, table, std::move(key), std::move(value)});
  }
  void Delete(Table table, std::string key) {
    ops_.push_back({Op::Kind::kDelete, table, std::move(key), {}});
  }
  // Commit fails with Conflict (and writes nothing) if `key` exists / does not exist.
  void ExpectAbsent(Table table, std::string key) {
    ops_.push_back({Op::Kind::kExpectAbsent, table, std::move(key), {}});
  }
  void ExpectPresent(Table table, std::string key) {
    ops_.push_back({Op::Kind::kExpectPresent, table, std::move(key), {}});
  }
  const std::vector<Op>& ops() const { return ops_; }
  bool empty() const { return ops_.empty(); }

 private:
  std::vector<Op> ops_;
};

// One committed write, as the change feed delivers it.
//
// `reset` marks the other kind of change: the whole table was replaced at once (a standby
// installed a checkpoint from its active, replication/ship). Then `key` is empty, `value` is
// nullopt, `seq` is the store's new LatestSeq(), and every subscriber of `table` gets it,
// whatever its prefix: drop what you cached from that table and read it again.
struct Change {
  SeqNo seq;  // sequence number of this write
  Table table;
  std::string key;
  std::optional<std::string> value;  // nullopt: the key was deleted
  bool reset = false;
};

// Cancels its subscription when destroyed. Movable.
class Subscription {
 public:
  Subscription() = default;
  explicit Subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  Subscription(Subscription&& o) noexcept : cancel_(std::exchange(o.cancel_, nullptr)) {}
  Subscription& operator=(Subscription&& o) noexcept {
    if (this != &o) {
      Reset();
      cancel_ = std::exchange(o.cancel_, nullptr);
    }
    return *this;
  }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() { Reset(); }
  void Reset() {
    if (cancel_) std::exchange(cancel_, nullptr)();
  }

 private:
  std::function<void()> cancel_;
};

// Persistent, replicated key/value state of the node. Values are opaque bytes here; the
// typed repositories (repos.h) are what the rest of the code uses.
// Thread-safe: every method may be called from any thread.
class StateStore {
 public:
  virtual ~StateStore() = default;

  // Returns NotFound if `key` is absent.
  virtual Result<std::string> Get(Table table, std::string_view key) const = 0;
  // Applies `writes` atomically after checking its preconditions (Conflict if one fails);
  // returns the sequence number of the last write in the batch.
  virtual Result<SeqNo> Commit(const WriteSet& writes, Durability durability) = 0;
  // Every key starting with `prefix`, in key order; at most `limit` entries (0: no limit).
  virtual Result<std::vector<std::pair<std::string, std::string>>> Scan(Table table,
                                                                        std::string_view prefix,
                                                                        size_t limit = 0) const = 0;
  // Calls `fn` for every committed write to a key of `table` starting with `prefix`, after
  // the commit and in commit order, on the committing thread, and for every reset of
  // `table` (see Change). `fn` must not block nor commit; post to your own loop instead.
  virtual Subscription Subscribe(Table table, std::string prefix,
                                 std::function<void(const Change&)> fn) = 0;
  // The sequence number of the last committed write. A new Rocks DB starts at 1: its first
  // batch records the column-family map, identical on every node.
  virtual SeqNo LatestSeq() const = 0;
};

struct StoreOptions {
  std::string dir;  // the replicated DB; created if missing
  // WAL retention for a standby that was away: whichever of the two comes first (0: that
  // limit is off). The store flushes its memtables every wal_ttl_seconds, so that WAL
  // files are archived and age out (RocksDB counts the TTL from archival).
  uint64_t wal_ttl_seconds = 3600;
  uint64_t wal_size_limit_mb = 1024;
};

// Opens (or creates) the replicated RocksDB state store.
Result<std::unique_ptr<StateStore>> OpenRocksStateStore(const StoreOptions& options);
// An in-memory StateStore with the same semantics, for unit tests.
std::unique_ptr<StateStore> NewMemStateStore();

// The node-local, unreplicated DB: this node's own facts (its identity, first-boot state,
// metrics). Thread-safe.
class LocalStore {
 public:
  virtual ~LocalStore() = default;
  virtual Result<std::string> Get(std::string_view key) const = 0;
  virtual Status Put(std::string_view key, std::string_view value) = 0;
  virtual Status Delete(std::string_view key) = 0;
};
Result<std::unique_ptr<LocalStore>> OpenLocalStore(const std::string& dir);

}  // namespace pbx::store
