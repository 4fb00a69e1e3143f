// Browser sessions and CSRF, the account/settings/audit/portal endpoints, the web admin's
// static files and the HTTP redirect, against a real ApiServer over TLS on port 0.
#include <httplib.h>

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "node/admin/api_server.h"
#include "tests/unit/admin/api_test_env.h"

namespace pbx::admin {
namespace {

using json = nlohmann::json;
using testing::HttpReply;
using testing::kAdminPassword;

// A browser's view: the cookies of a session login and the CSRF token.
struct Session {
  std::string cookie;  // "pbx_session=...; pbx_csrf=..."
  std::string csrf;
  std::vector<std::string> set_cookie;
};

class WebApiTest : public testing::ApiTestEnv {
 protected:
  void SetUp() override {
    ApiTestEnv::SetUp();
    admin_ = TokenFor("admin", kAdminPassword);
    ASSERT_FALSE(admin_.empty());
  }

  Session BrowserLogin(const std::string& user, const std::string& password) {
    auto client = Client();
    httplib::Result r =
        client->Post("/api/v1/session", json{{"username", user}, {"password", password}}.dump(),
                     "application/json");
    Session s;
    EXPECT_TRUE(r);
    if (!r) return s;
    EXPECT_EQ(r->status, 200) << r->body;
    for (auto [it, end] = r->headers.equal_range("Set-Cookie"); it != end; ++it) {
      s.set_cookie.push_back(it->second);
      std::string pair = it->second.substr(0, it->second.find(';'));
      s.cookie += (s.cookie.empty() ? "" : "; ") + pair;
    }
    json body = json::parse(r->body, nullptr, false);
    if (body.contains("csrf_token")) s.csrf = body["csrf_token"];
    return s;
  }

  // A request carrying the session's cookies, and its CSRF header when `csrf` is not empty.
  HttpReply CookieCall(const std::string& method, const std::string& path, const Session& s,
                       const std::string& csrf, const json& body = nullptr) {
    httplib::Headers headers{{"Cookie", s.cookie}};
    if (!csrf.empty()) headers.emplace("X-CSRF-Token", csrf);
    auto client = Client();
    std::string text = body.is_null() ? "" : body.dump();
    httplib::Result r(nullptr, httplib::Error::Unknown);
    if (method == "GET") r = client->Get(path, headers);
    if (method == "POST") r = client->Post(path, headers, text, "application/json");
    if (method == "PUT") r = client->Put(path, headers, text, "application/json");
    if (method == "DELETE") r = client->Delete(path, headers);
    HttpReply reply;
    if (!r) return reply;
    reply.status = r->status;
    reply.headers = r->headers;
    if (!r->body.empty()) reply.body = json::parse(r->body, nullptr, false);
    return reply;
  }

  static json NewExtension(const std::string& number) {
    return json{{"number", number}, {"name", "User " + number}, {"password", "s3cretPass"}};
  }

