// libFuzzer target over the dial pattern parser (sip/routing). Input: "pattern\ndialled".
// Properties beyond "no crash, no sanitizer report":
//   - a pattern that parses parses again to the same text;
//   - a pattern without '.', '!' or a set never matches a string of another length;
//   - a pattern of literals only matches exactly itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "sip/routing/dial_pattern.h"

using pbx::sip::routing::DialPattern;

namespace {

void Require(bool cond) {
  if (!cond) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nl = in.find('\n');
  std::string_view pattern = in.substr(0, nl);
  std::string_view dialled = nl == std::string_view::npos ? "" : in.substr(nl + 1);
  auto p = DialPattern::Parse(pattern);
  if (!p.ok()) return 0;
  Require(p->text() == pattern);
  bool matched = p->Matches(dialled);
  std::string_view body = pattern.starts_with('_') ? pattern.substr(1) : pattern;
  if (body.find_first_of(".![") == std::string_view::npos && matched) {
    Require(dialled.size() == body.size());
  }
  if (body.find_first_not_of("0123456789*#+") == std::string_view::npos) {
    Require(matched == (dialled == body));
  }
  return 0;
}
