#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "node/core/status.h"
#include "replication/store/state_store.h"

// Typed repositories: the only view of the store that code outside replication/ has.
// Records are plain structs here and Cap'n Proto structs (replication/schema) on disk and on
// the wire, so fields can be added without migrations. A stored value that does not decode
// yields Corruption naming the table and key; it never crashes the process.
// Each repository is a thin, stateless view over a StateStore and is thread-safe.
namespace pbx::store {

// An IP (SIP) extension, FEATURES.md §3.2. Credentials are kept as digest HA1 values for
// the SIP realm they were set under, never as the clear password.
struct Extension {
  std::string number;  // 2-11 digits; the key
  std::string name;    // display name, sent as caller ID name
  std::string email;
  std::string mobile;      // a note only
  std::string realm;       // the realm the HA1 values were computed for
  std::string ha1_md5;     // hex MD5(number:realm:password)
  std::string ha1_sha256;  // hex SHA-256(number:realm:password)
  std::string dial_permission = "DialPlan1";
  std::string outbound_cli;
  std::string language = "en";
  std::string moh = "default";
  bool voicemail = true;
  std::string voicemail_pin = "1234";
  bool remote_registration = false;    // allow registration from a public/WAN address
  uint32_t max_contacts = 1;           // simultaneous registrations
  bool web_login = false;              // extension user portal
  uint32_t registration_expiry = 120;  // seconds
  std::string transport = "udp";       // udp | tcp | tls
  std::string dtmf_mode = "rfc4733";   // rfc4733 | info | inband | auto
  uint32_t qualify_interval = 60;      // seconds, 0 = off
  bool nat = true;
  std::vector<std::string> trusted_addresses;  // IP or CIDR; empty = any
  std::vector<std::string> codecs = {"PCMU", "PCMA", "G722"};
  std::string recording = "off";  // off | in | out | both
  int64_t created_unix = 0;
  int64_t updated_unix = 0;
  bool call_waiting = true;  // off: busy (486) while in a call
};

class ExtensionRepo {
 public:
  explicit ExtensionRepo(StateStore& store) : store_(store) {}
  Result<Extension> Get(const std::string& number) const;  // NotFound if absent
  Result<std::vector<Extension>> List() const;             // in number order
  // Adds the write to `writes`; `create` also adds the precondition that it is new, so a
  // concurrent create of the same number fails the commit with Conflict.
  void Put(const Extension& ext, bool create, WriteSet& writes) const;
  // Adds the delete and the precondition that the extension exists.
  void Delete(const std::string& number, WriteSet& writes) const;
  // The key prefix to Subscribe to for extension changes, and decoding of a Change.
  static std::string Prefix();
  static Result<Extension> Decode(const Change& change);

 private:
  StateStore& store_;
};

enum class Role : uint8_t { kAdmin, kOperator, kApi, kExtension };
std::string_view RoleName(Role role);
std::optional<Role> ParseRole(std::string_view name);

// A web/API account (FEATURES.md §16). The password is a PBKDF2-HMAC-SHA256 hash.
struct User {
  std::string name;  // the key; immutable once created
  Role role = Role::kOperator;
  std::string password_salt;  // raw bytes
  std::string password_hash;  // raw bytes
  uint32_t kdf_iterations = 0;
  int64_t created_unix = 0;
};

class UserRepo {
 public:
  explicit UserRepo(StateStore& store) : store_(store) {}
  Result<User> Get(const std::string& name) const;
  Result<std::vector<User>> List() const;
  void Put(const User& user, bool create, WriteSet& writes) const;
  void Delete(const std::string& name, WriteSet& writes) const;
  // The key prefix of users: Prefix() + name is a user's key (for preconditions).
  static std::string Prefix();