  std::string admin_;
};

TEST_F(WebApiTest, SessionCookiesAreSecureHttpOnlyStrictAndCsrfIsReadable) {
  Session s = BrowserLogin("admin", kAdminPassword);
  ASSERT_EQ(s.set_cookie.size(), 2u);
  const std::string& session =
      s.set_cookie[0].starts_with("pbx_session=") ? s.set_cookie[0] : s.set_cookie[1];
  const std::string& csrf =
      s.set_cookie[0].starts_with("pbx_csrf=") ? s.set_cookie[0] : s.set_cookie[1];
  for (const char* attr : {"; Secure", "; HttpOnly", "; SameSite=Strict", "; Path=/"}) {
    EXPECT_NE(session.find(attr), std::string::npos) << session;
  }
  EXPECT_EQ(csrf.find("HttpOnly"), std::string::npos) << "the page must read the CSRF cookie";
  EXPECT_NE(csrf.find("pbx_csrf=" + s.csrf), std::string::npos);
  EXPECT_FALSE(s.csrf.empty());

  HttpReply me = CookieCall("GET", "/api/v1/me", s, "");
  ASSERT_EQ(me.status, 200);
  EXPECT_EQ(me.body["user"], "admin");
  EXPECT_EQ(me.body["role"], "admin");
}

TEST_F(WebApiTest, CookieSessionsMustEchoTheCsrfTokenToChangeAnything) {
  Session s = BrowserLogin("admin", kAdminPassword);
  const store::SeqNo seq = store_->LatestSeq();
  HttpReply none = CookieCall("POST", "/api/v1/extensions", s, "", NewExtension("2001"));
  EXPECT_EQ(none.status, 403);
  EXPECT_EQ(none.body["error"]["code"], "permission_denied");
  EXPECT_EQ(CookieCall("POST", "/api/v1/extensions", s, "wrong", NewExtension("2001")).status, 403);
  // The CSRF token of another session does not fit this one.
  Session other = BrowserLogin("admin", kAdminPassword);
  other.csrf = CsrfTokenFor(TokenSecret(), "another-session");
  EXPECT_EQ(CookieCall("POST", "/api/v1/extensions", s, other.csrf, NewExtension("2001")).status,
            403);
  EXPECT_EQ(CookieCall("DELETE", "/api/v1/extensions/1001", s, "").status, 403);
  EXPECT_EQ(store_->LatestSeq(), seq) << "a refused request changed the store";

  EXPECT_EQ(CookieCall("POST", "/api/v1/extensions", s, s.csrf, NewExtension("2001")).status, 201);
  // Bearer clients send no cookie and need no CSRF token.
  EXPECT_EQ(CallJson("POST", "/api/v1/extensions", admin_, NewExtension("2002")).status, 201);
}

TEST_F(WebApiTest, LogoutExpiresTheCookies) {
  Session s = BrowserLogin("admin", kAdminPassword);
  EXPECT_EQ(CookieCall("POST", "/api/v1/logout", s, "").status, 403);  // CSRF applies
  HttpReply out = CookieCall("POST", "/api/v1/logout", s, s.csrf);
  EXPECT_EQ(out.status, 204);
  int expired = 0;
  for (auto [it, end] = out.headers.equal_range("Set-Cookie"); it != end; ++it) {
    if (it->second.find("Max-Age=0") != std::string::npos) ++expired;
  }
  EXPECT_EQ(expired, 2);
}

TEST_F(WebApiTest, UsersAreAdminOnlyValidatedAndAudited) {
  AddUser("ops", store::Role::kOperator, "0perator1");
  std::string ops = TokenFor("ops", "0perator1");
  EXPECT_EQ(Call("GET", "/api/v1/users", ops).status, 403);
  EXPECT_EQ(CallJson("POST", "/api/v1/users", ops,
                     json{{"name", "evil"}, {"role", "admin"}, {"password", "Ev1lPassword"}})
                .status,
            403);

  const store::SeqNo seq = store_->LatestSeq();
  for (const auto& [bad, field] : std::vector<std::pair<json, std::string>>{
           {json{{"name", "bob"}, {"role", "operator"}, {"password", "weak"}}, "password"},
           {json{{"name", "bob"}, {"role", "root"}, {"password", "B0bPassword"}}, "role"},
           {json{{"name", "bob"}, {"role", "extension"}, {"password", "B0bPassword"}}, "role"},
           {json{{"name", "1001"}, {"role", "operator"}, {"password", "B0bPassword"}}, "name"},
           {json{{"name", "bob"}, {"role", "operator"}}, "password"},
           {json{{"name", "bob"}, {"role", "operator"}, {"password", "B0bPassword"}, {"x", 1}},
            "x"}}) {
    HttpReply r = CallJson("POST", "/api/v1/users", admin_, bad);
    EXPECT_EQ(r.status, 400) << bad.dump();
    EXPECT_EQ(r.body["error"]["field"], field) << r.body.dump();
  }
  EXPECT_EQ(Call("POST", "/api/v1/users", admin_, "{nope").status, 400);
  EXPECT_EQ(store_->LatestSeq(), seq) << "a bad body changed the store";

  json bob{{"name", "bob"}, {"role", "operator"}, {"password", "B0bPassword"}};
  HttpReply created = CallJson("POST", "/api/v1/users", admin_, bob);
  ASSERT_EQ(created.status, 201) << created.body.dump();
  EXPECT_FALSE(created.body.contains("password"));
  EXPECT_EQ(CallJson("POST", "/api/v1/users", admin_, bob).status, 409);
  EXPECT_EQ(Login("bob", "B0bPassword").body["role"], "operator");

  HttpReply list = Call("GET", "/api/v1/users", admin_);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.body["users"].size(), 3u);
  for (const json& u : list.body["users"]) EXPECT_FALSE(u.contains("password_hash"));

