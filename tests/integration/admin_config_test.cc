// The admin's configuration endpoints against real pbxd processes:
// - backup and restore: a backup made on one node restores on a freshly started one
//   (extensions, users, settings; a user logs in with the password of the backup), and a
//   damaged file is refused and changes nothing;
// - the HTTPS certificate: an upload is checked, served at once without a restart, and
//   still served after one.
#include <httplib.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "node/admin/credentials.h"
#include "tests/support/process.h"

namespace pbx {
namespace {

using nlohmann::json;

// One single-node pbxd with its own directories, and an admin HTTPS client for it.
class Node {
 public:
  Node(test::TempDir& dir, const std::string& name) : dir_(dir.Sub(name)) {
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ + "/pbx.toml") << "[node]\nname = \"" << name << "\"\n"
                                      << "data_dir = \"" << dir_ << "/data\"\n"
                                      << "run_dir = \"" << dir_ << "/run\"\n"
                                      << "[api]\nport = 0\n"
                                      << "[sip]\nlisten = \"127.0.0.1\"\nudp_port = 0\n"
                                      << "tcp_port = 0\ntls_port = 0\n"
                                      << "[demo]\nextensions = false\n";
    Start();
  }

  void Start() {
    process_ = std::make_unique<test::Process>(
        std::vector<std::string>{PBXD_PATH, "--config", dir_ + "/pbx.toml"}, dir_ + "/pbxd.log");
    ready_ = test::WaitFor([&] { return std::filesystem::exists(dir_ + "/run/ready.json"); },
                           std::chrono::seconds(30));
  }
  int Stop() { return process_->Signal(SIGTERM); }

  bool ready() const { return ready_; }
  std::string Log() const { return process_->Log(); }
  std::string Dir() const { return dir_; }

  // An HTTPS client trusting only `ca` (default: the node's self-signed certificate); with
  // the admin's token unless `anonymous`.
  std::unique_ptr<httplib::SSLClient> Client(bool anonymous = false, std::string ca = "") const {
    json ready = json::parse(test::ReadFile(dir_ + "/run/ready.json"));
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", ready["api"].get<int>());
    if (ca.empty()) ca = ready["api_cert"].get<std::string>();
    c->set_ca_cert_path(ca.c_str());
    c->enable_server_certificate_verification(true);
    if (!anonymous) {
      std::string token = test::ReadFile(dir_ + "/run/admin.token");
      while (!token.empty() && token.back() == '\n') token.pop_back();
      c->set_bearer_token_auth(token.c_str());
    }
    return c;
  }

  // Status and body of a JSON request as the admin.
  std::pair<int, json> Call(const std::string& method, const std::string& path,
                            const std::string& body = "") const {
    auto c = Client();
    httplib::Result r = method == "GET"    ? c->Get(path)
                        : method == "POST" ? c->Post(path, body, "application/json")
                        : method == "PUT"  ? c->Put(path, body, "application/json")
                                           : c->Delete(path);
    if (!r) return {0, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }

  // The extension numbers and user names this node has.
  std::pair<std::vector<std::string>, std::vector<std::string>> Config() const {
    std::vector<std::string> numbers, users;
    const json extensions = Call("GET", "/api/v1/extensions").second["extensions"];
    for (const json& e : extensions) numbers.push_back(e["number"]);
    const json accounts = Call("GET", "/api/v1/users").second["users"];
    for (const json& u : accounts) users.push_back(u["name"]);
    return {numbers, users};
  }

 private:
  std::string dir_;
  std::unique_ptr<test::Process> process_;
  bool ready_ = false;
};

TEST(BackupTest, BackupRestoresOnAFreshNodeAndADamagedFileChangesNothing) {
  test::TempDir dir;
  Node a(dir, "alpha");
  ASSERT_TRUE(a.ready()) << a.Log();
  ASSERT_EQ(a.Call("POST", "/api/v1/extensions",
                   R"({"number":"2001","name":"Alice","password":"Secr3tPass"})")
                .first,
            201);
  ASSERT_EQ(
      a.Call("POST", "/api/v1/users", R"({"name":"ops","role":"operator","password":"0perator99"})")
          .first,
      201);

  auto backup_reply = a.Client()->Get("/api/v1/backup");
  ASSERT_TRUE(backup_reply);
  ASSERT_EQ(backup_reply->status, 200) << backup_reply->body;
  EXPECT_NE(backup_reply->get_header_value("Content-Disposition").find("attachment"),
            std::string::npos);
  const std::string backup = backup_reply->body;
  json file = json::parse(backup);
  EXPECT_EQ(file["format"], "pbx-config-backup");
  EXPECT_EQ(file["version"], 1);

  Node b(dir, "bravo");
  ASSERT_TRUE(b.ready()) << b.Log();
  const auto fresh = b.Config();
  EXPECT_TRUE(fresh.first.empty());

  // Damaged files: each refused with 400 naming the problem, and nothing changes.
  json edited = file;
  edited["records"][0]["value"] = edited["records"][1]["value"];
  json bad_version = file;
  bad_version["version"] = 99;
  for (const auto& [name, body, field] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"truncated", backup.substr(0, backup.size() / 2), ""},
           {"edited", edited.dump(), "sha256"},
           {"wrong version", bad_version.dump(), "version"},
           {"not a backup", R"({"hello":"world"})", "format"}}) {
    auto [status, reply] = b.Call("POST", "/api/v1/restore", body);
    EXPECT_EQ(status, 400) << name << ": " << reply.dump();
    if (!field.empty()) {
      EXPECT_EQ(reply["error"]["field"], field) << name << ": " << reply.dump();
    }
    EXPECT_EQ(b.Config(), fresh) << name;
  }

