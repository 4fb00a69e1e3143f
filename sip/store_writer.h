#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "node/core/status.h"
#include "replication/store/state_store.h"

// The committer thread of sip/: the signalling thread must never block on a commit, so it
// hands its writes here. Each round merges every write pending into one WriteSet and one
// Commit, so a single replication round trip serves a whole burst of REGISTERs.
// Thread-safe. `store` must outlive it.
namespace pbx::sip {

class StoreWriter {
 public:
  // Runs on the committer thread with the commit's outcome; post to your own loop.
  using Done = std::function<void(const Status&)>;

  explicit StoreWriter(store::StateStore& store);
  ~StoreWriter();  // Stop()
  StoreWriter(const StoreWriter&) = delete;
  StoreWriter& operator=(const StoreWriter&) = delete;

  // Queues `writes` (no preconditions: one failing would fail the whole merged batch).
  // A batch is committed kReplicated if any of its parts asks for it. `done` may be empty.
  void Submit(store::WriteSet writes, store::Durability durability, Done done);
  // Commits what is queued, then joins the thread. Later Submits fail with Unavailable.
  void Stop();

  uint64_t commits() const;  // merged commits so far (for tests and stats)

 private:
  struct Item {
    store::WriteSet writes;
    store::Durability durability;
    Done done;
  };
  void ThreadMain();

  store::StateStore& store_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Item> queue_;  // guarded by mu_
  bool stopping_ = false;    // guarded by mu_
  uint64_t commits_ = 0;     // guarded by mu_
  std::thread thread_;
};

}  // namespace pbx::sip
