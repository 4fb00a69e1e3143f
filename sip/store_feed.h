#pragma once

#include <functional>
#include <string>
#include <vector>

#include "replication/store/state_store.h"
#include "sip/stack.h"

// The store's change feed, delivered on the signalling loop. The registrar, the trunk
// client and the B2BUA's directories cache what they need of the store and follow it, so
// the SIP path never reads RocksDB and a standby's caches are warm at takeover.
// Follow first, then load: a change in between is applied twice, never lost.
// Construction and Stop from any thread; `stack` and `store` outlive it.
namespace pbx::sip {

class StoreFeed {
 public:
  using OnChange = std::function<void(const store::Change&)>;

  StoreFeed(Stack& stack, store::StateStore& store) : stack_(stack), store_(store) {}
  ~StoreFeed() { Stop(); }
  StoreFeed(const StoreFeed&) = delete;
  StoreFeed& operator=(const StoreFeed&) = delete;

  // Runs `on_change` on the signalling loop for every committed change to a key of `table`
  // under `prefix` (and for every reset of `table`).
  void Follow(store::Table table, std::string prefix, OnChange on_change);
  // Cancels every subscription. What was posted before may still run on the loop.
  void Stop();

 private:
  Stack& stack_;
  store::StateStore& store_;
  std::vector<store::Subscription> subscriptions_;
};

}  // namespace pbx::sip
