#include "node/admin/api_server.h"

#include <httplib.h>

#include <algorithm>

#include <gtest/gtest.h>

#include "tests/unit/admin/api_test_env.h"

namespace pbx::admin {
namespace {

using json = nlohmann::json;
using testing::HttpReply;
using testing::kAdminPassword;

class ApiServerTest : public testing::ApiTestEnv {
 protected:
  void SetUp() override {
    ApiTestEnv::SetUp();
    admin_ = TokenFor("admin", kAdminPassword);
    ASSERT_FALSE(admin_.empty());
  }

  static json NewExtension(const std::string& number) {
    return json{{"number", number}, {"name", "User " + number}, {"password", "s3cretPass"}};
  }

  std::string ErrorField(const HttpReply& r) const {
    if (!r.body.is_object() || !r.body.contains("error")) return "<no error object>";
    const json& e = r.body["error"];
    return e.contains("field") ? e["field"].get<std::string>() : "";
  }

  std::string admin_;
};

TEST_F(ApiServerTest, RequestsWithoutAValidTokenAre401) {
  for (const char* path : {"/api/v1/status", "/api/v1/extensions", "/api/v1/extensions/1001"}) {
    HttpReply r = Call("GET", path);
    EXPECT_EQ(r.status, 401) << path;
    ASSERT_TRUE(r.body.is_object());
    EXPECT_EQ(r.body["error"]["code"], "unauthenticated");
  }
  EXPECT_EQ(Call("GET", "/api/v1/status", "garbage").status, 401);
  EXPECT_EQ(CallJson("POST", "/api/v1/extensions", "", NewExtension("1001")).status, 401);
  EXPECT_EQ(Call("DELETE", "/api/v1/extensions/1001").status, 401);

  // Expired, signed with another secret, or naming a user that does not exist.
  EXPECT_EQ(Call("GET", "/api/v1/status", *MintToken(TokenSecret(), "admin", "admin", -1)).status,
            401);
  EXPECT_EQ(
      Call("GET", "/api/v1/status", *MintToken("not the secret", "admin", "admin", 60)).status,
      401);
  EXPECT_EQ(Call("GET", "/api/v1/status", *MintToken(TokenSecret(), "ghost", "admin", 60)).status,
            401);
  // A valid one works.
  EXPECT_EQ(Call("GET", "/api/v1/status", admin_).status, 200);
}

TEST_F(ApiServerTest, LoginFailuresAreGeneric) {
  HttpReply wrong_password = Login("admin", "Wr0ngPassword");
  HttpReply no_such_user = Login("nobody", kAdminPassword);
  EXPECT_EQ(wrong_password.status, 401);
  EXPECT_EQ(no_such_user.status, 401);
  // The same words whichever part was wrong.
  EXPECT_EQ(wrong_password.body, no_such_user.body);

  EXPECT_EQ(Call("POST", "/api/v1/login", "", "{not json").status, 400);
  EXPECT_EQ(CallJson("POST", "/api/v1/login", "", json{{"username", "admin"}}).status, 400);
  EXPECT_EQ(CallJson("POST", "/api/v1/login", "", json{{"username", 1}, {"password", "x"}}).status,
            400);
}

TEST_F(ApiServerTest, LoginReturnsAWorkingToken) {
  HttpReply r = Login("admin", kAdminPassword);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["role"], "admin");
  EXPECT_TRUE(r.body["token"].is_string());
  EXPECT_GT(r.body["expires"].get<int64_t>(), std::time(nullptr) + 3600);
  Result<TokenClaims> claims = VerifyToken(TokenSecret(), r.body["token"].get<std::string>());
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->user, "admin");
}

TEST_F(ApiServerTest, RepeatedFailuresLockTheSourceOut) {
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Login("admin", "Wr0ngPassword").status, 401);
  // Locked: even the right password is refused for now.
  HttpReply r = Login("admin", kAdminPassword);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.body["error"]["code"], "too_many_requests");
  int retry_after = std::stoi(httplib::detail::get_header_value(r.headers, "Retry-After", 0, "0"));
  EXPECT_GT(retry_after, 0);
  EXPECT_LE(retry_after, 60);
  // Tokens already issued keep working.
  EXPECT_EQ(Call("GET", "/api/v1/status", admin_).status, 200);
}

