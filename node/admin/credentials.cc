#include "node/admin/credentials.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <set>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

namespace pbx::admin {
namespace {

using json = nlohmann::json;

struct BioFree {
  void operator()(BIO* b) const { BIO_free_all(b); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct X509ExtFree {
  void operator()(X509_EXTENSION* e) const { X509_EXTENSION_free(e); }
};
struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using X509ExtPtr = std::unique_ptr<X509_EXTENSION, X509ExtFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

constexpr std::string_view kLetters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr std::string_view kDigits = "0123456789";
constexpr std::string_view kSymbols = "-_.+!*";
constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;
constexpr size_t kMaxPasswordLength = 128;

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

bool IsLetter(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

Result<std::string> Digest(const EVP_MD* md, std::string_view user, std::string_view realm,
                           std::string_view password) {
  std::string input;
  input.reserve(user.size() + realm.size() + password.size() + 2);
  input.append(user).append(":").append(realm).append(":").append(password);
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int out_len = 0;
  bool ok = EVP_Digest(input.data(), input.size(), out.data(), &out_len, md, nullptr) == 1;
  OPENSSL_cleanse(input.data(), input.size());
  if (!ok) return Status::Internal("digest computation failed (algorithm disabled?)");
  return HexEncode(std::string_view(reinterpret_cast<const char*>(out.data()), out_len));
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int out_len = 0;
  // HMAC-SHA256 cannot fail with valid arguments; an empty result never verifies anyway.
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), Bytes(data), data.size(),
           out.data(), &out_len) == nullptr) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(out.data()), out_len);
}

// Writes `data` to `path` via a temporary file in the same directory, so that readers see
// either the old or the new file, never a torn one.
Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode) {
  std::string tmp = fmt::format("{}.tmp.{}", path, getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return Status::Io(fmt::format("cannot create {}: {}", tmp, std::strerror(errno)));
  // open() applies the umask; fchmod sets the exact mode (0600 for keys whatever the umask).
  bool ok = ::fchmod(fd, mode) == 0;
  size_t done = 0;
  while (ok && done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (ok) ok = ::fsync(fd) == 0;
  int saved_errno = errno;
  if (::close(fd) != 0 && ok) {
    ok = false;
    saved_errno = errno;
  }
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    saved_errno = errno;
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return Status::Io(fmt::format("cannot write {}: {}", path, std::strerror(saved_errno)));
  }
  return Status::Ok();
}

bool IsIpLiteral(const std::string& text) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

bool IsDnsName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    if (!IsLetter(c) && !IsDigit(c) && c != '-' && c != '.' && c != '*') return false;
  }
  return name.front() != '.' && name.front() != '-';
}

Status AddExtension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return Status::Internal(fmt::format("cannot add certificate extension {}", OBJ_nid2sn(nid)));
  }
  return Status::Ok();
}

Result<std::string> PemOf(const std::function<int(BIO*)>& write) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) != 1) return Status::Internal("PEM encoding failed");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  if (len <= 0 || data == nullptr) return Status::Internal("PEM encoding failed");
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace

Result<std::string> RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return Status::Unavailable("the random number generator failed");
  }
  return out;
}

Result<std::string> GeneratePassword(size_t len) {
  if (len < 2) return Status::InvalidArgument("a password needs at least 2 characters");
  std::string alphabet = std::string(kLetters) + std::string(kDigits) + std::string(kSymbols);
  // Rejection sampling keeps every character uniform: bytes >= limit would bias the modulo.
  const unsigned limit = 256 - 256 % alphabet.size();
  for (;;) {
    std::string pw;
    pw.reserve(len);
    while (pw.size() < len) {
      PBX_ASSIGN_OR_RETURN(std::string random, RandomBytes(len * 2));
      for (unsigned char b : random) {
        if (b >= limit) continue;
        pw.push_back(alphabet[b % alphabet.size()]);
        if (pw.size() == len) break;
      }
    }
    bool letter = false, digit = false;
    for (char c : pw) {
      letter |= IsLetter(c);
      digit |= IsDigit(c);
    }
    // Redrawing (rather than patching a position) keeps the result uniform over valid ones.
    if (letter && digit) return pw;
  }
}

