#include "sip/calls/dial.h"

namespace pbx::sip {

DialTarget ResolveDial(std::string_view dialled,
                       const std::function<bool(const std::string&)>& is_extension) {
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
  t.kind = is_extension(t.number) ? DialTarget::Kind::kExtension : DialTarget::Kind::kNotFound;
  return t;
}

}  // namespace pbx::sip
