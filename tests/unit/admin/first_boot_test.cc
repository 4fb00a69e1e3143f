#include "node/admin/first_boot.h"

#include <gtest/gtest.h>

#include "node/admin/credentials.h"
#include "replication/store/repos.h"

namespace pbx::admin {
namespace {

TEST(FirstBootTest, ProvisionsOnceWithGeneratedPasswords) {
  std::unique_ptr<store::StateStore> db = store::NewMemStateStore();
  FirstBootOptions options;
  options.demo_extensions = true;
  Result<FirstBootReport> report = ProvisionFirstBoot(*db, options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->provisioned);
  EXPECT_EQ(report->admin_user, "admin");
  EXPECT_EQ(report->admin_password.size(), 12u);
  EXPECT_FALSE(CheckPasswordStrength(report->admin_password, ""));
  ASSERT_EQ(report->extensions.size(), 5u);

  Result<store::SystemSettings> settings = store::SettingsRepo(*db).Get();
  ASSERT_TRUE(settings.ok());
  EXPECT_TRUE(settings->first_boot_done);
  EXPECT_EQ(settings->token_secret.size(), 32u);

  Result<store::User> admin = store::UserRepo(*db).Get("admin");
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(admin->role, store::Role::kAdmin);
  EXPECT_GE(admin->kdf_iterations, 100'000u);
  EXPECT_TRUE(VerifyPassword(report->admin_password,
                             {admin->password_salt, admin->password_hash, admin->kdf_iterations}));
  EXPECT_FALSE(
      VerifyPassword("wrong", {admin->password_salt, admin->password_hash, admin->kdf_iterations}));

  Result<std::vector<store::Extension>> exts = store::ExtensionRepo(*db).List();
  ASSERT_TRUE(exts.ok());
  ASSERT_EQ(exts->size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    const store::Extension& ext = (*exts)[i];
    const auto& cred = report->extensions[i];
    EXPECT_EQ(ext.number, std::to_string(1001 + i));
    EXPECT_EQ(cred.number, ext.number);
    EXPECT_EQ(ext.name, "Demo " + ext.number);
    EXPECT_EQ(cred.password.size(), 10u);
    EXPECT_FALSE(CheckPasswordStrength(cred.password, ext.number));
    EXPECT_EQ(ext.realm, settings->sip_realm);
    EXPECT_EQ(ext.ha1_md5, *DigestHa1Md5(ext.number, ext.realm, cred.password));
    EXPECT_EQ(ext.ha1_sha256, *DigestHa1Sha256(ext.number, ext.realm, cred.password));
  }

  // Second boot: nothing to do, nothing changes.
  const store::SeqNo seq = db->LatestSeq();
  Result<FirstBootReport> again = ProvisionFirstBoot(*db, options);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->provisioned);
  EXPECT_TRUE(again->admin_password.empty());
  EXPECT_TRUE(again->extensions.empty());
  EXPECT_EQ(db->LatestSeq(), seq);
  Result<store::SystemSettings> settings2 = store::SettingsRepo(*db).Get();
  ASSERT_TRUE(settings2.ok());
  EXPECT_EQ(settings2->token_secret, settings->token_secret);
}

TEST(FirstBootTest, IsOneCommit) {
  std::unique_ptr<store::StateStore> db = store::NewMemStateStore();
  std::vector<store::Change> changes;
  store::Subscription sub = db->Subscribe(store::Table::kConfig, "",
                                          [&](const store::Change& c) { changes.push_back(c); });
  FirstBootOptions options;
  options.demo_extensions = true;
  ASSERT_TRUE(ProvisionFirstBoot(*db, options).ok());
  ASSERT_EQ(changes.size(), 7u);  // settings, admin, 5 extensions
  // One batch: every write carries a sequence number of the same commit, and the DB's
  // latest sequence number is the batch's last.
  EXPECT_EQ(db->LatestSeq(), changes.back().seq);
  EXPECT_EQ(changes.back().seq - changes.front().seq, changes.size() - 1);
}

TEST(FirstBootTest, GivenAdminPasswordAndNoDemo) {
  std::unique_ptr<store::StateStore> db = store::NewMemStateStore();
  FirstBootOptions options;
  options.admin_password = "Adm1nistrator";
  Result<FirstBootReport> report = ProvisionFirstBoot(*db, options);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->admin_password, "Adm1nistrator");
  EXPECT_TRUE(report->extensions.empty());
  Result<std::vector<store::Extension>> exts = store::ExtensionRepo(*db).List();
  ASSERT_TRUE(exts.ok());
  EXPECT_TRUE(exts->empty());
  Result<store::User> admin = store::UserRepo(*db).Get("admin");
  ASSERT_TRUE(admin.ok());
  EXPECT_TRUE(VerifyPassword("Adm1nistrator",
                             {admin->password_salt, admin->password_hash, admin->kdf_iterations}));
}

TEST(FirstBootTest, WeakAdminPasswordChangesNothing) {
  std::unique_ptr<store::StateStore> db = store::NewMemStateStore();
  FirstBootOptions options;
  options.admin_password = "admin";
  Result<FirstBootReport> report = ProvisionFirstBoot(*db, options);
  EXPECT_EQ(report.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(db->LatestSeq(), 0u);
  EXPECT_TRUE(store::UserRepo(*db).Get("admin").status().IsNotFound());
}

TEST(FirstBootTest, KeepsAnExistingAdminAccount) {
  std::unique_ptr<store::StateStore> db = store::NewMemStateStore();
  Result<PasswordHash> hash = HashPassword("Pre3xisting", 1000);
  ASSERT_TRUE(hash.ok());
  store::User admin;
  admin.name = "admin";
  admin.role = store::Role::kAdmin;
  admin.password_salt = hash->salt;
  admin.password_hash = hash->hash;
  admin.kdf_iterations = hash->iterations;
  store::WriteSet writes;
  store::UserRepo(*db).Put(admin, true, writes);
  ASSERT_TRUE(db->Commit(writes, store::Durability::kReplicated).ok());

  Result<FirstBootReport> report = ProvisionFirstBoot(*db, {});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->provisioned);
  EXPECT_TRUE(report->admin_user.empty());
  EXPECT_TRUE(report->admin_password.empty());
  Result<store::User> kept = store::UserRepo(*db).Get("admin");
  ASSERT_TRUE(kept.ok());
  EXPECT_TRUE(VerifyPassword("Pre3xisting",
                             {kept->password_salt, kept->password_hash, kept->kdf_iterations}));
}

TEST(FirstBootTest, MintTokenForUser) {
  std::unique_ptr<store::StateStore> db = store::NewMemStateStore();
  EXPECT_EQ(MintTokenForUser(*db, "admin", 60).status().code(), Status::Code::kUnavailable);
  ASSERT_TRUE(ProvisionFirstBoot(*db, {}).ok());
  Result<std::string> token = MintTokenForUser(*db, "admin", 60);
  ASSERT_TRUE(token.ok());
  Result<store::SystemSettings> settings = store::SettingsRepo(*db).Get();
  ASSERT_TRUE(settings.ok());
  Result<TokenClaims> claims = VerifyToken(settings->token_secret, *token);
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->user, "admin");
  EXPECT_EQ(claims->role, "admin");
  EXPECT_TRUE(MintTokenForUser(*db, "nobody", 60).status().IsNotFound());

  Result<std::string> typed = MintToken(settings->token_secret, "ops", store::Role::kOperator, 60);
  ASSERT_TRUE(typed.ok());
  EXPECT_EQ(VerifyToken(settings->token_secret, *typed)->role, "operator");
}

}  // namespace
}  // namespace pbx::admin
