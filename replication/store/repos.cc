// Typed repositories: plain structs <-> Cap'n Proto records (replication/schema/records.capnp).
//
// Keys (all in one table per record type, so a prefix scan lists a type):
//   config "ext/<number>"      Extension
//   config "user/<name>"       User
//   config "settings/system"   SystemSettings
//   meta   "cluster"           ClusterMeta
//   runtime "reg/<number>/<id>" Registration
//   runtime "ban/<ip>"          Ban
//   config "trunk/<name>"       Trunk
//   runtime "trunkreg/<name>"   TrunkState
//   config "fwd/<number>"       Forwarding
//   config "route/<kind>/<name>" the dial plan (DialPlanRepo); config "settings/routing"
//   records "audit/<20-digit (2^64-1 - unix_ms)>-<8 hex random>"   AuditEntry (newest first)
// Keys sort byte-wise, so List() returns records in string order of the key: extension
// "1000" comes before "200". That is the order the web admin and the CLI show.
//
// Decoding is the trust boundary for bytes read from disk or the standby's stream: a value
// that does not decode yields Corruption naming table/key, never a crash.

#include "replication/store/repos.h"

#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <set>
#include <string_view>
#include <utility>

#include <capnp/any.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <fmt/format.h>
#include <kj/array.h>

#include "node/core/capnp_codec.h"
#include "replication/schema/records.capnp.h"

