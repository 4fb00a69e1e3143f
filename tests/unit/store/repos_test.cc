// Typed repositories: capnp round trips, key order, preconditions, and corrupt values.

#include "replication/store/repos.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/store/store_test_util.h"

namespace pbx::store {
namespace {

template <typename Factory>
class ReposTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = factory_.Open();
    ASSERT_NE(store_, nullptr);
  }

  Status Commit(const WriteSet& w) {
    auto seq = store_->Commit(w, Durability::kReplicated);
    return seq.ok() ? Status::Ok() : seq.status();
  }

  // Writes `bytes` straight under `key`, bypassing the repositories.
  void PutRaw(Table table, const std::string& key, const std::string& bytes) {
    WriteSet w;
    w.Put(table, key, bytes);
    ASSERT_TRUE(store_->Commit(w, Durability::kAsync).ok());
  }

  Factory factory_;
  std::unique_ptr<StateStore> store_;
};

using Factories = ::testing::Types<MemStoreFactory, RocksStoreFactory>;
class FactoryNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, MemStoreFactory> ? "Mem" : "Rocks";
  }
};
TYPED_TEST_SUITE(ReposTest, Factories, FactoryNames);

Extension FullExtension(const std::string& number) {
  Extension e;
  e.number = number;
  e.name = "Alice Ünicode";
  e.email = "alice@example.com";
  e.mobile = "+49 170 000";
  e.realm = "pbx.example";
  e.ha1_md5 = "0123456789abcdef0123456789abcdef";
  e.ha1_sha256 = std::string(64, 'f');
  e.dial_permission = "DialPlan2";
  e.outbound_cli = "0301234";
  e.language = "zh";
  e.moh = "jazz";
  e.voicemail = false;
  e.voicemail_pin = "9876";
  e.remote_registration = true;
  e.max_contacts = 3;
  e.web_login = true;
  e.registration_expiry = 3600;
  e.transport = "tls";
  e.dtmf_mode = "info";
  e.qualify_interval = 0;
  e.nat = false;
  e.trusted_addresses = {"192.0.2.0/24", "2001:db8::1"};
  e.codecs = {};  // explicitly none: must not come back as the default list
  e.recording = "both";
  e.created_unix = -5;
  e.updated_unix = 1'700'000'000'123;
  return e;
}

void ExpectSame(const Extension& a, const Extension& b) {
  EXPECT_EQ(a.number, b.number);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.email, b.email);
  EXPECT_EQ(a.mobile, b.mobile);
  EXPECT_EQ(a.realm, b.realm);
  EXPECT_EQ(a.ha1_md5, b.ha1_md5);
  EXPECT_EQ(a.ha1_sha256, b.ha1_sha256);
  EXPECT_EQ(a.dial_permission, b.dial_permission);
  EXPECT_EQ(a.outbound_cli, b.outbound_cli);
  EXPECT_EQ(a.language, b.language);
  EXPECT_EQ(a.moh, b.moh);
  EXPECT_EQ(a.voicemail, b.voicemail);
  EXPECT_EQ(a.voicemail_pin, b.voicemail_pin);
  EXPECT_EQ(a.remote_registration, b.remote_registration);
  EXPECT_EQ(a.max_contacts, b.max_contacts);
  EXPECT_EQ(a.web_login, b.web_login);
  EXPECT_EQ(a.registration_expiry, b.registration_expiry);
  EXPECT_EQ(a.transport, b.transport);
  EXPECT_EQ(a.dtmf_mode, b.dtmf_mode);
  EXPECT_EQ(a.qualify_interval, b.qualify_interval);
  EXPECT_EQ(a.nat, b.nat);
  EXPECT_EQ(a.trusted_addresses, b.trusted_addresses);
  EXPECT_EQ(a.codecs, b.codecs);
  EXPECT_EQ(a.recording, b.recording);
  EXPECT_EQ(a.created_unix, b.created_unix);
  EXPECT_EQ(a.updated_unix, b.updated_unix);
}

