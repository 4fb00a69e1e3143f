#include "node/admin/extension_json.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <set>
#include <vector>

#include <arpa/inet.h>
#include <fmt/format.h>

#include "node/admin/credentials.h"

namespace pbx::admin {
namespace {

using json = nlohmann::json;
using Problem = std::optional<std::string>;  // why a field's value is rejected

constexpr std::array<std::string_view, 3> kTransports = {"udp", "tcp", "tls"};
constexpr std::array<std::string_view, 4> kDtmfModes = {"rfc4733", "info", "inband", "auto"};
constexpr std::array<std::string_view, 4> kRecordings = {"off", "in", "out", "both"};
constexpr std::array<std::string_view, 5> kCodecs = {"PCMU", "PCMA", "G722", "G726", "GSM"};
constexpr size_t kMaxTrustedAddresses = 32;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

template <size_t N>
bool OneOf(const std::array<std::string_view, N>& set, std::string_view v) {
  return std::find(set.begin(), set.end(), v) != set.end();
}

template <size_t N>
std::string ListOf(const std::array<std::string_view, N>& set) {
  return fmt::format("{}", fmt::join(set, ", "));
}

// Every character of `s` is in [A-Za-z0-9] or `extra`, and 1 <= size <= max.
bool IsToken(std::string_view s, std::string_view extra, size_t max) {
  if (s.empty() || s.size() > max) return false;
  return std::all_of(s.begin(), s.end(),
                     [&](char c) { return IsAlnum(c) || extra.find(c) != std::string_view::npos; });
}

// Decodes `s` as UTF-8; false if it is malformed (overlong, surrogate, > U+10FFFF).
bool DecodeUtf8(std::string_view s, std::vector<uint32_t>* code_points) {
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    uint32_t cp;
    size_t extra;
    if (b < 0x80) {
      cp = b;
      extra = 0;
    } else if ((b & 0xe0) == 0xc0) {
      cp = b & 0x1f;
      extra = 1;
    } else if ((b & 0xf0) == 0xe0) {
      cp = b & 0x0f;
      extra = 2;
    } else if ((b & 0xf8) == 0xf0) {
      cp = b & 0x07;
      extra = 3;
    } else {
      return false;
    }
    if (extra > s.size() - i - 1) return false;  // truncated sequence
    for (size_t k = 1; k <= extra; ++k) {
      auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    code_points->push_back(cp);
    i += extra + 1;
  }
  return true;
}

// One settable field: its name and how it is validated and applied.
struct FieldRule {
  std::string_view name;
  Problem (*apply)(const json& v, ExtensionInput& in);
};

Problem ApplyNumber(const json& v, ExtensionInput& in) {
  std::string s;
  if (auto p = ReadString(v, &s)) return p;
  if (!IsValidExtensionNumber(s)) return "must be 2 to 11 digits";
  in.ext.number = std::move(s);
  return std::nullopt;
}

Problem ApplyName(const json& v, ExtensionInput& in) {
  std::string s;
  if (auto p = ReadString(v, &s)) return p;
  if (!IsValidDisplayName(s)) {
    return "must be 1 to 64 printable characters without leading or trailing spaces";
  }
  in.ext.name = std::move(s);
  return std::nullopt;
}

Problem ApplyPassword(const json& v, ExtensionInput& in) {
  std::string s;
  if (auto p = ReadString(v, &s)) return p;
  if (s.empty()) return "must not be empty";
  // Checked against the number once every field is applied (the number may change too).
  if (auto p = CheckPasswordStrength(s, {})) return p;
  in.password = std::move(s);
  return std::nullopt;
}

Problem ApplyEmail(const json& v, ExtensionInput& in) {
  std::string s;
  if (auto p = ReadString(v, &s)) return p;
  if (!s.empty() && !IsValidEmail(s)) return "is not a valid email address";
  in.ext.email = std::move(s);
  return std::nullopt;
}

Problem ApplyMobile(const json& v, ExtensionInput& in) {
  std::string s;
  if (auto p = ReadString(v, &s)) return p;
  bool ok = s.size() <= 32 && std::all_of(s.begin(), s.end(), [](char c) {
              return IsDigit(c) || c == '+' || c == '-' || c == ' ' || c == '(' || c == ')';
            });
  if (!ok) return "must be up to 32 digits, spaces and + - ( )";
  in.ext.mobile = std::move(s);
  return std::nullopt;
}

Problem ApplyDialPermission(const json& v, ExtensionInput& in) {
  std::string s;
  if (auto p = ReadString(v, &s)) return p;
  if (!IsToken(s, "_-", 32)) return "must be 1 to 32 letters, digits, '_' or '-'";
  in.ext.dial_permission = std::move(s);
  return std::nullopt;
}

Problem ApplyOutboundCli(const json& v, ExtensionInput& in) {
  std::string s;
  if (auto p = ReadString(v, &s)) return p;
  bool ok = s.size() <= 32 && std::all_of(s.begin(), s.end(), [](char c) {
              return IsDigit(c) || c == '+' || c == '*' || c == '#';
            });
  if (!ok) return "must be up to 32 digits (and + * #)";
  in.ext.outbound_cli = std::move(s);
  return std::nullopt;
}

Problem ApplyLanguage(const json& v, ExtensionInput& in) {
  std::string s;
  if (auto p = ReadString(v, &s)) return p;
  if (s.size() < 2 || !IsToken(s, "_-", 16)) return "must be a language tag such as en or zh-CN";
  in.ext.language = std::move(s);
  return std::nullopt;
}

Problem ApplyMoh(const json& v, ExtensionInput& in) {
  std::string s;
  if (auto p = ReadString(v, &s)) return p;
  // A folder name, never a path.
  if (!IsToken(s, "_-.", 64) || s == "." || s == "..") {
    return "must be 1 to 64 letters, digits, '_', '-' or '.'";
  }
  in.ext.moh = std::move(s);
  return std::nullopt;
}

Problem ApplyVoicemail(const json& v, ExtensionInput& in) { return ReadBool(v, &in.ext.voicemail); }

Problem ApplyVoicemailPin(const json& v, ExtensionInput& in) {
  std::string s;
  if (auto p = ReadString(v, &s)) return p;
  if (s.size() < 4 || s.size() > 8 || !std::all_of(s.begin(), s.end(), IsDigit)) {
    return "must be 4 to 8 digits";
  }
  in.ext.voicemail_pin = std::move(s);
  return std::nullopt;
}

Problem ApplyRemoteRegistration(const json& v, ExtensionInput& in) {
  return ReadBool(v, &in.ext.remote_registration);
}

Problem ApplyMaxContacts(const json& v, ExtensionInput& in) {
  return ReadUInt(v, 1, 10, &in.ext.max_contacts);
}

Problem ApplyWebLogin(const json& v, ExtensionInput& in) { return ReadBool(v, &in.ext.web_login); }

Problem ApplyRegistrationExpiry(const json& v, ExtensionInput& in) {
  return ReadUInt(v, 60, 3600, &in.ext.registration_expiry);
}

Problem ApplyTransport(const json& v, ExtensionInput& in) {
  std::string s;
  if (auto p = ReadString(v, &s)) return p;
  if (!OneOf(kTransports, s)) return "must be one of " + ListOf(kTransports);
  in.ext.transport = std::move(s);
  return std::nullopt;
}

Problem ApplyDtmfMode(const json& v, ExtensionInput& in) {
  std::string s;
  if (auto p = ReadString(v, &s)) return p;
  if (!OneOf(kDtmfModes, s)) return "must be one of " + ListOf(kDtmfModes);
  in.ext.dtmf_mode = std::move(s);
  return std::nullopt;
}

Problem ApplyQualifyInterval(const json& v, ExtensionInput& in) {
  return ReadUInt(v, 0, 3600, &in.ext.qualify_interval);
}

Problem ApplyNat(const json& v, ExtensionInput& in) { return ReadBool(v, &in.ext.nat); }

Problem ApplyTrustedAddresses(const json& v, ExtensionInput& in) {
  std::vector<std::string> list;
  if (auto p = ReadStringArray(v, &list)) return p;
  if (list.size() > kMaxTrustedAddresses) {
    return fmt::format("must have at most {} entries", kMaxTrustedAddresses);
  }
  for (const std::string& a : list) {
    if (!IsValidIpOrCidr(a)) {
      // The value is echoed only if it is short printable ASCII, so the error stays valid JSON.
      bool echo = a.size() <= 64 &&
                  std::all_of(a.begin(), a.end(), [](char c) { return c > 0x20 && c < 0x7f; });
      return echo ? fmt::format("'{}' is not an IP address or network (a.b.c.d/n)", a)
                  : std::string("contains an entry that is not an IP address or network");
    }
  }
  in.ext.trusted_addresses = std::move(list);
  return std::nullopt;
}

Problem ApplyCodecs(const json& v, ExtensionInput& in) {
  std::vector<std::string> list;
  if (auto p = ReadStringArray(v, &list)) return p;
  if (list.empty()) return "must name at least one codec";
  std::set<std::string> seen;
  for (const std::string& c : list) {
    if (!OneOf(kCodecs, c)) return "may contain only " + ListOf(kCodecs);
    if (!seen.insert(c).second) return fmt::format("lists {} twice", c);
  }
  in.ext.codecs = std::move(list);
  return std::nullopt;
}

Problem ApplyRecording(const json& v, ExtensionInput& in) {
  std::string s;
  if (auto p = ReadString(v, &s)) return p;
  if (!OneOf(kRecordings, s)) return "must be one of " + ListOf(kRecordings);
  in.ext.recording = std::move(s);
  return std::nullopt;
}

Problem ApplyCallWaiting(const json& v, ExtensionInput& in) {
  return ReadBool(v, &in.ext.call_waiting);
}

// Read-only fields: type-checked, then ignored.
Problem IgnoreTimestamp(const json& v, ExtensionInput&) {
  if (!v.is_number_integer()) return "must be an integer";
  return std::nullopt;
}

// The order here is the order in which errors are reported.
constexpr FieldRule kRules[] = {
    {"number", &ApplyNumber},
    {"name", &ApplyName},
    {"password", &ApplyPassword},
    {"email", &ApplyEmail},
    {"mobile", &ApplyMobile},
    {"dial_permission", &ApplyDialPermission},
    {"outbound_cli", &ApplyOutboundCli},
    {"language", &ApplyLanguage},
    {"moh", &ApplyMoh},
    {"voicemail", &ApplyVoicemail},
    {"voicemail_pin", &ApplyVoicemailPin},
    {"remote_registration", &ApplyRemoteRegistration},
    {"max_contacts", &ApplyMaxContacts},
    {"web_login", &ApplyWebLogin},
    {"registration_expiry", &ApplyRegistrationExpiry},
    {"transport", &ApplyTransport},
    {"dtmf_mode", &ApplyDtmfMode},
    {"qualify_interval", &ApplyQualifyInterval},
    {"nat", &ApplyNat},
    {"trusted_addresses", &ApplyTrustedAddresses},
    {"codecs", &ApplyCodecs},
    {"recording", &ApplyRecording},
    {"call_waiting", &ApplyCallWaiting},
    {"created_unix", &IgnoreTimestamp},
    {"updated_unix", &IgnoreTimestamp},
};

const FieldRule* FindRule(std::string_view name) {
  for (const FieldRule& rule : kRules) {
    if (rule.name == name) return &rule;
  }
  return nullptr;
}

// A field name safe to put in an error message (it came from the client).
std::string Printable(std::string_view name) {
  std::string out;
  for (char c : name.substr(0, 64)) out.push_back(c > 0x20 && c < 0x7f ? c : '?');
  return out;
}

}  // namespace

std::optional<std::string> ReadString(const json& v, std::string* out) {
  if (!v.is_string()) return "must be a string";
  *out = v.get<std::string>();
  return std::nullopt;
}

std::optional<std::string> ReadBool(const json& v, bool* out) {
  if (!v.is_boolean()) return "must be true or false";
  *out = v.get<bool>();
  return std::nullopt;
}

std::optional<std::string> ReadUInt(const json& v, uint32_t min, uint32_t max, uint32_t* out) {
  // is_number_integer() is false for 5.0 and for booleans, which is what we want.
  if (!v.is_number_integer()) return "must be an integer";
  bool in_range = v.is_number_unsigned() ? v.get<uint64_t>() >= min && v.get<uint64_t>() <= max
                                         : v.get<int64_t>() >= min && v.get<int64_t>() <= max;
  if (!in_range) return fmt::format("must be between {} and {}", min, max);
  *out = static_cast<uint32_t>(v.get<uint64_t>());
  return std::nullopt;
}

std::optional<std::string> ReadStringArray(const json& v, std::vector<std::string>* out) {
  if (!v.is_array()) return "must be an array of strings";
  std::vector<std::string> items;
  for (const json& item : v) {
    if (!item.is_string()) return "must be an array of strings";
    items.push_back(item.get<std::string>());
  }
  *out = std::move(items);
  return std::nullopt;
}

bool IsValidExtensionNumber(std::string_view number) {
  return number.size() >= 2 && number.size() <= 11 &&
         std::all_of(number.begin(), number.end(), IsDigit);
}

bool IsValidDisplayName(std::string_view name) {
  std::vector<uint32_t> cps;
  if (!DecodeUtf8(name, &cps) || cps.empty() || cps.size() > 64) return false;
  for (uint32_t cp : cps) {
    // C0 and C1 controls, DEL, and the line/paragraph separators.
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029) return false;
  }
  auto is_space = [](uint32_t cp) { return cp == ' ' || cp == 0xa0 || cp == 0x3000; };
  return !is_space(cps.front()) && !is_space(cps.back());
}