TEST_F(ApiServerTest, Status) {
  HttpReply r = Call("GET", "/api/v1/status", admin_);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["node_name"], "node-a");
  EXPECT_EQ(r.body["role"], "active");
  EXPECT_EQ(r.body["version"], "9.9.9");
  EXPECT_EQ(r.body["epoch"], 7);
  EXPECT_EQ(r.body["last_seq"], 42);
  EXPECT_EQ(r.body["started_unix"], 1700000000);
  EXPECT_EQ(r.body["counts"]["extensions"], 0);
  ASSERT_EQ(CallJson("POST", "/api/v1/extensions", admin_, NewExtension("1001")).status, 201);
  EXPECT_EQ(Call("GET", "/api/v1/status", admin_).body["counts"]["extensions"], 1);
}

TEST_F(ApiServerTest, CreateReadUpdateDelete) {
  json body = NewExtension("1001");
  body["email"] = "alice@example.com";
  body["codecs"] = {"G722", "PCMU"};
  HttpReply created = CallJson("POST", "/api/v1/extensions", admin_, body);
  ASSERT_EQ(created.status, 201) << created.body.dump();
  EXPECT_EQ(std::string(httplib::detail::get_header_value(created.headers, "Location", 0, "")),
            "/api/v1/extensions/1001");
  EXPECT_EQ(created.body["number"], "1001");
  EXPECT_EQ(created.body["email"], "alice@example.com");
  EXPECT_GT(created.body["created_unix"].get<int64_t>(), 0);
  for (const char* secret : {"password", "ha1_md5", "ha1_sha256", "voicemail_pin"}) {
    EXPECT_FALSE(created.body.contains(secret)) << secret;
  }

  // Stored with HA1 values under the system realm, never the clear password.
  Result<store::Extension> stored = store::ExtensionRepo(*store_).Get("1001");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->realm, "pbx");
  EXPECT_EQ(stored->ha1_md5, *DigestHa1Md5("1001", "pbx", "s3cretPass"));
  EXPECT_EQ(stored->ha1_sha256, *DigestHa1Sha256("1001", "pbx", "s3cretPass"));

  HttpReply got = Call("GET", "/api/v1/extensions/1001", admin_);
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.body, created.body);

  ASSERT_EQ(CallJson("POST", "/api/v1/extensions", admin_, NewExtension("1002")).status, 201);
  HttpReply list = Call("GET", "/api/v1/extensions", admin_);
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.body["extensions"].size(), 2u);
  EXPECT_EQ(list.body["extensions"][0]["number"], "1001");
  EXPECT_EQ(list.body["extensions"][1]["number"], "1002");
  EXPECT_EQ(list.body.dump().find("ha1"), std::string::npos);

  // Partial update: only the given fields change; HA1 untouched without a password.
  HttpReply updated = CallJson("PUT", "/api/v1/extensions/1001", admin_,
                               json{{"name", "Alice B"}, {"transport", "tls"}});
  ASSERT_EQ(updated.status, 200) << updated.body.dump();
  EXPECT_EQ(updated.body["name"], "Alice B");
  EXPECT_EQ(updated.body["transport"], "tls");
  EXPECT_EQ(updated.body["email"], "alice@example.com");
  EXPECT_EQ(updated.body["codecs"], json::array({"G722", "PCMU"}));
  EXPECT_EQ(updated.body["created_unix"], created.body["created_unix"]);
  Result<store::Extension> after = store::ExtensionRepo(*store_).Get("1001");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->ha1_md5, stored->ha1_md5);
  EXPECT_EQ(after->name, "Alice B");

  // PUT of what GET returned is accepted (read-only fields are ignored).
  EXPECT_EQ(CallJson("PUT", "/api/v1/extensions/1001", admin_, updated.body).status, 200);

  // A new password is hashed under the realm in force now.
  store::SettingsRepo settings_repo(*store_);
  Result<store::SystemSettings> settings = settings_repo.Get();
  ASSERT_TRUE(settings.ok());
  settings->sip_realm = "corp.example";
  store::WriteSet writes;
  settings_repo.Put(*settings, writes);
  ASSERT_TRUE(store_->Commit(writes, store::Durability::kReplicated).ok());
  ASSERT_EQ(CallJson("PUT", "/api/v1/extensions/1001", admin_,
                     json{{"number", "1001"}, {"password", "n3wPassword"}})
                .status,
            200);
  after = store::ExtensionRepo(*store_).Get("1001");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->realm, "corp.example");
  EXPECT_EQ(after->ha1_md5, *DigestHa1Md5("1001", "corp.example", "n3wPassword"));
  EXPECT_EQ(after->ha1_sha256, *DigestHa1Sha256("1001", "corp.example", "n3wPassword"));

  EXPECT_EQ(Call("DELETE", "/api/v1/extensions/1001", admin_).status, 204);
  EXPECT_EQ(Call("GET", "/api/v1/extensions/1001", admin_).status, 404);
  EXPECT_EQ(Call("DELETE", "/api/v1/extensions/1001", admin_).status, 404);
  EXPECT_EQ(CallJson("PUT", "/api/v1/extensions/1001", admin_, json{{"name", "X"}}).status, 404);
  EXPECT_TRUE(store::ExtensionRepo(*store_).Get("1001").status().IsNotFound());
}

