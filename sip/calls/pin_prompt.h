#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "media/apps/endpoint.h"

// PIN entry on an outbound route with a PIN set (FEATURES §5.9; the timeouts are DISA's,
// §7.5): the caller, answered by the PBX, hears the prompt tone and dials the PIN, ended by
// '#' or by reaching the longest PIN of the set; 10 s for the first digit, 5 s between
// digits (the digits so far are then checked). A wrong PIN plays the error tone and the
// prompt again; the third wrong one plays the error tone and then the call is hung up.
// Pure: the owner feeds it digits, time and verdicts, and does what each step says.
namespace pbx::sip {

struct PinStep {
  std::optional<std::string> check;  // a PIN to check now; answer with OnVerdict
  std::optional<media::Tone> play;   // the tone to play from now on
  bool hang_up = false;              // three wrong PINs: end the call
};

class PinEntry {
 public:
  static constexpr int64_t kResponseTimeoutMs = 10000;
  static constexpr int64_t kDigitTimeoutMs = 5000;
  static constexpr int64_t kErrorToneMs = 1500;  // before the prompt again, or the hang-up
  static constexpr int kAttempts = 3;

  // `max_length`: the longest PIN of the set (0: only '#' ends the entry).
  explicit PinEntry(size_t max_length) : max_length_(max_length) {}

  PinStep Start(int64_t now_ms);
  PinStep OnDigit(char digit, int64_t now_ms);
  PinStep OnTick(int64_t now_ms);
  PinStep OnVerdict(bool valid, int64_t now_ms);

  bool accepted() const { return phase_ == Phase::kAccepted; }
  // True until the PIN is accepted or the caller is to be hung up.
  bool active() const { return phase_ != Phase::kAccepted && phase_ != Phase::kDone; }
  int wrong() const { return wrong_; }

 private:
  enum class Phase : uint8_t { kCollecting, kChecking, kErrorTone, kFailing, kAccepted, kDone };
  PinStep Submit();

  size_t max_length_;
  Phase phase_ = Phase::kCollecting;
  std::string digits_;
  int64_t deadline_ms_ = 0;
  int wrong_ = 0;
};

}  // namespace pbx::sip