TYPED_TEST(ReposTest, ExtensionRoundTripsEveryField) {
  ExtensionRepo repo(*this->store_);
  Extension full = FullExtension("1001");
  Extension defaults;
  defaults.number = "1002";
  WriteSet w;
  repo.Put(full, /*create=*/true, w);
  repo.Put(defaults, /*create=*/true, w);
  ASSERT_TRUE(this->Commit(w).ok());

  auto got = repo.Get("1001");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectSame(*got, full);
  auto got_defaults = repo.Get("1002");
  ASSERT_TRUE(got_defaults.ok()) << got_defaults.status().ToString();
  ExpectSame(*got_defaults, defaults);

  auto missing = repo.Get("1003");
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
}

TYPED_TEST(ReposTest, ExtensionListIsInKeyOrder) {
  ExtensionRepo repo(*this->store_);
  WriteSet w;
  for (const char* n : {"200", "1000", "99", "10000000000", "201"}) {
    Extension e;
    e.number = n;
    repo.Put(e, true, w);
  }
  ASSERT_TRUE(this->Commit(w).ok());
  auto list = repo.List();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  std::vector<std::string> numbers;
  for (const auto& e : *list) numbers.push_back(e.number);
  // Keys sort byte-wise: string order, not numeric order.
  EXPECT_EQ(numbers, (std::vector<std::string>{"1000", "10000000000", "200", "201", "99"}));
}

TYPED_TEST(ReposTest, ExtensionCreateAndDeletePreconditions) {
  ExtensionRepo repo(*this->store_);
  Extension e;
  e.number = "300";
  WriteSet create;
  repo.Put(e, /*create=*/true, create);
  ASSERT_TRUE(this->Commit(create).ok());

  WriteSet again;
  repo.Put(e, /*create=*/true, again);
  Status s = this->Commit(again);
  EXPECT_EQ(s.code(), Status::Code::kConflict);

  e.name = "updated";
  WriteSet update;
  repo.Put(e, /*create=*/false, update);
  ASSERT_TRUE(this->Commit(update).ok());
  EXPECT_EQ(repo.Get("300")->name, "updated");

  WriteSet del;
  repo.Delete("300", del);
  ASSERT_TRUE(this->Commit(del).ok());
  EXPECT_TRUE(repo.Get("300").status().IsNotFound());
  WriteSet del_again;
  repo.Delete("300", del_again);
  EXPECT_EQ(this->Commit(del_again).code(), Status::Code::kConflict);
}

TYPED_TEST(ReposTest, ExtensionChangesDecode) {
  ExtensionRepo repo(*this->store_);
  std::vector<Change> changes;
  Subscription sub = this->store_->Subscribe(Table::kConfig, ExtensionRepo::Prefix(),
                                             [&](const Change& c) { changes.push_back(c); });
  WriteSet w;
  repo.Put(FullExtension("401"), true, w);
  SettingsRepo(*this->store_).Put(SystemSettings{}, w);  // not under the prefix
  ASSERT_TRUE(this->Commit(w).ok());
  WriteSet d;
  repo.Delete("401", d);
  ASSERT_TRUE(this->Commit(d).ok());

  ASSERT_EQ(changes.size(), 2u);
  auto decoded = ExtensionRepo::Decode(changes[0]);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ExpectSame(*decoded, FullExtension("401"));
  EXPECT_EQ(ExtensionRepo::Decode(changes[1]).status().code(), Status::Code::kNotFound);

  Change other{1, Table::kRuntime, "ext/1", std::string("x")};
  EXPECT_EQ(ExtensionRepo::Decode(other).status().code(), Status::Code::kInvalidArgument);
}

TYPED_TEST(ReposTest, UserRoundTrip) {
  UserRepo repo(*this->store_);
  User u;
  u.name = "admin";
  u.role = Role::kAdmin;
  u.password_salt = std::string("\0\x01\xfe\xff salt", 9);
  u.password_hash = std::string(32, '\0');
  u.kdf_iterations = 600000;
  u.created_unix = 42;
  User api;
  api.name = "robot";
  api.role = Role::kApi;
  WriteSet w;
  repo.Put(u, true, w);
  repo.Put(api, true, w);
  ASSERT_TRUE(this->Commit(w).ok());

  auto got = repo.Get("admin");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->name, u.name);
  EXPECT_EQ(got->role, Role::kAdmin);
  EXPECT_EQ(got->password_salt, u.password_salt);
  EXPECT_EQ(got->password_hash, u.password_hash);
  EXPECT_EQ(got->kdf_iterations, u.kdf_iterations);
  EXPECT_EQ(got->created_unix, u.created_unix);

  auto list = repo.List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "admin");
  EXPECT_EQ((*list)[1].role, Role::kApi);

  WriteSet del;
  repo.Delete("robot", del);
  ASSERT_TRUE(this->Commit(del).ok());
  EXPECT_TRUE(repo.Get("robot").status().IsNotFound());
}

