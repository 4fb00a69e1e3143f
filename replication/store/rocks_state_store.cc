// RocksStateStore: the replicated state store on RocksDB (DESIGN.md §3).
//
// On disk: one DB with the column families "default" (unused) and then those of kAllTables,
// in that order, so that ids are 0..5 on every node. WriteBatch bytes name column families
// by id, so the ids must match between active and standby: the name->id map is written to
// meta/"cf_map" at creation and verified at every open.

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <shared_mutex>  // std::shared_lock
#include <span>
#include <string_view>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <fmt/format.h>
#include <kj/array.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/transaction_log.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include "node/core/capnp_codec.h"
#include "node/core/log.h"
#include "replication/schema/records.capnp.h"
#include "replication/store/change_feed.h"
#include "replication/store/rocks_status.h"
#include "replication/store/state_store.h"
#include "replication/store/wal.h"

namespace pbx::store {
namespace {

constexpr size_t kNumCfs = std::size(kAllTables) + 1;
// Reserved key in meta: written only at creation, never through Commit.
constexpr std::string_view kCfMapKey = "cf_map";
// rocksdb's WriteBatch header: fixed64 sequence, fixed32 count (db/write_batch.cc).
constexpr size_t kBatchHeaderSize = 12;

// Column-family names in creation order; index = id. The literal "default" rather than
// rocksdb::kDefaultColumnFamilyName, which can be empty during static init (NOTES-deps.md).
std::array<std::string, kNumCfs> CfNames() {
  std::array<std::string, kNumCfs> names;
  names[0] = "default";
  for (size_t i = 0; i < std::size(kAllTables); ++i) names[i + 1] = TableName(kAllTables[i]);
  return names;
}

uint32_t CfId(Table table) { return static_cast<uint32_t>(table) + 1; }

std::optional<Table> TableForCf(uint32_t cf_id) {
  if (cf_id == 0 || cf_id >= kNumCfs) return std::nullopt;
  return kAllTables[cf_id - 1];
}

std::string KeyName(Table table, std::string_view key) {
  std::string s(TableName(table));
  s += '/';
  s += key;
  return s;
}

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

uint64_t DecodeFixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void EncodeFixed64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

// The smallest string greater than every string starting with `prefix`; empty if none.
std::string PrefixSuccessor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty() && static_cast<unsigned char>(s.back()) == 0xff) s.pop_back();
  if (!s.empty()) s.back() = static_cast<char>(static_cast<unsigned char>(s.back()) + 1);
  return s;
}

// Deterministic bytes: every node creating a DB writes the same first batch.
std::string EncodeCfMap() {
  capnp::MallocMessageBuilder message;
  auto map = message.initRoot<schema::ColumnFamilyMap>();
  auto names = CfNames();
  auto entries = map.initEntries(kNumCfs);
  for (size_t i = 0; i < kNumCfs; ++i) {
    entries[i].setName(capnp::Text::Reader(names[i].data(), names[i].size()));
    entries[i].setId(static_cast<uint32_t>(i));
  }
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  kj::ArrayPtr<const kj::byte> bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// OK if `bytes` is a map equal to ours; Corruption naming the difference otherwise.
Status VerifyCfMap(const std::string& bytes) {
  const auto names = CfNames();
  Status st = capnp_codec::Decode<schema::ColumnFamilyMap>(
      "value", bytes, {}, [&](schema::ColumnFamilyMap::Reader map) -> Status {
        auto entries = map.getEntries();
        if (entries.size() != kNumCfs) {
          return Status::Corruption(
              fmt::format("{} column families recorded, expected {}", entries.size(), kNumCfs));
        }
        for (unsigned i = 0; i < kNumCfs; ++i) {
          const std::string name = capnp_codec::FromText(entries[i].getName());
          if (name != names[i] || entries[i].getId() != i) {
            return Status::Corruption(fmt::format("recorded {}={}, expected {}={}", name,
                                                  entries[i].getId(), names[i], i));
          }
        }
        return Status::Ok();
      });
  if (!st.ok()) return Status::Corruption(KeyName(Table::kMeta, kCfMapKey) + ": " + st.message());
  return Status::Ok();
}

// Turns the ops of a WriteBatch into Changes numbered from `next`.
class ChangeCollector final : public rocksdb::WriteBatch::Handler {
 public:
  explicit ChangeCollector(SeqNo first_seq) : next_(first_seq) {}

  rocksdb::Status PutCF(uint32_t cf_id, const rocksdb::Slice& key,
                        const rocksdb::Slice& value) override {
    return Add(cf_id, key, value.ToString());
  }
  rocksdb::Status DeleteCF(uint32_t cf_id, const rocksdb::Slice& key) override {
    return Add(cf_id, key, std::nullopt);
  }
  // The store writes only puts and deletes; anything else did not come from us.
  rocksdb::Status SingleDeleteCF(uint32_t, const rocksdb::Slice&) override {
    return rocksdb::Status::Corruption("unexpected SingleDelete in batch");
  }
  rocksdb::Status DeleteRangeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
    return rocksdb::Status::Corruption("unexpected DeleteRange in batch");
  }
  rocksdb::Status MergeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
    return rocksdb::Status::Corruption("unexpected Merge in batch");
  }

  std::vector<Change>& changes() { return changes_; }

 private:
  rocksdb::Status Add(uint32_t cf_id, const rocksdb::Slice& key, std::optional<std::string> v) {
    std::optional<Table> table = TableForCf(cf_id);
    if (!table) {
      return rocksdb::Status::Corruption("unknown column family id " + std::to_string(cf_id));
    }
    changes_.push_back(Change{next_++, *table, key.ToString(), std::move(v)});
    return rocksdb::Status::OK();
  }

  SeqNo next_;
  std::vector<Change> changes_;
};

