#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "replication/store/repos.h"

// The feature codes an extension dials to change its own forwarding (FEATURES §9): CFU
// *71<number> / *071, CFB *72<number> / *072, CFNA *73<number> / *073, DND *74 / *074.
// The codes are fixed. Pure: ResolveDial recognises them, the B2BUA applies them.
namespace pbx::sip {

struct FeatureCode {
  enum class Kind : uint8_t {
    kForwardAlways,
    kForwardBusy,
    kForwardNoAnswer,
    kDnd,
  };
  Kind kind = Kind::kDnd;
  bool enable = false;  // *7x turns on, *07x turns off
  std::string number;   // the forward target (enable and not kDnd); empty otherwise
  bool operator==(const FeatureCode&) const = default;
};

// A number a phone could dial: 1-32 of 0-9 * # + (what a forward or follow-me target
// may be, here and in the API).
bool DialableNumber(std::string_view number);

// `dialled`: a cleaned dialled string (ResolveDial's). nullopt when it starts with no
// feature code; InvalidArgument for a code with a bad argument: "*71" without a number,
// "*074" or "*74" with one, a target that is not dialable. One trailing '#' (the phone's
// "send") is dropped first.
Result<std::optional<FeatureCode>> ParseFeatureCode(std::string_view dialled);

// Applies `code` to `f`, the caller's own settings. An error (and `f` unchanged) when the
// result would be refused by the API too: a forward to the extension itself.
Status ApplyFeatureCode(const FeatureCode& code, store::Forwarding& f);

}  // namespace pbx::sip
