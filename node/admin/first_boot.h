#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "node/core/status.h"
#include "replication/store/repos.h"
#include "replication/store/state_store.h"

// First-boot provisioning of the replicated store: the token secret, the "admin" account and,
// optionally, demo extensions. Called by pbxd on the active node at start-up.
namespace pbx::admin {

struct FirstBootOptions {
  // The admin password; empty: generate a random 12-character one. A given password must
  // pass CheckPasswordStrength (credentials.h).
  std::string admin_password;
  // Also create extensions 1001-1005 ("Demo 1001", ...) with random 10-character passwords.
  bool demo_extensions = false;
};

struct FirstBootReport {
  struct ExtensionCredential {
    std::string number;
    std::string password;  // in clear: pbxd prints it once, it is stored nowhere
  };
  bool provisioned = false;    // false: the store was already provisioned, nothing changed
  std::string admin_user;      // "admin"; empty (as is the password) when an existing
  std::string admin_password;  //   admin account was kept. In clear: print once.
  std::vector<ExtensionCredential> extensions;  // the demo extensions created
};

// If SystemSettings::first_boot_done is false, writes in ONE atomic, replicated commit: a
// 32-byte token secret (kept if one exists), the "admin" user (role admin; an existing admin
// account is kept with its password), the demo extensions that do not exist yet (HA1 under
// SystemSettings::sip_realm), and first_boot_done = true. A crash therefore leaves the store
// either fully provisioned or untouched. Later calls return a report with provisioned=false.
// Thread-safe; concurrent calls provision once (the loser sees provisioned=false).
// InvalidArgument if options.admin_password is weak; store errors are passed through.
Result<FirstBootReport> ProvisionFirstBoot(store::StateStore& store,
                                           const FirstBootOptions& options);

// MintToken (credentials.h) with a typed role.
Result<std::string> MintToken(std::string_view secret, std::string_view user, store::Role role,
                              int64_t ttl_seconds);

// A bearer token for the existing account `user` with its current role, signed with the
// store's token secret. pbxd writes one for "admin" to RUN_DIR/admin.token for pbxctl.
// NotFound if the user does not exist; Unavailable if the store is not provisioned yet.
Result<std::string> MintTokenForUser(store::StateStore& store, const std::string& user,
                                     int64_t ttl_seconds);

}  // namespace pbx::admin
