#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

// Throttles password guessing on POST /api/v1/login: after `max_failures` failed logins from
// one source address within `window`, that address is refused for `lockout`. In memory only:
// a restart or a failover forgets it, which is acceptable for a rate limit.
// Thread-safe. Time is passed in, so tests need no clock.
namespace pbx::admin {

class LoginGuard {
 public:
  using Clock = std::chrono::steady_clock;

  struct Limits {
    int max_failures = 5;
    Clock::duration window = std::chrono::seconds(60);
    Clock::duration lockout = std::chrono::seconds(60);
    size_t max_tracked = 10'000;  // sources remembered at most (bounds memory under a flood)
  };

  LoginGuard() : LoginGuard(Limits{}) {}
  explicit LoginGuard(const Limits& limits) : limits_(limits) {}
  LoginGuard(const LoginGuard&) = delete;
  LoginGuard& operator=(const LoginGuard&) = delete;

  // Zero if `source` may try to log in now, else how long it remains locked out.
  Clock::duration RetryAfter(const std::string& source, Clock::time_point now);
  void RecordFailure(const std::string& source, Clock::time_point now);
  void RecordSuccess(const std::string& source);

 private:
  struct Entry {
    int failures = 0;
    Clock::time_point window_start;
    Clock::time_point locked_until;
  };
  void PruneStale(Clock::time_point now);

  const Limits limits_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // GUARDED_BY(mu_)
};

}  // namespace pbx::admin
