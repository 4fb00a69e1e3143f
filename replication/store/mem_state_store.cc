// MemStateStore: the in-memory StateStore for unit tests (like LevelDB's memenv). It has the
// semantics of RocksStateStore: preconditions checked under the commit lock, one sequence
// number per write, change feed delivered in commit order on the committing thread.

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "replication/store/change_feed.h"
#include "replication/store/state_store.h"

namespace pbx::store {
namespace {

std::string KeyName(Table table, std::string_view key) {
  std::string s(TableName(table));
  s += '/';
  s += key;
  return s;
}

// Thread-safe.
class MemStateStore final : public StateStore {
 public:
  Result<std::string> Get(Table table, std::string_view key) const override {
    std::shared_lock<std::shared_mutex> lock(data_mu_);
    const auto& t = tables_[Index(table)];
    auto it = t.find(key);
    if (it == t.end()) return Status::NotFound(KeyName(table, key) + " not found");
    return it->second;
  }

  Result<SeqNo> Commit(const WriteSet& writes, Durability /*durability*/) override {
    if (writes.empty()) return Status::InvalidArgument("empty WriteSet");
    std::lock_guard<std::mutex> commit(commit_mu_);
    std::vector<Change> changes;
    {
      std::unique_lock<std::shared_mutex> lock(data_mu_);
      // Preconditions see the state before the batch, as in RocksStateStore.
      for (const WriteSet::Op& op : writes.ops()) {
        const auto& t = tables_[Index(op.table)];
        bool present = t.find(op.key) != t.end();
        if (op.kind == WriteSet::Op::Kind::kExpectAbsent && present) {
          return Status::Conflict(KeyName(op.table, op.key) + " already exists");
        }
        if (op.kind == WriteSet::Op::Kind::kExpectPresent && !present) {
          return Status::Conflict(KeyName(op.table, op.key) + " does not exist");
        }
      }
      for (const WriteSet::Op& op : writes.ops()) {
        auto& t = tables_[Index(op.table)];
        if (op.kind == WriteSet::Op::Kind::kPut) {
          t.insert_or_assign(op.key, op.value);
          changes.push_back(Change{latest_seq_ + 1, op.table, op.key, op.value});
        } else if (op.kind == WriteSet::Op::Kind::kDelete) {
          auto it = t.find(op.key);
          if (it != t.end()) t.erase(it);
          changes.push_back(Change{latest_seq_ + 1, op.table, op.key, std::nullopt});
        } else {
          continue;
        }
        ++latest_seq_;
      }
    }
    feed_.Deliver(changes);
    return latest_seq_.load();
  }

  Result<std::vector<std::pair<std::string, std::string>>> Scan(Table table,
                                                                std::string_view prefix,
                                                                size_t limit) const override {
    std::shared_lock<std::shared_mutex> lock(data_mu_);
    const auto& t = tables_[Index(table)];
    std::vector<std::pair<std::string, std::string>> out;
    for (auto it = t.lower_bound(prefix); it != t.end() && it->first.starts_with(prefix); ++it) {
      if (limit != 0 && out.size() >= limit) break;
      out.emplace_back(it->first, it->second);
    }
    return out;
  }

  Subscription Subscribe(Table table, std::string prefix,
                         std::function<void(const Change&)> fn) override {
    return feed_.Subscribe(table, std::move(prefix), std::move(fn));
  }

  SeqNo LatestSeq() const override { return latest_seq_.load(); }

 private:
  static size_t Index(Table table) { return static_cast<size_t>(table); }

  std::mutex commit_mu_;  // serialises commits: gives commit order and feed order
  mutable std::shared_mutex data_mu_;
  std::array<std::map<std::string, std::string, std::less<>>, std::size(kAllTables)>
      tables_;                        // guarded by data_mu_
  std::atomic<SeqNo> latest_seq_{0};  // written under data_mu_
  ChangeFeed feed_;
};

}  // namespace

std::unique_ptr<StateStore> NewMemStateStore() { return std::make_unique<MemStateStore>(); }

}  // namespace pbx::store