// An open RocksDB and its column-family handles (handles[i] has id i).
struct RocksHandles {
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
};

// Opens the DB at options.dir (creating it if missing) and checks its layout.
Result<RocksHandles> OpenRocks(const StoreOptions& options);

// Where RestoreFromCheckpoint keeps the old contents while it moves a checkpoint in.
std::filesystem::path OldDir(const std::string& dir) { return dir + ".old"; }

rocksdb::WriteOptions SyncWrite(bool sync) {
  rocksdb::WriteOptions w;
  w.sync = sync;  // never disableWAL: the WAL is the replication log
  return w;
}

// Checks the column families and their recorded map; writes the map into a new DB.
Status VerifyLayout(rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>& handles,
                    const std::string& dir) {
  auto names = CfNames();
  for (size_t i = 0; i < kNumCfs; ++i) {
    if (handles[i]->GetID() != i || handles[i]->GetName() != names[i]) {
      return Status::Corruption(dir + ": column family " + handles[i]->GetName() + " has id " +
                                std::to_string(handles[i]->GetID()) + ", expected " + names[i] +
                                "=" + std::to_string(i));
    }
  }
  rocksdb::ColumnFamilyHandle* meta = handles[CfId(Table::kMeta)];
  std::string bytes;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), meta, ToSlice(kCfMapKey), &bytes);
  if (s.IsNotFound()) {
    if (db->GetLatestSequenceNumber() != 0) {
      return Status::Corruption(dir + ": holds data but no column-family map");
    }
    // A new DB: its first batch (seq 1) is the map, identical on every node.
    rocksdb::WriteBatch batch;
    s = batch.Put(meta, ToSlice(kCfMapKey), EncodeCfMap());
    if (s.ok()) s = db->Write(SyncWrite(true), &batch);
    return s.ok() ? Status::Ok() : FromRocks(s, dir + ": writing the column-family map");
  }
  if (!s.ok()) return FromRocks(s, KeyName(Table::kMeta, kCfMapKey));
  return VerifyCfMap(bytes);
}

// Syncs `kAsync` writes, stops background work and closes the DB. Leaves `h` empty.
void CloseRocks(RocksHandles& h, const std::string& dir) {
  if (h.db == nullptr) return;
  // kAsync commits may still be in the OS's buffers: sync them before closing.
  rocksdb::Status s = h.db->FlushWAL(/*sync=*/true);
  if (!s.ok()) PBX_LOG(kWarn, "store", "syncing WAL of {}: {}", dir, s.ToString());
  rocksdb::CancelAllBackgroundWork(h.db, /*wait=*/true);
  for (rocksdb::ColumnFamilyHandle* cf : h.handles) {
    s = h.db->DestroyColumnFamilyHandle(cf);
    if (!s.ok()) PBX_LOG(kWarn, "store", "releasing column family: {}", s.ToString());
  }
  h.handles.clear();
  s = h.db->Close();
  if (!s.ok()) PBX_LOG(kWarn, "store", "closing {}: {}", dir, s.ToString());
  delete h.db;
  h.db = nullptr;
}