  EXPECT_EQ(CallJson("PUT", "/api/v1/users/bob", admin_, json{{"name", "robert"}}).status, 400);
  ASSERT_EQ(CallJson("PUT", "/api/v1/users/bob", admin_,
                     json{{"role", "api"}, {"password", "N3wPassword"}})
                .status,
            200);
  EXPECT_EQ(Login("bob", "B0bPassword").status, 401);
  EXPECT_EQ(Login("bob", "N3wPassword").body["role"], "api");
  EXPECT_EQ(CallJson("PUT", "/api/v1/users/ghost", admin_, json{{"role", "api"}}).status, 404);
  EXPECT_EQ(Call("DELETE", "/api/v1/users/bob", admin_).status, 204);
  EXPECT_EQ(Call("DELETE", "/api/v1/users/bob", admin_).status, 404);

  // The last admin can be neither deleted nor demoted.
  EXPECT_EQ(Call("DELETE", "/api/v1/users/admin", admin_).status, 409);
  EXPECT_EQ(CallJson("PUT", "/api/v1/users/admin", admin_, json{{"role", "operator"}}).status, 409);

  HttpReply audit = Call("GET", "/api/v1/audit", admin_);
  ASSERT_EQ(audit.status, 200);
  std::vector<std::string> actions;
  for (const json& a : audit.body["entries"]) actions.push_back(a["action"]);
  EXPECT_EQ(actions, (std::vector<std::string>{"user.delete", "user.update", "user.create"}));
  const json& newest = audit.body["entries"][0];
  EXPECT_EQ(newest["user"], "admin");
  EXPECT_EQ(newest["role"], "admin");
  EXPECT_EQ(newest["target"], "bob");
  EXPECT_EQ(newest["source"], "127.0.0.1");
  EXPECT_EQ(audit.body["entries"][1]["detail"], "password,role");
}

TEST_F(WebApiTest, ExtensionChangesAreAuditedAndTheAuditLogIsAdminOnly) {
  ASSERT_EQ(CallJson("POST", "/api/v1/extensions", admin_, NewExtension("2001")).status, 201);
  ASSERT_EQ(CallJson("PUT", "/api/v1/extensions/2001", admin_, json{{"name", "Renamed"}}).status,
            200);
  ASSERT_EQ(Call("DELETE", "/api/v1/extensions/2001", admin_).status, 204);
  HttpReply audit = Call("GET", "/api/v1/audit?limit=2", admin_);
  ASSERT_EQ(audit.status, 200);
  ASSERT_EQ(audit.body["entries"].size(), 2u);
  EXPECT_EQ(audit.body["entries"][0]["action"], "extension.delete");
  EXPECT_EQ(audit.body["entries"][1]["action"], "extension.update");
  EXPECT_EQ(audit.body["entries"][1]["detail"], "name");
  EXPECT_EQ(Call("GET", "/api/v1/audit?limit=0", admin_).status, 400);
  EXPECT_EQ(Call("GET", "/api/v1/audit?limit=x", admin_).status, 400);

  AddUser("ops", store::Role::kOperator, "0perator1");
  EXPECT_EQ(Call("GET", "/api/v1/audit", TokenFor("ops", "0perator1")).status, 403);
}

TEST_F(WebApiTest, SettingsAreAdminOnlyAndValidated) {
  HttpReply got = Call("GET", "/api/v1/settings", admin_);
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.body, (json{{"sip_realm", "pbx"},
                            {"ban_enabled", true},
                            {"ban_max_retries", 5},
                            {"ban_find_time", 60},
                            {"ban_time", 3600},
                            {"ban_trust_private", true},
                            {"ip_allow", json::array()},
                            {"ip_deny", json::array()},
                            {"ring_timeout", 30},
                            {"max_call_duration", 10800},
                            {"no_rtp_timeout", 0},
                            {"session_timers", false},
                            {"session_expires", 1800},
                            {"session_min_se", 90}}));  // no secret leaves the node
  const store::SeqNo seq = store_->LatestSeq();
  EXPECT_EQ(CallJson("PUT", "/api/v1/settings", admin_, json{{"sip_realm", "bad realm"}}).status,
            400);
  EXPECT_EQ(CallJson("PUT", "/api/v1/settings", admin_, json{{"token_secret", "x"}}).status, 400);
  HttpReply bad_list = CallJson(
      "PUT", "/api/v1/settings", admin_,
      json{{"ip_allow", json::array({"192.0.2.0/24"})}, {"ip_deny", json::array({"10.0.0.1/33"})}});
  EXPECT_EQ(bad_list.status, 400);
  EXPECT_EQ(bad_list.body["error"]["field"], "ip_deny");
  EXPECT_EQ(CallJson("PUT", "/api/v1/settings", admin_, json{{"ban_time", 0}}).status, 400);
  // Call settings: each bad value names its field; Min-SE above the interval is refused.
  for (const auto& [field, value] :
       {std::pair{"ring_timeout", json(0)}, std::pair{"max_call_duration", json(-1)},
        std::pair{"no_rtp_timeout", json("5")}, std::pair{"session_timers", json(1)},
        std::pair{"session_expires", json(89)}, std::pair{"session_min_se", json(7201)}}) {
    HttpReply bad = CallJson("PUT", "/api/v1/settings", admin_, json{{field, value}});
    EXPECT_EQ(bad.status, 400) << field;
    EXPECT_EQ(bad.body["error"]["field"], field);
  }
  HttpReply min_se = CallJson("PUT", "/api/v1/settings", admin_,
                              json{{"session_expires", 600}, {"session_min_se", 900}});
  EXPECT_EQ(min_se.status, 400);
  EXPECT_EQ(min_se.body["error"]["field"], "session_min_se");
  EXPECT_EQ(store_->LatestSeq(), seq);
  HttpReply calls = CallJson("PUT", "/api/v1/settings", admin_,
                             json{{"ring_timeout", 20},
                                  {"session_timers", true},
                                  {"session_expires", 600},
                                  {"session_min_se", 120}});
  ASSERT_EQ(calls.status, 200) << calls.body;
  EXPECT_EQ(calls.body["ring_timeout"], 20);
  EXPECT_EQ(calls.body["session_timers"], true);
  EXPECT_EQ(store::SettingsRepo(*store_).Get()->session_min_se, 120u);
  ASSERT_EQ(CallJson("PUT", "/api/v1/settings", admin_,
                     json{{"ip_allow", json::array({"192.0.2.0/24", "2001:db8::/32"})},
                          {"ban_max_retries", 3}})
                .status,
            200);
  EXPECT_EQ(Call("GET", "/api/v1/settings", admin_).body["ip_allow"],
            json::array({"192.0.2.0/24", "2001:db8::/32"}));
  EXPECT_EQ(Call("GET", "/api/v1/settings", admin_).body["ban_max_retries"], 3);
  AddUser("ops", store::Role::kOperator, "0perator1");
  EXPECT_EQ(CallJson("PUT", "/api/v1/settings", TokenFor("ops", "0perator1"),
                     json{{"sip_realm", "ops.example"}})
                .status,
            403);