TEST_F(ApiServerTest, MalformedJsonIs400AndChangesNothing) {
  ASSERT_EQ(CallJson("POST", "/api/v1/extensions", admin_, NewExtension("1001")).status, 201);
  const store::SeqNo seq = store_->LatestSeq();
  for (const char* bad : {"{", "{\"number\": \"1002\",}", "not json", "", "[1,2"}) {
    HttpReply r = Call("POST", "/api/v1/extensions", admin_, bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(r.body["error"]["code"], "invalid_argument");
    EXPECT_EQ(r.body["error"]["message"], "body is not valid JSON") << bad;
    EXPECT_EQ(Call("PUT", "/api/v1/extensions/1001", admin_, bad).status, 400);
  }
  EXPECT_EQ(Call("POST", "/api/v1/extensions", admin_, "[1, 2]").status, 400);
  EXPECT_EQ(store_->LatestSeq(), seq);
  EXPECT_EQ(Call("GET", "/api/v1/extensions", admin_).body["extensions"].size(), 1u);
}

TEST_F(ApiServerTest, InvalidFieldIs400NamingTheFieldAndChangesNothing) {
  const store::SeqNo seq = store_->LatestSeq();
  struct Case {
    const char* field;
    json value;
  };
  for (const Case& c :
       {Case{"number", "12a"}, Case{"email", "not-an-email"}, Case{"transport", "sctp"},
        Case{"max_contacts", 11}, Case{"nat", "yes"}, Case{"codecs", json::array({"G729"})},
        Case{"trusted_addresses", json::array({"300.1.1.1"})}, Case{"password", "weak"},
        Case{"colour", "red"}}) {
    json body = NewExtension("1001");
    body[c.field] = c.value;
    HttpReply r = CallJson("POST", "/api/v1/extensions", admin_, body);
    EXPECT_EQ(r.status, 400) << c.field;
    EXPECT_EQ(ErrorField(r), c.field);
    EXPECT_NE(r.body["error"]["message"].get<std::string>().find(c.field), std::string::npos);
  }
  json no_password = NewExtension("1001");
  no_password.erase("password");
  HttpReply r = CallJson("POST", "/api/v1/extensions", admin_, no_password);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorField(r), "password");
  no_password["password"] = "";
  EXPECT_EQ(ErrorField(CallJson("POST", "/api/v1/extensions", admin_, no_password)), "password");
  EXPECT_EQ(store_->LatestSeq(), seq);

  // Updates are validated the same way, and a PUT naming another number is refused.
  ASSERT_EQ(CallJson("POST", "/api/v1/extensions", admin_, NewExtension("1001")).status, 201);
  const store::SeqNo seq2 = store_->LatestSeq();
  EXPECT_EQ(ErrorField(CallJson("PUT", "/api/v1/extensions/1001", admin_,
                                json{{"registration_expiry", 5}})),
            "registration_expiry");
  EXPECT_EQ(
      ErrorField(CallJson("PUT", "/api/v1/extensions/1001", admin_, json{{"number", "1002"}})),
      "number");
  EXPECT_EQ(store_->LatestSeq(), seq2);
}

TEST_F(ApiServerTest, DuplicateIs409) {
  ASSERT_EQ(CallJson("POST", "/api/v1/extensions", admin_, NewExtension("1001")).status, 201);
  const store::SeqNo seq = store_->LatestSeq();
  json again = NewExtension("1001");
  again["name"] = "Someone else";
  HttpReply r = CallJson("POST", "/api/v1/extensions", admin_, again);
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.body["error"]["code"], "conflict");
  EXPECT_EQ(ErrorField(r), "number");
  EXPECT_EQ(store_->LatestSeq(), seq);
  EXPECT_EQ(Call("GET", "/api/v1/extensions/1001", admin_).body["name"], "User 1001");
}

