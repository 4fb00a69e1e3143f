#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "replication/store/state_store.h"

namespace pbx::store {

// The subscriber registry behind StateStore::Subscribe, shared by every implementation.
// Internal to replication/store.
//
// Thread-safe. Deliver() calls must be serialised by the caller (the store's commit lock):
// that is what makes delivery happen in commit order.
//
// Rule for cancelling (destroying or resetting a Subscription):
//  - From inside a callback (on the delivering thread): allowed, for any subscription of
//    this feed, including the running one. A cancelled subscription gets no further
//    change, not even the rest of the current batch.
//  - From any other thread: allowed; it waits until a delivery in progress has finished,
//    so once it returns the callback is neither running nor will it be called again, and
//    whatever the callback captured may be destroyed.
//  - After the store is gone: allowed, it does nothing.
// Subscribe() may also be called from inside a callback; the new subscription sees the
// commits after the one being delivered.
class ChangeFeed {
 public:
  ChangeFeed();
  ~ChangeFeed();
  ChangeFeed(const ChangeFeed&) = delete;
  ChangeFeed& operator=(const ChangeFeed&) = delete;

  Subscription Subscribe(Table table, std::string prefix, std::function<void(const Change&)> fn);

  // Calls every matching subscriber for every change, in order, on this thread.
  // REQUIRES: calls are serialised by the caller; no lock held that a callback might need.
  void Deliver(const std::vector<Change>& changes);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace pbx::store
