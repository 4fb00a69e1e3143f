#include "sip/calls/feature_codes.h"

#include <algorithm>
#include <array>

namespace pbx::sip {
namespace {

struct Entry {
  std::string_view on, off;
  FeatureCode::Kind kind;
};

constexpr std::array<Entry, 4> kCodes{{
    {"*71", "*071", FeatureCode::Kind::kForwardAlways},
    {"*72", "*072", FeatureCode::Kind::kForwardBusy},
    {"*73", "*073", FeatureCode::Kind::kForwardNoAnswer},
    {"*74", "*074", FeatureCode::Kind::kDnd},
}};

}  // namespace

bool DialableNumber(std::string_view number) {
  constexpr size_t kMaxNumber = 32;
  if (number.empty() || number.size() > kMaxNumber) return false;
  return std::all_of(number.begin(), number.end(), [](char c) {
    return (c >= '0' && c <= '9') || c == '*' || c == '#' || c == '+';
  });
}

Result<std::optional<FeatureCode>> ParseFeatureCode(std::string_view dialled) {
  if (dialled.ends_with('#')) dialled.remove_suffix(1);
  for (const Entry& e : kCodes) {
    FeatureCode code;
    code.kind = e.kind;
    if (dialled.starts_with(e.off)) {  // off: never takes an argument
      if (dialled.size() != e.off.size()) {
        return Status::InvalidArgument(std::string(e.off) + " takes no number");
      }
      return std::optional(code);
    }
    if (!dialled.starts_with(e.on)) continue;
    std::string_view arg = dialled.substr(e.on.size());
    code.enable = true;
    if (e.kind == FeatureCode::Kind::kDnd) {
      if (!arg.empty()) return Status::InvalidArgument(std::string(e.on) + " takes no number");
      return std::optional(code);
    }
    if (!DialableNumber(arg)) {
      return Status::InvalidArgument(std::string(e.on) + " needs a number of 1-32 of 0-9 * # +");
    }
    code.number = std::string(arg);
    return std::optional(code);
  }
  return std::optional<FeatureCode>();
}

Status ApplyFeatureCode(const FeatureCode& code, store::Forwarding& f) {
  if (code.kind == FeatureCode::Kind::kDnd) {
    f.dnd = code.enable;
    return Status::Ok();
  }
  store::ForwardRule& rule = code.kind == FeatureCode::Kind::kForwardAlways ? f.always
                             : code.kind == FeatureCode::Kind::kForwardBusy ? f.busy
                                                                            : f.no_answer;
  if (!code.enable) {
    rule.active = false;  // the number stays, as the API keeps it, for the next *7x
    return Status::Ok();
  }
  if (code.number == f.extension) {
    return Status::InvalidArgument("an extension cannot forward to itself");
  }
  rule.active = true;
  rule.number = code.number;
  return Status::Ok();
}

}  // namespace pbx::sip
