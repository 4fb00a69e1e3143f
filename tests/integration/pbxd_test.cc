// pbxd and pbxctl as a user runs them: real processes, HTTPS on a port chosen by the
// kernel, the store on disk across a restart.
#include <httplib.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/process.h"

namespace pbx {
namespace {

using nlohmann::json;

class PbxdTest : public testing::Test {
 protected:
  void SetUp() override {
    config_ = dir_.Sub("pbx.toml");
    std::ofstream(config_)
        << "[node]\nname = \"itest\"\n"
        << "data_dir = \"" << dir_.Sub("data") << "\"\n"
        << "run_dir = \"" << dir_.Sub("run") << "\"\n"
        << "[api]\nport = 0\n"
        << "[sip]\nlisten = \"127.0.0.1\"\nudp_port = 0\ntcp_port = 0\ntls_port = 0\n"
        << "[demo]\nextensions = true\n";
  }

  // Starts pbxd and waits for ready.json.
  std::unique_ptr<test::Process> StartPbxd() {
    std::filesystem::remove(dir_.Sub("pbxd.log"));
    auto p = std::make_unique<test::Process>(
        std::vector<std::string>{PBXD_PATH, "--config", config_}, dir_.Sub("pbxd.log"));
    bool ready = test::WaitFor([&] { return std::filesystem::exists(ReadyPath()); },
                               std::chrono::seconds(20));
    EXPECT_TRUE(ready) << p->Log();
    return p;
  }

  std::string ReadyPath() const { return dir_.Sub("run/ready.json"); }

  test::CommandResult Pbxctl(std::vector<std::string> args) {
    args.insert(args.begin(), {PBXCTL_PATH, "--run-dir", dir_.Sub("run")});
    return test::Run(args);
  }

  // An HTTPS client that trusts only pbxd's own certificate, authenticated as admin.
  std::unique_ptr<httplib::SSLClient> Client() {
    json ready = json::parse(test::ReadFile(ReadyPath()));
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", ready["api"].get<int>());
    c->set_ca_cert_path(ready["api_cert"].get<std::string>().c_str());
    c->enable_server_certificate_verification(true);
    std::string token = test::ReadFile(dir_.Sub("run/admin.token"));
    while (!token.empty() && token.back() == '\n') token.pop_back();
    c->set_bearer_token_auth(token.c_str());
    return c;
  }

  test::TempDir dir_;
  std::string config_;
};

TEST_F(PbxdTest, ExtensionAddedWithPbxctlIsServedOverHttpsAndSurvivesARestart) {
  auto pbxd = StartPbxd();
  std::string first_boot = pbxd->Log();
  EXPECT_NE(first_boot.find("First boot"), std::string::npos);
  EXPECT_NE(first_boot.find("extension     1005"), std::string::npos);

  test::CommandResult add =
      Pbxctl({"ext", "add", "2001", "--name", "Alice Example", "--password", "Front9desk"});
  ASSERT_EQ(add.exit_code, 0) << add.out << add.err;

  auto client = Client();
  httplib::Result r = client->Get("/api/v1/extensions/2001");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  ASSERT_EQ(r->status, 200) << r->body;
  json ext = json::parse(r->body);
  EXPECT_EQ(ext["number"], "2001");
  EXPECT_EQ(ext["name"], "Alice Example");
  EXPECT_FALSE(ext.contains("password"));

  // Without a token the API refuses.
  httplib::SSLClient anonymous("127.0.0.1", json::parse(test::ReadFile(ReadyPath()))["api"]);
  anonymous.enable_server_certificate_verification(false);
  httplib::Result denied = anonymous.Get("/api/v1/extensions");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 401);

  test::CommandResult status = Pbxctl({"status", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(json::parse(status.out)["node_name"], "itest");

  EXPECT_EQ(pbxd->Signal(SIGTERM), 0) << pbxd->Log();
  EXPECT_FALSE(std::filesystem::exists(ReadyPath()));

  test::CommandResult down = Pbxctl({"status"});
  EXPECT_EQ(down.exit_code, 3);
  EXPECT_NE(down.err.find("not running"), std::string::npos) << down.err;

  pbxd = StartPbxd();
  EXPECT_EQ(pbxd->Log().find("First boot"), std::string::npos) << "passwords printed twice";
  test::CommandResult list = Pbxctl({"ext", "list", "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  json all = json::parse(list.out);
  std::vector<std::string> numbers;
  for (const json& e : all["extensions"]) numbers.push_back(e["number"]);
  EXPECT_EQ(numbers, (std::vector<std::string>{"1001", "1002", "1003", "1004", "1005", "2001"}));
  EXPECT_EQ(pbxd->Signal(SIGINT), 0) << pbxd->Log();
}

TEST_F(PbxdTest, BadExtensionIsRefusedAndChangesNothing) {
  auto pbxd = StartPbxd();
  test::CommandResult bad = Pbxctl({"ext", "add", "9", "--name", "Too short"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("number"), std::string::npos) << bad.err;
  auto client = Client();
  httplib::Result r =
      client->Post("/api/v1/extensions", "{\"number\": \"3001\", ", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  httplib::Result get = client->Get("/api/v1/extensions/3001");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 404);
}

TEST(PbxdStartupTest, BadBootstrapFileStopsStartupWithFileAndLine) {
  test::TempDir dir;
  std::string config = dir.Sub("bad.toml");
  std::ofstream(config) << "[node]\nname = \"x\"\n[cluster]\nlisten = \"10.0.0.1:7400\"\n"
                        << "peer = \"10.0.0.2\"\n";
  test::CommandResult r = test::Run({PBXD_PATH, "--config", config});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(config + ":5: 'peer'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace pbx
