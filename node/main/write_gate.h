#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>

#include "replication/store/state_store.h"

namespace pbx::node {

// The StateStore that the node's own subsystems (API, later SIP) write through. Reads pass
// straight to the store; commits pass only while the node serves, so that a standby, a
// fenced or a draining node never writes to its replicated DB (the log applier alone does).
// Thread-safe.
class WriteGate final : public store::StateStore {
 public:
  // `store` must outlive this object. Closed until Open().
  explicit WriteGate(store::StateStore& store) : store_(store) {}

  // Commits pass from now on, while `license` (if set) says the node may still serve: the
  // role machine's serving license ends on its own when a node was paused, before the
  // control thread had a chance to fence it.
  void Open();
  void SetLicense(std::function<bool()> license);
  // Commits are refused with Unavailable(`why`) from now on; returns once no commit that
  // was already let through is still running, so LatestSeq() is then final.
  void Close(std::string why);
  bool is_open() const;

  Result<std::string> Get(store::Table table, std::string_view key) const override {
    return store_.Get(table, key);
  }
  Result<store::SeqNo> Commit(const store::WriteSet& writes, store::Durability durability) override;
  Result<std::vector<std::pair<std::string, std::string>>> Scan(store::Table table,
                                                                std::string_view prefix,
                                                                size_t limit) const override {
    return store_.Scan(table, prefix, limit);
  }
  store::Subscription Subscribe(store::Table table, std::string prefix,
                                std::function<void(const store::Change&)> fn) override {
    return store_.Subscribe(table, std::move(prefix), std::move(fn));
  }
  store::SeqNo LatestSeq() const override { return store_.LatestSeq(); }

 private:
  store::StateStore& store_;
  mutable std::mutex mu_;
  std::condition_variable idle_;
  bool open_ = false;              // guarded by mu_
  std::string why_ = "starting";   // guarded by mu_
  int in_flight_ = 0;              // guarded by mu_
  std::function<bool()> license_;  // guarded by mu_
};

}  // namespace pbx::node