  // Restore: one commit, then the node has the backup's configuration.
  auto [status, reply] = b.Call("POST", "/api/v1/restore", backup);
  ASSERT_EQ(status, 200) << reply.dump();
  EXPECT_EQ(b.Config(), a.Config());
  EXPECT_EQ(b.Call("GET", "/api/v1/extensions/2001").second["name"], "Alice");

  // The backup's operator logs in on the new node with the backup's password.
  httplib::Result login =
      b.Client(/*anonymous=*/true)
          ->Post("/api/v1/login", R"({"username":"ops","password":"0perator99"})",
                 "application/json");
  ASSERT_TRUE(login);
  EXPECT_EQ(login->status, 200) << login->body;
  // The restore is in the audit log.
  EXPECT_EQ(b.Call("GET", "/api/v1/audit?limit=1").second["entries"][0]["action"],
            "config.restore");
}

// A certificate and key made by the same code as the node's own, for another name.
struct Pem {
  std::string cert_path, key_path;
  std::string Body(const std::string& other_key = "") const {
    return json{{"key", test::ReadFile(other_key.empty() ? key_path : other_key)},
                {"certificate", test::ReadFile(cert_path)}}
        .dump();
  }
};
Pem MakeCertificate(test::TempDir& dir, const std::string& name) {
  Pem p{dir.Sub(name + "-cert.pem"), dir.Sub(name + "-key.pem")};
  Status st = admin::GenerateSelfSignedCert(p.cert_path, p.key_path, name, {});
  EXPECT_TRUE(st.ok()) << st.ToString();
  return p;
}

TEST(CertificateTest, AnUploadIsCheckedServedAtOnceAndAfterARestart) {
  test::TempDir dir;
  Node node(dir, "charlie");
  ASSERT_TRUE(node.ready()) << node.Log();
  EXPECT_EQ(node.Call("GET", "/api/v1/certificate").second["source"], "self-signed");

  Pem uploaded = MakeCertificate(dir, "uploaded.example.test");
  Pem other = MakeCertificate(dir, "other.example.test");
  auto [bad_status, bad] = node.Call("PUT", "/api/v1/certificate", uploaded.Body(other.key_path));
  EXPECT_EQ(bad_status, 400) << bad.dump();
  EXPECT_EQ(bad["error"]["field"], "key") << bad.dump();
  auto [junk_status, junk] =
      node.Call("PUT", "/api/v1/certificate", R"({"key":"x","certificate":"y"})");
  EXPECT_EQ(junk_status, 400) << junk.dump();
  EXPECT_EQ(node.Call("GET", "/api/v1/certificate").second["source"], "self-signed");

  auto [status, info] = node.Call("PUT", "/api/v1/certificate", uploaded.Body());
  ASSERT_EQ(status, 200) << info.dump();
  EXPECT_EQ(info["subject"], "CN=uploaded.example.test");

  // New connections get the upload at once; a client pinned to the old one refuses them.
  auto pinned_new = [&] {
    httplib::Result r = node.Client(false, uploaded.cert_path)->Get("/api/v1/certificate");
    return r && r->status == 200 && json::parse(r->body)["source"] == "uploaded";
  };
  EXPECT_TRUE(pinned_new()) << node.Log();
  EXPECT_FALSE(node.Client()->Get("/api/v1/certificate"));

  // And after a restart, from the store.
  ASSERT_EQ(node.Stop(), 0) << node.Log();
  node.Start();
  ASSERT_TRUE(node.ready()) << node.Log();
  EXPECT_TRUE(pinned_new()) << node.Log();
}

}  // namespace
}  // namespace pbx
