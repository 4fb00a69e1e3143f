#pragma once

#include <functional>
#include <string>
#include <string_view>

// What a dialled string reaches. One small function so that the dial plan (feature codes,
// outbound routes, trunks: sip/routing) can later take over the resolution in one place.
namespace pbx::sip {

struct DialTarget {
  enum class Kind { kExtension, kNotFound, kInvalid };
  Kind kind = Kind::kInvalid;
  std::string number;  // the extension for kExtension; the cleaned dialled string otherwise
};

// `dialled` is the Request-URI user part of an INVITE. Visual separators ("-", ".", " ",
// "(", ")") are dropped; what remains must be 1-32 of 0-9 * # + (kInvalid otherwise).
// `is_extension` says whether an extension of that number exists.
DialTarget ResolveDial(std::string_view dialled,
                       const std::function<bool(const std::string&)>& is_extension);

}  // namespace pbx::sip
