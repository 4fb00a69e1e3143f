#include "node/admin/login_guard.h"

#include <gtest/gtest.h>

namespace pbx::admin {
namespace {

using std::chrono::seconds;
using Clock = LoginGuard::Clock;

TEST(LoginGuardTest, LocksOutAfterFiveFailuresWithinTheWindow) {
  LoginGuard guard;
  const Clock::time_point t0{};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(guard.RetryAfter("10.0.0.1", t0 + seconds(i)), Clock::duration::zero());
    guard.RecordFailure("10.0.0.1", t0 + seconds(i));
  }
  EXPECT_EQ(guard.RetryAfter("10.0.0.1", t0 + seconds(4)), Clock::duration::zero());
  guard.RecordFailure("10.0.0.1", t0 + seconds(4));
  EXPECT_EQ(guard.RetryAfter("10.0.0.1", t0 + seconds(4)), seconds(60));
  EXPECT_EQ(guard.RetryAfter("10.0.0.1", t0 + seconds(30)), seconds(34));
  // Other sources are not affected.
  EXPECT_EQ(guard.RetryAfter("10.0.0.2", t0 + seconds(5)), Clock::duration::zero());
  // The lockout ends.
  EXPECT_EQ(guard.RetryAfter("10.0.0.1", t0 + seconds(64)), Clock::duration::zero());
}

TEST(LoginGuardTest, FailuresOutsideTheWindowDoNotAccumulate) {
  LoginGuard guard;
  const Clock::time_point t0{};
  for (int i = 0; i < 10; ++i) guard.RecordFailure("h", t0 + seconds(i * 20));
  // Every 3 failures span 60 s: never 5 in one window.
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(guard.RetryAfter("h", t0 + seconds(200)), Clock::duration::zero());
  }
}

TEST(LoginGuardTest, SuccessResetsTheCount) {
  LoginGuard guard;
  const Clock::time_point t0{};
  for (int i = 0; i < 4; ++i) guard.RecordFailure("h", t0);
  guard.RecordSuccess("h");
  for (int i = 0; i < 4; ++i) guard.RecordFailure("h", t0);
  EXPECT_EQ(guard.RetryAfter("h", t0), Clock::duration::zero());
  guard.RecordFailure("h", t0);
  EXPECT_GT(guard.RetryAfter("h", t0), Clock::duration::zero());
}

TEST(LoginGuardTest, MemoryIsBoundedButLockedSourcesStayLocked) {
  LoginGuard::Limits limits;
  limits.max_tracked = 8;
  LoginGuard guard(limits);
  const Clock::time_point t0{};
  for (int i = 0; i < 5; ++i) guard.RecordFailure("attacker", t0);
  for (int i = 0; i < 1000; ++i) guard.RecordFailure("spoof" + std::to_string(i), t0);
  EXPECT_GT(guard.RetryAfter("attacker", t0 + seconds(1)), Clock::duration::zero());
}

}  // namespace
}  // namespace pbx::admin