std::optional<std::string> CheckPasswordStrength(std::string_view password,
                                                 std::string_view number) {
  if (password.size() < 8) return "must be at least 8 characters long";
  if (password.size() > kMaxPasswordLength) {
    return fmt::format("must be at most {} characters long", kMaxPasswordLength);
  }
  bool letter = false, digit = false;
  for (char c : password) {
    if (c <= 0x20 || c >= 0x7f) return "may contain only printable ASCII characters, no spaces";
    letter |= IsLetter(c);
    digit |= IsDigit(c);
  }
  if (!letter || !digit) return "must contain at least one letter and one digit";
  if (!number.empty() && password.find(number) != std::string_view::npos) {
    return "must not contain the extension number";
  }
  return std::nullopt;
}

Result<PasswordHash> HashPassword(std::string_view password, uint32_t iterations) {
  if (iterations == 0) return Status::InvalidArgument("iterations must be positive");
  PasswordHash out;
  PBX_ASSIGN_OR_RETURN(out.salt, RandomBytes(kSaltBytes));
  out.iterations = iterations;
  out.hash.assign(kHashBytes, '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), Bytes(out.salt),
                        static_cast<int>(out.salt.size()), static_cast<int>(iterations),
                        EVP_sha256(), static_cast<int>(kHashBytes),
                        reinterpret_cast<unsigned char*>(out.hash.data())) != 1) {
    return Status::Internal("PBKDF2 failed");
  }
  return out;
}

bool VerifyPassword(std::string_view password, const PasswordHash& stored) {
  if (stored.salt.empty() || stored.hash.empty() || stored.iterations == 0 ||
      stored.hash.size() > EVP_MAX_MD_SIZE || stored.iterations > 100'000'000) {
    return false;
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), Bytes(stored.salt),
                        static_cast<int>(stored.salt.size()), static_cast<int>(stored.iterations),
                        EVP_sha256(), static_cast<int>(stored.hash.size()), out.data()) != 1) {
    return false;
  }
  return CRYPTO_memcmp(out.data(), stored.hash.data(), stored.hash.size()) == 0;
}

Result<std::string> DigestHa1Md5(std::string_view user, std::string_view realm,
                                 std::string_view password) {
  return Digest(EVP_md5(), user, realm, password);
}

Result<std::string> DigestHa1Sha256(std::string_view user, std::string_view realm,
                                    std::string_view password) {
  return Digest(EVP_sha256(), user, realm, password);
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

std::string Base64UrlEncode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (uint32_t{static_cast<unsigned char>(bytes[i])} << 16) |
                 (uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8) |
                 uint32_t{static_cast<unsigned char>(bytes[i + 2])};
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t{static_cast<unsigned char>(bytes[i])} << 16;
    if (rest == 2) v |= uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    if (rest == 2) out.push_back(kAlphabet[(v >> 6) & 63]);
  }
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero, so that every byte string has exactly one encoding.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

Result<std::string> MintToken(std::string_view secret, std::string_view user, std::string_view role,
                              int64_t ttl_seconds) {
  if (secret.empty()) return Status::InvalidArgument("token secret is empty");
  if (user.empty()) return Status::InvalidArgument("token user is empty");
  json claims = {{"u", std::string(user)},
                 {"r", std::string(role)},
                 {"e", static_cast<int64_t>(std::time(nullptr)) + ttl_seconds}};
  std::string payload = Base64UrlEncode(claims.dump());
  std::string mac = HmacSha256(secret, payload);
  if (mac.empty()) return Status::Internal("HMAC failed");
  return payload + "." + Base64UrlEncode(mac);
}

Result<TokenClaims> VerifyToken(std::string_view secret, std::string_view token) {
  const Status bad = Status::Unauthenticated("invalid or expired token");
  if (secret.empty() || token.size() > 4096) return bad;
  size_t dot = token.find('.');
  if (dot == std::string_view::npos || dot == 0) return bad;
  std::string_view payload = token.substr(0, dot);
  std::optional<std::string> mac = Base64UrlDecode(token.substr(dot + 1));
  std::string expected = HmacSha256(secret, payload);
  // The MAC is checked before the payload is even decoded: nothing unauthenticated is parsed.
  if (!mac || expected.empty() || !ConstantTimeEquals(*mac, expected)) return bad;
  std::optional<std::string> decoded = Base64UrlDecode(payload);
  if (!decoded) return bad;
  json claims = json::parse(*decoded, nullptr, false);
  if (claims.is_discarded() || !claims.is_object()) return bad;
  auto u = claims.find("u");
  auto r = claims.find("r");
  auto e = claims.find("e");
  if (u == claims.end() || !u->is_string() || r == claims.end() || !r->is_string() ||
      e == claims.end() || !e->is_number_integer()) {
    return bad;
  }
  TokenClaims out{u->get<std::string>(), r->get<std::string>(), e->get<int64_t>()};
  if (out.expires_unix <= static_cast<int64_t>(std::time(nullptr))) return bad;
  return out;
}

