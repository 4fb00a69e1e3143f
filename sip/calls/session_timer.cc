#include "sip/calls/session_timer.h"

#include <algorithm>

#include <fmt/format.h>

namespace pbx::sip {

UasNegotiation NegotiateUas(const SessionTimerConfig& config, const TimerHeaders& request) {
  UasNegotiation out;
  if (!config.enabled) return out;
  if (request.session_expires != 0 && request.session_expires < config.min_se) {
    out.status = 422;
    out.min_se = config.min_se;
    return out;
  }
  // §9: the UAS may lower the interval, never below either side's Min-SE.
  uint32_t floor = std::max(config.min_se, request.min_se);
  uint32_t interval = request.session_expires != 0
                          ? std::max(std::min(request.session_expires, config.expires), floor)
                          : std::max(config.expires, floor);
  // A UAC without timer support cannot refresh: the PBX does. One that supports them
  // refreshes unless its request asked the UAS to.
  bool pbx_refreshes = !request.supported || request.refresher == "uas";
  out.timer = LegTimer{interval, pbx_refreshes};
  out.session_expires = SessionExpiresText(out.timer, /*pbx_is_uac=*/false);
  out.require = request.supported;
  return out;
}

UacOffer OfferUac(const SessionTimerConfig& config, uint32_t after_422) {
  if (!config.enabled) return {};
  uint32_t min_se = std::max(config.min_se, after_422);
  return UacOffer{std::max(config.expires, min_se), min_se};
}

LegTimer AcceptUac(const TimerHeaders& response) {
  if (response.session_expires == 0) return {};
  return LegTimer{response.session_expires, response.refresher != "uas"};
}

void SessionSchedule::Start(const LegTimer& timer, int64_t now_ms) {
  timer_ = timer;
  Refreshed(now_ms);
}

void SessionSchedule::Refreshed(int64_t now_ms) {
  last_ms_ = now_ms;
  refresh_sent_ = false;
}

int64_t SessionSchedule::expiry_ms() const {
  int64_t interval = int64_t{timer_.interval} * 1000;
  return last_ms_ + interval - std::min<int64_t>(32000, interval / 3);
}

SessionSchedule::Action SessionSchedule::Poll(int64_t now_ms) {
  if (!active()) return Action::kNone;
  if (now_ms >= expiry_ms()) {
    timer_ = {};  // reported once
    return Action::kExpire;
  }
  if (timer_.pbx_refreshes && !refresh_sent_ &&
      now_ms >= last_ms_ + int64_t{timer_.interval} * 500) {
    refresh_sent_ = true;
    return Action::kRefresh;
  }
  return Action::kNone;
}

std::string SessionExpiresText(const LegTimer& timer, bool pbx_is_uac) {
  return fmt::format("{};refresher={}", timer.interval,
                     timer.pbx_refreshes == pbx_is_uac ? "uac" : "uas");
}

}  // namespace pbx::sip
