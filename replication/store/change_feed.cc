#include "replication/store/change_feed.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

namespace pbx::store {

struct ChangeFeed::State {
  struct Sub {
    Table table;
    std::string prefix;
    std::function<void(const Change&)> fn;
    std::atomic<bool> active{true};
  };

  std::mutex registry_mu;
  std::map<uint64_t, std::shared_ptr<Sub>> subs;  // guarded by registry_mu
  uint64_t next_id = 1;                           // guarded by registry_mu

  // Held for the whole of one Deliver(); an outside cancel takes it to wait for a delivery
  // in progress to finish.
  std::mutex delivery_mu;
  // The thread inside Deliver(), so that a cancel from a callback does not self-deadlock.
  std::atomic<std::thread::id> delivering_thread{};

  void Cancel(uint64_t id) {
    std::shared_ptr<Sub> sub;
    {
      std::lock_guard<std::mutex> lock(registry_mu);
      auto it = subs.find(id);
      if (it == subs.end()) return;
      sub = std::move(it->second);
      subs.erase(it);
    }
    sub->active.store(false);
    if (delivering_thread.load() != std::this_thread::get_id()) {
      // Not inside a callback: wait out a delivery that may already hold `sub`.
      std::lock_guard<std::mutex> wait(delivery_mu);
    }
  }
};

ChangeFeed::ChangeFeed() : state_(std::make_shared<State>()) {}

ChangeFeed::~ChangeFeed() = default;

Subscription ChangeFeed::Subscribe(Table table, std::string prefix,
                                   std::function<void(const Change&)> fn) {
  auto sub = std::make_shared<State::Sub>();
  sub->table = table;
  sub->prefix = std::move(prefix);
  sub->fn = std::move(fn);
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(state_->registry_mu);
    id = state_->next_id++;
    state_->subs.emplace(id, std::move(sub));
  }
  // A weak reference: a Subscription that outlives its store cancels nothing.
  std::weak_ptr<State> weak = state_;
  return Subscription([weak, id] {
    if (auto state = weak.lock()) state->Cancel(id);
  });
}

void ChangeFeed::Deliver(const std::vector<Change>& changes) {
  if (changes.empty()) return;
  std::lock_guard<std::mutex> delivery(state_->delivery_mu);
  struct ThreadMark {
    explicit ThreadMark(State& s) : state(s) {
      state.delivering_thread.store(std::this_thread::get_id());
    }
    ~ThreadMark() { state.delivering_thread.store(std::thread::id()); }
    State& state;
  } mark(*state_);

  // A snapshot, so that callbacks run without registry_mu and may (un)subscribe.
  std::vector<std::shared_ptr<State::Sub>> subs;
  {
    std::lock_guard<std::mutex> lock(state_->registry_mu);
    subs.reserve(state_->subs.size());
    for (const auto& [id, sub] : state_->subs) subs.push_back(sub);
  }
  for (const Change& change : changes) {
    for (const auto& sub : subs) {
      if (sub->table != change.table) continue;
      // A reset concerns every key of the table, so every prefix.
      if (!change.reset && !change.key.starts_with(sub->prefix)) continue;
      if (!sub->active.load()) continue;
      sub->fn(change);
    }
  }
}

}  // namespace pbx::store
