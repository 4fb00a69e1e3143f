// RocksStateStore: the replicated state store on RocksDB (DESIGN.md §3).
//
// On disk: one DB with the column families "default" (unused) and then those of kAllTables,
// in that order, so that ids are 0..5 on every node. WriteBatch bytes name column families
// by id, so the ids must match between active and standby: the name->id map is written to
// meta/"cf_map" at creation and verified at every open.

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string_view>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/transaction_log.h>
#include <rocksdb/write_batch.h>

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
  const std::string what = KeyName(Table::kMeta, kCfMapKey);
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0) {
    return Status::Corruption(what + ": not a whole number of words");
  }
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  auto names = CfNames();
  try {
    capnp::FlatArrayMessageReader reader(words.asPtr());
    auto entries = reader.getRoot<schema::ColumnFamilyMap>().getEntries();
    if (entries.size() != kNumCfs) {
      return Status::Corruption(what + ": " + std::to_string(entries.size()) +
                                " column families recorded, expected " + std::to_string(kNumCfs));
    }
    for (unsigned i = 0; i < kNumCfs; ++i) {
      std::string name = entries[i].getName().cStr();
      if (name != names[i] || entries[i].getId() != i) {
        return Status::Corruption(what + ": recorded " + name + "=" +
                                  std::to_string(entries[i].getId()) + ", expected " + names[i] +
                                  "=" + std::to_string(i));
      }
    }
  } catch (const kj::Exception& e) {
    return Status::Corruption(what + ": " + e.getDescription().cStr());
  }
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

// Thread-safe. Commits and applied batches are serialised by commit_mu_, which also orders
// the change feed; reads go straight to RocksDB.
class RocksStateStore final : public ReplicatedDb {
 public:
  // Takes ownership of `db` and `handles` (handles[i] has id i).
  RocksStateStore(std::string dir, rocksdb::DB* db,
                  std::vector<rocksdb::ColumnFamilyHandle*> handles)
      : dir_(std::move(dir)), db_(db), handles_(std::move(handles)) {}

  ~RocksStateStore() override {
    // kAsync commits may still be in the OS's buffers: sync them before closing.
    rocksdb::Status s = db_->FlushWAL(/*sync=*/true);
    if (!s.ok()) PBX_LOG(kWarn, "store", "syncing WAL of {}: {}", dir_, s.ToString());
    rocksdb::CancelAllBackgroundWork(db_.get(), /*wait=*/true);
    for (rocksdb::ColumnFamilyHandle* h : handles_) {
      s = db_->DestroyColumnFamilyHandle(h);
      if (!s.ok()) PBX_LOG(kWarn, "store", "releasing column family: {}", s.ToString());
    }
    s = db_->Close();
    if (!s.ok()) PBX_LOG(kWarn, "store", "closing {}: {}", dir_, s.ToString());
  }

  RocksStateStore(const RocksStateStore&) = delete;
  RocksStateStore& operator=(const RocksStateStore&) = delete;

