// libFuzzer target: ResolveDial over arbitrary bytes (the Request-URI user part of an
// INVITE comes from the network). Properties: a result's number is 1-32 of 0-9 * # +, and
// resolving it again gives the same; kInvalid has none, unless it is a malformed feature code,
// which says why.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sip/calls/dial.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto known = [](const std::string& n) { return n.size() == 4 && n[0] == '2'; };
  pbx::sip::DialTarget t = pbx::sip::ResolveDial(in, known);
  if (t.kind == pbx::sip::DialTarget::Kind::kInvalid) {
    if (t.number.empty()) return 0;
    if (t.number[0] != '*' || t.reason.empty()) abort();
  }
  if (t.number.empty() || t.number.size() > 32) abort();
  if (t.number.find_first_not_of("0123456789*#+") != std::string::npos) abort();
  pbx::sip::DialTarget again = pbx::sip::ResolveDial(t.number, known);
  if (again.kind != t.kind || again.number != t.number) abort();
  return 0;
}
