// pbxctl's verbs (node/cli/commands.h) against an in-process API server, through a run
// directory laid out as pbxd lays it out.

#include <unistd.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "node/cli/api_client.h"
#include "node/cli/commands.h"
#include "tests/unit/admin/api_test_env.h"

namespace pbx::cli {
namespace {

using json = nlohmann::json;

struct Output {
  int code = -1;
  std::string out, err;
};

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
}

class CliTest : public admin::testing::ApiTestEnv {
 protected:
  void SetUp() override {
    ApiTestEnv::SetUp();
    run_dir_ = dir_.Sub("run");
    ASSERT_EQ(::mkdir(run_dir_.c_str(), 0755), 0);
    WriteReady(::getpid(), server_->port());
    Result<std::string> token = admin::MintTokenForUser(*store_, "admin", 3600);
    ASSERT_TRUE(token.ok());
    WriteFile(run_dir_ + "/admin.token", *token + "\n");
    g_.run_dir = run_dir_;
  }

  void WriteReady(int64_t pid, int port) {
    json ready = {{"pid", pid},
                  {"node", "node-a"},
                  {"api", port},
                  {"api_url", "https://127.0.0.1:" + std::to_string(port)},
                  {"api_cert", cert_}};
    WriteFile(run_dir_ + "/ready.json", ready.dump(2));
  }

  template <typename Fn>
  Output Run(Fn&& fn) {
    std::ostringstream out, err;
    Output o;
    o.code = fn(out, err);
    o.out = out.str();
    o.err = err.str();
    return o;
  }
  Output Status(const GlobalOptions& g) {
    return Run([&](std::ostream& o, std::ostream& e) { return RunStatus(g, o, e); });
  }
  Output List(const GlobalOptions& g) {
    return Run([&](std::ostream& o, std::ostream& e) { return RunExtList(g, o, e); });
  }
  Output Show(const GlobalOptions& g, const std::string& n) {
    return Run([&](std::ostream& o, std::ostream& e) { return RunExtShow(g, n, o, e); });
  }
  Output Add(const GlobalOptions& g, const ExtAddOptions& a) {
    return Run([&](std::ostream& o, std::ostream& e) { return RunExtAdd(g, a, o, e); });
  }
  Output Del(const GlobalOptions& g, const std::string& n) {
    return Run([&](std::ostream& o, std::ostream& e) { return RunExtDel(g, n, o, e); });
  }

  std::string run_dir_;
  GlobalOptions g_;
};

TEST_F(CliTest, StatusThroughTheRunDirectory) {
  Output o = Status(g_);
  ASSERT_EQ(o.code, kExitOk) << o.err;
  EXPECT_NE(o.out.find("node"), std::string::npos);
  EXPECT_NE(o.out.find("node-a"), std::string::npos);
  EXPECT_NE(o.out.find("active"), std::string::npos);
  EXPECT_NE(o.out.find("extensions"), std::string::npos);

  g_.json = true;
  o = Status(g_);
  ASSERT_EQ(o.code, kExitOk);
  json j = json::parse(o.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << o.out;
  EXPECT_EQ(j["node_name"], "node-a");
  EXPECT_EQ(j["counts"]["extensions"], 0);
}

TEST_F(CliTest, AddListShowDelete) {
  ExtAddOptions add;
  add.number = "1001";
  add.name = "Alice";
  add.email = "alice@example.com";
  add.codecs = {"G722", "PCMU"};
  add.max_contacts = 2;
  Output o = Add(g_, add);
  ASSERT_EQ(o.code, kExitOk) << o.err;
  EXPECT_NE(o.out.find("created extension 1001"), std::string::npos);
  // The generated password is printed once, and it is the one the server stored.
  size_t at = o.out.find("password: ");
  ASSERT_NE(at, std::string::npos) << o.out;
  std::string password = o.out.substr(at + 10, 12);
  Result<store::Extension> stored = store::ExtensionRepo(*store_).Get("1001");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->ha1_md5, *admin::DigestHa1Md5("1001", stored->realm, password));
  EXPECT_EQ(stored->max_contacts, 2u);
  EXPECT_EQ(stored->codecs, (std::vector<std::string>{"G722", "PCMU"}));

  add.number = "1002";
  add.name = "Bob";
  add.password = "b0bPassword";
  add.email.clear();
  o = Add(g_, add);
  ASSERT_EQ(o.code, kExitOk) << o.err;
  EXPECT_EQ(o.out.find("password"), std::string::npos);

  o = List(g_);
  ASSERT_EQ(o.code, kExitOk) << o.err;
  EXPECT_EQ(o.out,
            "NUMBER  NAME   EMAIL              TRANSPORT\n"
            "1001    Alice  alice@example.com  udp\n"
            "1002    Bob                       udp\n");

  o = Show(g_, "1001");
  ASSERT_EQ(o.code, kExitOk) << o.err;
  EXPECT_NE(o.out.find("alice@example.com"), std::string::npos);
  EXPECT_NE(o.out.find("G722, PCMU"), std::string::npos);
  EXPECT_EQ(o.out.find("ha1"), std::string::npos);

  g_.json = true;
  o = Show(g_, "1002");
  ASSERT_EQ(o.code, kExitOk);
  EXPECT_EQ(json::parse(o.out)["name"], "Bob");
  o = List(g_);
  EXPECT_EQ(json::parse(o.out)["extensions"].size(), 2u);
  g_.json = false;

  o = Del(g_, "1002");
  ASSERT_EQ(o.code, kExitOk) << o.err;
  EXPECT_EQ(o.out, "deleted extension 1002\n");
  o = Show(g_, "1002");
  EXPECT_EQ(o.code, kExitError);
  EXPECT_NE(o.err.find("not found"), std::string::npos) << o.err;
}

TEST_F(CliTest, ApiErrorsAreShownWithExitCode1) {
  ExtAddOptions add;
  add.number = "1001";
  add.name = "Alice";
  add.password = "weak";
  Output o = Add(g_, add);
  EXPECT_EQ(o.code, kExitError);
  EXPECT_NE(o.err.find("password must be at least 8 characters"), std::string::npos) << o.err;

  add.password = "g00dPassword";
  ASSERT_EQ(Add(g_, add).code, kExitOk);
  o = Add(g_, add);
  EXPECT_EQ(o.code, kExitError);
  EXPECT_NE(o.err.find("exists"), std::string::npos) << o.err;

  EXPECT_EQ(Del(g_, "../status").code, kExitUsage);
}

TEST_F(CliTest, GeneratedPasswordIsInTheJsonOutput) {
  g_.json = true;
  ExtAddOptions add;
  add.number = "1003";
  add.name = "Carol";
  Output o = Add(g_, add);
  ASSERT_EQ(o.code, kExitOk) << o.err;
  json j = json::parse(o.out);
  ASSERT_TRUE(j["password"].is_string());
  Result<store::Extension> stored = store::ExtensionRepo(*store_).Get("1003");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->ha1_sha256,
            *admin::DigestHa1Sha256("1003", stored->realm, j["password"].get<std::string>()));
}