  // Checks the column families and their recorded map; writes the map into a new DB.
  Status VerifyLayout() {
    auto names = CfNames();
    for (size_t i = 0; i < kNumCfs; ++i) {
      if (handles_[i]->GetID() != i || handles_[i]->GetName() != names[i]) {
        return Status::Corruption(dir_ + ": column family " + handles_[i]->GetName() + " has id " +
                                  std::to_string(handles_[i]->GetID()) + ", expected " + names[i] +
                                  "=" + std::to_string(i));
      }
    }
    std::string bytes;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), Cf(Table::kMeta), ToSlice(kCfMapKey), &bytes);
    if (s.IsNotFound()) {
      if (db_->GetLatestSequenceNumber() != 0) {
        return Status::Corruption(dir_ + ": holds data but no column-family map");
      }
      // A new DB: its first batch (seq 1) is the map, identical on every node.
      rocksdb::WriteBatch batch;
      s = batch.Put(Cf(Table::kMeta), ToSlice(kCfMapKey), EncodeCfMap());
      if (s.ok()) s = db_->Write(SyncWrite(true), &batch);
      return s.ok() ? Status::Ok() : FromRocks(s, dir_ + ": writing the column-family map");
    }
    if (!s.ok()) return FromRocks(s, KeyName(Table::kMeta, kCfMapKey));
    return VerifyCfMap(bytes);
  }

  Result<std::string> Get(Table table, std::string_view key) const override {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), Cf(table), ToSlice(key), &value);
    if (!s.ok()) return FromRocks(s, KeyName(table, key));
    return value;
  }

  Result<SeqNo> Commit(const WriteSet& writes, Durability durability) override {
    if (writes.empty()) return Status::InvalidArgument("empty WriteSet");
    std::lock_guard<std::mutex> lock(commit_mu_);
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
    if (batch.Count() == 0) return db_->GetLatestSequenceNumber();  // preconditions only

    rocksdb::Status s = db_->Write(SyncWrite(durability == Durability::kReplicated), &batch);
    if (!s.ok()) return FromRocks(s, "commit to " + dir_);
    SeqNo last = db_->GetLatestSequenceNumber();
    // The change feed is fed from the batch bytes, the same path as ApplyWalBatch.
    Result<std::vector<Change>> changes = DecodeBatch(batch.Data(), last - batch.Count() + 1);
    PBX_CHECK(changes.ok());  // we built this batch a moment ago
    feed_.Deliver(*changes);
    return last;
  }

  Result<std::vector<std::pair<std::string, std::string>>> Scan(Table table,
                                                                std::string_view prefix,
                                                                size_t limit) const override {
    rocksdb::ReadOptions options;
    std::string upper = PrefixSuccessor(prefix);
    rocksdb::Slice lower_slice = ToSlice(prefix);
    rocksdb::Slice upper_slice(upper);
    options.iterate_lower_bound = &lower_slice;
    if (!upper.empty()) options.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, Cf(table)));
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

  SeqNo LatestSeq() const override { return db_->GetLatestSequenceNumber(); }

  Result<std::vector<WalBatch>> ReadWalSince(SeqNo from, size_t max_bytes) const override {
    from = std::max<SeqNo>(from, 1);
    const SeqNo latest = db_->GetLatestSequenceNumber();
    std::vector<WalBatch> out;
    size_t bytes = 0;
    SeqNo next = from;
    // An iterator stops at the end of what was written when it was made, and at some WAL
    // rotations; a new one resumes from `next` (a tailing loop).
    while (next <= latest && (out.empty() || bytes < max_bytes)) {
      std::unique_ptr<rocksdb::TransactionLogIterator> iter;
      rocksdb::Status s = db_->GetUpdatesSince(next, &iter);
      if (!s.ok()) {
        if (out.empty())
          return FromRocks(s, dir_ + ": reading WAL from seq " + std::to_string(next));
        break;
      }
      bool progressed = false;
      for (; iter->Valid() && (out.empty() || bytes < max_bytes); iter->Next()) {
        rocksdb::BatchResult r = iter->GetBatch();
        const SeqNo first = r.sequence;
        const uint32_t count = r.writeBatchPtr->Count();
        // GetUpdatesSince silently starts later when the files holding `next` are gone.
        if (first > next) {
          if (next == from) {
            return Status::NotFound("WAL no longer reaches back to seq " + std::to_string(from));
          }
          return Status::Corruption(dir_ + ": WAL gap: expected seq " + std::to_string(next) +
                                    ", found " + std::to_string(first));
        }
        if (first + count <= next) continue;  // entirely before `next`
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
      }
      if (!progressed) {
        if (!out.empty()) break;
        if (!iter->status().ok()) {
          return FromRocks(iter->status(), dir_ + ": reading WAL from seq " + std::to_string(next));
        }
        return Status::NotFound("WAL no longer reaches back to seq " + std::to_string(next));
      }
    }
    return out;
  }

  Status ApplyWalBatch(const WalBatch& batch) override {
    const std::string what = dir_ + ": batch at seq " + std::to_string(batch.first_seq);
    if (batch.first_seq == 0 || batch.count == 0) {
      return Status::Corruption(what + " with " + std::to_string(batch.count) + " ops");
    }
    std::lock_guard<std::mutex> lock(commit_mu_);
    const SeqNo latest = db_->GetLatestSequenceNumber();
    if (batch.first_seq + batch.count - 1 <= latest) return Status::Ok();  // a resend
    if (batch.first_seq != latest + 1) {
      return Status::Corruption(what + ": expected seq " + std::to_string(latest + 1));
    }
    if (batch.data.size() < kBatchHeaderSize ||
        DecodeFixed64(batch.data.data()) != batch.first_seq) {
      return Status::Corruption(what + ": header does not match");
    }
    rocksdb::WriteBatch wb(batch.data);
    if (wb.Count() != batch.count) {
      return Status::Corruption(what + ": holds " + std::to_string(wb.Count()) + " ops, expected " +
                                std::to_string(batch.count));
    }
    PBX_ASSIGN_OR_RETURN(std::vector<Change> changes, DecodeBatch(batch.data, batch.first_seq));
    // Always synced: the standby acknowledges a batch only once it is durable.
    rocksdb::Status s = db_->Write(SyncWrite(true), &wb);
    if (!s.ok()) return FromRocks(s, what);
    const SeqNo now = db_->GetLatestSequenceNumber();
    if (now != batch.first_seq + batch.count - 1) {
      // Only a write that bypassed commit_mu_ could do this; the replica has diverged.
      return Status::Internal(what + ": DB is now at seq " + std::to_string(now));
    }
    feed_.Deliver(changes);
    return Status::Ok();
  }

 private:
  rocksdb::ColumnFamilyHandle* Cf(Table table) const { return handles_[CfId(table)]; }

  static rocksdb::WriteOptions SyncWrite(bool sync) {
    rocksdb::WriteOptions w;
    w.sync = sync;  // never disableWAL: the WAL is the replication log
    return w;
  }

  static bool IsReserved(const WriteSet::Op& op) {
    return op.table == Table::kMeta && op.key == kCfMapKey;
  }
  static Status Reserved(const WriteSet::Op& op) {
    return Status::InvalidArgument(KeyName(op.table, op.key) + " is reserved");
  }

  Result<bool> Exists(Table table, std::string_view key) const {
    rocksdb::PinnableSlice value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), Cf(table), ToSlice(key), &value);
    if (s.IsNotFound()) return false;
    if (!s.ok()) return FromRocks(s, KeyName(table, key));
    return true;
  }

  // The ops of `data` (a batch starting at `first`) from seq `from` on, as a batch of its own.
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

  const std::string dir_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // index = column-family id
  std::mutex commit_mu_;  // serialises every write: commit order = seq order = feed order
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

Result<std::unique_ptr<ReplicatedDb>> OpenReplicatedDb(const StoreOptions& options) {
  if (options.dir.empty()) return Status::InvalidArgument("StoreOptions.dir is empty");
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
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.dir, descriptors, &handles, &raw);
  if (!s.ok()) return FromRocks(s, "opening " + options.dir);
  auto store = std::make_unique<RocksStateStore>(options.dir, raw, std::move(handles));
  PBX_TRY(store->VerifyLayout());
  PBX_LOG(kInfo, "store", "opened {} at seq {}", options.dir, store->LatestSeq());
  return std::unique_ptr<ReplicatedDb>(std::move(store));
}

Result<std::unique_ptr<StateStore>> OpenRocksStateStore(const StoreOptions& options) {
  PBX_ASSIGN_OR_RETURN(std::unique_ptr<ReplicatedDb> db, OpenReplicatedDb(options));
  return std::unique_ptr<StateStore>(std::move(db));
}

}  // namespace pbx::store
