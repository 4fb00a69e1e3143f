#include "node/admin/first_boot.h"

#include <ctime>
#include <string_view>

#include <fmt/format.h>

#include "node/admin/credentials.h"
#include "node/core/log.h"
#include "replication/store/repos.h"

namespace pbx::admin {
namespace {

constexpr size_t kTokenSecretBytes = 32;
constexpr size_t kAdminPasswordLength = 12;
constexpr size_t kExtensionPasswordLength = 10;
constexpr const char* kAdminUser = "admin";
constexpr const char* kDemoNumbers[] = {"1001", "1002", "1003", "1004", "1005"};
// Concurrent provisioning (two threads, or a standby racing a promotion) shows up as a
// Conflict on commit; we re-read and try again a few times before giving up.
constexpr int kMaxAttempts = 3;

// A random extension password that passes the policy for `number`.
Result<std::string> ExtensionPassword(std::string_view number) {
  for (;;) {
    PBX_ASSIGN_OR_RETURN(std::string pw, GeneratePassword(kExtensionPasswordLength));
    if (!CheckPasswordStrength(pw, number)) return pw;
  }
}

Result<FirstBootReport> TryProvision(store::StateStore& store, const FirstBootOptions& options) {
  store::SettingsRepo settings_repo(store);
  store::UserRepo users(store);
  store::ExtensionRepo extensions(store);

  PBX_ASSIGN_OR_RETURN(store::SystemSettings settings, settings_repo.Get());
  FirstBootReport report;
  if (settings.first_boot_done) return report;

  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  store::WriteSet writes;

  if (settings.token_secret.empty()) {
    PBX_ASSIGN_OR_RETURN(settings.token_secret, RandomBytes(kTokenSecretBytes));
  }
  settings.first_boot_done = true;
  settings_repo.Put(settings, writes);

  Result<store::User> existing_admin = users.Get(kAdminUser);
  if (existing_admin.ok()) {
    // Half-provisioned by hand (or restored): keep the account and its password.
    PBX_LOG(kWarn, "admin", "first boot: user {} exists already, keeping it", kAdminUser);
  } else if (existing_admin.status().IsNotFound()) {
    std::string password = options.admin_password;
    if (password.empty()) {
      PBX_ASSIGN_OR_RETURN(password, GeneratePassword(kAdminPasswordLength));
    }
    PBX_ASSIGN_OR_RETURN(PasswordHash hash, HashPassword(password));
    store::User admin;
    admin.name = kAdminUser;
    admin.role = store::Role::kAdmin;
    admin.password_salt = std::move(hash.salt);
    admin.password_hash = std::move(hash.hash);
    admin.kdf_iterations = hash.iterations;
    admin.created_unix = now;
    users.Put(admin, /*create=*/true, writes);
    report.admin_user = kAdminUser;
    report.admin_password = std::move(password);
  } else {
    return existing_admin.status();
  }

  if (options.demo_extensions) {
    for (const char* number : kDemoNumbers) {
      Result<store::Extension> existing = extensions.Get(number);
      if (existing.ok()) continue;
      if (!existing.status().IsNotFound()) return existing.status();
      store::Extension ext;
      ext.number = number;
      ext.name = fmt::format("Demo {}", number);
      ext.realm = settings.sip_realm;
      PBX_ASSIGN_OR_RETURN(std::string password, ExtensionPassword(number));
      PBX_ASSIGN_OR_RETURN(ext.ha1_md5, DigestHa1Md5(number, ext.realm, password));
      PBX_ASSIGN_OR_RETURN(ext.ha1_sha256, DigestHa1Sha256(number, ext.realm, password));
      ext.created_unix = now;
      ext.updated_unix = now;
      extensions.Put(ext, /*create=*/true, writes);
      report.extensions.push_back({number, std::move(password)});
    }
  }

  PBX_ASSIGN_OR_RETURN(store::SeqNo seq, store.Commit(writes, store::Durability::kReplicated));
  report.provisioned = true;
  PBX_LOG(kInfo, "admin",
          "first boot: provisioned ({} admin account, {} demo extensions) at seq {}",
          report.admin_user.empty() ? "kept the" : "new", report.extensions.size(), seq);
  return report;
}

}  // namespace

Result<FirstBootReport> ProvisionFirstBoot(store::StateStore& store,
                                           const FirstBootOptions& options) {
  if (!options.admin_password.empty()) {
    if (auto problem = CheckPasswordStrength(options.admin_password, {})) {
      return Status::InvalidArgument("admin password " + *problem);
    }
  }
  Status last;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    Result<FirstBootReport> r = TryProvision(store, options);
    if (r.ok() || r.status().code() != Status::Code::kConflict) return r;
    last = r.status();
  }
  return last;
}

Result<std::string> MintToken(std::string_view secret, std::string_view user, store::Role role,
                              int64_t ttl_seconds) {
  return MintToken(secret, user, store::RoleName(role), ttl_seconds);
}

Result<std::string> MintTokenForUser(store::StateStore& store, const std::string& user,
                                     int64_t ttl_seconds) {
  PBX_ASSIGN_OR_RETURN(store::SystemSettings settings, store::SettingsRepo(store).Get());
  if (settings.token_secret.empty()) {
    return Status::Unavailable("the store is not provisioned yet (no token secret)");
  }
  PBX_ASSIGN_OR_RETURN(store::User account, store::UserRepo(store).Get(user));
  return MintToken(settings.token_secret, account.name, account.role, ttl_seconds);
}

}  // namespace pbx::admin
