#include "sip/calls/dial.h"

namespace pbx::sip {

DialTarget ResolveDial(std::string_view dialled,
                       const std::function<bool(const std::string&)>& is_extension,
                       const RouteOutboundFn& route_outbound) {
  using routing::OutboundDecision;
  constexpr size_t kMaxDigits = 32;
  DialTarget t;
  for (char c : dialled) {
    if (c == '-' || c == '.' || c == ' ' || c == '(' || c == ')') continue;
    bool ok = (c >= '0' && c <= '9') || c == '*' || c == '#' || c == '+';
    if (!ok || t.number.size() == kMaxDigits) {
      t.number.clear();
      return t;
    }
    t.number += c;
  }
  if (t.number.empty()) return t;
  Result<std::optional<FeatureCode>> code = ParseFeatureCode(t.number);
  if (!code.ok()) {
    t.reason = code.status().message();
    return t;
  }
  if (code->has_value()) {
    t.kind = DialTarget::Kind::kFeatureCode;
    t.feature = std::move(**code);
    return t;
  }
  t.kind = DialTarget::Kind::kNotFound;
  if (is_extension(t.number)) {
    t.kind = DialTarget::Kind::kExtension;
    return t;
  }
  if (!route_outbound) return t;
  t.route = route_outbound(t.number);
  switch (t.route.kind) {
    case OutboundDecision::Kind::kNoRoute:
      break;
    case OutboundDecision::Kind::kForbidden:
      t.kind = DialTarget::Kind::kForbidden;
      t.reason = "not in the dial permission";
      break;
    case OutboundDecision::Kind::kClosed:
      t.kind = DialTarget::Kind::kForbidden;
      t.reason = "route closed by its time condition";
      break;
    case OutboundDecision::Kind::kRoute:
      t.kind = t.route.pin_set.empty() ? DialTarget::Kind::kOutbound : DialTarget::Kind::kNeedsPin;
      break;
  }
  return t;
}

}  // namespace pbx::sip