 private:
  StateStore& store_;
};

// Cluster-wide settings that every node shares (config table).
struct SystemSettings {
  std::string sip_realm = "pbx";
  std::string token_secret;  // raw bytes: signs API tokens, so they survive a failover
  bool first_boot_done = false;
  // Registrar: requested expiries are clamped to [min, max] seconds.
  uint32_t reg_expiry_min = 60;
  uint32_t reg_expiry_max = 3600;
  // Intrusion protection (FEATURES.md 13.2-13.4).
  bool ban_enabled = true;
  uint32_t ban_max_retries = 5;       // failures ...
  uint32_t ban_find_time = 60;        // ... within this many seconds ...
  uint32_t ban_time = 3600;           // ... ban the source for this many seconds
  bool ban_trust_private = true;      // RFC 1918 sources are never banned
  std::vector<std::string> ip_allow;  // IP or CIDR: never banned
  std::vector<std::string> ip_deny;   // IP or CIDR: always dropped
  // Calls (FEATURES.md 8.1, 8.2).
  uint32_t ring_timeout = 30;          // seconds a call rings before the caller gets 480
  uint32_t max_call_duration = 10800;  // seconds of talk before the PBX hangs up; 0: none
  uint32_t no_rtp_timeout = 0;         // seconds without RTP from either phone; 0: off
  bool session_timers = false;         // RFC 4028, off by default
  uint32_t session_expires = 1800;     // the interval asked for, 90-7200 s
  uint32_t session_min_se = 90;        // the smallest accepted (Min-SE), 90-session_expires
};

class SettingsRepo {
 public:
  explicit SettingsRepo(StateStore& store) : store_(store) {}
  // Defaults if never written.
  Result<SystemSettings> Get() const;
  void Put(const SystemSettings& settings, WriteSet& writes) const;

 private:
  StateStore& store_;
};

// One change made through the REST API (records table), DESIGN.md §3 "audit log".
struct AuditEntry {
  int64_t unix_ms = 0;
  std::string user;
  std::string role;    // RoleName() at the time
  std::string source;  // the client's address
  std::string action;  // "<object>.<verb>", e.g. "extension.create"
  std::string target;  // the object's key, e.g. "2001"
  std::string detail;  // what changed; never a secret
};

// Append-only: entries are written in the same commit as the change they record, and are
// never updated.
class AuditRepo {
 public:
  explicit AuditRepo(StateStore& store) : store_(store) {}
  // Adds the write of `entry` under a new key to `writes`.
  static void Append(const AuditEntry& entry, WriteSet& writes);
  // The newest `limit` entries (0: all), newest first.
  Result<std::vector<AuditEntry>> List(size_t limit) const;

 private:
  StateStore& store_;
};

// Identity of the cluster and the promotion epoch (meta table).
struct ClusterMeta {
  std::string cluster_id;  // random at creation; both nodes of a pair share it
  uint64_t epoch = 0;      // incremented by every promotion
  int64_t created_unix = 0;
};

class MetaRepo {
 public:
  explicit MetaRepo(StateStore& store) : store_(store) {}
  Result<ClusterMeta> Get() const;  // NotFound before the first write
  void Put(const ClusterMeta& meta, WriteSet& writes) const;
  // Promotion: commits epoch + 1 (kReplicated) and returns the new epoch. The role machine
  // calls it on the node that becomes active, after stopping its LogReceiver and before
  // starting its LogShipper, so that every message the new active sends carries the new
  // epoch and the old active's messages are refused. NotFound if the cluster identity was
  // never written. REQUIRES: no concurrent write of the meta record (the role machine is
  // its only writer after creation).
  Result<uint64_t> BumpEpoch() const;

 private:
  StateStore& store_;
};

// One registered contact of an extension (runtime table, replicated): what a new active
// needs to reach the phone.
struct Registration {
  std::string number;      // the extension
  std::string binding_id;  // stable id of the contact within the extension (the key)
  std::string contact;     // Contact URI as registered
  std::string received_host;
  uint32_t received_port = 0;
  std::string transport;  // udp | tcp | tls
  std::vector<std::string> path;
  int64_t expires_unix = 0;
  int64_t registered_unix = 0;
  std::string user_agent;
  std::string call_id;
  uint32_t cseq = 0;
  bool qualify_ok = true;
  uint32_t qualify_rtt_ms = 0;
  int64_t qualify_unix = 0;  // 0: never qualified
  std::string instance;      // +sip.instance

