#pragma once

#include <cstdint>
#include <optional>
#include <string>

// RFC 4028 session timers, per dialog (leg) of a call: the negotiation as UAS (side A) and
// as UAC (side B), and the schedule of one leg (when the PBX refreshes, when the session has
// expired). Pure: no sofia type, time passed in (sip/clock.h NowMs() in production).
namespace pbx::sip {

// The settings (store::SystemSettings): what the PBX asks for and the least it accepts.
struct SessionTimerConfig {
  bool enabled = false;
  uint32_t expires = 1800;  // Session-Expires the PBX offers (RFC 4028 recommends 1800)
  uint32_t min_se = 90;     // Min-SE: shorter intervals get 422
};

// What a request or response says about session timers.
struct TimerHeaders {
  bool supported = false;        // "timer" in Supported or Require
  uint32_t session_expires = 0;  // Session-Expires delta; 0: absent
  std::string refresher;         // "uac" | "uas" | "" (absent)
  uint32_t min_se = 0;           // Min-SE; 0: absent
};

// The outcome on one leg: the interval and whether the PBX is the refresher. interval 0:
// no session timer on the leg.
struct LegTimer {
  uint32_t interval = 0;
  bool pbx_refreshes = false;
};

// The PBX as UAS on an incoming INVITE (RFC 4028 §9).
struct UasNegotiation {
  int status = 200;  // 422: Session-Expires below our Min-SE (reply with Min-SE: min_se)
  uint32_t min_se = 0;
  LegTimer timer;
  // The response's Session-Expires ("1800;refresher=uac") and whether it needs Require:
  // timer (only when the UAC supports timers). Empty: no session timer headers.
  std::string session_expires;
  bool require = false;
};
UasNegotiation NegotiateUas(const SessionTimerConfig& config, const TimerHeaders& request);

// The PBX as UAC: the headers of its INVITE. `after_422`: the Min-SE of a 422 answering the
// previous attempt (the retry asks for at least that).
struct UacOffer {
  uint32_t session_expires = 0;  // 0: timers off, no headers
  uint32_t min_se = 0;
};
UacOffer OfferUac(const SessionTimerConfig& config, uint32_t after_422 = 0);
// The leg's timer from the 2xx (RFC 4028 §7.2): none without Session-Expires; the PBX
// refreshes unless the answer names the UAS.
LegTimer AcceptUac(const TimerHeaders& response);

// The schedule of one leg. The refresher refreshes at half the interval; the session
// expires at the interval less min(32 s, interval / 3) (RFC 4028 §10) after the last
// refresh, when the PBX ends the call.
class SessionSchedule {
 public:
  enum class Action { kNone, kRefresh, kExpire };

  // (Re)starts the schedule at `now_ms` (an answer, or a refresh that renegotiated).
  void Start(const LegTimer& timer, int64_t now_ms);
  // A refresh succeeded at `now_ms` (either side's re-INVITE/UPDATE got a 2xx).
  void Refreshed(int64_t now_ms);
  // What is due at `now_ms`: kRefresh once per period while the PBX refreshes, kExpire once
  // the deadline passed without a refresh.
  Action Poll(int64_t now_ms);

  bool active() const { return timer_.interval != 0; }
  const LegTimer& timer() const { return timer_; }
  int64_t expiry_ms() const;

 private:
  LegTimer timer_;
  int64_t last_ms_ = 0;
  bool refresh_sent_ = false;
};

// "Session-Expires" text of a leg's timer as the PBX sends it in requests and responses
// (`pbx_is_uac`: whether the PBX is the UAC of the dialog).
std::string SessionExpiresText(const LegTimer& timer, bool pbx_is_uac);

}  // namespace pbx::sip