TYPED_TEST(ReposTest, ForwardingDefaultsUntilWrittenThenRoundTrips) {
  ForwardingRepo repo(*this->store_);
  auto none = repo.Get("2002");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->extension, "2002");
  EXPECT_FALSE(none->dnd);
  EXPECT_EQ(none->dnd_status, 486u);
  EXPECT_EQ(none->follow_me_ring_seconds, 30u);

  Forwarding f;
  f.extension = "2002";
  f.dnd = true;
  f.dnd_status = 603;
  f.always = {true, "2003"};
  f.no_answer = {false, "90612345"};
  f.ring_seconds = 15;
  f.follow_me = true;
  f.follow_me_list = {{"2004", 10}, {"+3312345", 25}};
  f.updated_unix = 1700000000;
  WriteSet w;
  ForwardingRepo::Put(f, w);
  ASSERT_TRUE(this->Commit(w).ok());
  auto got = repo.Get("2002");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, f);
  auto all = repo.List();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);

  WriteSet del;
  ForwardingRepo::Delete("2002", del);
  ASSERT_TRUE(this->Commit(del).ok());
  EXPECT_EQ(*repo.Get("2002"), *none);
}

TYPED_TEST(ReposTest, SettingsDefaultUntilWritten) {
  SettingsRepo repo(*this->store_);
  auto defaults = repo.Get();
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->sip_realm, "pbx");
  EXPECT_TRUE(defaults->token_secret.empty());
  EXPECT_FALSE(defaults->first_boot_done);
  EXPECT_EQ(defaults->ban_max_retries, 5u);

  SystemSettings s;
  s.sip_realm = "office.example";
  s.token_secret = std::string("\0secret\xff", 8);
  s.first_boot_done = true;
  s.ban_time = 7200;
  s.ip_allow = {"192.0.2.0/24"};
  s.ip_deny = {"198.51.100.7", "2001:db8::/32"};
  WriteSet w;
  repo.Put(s, w);
  ASSERT_TRUE(this->Commit(w).ok());
  auto got = repo.Get();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->sip_realm, s.sip_realm);
  EXPECT_EQ(got->token_secret, s.token_secret);
  EXPECT_TRUE(got->first_boot_done);
  EXPECT_EQ(got->ban_time, 7200u);
  EXPECT_EQ(got->ip_allow, s.ip_allow);
  EXPECT_EQ(got->ip_deny, s.ip_deny);
}

TYPED_TEST(ReposTest, AuditListsNewestFirstAndIsBounded) {
  AuditRepo repo(*this->store_);
  auto empty = repo.List(10);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());

  // Two entries in the same millisecond get distinct keys.
  for (int64_t ms : {1700000000000, 1700000000500, 1700000000500, 1700000001000}) {
    AuditEntry a;
    a.unix_ms = ms;
    a.user = "admin";
    a.role = "admin";
    a.source = "127.0.0.1";
    a.action = "extension.create";
    a.target = std::to_string(ms);
    a.detail = "Name";
    WriteSet w;
    AuditRepo::Append(a, w);
    ASSERT_TRUE(this->Commit(w).ok());
  }
  auto all = repo.List(0);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0].unix_ms, 1700000001000);
  EXPECT_EQ((*all)[3].unix_ms, 1700000000000);
  EXPECT_EQ((*all)[0].source, "127.0.0.1");
  EXPECT_EQ((*all)[0].action, "extension.create");
  EXPECT_EQ((*all)[0].detail, "Name");
  auto two = repo.List(2);
  ASSERT_TRUE(two.ok());
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[1].unix_ms, 1700000000500);
}

TYPED_TEST(ReposTest, MetaRoundTrip) {
  MetaRepo repo(*this->store_);
  EXPECT_TRUE(repo.Get().status().IsNotFound());
  ClusterMeta m{"c0ffee", 7, 1700000000};
  WriteSet w;
  repo.Put(m, w);
  ASSERT_TRUE(this->Commit(w).ok());
  auto got = repo.Get();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->cluster_id, "c0ffee");
  EXPECT_EQ(got->epoch, 7u);
  EXPECT_EQ(got->created_unix, 1700000000);
}

