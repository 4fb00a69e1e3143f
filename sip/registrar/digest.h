#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

// SIP digest authentication (RFC 3261 22, RFC 7616, RFC 8760): the hashes, the expected
// response, and self-validating nonces. Pure functions on OpenSSL EVP; thread-safe.
namespace pbx::sip {

enum class DigestAlgorithm : uint8_t { kMd5, kSha256 };

// "MD5" / "SHA-256" (case-insensitive); an absent algorithm parameter means MD5. The
// "-sess" variants are not offered, so they are not accepted either.
std::optional<DigestAlgorithm> ParseDigestAlgorithm(std::string_view name);
std::string_view DigestAlgorithmName(DigestAlgorithm algorithm);

// Lower-case hex of H(data).
std::string DigestHash(DigestAlgorithm algorithm, std::string_view data);

// The parameters of an Authorization header that the response depends on.
struct DigestCredentials {
  std::string_view username;
  std::string_view realm;
  std::string_view nonce;
  std::string_view uri;
  std::string_view response;
  std::string_view qop;  // "auth" or empty (RFC 2069 style)
  std::string_view nc;
  std::string_view cnonce;
};

// The response the client must have sent: H(HA1:nonce:nc:cnonce:qop:HA2) with qop, else
// H(HA1:nonce:HA2), where HA2 = H(method:uri).
std::string DigestExpectedResponse(DigestAlgorithm algorithm, std::string_view ha1,
                                   std::string_view method, const DigestCredentials& c);

// The value of `name` in an auth-param list ("name=value" or name="value"), as sofia-sip
// parses WWW-Authenticate and Authorization (msg_param_t const*); "" if absent.
std::string_view DigestParam(const char* const* params, std::string_view name);

// The client side (trunk registration): what a challenge asked and what we answer with.
struct DigestChallengeAnswer {
  std::string_view username;
  std::string_view password;
  std::string_view realm;
  std::string_view nonce;
  std::string_view opaque;
  std::string_view qop_offered;  // the challenge's qop list; empty: RFC 2069 style
  std::string_view method;
  std::string_view uri;
  std::string_view nc;  // "00000001", ...
  std::string_view cnonce;
};
// The Authorization (or Proxy-Authorization) header value answering a challenge.
std::string DigestAuthorization(DigestAlgorithm algorithm, const DigestChallengeAnswer& a);

// Nonces that any node holding `secret` can check without state: the issue time and a
// truncated HMAC-SHA256 over it and the realm. The secret is replicated, so a standby
// that takes over accepts the nonces its active issued.
class NonceAuthority {
 public:
  enum class Verdict : uint8_t { kValid, kStale, kInvalid };

  NonceAuthority(std::string secret, int64_t lifetime_seconds)
      : secret_(std::move(secret)), lifetime_(lifetime_seconds) {}

  std::string Issue(std::string_view realm, int64_t now_unix) const;
  // kStale: ours, but older than the lifetime (the client retries with stale=true).
  Verdict Check(std::string_view nonce, std::string_view realm, int64_t now_unix) const;

 private:
  std::string Mac(std::string_view stamp, std::string_view realm) const;
  std::string secret_;
  int64_t lifetime_;
};

}  // namespace pbx::sip
