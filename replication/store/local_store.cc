// LocalStore: this node's own, unreplicated facts in a small RocksDB of its own (default
// column family only). Kept apart from the replicated DB so that writing here never moves
// the replicated sequence numbers, which must stay equal on both nodes (DESIGN.md §3).

#include <memory>

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include "replication/store/rocks_status.h"
#include "replication/store/state_store.h"

namespace pbx::store {
namespace {

// Thread-safe (rocksdb::DB is).
class RocksLocalStore final : public LocalStore {
 public:
  explicit RocksLocalStore(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}

  ~RocksLocalStore() override {
    // Every write is synced; Close() only releases the lock and background work.
    rocksdb::CancelAllBackgroundWork(db_.get(), /*wait=*/true);
    rocksdb::Status s = db_->Close();
    if (!s.ok()) PBX_LOG(kWarn, "store", "closing local store: {}", s.ToString());
  }

  Result<std::string> Get(std::string_view key) const override {
    std::string value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value);
    if (!s.ok()) return FromRocks(s, "local/" + std::string(key));
    return value;
  }

  Status Put(std::string_view key, std::string_view value) override {
    rocksdb::Status s = db_->Put(SyncWrite(), rocksdb::Slice(key.data(), key.size()),
                                 rocksdb::Slice(value.data(), value.size()));
    return s.ok() ? Status::Ok() : FromRocks(s, "local/" + std::string(key));
  }

  Status Delete(std::string_view key) override {
    rocksdb::Status s = db_->Delete(SyncWrite(), rocksdb::Slice(key.data(), key.size()));
    return s.ok() ? Status::Ok() : FromRocks(s, "local/" + std::string(key));
  }

 private:
  static rocksdb::WriteOptions SyncWrite() {
    rocksdb::WriteOptions w;
    w.sync = true;
    return w;
  }

  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace

Result<std::unique_ptr<LocalStore>> OpenLocalStore(const std::string& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) return FromRocks(s, "opening local store " + dir);
  return std::unique_ptr<LocalStore>(
      std::make_unique<RocksLocalStore>(std::unique_ptr<rocksdb::DB>(raw)));
}

}  // namespace pbx::store
