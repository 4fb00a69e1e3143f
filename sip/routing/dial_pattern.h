#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "node/core/status.h"

// The dial pattern language of FEATURES.md §5.6 (Asterisk style), compiled once and matched
// against dialled strings. Pure logic; a compiled pattern is an immutable value.
//   X  any digit 0-9      Z  1-9      N  2-9      [1-5], [137], [1-37-9]  one of a set
//   .  one or more of anything (last only)      !  zero or more of anything (last only)
//   0-9 * # +  themselves. A leading '_' (Asterisk's marker) is accepted and ignored.
// Letters are case-insensitive. Anything else is an error naming the position.
namespace pbx::sip::routing {

class DialPattern {
 public:
  // InvalidArgument with the offending position for a malformed pattern.
  static Result<DialPattern> Parse(std::string_view text);

  // Whether the whole of `dialled` matches.
  bool Matches(std::string_view dialled) const;
  const std::string& text() const { return text_; }

 private:
  struct Element {
    uint16_t set = 0;  // bit per symbol, see SymbolBit()
  };
  enum class Tail : uint8_t { kNone, kOneOrMore, kZeroOrMore };
  std::string text_;
  std::vector<Element> elements_;
  Tail tail_ = Tail::kNone;
};

}  // namespace pbx::sip::routing
