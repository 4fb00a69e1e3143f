#pragma once

#include <map>
#include <string>
#include <vector>

#include "replication/store/repos.h"
#include "replication/store/state_store.h"
#include "sip/stack.h"

// The call forward, follow-me and DND settings of every extension (store::Forwarding,
// config "fwd/"), cached from the store's change feed so that the B2BUA never reads
// RocksDB while it routes a call and a standby's cache is warm at takeover.
// Signalling thread only, except construction and Unsubscribe; `stack` and `store` outlive it.
namespace pbx::sip {

class ForwardingDirectory {
 public:
  ForwardingDirectory(Stack& stack, store::StateStore& store) : stack_(stack), store_(store) {}
  ~ForwardingDirectory() { Unsubscribe(); }
  ForwardingDirectory(const ForwardingDirectory&) = delete;
  ForwardingDirectory& operator=(const ForwardingDirectory&) = delete;

  // Subscribes to "fwd/", then loads.
  Status Init();
  void Unsubscribe();

  // The settings of `extension`, or nullptr when it has none.
  const store::Forwarding* Find(const std::string& extension) const;

 private:
  void Reload();

  Stack& stack_;
  store::StateStore& store_;
  std::map<std::string, store::Forwarding> settings_;
  std::vector<store::Subscription> subscriptions_;
};

}  // namespace pbx::sip
