#include "sip/routing/dial_pattern.h"

#include <fmt/format.h>

namespace pbx::sip::routing {
namespace {

// Symbols a dialled string may hold: the digits 0-9 (bits 0-9), '*', '#', '+'.
constexpr uint16_t kDigits = 0x3ff;
constexpr size_t kMaxPattern = 64;

int SymbolBit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c == '*') return 10;
  if (c == '#') return 11;
  if (c == '+') return 12;
  return -1;
}

uint16_t DigitRange(char from, char to) {
  uint16_t set = 0;
  for (char c = from; c <= to; ++c) set |= static_cast<uint16_t>(1u << (c - '0'));
  return set;
}

Status Bad(std::string_view text, size_t pos, std::string_view why) {
  return Status::InvalidArgument(fmt::format("pattern '{}' at {}: {}", text, pos + 1, why));
}

}  // namespace

Result<DialPattern> DialPattern::Parse(std::string_view text) {
  DialPattern p;
  p.text_ = std::string(text);
  size_t i = 0;
  if (!text.empty() && text[0] == '_') i = 1;
  if (i == text.size()) return Status::InvalidArgument("pattern is empty");
  if (text.size() > kMaxPattern) {
    return Status::InvalidArgument(fmt::format("pattern is longer than {}", kMaxPattern));
  }
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (p.tail_ != Tail::kNone) return Bad(text, i, "'.' and '!' may only come last");
    switch (c) {
      case 'X':
      case 'x':
        p.elements_.push_back({kDigits});
        continue;
      case 'Z':
      case 'z':
        p.elements_.push_back({DigitRange('1', '9')});
        continue;
      case 'N':
      case 'n':
        p.elements_.push_back({DigitRange('2', '9')});
        continue;
      case '.':
        p.tail_ = Tail::kOneOrMore;
        continue;
      case '!':
        p.tail_ = Tail::kZeroOrMore;
        continue;
      case '[': {
        uint16_t set = 0;
        size_t j = i + 1;
        for (; j < text.size() && text[j] != ']'; ++j) {
          char a = text[j];
          if (a < '0' || a > '9') return Bad(text, j, "only digits and ranges inside [ ]");
          if (j + 2 < text.size() && text[j + 1] == '-' && text[j + 2] != ']') {
            char b = text[j + 2];
            if (b < a || b > '9') return Bad(text, j, "bad range");
            set |= DigitRange(a, b);
            j += 2;
          } else {
            set |= DigitRange(a, a);
          }
        }
        if (j == text.size()) return Bad(text, i, "'[' without ']'");
        if (set == 0) return Bad(text, i, "empty [ ]");
        p.elements_.push_back({set});
        i = j;
        continue;
      }
      default: {
        int bit = SymbolBit(c);
        if (bit < 0) return Bad(text, i, fmt::format("'{}' is not a pattern symbol", c));
        p.elements_.push_back({static_cast<uint16_t>(1u << bit)});
      }
    }
  }
  return p;
}

bool DialPattern::Matches(std::string_view dialled) const {
  if (dialled.size() < elements_.size()) return false;
  for (size_t i = 0; i < elements_.size(); ++i) {
    int bit = SymbolBit(dialled[i]);
    if (bit < 0 || (elements_[i].set & (1u << bit)) == 0) return false;
  }
  std::string_view rest = dialled.substr(elements_.size());
  for (char c : rest) {
    if (SymbolBit(c) < 0) return false;
  }
  switch (tail_) {
    case Tail::kNone:
      return rest.empty();
    case Tail::kOneOrMore:
      return !rest.empty();
    case Tail::kZeroOrMore:
      return true;
  }
  return false;
}

}  // namespace pbx::sip::routing
