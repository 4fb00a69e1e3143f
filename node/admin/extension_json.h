#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "replication/store/repos.h"

// JSON <-> store::Extension for the REST API, with every validation rule of FEATURES.md §3.2.
// Pure functions of their arguments: no store, no clock, no I/O; thread-safe.
namespace pbx::admin {

// Readers of one JSON field, shared by the API's body parsers: nullopt, or why the value
// is rejected ("must be a string", "must be between 1 and 9", ...).
std::optional<std::string> ReadString(const nlohmann::json& v, std::string* out);
std::optional<std::string> ReadBool(const nlohmann::json& v, bool* out);
std::optional<std::string> ReadUInt(const nlohmann::json& v, uint32_t min, uint32_t max,
                                    uint32_t* out);
std::optional<std::string> ReadStringArray(const nlohmann::json& v, std::vector<std::string>* out);

// A rejected request body, reported to the client as
// {"error": {"code": "invalid_argument", "message": ..., "field": ...}}.
struct FieldError {
  std::string field;  // the offending JSON field; empty when the body as a whole is wrong
  std::string message;
};

enum class ExtensionWrite { kCreate, kUpdate };

// A validated extension request.
struct ExtensionInput {
  store::Extension ext;                 // `base` with every field of the body applied
  std::optional<std::string> password;  // the clear password, when the body sets one
};

// Validates `body` and applies its fields on top of `base`.
// kCreate: "number", "name" and a non-empty "password" are required.
// kUpdate: partial; "number", if present, must equal base.number; "password", if present,
//   must be non-empty.
// Unknown fields and fields of the wrong JSON type are errors naming the field; the
// read-only fields ExtensionToJson emits ("created_unix", "updated_unix") are accepted and
// ignored so that a client can PUT back what it GOT. The HA1 values and realm are never
// taken from a body: the caller recomputes them from `password`.
// Returns the first error found (unknown fields first, then fields in a fixed order), or
// nullopt on success, in which case `*out` holds the result. `*out` is untouched on error.
std::optional<FieldError> ParseExtensionBody(const nlohmann::json& body, ExtensionWrite mode,
                                             const store::Extension& base, ExtensionInput* out);

// The public view of an extension: every field except the credentials (realm, HA1 values)
// and the voicemail PIN. Keys are sorted (nlohmann::json objects are ordered maps).
nlohmann::json ExtensionToJson(const store::Extension& ext);

// The individual rules, for tests and for other admin pages.
bool IsValidExtensionNumber(std::string_view number);  // 2-11 ASCII digits (FEATURES.md §0)
bool IsValidDisplayName(std::string_view name);  // 1-64 code points of printable UTF-8, trimmed
bool IsValidEmail(std::string_view email);       // a plain addr-spec: local@domain.tld
bool IsValidIpOrCidr(std::string_view text);     // IPv4/IPv6 address, optionally /prefix

}  // namespace pbx::admin
