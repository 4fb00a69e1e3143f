#include "sip/calls/pin_prompt.h"

#include <utility>

namespace pbx::sip {
namespace {

PinStep Play(media::Tone tone) {
  PinStep s;
  s.play = tone;
  return s;
}

}  // namespace

PinStep PinEntry::Start(int64_t now_ms) {
  phase_ = Phase::kCollecting;
  digits_.clear();
  deadline_ms_ = now_ms + kResponseTimeoutMs;
  return Play(media::Tone::kPrompt);
}

PinStep PinEntry::Submit() {
  phase_ = Phase::kChecking;
  PinStep s;
  s.check = std::exchange(digits_, {});
  return s;
}

PinStep PinEntry::OnDigit(char digit, int64_t now_ms) {
  if (phase_ != Phase::kCollecting) return {};  // typed during a tone: ignored
  if (digit == '#') return Submit();
  digits_ += digit;
  deadline_ms_ = now_ms + kDigitTimeoutMs;
  if (max_length_ && digits_.size() >= max_length_) return Submit();
  PinStep step;
  if (digits_.size() == 1) step.play = media::Tone::kSilence;  // the prompt stops at a digit
  return step;
}

PinStep PinEntry::OnTick(int64_t now_ms) {
  if (now_ms < deadline_ms_) return {};
  if (phase_ == Phase::kCollecting) return Submit();  // 10 s with nothing, or 5 s after a digit
  if (phase_ == Phase::kErrorTone) return Start(now_ms);
  if (phase_ != Phase::kFailing) return {};
  phase_ = Phase::kDone;
  PinStep s;
  s.hang_up = true;
  return s;
}

PinStep PinEntry::OnVerdict(bool valid, int64_t now_ms) {
  if (phase_ != Phase::kChecking) return {};
  if (valid) {
    phase_ = Phase::kAccepted;
    return Play(media::Tone::kRingback);
  }
  ++wrong_;
  phase_ = wrong_ >= kAttempts ? Phase::kFailing : Phase::kErrorTone;
  deadline_ms_ = now_ms + kErrorToneMs;
  return Play(media::Tone::kError);
}

}  // namespace pbx::sip
