#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "node/core/status.h"

// Passwords, digest credentials, API tokens and the self-signed TLS certificate, on OpenSSL.
// Every function here is a pure function of its arguments (plus the OS random source and the
// clock where stated) and is thread-safe. Secrets are returned to the caller and never logged.
// This is its own small target (pbx_credentials) so that pbxctl can use it without the store.
namespace pbx::admin {

// `n` bytes from the OS CSPRNG (RAND_bytes). Unavailable if the generator fails.
Result<std::string> RandomBytes(size_t n);

// A random password of `len` characters drawn uniformly from letters, digits and a few
// symbols that are safe in SIP URIs, phone config files and shells ("-_.+!*"), with at least
// one letter and one digit. InvalidArgument if len < 2.
Result<std::string> GeneratePassword(size_t len);

// The password policy for extensions and web accounts: 8-128 printable ASCII characters
// without spaces, at least one letter and one digit, and not containing `number` (when
// `number` is not empty). Returns why `password` is rejected, or nullopt if it is accepted.
std::optional<std::string> CheckPasswordStrength(std::string_view password,
                                                 std::string_view number);

// A PBKDF2-HMAC-SHA256 password hash, as UserRepo stores it.
struct PasswordHash {
  std::string salt;  // raw bytes
  std::string hash;  // raw bytes (32)
  uint32_t iterations = 0;
};
inline constexpr uint32_t kPbkdf2Iterations = 150'000;

// Hashes `password` under a fresh 16-byte random salt.
Result<PasswordHash> HashPassword(std::string_view password,
                                  uint32_t iterations = kPbkdf2Iterations);
// Recomputes the hash of `password` with the stored salt and iterations and compares it in
// constant time. False for a malformed `stored` (no salt, zero iterations, empty hash).
bool VerifyPassword(std::string_view password, const PasswordHash& stored);

// SIP digest HA1 values (RFC 2617 / RFC 7616), lower-case hex of H(user:realm:password).
Result<std::string> DigestHa1Md5(std::string_view user, std::string_view realm,
                                 std::string_view password);
Result<std::string> DigestHa1Sha256(std::string_view user, std::string_view realm,
                                    std::string_view password);

// Constant-time comparison of two byte strings (the lengths are not secret).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// Lower-case hex SHA-256 of `data` (the checksum of a configuration backup).
std::string Sha256Hex(std::string_view data);

// Encodings used by tokens, exposed for tests.
std::string HexEncode(std::string_view bytes);
std::string Base64UrlEncode(std::string_view bytes);  // RFC 4648 §5, no padding
std::optional<std::string> Base64UrlDecode(std::string_view text);

// What a valid API token says.
struct TokenClaims {
  std::string user;
  std::string role;  // store::RoleName() of the role at minting time
  int64_t expires_unix = 0;
};

// An API token: base64url(JSON {"u","r","e"}) "." base64url(HMAC-SHA256(secret, first part)).
// `secret` is SystemSettings::token_secret, replicated, so tokens stay valid after a failover.
// A negative `ttl_seconds` mints an already expired token. InvalidArgument if `secret` is empty.
Result<std::string> MintToken(std::string_view secret, std::string_view user, std::string_view role,
                              int64_t ttl_seconds);
// Unauthenticated if the token is malformed, its MAC does not match, or it has expired
// (compared with the wall clock).
Result<TokenClaims> VerifyToken(std::string_view secret, std::string_view token);

// The CSRF token that goes with the browser session `session_token` (a token of MintToken):
// base64url(HMAC-SHA256(secret, "csrf:" + session_token)). Self-validating like the session,
// so both survive a failover without any server-side state. Empty if `secret` is empty.
std::string CsrfTokenFor(std::string_view secret, std::string_view session_token);

// Writes a self-signed X.509v3 certificate (EC P-256, SHA-256, valid for 10 years,
// serverAuth) and its private key as PEM. subjectAltName holds IP:127.0.0.1, DNS:localhost
// and every entry of `sans` (an IPv4/IPv6 literal becomes IP:, anything else DNS:).
// The key file is written with mode 0600 and the certificate with 0644; both are replaced
// atomically (temporary file + rename). InvalidArgument for a malformed SAN, Io on failure.
Status GenerateSelfSignedCert(const std::string& cert_path, const std::string& key_path,
                              const std::string& common_name, const std::vector<std::string>& sans);

}  // namespace pbx::admin