// A reader-writer lock that lets a waiting writer in before new readers. std::shared_mutex
// on glibc prefers readers, so a steady stream of reads could keep RestoreFromCheckpoint
// out indefinitely. Writer preference deadlocks a thread that takes the shared side twice
// while a writer waits: no code path here nests it (callbacks run without it).
class DbMutex {
 public:
  DbMutex() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    PBX_CHECK(pthread_rwlock_init(&lock_, &attr) == 0);
    pthread_rwlockattr_destroy(&attr);
  }
  ~DbMutex() { pthread_rwlock_destroy(&lock_); }
  DbMutex(const DbMutex&) = delete;
  DbMutex& operator=(const DbMutex&) = delete;

  void lock() { PBX_CHECK(pthread_rwlock_wrlock(&lock_) == 0); }
  void unlock() { PBX_CHECK(pthread_rwlock_unlock(&lock_) == 0); }
  void lock_shared() { PBX_CHECK(pthread_rwlock_rdlock(&lock_) == 0); }
  void unlock_shared() { PBX_CHECK(pthread_rwlock_unlock(&lock_) == 0); }

 private:
  pthread_rwlock_t lock_;
};

// fsync of a directory, so that renames in it survive a crash.
Status SyncDir(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::Io("open " + dir.string() + ": " + std::strerror(errno));
  int rv = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rv != 0) return Status::Io("fsync " + dir.string() + ": " + std::strerror(err));
  return Status::Ok();
}

// Thread-safe. Every write (Commit, ApplyWalBatch[es], RestoreFromCheckpoint) is serialised
// by commit_mu_, which also orders the change feed and the commit observer. db_mu_ guards
// the RocksDB handle itself: every method holds it shared while it uses the DB, and only
// RestoreFromCheckpoint takes it exclusively, to close and reopen the DB under this object.
// Lock order: commit_mu_, then db_mu_, then sync_mu_ or hooks_mu_ (never held together with
// anything taken after them). Change-feed callbacks and the
// observer run under commit_mu_ only, never under db_mu_, so they may read the store.
class RocksStateStore final : public ReplicatedDb {
 public:
  RocksStateStore(StoreOptions options, RocksHandles db) : options_(std::move(options)), db_(db) {}

  ~RocksStateStore() override {
    cursor_.iter.reset();  // before the DB it reads
    CloseRocks(db_, options_.dir);
  }

  RocksStateStore(const RocksStateStore&) = delete;
  RocksStateStore& operator=(const RocksStateStore&) = delete;

  Result<std::string> Get(Table table, std::string_view key) const override {
    std::shared_lock<DbMutex> db_lock(db_mu_);
    std::string value;
    rocksdb::Status s = db_.db->Get(rocksdb::ReadOptions(), Cf(table), ToSlice(key), &value);
    if (!s.ok()) return FromRocks(s, KeyName(table, key));
    return value;
  }

  Result<SeqNo> Commit(const WriteSet& writes, Durability durability) override {
    if (writes.empty()) return Status::InvalidArgument("empty WriteSet");
    SeqNo last = 0;
    {
      std::lock_guard<std::mutex> lock(commit_mu_);
      std::vector<Change> changes;
      {
        std::shared_lock<DbMutex> db_lock(db_mu_);
        // Preconditions see the state before the batch; nothing can change it while we hold
        // commit_mu_, since every write to this DB goes through it.
        for (const WriteSet::Op& op : writes.ops()) {
          using Kind = WriteSet::Op::Kind;
          if (op.kind != Kind::kExpectAbsent && op.kind != Kind::kExpectPresent) continue;
          PBX_ASSIGN_OR_RETURN(bool present, Exists(op.table, op.key));
          if (op.kind == Kind::kExpectAbsent && present) {
            return Status::Conflict(KeyName(op.table, op.key) + " already exists");
          }
          if (op.kind == Kind::kExpectPresent && !present) {
            return Status::Conflict(KeyName(op.table, op.key) + " does not exist");
          }
        }
        rocksdb::WriteBatch batch;
        for (const WriteSet::Op& op : writes.ops()) {
          rocksdb::Status s;
          if (op.kind == WriteSet::Op::Kind::kPut) {
            if (IsReserved(op)) return Reserved(op);
            s = batch.Put(Cf(op.table), ToSlice(op.key), ToSlice(op.value));
          } else if (op.kind == WriteSet::Op::Kind::kDelete) {
            if (IsReserved(op)) return Reserved(op);
            s = batch.Delete(Cf(op.table), ToSlice(op.key));
          }
          if (!s.ok()) return FromRocks(s, KeyName(op.table, op.key));
        }
        if (batch.Count() == 0) return db_.db->GetLatestSequenceNumber();  // preconditions only

        // Never synced under the lock: kReplicated syncs below, after it is released.
        rocksdb::Status s = db_.db->Write(SyncWrite(false), &batch);
        if (!s.ok()) return FromRocks(s, "commit to " + options_.dir);
        last = db_.db->GetLatestSequenceNumber();
        // The change feed is fed from the batch bytes, the same path as ApplyWalBatch.
        Result<std::vector<Change>> decoded = DecodeBatch(batch.Data(), last - batch.Count() + 1);
        PBX_CHECK(decoded.ok());  // we built this batch a moment ago
        changes = std::move(decoded).value();
      }
      MaybeRollWal();
      if (observer_) observer_(last);
      feed_.Deliver(changes);
    }
    // Syncing and waiting for the standby happen outside every lock of the store: the
    // commits that queue up meanwhile share one fsync and one acknowledgement (group
    // commit). The shipper may ship the batch while it is being synced here.
    if (durability == Durability::kReplicated) {
      PBX_TRY(SyncUpTo(last));
      if (std::shared_ptr<const ReplicationGate> gate = LoadGate()) (*gate)(last);
    }
    return last;
  }