std::string CsrfTokenFor(std::string_view secret, std::string_view session_token) {
  if (secret.empty()) return {};
  std::string data = "csrf:";
  data += session_token;
  return Base64UrlEncode(HmacSha256(secret, data));
}

Status GenerateSelfSignedCert(const std::string& cert_path, const std::string& key_path,
                              const std::string& common_name,
                              const std::vector<std::string>& sans) {
  std::string cn = common_name.empty() ? "pbx" : common_name;
  if (cn.size() > 64) return Status::InvalidArgument("common name is longer than 64 characters");

  // subjectAltName: what clients actually check (CN matching is deprecated).
  std::vector<std::string> alt = {"IP:127.0.0.1", "DNS:localhost"};
  std::set<std::string> seen(alt.begin(), alt.end());
  for (const std::string& san : sans) {
    std::string entry;
    if (IsIpLiteral(san)) {
      entry = "IP:" + san;
    } else if (IsDnsName(san)) {
      entry = "DNS:" + san;
    } else {
      return Status::InvalidArgument(
          fmt::format("'{}' is neither an IP address nor a DNS name", san));
    }
    if (seen.insert(entry).second) alt.push_back(entry);
  }
  std::string alt_text = fmt::format("{}", fmt::join(alt, ","));

  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return Status::Internal("EC P-256 key generation failed");

  X509Ptr cert(X509_new());
  if (!cert) return Status::Internal("X509_new failed");
  PBX_ASSIGN_OR_RETURN(std::string serial_bytes, RandomBytes(16));
  serial_bytes[0] = static_cast<char>(serial_bytes[0] & 0x7f);  // a positive serial
  BnPtr serial(BN_bin2bn(Bytes(serial_bytes), static_cast<int>(serial_bytes.size()), nullptr));
  X509_NAME* name = X509_get_subject_name(cert.get());
  constexpr long kTenYears = 3653L * 24 * 3600;
  // notBefore an hour back tolerates a client whose clock is a little behind ours.
  if (!serial || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), kTenYears) == nullptr ||
      X509_set_pubkey(cert.get(), key.get()) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, Bytes(cn), -1, -1, 0) != 1 ||
      X509_set_issuer_name(cert.get(), name) != 1) {
    return Status::Internal("cannot fill in the certificate");
  }

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  PBX_TRY(AddExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE"));
  PBX_TRY(AddExtension(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature"));
  PBX_TRY(AddExtension(cert.get(), &ctx, NID_ext_key_usage, "serverAuth"));
  PBX_TRY(AddExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  // The AKID equal to the SKID lets OpenSSL recognise the certificate as self-signed, so it
  // can be its own trust anchor (pbxctl pins it with set_ca_cert_path).
  PBX_TRY(AddExtension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
  PBX_TRY(AddExtension(cert.get(), &ctx, NID_subject_alt_name, alt_text));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) {
    return Status::Internal("cannot sign the certificate");
  }

  PBX_ASSIGN_OR_RETURN(std::string key_pem, PemOf([&](BIO* bio) {
                         return PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0,
                                                         nullptr, nullptr);
                       }));
  PBX_ASSIGN_OR_RETURN(std::string cert_pem,
                       PemOf([&](BIO* bio) { return PEM_write_bio_X509(bio, cert.get()); }));
  Status st = WriteFileAtomic(key_path, key_pem, 0600);
  OPENSSL_cleanse(key_pem.data(), key_pem.size());
  PBX_TRY(st);
  return WriteFileAtomic(cert_path, cert_pem, 0644);
}

std::string Sha256Hex(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int out_len = 0;
  // SHA-256 cannot fail with valid arguments; an empty checksum never matches.
  if (EVP_Digest(data.data(), data.size(), out.data(), &out_len, EVP_sha256(), nullptr) != 1) {
    return {};
  }
  return HexEncode(std::string_view(reinterpret_cast<const char*>(out.data()), out_len));
}

}  // namespace pbx::admin