bool IsValidEmail(std::string_view email) {
  if (email.size() > 254) return false;
  size_t at = email.find('@');
  if (at == std::string_view::npos || email.find('@', at + 1) != std::string_view::npos) {
    return false;
  }
  std::string_view local = email.substr(0, at);
  std::string_view domain = email.substr(at + 1);
  if (local.empty() || local.size() > 64 || local.front() == '.' || local.back() == '.' ||
      local.find("..") != std::string_view::npos || !IsToken(local, ".!#$%&'*+/=?^_`{|}~-", 64)) {
    return false;
  }
  if (domain.size() > 253 || domain.find('.') == std::string_view::npos) return false;
  size_t start = 0;
  while (start <= domain.size()) {
    size_t end = domain.find('.', start);
    if (end == std::string_view::npos) end = domain.size();
    std::string_view label = domain.substr(start, end - start);
    if (!IsToken(label, "-", 63) || label.front() == '-' || label.back() == '-') return false;
    start = end + 1;
  }
  return true;
}

bool IsValidIpOrCidr(std::string_view text) {
  if (text.empty() || text.size() > 64) return false;
  size_t slash = text.find('/');
  std::string addr(text.substr(0, slash));
  unsigned char buf[sizeof(struct in6_addr)];
  int max_prefix;
  if (inet_pton(AF_INET, addr.c_str(), buf) == 1) {
    max_prefix = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), buf) == 1) {
    max_prefix = 128;
  } else {
    return false;
  }
  if (slash == std::string_view::npos) return true;
  std::string_view prefix = text.substr(slash + 1);
  if (prefix.empty() || prefix.size() > 3 || !std::all_of(prefix.begin(), prefix.end(), IsDigit)) {
    return false;
  }
  int bits = 0;
  for (char c : prefix) bits = bits * 10 + (c - '0');
  return bits <= max_prefix;
}