  Result<std::vector<std::pair<std::string, std::string>>> Scan(Table table,
                                                                std::string_view prefix,
                                                                size_t limit) const override {
    std::shared_lock<DbMutex> db_lock(db_mu_);
    rocksdb::ReadOptions options;
    std::string upper = PrefixSuccessor(prefix);
    rocksdb::Slice lower_slice = ToSlice(prefix);
    rocksdb::Slice upper_slice(upper);
    options.iterate_lower_bound = &lower_slice;
    if (!upper.empty()) options.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db_.db->NewIterator(options, Cf(table)));
    std::vector<std::pair<std::string, std::string>> out;
    for (it->Seek(lower_slice); it->Valid(); it->Next()) {
      if (limit != 0 && out.size() >= limit) break;
      out.emplace_back(it->key().ToString(), it->value().ToString());
    }
    if (!it->status().ok()) {
      return FromRocks(it->status(), "scanning " + KeyName(table, prefix) + "*");
    }
    return out;
  }

  Subscription Subscribe(Table table, std::string prefix,
                         std::function<void(const Change&)> fn) override {
    return feed_.Subscribe(table, std::move(prefix), std::move(fn));
  }

  SeqNo LatestSeq() const override {
    std::shared_lock<DbMutex> db_lock(db_mu_);
    return db_.db->GetLatestSequenceNumber();
  }

  Result<std::vector<WalBatch>> ReadWalSince(SeqNo from, size_t max_bytes) const override {
    std::shared_lock<DbMutex> db_lock(db_mu_);
    std::lock_guard<std::mutex> cursor_lock(cursor_mu_);
    const std::string& dir = options_.dir;
    from = std::max<SeqNo>(from, 1);
    const SeqNo latest = db_.db->GetLatestSequenceNumber();
    std::vector<WalBatch> out;
    size_t bytes = 0;
    SeqNo next = from;
    // The previous call's iterator, if this call goes on where it stopped (the shipper's
    // tailing read). Next() on it reads what was written since, from where it stands.
    std::unique_ptr<rocksdb::TransactionLogIterator> iter = std::move(cursor_.iter);
    bool resumed = iter != nullptr && cursor_.next == from && from <= latest;
    if (resumed) {
      iter->Next();
    } else {
      iter.reset();
    }
    // An iterator stops at the end of what was written when it was made, and at WAL
    // rotations; a new one resumes from `next`.
    while (next <= latest && (out.empty() || bytes < max_bytes)) {
      if (iter == nullptr || !iter->Valid()) {
        resumed = false;
        rocksdb::Status s = db_.db->GetUpdatesSince(next, &iter);
        if (!s.ok()) {
          if (out.empty())
            return FromRocks(s, dir + ": reading WAL from seq " + std::to_string(next));
          break;
        }
      }
      bool progressed = false;
      bool full = false;
      while (iter->Valid()) {
        rocksdb::BatchResult r = iter->GetBatch();
        const SeqNo first = r.sequence;
        const uint32_t count = r.writeBatchPtr->Count();
        if (first > next && resumed) {  // not where it should be: read it again, anew
          iter.reset();
          break;
        }
        // GetUpdatesSince silently starts later when the files holding `next` are gone.
        if (first > next) {
          if (next == from) {
            return Status::NotFound("WAL no longer reaches back to seq " + std::to_string(from));
          }
          return Status::Corruption(dir + ": WAL gap: expected seq " + std::to_string(next) +
                                    ", found " + std::to_string(first));
        }
        if (first + count > next) {  // else entirely before `next`
          WalBatch batch;
          if (first == next) {
            batch = WalBatch{first, count, r.writeBatchPtr->Data()};
          } else {
            PBX_ASSIGN_OR_RETURN(batch, Trim(r.writeBatchPtr->Data(), first, next));
          }
          next = batch.first_seq + batch.count;
          bytes += batch.data.size();
          out.push_back(std::move(batch));
          progressed = true;
          // Stop on the batch just read, so that the iterator stays valid for the next call.
          full = next > latest || bytes >= max_bytes;
          if (full) break;
        }
        iter->Next();
      }
      if (full) break;
      if (iter == nullptr || (resumed && !progressed)) {
        iter.reset();  // astray, or at a WAL rotation: a new iterator from `next`
        resumed = false;
        continue;
      }
      if (!progressed) {
        if (!out.empty()) break;
        if (!iter->status().ok()) {
          return FromRocks(iter->status(), dir + ": reading WAL from seq " + std::to_string(next));
        }
        return Status::NotFound("WAL no longer reaches back to seq " + std::to_string(next));
      }
    }
    if (iter != nullptr && iter->Valid() && !out.empty()) {
      cursor_.iter = std::move(iter);
      cursor_.next = next;
    }
    return out;
  }

  Status ApplyWalBatch(const WalBatch& batch) override { return Apply(std::span(&batch, 1)); }

  Status ApplyWalBatches(const std::vector<WalBatch>& batches) override {
    return Apply(std::span(batches));
  }

  Result<SeqNo> SyncWal() override {
    const SeqNo seq = LatestSeq();
    PBX_TRY(SyncUpTo(seq));
    return seq;
  }

  void SetCommitObserver(CommitObserver observer) override {
    std::lock_guard<std::mutex> lock(commit_mu_);
    observer_ = std::move(observer);
  }

  void SetReplicationGate(ReplicationGate gate) override {
    std::shared_ptr<const ReplicationGate> next;
    if (gate) next = std::make_shared<const ReplicationGate>(std::move(gate));
    std::lock_guard<std::mutex> lock(hooks_mu_);
    gate_.swap(next);
    // `next` (the old gate) dies here unless a running Commit still holds it.
  }

  Result<SeqNo> CreateCheckpoint(const std::string& dir) override {
    std::shared_lock<DbMutex> db_lock(db_mu_);
    rocksdb::Checkpoint* raw = nullptr;
    rocksdb::Status s = rocksdb::Checkpoint::Create(db_.db, &raw);
    if (!s.ok()) return FromRocks(s, "checkpoint of " + options_.dir);
    std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
    uint64_t seq = 0;
    // log_size_for_flush = 0: flush first, so the copy is SST files and needs no WAL.
    s = checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0, &seq);
    if (!s.ok()) return FromRocks(s, "checkpoint of " + options_.dir + " into " + dir);
    return seq;
  }

  Status RestoreFromCheckpoint(const std::string& dir) override {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::exists(fs::path(dir) / "CURRENT", ec)) {
      return Status::Corruption(dir + ": not a RocksDB checkpoint (no CURRENT file)");
    }
    const fs::path live(options_.dir);
    const fs::path old = OldDir(options_.dir);
    std::lock_guard<std::mutex> lock(commit_mu_);
    SeqNo now = 0;
    {
      std::unique_lock<DbMutex> db_lock(db_mu_);
      const SeqNo before = db_.db->GetLatestSequenceNumber();
      {
        std::lock_guard<std::mutex> cursor_lock(cursor_mu_);
        cursor_.iter.reset();  // reads the DB about to close; the new one has another WAL
      }
      CloseRocks(db_, options_.dir);
      fs::remove_all(old, ec);
      Status moved = Status::Ok();
      if (fs::rename(live, old, ec); ec) {
        moved = Status::Io("moving " + live.string() + " aside: " + ec.message());
      } else if (fs::rename(dir, live, ec); ec) {
        moved =
            Status::Io("moving checkpoint " + dir + " to " + live.string() + ": " + ec.message());
        fs::rename(old, live, ec);
      }
      Status synced = SyncDir(live.parent_path().empty() ? fs::path(".") : live.parent_path());
      if (!synced.ok()) PBX_LOG(kWarn, "store", "{}", synced.ToString());
      Result<RocksHandles> opened = moved.ok() ? OpenRocks(options_) : Result<RocksHandles>(moved);
      if (!opened.ok()) {
        // Put the old contents back; they were open a moment ago, so failing to reopen them
        // means the disk is broken (CHECK: systemd restarts us, the peer goes on).
        if (moved.ok()) {
          fs::remove_all(live, ec);
          fs::rename(old, live, ec);
        }
        Result<RocksHandles> back = OpenRocks(options_);
        PBX_CHECK(back.ok());
        db_ = *back;
        const Status error = !moved.ok()
                                 ? moved
                                 : Status::Corruption("checkpoint " + dir +
                                                      " refused: " + opened.status().ToString());
        PBX_LOG(kWarn, "store", "{}; kept {} at seq {}", error.ToString(), options_.dir, before);
        return error;
      }
      db_ = *opened;
      fs::remove_all(old, ec);
      now = db_.db->GetLatestSequenceNumber();
      {
        std::lock_guard<std::mutex> sync_lock(sync_mu_);
        synced_seq_ = 0;  // the new DB's WAL has not been synced by us yet
        ++generation_;
      }
      PBX_LOG(kInfo, "store", "{} replaced by a checkpoint: seq {} -> {}", options_.dir, before,
              now);
    }
    std::vector<Change> resets;
    for (Table table : kAllTables) resets.push_back(Change{now, table, {}, std::nullopt, true});
    feed_.Deliver(resets);
    return Status::Ok();
  }

  const std::string& Dir() const override { return options_.dir; }

 private:
  // REQUIRES: db_mu_ held (either way).
  rocksdb::ColumnFamilyHandle* Cf(Table table) const { return db_.handles[CfId(table)]; }

  static bool IsReserved(const WriteSet::Op& op) {
    return op.table == Table::kMeta && op.key == kCfMapKey;
  }
  static Status Reserved(const WriteSet::Op& op) {
    return Status::InvalidArgument(KeyName(op.table, op.key) + " is reserved");
  }

  std::shared_ptr<const ReplicationGate> LoadGate() const {
    std::lock_guard<std::mutex> lock(hooks_mu_);
    return gate_;
  }

  // REQUIRES: db_mu_ held.
  Result<bool> Exists(Table table, std::string_view key) const {
    rocksdb::PinnableSlice value;
    rocksdb::Status s = db_.db->Get(rocksdb::ReadOptions(), Cf(table), ToSlice(key), &value);
    if (s.IsNotFound()) return false;
    if (!s.ok()) return FromRocks(s, KeyName(table, key));
    return true;
  }

  // Returns once every write up to `seq` is synced to the WAL. One thread syncs at a time,
  // and its fsync covers every write made before it started, so the commits waiting
  // meanwhile need no fsync of their own.
  Status SyncUpTo(SeqNo seq) {
    std::unique_lock<std::mutex> lock(sync_mu_);
    while (synced_seq_ < seq) {
      if (syncing_) {
        sync_cv_.wait(lock);
        continue;
      }
      syncing_ = true;
      const uint64_t generation = generation_;
      lock.unlock();
      SeqNo target = 0;
      rocksdb::Status s;
      {
        std::shared_lock<DbMutex> db_lock(db_mu_);
        // Everything numbered up to here is in the WAL file already (RocksDB publishes a
        // sequence number after writing its WAL record).
        target = db_.db->GetLatestSequenceNumber();
        s = db_.db->SyncWAL();
      }
      lock.lock();
      syncing_ = false;
      sync_cv_.notify_all();
      if (!s.ok()) return FromRocks(s, "syncing the WAL of " + options_.dir);
      if (generation == generation_) synced_seq_ = std::max(synced_seq_, target);
    }
    return Status::Ok();
  }

  // Checks every batch, then writes them all and syncs once (ApplyWalBatch[es]).
  Status Apply(std::span<const WalBatch> batches) {
    if (batches.empty()) return Status::Ok();
    std::lock_guard<std::mutex> lock(commit_mu_);
    std::vector<Change> changes;
    SeqNo now = 0;
    {
      std::shared_lock<DbMutex> db_lock(db_mu_);
      const SeqNo latest = db_.db->GetLatestSequenceNumber();
      SeqNo next = latest + 1;
      std::vector<rocksdb::WriteBatch> writes;
      for (const WalBatch& batch : batches) {
        const std::string what = options_.dir + ": batch at seq " + std::to_string(batch.first_seq);
        if (batch.first_seq == 0 || batch.count == 0) {
          return Status::Corruption(what + " with " + std::to_string(batch.count) + " ops");
        }
        if (writes.empty() && batch.first_seq + batch.count - 1 <= latest) continue;  // a resend
        if (batch.first_seq != next) {
          return Status::Corruption(what + ": expected seq " + std::to_string(next));
        }
        if (batch.data.size() < kBatchHeaderSize ||
            DecodeFixed64(batch.data.data()) != batch.first_seq) {
          return Status::Corruption(what + ": header does not match");
        }
        rocksdb::WriteBatch wb(batch.data);
        if (wb.Count() != batch.count) {
          return Status::Corruption(what + ": holds " + std::to_string(wb.Count()) +
                                    " ops, expected " + std::to_string(batch.count));
        }
        PBX_ASSIGN_OR_RETURN(std::vector<Change> decoded, DecodeBatch(batch.data, batch.first_seq));
        changes.insert(changes.end(), std::make_move_iterator(decoded.begin()),
                       std::make_move_iterator(decoded.end()));
        writes.push_back(std::move(wb));
        next = batch.first_seq + batch.count;
      }
      if (writes.empty()) return Status::Ok();
      for (rocksdb::WriteBatch& wb : writes) {
        // Not synced: the standby acknowledges once the OS has the batch, and syncs in the
        // background (SyncWal; replication/README.md, "Durability").
        rocksdb::Status s = db_.db->Write(SyncWrite(false), &wb);
        if (!s.ok()) return FromRocks(s, options_.dir + ": applying a batch");
      }
      now = db_.db->GetLatestSequenceNumber();
      if (now != next - 1) {
        // Only a write that bypassed commit_mu_ could do this; the replica has diverged.
        return Status::Internal(options_.dir + ": DB is now at seq " + std::to_string(now) +
                                ", expected " + std::to_string(next - 1));
      }
    }
    if (observer_) observer_(now);
    feed_.Deliver(changes);
    return Status::Ok();
  }

  // RocksDB archives a WAL file, and starts its wal_ttl_seconds, only once every memtable
  // holding part of it is flushed; a rarely written table would pin it until some 64 MB
  // memtable fills. Flushing every wal_ttl_seconds makes the TTL what bounds how far back
  // ReadWalSince reaches (a standby away longer gets a checkpoint). Does not wait for the
  // flush. REQUIRES: commit_mu_ held.
  void MaybeRollWal() {
    if (options_.wal_ttl_seconds == 0) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_wal_roll_ < std::chrono::seconds(options_.wal_ttl_seconds)) return;
    last_wal_roll_ = now;
    std::shared_lock<DbMutex> db_lock(db_mu_);
    rocksdb::FlushOptions flush;
    flush.wait = false;
    flush.allow_write_stall = true;
    rocksdb::Status s = db_.db->Flush(flush, db_.handles);
    if (!s.ok()) PBX_LOG(kWarn, "store", "rolling the WAL of {}: {}", options_.dir, s.ToString());
  }

  // The ops of `data` (a batch starting at `first`) from seq `from` on, as a batch of its own.
  // REQUIRES: db_mu_ held.
  Result<WalBatch> Trim(const std::string& data, SeqNo first, SeqNo from) const {
    PBX_ASSIGN_OR_RETURN(std::vector<Change> changes, DecodeBatch(data, first));
    rocksdb::WriteBatch wb;
    for (const Change& c : changes) {
      if (c.seq < from) continue;
      rocksdb::Status s =
          c.value ? wb.Put(Cf(c.table), c.key, *c.value) : wb.Delete(Cf(c.table), c.key);
      if (!s.ok()) return FromRocks(s, KeyName(c.table, c.key));
    }
    WalBatch batch{from, wb.Count(), wb.Data()};
    EncodeFixed64(batch.data.data(), from);  // as the WAL would have numbered it
    return batch;
  }

  const StoreOptions options_;
  std::mutex sync_mu_;  // after db_mu_ in the lock order (SyncUpTo takes it first, alone)
  std::condition_variable sync_cv_;
  bool syncing_ = false;  // guarded by sync_mu_
  // Every write up to here is synced. Guarded by sync_mu_. A new store starts at 0 and
  // syncs once; RestoreFromCheckpoint resets it (the new DB may be at a lower seq) and
  // bumps generation_, so that a sync of the old DB does not count for the new one.
  SeqNo synced_seq_ = 0;
  uint64_t generation_ = 0;  // guarded by sync_mu_
  mutable DbMutex db_mu_;
  RocksHandles db_;          // guarded by db_mu_ (exclusive only to replace it)
  std::mutex commit_mu_;     // serialises every write: commit order = seq order = feed order
  CommitObserver observer_;  // guarded by commit_mu_
  // ReadWalSince's iterator, kept between calls: a new one (GetUpdatesSince) lists the WAL
  // files and reads its file from the start up to `from`, so a read at the tail would cost
  // the size of the WAL so far (measured: 0.9 ms with 1,000 commits in it, 35 ms with 50,000).
  struct WalCursor {
    std::unique_ptr<rocksdb::TransactionLogIterator> iter;  // Valid(), on a batch returned
    SeqNo next = 0;                                         // the seq after that batch
  };
  mutable std::mutex cursor_mu_;  // after db_mu_ in the lock order
  mutable WalCursor cursor_;      // guarded by cursor_mu_
  std::chrono::steady_clock::time_point last_wal_roll_ =
      std::chrono::steady_clock::now();  // guarded by commit_mu_
  mutable std::mutex hooks_mu_;
  std::shared_ptr<const ReplicationGate> gate_;  // guarded by hooks_mu_
  ChangeFeed feed_;
};

}  // namespace

