#include "node/admin/session.h"

#include <cctype>

#include <fmt/format.h>

#include "node/admin/credentials.h"
#include "replication/store/repos.h"

namespace pbx::admin {
namespace {

// The token of an "Authorization: Bearer <token>" header, or empty.
std::string_view BearerToken(const std::string& header) {
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size()) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return {};
  }
  return std::string_view(header).substr(kScheme.size());
}

bool ChangesState(const std::string& method) { return method != "GET" && method != "HEAD"; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<std::string> CookieValue(const httplib::Request& req, std::string_view name) {
  size_t count = req.get_header_value_count("Cookie");
  for (size_t i = 0; i < count; ++i) {
    const std::string value = req.get_header_value("Cookie", i);
    std::string_view header = value;
    while (!header.empty()) {
      size_t semi = header.find(';');
      std::string_view pair = Trim(header.substr(0, semi));
      header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
      size_t eq = pair.find('=');
      if (eq != std::string_view::npos && Trim(pair.substr(0, eq)) == name) {
        return std::string(Trim(pair.substr(eq + 1)));
      }
    }
  }
  return std::nullopt;
}

Result<Principal> Authenticate(store::StateStore& store, const httplib::Request& req) {
  const Status denied = Status::Unauthenticated("missing, invalid or expired token or session");
  std::string header = req.get_header_value("Authorization");
  std::string token(BearerToken(header));
  bool cookie = false;
  if (token.empty() && header.empty()) {
    std::optional<std::string> session = CookieValue(req, kSessionCookie);
    if (!session) return denied;
    token = std::move(*session);
    cookie = true;
  }
  if (token.empty()) return denied;

  PBX_ASSIGN_OR_RETURN(store::SystemSettings settings, store::SettingsRepo(store).Get());
  Result<TokenClaims> claims = VerifyToken(settings.token_secret, token);
  if (!claims.ok()) return denied;
  if (cookie && ChangesState(req.method)) {
    std::string expected = CsrfTokenFor(settings.token_secret, token);
    std::string given = req.get_header_value(kCsrfHeader);
    if (expected.empty() || !ConstantTimeEquals(given, expected)) {
      return Status::PermissionDenied("missing or wrong CSRF token (X-CSRF-Token header)");
    }
  }

  // The account's current role counts, not the one in the token, and a deleted account's
  // tokens stop working at once.
  Result<store::User> user = store::UserRepo(store).Get(claims->user);
  if (user.ok()) return Principal{user->name, user->role, cookie};
  if (!user.status().IsNotFound()) return user.status();
  if (claims->role == store::RoleName(store::Role::kExtension)) {
    Result<store::Extension> ext = store::ExtensionRepo(store).Get(claims->user);
    if (ext.ok() && ext->web_login) return Principal{ext->number, store::Role::kExtension, cookie};
    if (!ext.ok() && !ext.status().IsNotFound()) return ext.status();
  }
  return denied;
}

void SetSessionCookies(httplib::Response& res, const std::string& session_token,
                       const std::string& csrf_token, int64_t ttl_seconds) {
  // Tokens are base64url and '.', which need no quoting in a cookie value.
  res.set_header("Set-Cookie",
                 fmt::format("{}={}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
                             kSessionCookie, session_token, ttl_seconds));
  res.set_header("Set-Cookie", fmt::format("{}={}; Path=/; Max-Age={}; Secure; SameSite=Strict",
                                           kCsrfCookie, csrf_token, ttl_seconds));
}

void ClearSessionCookies(httplib::Response& res) {
  res.set_header("Set-Cookie", fmt::format("{}=; Path=/; Max-Age=0; Secure; HttpOnly; "
                                           "SameSite=Strict",
                                           kSessionCookie));
  res.set_header("Set-Cookie",
                 fmt::format("{}=; Path=/; Max-Age=0; Secure; SameSite=Strict", kCsrfCookie));
}

}  // namespace pbx::admin
