#pragma once

#include <chrono>
#include <cstdint>

// The two clocks sip/ reads: wall time for what is stored and shown (expiries), and a
// monotonic clock for intervals (timers, round-trip times). Thread-safe.
namespace pbx::sip {

inline int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace pbx::sip
