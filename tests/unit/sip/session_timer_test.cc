// RFC 4028 negotiation and the refresh/expiry schedule of one leg, on an injected clock.
#include "sip/calls/session_timer.h"

#include <string>
#include <utility>

#include <gtest/gtest.h>

namespace pbx::sip {
namespace {

constexpr SessionTimerConfig kOn{.enabled = true, .expires = 1800, .min_se = 120};

TimerHeaders Headers(bool supported, uint32_t session_expires, std::string refresher = "",
                     uint32_t min_se = 0) {
  return TimerHeaders{supported, session_expires, std::move(refresher), min_se};
}

TEST(SessionTimerTest, DisabledNegotiatesNothing) {
  UasNegotiation n = NegotiateUas({}, Headers(true, 60));
  EXPECT_EQ(n.status, 200);
  EXPECT_EQ(n.timer.interval, 0u);
  EXPECT_TRUE(n.session_expires.empty());
  EXPECT_EQ(OfferUac({}).session_expires, 0u);
}

TEST(SessionTimerTest, UasRefusesAnIntervalBelowItsMinSeWith422) {
  UasNegotiation n = NegotiateUas(kOn, Headers(true, 90));
  EXPECT_EQ(n.status, 422);
  EXPECT_EQ(n.min_se, 120u);
}

TEST(SessionTimerTest, UasKeepsTheAskedIntervalAndTheAskedRefresher) {
  UasNegotiation n = NegotiateUas(kOn, Headers(true, 600, "uas"));
  EXPECT_EQ(n.status, 200);
  EXPECT_EQ(n.timer.interval, 600u);
  EXPECT_TRUE(n.timer.pbx_refreshes);
  EXPECT_EQ(n.session_expires, "600;refresher=uas");
  EXPECT_TRUE(n.require);
  // Lowered to ours; the phone refreshes when it said nothing.
  n = NegotiateUas(kOn, Headers(true, 7200));
  EXPECT_EQ(n.timer.interval, 1800u);
  EXPECT_FALSE(n.timer.pbx_refreshes);
  EXPECT_EQ(n.session_expires, "1800;refresher=uac");
  // Never below the request's own Min-SE.
  n = NegotiateUas(kOn, Headers(true, 3000, "", 2500));
  EXPECT_EQ(n.timer.interval, 2500u);
}

TEST(SessionTimerTest, UasRefreshesForAPhoneWithoutTimerSupport) {
  UasNegotiation n = NegotiateUas(kOn, {});
  EXPECT_EQ(n.timer.interval, 1800u);
  EXPECT_TRUE(n.timer.pbx_refreshes);
  EXPECT_EQ(n.session_expires, "1800;refresher=uas");
  EXPECT_FALSE(n.require);
}

TEST(SessionTimerTest, UacOffersItsIntervalAndRetriesAbove422sMinSe) {
  UacOffer o = OfferUac(kOn);
  EXPECT_EQ(o.session_expires, 1800u);
  EXPECT_EQ(o.min_se, 120u);
  o = OfferUac(kOn, 3600);
  EXPECT_EQ(o.session_expires, 3600u);
  EXPECT_EQ(o.min_se, 3600u);
  EXPECT_EQ(AcceptUac({}).interval, 0u);  // the 2xx said nothing: no timer on the leg
  LegTimer t = AcceptUac(Headers(true, 900, "uac"));
  EXPECT_EQ(t.interval, 900u);
  EXPECT_TRUE(t.pbx_refreshes);
  EXPECT_FALSE(AcceptUac(Headers(false, 900, "uas")).pbx_refreshes);
}

TEST(SessionTimerTest, RefresherRefreshesAtHalfTheIntervalOncePerPeriod) {
  SessionSchedule s;
  EXPECT_EQ(s.Poll(0), SessionSchedule::Action::kNone);  // inactive
  int64_t t0 = 1'000'000;
  s.Start({.interval = 90, .pbx_refreshes = true}, t0);
  EXPECT_EQ(s.Poll(t0 + 44'999), SessionSchedule::Action::kNone);
  EXPECT_EQ(s.Poll(t0 + 45'000), SessionSchedule::Action::kRefresh);
  EXPECT_EQ(s.Poll(t0 + 46'000), SessionSchedule::Action::kNone);  // sent already
  s.Refreshed(t0 + 46'000);
  EXPECT_EQ(s.Poll(t0 + 90'999), SessionSchedule::Action::kNone);
  EXPECT_EQ(s.Poll(t0 + 91'000), SessionSchedule::Action::kRefresh);
}

TEST(SessionTimerTest, ExpiresAtTheIntervalLessTheMarginWithoutARefresh) {
  SessionSchedule s;
  int64_t t0 = 5'000;
  // 90 s: margin min(32, 30) = 30 s.
  s.Start({.interval = 90, .pbx_refreshes = false}, t0);
  EXPECT_EQ(s.expiry_ms(), t0 + 60'000);
  EXPECT_EQ(s.Poll(t0 + 59'999), SessionSchedule::Action::kNone);
  s.Refreshed(t0 + 50'000);  // the phone refreshed: the deadline moves
  EXPECT_EQ(s.Poll(t0 + 109'999), SessionSchedule::Action::kNone);
  EXPECT_EQ(s.Poll(t0 + 110'000), SessionSchedule::Action::kExpire);
  EXPECT_EQ(s.Poll(t0 + 111'000), SessionSchedule::Action::kNone);  // reported once
  // 1800 s: margin 32 s. A refresher whose refresh never succeeds expires too.
  s.Start({.interval = 1800, .pbx_refreshes = true}, 0);
  EXPECT_EQ(s.expiry_ms(), 1'768'000);
  EXPECT_EQ(s.Poll(900'000), SessionSchedule::Action::kRefresh);
  EXPECT_EQ(s.Poll(1'768'000), SessionSchedule::Action::kExpire);
}

TEST(SessionTimerTest, SessionExpiresNamesTheRefresherOfTheTransaction) {
  LegTimer pbx{.interval = 600, .pbx_refreshes = true};
  EXPECT_EQ(SessionExpiresText(pbx, /*pbx_is_uac=*/true), "600;refresher=uac");
  EXPECT_EQ(SessionExpiresText(pbx, /*pbx_is_uac=*/false), "600;refresher=uas");
}

}  // namespace
}  // namespace pbx::sip