std::optional<FieldError> ParseExtensionBody(const json& body, ExtensionWrite mode,
                                             const store::Extension& base, ExtensionInput* out) {
  if (!body.is_object()) return FieldError{"", "body must be a JSON object"};
  for (const auto& [key, value] : body.items()) {
    if (FindRule(key) == nullptr) {
      return FieldError{Printable(key), fmt::format("unknown field '{}'", Printable(key))};
    }
  }
  if (mode == ExtensionWrite::kCreate) {
    for (std::string_view required : {"number", "name", "password"}) {
      if (!body.contains(required)) {
        return FieldError{std::string(required), "is required"};
      }
    }
  }

  ExtensionInput in{base, std::nullopt};
  for (const FieldRule& rule : kRules) {
    auto it = body.find(rule.name);
    if (it == body.end()) continue;
    if (Problem p = rule.apply(*it, in)) return FieldError{std::string(rule.name), *p};
  }
  if (mode == ExtensionWrite::kUpdate && in.ext.number != base.number) {
    return FieldError{"number", "does not match the extension in the URL"};
  }
  if (in.password) {
    if (auto p = CheckPasswordStrength(*in.password, in.ext.number)) {
      return FieldError{"password", *p};
    }
  }
  *out = std::move(in);
  return std::nullopt;
}

json ExtensionToJson(const store::Extension& ext) {
  return json{
      {"number", ext.number},
      {"name", ext.name},
      {"email", ext.email},
      {"mobile", ext.mobile},
      {"dial_permission", ext.dial_permission},
      {"outbound_cli", ext.outbound_cli},
      {"language", ext.language},
      {"moh", ext.moh},
      {"voicemail", ext.voicemail},
      {"remote_registration", ext.remote_registration},
      {"max_contacts", ext.max_contacts},
      {"web_login", ext.web_login},
      {"registration_expiry", ext.registration_expiry},
      {"transport", ext.transport},
      {"dtmf_mode", ext.dtmf_mode},
      {"qualify_interval", ext.qualify_interval},
      {"nat", ext.nat},
      {"trusted_addresses", ext.trusted_addresses},
      {"codecs", ext.codecs},
      {"recording", ext.recording},
      {"call_waiting", ext.call_waiting},
      {"created_unix", ext.created_unix},
      {"updated_unix", ext.updated_unix},
  };
}

}  // namespace pbx::admin
