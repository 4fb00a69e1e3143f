#include "node/admin/login_guard.h"

namespace pbx::admin {

LoginGuard::Clock::duration LoginGuard::RetryAfter(const std::string& source,
                                                   Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(source);
  if (it == entries_.end() || it->second.locked_until <= now) return Clock::duration::zero();
  return it->second.locked_until - now;
}

void LoginGuard::RecordFailure(const std::string& source, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.size() >= limits_.max_tracked && entries_.find(source) == entries_.end()) {
    PruneStale(now);
    // Still full: forget everyone not locked out rather than grow without bound. An attacker
    // with that many addresses gains little, since each still gets max_failures tries a window.
    if (entries_.size() >= limits_.max_tracked) {
      std::erase_if(entries_, [&](const auto& kv) { return kv.second.locked_until <= now; });
    }
    if (entries_.size() >= limits_.max_tracked) return;
  }
  Entry& e = entries_[source];
  if (e.failures == 0 || now - e.window_start > limits_.window) {
    e.failures = 0;
    e.window_start = now;
  }
  if (++e.failures >= limits_.max_failures) {
    e.locked_until = now + limits_.lockout;
    e.failures = 0;
  }
}

void LoginGuard::RecordSuccess(const std::string& source) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase(source);
}

void LoginGuard::PruneStale(Clock::time_point now) {
  std::erase_if(entries_, [&](const auto& kv) {
    const Entry& e = kv.second;
    return e.locked_until <= now && (e.failures == 0 || now - e.window_start > limits_.window);
  });
}

}  // namespace pbx::admin
