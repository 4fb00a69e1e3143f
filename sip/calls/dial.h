#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "sip/calls/feature_codes.h"
#include "sip/routing/routing.h"

// What a dialled string reaches: the one place that asks whether it is an extension or
// goes out through a trunk by the dial plan (sip/routing), or neither.
namespace pbx::sip {

struct DialTarget {
  enum class Kind {
    kExtension,
    kOutbound,
    kNeedsPin,
    kFeatureCode,
    kForbidden,
    kNotFound,
    kInvalid
  };
  Kind kind = Kind::kInvalid;
  std::string number;  // the extension for kExtension; the cleaned dialled string otherwise
  // kOutbound, kNeedsPin: the route, its trunks and the number to send (and its PIN set)
  routing::OutboundDecision route;
  std::string reason;   // kForbidden, kInvalid: why (for the log and the CDR)
  FeatureCode feature;  // kFeatureCode: the code and its number
};

using RouteOutboundFn = std::function<routing::OutboundDecision(const std::string& number)>;

// `dialled` is the Request-URI user part of an INVITE. Visual separators ("-", ".", " ",
// "(", ")") are dropped; what remains must be 1-32 of 0-9 * # + (kInvalid otherwise).
// `is_extension` says whether an extension of that number exists; if not, `route_outbound`
// (the calling extension's RouteOutbound; none: no dial plan) decides: a route (kOutbound),
// a route outside the permission, closed, or needing a PIN (kForbidden: PIN entry needs
// the media prompts, which do not exist yet), or nothing (kNotFound).
DialTarget ResolveDial(std::string_view dialled,
                       const std::function<bool(const std::string&)>& is_extension,
                       const RouteOutboundFn& route_outbound = nullptr);

}  // namespace pbx::sip