  bool operator==(const Registration&) const = default;
};

class RegistrationRepo {
 public:
  explicit RegistrationRepo(StateStore& store) : store_(store) {}
  // Every binding (number "" ) or those of one extension, in key order.
  Result<std::vector<Registration>> List(const std::string& number = "") const;
  void Put(const Registration& reg, WriteSet& writes) const;
  void Delete(const std::string& number, const std::string& binding_id, WriteSet& writes) const;
  static std::string Prefix();  // "reg/"
  static std::string Key(const std::string& number, const std::string& binding_id);
  // NotFound for a deletion; `number`/`binding_id` then come from KeyParts().
  static Result<Registration> Decode(const Change& change);
  static bool KeyParts(const std::string& key, std::string* number, std::string* binding_id);
  // Exposed for tests: the stored bytes of a record and back.
  static std::string Encode(const Registration& reg);
  static Result<Registration> DecodeValue(std::string_view key, std::string_view bytes);

 private:
  StateStore& store_;
};

// A source banned by intrusion protection (runtime table, replicated).
struct Ban {
  std::string ip;  // the key
  std::string reason;
  int64_t banned_unix = 0;
  int64_t until_unix = 0;
  uint32_t failures = 0;

  bool operator==(const Ban&) const = default;
};

class BanRepo {
 public:
  explicit BanRepo(StateStore& store) : store_(store) {}
  Result<Ban> Get(const std::string& ip) const;  // NotFound if absent
  Result<std::vector<Ban>> List() const;
  void Put(const Ban& ban, WriteSet& writes) const;
  // With `must_exist`, also the precondition that the ban exists (Conflict otherwise).
  void Delete(const std::string& ip, bool must_exist, WriteSet& writes) const;
  static std::string Prefix();  // "ban/"
  static std::string Key(const std::string& ip);
  static Result<Ban> Decode(const Change& change);  // NotFound for a deletion

 private:
  StateStore& store_;
};

// The configuration as a whole (Table::kConfig: extensions, users, settings and whatever
// later features keep there), for backup and restore (node/admin). Runtime state and
// records are not part of it.
struct ConfigRecord {
  std::string key;
  std::string value;
  bool operator==(const ConfigRecord&) const = default;
};
// Every config record in key order. The settings come without their token secret: a backup
// carries no signing key.
Result<std::vector<ConfigRecord>> ExportConfig(const StateStore& store);
// Checks every record of `records` (a typed decode for extensions, users and settings, a
// well-formed Cap'n Proto message for any other key; the settings must be there) and adds
// to `writes` the replacement of the whole config table by them, keeping this node's token
// secret and first-boot flag. InvalidArgument naming the first bad record; then `writes` is
// unchanged.
Status AddConfigReplace(StateStore& store, const std::vector<ConfigRecord>& records,
                        WriteSet& writes);

// The HTTPS certificate an admin uploaded (config table, so that it survives restarts,
// reaches the standby and is part of a backup). node/admin validates it before it is stored.
struct ApiCertificate {
  std::string key_pem;
  std::string cert_pem;
  std::string chain_pem;  // may be empty
  int64_t uploaded_unix = 0;
  std::string uploaded_by;
  bool operator==(const ApiCertificate&) const = default;
};

class CertificateRepo {
 public:
  explicit CertificateRepo(StateStore& store) : store_(store) {}
  Result<ApiCertificate> Get() const;  // NotFound if none was uploaded
  void Put(const ApiCertificate& cert, WriteSet& writes) const;
  static std::string Key();  // "cert/api"

 private:
  StateStore& store_;
};

// A SIP trunk (FEATURES.md §5.3, config table). The password is kept in clear because the
// carrier's realm and digest algorithm are known only from its challenge; the API never
// returns it.
struct Trunk {
  std::string name;  // the key: 1-32 of [A-Za-z0-9_-]
  bool enabled = true;
  std::string mode = "register";  // register | peer
  std::string host;
  uint32_t port = 5060;
  std::string transport = "udp";  // udp | tcp | tls
  std::string username;
  std::string auth_user;  // empty: username
  std::string password;
  std::string domain;  // empty: host
  std::string outbound_proxy;
  std::vector<std::string> codecs = {"PCMU", "PCMA"};
  std::string dtmf_mode = "rfc4733";
  std::string cli_mode = "extension";  // trunk | extension
  std::string outbound_cli;
  uint32_t max_calls = 0;          // 0: unlimited
  uint32_t no_answer_timeout = 0;  // seconds; 0: system default
  bool new_call_id_per_register = false;
  uint32_t expiry = 3600;
  uint32_t retry_interval = 30;
  uint32_t max_retries = 0;  // 0: never give up
  uint32_t qualify_interval = 60;
  uint32_t refresh_percent = 80;
  int64_t created_unix = 0;
  int64_t updated_unix = 0;

