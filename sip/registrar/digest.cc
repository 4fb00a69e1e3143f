#include "sip/registrar/digest.h"

#include <strings.h>

#include <array>
#include <cstdio>
#include <memory>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "node/core/log.h"

namespace pbx::sip {
namespace {

// Fetched once: EVP_md5()/EVP_sha256() would look the implementation up on every call.
const EVP_MD* Md(DigestAlgorithm algorithm) {
  static const EVP_MD* md5 = EVP_MD_fetch(nullptr, "MD5", nullptr);
  static const EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  const EVP_MD* md = algorithm == DigestAlgorithm::kMd5 ? md5 : sha256;
  PBX_CHECK(md != nullptr);
  return md;
}

void AppendHex(const unsigned char* bytes, size_t n, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 15];
  }
}

// One context per thread, reused across hashes, freed when the thread ends.
EVP_MD_CTX* ThreadContext() {
  thread_local std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                           &EVP_MD_CTX_free);
  PBX_CHECK(ctx != nullptr);
  return ctx.get();
}

// Hashes the concatenation of `parts` joined by ':' without building the joined string.
template <size_t N>
std::string HashJoined(DigestAlgorithm algorithm, const std::array<std::string_view, N>& parts) {
  EVP_MD_CTX* ctx = ThreadContext();
  PBX_CHECK(EVP_DigestInit_ex(ctx, Md(algorithm), nullptr) == 1);
  for (size_t i = 0; i < N; ++i) {
    if (i > 0) EVP_DigestUpdate(ctx, ":", 1);
    EVP_DigestUpdate(ctx, parts[i].data(), parts[i].size());
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  PBX_CHECK(EVP_DigestFinal_ex(ctx, md, &len) == 1);
  std::string out;
  out.reserve(2 * len);
  AppendHex(md, len, out);
  return out;
}

constexpr size_t kStampChars = 12;  // hex seconds: good until the year 10889
constexpr size_t kMacBytes = 12;

}  // namespace

std::string_view DigestParam(const char* const* params, std::string_view name) {
  if (params == nullptr) return {};
  for (; *params; ++params) {
    std::string_view p(*params);
    if (p.size() <= name.size() || p[name.size()] != '=' ||
        strncasecmp(p.data(), name.data(), name.size()) != 0) {
      continue;
    }
    std::string_view v = p.substr(name.size() + 1);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    return v;
  }
  return {};
}

std::string DigestAuthorization(DigestAlgorithm algorithm, const DigestChallengeAnswer& a) {
  std::string ha1 = HashJoined<3>(algorithm, {a.username, a.realm, a.password});
  // RFC 7616 3.4: with qop offered the client must pick one; "auth" is all we do.
  bool qop = !a.qop_offered.empty();
  DigestCredentials c;
  c.username = a.username;
  c.realm = a.realm;
  c.nonce = a.nonce;
  c.uri = a.uri;
  c.qop = qop ? "auth" : "";
  c.nc = qop ? a.nc : "";
  c.cnonce = qop ? a.cnonce : "";
  std::string response = DigestExpectedResponse(algorithm, ha1, a.method, c);
  std::string h = "Digest username=\"" + std::string(a.username) + "\", realm=\"" +
                  std::string(a.realm) + "\", nonce=\"" + std::string(a.nonce) + "\", uri=\"" +
                  std::string(a.uri) + "\", response=\"" + response +
                  "\", algorithm=" + std::string(DigestAlgorithmName(algorithm));
  if (qop)
    h += ", qop=auth, nc=" + std::string(a.nc) + ", cnonce=\"" + std::string(a.cnonce) + "\"";
  if (!a.opaque.empty()) h += ", opaque=\"" + std::string(a.opaque) + "\"";
  return h;
}

std::optional<DigestAlgorithm> ParseDigestAlgorithm(std::string_view name) {
  if (name.empty()) return DigestAlgorithm::kMd5;
  if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
    name = name.substr(1, name.size() - 2);
  }
  if (name.size() == 3 && strncasecmp(name.data(), "MD5", 3) == 0) return DigestAlgorithm::kMd5;
  if (name.size() == 7 && strncasecmp(name.data(), "SHA-256", 7) == 0) {
    return DigestAlgorithm::kSha256;
  }
  return std::nullopt;
}

std::string_view DigestAlgorithmName(DigestAlgorithm algorithm) {
  return algorithm == DigestAlgorithm::kMd5 ? "MD5" : "SHA-256";
}

std::string DigestHash(DigestAlgorithm algorithm, std::string_view data) {
  return HashJoined<1>(algorithm, {data});
}

std::string DigestExpectedResponse(DigestAlgorithm algorithm, std::string_view ha1,
                                   std::string_view method, const DigestCredentials& c) {
  std::string ha2 = HashJoined<2>(algorithm, {method, c.uri});
  if (c.qop.empty()) return HashJoined<3>(algorithm, {ha1, c.nonce, ha2});
  return HashJoined<6>(algorithm, {ha1, c.nonce, c.nc, c.cnonce, c.qop, ha2});
}

std::string NonceAuthority::Mac(std::string_view stamp, std::string_view realm) const {
  std::string data(stamp);
  data += ':';
  data += realm;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  std::string out;
  AppendHex(md, kMacBytes, out);
  return out;
}

std::string NonceAuthority::Issue(std::string_view realm, int64_t now_unix) const {
  char stamp[kStampChars + 1];
  std::snprintf(stamp, sizeof(stamp), "%012llx", static_cast<unsigned long long>(now_unix));
  std::string nonce(stamp, kStampChars);
  nonce += Mac(nonce, realm);
  return nonce;
}

NonceAuthority::Verdict NonceAuthority::Check(std::string_view nonce, std::string_view realm,
                                              int64_t now_unix) const {
  if (nonce.size() != kStampChars + 2 * kMacBytes) return Verdict::kInvalid;
  std::string_view stamp = nonce.substr(0, kStampChars);
  uint64_t issued = 0;
  for (char ch : stamp) {
    int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
    if (v < 0) return Verdict::kInvalid;
    issued = issued * 16 + static_cast<uint64_t>(v);
  }
  std::string expected = Mac(stamp, realm);
  // Constant time: the MAC is the secret-dependent part.
  unsigned diff = 0;
  for (size_t i = 0; i < expected.size(); ++i) diff |= expected[i] ^ nonce[kStampChars + i];
  if (diff != 0) return Verdict::kInvalid;
  int64_t age = now_unix - static_cast<int64_t>(issued);
  if (age < -60) return Verdict::kInvalid;  // from the future: not ours (or a clock jump)
  return age > lifetime_ ? Verdict::kStale : Verdict::kValid;
}

}  // namespace pbx::sip
