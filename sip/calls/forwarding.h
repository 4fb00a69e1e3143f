#pragma once

#include <map>
#include <string>

#include "replication/store/repos.h"
#include "replication/store/state_store.h"
#include "sip/store_feed.h"

// The call forward, follow-me and DND settings of every extension (store::Forwarding,
// config "fwd/"), cached from the store's change feed so that the B2BUA never reads
// RocksDB while it routes a call and a standby's cache is warm at takeover.
// Signalling thread only, except construction and Unsubscribe; `stack` and `store` outlive it.
namespace pbx::sip {

class ForwardingDirectory {
 public:
  ForwardingDirectory(Stack& stack, store::StateStore& store)
      : store_(store), feed_(stack, store) {}
  ForwardingDirectory(const ForwardingDirectory&) = delete;
  ForwardingDirectory& operator=(const ForwardingDirectory&) = delete;

  // Follows "fwd/", then loads.
  Status Init();
  void Unsubscribe() { feed_.Stop(); }

  // The settings of `extension`, or nullptr when it has none.
  const store::Forwarding* Find(const std::string& extension) const;

 private:
  void Reload();

  store::StateStore& store_;
  StoreFeed feed_;
  std::map<std::string, store::Forwarding> settings_;
};

}  // namespace pbx::sip