  bool operator==(const Trunk&) const = default;
};

class TrunkRepo {
 public:
  explicit TrunkRepo(StateStore& store) : store_(store) {}
  Result<Trunk> Get(const std::string& name) const;  // NotFound if absent
  Result<std::vector<Trunk>> List() const;
  void Put(const Trunk& trunk, bool create, WriteSet& writes) const;
  void Delete(const std::string& name, WriteSet& writes) const;
  static std::string Prefix();                        // "trunk/"
  static Result<Trunk> Decode(const Change& change);  // NotFound for a deletion

 private:
  StateStore& store_;
};

// The registration state of a trunk (runtime table, replicated).
struct TrunkState {
  std::string name;
  std::string call_id;
  uint32_t cseq = 0;
  std::string state;  // registered | failed | unreachable | idle
  int64_t expires_unix = 0;
  uint32_t last_code = 0;
  std::string last_reason;
  int64_t updated_unix = 0;
  uint32_t failures = 0;
  bool qualify_ok = false;
  uint32_t qualify_rtt_ms = 0;
  int64_t qualify_unix = 0;

  bool operator==(const TrunkState&) const = default;
};

class TrunkStateRepo {
 public:
  explicit TrunkStateRepo(StateStore& store) : store_(store) {}
  Result<TrunkState> Get(const std::string& name) const;  // NotFound if absent
  Result<std::vector<TrunkState>> List() const;
  void Put(const TrunkState& state, WriteSet& writes) const;
  void Delete(const std::string& name, WriteSet& writes) const;
  static std::string Prefix();  // "trunkreg/"

 private:
  StateStore& store_;
};

// --- The dial plan (FEATURES.md §4.3-4.7, §5.6-5.9), read by sip/routing. ---

// Where an inbound call goes: {type, id}. Types are a registry (DestinationTypes), so ring
// groups, IVRs, queues and voicemail join later without changes here.
struct Destination {
  std::string type;  // "extension" | "time_condition" | "hangup" | later types
  std::string id;    // the extension number, the time condition's name; "" for hangup
  bool operator==(const Destination&) const = default;
};

// One dial rule of an outbound route: the number must start with `prefix` (stripped), the
// rest must match `pattern`, and `prepend` is put in front of what is sent.
struct DialRule {
  std::string prefix;
  std::string pattern = ".";
  std::string prepend;
};

struct OutboundRoute {
  std::string name;
  std::vector<DialRule> rules;      // tried in order
  std::vector<std::string> trunks;  // failover order
  std::string caller_id;            // overrides the extension's CLI when set
  uint32_t time_limit = 0;          // seconds, 0: none (else 60-3600)
  std::string time_condition;       // usable only in working hours when set
  std::string pin_set;              // PIN required when set
};

// A class of service: which routes an extension may use, in order (FEATURES.md §5.7).
struct Permission {
  std::string name;
  bool enabled = true;
  std::vector<std::string> routes;
};

struct PinSet {
  std::string name;
  std::vector<std::string> pins;
};

// Weekly working hours plus holidays, with a destination for each case (FEATURES.md §4.3).
struct TimeRange {
  uint8_t days = 0;           // bit 0 = Sunday ... bit 6 = Saturday
  uint16_t start_minute = 0;  // minutes after midnight, inclusive
  uint16_t end_minute = 0;    // exclusive
};
struct DateRange {
  std::string first;  // "YYYY-MM-DD", inclusive
  std::string last;   // inclusive
};
struct TimeCondition {
  std::string name;
  std::vector<TimeRange> working;
  std::vector<DateRange> holidays;
  Destination when_working;
  Destination when_closed;
  std::optional<Destination> when_holiday;  // absent: as closed
};

// Routes by called DID, caller number, or both (FEATURES.md §4.5): empty patterns match all.
struct DidRoute {
  std::string name;
  std::string trunk;  // empty: any trunk
  std::string did_pattern;
  std::string caller_pattern;
  Destination destination;
};

struct InboundRoute {
  std::string trunk;
  Destination destination;
};

struct BlacklistEntry {
  std::string number;  // an exact number, or a prefix ending in '*'
  std::string creator;
  int64_t created_unix = 0;
};

// Global inbound switches (config "settings/routing").
struct RoutingSettings {
  bool block_anonymous = false;
  bool office_pause = false;  // on: every inbound call goes to office_pause_destination
  Destination office_pause_destination;
};

// The dial plan's named records (config table), one repository shape for all of them. The
// key of a record is its name (an inbound route's trunk, a blacklist entry's number).
template <typename T>
class DialPlanRepo {
 public:
  explicit DialPlanRepo(StateStore& store) : store_(store) {}
  Result<T> Get(const std::string& key) const;  // NotFound if absent
  Result<std::vector<T>> List() const;
  // `create` also adds the precondition that it is new, else that it exists.
  void Put(const T& record, bool create, WriteSet& writes) const;
  // Adds the delete and the precondition that the record exists.
  void Delete(const std::string& key, WriteSet& writes) const;
  static std::string Prefix();  // "route/<kind>/"
  static std::string KeyOf(const T& record);