// Bytes that are not a record: odd sizes, garbage segment tables, truncated messages,
// and a valid message of another record type.
std::vector<std::string> CorruptValues() {
  SystemSettings settings;
  WriteSet w;
  auto mem = NewMemStateStore();
  SettingsRepo(*mem).Put(settings, w);
  std::string other_record = w.ops()[0].value;

  Extension e;
  e.number = "500";
  e.name = std::string(100, 'n');
  WriteSet w2;
  ExtensionRepo(*mem).Put(e, false, w2);
  std::string valid = w2.ops()[0].value;

  return {
      "garbage",                                // 7 bytes
      std::string("this is not capnp!!!!!!!"),  // 24 bytes, huge segment count
      std::string(16, '\xff'),                  // all ones
      std::string(8, '\0'),                     // one empty segment, no root
      valid.substr(0, valid.size() - 64),       // truncated
      other_record,                             // wrong record type: number mismatch
  };
}

TYPED_TEST(ReposTest, CorruptExtensionIsCorruptionNamingTheKey) {
  ExtensionRepo repo(*this->store_);
  for (const std::string& bytes : CorruptValues()) {
    SCOPED_TRACE(testing::PrintToString(bytes));
    this->PutRaw(Table::kConfig, "ext/500", bytes);
    auto got = repo.Get("500");
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), Status::Code::kCorruption);
    EXPECT_NE(got.status().message().find("config/ext/500"), std::string::npos)
        << got.status().message();
    auto list = repo.List();
    ASSERT_FALSE(list.ok());
    EXPECT_EQ(list.status().code(), Status::Code::kCorruption);
    EXPECT_NE(list.status().message().find("config/ext/500"), std::string::npos);
  }
}

TYPED_TEST(ReposTest, CorruptOtherRecordsAreCorruption) {
  for (const std::string& bytes : CorruptValues()) {
    SCOPED_TRACE(testing::PrintToString(bytes));
    this->PutRaw(Table::kConfig, "user/bob", bytes);
    this->PutRaw(Table::kConfig, "settings/system", bytes);
    this->PutRaw(Table::kMeta, "cluster", bytes);

    auto user = UserRepo(*this->store_).Get("bob");
    ASSERT_FALSE(user.ok());
    EXPECT_EQ(user.status().code(), Status::Code::kCorruption);
    EXPECT_NE(user.status().message().find("config/user/bob"), std::string::npos);
    EXPECT_EQ(UserRepo(*this->store_).List().status().code(), Status::Code::kCorruption);

    // Settings and meta have no key inside the record: some bytes still read as a (weird)
    // record of that type. Whatever happens must not crash, and a failure must name the key.
    auto settings = SettingsRepo(*this->store_).Get();
    if (!settings.ok()) {
      EXPECT_EQ(settings.status().code(), Status::Code::kCorruption);
      EXPECT_NE(settings.status().message().find("config/settings/system"), std::string::npos);
    }
    auto meta = MetaRepo(*this->store_).Get();
    if (!meta.ok()) {
      EXPECT_EQ(meta.status().code(), Status::Code::kCorruption);
      EXPECT_NE(meta.status().message().find("meta/cluster"), std::string::npos);
    }
  }
  this->PutRaw(Table::kConfig, "settings/system", "garbage");
  EXPECT_EQ(SettingsRepo(*this->store_).Get().status().code(), Status::Code::kCorruption);
  this->PutRaw(Table::kMeta, "cluster", "garbage");
  EXPECT_EQ(MetaRepo(*this->store_).Get().status().code(), Status::Code::kCorruption);
}

TEST(RoleTest, NamesRoundTrip) {
  for (Role role : {Role::kAdmin, Role::kOperator, Role::kApi, Role::kExtension}) {
    EXPECT_EQ(ParseRole(RoleName(role)), role);
  }
  EXPECT_EQ(RoleName(Role::kApi), "api");
  EXPECT_EQ(RoleName(Role::kExtension), "extension");
  EXPECT_FALSE(ParseRole("root").has_value());
  EXPECT_FALSE(ParseRole("Admin").has_value());
  EXPECT_FALSE(ParseRole("").has_value());
}

}  // namespace
}  // namespace pbx::store