Result<std::vector<Change>> DecodeBatch(const std::string& batch_bytes, SeqNo first_seq) {
  if (batch_bytes.size() < kBatchHeaderSize) {
    return Status::Corruption("write batch of " + std::to_string(batch_bytes.size()) + " bytes");
  }
  rocksdb::WriteBatch batch(batch_bytes);
  ChangeCollector collector(first_seq);
  rocksdb::Status s = batch.Iterate(&collector);
  if (!s.ok()) {
    return Status::Corruption("write batch at seq " + std::to_string(first_seq) + ": " +
                              s.ToString());
  }
  if (collector.changes().size() != batch.Count()) {
    return Status::Corruption("write batch at seq " + std::to_string(first_seq) + " holds " +
                              std::to_string(collector.changes().size()) + " ops, header says " +
                              std::to_string(batch.Count()));
  }
  return std::move(collector.changes());
}

namespace {

// Opens the DB at options.dir (creating it if missing) and checks its layout.
Result<RocksHandles> OpenRocks(const StoreOptions& options) {
  rocksdb::DBOptions db_options;
  // Keep WAL files after their memtable is flushed, so a standby that was away can still
  // stream from GetUpdatesSince instead of needing a checkpoint.
  db_options.WAL_ttl_seconds = options.wal_ttl_seconds;
  db_options.WAL_size_limit_MB = options.wal_size_limit_mb;

  const auto names = CfNames();
  std::error_code ec;
  const bool exists = std::filesystem::exists(std::filesystem::path(options.dir) / "CURRENT", ec);
  if (exists) {
    // Never create a missing column family in an existing DB: it would get an id that the
    // other node does not have.
    std::vector<std::string> found;
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, options.dir, &found);
    if (!s.ok()) return FromRocks(s, "listing column families of " + options.dir);
    std::vector<std::string> want(names.begin(), names.end());
    std::sort(found.begin(), found.end());
    std::sort(want.begin(), want.end());
    if (found != want) {
      std::string list;
      for (const auto& n : found) list += (list.empty() ? "" : ",") + n;
      return Status::Corruption(options.dir + ": has column families [" + list +
                                "], expected default and those of kAllTables");
    }
  } else {
    db_options.create_if_missing = true;
    db_options.create_missing_column_families = true;  // created in descriptor order
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) {
    rocksdb::ColumnFamilyOptions cf_options;
    // Voicemail and recordings are large values: keep them out of the LSM tree.
    if (name == TableName(Table::kBlobs)) cf_options.enable_blob_files = true;
    descriptors.emplace_back(name, cf_options);
  }
  RocksHandles h;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.dir, descriptors, &h.handles, &h.db);
  if (!s.ok()) return FromRocks(s, "opening " + options.dir);
  Status layout = VerifyLayout(h.db, h.handles, options.dir);
  if (!layout.ok()) {
    CloseRocks(h, options.dir);
    return layout;
  }
  return h;
}

}  // namespace