TEST_F(CliTest, NotRunningIsExit3) {
  GlobalOptions g;
  g.run_dir = dir_.Sub("empty");
  Output o = Status(g);
  EXPECT_EQ(o.code, kExitNotRunning);
  EXPECT_NE(o.err.find("pbxd is not running (no " + g.run_dir + "/ready.json)"), std::string::npos)
      << o.err;

  // A pid that existed and is gone.
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  WriteReady(child, server_->port());
  o = Status(g_);
  EXPECT_EQ(o.code, kExitNotRunning);
  EXPECT_NE(o.err.find("pbxd is not running"), std::string::npos) << o.err;

  // Alive pid, but nothing listens any more.
  WriteReady(::getpid(), server_->port());
  server_->Stop();
  o = Status(g_);
  EXPECT_EQ(o.code, kExitNotRunning);
  EXPECT_NE(o.err.find("pbxd is not running"), std::string::npos) << o.err;
}

TEST_F(CliTest, UnreadableTokenFileExplainsTheAlternatives) {
  ASSERT_EQ(::unlink((run_dir_ + "/admin.token").c_str()), 0);
  Output o = Status(g_);
  EXPECT_EQ(o.code, kExitError);
  EXPECT_NE(o.err.find("admin.token"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("--user"), std::string::npos) << o.err;

  // --user/--password works without the token file.
  g_.user = "admin";
  g_.password = admin::testing::kAdminPassword;
  EXPECT_EQ(Status(g_).code, kExitOk);
  g_.password = "Wr0ngPassword";
  o = Status(g_);
  EXPECT_EQ(o.code, kExitError);
  EXPECT_NE(o.err.find("invalid username or password"), std::string::npos) << o.err;
}

TEST_F(CliTest, ExplicitApiUrl) {
  GlobalOptions g;
  g.api_url = "https://127.0.0.1:" + std::to_string(server_->port());
  EXPECT_EQ(Status(g).code, kExitUsage);  // no credentials
  g.user = "admin";
  g.password = admin::testing::kAdminPassword;
  EXPECT_EQ(Status(g).code, kExitUsage);  // https without --ca or --insecure
  g.ca_file = cert_;
  Output o = Status(g);
  EXPECT_EQ(o.code, kExitOk) << o.err;
  g.ca_file.clear();
  g.insecure = true;
  EXPECT_EQ(Status(g).code, kExitOk);

  // A CA that is not the server's certificate: refused, and not reported as "not running".
  const std::string other = dir_.Sub("other.pem");
  ASSERT_TRUE(admin::GenerateSelfSignedCert(other, dir_.Sub("other-key.pem"), "x", {}).ok());
  g.insecure = false;
  g.ca_file = other;
  o = Status(g);
  EXPECT_EQ(o.code, kExitError);
  EXPECT_NE(o.err.find("certificate"), std::string::npos) << o.err;

  // A token instead of a password.
  GlobalOptions t;
  t.api_url = g.api_url;
  t.ca_file = cert_;
  t.token = *admin::MintTokenForUser(*store_, "admin", 60);
  EXPECT_EQ(Status(t).code, kExitOk);
  t.user = "admin";
  EXPECT_EQ(Status(t).code, kExitUsage);  // --token and --user together
}

TEST(RunInfoTest, ReadsAndValidatesReadyJson) {
  test::TempDir dir;
  EXPECT_TRUE(ReadRunInfo(dir.path()).status().IsNotFound());
  WriteFile(dir.Sub("ready.json"), R"({"pid": 12, "node": "n", "api": 8443})");
  Result<RunInfo> info = ReadRunInfo(dir.path());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->pid, 12);
  EXPECT_EQ(info->api_url, "https://127.0.0.1:8443");  // derived when absent
  for (const char* bad : {"{", R"({"pid": "12", "api": 1})", R"({"pid": 12, "api": 70000})",
                          R"({"pid": 12, "api": 1, "api_cert": 5})", "[]"}) {
    WriteFile(dir.Sub("ready.json"), bad);
    EXPECT_EQ(ReadRunInfo(dir.path()).status().code(), Status::Code::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(ProcessAlive(::getpid()));
  EXPECT_FALSE(ProcessAlive(0));
  EXPECT_FALSE(ProcessAlive(-5));
}

TEST(RunInfoTest, DefaultRunDirPrefersTheEnvironment) {
  ::setenv("PBX_RUN_DIR", "/tmp/somewhere", 1);
  EXPECT_EQ(DefaultRunDir(), "/tmp/somewhere");
  ::unsetenv("PBX_RUN_DIR");
  EXPECT_FALSE(DefaultRunDir().empty());
}

TEST(FormatTest, ExtensionTableAlignsByTerminalCells) {
  json list = json::array({json{{"number", "10"}, {"name", "张伟"}, {"transport", "tls"}},
                           json{{"number", "12345678901"}, {"name", "Al"}, {"email", "a@b.co"}}});
  EXPECT_EQ(FormatExtensionTable(list),
            "NUMBER       NAME  EMAIL   TRANSPORT\n"
            "10           张伟          tls\n"
            "12345678901  Al    a@b.co\n");
  EXPECT_EQ(FormatExtensionTable(json::array()), "NUMBER  NAME  EMAIL  TRANSPORT\n");
}

TEST(FormatTest, StatusIsKeyValueLines) {
  json s = {{"node_name", "a"},
            {"role", "active"},
            {"version", "1.0"},
            {"epoch", 3},
            {"last_seq", 99},
            {"started_unix", 1700000000},
            {"counts", {{"extensions", 5}}}};
  std::string text = FormatStatus(s, 1700000000 + 3 * 3600 + 120);
  EXPECT_NE(text.find("node        a\n"), std::string::npos) << text;
  EXPECT_NE(text.find("last seq    99\n"), std::string::npos) << text;
  EXPECT_NE(text.find("started     2023-11-14 22:13:20 UTC (up 3h 2m)\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("extensions  5\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("NODE"), std::string::npos) << "a single node has no pair table";
}

TEST(FormatTest, StatusOfAPairShowsBothNodesAndTheFailover) {
  json s = {{"node_name", "pbx-a"},
            {"role", "active"},
            {"epoch", 4},
            {"last_seq", 1042},
            {"cluster",
             {{"peer",
               {{"name", "pbx-b"},
                {"role", "standby"},
                {"epoch", 4},
                {"last_seq", 1040},
                {"alive", true},
                {"heard_ms_ago", 12}}},
              {"hb_rtt_ms", 0.25},
              {"lag_seqs", 2},
              {"lag_ms", 0.4},
              {"degraded", true},
              {"degraded_since_unix", 1700000000},
              {"vip", "10.99.0.100/24"},
              {"vip_owner", "pbx-a"},
              {"witness", "held by pbx-a"},
              {"last_failover", {{"unix", 1700000000}, {"reason", "peer dead for 510 ms"}}}}}};
  std::string text = FormatStatus(s, 1700000065);
  EXPECT_NE(text.find("NODE   ROLE     EPOCH  LAST SEQ  HEARD\n"
                      "pbx-a  active   4      1042      this node\n"
                      "pbx-b  standby  4      1040      12 ms ago\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("replication lag  2 seqs, 0.4 ms\n"), std::string::npos) << text;
  EXPECT_NE(text.find("degraded         YES, committing without the standby for 1m 5s\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("vip              10.99.0.100/24 on pbx-a\n"), std::string::npos) << text;
  EXPECT_NE(text.find("last failover    2023-11-14 22:13:20 UTC: peer dead for 510 ms\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace pbx::cli