 private:
  StateStore& store_;
};
using OutboundRouteRepo = DialPlanRepo<OutboundRoute>;
using PermissionRepo = DialPlanRepo<Permission>;
using PinSetRepo = DialPlanRepo<PinSet>;
using TimeConditionRepo = DialPlanRepo<TimeCondition>;
using DidRouteRepo = DialPlanRepo<DidRoute>;
using InboundRouteRepo = DialPlanRepo<InboundRoute>;
using BlacklistRepo = DialPlanRepo<BlacklistEntry>;

class RoutingSettingsRepo {
 public:
  explicit RoutingSettingsRepo(StateStore& store) : store_(store) {}
  Result<RoutingSettings> Get() const;  // defaults if never written
  void Put(const RoutingSettings& settings, WriteSet& writes) const;

 private:
  StateStore& store_;
};

// One side of a call in progress (runtime, replicated): a SIP dialog as the PBX holds it.
struct CallDialog {
  std::string call_id;
  std::string local_tag;
  std::string remote_tag;
  std::string local_uri;   // From of the requests the PBX sends (display name included)
  std::string remote_uri;  // To of those requests
  std::string target;      // the phone's Contact (Request-URI of in-dialog requests)
  std::string route;       // where requests go: "sip:host:port;transport=udp"
  uint32_t local_cseq = 0;
  uint32_t remote_cseq = 0;
  uint32_t session_interval = 0;       // RFC 4028: negotiated seconds; 0: no session timer
  bool session_pbx_refreshes = false;  // whether the PBX is the refresher of this dialog
  std::vector<std::string> route_set;  // Route URIs of in-dialog requests, first hop first
  bool operator==(const CallDialog&) const = default;
};

// A call in progress, stored at answer and deleted at the end (issue 6 rebuilds from it).
struct ActiveCall {
  uint64_t id = 0;  // the key
  std::string caller;
  std::string caller_name;
  std::string callee;
  int64_t start_unix = 0;
  int64_t answer_unix = 0;
  CallDialog a, b;
  uint16_t a_port = 0, b_port = 0;  // the relay's ports
  std::string offer, answer;        // last SDP offer/answer as the phones sent them
  bool offer_from_b = false;
  int64_t start_unix_ms = 0, answer_unix_ms = 0;  // the CDR's times after a failover
  std::string dialled;                            // the CDR's callee
  std::string type, trunk;                        // the CDR's type and trunk
  uint32_t max_duration = 0;                      // seconds; 0: no limit
  // A ringing call (answer_unix 0): the caller's INVITE as received, each INVITE sent to the
  // callee, when ringing gives up, the extension rung (sip/calls/recovery.h).
  struct Branch {
    std::string invite;  // as sent, Via included
    std::string target;  // the registered contact
    std::string route;   // "sip:host:port;transport=udp"
    bool operator==(const Branch&) const = default;
  };
  std::string caller_invite;
  std::vector<Branch> ringing;
  int64_t ring_deadline_unix_ms = 0;
  std::string rung_extension;
  std::string pin;  // the CDR's pin
  bool operator==(const ActiveCall&) const = default;
};

class ActiveCallRepo {
 public:
  explicit ActiveCallRepo(StateStore& store) : store_(store) {}
  Result<std::vector<ActiveCall>> List() const;
  static void Put(const ActiveCall& call, WriteSet& writes);
  static void Delete(uint64_t id, WriteSet& writes);
  static std::string Key(uint64_t id);  // "call/<20-digit id>"