TEST_F(ApiServerTest, RolesOperatorAndApiMayManageExtensionsExtensionUsersMayNot) {
  AddUser("ops", store::Role::kOperator, "0perator1");
  AddUser("robot", store::Role::kApi, "r0botPass");
  AddUser("portal", store::Role::kExtension, "p0rtalPass");

  for (auto [user, password] : {std::pair{"ops", "0perator1"}, std::pair{"robot", "r0botPass"}}) {
    std::string token = TokenFor(user, password);
    EXPECT_EQ(Call("GET", "/api/v1/extensions", token).status, 200) << user;
    std::string number = std::string(user) == "ops" ? "2001" : "2002";
    EXPECT_EQ(CallJson("POST", "/api/v1/extensions", token, NewExtension(number)).status, 201);
    EXPECT_EQ(Call("DELETE", "/api/v1/extensions/" + number, token).status, 204);
  }

  HttpReply login = Login("portal", "p0rtalPass");
  ASSERT_EQ(login.status, 200);
  EXPECT_EQ(login.body["role"], "extension");
  std::string portal = login.body["token"].get<std::string>();
  const store::SeqNo seq = store_->LatestSeq();
  EXPECT_EQ(Call("GET", "/api/v1/extensions", portal).status, 403);
  EXPECT_EQ(Call("GET", "/api/v1/extensions/1001", portal).status, 403);
  EXPECT_EQ(CallJson("POST", "/api/v1/extensions", portal, NewExtension("3001")).status, 403);
  EXPECT_EQ(Call("DELETE", "/api/v1/extensions/1001", portal).status, 403);
  EXPECT_EQ(Call("GET", "/api/v1/status", portal).body["error"]["code"], "permission_denied");
  EXPECT_EQ(store_->LatestSeq(), seq);
}

TEST_F(ApiServerTest, ExtensionUserLogsInWithSipPasswordWhenWebLoginIsOn) {
  json body = NewExtension("1005");
  ASSERT_EQ(CallJson("POST", "/api/v1/extensions", admin_, body).status, 201);
  EXPECT_EQ(Login("1005", "s3cretPass").status, 401);  // web login is off by default
  ASSERT_EQ(CallJson("PUT", "/api/v1/extensions/1005", admin_, json{{"web_login", true}}).status,
            200);
  HttpReply login = Login("1005", "s3cretPass");
  ASSERT_EQ(login.status, 200);
  EXPECT_EQ(login.body["role"], "extension");
  std::string token = login.body["token"].get<std::string>();
  EXPECT_EQ(Call("GET", "/api/v1/extensions", token).status, 403);
  EXPECT_EQ(Login("1005", "wr0ngPassword").status, 401);

  // Turning web login off again invalidates the portal token at once.
  ASSERT_EQ(CallJson("PUT", "/api/v1/extensions/1005", admin_, json{{"web_login", false}}).status,
            200);
  EXPECT_EQ(Call("GET", "/api/v1/extensions", token).status, 401);
}

TEST_F(ApiServerTest, TheStoredRoleCountsNotTheTokens) {
  AddUser("ops", store::Role::kOperator, "0perator1");
  // A token claiming admin for an operator grants only what the operator may do; and one
  // claiming extension for an operator account is still the operator's.
  std::string token = *MintToken(TokenSecret(), "ops", "extension", 60);
  EXPECT_EQ(Call("GET", "/api/v1/extensions", token).status, 200);
}

TEST_F(ApiServerTest, UnknownEndpointsAndNumbersAre404Json) {
  HttpReply r = Call("GET", "/api/v1/nope", admin_);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body["error"]["code"], "not_found");
  EXPECT_EQ(Call("GET", "/api/v1/extensions/abc", admin_).status, 404);
  EXPECT_EQ(Call("GET", "/api/v1/extensions/1", admin_).status, 404);
  EXPECT_EQ(Call("GET", "/api/v1/extensions/123456789012", admin_).status, 404);
}

TEST_F(ApiServerTest, OversizedBodyIsRejected) {
  std::string big = "{\"name\": \"" + std::string(9 * 1024 * 1024, 'x') + "\"}";
  HttpReply r = Call("POST", "/api/v1/extensions", admin_, big);
  EXPECT_EQ(r.status, 413);
}