namespace pbx::store {
namespace {

constexpr std::string_view kExtPrefix = "ext/";
constexpr std::string_view kUserPrefix = "user/";
constexpr std::string_view kSettingsKey = "settings/system";
constexpr std::string_view kClusterKey = "cluster";
constexpr std::string_view kRegPrefix = "reg/";
constexpr std::string_view kBanPrefix = "ban/";
constexpr std::string_view kAuditPrefix = "audit/";

// Records are a few hundred bytes; this bounds the work a hostile value can cause.
constexpr uint64_t kTraversalLimitWords = 1 << 20;  // 8 MiB

std::string KeyName(Table table, std::string_view key) {
  std::string s(TableName(table));
  s += '/';
  s += key;
  return s;
}

std::string ToString(capnp::Text::Reader text) { return std::string(text.cStr(), text.size()); }
std::string ToString(capnp::Data::Reader data) {
  return std::string(reinterpret_cast<const char*>(data.begin()), data.size());
}
capnp::Text::Reader ToText(const std::string& s) { return capnp::Text::Reader(s.data(), s.size()); }
capnp::Data::Reader ToData(const std::string& s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

std::string Serialize(capnp::MallocMessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  kj::ArrayPtr<const kj::byte> bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// Reads `bytes` as a message with root `T` and hands the reader to `fn`, which converts it
// to a plain struct. What capnp_codec refuses becomes Corruption naming table/key.
template <typename T, typename Fn>
auto DecodeRecord(Table table, std::string_view key, std::string_view bytes, Fn&& fn)
    -> Result<decltype(fn(std::declval<typename T::Reader>()))> {
  using Out = decltype(fn(std::declval<typename T::Reader>()));
  capnp_codec::DecodeLimits limits;
  limits.traversal_words = kTraversalLimitWords;
  Result<Out> out = capnp_codec::Decode<T>(
      "value", bytes, limits, [&](typename T::Reader r) -> Result<Out> { return fn(r); });
  if (!out.ok()) return Status::Corruption(KeyName(table, key) + ": " + out.status().message());
  return out;
}

void SetStrings(capnp::List<capnp::Text>::Builder list, const std::vector<std::string>& v) {
  for (size_t i = 0; i < v.size(); ++i) list.set(static_cast<unsigned>(i), ToText(v[i]));
}
std::vector<std::string> GetStrings(capnp::List<capnp::Text>::Reader list) {
  std::vector<std::string> v;
  v.reserve(list.size());
  for (auto text : list) v.push_back(ToString(text));
  return v;
}

// --- Extension ---

std::string EncodeExtension(const Extension& e) {
  capnp::MallocMessageBuilder message;
  auto b = message.initRoot<schema::Extension>();
  b.setNumber(ToText(e.number));
  b.setName(ToText(e.name));
  b.setEmail(ToText(e.email));
  b.setMobile(ToText(e.mobile));
  b.setRealm(ToText(e.realm));
  b.setHa1Md5(ToText(e.ha1_md5));
  b.setHa1Sha256(ToText(e.ha1_sha256));
  b.setDialPermission(ToText(e.dial_permission));
  b.setOutboundCli(ToText(e.outbound_cli));
  b.setLanguage(ToText(e.language));
  b.setMoh(ToText(e.moh));
  b.setVoicemail(e.voicemail);
  b.setVoicemailPin(ToText(e.voicemail_pin));
  b.setRemoteRegistration(e.remote_registration);
  b.setMaxContacts(e.max_contacts);
  b.setWebLogin(e.web_login);
  b.setRegistrationExpiry(e.registration_expiry);
  b.setTransport(ToText(e.transport));
  b.setDtmfMode(ToText(e.dtmf_mode));
  b.setQualifyInterval(e.qualify_interval);
  b.setNat(e.nat);
  SetStrings(b.initTrustedAddresses(static_cast<unsigned>(e.trusted_addresses.size())),
             e.trusted_addresses);
  SetStrings(b.initCodecs(static_cast<unsigned>(e.codecs.size())), e.codecs);
  b.setRecording(ToText(e.recording));
  b.setCreatedUnix(e.created_unix);
  b.setUpdatedUnix(e.updated_unix);
  b.setCallWaiting(e.call_waiting);
  return Serialize(message);
}

Result<Extension> DecodeExtension(std::string_view key, std::string_view bytes) {
  PBX_ASSIGN_OR_RETURN(Extension e,
                       DecodeRecord<schema::Extension>(Table::kConfig, key, bytes, [](auto r) {
                         Extension x;
                         x.number = ToString(r.getNumber());
                         x.name = ToString(r.getName());
                         x.email = ToString(r.getEmail());
                         x.mobile = ToString(r.getMobile());
                         x.realm = ToString(r.getRealm());
                         x.ha1_md5 = ToString(r.getHa1Md5());
                         x.ha1_sha256 = ToString(r.getHa1Sha256());
                         x.dial_permission = ToString(r.getDialPermission());
                         x.outbound_cli = ToString(r.getOutboundCli());
                         x.language = ToString(r.getLanguage());
                         x.moh = ToString(r.getMoh());
                         x.voicemail = r.getVoicemail();
                         x.voicemail_pin = ToString(r.getVoicemailPin());
                         x.remote_registration = r.getRemoteRegistration();
                         x.max_contacts = r.getMaxContacts();
                         x.web_login = r.getWebLogin();
                         x.registration_expiry = r.getRegistrationExpiry();
                         x.transport = ToString(r.getTransport());
                         x.dtmf_mode = ToString(r.getDtmfMode());
                         x.qualify_interval = r.getQualifyInterval();
                         x.nat = r.getNat();
                         x.trusted_addresses = GetStrings(r.getTrustedAddresses());
                         x.codecs = GetStrings(r.getCodecs());
                         x.recording = ToString(r.getRecording());
                         x.created_unix = r.getCreatedUnix();
                         x.updated_unix = r.getUpdatedUnix();
                         x.call_waiting = r.getCallWaiting();
                         return x;
                       }));
  if (std::string_view(key).substr(kExtPrefix.size()) != e.number) {
    return Status::Corruption(KeyName(Table::kConfig, key) + ": record holds number '" + e.number +
                              "'");
  }
  return e;
}

std::string ExtKey(std::string_view number) {
  std::string key(kExtPrefix);
  key += number;
  return key;
}

// --- User ---

std::optional<schema::Role> ToSchema(Role role) {
  switch (role) {
    case Role::kAdmin:
      return schema::Role::ADMIN;
    case Role::kOperator:
      return schema::Role::OPERATOR;
    case Role::kApi:
      return schema::Role::API;
    case Role::kExtension:
      return schema::Role::EXTENSION;
  }
  return std::nullopt;
}

std::optional<Role> FromSchema(schema::Role role) {
  switch (role) {
    case schema::Role::ADMIN:
      return Role::kAdmin;
    case schema::Role::OPERATOR:
      return Role::kOperator;
    case schema::Role::API:
      return Role::kApi;
    case schema::Role::EXTENSION:
      return Role::kExtension;
  }
  return std::nullopt;  // an enumerant from a newer schema
}

std::string EncodeUser(const User& u) {
  capnp::MallocMessageBuilder message;
  auto b = message.initRoot<schema::User>();
  b.setName(ToText(u.name));
  // Role is a closed enum of ours; an out-of-range value would be a bug in the caller.
  b.setRole(ToSchema(u.role).value_or(schema::Role::OPERATOR));
  b.setPasswordSalt(ToData(u.password_salt));
  b.setPasswordHash(ToData(u.password_hash));
  b.setKdfIterations(u.kdf_iterations);
  b.setCreatedUnix(u.created_unix);
  return Serialize(message);
}

Result<User> DecodeUser(std::string_view key, std::string_view bytes) {
  PBX_ASSIGN_OR_RETURN(auto decoded,
                       DecodeRecord<schema::User>(Table::kConfig, key, bytes, [](auto r) {
                         User u;
                         u.name = ToString(r.getName());
                         std::optional<Role> role = FromSchema(r.getRole());
                         u.role = role.value_or(Role::kOperator);
                         u.password_salt = ToString(r.getPasswordSalt());
                         u.password_hash = ToString(r.getPasswordHash());
                         u.kdf_iterations = r.getKdfIterations();
                         u.created_unix = r.getCreatedUnix();
                         return std::make_pair(std::move(u), role.has_value());
                       }));
  auto& [user, role_known] = decoded;
  if (!role_known) {
    return Status::Corruption(KeyName(Table::kConfig, key) + ": unknown role");
  }
  if (std::string_view(key).substr(kUserPrefix.size()) != user.name) {
    return Status::Corruption(KeyName(Table::kConfig, key) + ": record holds name '" + user.name +
                              "'");
  }
  return std::move(user);
}

std::string UserKey(std::string_view name) {
  std::string key(kUserPrefix);
  key += name;
  return key;
}

// --- SystemSettings ---

std::string EncodeSettings(const SystemSettings& s) {
  capnp::MallocMessageBuilder message;
  auto b = message.initRoot<schema::SystemSettings>();
  b.setSipRealm(ToText(s.sip_realm));
  b.setTokenSecret(ToData(s.token_secret));
  b.setFirstBootDone(s.first_boot_done);
  b.setRegExpiryMin(s.reg_expiry_min);
  b.setRegExpiryMax(s.reg_expiry_max);
  b.setBanEnabled(s.ban_enabled);
  b.setBanMaxRetries(s.ban_max_retries);
  b.setBanFindTime(s.ban_find_time);
  b.setBanTime(s.ban_time);
  b.setBanTrustPrivate(s.ban_trust_private);
  SetStrings(b.initIpAllow(static_cast<unsigned>(s.ip_allow.size())), s.ip_allow);
  SetStrings(b.initIpDeny(static_cast<unsigned>(s.ip_deny.size())), s.ip_deny);
  b.setRingTimeout(s.ring_timeout);
  b.setMaxCallDuration(s.max_call_duration);
  b.setNoRtpTimeout(s.no_rtp_timeout);
  b.setSessionTimers(s.session_timers);
  b.setSessionExpires(s.session_expires);
  b.setSessionMinSe(s.session_min_se);
  return Serialize(message);
}

Result<SystemSettings> DecodeSettings(std::string_view bytes) {
  return DecodeRecord<schema::SystemSettings>(Table::kConfig, kSettingsKey, bytes, [](auto r) {
    SystemSettings s;
    s.sip_realm = ToString(r.getSipRealm());
    s.token_secret = ToString(r.getTokenSecret());
    s.first_boot_done = r.getFirstBootDone();
    s.reg_expiry_min = r.getRegExpiryMin();
    s.reg_expiry_max = r.getRegExpiryMax();
    s.ban_enabled = r.getBanEnabled();
    s.ban_max_retries = r.getBanMaxRetries();
    s.ban_find_time = r.getBanFindTime();
    s.ban_time = r.getBanTime();
    s.ban_trust_private = r.getBanTrustPrivate();
    s.ip_allow = GetStrings(r.getIpAllow());
    s.ip_deny = GetStrings(r.getIpDeny());
    s.ring_timeout = r.getRingTimeout();
    s.max_call_duration = r.getMaxCallDuration();
    s.no_rtp_timeout = r.getNoRtpTimeout();
    s.session_timers = r.getSessionTimers();
    s.session_expires = r.getSessionExpires();
    s.session_min_se = r.getSessionMinSe();
    return s;
  });
}

// --- ClusterMeta ---

std::string EncodeMeta(const ClusterMeta& m) {
  capnp::MallocMessageBuilder message;
  auto b = message.initRoot<schema::ClusterMeta>();
  b.setClusterId(ToText(m.cluster_id));
  b.setEpoch(m.epoch);
  b.setCreatedUnix(m.created_unix);
  return Serialize(message);
}

Result<ClusterMeta> DecodeMeta(std::string_view bytes) {
  return DecodeRecord<schema::ClusterMeta>(Table::kMeta, kClusterKey, bytes, [](auto r) {
    ClusterMeta m;
    m.cluster_id = ToString(r.getClusterId());
    m.epoch = r.getEpoch();
    m.created_unix = r.getCreatedUnix();
    return m;
  });
}

// --- Registration ---

Result<Registration> DecodeRegistration(std::string_view key, std::string_view bytes) {
  PBX_ASSIGN_OR_RETURN(Registration g,
                       DecodeRecord<schema::Registration>(Table::kRuntime, key, bytes, [](auto r) {
                         Registration x;
                         x.number = ToString(r.getNumber());
                         x.binding_id = ToString(r.getBindingId());
                         x.contact = ToString(r.getContact());
                         x.received_host = ToString(r.getReceivedHost());
                         x.received_port = r.getReceivedPort();
                         x.transport = ToString(r.getTransport());
                         x.path = GetStrings(r.getPath());
                         x.expires_unix = r.getExpiresUnix();
                         x.registered_unix = r.getRegisteredUnix();
                         x.user_agent = ToString(r.getUserAgent());
                         x.call_id = ToString(r.getCallId());
                         x.cseq = r.getCseq();
                         x.qualify_ok = r.getQualifyOk();
                         x.qualify_rtt_ms = r.getQualifyRttMs();
                         x.qualify_unix = r.getQualifyUnix();
                         x.instance = ToString(r.getInstance());
                         return x;
                       }));
  if (key != RegistrationRepo::Key(g.number, g.binding_id)) {
    return Status::Corruption(KeyName(Table::kRuntime, key) + ": record holds " + g.number + "/" +
                              g.binding_id);
  }
  return g;
}

// --- Ban ---

std::string EncodeBan(const Ban& b) {
  capnp::MallocMessageBuilder message;
  auto w = message.initRoot<schema::Ban>();
  w.setIp(ToText(b.ip));
  w.setReason(ToText(b.reason));
  w.setBannedUnix(b.banned_unix);
  w.setUntilUnix(b.until_unix);
  w.setFailures(b.failures);
  return Serialize(message);
}

Result<Ban> DecodeBan(std::string_view key, std::string_view bytes) {
  PBX_ASSIGN_OR_RETURN(Ban b, DecodeRecord<schema::Ban>(Table::kRuntime, key, bytes, [](auto r) {
                         Ban x;
                         x.ip = ToString(r.getIp());
                         x.reason = ToString(r.getReason());
                         x.banned_unix = r.getBannedUnix();
                         x.until_unix = r.getUntilUnix();
                         x.failures = r.getFailures();
                         return x;
                       }));
  if (key != BanRepo::Key(b.ip)) {
    return Status::Corruption(KeyName(Table::kRuntime, key) + ": record holds ip '" + b.ip + "'");
  }
  return b;
}

// --- AuditEntry ---

std::string EncodeAudit(const AuditEntry& a) {
  capnp::MallocMessageBuilder message;
  auto b = message.initRoot<schema::AuditEntry>();
  b.setUnixMs(a.unix_ms);
  b.setUser(ToText(a.user));
  b.setRole(ToText(a.role));
  b.setSource(ToText(a.source));
  b.setAction(ToText(a.action));
  b.setTarget(ToText(a.target));
  b.setDetail(ToText(a.detail));
  return Serialize(message);
}

Result<AuditEntry> DecodeAudit(std::string_view key, std::string_view bytes) {
  return DecodeRecord<schema::AuditEntry>(Table::kRecords, key, bytes, [](auto r) {
    AuditEntry a;
    a.unix_ms = r.getUnixMs();
    a.user = ToString(r.getUser());
    a.role = ToString(r.getRole());
    a.source = ToString(r.getSource());
    a.action = ToString(r.getAction());
    a.target = ToString(r.getTarget());
    a.detail = ToString(r.getDetail());
    return a;
  });
}

// Newest first in key order; the random suffix keeps two entries of one millisecond apart.
std::string AuditKey(int64_t unix_ms) {
  static thread_local std::mt19937 random{std::random_device{}()};
  uint64_t inverted = UINT64_MAX - static_cast<uint64_t>(unix_ms < 0 ? 0 : unix_ms);
  return fmt::format("{}{:020}-{:08x}", kAuditPrefix, inverted, random());
}

}  // namespace

// --- ExtensionRepo ---

Result<Extension> ExtensionRepo::Get(const std::string& number) const {
  std::string key = ExtKey(number);
  PBX_ASSIGN_OR_RETURN(std::string bytes, store_.Get(Table::kConfig, key));
  return DecodeExtension(key, bytes);
}

Result<std::vector<Extension>> ExtensionRepo::List() const {
  PBX_ASSIGN_OR_RETURN(auto rows, store_.Scan(Table::kConfig, kExtPrefix));
  std::vector<Extension> out;
  out.reserve(rows.size());
  for (const auto& [key, bytes] : rows) {
    PBX_ASSIGN_OR_RETURN(Extension e, DecodeExtension(key, bytes));
    out.push_back(std::move(e));
  }
  return out;
}

void ExtensionRepo::Put(const Extension& ext, bool create, WriteSet& writes) const {
  std::string key = ExtKey(ext.number);
  if (create) writes.ExpectAbsent(Table::kConfig, key);
  writes.Put(Table::kConfig, std::move(key), EncodeExtension(ext));
}

void ExtensionRepo::Delete(const std::string& number, WriteSet& writes) const {
  writes.ExpectPresent(Table::kConfig, ExtKey(number));
  writes.Delete(Table::kConfig, ExtKey(number));
}

std::string ExtensionRepo::Prefix() { return std::string(kExtPrefix); }

Result<Extension> ExtensionRepo::Decode(const Change& change) {
  if (change.table != Table::kConfig || !change.key.starts_with(kExtPrefix)) {
    return Status::InvalidArgument(KeyName(change.table, change.key) + " is not an extension");
  }
  // A deletion carries no record; the number is the key after Prefix().
  if (!change.value) {
    return Status::NotFound(KeyName(change.table, change.key) + " was deleted");
  }
  return DecodeExtension(change.key, *change.value);
}

// --- UserRepo ---

Result<User> UserRepo::Get(const std::string& name) const {
  std::string key = UserKey(name);
  PBX_ASSIGN_OR_RETURN(std::string bytes, store_.Get(Table::kConfig, key));
  return DecodeUser(key, bytes);
}

Result<std::vector<User>> UserRepo::List() const {
  PBX_ASSIGN_OR_RETURN(auto rows, store_.Scan(Table::kConfig, kUserPrefix));
  std::vector<User> out;
  out.reserve(rows.size());
  for (const auto& [key, bytes] : rows) {
    PBX_ASSIGN_OR_RETURN(User u, DecodeUser(key, bytes));
    out.push_back(std::move(u));
  }
  return out;
}

void UserRepo::Put(const User& user, bool create, WriteSet& writes) const {
  std::string key = UserKey(user.name);
  if (create) writes.ExpectAbsent(Table::kConfig, key);
  writes.Put(Table::kConfig, std::move(key), EncodeUser(user));
}

void UserRepo::Delete(const std::string& name, WriteSet& writes) const {
  writes.ExpectPresent(Table::kConfig, UserKey(name));
  writes.Delete(Table::kConfig, UserKey(name));
}

std::string UserRepo::Prefix() { return std::string(kUserPrefix); }

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kOperator:
      return "operator";
    case Role::kApi:
      return "api";
    case Role::kExtension:
      return "extension";
  }
  return "unknown";
}

std::optional<Role> ParseRole(std::string_view name) {
  for (Role role : {Role::kAdmin, Role::kOperator, Role::kApi, Role::kExtension}) {
    if (RoleName(role) == name) return role;
  }
  return std::nullopt;
}

// --- SettingsRepo ---

Result<SystemSettings> SettingsRepo::Get() const {
  Result<std::string> bytes = store_.Get(Table::kConfig, kSettingsKey);
  if (!bytes.ok()) {
    if (bytes.status().IsNotFound()) return SystemSettings{};
    return bytes.status();
  }
  return DecodeSettings(*bytes);
}

void SettingsRepo::Put(const SystemSettings& settings, WriteSet& writes) const {
  writes.Put(Table::kConfig, std::string(kSettingsKey), EncodeSettings(settings));
}

// --- AuditRepo ---

void AuditRepo::Append(const AuditEntry& entry, WriteSet& writes) {
  std::string key = AuditKey(entry.unix_ms);
  writes.ExpectAbsent(Table::kRecords, key);
  writes.Put(Table::kRecords, std::move(key), EncodeAudit(entry));
}

Result<std::vector<AuditEntry>> AuditRepo::List(size_t limit) const {
  PBX_ASSIGN_OR_RETURN(auto rows, store_.Scan(Table::kRecords, kAuditPrefix, limit));
  std::vector<AuditEntry> out;
  out.reserve(rows.size());
  for (const auto& [key, bytes] : rows) {
    PBX_ASSIGN_OR_RETURN(AuditEntry a, DecodeAudit(key, bytes));
    out.push_back(std::move(a));
  }
  return out;
}

// --- MetaRepo ---

Result<ClusterMeta> MetaRepo::Get() const {
  PBX_ASSIGN_OR_RETURN(std::string bytes, store_.Get(Table::kMeta, kClusterKey));
  return DecodeMeta(bytes);
}

void MetaRepo::Put(const ClusterMeta& meta, WriteSet& writes) const {
  writes.Put(Table::kMeta, std::string(kClusterKey), EncodeMeta(meta));
}

Result<uint64_t> MetaRepo::BumpEpoch() const {
  PBX_ASSIGN_OR_RETURN(ClusterMeta meta, Get());
  ++meta.epoch;
  WriteSet writes;
  writes.ExpectPresent(Table::kMeta, std::string(kClusterKey));
  Put(meta, writes);
  PBX_TRY(store_.Commit(writes, Durability::kReplicated).status());
  return meta.epoch;
}

// --- RegistrationRepo ---

std::string RegistrationRepo::Encode(const Registration& g) {
  capnp::MallocMessageBuilder message;
  auto b = message.initRoot<schema::Registration>();
  b.setNumber(ToText(g.number));
  b.setBindingId(ToText(g.binding_id));
  b.setContact(ToText(g.contact));
  b.setReceivedHost(ToText(g.received_host));
  b.setReceivedPort(g.received_port);
  b.setTransport(ToText(g.transport));
  SetStrings(b.initPath(static_cast<unsigned>(g.path.size())), g.path);
  b.setExpiresUnix(g.expires_unix);
  b.setRegisteredUnix(g.registered_unix);
  b.setUserAgent(ToText(g.user_agent));
  b.setCallId(ToText(g.call_id));
  b.setCseq(g.cseq);
  b.setQualifyOk(g.qualify_ok);
  b.setQualifyRttMs(g.qualify_rtt_ms);
  b.setQualifyUnix(g.qualify_unix);
  b.setInstance(ToText(g.instance));
  return Serialize(message);
}

Result<Registration> RegistrationRepo::DecodeValue(std::string_view key, std::string_view bytes) {
  return DecodeRegistration(key, bytes);
}

std::string RegistrationRepo::Prefix() { return std::string(kRegPrefix); }

std::string RegistrationRepo::Key(const std::string& number, const std::string& binding_id) {
  std::string key(kRegPrefix);
  key += number;
  key += '/';
  key += binding_id;
  return key;
}

bool RegistrationRepo::KeyParts(const std::string& key, std::string* number,
                                std::string* binding_id) {
  if (!key.starts_with(kRegPrefix)) return false;
  size_t slash = key.find('/', kRegPrefix.size());
  if (slash == std::string::npos) return false;
  *number = key.substr(kRegPrefix.size(), slash - kRegPrefix.size());
  *binding_id = key.substr(slash + 1);
  return !number->empty() && !binding_id->empty();
}

Result<std::vector<Registration>> RegistrationRepo::List(const std::string& number) const {
  std::string prefix(kRegPrefix);
  if (!number.empty()) prefix += number + "/";
  PBX_ASSIGN_OR_RETURN(auto rows, store_.Scan(Table::kRuntime, prefix));
  std::vector<Registration> out;
  out.reserve(rows.size());
  for (const auto& [key, bytes] : rows) {
    PBX_ASSIGN_OR_RETURN(Registration g, DecodeRegistration(key, bytes));
    out.push_back(std::move(g));
  }
  return out;
}

void RegistrationRepo::Put(const Registration& reg, WriteSet& writes) const {
  writes.Put(Table::kRuntime, Key(reg.number, reg.binding_id), Encode(reg));
}

void RegistrationRepo::Delete(const std::string& number, const std::string& binding_id,
                              WriteSet& writes) const {
  writes.Delete(Table::kRuntime, Key(number, binding_id));
}

Result<Registration> RegistrationRepo::Decode(const Change& change) {
  if (change.table != Table::kRuntime || !change.key.starts_with(kRegPrefix)) {
    return Status::InvalidArgument(KeyName(change.table, change.key) + " is not a registration");
  }
  if (!change.value) return Status::NotFound(KeyName(change.table, change.key) + " was deleted");
  return DecodeRegistration(change.key, *change.value);
}

// --- BanRepo ---

std::string BanRepo::Prefix() { return std::string(kBanPrefix); }
std::string BanRepo::Key(const std::string& ip) { return std::string(kBanPrefix) + ip; }

Result<Ban> BanRepo::Get(const std::string& ip) const {
  std::string key = Key(ip);
  PBX_ASSIGN_OR_RETURN(std::string bytes, store_.Get(Table::kRuntime, key));
  return DecodeBan(key, bytes);
}

Result<std::vector<Ban>> BanRepo::List() const {
  PBX_ASSIGN_OR_RETURN(auto rows, store_.Scan(Table::kRuntime, kBanPrefix));
  std::vector<Ban> out;
  out.reserve(rows.size());
  for (const auto& [key, bytes] : rows) {
    PBX_ASSIGN_OR_RETURN(Ban b, DecodeBan(key, bytes));
    out.push_back(std::move(b));
  }
  return out;
}

void BanRepo::Put(const Ban& ban, WriteSet& writes) const {
  writes.Put(Table::kRuntime, Key(ban.ip), EncodeBan(ban));
}

void BanRepo::Delete(const std::string& ip, bool must_exist, WriteSet& writes) const {
  if (must_exist) writes.ExpectPresent(Table::kRuntime, Key(ip));
  writes.Delete(Table::kRuntime, Key(ip));
}

Result<Ban> BanRepo::Decode(const Change& change) {
  if (change.table != Table::kRuntime || !change.key.starts_with(kBanPrefix)) {
    return Status::InvalidArgument(KeyName(change.table, change.key) + " is not a ban");
  }
  if (!change.value) return Status::NotFound(KeyName(change.table, change.key) + " was deleted");
  return DecodeBan(change.key, *change.value);
}

// --- The configuration as a whole (backup and restore) ---

namespace {

// Any well-formed message: reading the root's total size walks every pointer, in bounds.
Status ValidateAnyRecord(std::string_view key, std::string_view bytes) {
  Result<uint64_t> words = DecodeRecord<capnp::AnyPointer>(
      Table::kConfig, key, bytes, [](auto r) -> uint64_t { return r.targetSize().wordCount; });
  return words.status();
}

Status ValidateConfigRecord(const ConfigRecord& r) {
  if (r.key.empty()) return Status::InvalidArgument("a record has an empty key");
  if (r.key == kSettingsKey) return DecodeSettings(r.value).status();
  if (r.key.starts_with(kExtPrefix)) return DecodeExtension(r.key, r.value).status();
  if (r.key.starts_with(kUserPrefix)) return DecodeUser(r.key, r.value).status();
  return ValidateAnyRecord(r.key, r.value);
}

}  // namespace

Result<std::vector<ConfigRecord>> ExportConfig(const StateStore& store) {
  PBX_ASSIGN_OR_RETURN(auto rows, store.Scan(Table::kConfig, ""));
  std::vector<ConfigRecord> out;
  out.reserve(rows.size());
  for (auto& [key, value] : rows) {
    if (key == kSettingsKey) {
      PBX_ASSIGN_OR_RETURN(SystemSettings s, DecodeSettings(value));
      s.token_secret.clear();
      value = EncodeSettings(s);
    }
    out.push_back({std::move(key), std::move(value)});
  }
  return out;
}

Status AddConfigReplace(StateStore& store, const std::vector<ConfigRecord>& records,
                        WriteSet& writes) {
  std::optional<SystemSettings> settings;
  std::set<std::string_view> keep;
  for (const ConfigRecord& r : records) {
    if (Status st = ValidateConfigRecord(r); !st.ok()) {
      return Status::InvalidArgument(st.message());
    }
    if (!keep.insert(r.key).second) {
      return Status::InvalidArgument(KeyName(Table::kConfig, r.key) + " appears twice");
    }
    if (r.key == kSettingsKey) settings = *DecodeSettings(r.value);
  }
  if (!settings) return Status::InvalidArgument("the system settings are missing");
  PBX_ASSIGN_OR_RETURN(SystemSettings mine, SettingsRepo(store).Get());
  settings->token_secret = mine.token_secret;
  settings->first_boot_done = mine.first_boot_done;
  PBX_ASSIGN_OR_RETURN(auto existing, store.Scan(Table::kConfig, ""));
  for (const auto& [key, value] : existing) {
    if (!keep.contains(key)) writes.Delete(Table::kConfig, key);
  }
  for (const ConfigRecord& r : records) {
    writes.Put(Table::kConfig, r.key, r.key == kSettingsKey ? EncodeSettings(*settings) : r.value);
  }
  return Status::Ok();
}

// --- ApiCertificate ---

namespace {
constexpr std::string_view kCertificateKey = "cert/api";
}  // namespace

std::string CertificateRepo::Key() { return std::string(kCertificateKey); }

Result<ApiCertificate> CertificateRepo::Get() const {
  PBX_ASSIGN_OR_RETURN(std::string bytes, store_.Get(Table::kConfig, kCertificateKey));
  return DecodeRecord<schema::ApiCertificate>(Table::kConfig, kCertificateKey, bytes, [](auto r) {
    return ApiCertificate{ToString(r.getKeyPem()), ToString(r.getCertPem()),
                          ToString(r.getChainPem()), r.getUploadedUnix(),
                          ToString(r.getUploadedBy())};
  });
}

void CertificateRepo::Put(const ApiCertificate& c, WriteSet& writes) const {
  capnp::MallocMessageBuilder message;
  auto b = message.initRoot<schema::ApiCertificate>();
  b.setKeyPem(ToText(c.key_pem));
  b.setCertPem(ToText(c.cert_pem));
  b.setChainPem(ToText(c.chain_pem));
  b.setUploadedUnix(c.uploaded_unix);
  b.setUploadedBy(ToText(c.uploaded_by));
  writes.Put(Table::kConfig, std::string(kCertificateKey), Serialize(message));
}

// --- Trunk, TrunkState ---

namespace {

constexpr std::string_view kTrunkPrefix = "trunk/";
constexpr std::string_view kTrunkStatePrefix = "trunkreg/";

std::string EncodeTrunk(const Trunk& t) {
  capnp::MallocMessageBuilder message;
  auto b = message.initRoot<schema::Trunk>();
  b.setName(ToText(t.name));
  b.setEnabled(t.enabled);
  b.setMode(ToText(t.mode));
  b.setHost(ToText(t.host));
  b.setPort(t.port);
  b.setTransport(ToText(t.transport));
  b.setUsername(ToText(t.username));
  b.setAuthUser(ToText(t.auth_user));
  b.setPassword(ToText(t.password));
  b.setDomain(ToText(t.domain));
  b.setOutboundProxy(ToText(t.outbound_proxy));
  SetStrings(b.initCodecs(static_cast<unsigned>(t.codecs.size())), t.codecs);
  b.setDtmfMode(ToText(t.dtmf_mode));
  b.setCliMode(ToText(t.cli_mode));
  b.setOutboundCli(ToText(t.outbound_cli));
  b.setMaxCalls(t.max_calls);
  b.setNoAnswerTimeout(t.no_answer_timeout);
  b.setNewCallIdPerRegister(t.new_call_id_per_register);
  b.setExpiry(t.expiry);
  b.setRetryInterval(t.retry_interval);
  b.setMaxRetries(t.max_retries);
  b.setQualifyInterval(t.qualify_interval);
  b.setRefreshPercent(t.refresh_percent);
  b.setCreatedUnix(t.created_unix);
  b.setUpdatedUnix(t.updated_unix);
  return Serialize(message);
}

Result<Trunk> DecodeTrunk(std::string_view key, std::string_view bytes) {
  PBX_ASSIGN_OR_RETURN(Trunk t, DecodeRecord<schema::Trunk>(Table::kConfig, key, bytes, [](auto r) {
                         Trunk x;
                         x.name = ToString(r.getName());
                         x.enabled = r.getEnabled();
                         x.mode = ToString(r.getMode());
                         x.host = ToString(r.getHost());
                         x.port = r.getPort();
                         x.transport = ToString(r.getTransport());
                         x.username = ToString(r.getUsername());
                         x.auth_user = ToString(r.getAuthUser());
                         x.password = ToString(r.getPassword());
                         x.domain = ToString(r.getDomain());
                         x.outbound_proxy = ToString(r.getOutboundProxy());
                         x.codecs = GetStrings(r.getCodecs());
                         x.dtmf_mode = ToString(r.getDtmfMode());
                         x.cli_mode = ToString(r.getCliMode());
                         x.outbound_cli = ToString(r.getOutboundCli());
                         x.max_calls = r.getMaxCalls();
                         x.no_answer_timeout = r.getNoAnswerTimeout();
                         x.new_call_id_per_register = r.getNewCallIdPerRegister();
                         x.expiry = r.getExpiry();
                         x.retry_interval = r.getRetryInterval();
                         x.max_retries = r.getMaxRetries();
                         x.qualify_interval = r.getQualifyInterval();
                         x.refresh_percent = r.getRefreshPercent();
                         x.created_unix = r.getCreatedUnix();
                         x.updated_unix = r.getUpdatedUnix();
                         return x;
                       }));
  if (key.substr(kTrunkPrefix.size()) != t.name) {
    return Status::Corruption(KeyName(Table::kConfig, key) + ": record holds trunk '" + t.name +
                              "'");
  }
  return t;
}

std::string EncodeTrunkState(const TrunkState& t) {
  capnp::MallocMessageBuilder message;
  auto b = message.initRoot<schema::TrunkState>();
  b.setName(ToText(t.name));
  b.setCallId(ToText(t.call_id));
  b.setCseq(t.cseq);
  b.setState(ToText(t.state));
  b.setExpiresUnix(t.expires_unix);
  b.setLastCode(t.last_code);
  b.setLastReason(ToText(t.last_reason));
  b.setUpdatedUnix(t.updated_unix);
  b.setFailures(t.failures);
  b.setQualifyOk(t.qualify_ok);
  b.setQualifyRttMs(t.qualify_rtt_ms);
  b.setQualifyUnix(t.qualify_unix);
  return Serialize(message);
}

Result<TrunkState> DecodeTrunkState(std::string_view key, std::string_view bytes) {
  return DecodeRecord<schema::TrunkState>(Table::kRuntime, key, bytes, [](auto r) {
    TrunkState x;
    x.name = ToString(r.getName());
    x.call_id = ToString(r.getCallId());
    x.cseq = r.getCseq();
    x.state = ToString(r.getState());
    x.expires_unix = r.getExpiresUnix();
    x.last_code = r.getLastCode();
    x.last_reason = ToString(r.getLastReason());
    x.updated_unix = r.getUpdatedUnix();
    x.failures = r.getFailures();
    x.qualify_ok = r.getQualifyOk();
    x.qualify_rtt_ms = r.getQualifyRttMs();
    x.qualify_unix = r.getQualifyUnix();
    return x;
  });
}

// Every record under `prefix` of `table`, decoded.
template <typename T, typename DecodeFn>
Result<std::vector<T>> ListRecords(const StateStore& store, Table table, std::string_view prefix,
                                   DecodeFn decode) {
  PBX_ASSIGN_OR_RETURN(auto rows, store.Scan(table, std::string(prefix)));
  std::vector<T> out;
  out.reserve(rows.size());
  for (const auto& [key, bytes] : rows) {
    PBX_ASSIGN_OR_RETURN(T t, decode(key, bytes));
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace

std::string TrunkRepo::Prefix() { return std::string(kTrunkPrefix); }

Result<Trunk> TrunkRepo::Get(const std::string& name) const {
  std::string key = Prefix() + name;
  PBX_ASSIGN_OR_RETURN(std::string bytes, store_.Get(Table::kConfig, key));
  return DecodeTrunk(key, bytes);
}

Result<std::vector<Trunk>> TrunkRepo::List() const {
  return ListRecords<Trunk>(store_, Table::kConfig, kTrunkPrefix, DecodeTrunk);
}

void TrunkRepo::Put(const Trunk& trunk, bool create, WriteSet& writes) const {
  if (create) writes.ExpectAbsent(Table::kConfig, Prefix() + trunk.name);
  writes.Put(Table::kConfig, Prefix() + trunk.name, EncodeTrunk(trunk));
}

void TrunkRepo::Delete(const std::string& name, WriteSet& writes) const {
  writes.ExpectPresent(Table::kConfig, Prefix() + name);
  writes.Delete(Table::kConfig, Prefix() + name);
}

Result<Trunk> TrunkRepo::Decode(const Change& change) {
  if (change.table != Table::kConfig || !change.key.starts_with(kTrunkPrefix)) {
    return Status::InvalidArgument(KeyName(change.table, change.key) + " is not a trunk");
  }
  if (!change.value) return Status::NotFound(KeyName(change.table, change.key) + " was deleted");
  return DecodeTrunk(change.key, *change.value);
}

std::string TrunkStateRepo::Prefix() { return std::string(kTrunkStatePrefix); }

Result<TrunkState> TrunkStateRepo::Get(const std::string& name) const {
  std::string key = Prefix() + name;
  PBX_ASSIGN_OR_RETURN(std::string bytes, store_.Get(Table::kRuntime, key));
  return DecodeTrunkState(key, bytes);
}

Result<std::vector<TrunkState>> TrunkStateRepo::List() const {
  return ListRecords<TrunkState>(store_, Table::kRuntime, kTrunkStatePrefix, DecodeTrunkState);
}

void TrunkStateRepo::Put(const TrunkState& state, WriteSet& writes) const {
  writes.Put(Table::kRuntime, Prefix() + state.name, EncodeTrunkState(state));
}

void TrunkStateRepo::Delete(const std::string& name, WriteSet& writes) const {
  writes.Delete(Table::kRuntime, Prefix() + name);
}

// --- The dial plan ---

namespace {

constexpr std::string_view kRoutingSettingsKey = "settings/routing";

void SetDestination(schema::Destination::Builder b, const Destination& d) {
  b.setType(ToText(d.type));
  b.setId(ToText(d.id));
}
Destination GetDestination(schema::Destination::Reader r) {
  return {ToString(r.getType()), ToString(r.getId())};
}

// One codec per record type, found by overload on the record type.
void EncodeInto(schema::OutboundRoute::Builder b, const OutboundRoute& x) {
  b.setName(ToText(x.name));
  auto rules = b.initRules(static_cast<unsigned>(x.rules.size()));
  for (unsigned i = 0; i < x.rules.size(); ++i) {
    rules[i].setPrefix(ToText(x.rules[i].prefix));
    rules[i].setPattern(ToText(x.rules[i].pattern));
    rules[i].setPrepend(ToText(x.rules[i].prepend));
  }
  SetStrings(b.initTrunks(static_cast<unsigned>(x.trunks.size())), x.trunks);
  b.setCallerId(ToText(x.caller_id));
  b.setTimeLimit(x.time_limit);
  b.setTimeCondition(ToText(x.time_condition));
  b.setPinSet(ToText(x.pin_set));
}
OutboundRoute DecodeFrom(schema::OutboundRoute::Reader r) {
  OutboundRoute x;
  x.name = ToString(r.getName());
  for (auto rule : r.getRules()) {
    x.rules.push_back(
        {ToString(rule.getPrefix()), ToString(rule.getPattern()), ToString(rule.getPrepend())});
  }
  x.trunks = GetStrings(r.getTrunks());
  x.caller_id = ToString(r.getCallerId());
  x.time_limit = r.getTimeLimit();
  x.time_condition = ToString(r.getTimeCondition());
  x.pin_set = ToString(r.getPinSet());
  return x;
}

void EncodeInto(schema::Permission::Builder b, const Permission& x) {
  b.setName(ToText(x.name));
  b.setEnabled(x.enabled);
  SetStrings(b.initRoutes(static_cast<unsigned>(x.routes.size())), x.routes);
}
Permission DecodeFrom(schema::Permission::Reader r) {
  return {ToString(r.getName()), r.getEnabled(), GetStrings(r.getRoutes())};
}

void EncodeInto(schema::PinSet::Builder b, const PinSet& x) {
  b.setName(ToText(x.name));
  SetStrings(b.initPins(static_cast<unsigned>(x.pins.size())), x.pins);
}
PinSet DecodeFrom(schema::PinSet::Reader r) {
  return {ToString(r.getName()), GetStrings(r.getPins())};
}

void EncodeInto(schema::TimeCondition::Builder b, const TimeCondition& x) {
  b.setName(ToText(x.name));
  auto working = b.initWorking(static_cast<unsigned>(x.working.size()));
  for (unsigned i = 0; i < x.working.size(); ++i) {
    working[i].setDays(x.working[i].days);
    working[i].setStartMinute(x.working[i].start_minute);
    working[i].setEndMinute(x.working[i].end_minute);
  }
  auto holidays = b.initHolidays(static_cast<unsigned>(x.holidays.size()));
  for (unsigned i = 0; i < x.holidays.size(); ++i) {
    holidays[i].setFirst(ToText(x.holidays[i].first));
    holidays[i].setLast(ToText(x.holidays[i].last));
  }
  SetDestination(b.initWhenWorking(), x.when_working);
  SetDestination(b.initWhenClosed(), x.when_closed);
  b.setHasWhenHoliday(x.when_holiday.has_value());
  if (x.when_holiday) SetDestination(b.initWhenHoliday(), *x.when_holiday);
}
TimeCondition DecodeFrom(schema::TimeCondition::Reader r) {
  TimeCondition x;
  x.name = ToString(r.getName());
  for (auto w : r.getWorking())
    x.working.push_back({w.getDays(), w.getStartMinute(), w.getEndMinute()});
  for (auto h : r.getHolidays())
    x.holidays.push_back({ToString(h.getFirst()), ToString(h.getLast())});
  x.when_working = GetDestination(r.getWhenWorking());
  x.when_closed = GetDestination(r.getWhenClosed());
  if (r.getHasWhenHoliday()) x.when_holiday = GetDestination(r.getWhenHoliday());
  return x;
}

void EncodeInto(schema::DidRoute::Builder b, const DidRoute& x) {
  b.setName(ToText(x.name));
  b.setTrunk(ToText(x.trunk));
  b.setDidPattern(ToText(x.did_pattern));
  b.setCallerPattern(ToText(x.caller_pattern));
  SetDestination(b.initDestination(), x.destination);
}
DidRoute DecodeFrom(schema::DidRoute::Reader r) {
  return {ToString(r.getName()), ToString(r.getTrunk()), ToString(r.getDidPattern()),
          ToString(r.getCallerPattern()), GetDestination(r.getDestination())};
}

void EncodeInto(schema::InboundRoute::Builder b, const InboundRoute& x) {
  b.setTrunk(ToText(x.trunk));
  SetDestination(b.initDestination(), x.destination);
}
InboundRoute DecodeFrom(schema::InboundRoute::Reader r) {
  return {ToString(r.getTrunk()), GetDestination(r.getDestination())};
}

void EncodeInto(schema::BlacklistEntry::Builder b, const BlacklistEntry& x) {
  b.setNumber(ToText(x.number));
  b.setCreator(ToText(x.creator));
  b.setCreatedUnix(x.created_unix);
}
BlacklistEntry DecodeFrom(schema::BlacklistEntry::Reader r) {
  return {ToString(r.getNumber()), ToString(r.getCreator()), r.getCreatedUnix()};
}

// Record type -> schema type, key prefix, and key field.
template <typename T>
struct DialPlanTraits;
#define PBX_DIAL_PLAN_RECORD(T, prefix, key_field)                    \
  template <>                                                         \
  struct DialPlanTraits<T> {                                          \
    using Schema = schema::T;                                         \
    static constexpr std::string_view kPrefix = prefix;               \
    static const std::string& Key(const T& x) { return x.key_field; } \
  };
PBX_DIAL_PLAN_RECORD(OutboundRoute, "route/out/", name)
PBX_DIAL_PLAN_RECORD(Permission, "route/perm/", name)
PBX_DIAL_PLAN_RECORD(PinSet, "route/pin/", name)
PBX_DIAL_PLAN_RECORD(TimeCondition, "route/time/", name)
PBX_DIAL_PLAN_RECORD(DidRoute, "route/did/", name)
PBX_DIAL_PLAN_RECORD(InboundRoute, "route/in/", trunk)
PBX_DIAL_PLAN_RECORD(BlacklistEntry, "route/black/", number)
#undef PBX_DIAL_PLAN_RECORD

template <typename T>
std::string EncodeDialPlan(const T& x) {
  capnp::MallocMessageBuilder message;
  EncodeInto(message.initRoot<typename DialPlanTraits<T>::Schema>(), x);
  return Serialize(message);
}

template <typename T>
Result<T> DecodeDialPlan(std::string_view key, std::string_view bytes) {
  using Traits = DialPlanTraits<T>;
  PBX_ASSIGN_OR_RETURN(T x, DecodeRecord<typename Traits::Schema>(
                                Table::kConfig, key, bytes, [](auto r) { return DecodeFrom(r); }));
  if (key.substr(Traits::kPrefix.size()) != Traits::Key(x)) {
    return Status::Corruption(KeyName(Table::kConfig, key) + ": record holds '" + Traits::Key(x) +
                              "'");
  }
  return x;
}

}  // namespace

template <typename T>
std::string DialPlanRepo<T>::Prefix() {
  return std::string(DialPlanTraits<T>::kPrefix);
}

template <typename T>
std::string DialPlanRepo<T>::KeyOf(const T& record) {
  return Prefix() + DialPlanTraits<T>::Key(record);
}

template <typename T>
Result<T> DialPlanRepo<T>::Get(const std::string& key) const {
  std::string k = Prefix() + key;
  PBX_ASSIGN_OR_RETURN(std::string bytes, store_.Get(Table::kConfig, k));
  return DecodeDialPlan<T>(k, bytes);
}

template <typename T>
Result<std::vector<T>> DialPlanRepo<T>::List() const {
  return ListRecords<T>(store_, Table::kConfig, Prefix(), DecodeDialPlan<T>);
}

template <typename T>
void DialPlanRepo<T>::Put(const T& record, bool create, WriteSet& writes) const {
  if (create) {
    writes.ExpectAbsent(Table::kConfig, KeyOf(record));
  } else {
    writes.ExpectPresent(Table::kConfig, KeyOf(record));
  }
  writes.Put(Table::kConfig, KeyOf(record), EncodeDialPlan(record));
}

template <typename T>
void DialPlanRepo<T>::Delete(const std::string& key, WriteSet& writes) const {
  writes.ExpectPresent(Table::kConfig, Prefix() + key);
  writes.Delete(Table::kConfig, Prefix() + key);
}

template class DialPlanRepo<OutboundRoute>;
template class DialPlanRepo<Permission>;
template class DialPlanRepo<PinSet>;
template class DialPlanRepo<TimeCondition>;
template class DialPlanRepo<DidRoute>;
template class DialPlanRepo<InboundRoute>;
template class DialPlanRepo<BlacklistEntry>;

Result<RoutingSettings> RoutingSettingsRepo::Get() const {
  Result<std::string> bytes = store_.Get(Table::kConfig, kRoutingSettingsKey);
  if (!bytes.ok()) {
    if (bytes.status().IsNotFound()) return RoutingSettings{};
    return bytes.status();
  }
  return DecodeRecord<schema::RoutingSettings>(
      Table::kConfig, kRoutingSettingsKey, *bytes, [](auto r) {
        return RoutingSettings{r.getBlockAnonymous(), r.getOfficePause(),
                               GetDestination(r.getOfficePauseDestination())};
      });
}

void RoutingSettingsRepo::Put(const RoutingSettings& settings, WriteSet& writes) const {
  capnp::MallocMessageBuilder message;
  auto b = message.initRoot<schema::RoutingSettings>();
  b.setBlockAnonymous(settings.block_anonymous);
  b.setOfficePause(settings.office_pause);
  SetDestination(b.initOfficePauseDestination(), settings.office_pause_destination);
  writes.Put(Table::kConfig, std::string(kRoutingSettingsKey), Serialize(message));
}

}  // namespace pbx::store

// --- ActiveCall (runtime "call/<20-digit id>") and Cdr (records "cdr/<ms>-<id>") ---

namespace pbx::store {
namespace {

constexpr std::string_view kCallPrefix = "call/";
constexpr std::string_view kCdrPrefix = "cdr/";

void SetDialog(schema::CallDialog::Builder b, const CallDialog& d) {
  b.setCallId(ToText(d.call_id));
  b.setLocalTag(ToText(d.local_tag));
  b.setRemoteTag(ToText(d.remote_tag));
  b.setLocalUri(ToText(d.local_uri));
  b.setRemoteUri(ToText(d.remote_uri));
  b.setTarget(ToText(d.target));
  b.setRoute(ToText(d.route));
  b.setLocalCseq(d.local_cseq);
  b.setRemoteCseq(d.remote_cseq);
  b.setSessionInterval(d.session_interval);
  b.setSessionPbxRefreshes(d.session_pbx_refreshes);
  SetStrings(b.initRouteSet(static_cast<unsigned>(d.route_set.size())), d.route_set);
}

CallDialog GetDialog(schema::CallDialog::Reader r) {
  CallDialog d;
  d.call_id = ToString(r.getCallId());
  d.local_tag = ToString(r.getLocalTag());
  d.remote_tag = ToString(r.getRemoteTag());
  d.local_uri = ToString(r.getLocalUri());
  d.remote_uri = ToString(r.getRemoteUri());
  d.target = ToString(r.getTarget());
  d.route = ToString(r.getRoute());
  d.local_cseq = r.getLocalCseq();
  d.remote_cseq = r.getRemoteCseq();
  d.session_interval = r.getSessionInterval();
  d.session_pbx_refreshes = r.getSessionPbxRefreshes();
  d.route_set = GetStrings(r.getRouteSet());
  return d;
}

std::string EncodeActiveCall(const ActiveCall& c) {
  capnp::MallocMessageBuilder message;
  auto b = message.initRoot<schema::ActiveCall>();
  b.setId(c.id);
  b.setCaller(ToText(c.caller));
  b.setCallerName(ToText(c.caller_name));
  b.setCallee(ToText(c.callee));
  b.setStartUnix(c.start_unix);
  b.setAnswerUnix(c.answer_unix);
  SetDialog(b.initA(), c.a);
  SetDialog(b.initB(), c.b);
  b.setAPort(c.a_port);
  b.setBPort(c.b_port);
  b.setOffer(ToText(c.offer));
  b.setAnswer(ToText(c.answer));
  b.setOfferFromB(c.offer_from_b);
  b.setStartUnixMs(c.start_unix_ms);
  b.setAnswerUnixMs(c.answer_unix_ms);
  b.setDialled(ToText(c.dialled));
  b.setType(ToText(c.type));
  b.setTrunk(ToText(c.trunk));
  b.setMaxDuration(c.max_duration);
  b.setCallerInvite(ToText(c.caller_invite));
  auto ringing = b.initRinging(static_cast<unsigned>(c.ringing.size()));
  for (unsigned i = 0; i < c.ringing.size(); ++i) {
    ringing[i].setInvite(ToText(c.ringing[i].invite));
    ringing[i].setTarget(ToText(c.ringing[i].target));
    ringing[i].setRoute(ToText(c.ringing[i].route));
  }
  b.setRingDeadlineUnixMs(c.ring_deadline_unix_ms);
  b.setRungExtension(ToText(c.rung_extension));
  b.setPin(ToText(c.pin));
  return Serialize(message);
}

Result<ActiveCall> DecodeActiveCall(std::string_view key, std::string_view bytes) {
  return DecodeRecord<schema::ActiveCall>(Table::kRuntime, key, bytes, [](auto r) {
    ActiveCall c;
    c.id = r.getId();
    c.caller = ToString(r.getCaller());
    c.caller_name = ToString(r.getCallerName());
    c.callee = ToString(r.getCallee());
    c.start_unix = r.getStartUnix();
    c.answer_unix = r.getAnswerUnix();
    c.a = GetDialog(r.getA());
    c.b = GetDialog(r.getB());
    c.a_port = static_cast<uint16_t>(r.getAPort());
    c.b_port = static_cast<uint16_t>(r.getBPort());
    c.offer = ToString(r.getOffer());
    c.answer = ToString(r.getAnswer());
    c.offer_from_b = r.getOfferFromB();
    c.start_unix_ms = r.getStartUnixMs();
    c.answer_unix_ms = r.getAnswerUnixMs();
    c.dialled = ToString(r.getDialled());
    c.type = ToString(r.getType());
    c.trunk = ToString(r.getTrunk());
    c.max_duration = r.getMaxDuration();
    c.caller_invite = ToString(r.getCallerInvite());
    for (auto br : r.getRinging()) {
      c.ringing.push_back(
          {ToString(br.getInvite()), ToString(br.getTarget()), ToString(br.getRoute())});
    }
    c.ring_deadline_unix_ms = r.getRingDeadlineUnixMs();
    c.rung_extension = ToString(r.getRungExtension());
    c.pin = ToString(r.getPin());
    return c;
  });
}

std::string EncodeCdr(const Cdr& c) {
  capnp::MallocMessageBuilder message;
  auto b = message.initRoot<schema::Cdr>();
  b.setId(c.id);
  b.setStartUnixMs(c.start_unix_ms);
  b.setAnswerUnixMs(c.answer_unix_ms);
  b.setEndUnixMs(c.end_unix_ms);
  b.setCaller(ToText(c.caller));
  b.setCallerName(ToText(c.caller_name));
  b.setCallee(ToText(c.callee));
  b.setFinalCallee(ToText(c.final_callee));
  b.setDurationSeconds(c.duration_seconds);
  b.setBillableSeconds(c.billable_seconds);
  b.setTrunk(ToText(c.trunk));
  b.setType(ToText(c.type));
  b.setStatus(ToText(c.status));
  b.setCause(ToText(c.cause));
  b.setHangupSide(ToText(c.hangup_side));
  b.setRecorded(c.recorded);
  b.setPin(ToText(c.pin));
  return Serialize(message);
}

Result<Cdr> DecodeCdr(std::string_view key, std::string_view bytes) {
  return DecodeRecord<schema::Cdr>(Table::kRecords, key, bytes, [](auto r) {
    Cdr c;
    c.id = r.getId();
    c.start_unix_ms = r.getStartUnixMs();
    c.answer_unix_ms = r.getAnswerUnixMs();
    c.end_unix_ms = r.getEndUnixMs();
    c.caller = ToString(r.getCaller());
    c.caller_name = ToString(r.getCallerName());
    c.callee = ToString(r.getCallee());
    c.final_callee = ToString(r.getFinalCallee());
    c.duration_seconds = r.getDurationSeconds();
    c.billable_seconds = r.getBillableSeconds();
    c.trunk = ToString(r.getTrunk());
    c.type = ToString(r.getType());
    c.status = ToString(r.getStatus());
    c.cause = ToString(r.getCause());
    c.hangup_side = ToString(r.getHangupSide());
    c.recorded = r.getRecorded();
    c.pin = ToString(r.getPin());
    return c;
  });
}

}  // namespace

std::string ActiveCallRepo::Key(uint64_t id) { return fmt::format("{}{:020}", kCallPrefix, id); }

Result<std::vector<ActiveCall>> ActiveCallRepo::List() const {
  PBX_ASSIGN_OR_RETURN(auto rows, store_.Scan(Table::kRuntime, kCallPrefix));
  std::vector<ActiveCall> out;
  for (const auto& [key, bytes] : rows) {
    PBX_ASSIGN_OR_RETURN(ActiveCall c, DecodeActiveCall(key, bytes));
    out.push_back(std::move(c));
  }
  return out;
}

void ActiveCallRepo::Put(const ActiveCall& call, WriteSet& writes) {
  writes.Put(Table::kRuntime, Key(call.id), EncodeActiveCall(call));
}

void ActiveCallRepo::Delete(uint64_t id, WriteSet& writes) {
  writes.Delete(Table::kRuntime, Key(id));
}

std::string CdrRepo::Key(int64_t start_unix_ms, uint64_t id) {
  return fmt::format("{}{:020}-{:016x}", kCdrPrefix, start_unix_ms < 0 ? 0 : start_unix_ms, id);
}

void CdrRepo::Append(const Cdr& cdr, WriteSet& writes) {
  writes.Put(Table::kRecords, Key(cdr.start_unix_ms, cdr.id), EncodeCdr(cdr));
}

Result<std::vector<Cdr>> CdrRepo::Query(const CdrQuery& q) const {
  std::string from = Key(q.from_unix_ms, 0);
  std::string to = Key(q.to_unix_ms == INT64_MAX ? INT64_MAX : q.to_unix_ms, 0);
  size_t common = 0;
  while (common < from.size() && common < to.size() && from[common] == to[common]) ++common;
  PBX_ASSIGN_OR_RETURN(auto rows, store_.Scan(Table::kRecords, from.substr(0, common)));
  std::vector<Cdr> out;
  for (const auto& [key, bytes] : rows) {
    if (key < from || key >= to) continue;
    PBX_ASSIGN_OR_RETURN(Cdr c, DecodeCdr(key, bytes));
    if (!q.caller.empty() && c.caller != q.caller) continue;
    if (!q.callee.empty() && c.callee != q.callee && c.final_callee != q.callee) continue;
    if (!q.type.empty() && c.type != q.type) continue;
    if (!q.pin.empty() && c.pin != q.pin) continue;
    out.push_back(std::move(c));
    if (q.limit != 0 && out.size() == q.limit) break;
  }
  return out;
}

// --- Forwarding ---

namespace {

constexpr std::string_view kForwardingPrefix = "fwd/";

std::string EncodeForwarding(const Forwarding& f) {
  capnp::MallocMessageBuilder message;
  auto b = message.initRoot<schema::Forwarding>();
  b.setExtension(ToText(f.extension));
  b.setDnd(f.dnd);
  b.setDndStatus(f.dnd_status);
  auto rule = [](auto builder, const ForwardRule& r) {
    builder.setActive(r.active);
    builder.setNumber(ToText(r.number));
  };
  rule(b.initAlways(), f.always);
  rule(b.initBusy(), f.busy);
  rule(b.initNoAnswer(), f.no_answer);
  b.setRingSeconds(f.ring_seconds);
  b.setFollowMe(f.follow_me);
  b.setFollowMeRingSeconds(f.follow_me_ring_seconds);
  auto list = b.initFollowMeList(static_cast<unsigned>(f.follow_me_list.size()));
  for (size_t i = 0; i < f.follow_me_list.size(); ++i) {
    list[static_cast<unsigned>(i)].setNumber(ToText(f.follow_me_list[i].number));
    list[static_cast<unsigned>(i)].setRingSeconds(f.follow_me_list[i].ring_seconds);
  }
  b.setUpdatedUnix(f.updated_unix);
  return Serialize(message);
}

Result<Forwarding> DecodeForwarding(std::string_view key, std::string_view bytes) {
  return DecodeRecord<schema::Forwarding>(Table::kConfig, key, bytes, [](auto r) {
    Forwarding f;
    f.extension = ToString(r.getExtension());
    f.dnd = r.getDnd();
    f.dnd_status = r.getDndStatus();
    auto rule = [](auto reader) {
      return ForwardRule{reader.getActive(), ToString(reader.getNumber())};
    };
    f.always = rule(r.getAlways());
    f.busy = rule(r.getBusy());
    f.no_answer = rule(r.getNoAnswer());
    f.ring_seconds = r.getRingSeconds();
    f.follow_me = r.getFollowMe();
    f.follow_me_ring_seconds = r.getFollowMeRingSeconds();
    for (auto step : r.getFollowMeList()) {
      f.follow_me_list.push_back({ToString(step.getNumber()), step.getRingSeconds()});
    }
    f.updated_unix = r.getUpdatedUnix();
    return f;
  });
}

}  // namespace

std::string ForwardingRepo::Prefix() { return std::string(kForwardingPrefix); }

Result<Forwarding> ForwardingRepo::Get(const std::string& extension) const {
  std::string key = Prefix() + extension;
  Result<std::string> bytes = store_.Get(Table::kConfig, key);
  if (!bytes.ok() && bytes.status().IsNotFound()) {
    Forwarding f;
    f.extension = extension;
    return f;
  }
  if (!bytes.ok()) return bytes.status();
  return DecodeForwarding(key, *bytes);
}

Result<std::vector<Forwarding>> ForwardingRepo::List() const {
  return ListRecords<Forwarding>(store_, Table::kConfig, kForwardingPrefix, DecodeForwarding);
}

void ForwardingRepo::Put(const Forwarding& f, WriteSet& writes) {
  writes.Put(Table::kConfig, Prefix() + f.extension, EncodeForwarding(f));
}

void ForwardingRepo::Delete(const std::string& extension, WriteSet& writes) {
  writes.Delete(Table::kConfig, Prefix() + extension);
}

}  // namespace pbx::store