 private:
  StateStore& store_;
};

// A call detail record (FEATURES.md 10.1), records table.
struct Cdr {
  uint64_t id = 0;
  int64_t start_unix_ms = 0;
  int64_t answer_unix_ms = 0;  // 0: not answered
  int64_t end_unix_ms = 0;
  std::string caller;
  std::string caller_name;
  std::string callee;             // as dialled
  std::string final_callee;       // who answered, or was rung last
  uint32_t duration_seconds = 0;  // start to end
  uint32_t billable_seconds = 0;  // answer to end
  std::string trunk;              // empty for internal calls
  std::string type = "internal";  // internal | inbound | outbound
  std::string status;             // answered | no_answer | busy | failed | cancelled
  std::string cause;              // SIP status or reason that ended it
  std::string hangup_side;        // caller | callee | pbx
  bool recorded = false;
  std::string pin;  // the PIN entered for an outbound route's PIN set; empty: none asked
  bool operator==(const Cdr&) const = default;
};

struct CdrQuery {
  int64_t from_unix_ms = 0;          // start time >= from
  int64_t to_unix_ms = INT64_MAX;    // start time < to
  std::string caller, callee, type;  // exact match when not empty
  std::string pin;                   // exact match when not empty
  size_t limit = 100;                // 0: all
};

class CdrRepo {
 public:
  explicit CdrRepo(StateStore& store) : store_(store) {}
  static void Append(const Cdr& cdr, WriteSet& writes);
  // Oldest first within the range. The key starts with the start time, so the range is
  // a scan of the longest common key prefix of `from` and `to`.
  Result<std::vector<Cdr>> Query(const CdrQuery& query) const;
  static std::string Key(int64_t start_unix_ms, uint64_t id);

 private:
  StateStore& store_;
};

// Call forward, follow-me and DND of one extension (FEATURES.md §7.1, §7.2, §9), config
// table "fwd/<number>", replicated. node/admin validates it; sip/calls acts on it.
struct ForwardRule {
  bool active = false;
  std::string number;
  bool operator==(const ForwardRule&) const = default;
};
struct FollowMeStep {
  std::string number;
  uint32_t ring_seconds = 20;
  bool operator==(const FollowMeStep&) const = default;
};
struct Forwarding {
  std::string extension;  // the key
  bool dnd = false;
  uint32_t dnd_status = 486;            // 486 | 480 | 603
  ForwardRule always, busy, no_answer;  // CFU wins over CFB and CFNA
  uint32_t ring_seconds = 0;            // ring time before CFNA; 0: the system ring_timeout
  bool follow_me = false;
  uint32_t follow_me_ring_seconds = 30;  // the extension itself first
  std::vector<FollowMeStep> follow_me_list;
  int64_t updated_unix = 0;
  bool operator==(const Forwarding&) const = default;
};

class ForwardingRepo {
 public:
  explicit ForwardingRepo(StateStore& store) : store_(store) {}
  // The extension's settings; defaults (nothing set) if never written.
  Result<Forwarding> Get(const std::string& extension) const;
  Result<std::vector<Forwarding>> List() const;
  static void Put(const Forwarding& f, WriteSet& writes);
  static void Delete(const std::string& extension, WriteSet& writes);
  static std::string Prefix();  // "fwd/"

 private:
  StateStore& store_;
};

}  // namespace pbx::store