// 64 KiB for ordinary endpoints, 8 MiB for a restore: each refusal names its limit.
TEST_F(ApiServerTest, BodyLimitsArePerRoute) {
  const std::string padded = "{\"name\": \"" + std::string(100 * 1024, 'x') + "\"}";
  const store::SeqNo seq = store_->LatestSeq();
  HttpReply r = Call("POST", "/api/v1/extensions", admin_, padded);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.body["error"]["code"], "payload_too_large");
  EXPECT_EQ(r.body["error"]["message"],
            "request body too large: /api/v1/extensions takes at most 64 KiB");
  // The same size is read by the restore, which refuses it for what it is, not its size.
  r = Call("POST", "/api/v1/restore", admin_, padded);
  EXPECT_EQ(r.status, 400) << r.body.dump();
  // A chunked body (no Content-Length) is measured the same way.
  auto client = Client();
  httplib::Result chunked = client->Post(
      "/api/v1/extensions", {{"Authorization", "Bearer " + admin_}},
      [&](size_t offset, httplib::DataSink& sink) {
        if (offset < padded.size()) {
          sink.write(padded.data() + offset, std::min<size_t>(16384, padded.size() - offset));
        } else {
          sink.done();
        }
        return true;
      },
      "application/json");
  ASSERT_TRUE(chunked);
  EXPECT_EQ(chunked->status, 413);
  EXPECT_EQ(store_->LatestSeq(), seq);
  // A small body still works.
  EXPECT_EQ(CallJson("POST", "/api/v1/extensions", admin_,
                     json{{"number", "2001"}, {"name", "A"}, {"password", "s3cretPass"}})
                .status,
            201);
}

TEST_F(ApiServerTest, ClientsPinnedToAnotherCertificateRefuseTheServer) {
  const std::string other_cert = dir_.Sub("other-cert.pem");
  ASSERT_TRUE(GenerateSelfSignedCert(other_cert, dir_.Sub("other-key.pem"), "other", {}).ok());
  httplib::SSLClient client("127.0.0.1", server_->port());
  client.set_ca_cert_path(other_cert);
  client.enable_server_certificate_verification(true);
  httplib::Result res = client.Get("/api/v1/status");
  EXPECT_FALSE(res);
  EXPECT_EQ(res.error(), httplib::Error::SSLServerVerification);
}

TEST_F(ApiServerTest, StopIsIdempotentAndClosesThePort) {
  const uint16_t port = server_->port();
  server_->Stop();
  server_->Stop();
  httplib::SSLClient client("127.0.0.1", port);
  client.enable_server_certificate_verification(false);
  client.set_connection_timeout(2);
  EXPECT_FALSE(client.Get("/api/v1/status"));
  server_.reset();  // the destructor stops again: harmless
}

TEST_F(ApiServerTest, StartFailsCleanly) {
  ApiOptions options;
  options.port = 0;
  options.cert_file = dir_.Sub("missing.pem");
  options.key_file = key_;
  EXPECT_EQ(ApiServer::Start(options, *store_, nullptr).status().code(),
            Status::Code::kInvalidArgument);

  // A key that does not match the certificate.
  const std::string other_cert = dir_.Sub("other-cert.pem");
  ASSERT_TRUE(GenerateSelfSignedCert(other_cert, dir_.Sub("other-key.pem"), "other", {}).ok());
  options.cert_file = other_cert;
  EXPECT_EQ(ApiServer::Start(options, *store_, nullptr).status().code(),
            Status::Code::kInvalidArgument);

  // The port is taken.
  options.cert_file = cert_;
  options.port = server_->port();
  EXPECT_EQ(ApiServer::Start(options, *store_, nullptr).status().code(),
            Status::Code::kUnavailable);
}

TEST_F(ApiServerTest, NullStatusCallbackIsAllowed) {
  server_.reset();
  ApiOptions options;
  options.port = 0;
  options.cert_file = cert_;
  options.key_file = key_;
  Result<std::unique_ptr<ApiServer>> server = ApiServer::Start(options, *store_, nullptr);
  ASSERT_TRUE(server.ok());
  server_ = std::move(server).value();
  HttpReply r = Call("GET", "/api/v1/status", admin_);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["role"], "standalone");
}

}  // namespace
}  // namespace pbx::admin