Result<std::unique_ptr<ReplicatedDb>> OpenReplicatedDb(const StoreOptions& options) {
  namespace fs = std::filesystem;
  if (options.dir.empty()) return Status::InvalidArgument("StoreOptions.dir is empty");
  // A RestoreFromCheckpoint interrupted by a crash: after the first rename only the old
  // contents exist (put them back), after the second the new ones (drop the old).
  std::error_code ec;
  const fs::path old = OldDir(options.dir);
  if (fs::exists(old, ec)) {
    if (fs::exists(fs::path(options.dir) / "CURRENT", ec)) {
      fs::remove_all(old, ec);
    } else {
      fs::remove_all(options.dir, ec);
      fs::rename(old, options.dir, ec);
      if (ec) return Status::Io("restoring " + old.string() + ": " + ec.message());
      PBX_LOG(kWarn, "store", "{}: an interrupted checkpoint install was rolled back", options.dir);
    }
  }
  PBX_ASSIGN_OR_RETURN(RocksHandles h, OpenRocks(options));
  auto store = std::make_unique<RocksStateStore>(options, h);
  PBX_LOG(kInfo, "store", "opened {} at seq {}", options.dir, store->LatestSeq());
  return std::unique_ptr<ReplicatedDb>(std::move(store));
}

Result<std::unique_ptr<StateStore>> OpenRocksStateStore(const StoreOptions& options) {
  PBX_ASSIGN_OR_RETURN(std::unique_ptr<ReplicatedDb> db, OpenReplicatedDb(options));
  return std::unique_ptr<StateStore>(std::move(db));
}

}  // namespace pbx::store
