#pragma once

#include <httplib.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "node/admin/api_http.h"
#include "node/core/status.h"
#include "replication/store/state_store.h"

// Who is calling: bearer tokens (pbxctl, scripts) and browser sessions (the web admin).
//
// A browser session is the same self-validating token POST /api/v1/login mints (HMAC with the
// replicated SystemSettings::token_secret), carried in a `Secure; HttpOnly; SameSite=Strict`
// cookie instead of an Authorization header, so it survives a failover with no server-side
// state. Because a browser sends cookies by itself, every state-changing request (anything
// but GET/HEAD) of a cookie session must also carry the CSRF token in the X-CSRF-Token
// header; that token is HMAC(secret, "csrf:" + session) (credentials.h), handed to the page
// in the login reply and in a readable (not HttpOnly) cookie. Bearer clients send no cookies
// and are not subject to the check. Thread-safe: pure functions of the request and the store.
namespace pbx::admin {

inline constexpr char kSessionCookie[] = "pbx_session";
inline constexpr char kCsrfCookie[] = "pbx_csrf";
inline constexpr char kCsrfHeader[] = "X-CSRF-Token";

// The caller of `req`: Unauthenticated without a valid token or session (or when its account
// is gone), PermissionDenied for a cookie session whose state-changing request lacks the
// right CSRF token. The account's current role counts, not the one in the token.
Result<Principal> Authenticate(store::StateStore& store, const httplib::Request& req);

// The value of cookie `name` in the request's Cookie header(s).
std::optional<std::string> CookieValue(const httplib::Request& req, std::string_view name);

// Sets the session and CSRF cookies for `session_token`, valid for `ttl_seconds`.
void SetSessionCookies(httplib::Response& res, const std::string& session_token,
                       const std::string& csrf_token, int64_t ttl_seconds);
// Expires both cookies (logout).
void ClearSessionCookies(httplib::Response& res);

}  // namespace pbx::admin
