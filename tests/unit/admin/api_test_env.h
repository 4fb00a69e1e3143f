#pragma once

#include <httplib.h>

#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "node/admin/api_server.h"
#include "node/admin/credentials.h"
#include "node/admin/first_boot.h"
#include "replication/store/repos.h"
#include "tests/support/process.h"

// A provisioned MemStateStore and an ApiServer on 127.0.0.1:0 with a fresh self-signed
// certificate, plus an HTTPS client pinned to that certificate. Shared by the API and CLI
// tests. Single test thread; the server runs its own threads.
namespace pbx::admin::testing {

inline constexpr const char* kAdminPassword = "Adm1nPassword";

struct HttpReply {
  int status = 0;  // 0: no reply (connection failed)
  nlohmann::json body;
  httplib::Headers headers;
};

class ApiTestEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    cert_ = dir_.Sub("api-cert.pem");
    key_ = dir_.Sub("api-key.pem");
    ASSERT_TRUE(GenerateSelfSignedCert(cert_, key_, "test", {}).ok());
    FirstBootOptions boot;
    boot.admin_password = kAdminPassword;
    ASSERT_TRUE(ProvisionFirstBoot(*store_, boot).ok());
    StartServer();
  }

  void StartServer() {
    ApiOptions options;
    options.port = 0;
    options.cert_file = cert_;
    options.key_file = key_;
    options.threads = 2;
    Result<std::unique_ptr<ApiServer>> server = ApiServer::Start(options, *store_, [] {
      NodeStatus s;
      s.node_name = "node-a";
      s.role = "active";
      s.version = "9.9.9";
      s.epoch = 7;
      s.last_seq = 42;
      s.started_unix = 1700000000;
      return s;
    });
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    ASSERT_NE(server_->port(), 0);
  }

  std::unique_ptr<httplib::SSLClient> Client() const {
    auto client = std::make_unique<httplib::SSLClient>("127.0.0.1", server_->port());
    client->set_ca_cert_path(cert_);
    client->enable_server_certificate_verification(true);
    client->set_connection_timeout(5);
    client->set_read_timeout(10);
    return client;
  }

  // One request; `body` is sent verbatim when not empty.
  HttpReply Call(const std::string& method, const std::string& path, const std::string& token = {},
                 const std::string& body = {}) const {
    std::unique_ptr<httplib::SSLClient> client = Client();
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    httplib::Result res(nullptr, httplib::Error::Unknown);
    if (method == "GET") {
      res = client->Get(path, headers);
    } else if (method == "POST") {
      res = client->Post(path, headers, body, "application/json");
    } else if (method == "PUT") {
      res = client->Put(path, headers, body, "application/json");
    } else if (method == "DELETE") {
      res = client->Delete(path, headers);
    }
    HttpReply reply;
    if (!res) return reply;
    reply.status = res->status;
    reply.headers = res->headers;
    if (!res->body.empty()) reply.body = nlohmann::json::parse(res->body, nullptr, false);
    return reply;
  }

  HttpReply CallJson(const std::string& method, const std::string& path, const std::string& token,
                     const nlohmann::json& body) const {
    return Call(method, path, token, body.dump());
  }

  HttpReply Login(const std::string& user, const std::string& password) const {
    return CallJson("POST", "/api/v1/login", "",
                    nlohmann::json{{"username", user}, {"password", password}});
  }

  // Logs in and returns the token (fails the test if login fails).
  std::string TokenFor(const std::string& user, const std::string& password) const {
    HttpReply r = Login(user, password);
    EXPECT_EQ(r.status, 200) << r.body.dump();
    if (r.status != 200 || !r.body.contains("token")) return {};
    return r.body["token"].get<std::string>();
  }

  // Adds a web/API account directly in the store (cheap KDF: tests need speed, not cost).
  void AddUser(const std::string& name, store::Role role, const std::string& password) {
    Result<PasswordHash> hash = HashPassword(password, 1000);
    ASSERT_TRUE(hash.ok());
    store::User user;
    user.name = name;
    user.role = role;
    user.password_salt = hash->salt;
    user.password_hash = hash->hash;
    user.kdf_iterations = hash->iterations;
    store::WriteSet writes;
    store::UserRepo(*store_).Put(user, /*create=*/true, writes);
    ASSERT_TRUE(store_->Commit(writes, store::Durability::kReplicated).ok());
  }

  std::string TokenSecret() const {
    Result<store::SystemSettings> settings = store::SettingsRepo(*store_).Get();
    EXPECT_TRUE(settings.ok());
    return settings.ok() ? settings->token_secret : std::string();
  }

  test::TempDir dir_;
  std::string cert_, key_;
  std::unique_ptr<store::StateStore> store_ = store::NewMemStateStore();
  std::unique_ptr<ApiServer> server_;
};

}  // namespace pbx::admin::testing
