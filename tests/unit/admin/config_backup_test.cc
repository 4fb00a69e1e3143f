// store::ExportConfig and store::AddConfigReplace (replication/store/repos.h), what the
// backup API is built on: every record is checked before anything is written, the token
// secret never leaves the node and is never replaced.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "replication/store/repos.h"
#include "replication/store/state_store.h"

namespace pbx::store {
namespace {

class ConfigBackupTest : public testing::Test {
 protected:
  void SetUp() override {
    WriteSet w;
    SystemSettings s;
    s.sip_realm = "source";
    s.token_secret = "source-secret";
    s.first_boot_done = true;
    SettingsRepo(*source_).Put(s, w);
    Extension e;
    e.number = "2001";
    e.name = "Alice";
    ExtensionRepo(*source_).Put(e, /*create=*/true, w);
    User u;
    u.name = "ops";
    UserRepo(*source_).Put(u, /*create=*/true, w);
    ASSERT_TRUE(source_->Commit(w, Durability::kReplicated).ok());

    WriteSet t;
    SystemSettings mine;
    mine.sip_realm = "target";
    mine.token_secret = "target-secret";
    mine.first_boot_done = true;
    SettingsRepo(*target_).Put(mine, t);
    Extension old;
    old.number = "3001";
    old.name = "Gone after the restore";
    ExtensionRepo(*target_).Put(old, /*create=*/true, t);
    ASSERT_TRUE(target_->Commit(t, Durability::kReplicated).ok());
  }

  std::vector<std::string> Numbers(StateStore& store) {
    std::vector<std::string> out;
    Result<std::vector<Extension>> all = ExtensionRepo(store).List();
    for (const Extension& e : *all) out.push_back(e.number);
    return out;
  }

  std::unique_ptr<StateStore> source_ = NewMemStateStore();
  std::unique_ptr<StateStore> target_ = NewMemStateStore();
};

TEST_F(ConfigBackupTest, ExportCarriesNoTokenSecretAndRestoreReplacesTheConfiguration) {
  Result<std::vector<ConfigRecord>> records = ExportConfig(*source_);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  ASSERT_EQ(records->size(), 3u);
  for (const ConfigRecord& r : *records) {
    EXPECT_EQ(r.value.find("source-secret"), std::string::npos) << r.key;
  }

  WriteSet w;
  ASSERT_TRUE(AddConfigReplace(*target_, *records, w).ok());
  ASSERT_TRUE(target_->Commit(w, Durability::kReplicated).ok());
  EXPECT_EQ(Numbers(*target_), std::vector<std::string>{"2001"});
  EXPECT_TRUE(UserRepo(*target_).Get("ops").ok());
  SystemSettings s = *SettingsRepo(*target_).Get();
  EXPECT_EQ(s.sip_realm, "source");
  EXPECT_EQ(s.token_secret, "target-secret");  // sessions of this node stay valid
  EXPECT_TRUE(s.first_boot_done);
}

TEST_F(ConfigBackupTest, ABadRecordIsRefusedBeforeAnythingIsWritten) {
  std::vector<ConfigRecord> good = *ExportConfig(*source_);
  auto refused = [&](std::vector<ConfigRecord> records, const std::string& why) {
    WriteSet w;
    Status st = AddConfigReplace(*target_, records, w);
    EXPECT_EQ(st.code(), Status::Code::kInvalidArgument) << why << ": " << st.ToString();
    EXPECT_TRUE(w.empty()) << why;
  };
  std::vector<ConfigRecord> bad = good;
  bad[0].value = "not a record";
  refused(bad, "not a whole number of words");
  bad = good;
  bad[0].value = std::string(16, '\xff');
  refused(bad, "pointers out of bounds");
  bad = good;
  bad.push_back(good[0]);
  refused(bad, "a key twice");
  bad.clear();
  for (const ConfigRecord& r : good) {
    if (r.key.starts_with("settings/")) continue;
    bad.push_back(r);
  }
  refused(bad, "no settings");
  bad = good;
  for (ConfigRecord& r : bad) {
    if (r.key.starts_with("ext/")) r.key = "ext/9999";  // holds number 2001
  }
  refused(bad, "key and record disagree");
  bad = good;
  // A later feature's record: any well-formed message (one segment of one word, a null root).
  bad.push_back({"trunk/x", std::string("\0\0\0\0\1\0\0\0\0\0\0\0\0\0\0\0", 16)});
  WriteSet w;
  EXPECT_TRUE(AddConfigReplace(*target_, bad, w).ok());
  EXPECT_EQ(Numbers(*target_), std::vector<std::string>{"3001"});  // nothing committed here
}

}  // namespace
}  // namespace pbx::store