  const std::string secret = TokenSecret();
  ASSERT_EQ(
      CallJson("PUT", "/api/v1/settings", admin_, json{{"sip_realm", "office.example"}}).status,
      200);
  EXPECT_EQ(Call("GET", "/api/v1/settings", admin_).body["sip_realm"], "office.example");
  EXPECT_EQ(TokenSecret(), secret) << "the token secret was lost";
}

TEST_F(WebApiTest, ExtensionUserPortalChangesOnlyItsOwnAllowedFields) {
  json ext = NewExtension("2001");
  ext["web_login"] = true;
  ASSERT_EQ(CallJson("POST", "/api/v1/extensions", admin_, ext).status, 201);
  std::string portal = TokenFor("2001", "s3cretPass");
  HttpReply me = Call("GET", "/api/v1/me", portal);
  ASSERT_EQ(me.status, 200);
  EXPECT_EQ(me.body["role"], "extension");
  EXPECT_EQ(me.body["extension"]["number"], "2001");

  const store::SeqNo seq = store_->LatestSeq();
  for (const json& bad :
       {json{{"name", "Boss"}}, json{{"web_login", false}}, json{{"max_contacts", 9}},
        json{{"email", "not an email"}}, json{{"password", "short"}}}) {
    EXPECT_EQ(CallJson("PUT", "/api/v1/me", portal, bad).status, 400) << bad.dump();
  }
  EXPECT_EQ(store_->LatestSeq(), seq);

  HttpReply changed = CallJson("PUT", "/api/v1/me", portal,
                               json{{"email", "me@example.com"}, {"password", "N3wSecret"}});
  ASSERT_EQ(changed.status, 200) << changed.body.dump();
  EXPECT_EQ(changed.body["extension"]["email"], "me@example.com");
  EXPECT_EQ(Login("2001", "s3cretPass").status, 401);
  EXPECT_EQ(Login("2001", "N3wSecret").status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/audit", admin_).body["entries"][0]["action"], "portal.update");

  // A web account changes its own password through the same endpoint.
  AddUser("ops", store::Role::kOperator, "0perator1");
  std::string ops = TokenFor("ops", "0perator1");
  EXPECT_EQ(CallJson("PUT", "/api/v1/me", ops, json{{"role", "admin"}}).status, 400);
  ASSERT_EQ(CallJson("PUT", "/api/v1/me", ops, json{{"password", "0perator2"}}).status, 200);
  EXPECT_EQ(Login("ops", "0perator2").body["role"], "operator");
}

class WebServingTest : public testing::ApiTestEnv {
 protected:
  void SetUp() override {
    cert_ = dir_.Sub("api-cert.pem");
    key_ = dir_.Sub("api-key.pem");
    ASSERT_TRUE(GenerateSelfSignedCert(cert_, key_, "test", {}).ok());
  }
  ApiOptions Options() const {
    ApiOptions o;
    o.port = 0;
    o.cert_file = cert_;
    o.key_file = key_;
    o.threads = 2;
    return o;
  }
};

TEST_F(WebServingTest, ServesTheWebDirAndRedirectsHttpToHttps) {
  std::filesystem::create_directories(dir_.Sub("web"));
  std::ofstream(dir_.Sub("web/index.html")) << "<!doctype html><title>pbx</title>";
  ApiOptions o = Options();
  o.web_dir = dir_.Sub("web");
  o.http_port = 0;
  Result<std::unique_ptr<ApiServer>> server = ApiServer::Start(o, *store_, [] {
    NodeStatus s;
    s.node_name = "node-b";
    s.role = "standby";
    s.serving = false;
    s.cluster = ClusterStatus{};
    s.cluster->vip = "10.99.0.100/24";
    s.cluster->vip_owner = "node-a";
    return s;
  });
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  server_ = std::move(server).value();
  ASSERT_NE(server_->http_port(), 0);

  auto client = Client();
  httplib::Result index = client->Get("/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200);
  EXPECT_NE(index->body.find("<title>pbx</title>"), std::string::npos);
  EXPECT_NE(index->get_header_value("Content-Security-Policy").find("default-src 'self'"),
            std::string::npos);

  // Before any login: where this node stands and where the VIP is.
  httplib::Result info = client->Get("/api/v1/web/info");
  ASSERT_TRUE(info);
  EXPECT_EQ(json::parse(info->body), (json{{"node_name", "node-b"},
                                           {"role", "standby"},
                                           {"serving", false},
                                           {"vip", "10.99.0.100"},
                                           {"vip_owner", "node-a"}}));

  httplib::Client http("127.0.0.1", server_->http_port());
  for (const char* method : {"GET", "POST"}) {
    httplib::Result r = std::string(method) == "GET"
                            ? http.Get("/extensions?x=1")
                            : http.Post("/api/v1/login", "{}", "text/json");
    ASSERT_TRUE(r) << method;
    EXPECT_EQ(r->status, 308);
    std::string target = std::string(method) == "GET" ? "/extensions?x=1" : "/api/v1/login";
    EXPECT_EQ(r->get_header_value("Location"),
              "https://127.0.0.1:" + std::to_string(server_->port()) + target);
  }
}

TEST_F(WebServingTest, AMissingWebDirIsAnError) {
  ApiOptions o = Options();
  o.web_dir = dir_.Sub("no-such-dir");
  Result<std::unique_ptr<ApiServer>> server = ApiServer::Start(o, *store_, nullptr);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("no-such-dir"), std::string::npos);
}

}  // namespace
}  // namespace pbx::admin
