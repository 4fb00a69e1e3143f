# Records stored in the replicated state store (DESIGN.md §3). The typed repositories in
# replication/store/repos.cc are the only code that reads or writes them.
#
# Evolution rules: field numbers are APPEND ONLY. Never renumber, retype or remove a field
# (rename it "obsoleteX" instead); add new fields with the next free number. Old records then
# decode with the new field at its default, so no migration is ever needed, and active and
# standby may run different versions during an upgrade. Defaults below mirror repos.h.
@0xd8136daa6042464b;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("pbx::schema");

# An IP (SIP) extension. Key: config "ext/<number>".
struct Extension {
  number @0 :Text;
  name @1 :Text;
  email @2 :Text;
  mobile @3 :Text;
  realm @4 :Text;
  ha1Md5 @5 :Text;
  ha1Sha256 @6 :Text;
  dialPermission @7 :Text = "DialPlan1";
  outboundCli @8 :Text;
  language @9 :Text = "en";
  moh @10 :Text = "default";
  voicemail @11 :Bool = true;
  voicemailPin @12 :Text = "1234";
  remoteRegistration @13 :Bool = false;
  maxContacts @14 :UInt32 = 1;
  webLogin @15 :Bool = false;
  registrationExpiry @16 :UInt32 = 120;
  transport @17 :Text = "udp";
  dtmfMode @18 :Text = "rfc4733";
  qualifyInterval @19 :UInt32 = 60;
  nat @20 :Bool = true;
  trustedAddresses @21 :List(Text);
  codecs @22 :List(Text) = ["PCMU", "PCMA", "G722"];
  recording @23 :Text = "off";
  createdUnix @24 :Int64;
  updatedUnix @25 :Int64;
  callWaiting @26 :Bool = true;  # off: a second call while in a call gets 486 Busy Here
  # Next free number: @27 (append only).
}

# Enumerants are append only too: their ordinal is what is stored.
enum Role {
  admin @0;
  operator @1;
  api @2;
  extension @3;
}

# A web/API account. Key: config "user/<name>".
struct User {
  name @0 :Text;
  role @1 :Role = operator;
  passwordSalt @2 :Data;
  passwordHash @3 :Data;
  kdfIterations @4 :UInt32;
  createdUnix @5 :Int64;
  # Next free number: @6 (append only).
}

# Cluster-wide settings. Key: config "settings/system".
struct SystemSettings {
  sipRealm @0 :Text = "pbx";
  tokenSecret @1 :Data;
  firstBootDone @2 :Bool = false;
  # Registrar: the expiry a REGISTER may ask for is clamped to [min, max] (seconds).
  regExpiryMin @3 :UInt32 = 60;
  regExpiryMax @4 :UInt32 = 3600;
  # Intrusion protection (FEATURES.md 13.2-13.4): banMaxRetries failures within
  # banFindTime seconds ban the source for banTime seconds.
  banEnabled @5 :Bool = true;
  banMaxRetries @6 :UInt32 = 5;
  banFindTime @7 :UInt32 = 60;
  banTime @8 :UInt32 = 3600;
  banTrustPrivate @9 :Bool = true;  # RFC 1918 sources are never banned
  ipAllow @10 :List(Text);          # IP or CIDR: never banned
  ipDeny @11 :List(Text);           # IP or CIDR: always dropped
  # Calls (FEATURES.md 8.1, 8.2; read by the B2BUA from the registrar's cache).
  ringTimeout @12 :UInt32 = 30;         # seconds a call rings before the caller gets 480
  maxCallDuration @13 :UInt32 = 10800;  # seconds of talk before the PBX hangs up; 0: none
  noRtpTimeout @14 :UInt32 = 0;         # seconds without RTP from either phone; 0: off
  sessionTimers @15 :Bool = false;      # RFC 4028 session timers offered and enforced
  sessionExpires @16 :UInt32 = 1800;    # the interval the PBX asks for (90-7200 s)
  sessionMinSe @17 :UInt32 = 90;        # the smallest interval it accepts (Min-SE)
  # Next free number: @18 (append only).
}

# One change made through the REST API (who, when, from where, what). Key: records
# "audit/<20-digit (2^64-1 - unixMs)>-<8 hex>", so a prefix scan lists the newest first.
struct AuditEntry {
  unixMs @0 :Int64;
  user @1 :Text;
  role @2 :Text;
  source @3 :Text;   # the client's address
  action @4 :Text;   # "<object>.<verb>", e.g. "extension.create"
  target @5 :Text;   # the object's key, e.g. "2001"
  detail @6 :Text;   # what changed; never a secret
  # Next free number: @7 (append only).
}

# Identity of the cluster and the promotion epoch. Key: meta "cluster".
struct ClusterMeta {
  clusterId @0 :Text;
  epoch @1 :UInt64;
  createdUnix @2 :Int64;
  # Next free number: @3 (append only).
}

# The column-family name -> id map, written once at DB creation. Key: meta "cf_map".
# Checked at every open (and later in the replication handshake) because WriteBatch bytes
# carry CF ids, not names.
struct ColumnFamilyMap {
  entries @0 :List(Entry);
  struct Entry {
    name @0 :Text;
    id @1 :UInt32;
  }
  # Next free number: @1 (append only).
}

# A registered contact of an extension (location service). Key: runtime
# "reg/<number>/<binding id>". Carries what a new active needs to reach the phone.
struct Registration {
  number @0 :Text;
  bindingId @1 :Text;
  contact @2 :Text;        # the Contact URI as registered
  receivedHost @3 :Text;   # where the REGISTER came from (NAT: reach the phone there)
  receivedPort @4 :UInt32;
  transport @5 :Text;      # udp | tcp | tls
  path @6 :List(Text);     # Path header values (RFC 3327), in order
  expiresUnix @7 :Int64;
  registeredUnix @8 :Int64;
  userAgent @9 :Text;
  callId @10 :Text;
  cseq @11 :UInt32;
  qualifyOk @12 :Bool = true;  # last keep-alive OPTIONS answered
  qualifyRttMs @13 :UInt32;
  qualifyUnix @14 :Int64;      # when that answer (or timeout) was seen; 0: never
  instance @15 :Text;          # +sip.instance, if the phone sent one
  # Next free number: @16 (append only).
}

# A source address banned by intrusion protection. Key: runtime "ban/<ip>".
struct Ban {
  ip @0 :Text;
  reason @1 :Text;
  bannedUnix @2 :Int64;
  untilUnix @3 :Int64;
  failures @4 :UInt32;
  # Next free number: @5 (append only).
}

# The HTTPS certificate an admin uploaded (PUT /api/v1/certificate), replacing the node's
# self-signed one on both nodes. Key: config "cert/api". PEM text; the key is unencrypted.
struct ApiCertificate {
  keyPem @0 :Text;
  certPem @1 :Text;
  chainPem @2 :Text;       # intermediates, may be empty
  uploadedUnix @3 :Int64;
  uploadedBy @4 :Text;
  # Next free number: @5 (append only).
}

# A SIP trunk (FEATURES.md §5.3). Key: config "trunk/<name>". Register mode registers to
# the carrier with digest; peer mode is authenticated by address and only qualified.
struct Trunk {
  name @0 :Text;
  enabled @1 :Bool = true;
  mode @2 :Text = "register";     # register | peer
  host @3 :Text;
  port @4 :UInt32 = 5060;
  transport @5 :Text = "udp";     # udp | tcp | tls
  username @6 :Text;
  authUser @7 :Text;              # empty: username
  password @8 :Text;              # clear: the carrier's realm and algorithm are only known
                                  # from its challenge; never returned by the API
  domain @9 :Text;                # empty: host
  outboundProxy @10 :Text;
  codecs @11 :List(Text) = ["PCMU", "PCMA"];
  dtmfMode @12 :Text = "rfc4733";
  cliMode @13 :Text = "extension";  # trunk | extension: whose caller ID goes out
  outboundCli @14 :Text;
  maxCalls @15 :UInt32;           # 0: unlimited
  noAnswerTimeout @16 :UInt32;    # seconds; 0: the system default
  newCallIdPerRegister @17 :Bool = false;
  expiry @18 :UInt32 = 3600;
  retryInterval @19 :UInt32 = 30;
  maxRetries @20 :UInt32;         # 0: never give up
  qualifyInterval @21 :UInt32 = 60;  # OPTIONS health check; 0: off
  refreshPercent @22 :UInt32 = 80;   # refresh at this share of the granted expiry
  createdUnix @23 :Int64;
  updatedUnix @24 :Int64;
  # Next free number: @25 (append only).
}

# The registration state of a trunk. Key: runtime "trunkreg/<name>". Replicated, so a new
# active continues the Call-ID and CSeq sequence (RFC 3261 §10.2.4).
struct TrunkState {
  name @0 :Text;
  callId @1 :Text;
  cseq @2 :UInt32;
  state @3 :Text;          # registered | failed | unreachable | idle
  expiresUnix @4 :Int64;
  lastCode @5 :UInt32;
  lastReason @6 :Text;
  updatedUnix @7 :Int64;
  failures @8 :UInt32;
  qualifyOk @9 :Bool;
  qualifyRttMs @10 :UInt32;
  qualifyUnix @11 :Int64;
  # Next free number: @12 (append only).
}

# --- The dial plan (FEATURES.md §4.3-4.7, §5.6-5.9), read by sip/routing. ---

# Where an inbound call goes. Types are a registry (extension, time_condition, hangup, and
# later ring groups, IVRs, queues, voicemail), so new types need no schema change.
struct Destination {
  type @0 :Text;
  id @1 :Text;
}

struct DialRule {
  prefix @0 :Text;     # must start the number; stripped
  pattern @1 :Text = ".";
  prepend @2 :Text;
}

# Key: config "route/out/<name>".
struct OutboundRoute {
  name @0 :Text;
  rules @1 :List(DialRule);
  trunks @2 :List(Text);   # failover order
  callerId @3 :Text;
  timeLimit @4 :UInt32;    # seconds; 0: none
  timeCondition @5 :Text;
  pinSet @6 :Text;
  # Next free number: @7 (append only).
}

# A class of service. Key: config "route/perm/<name>".
struct Permission {
  name @0 :Text;
  enabled @1 :Bool = true;
  routes @2 :List(Text);   # outbound routes, in order
  # Next free number: @3 (append only).
}

# Key: config "route/pin/<name>".
struct PinSet {
  name @0 :Text;
  pins @1 :List(Text);
  # Next free number: @2 (append only).
}

struct TimeRange {
  days @0 :UInt8;          # bit 0 = Sunday
  startMinute @1 :UInt16;
  endMinute @2 :UInt16;
}

struct DateRange {
  first @0 :Text;          # YYYY-MM-DD, inclusive
  last @1 :Text;
}

# Key: config "route/time/<name>".
struct TimeCondition {
  name @0 :Text;
  working @1 :List(TimeRange);
  holidays @2 :List(DateRange);
  whenWorking @3 :Destination;
  whenClosed @4 :Destination;
  whenHoliday @5 :Destination;
  hasWhenHoliday @6 :Bool;  # false: holidays go where closed hours go
  # Next free number: @7 (append only).
}

# Key: config "route/did/<name>".
struct DidRoute {
  name @0 :Text;
  trunk @1 :Text;           # empty: any trunk
  didPattern @2 :Text;
  callerPattern @3 :Text;
  destination @4 :Destination;
  # Next free number: @5 (append only).
}

# Key: config "route/in/<trunk>".
struct InboundRoute {
  trunk @0 :Text;
  destination @1 :Destination;
  # Next free number: @2 (append only).
}

# Key: config "route/black/<number>".
struct BlacklistEntry {
  number @0 :Text;          # exact, or a prefix ending in '*'
  creator @1 :Text;
  createdUnix @2 :Int64;
  # Next free number: @3 (append only).
}

# Key: config "settings/routing".
struct RoutingSettings {
  blockAnonymous @0 :Bool;
  officePause @1 :Bool;     # on: every inbound call goes to officePauseDestination
  officePauseDestination @2 :Destination;
  # Next free number: @3 (append only).
}

# One side of a call in progress: a SIP dialog as the PBX holds it.
struct CallDialog {
  callId @0 :Text;
  localTag @1 :Text;
  remoteTag @2 :Text;
  localUri @3 :Text;    # From of the requests the PBX sends (display name included)
  remoteUri @4 :Text;   # To of those requests
  target @5 :Text;      # the phone's Contact: the Request-URI of in-dialog requests
  route @6 :Text;       # where those requests go (the phone's source address, NAT-safe)
  localCseq @7 :UInt32;
  remoteCseq @8 :UInt32;
  # RFC 4028 session timer of this dialog: the negotiated interval (seconds; 0: none) and
  # whether the PBX is the refresher.
  sessionInterval @9 :UInt32;
  sessionPbxRefreshes @10 :Bool;
  # The route set (RFC 3261 §12.1): Route URIs of in-dialog requests, first hop first.
  routeSet @11 :List(Text);
  # Next free number: @12 (append only).
}

# A call in progress, written at answer and deleted at its end, so that a new active can
# rebuild it (issue 6). Key: runtime "call/<20-digit id>".
struct ActiveCall {
  id @0 :UInt64;
  caller @1 :Text;
  callerName @2 :Text;
  callee @3 :Text;
  startUnix @4 :Int64;
  answerUnix @5 :Int64;
  a @6 :CallDialog;     # the caller's dialog
  b @7 :CallDialog;     # the callee's dialog
  aPort @8 :UInt32;     # the relay's ports (CallMedia::CreateAt)
  bPort @9 :UInt32;
  offer @10 :Text;      # the last SDP offer and answer as the phones sent them, to
  answer @11 :Text;     # replay into CallMedia after a failover
  offerFromB @12 :Bool; # which side made that offer
  startUnixMs @13 :Int64;   # startUnix and answerUnix in ms, for the one CDR of a call
  answerUnixMs @14 :Int64;  # that spans a failover
  dialled @15 :Text;        # the number as dialled (the CDR's callee)
  type @16 :Text;           # internal | outbound | inbound (the CDR's type)
  trunk @17 :Text;          # the trunk of the B leg (outbound) or of A (inbound)
  maxDuration @18 :UInt32;  # seconds of talk allowed (the route's limit or the setting)
  # A call still ringing (answerUnix 0, stored at its first provisional response to the
  # caller) carries what a new active needs to go on with both INVITE transactions: the
  # caller's INVITE as the PBX received it, each INVITE the PBX sent to the callee (with
  # its Via branch), when ringing gives up and the extension rung.
  callerInvite @19 :Text;
  ringing @20 :List(RingingBranch);
  ringDeadlineUnixMs @21 :Int64;
  rungExtension @22 :Text;
  pin @23 :Text;            # the PIN entered for the route's PIN set (the CDR's pin)
  # Next free number: @24 (append only).
}

# One INVITE of a ringing call to one binding of the callee (ActiveCall.ringing).
struct RingingBranch {
  invite @0 :Text;  # as sent, Via included
  target @1 :Text;  # the registered contact
  route @2 :Text;   # where it was sent: "sip:host:port;transport=udp"
  # Next free number: @3 (append only).
}

# A call detail record (FEATURES.md 10.1). Key: records "cdr/<20-digit start ms>-<16 hex id>",
# so keys sort by start time and a time range is a prefix scan.
struct Cdr {
  id @0 :UInt64;
  startUnixMs @1 :Int64;
  answerUnixMs @2 :Int64;   # 0: not answered
  endUnixMs @3 :Int64;
  caller @4 :Text;
  callerName @5 :Text;
  callee @6 :Text;          # as dialled
  finalCallee @7 :Text;     # who answered (or was rung last)
  durationSeconds @8 :UInt32;  # start to end
  billableSeconds @9 :UInt32;  # answer to end
  trunk @10 :Text;          # empty for internal calls
  type @11 :Text;           # internal | inbound | outbound
  status @12 :Text;         # answered | no_answer | busy | failed | cancelled
  cause @13 :Text;          # the SIP status or reason that ended the call
  hangupSide @14 :Text;     # caller | callee | pbx
  recorded @15 :Bool;
  pin @16 :Text;            # the PIN entered for an outbound route's PIN set (FEATURES 5.9)
  # Next free number: @17 (append only).
}

# One forwarding rule of an extension (FEATURES.md §7.1): where to, and whether it applies.
struct ForwardRule {
  active @0 :Bool;
  number @1 :Text;  # an extension, or an external number with its outbound prefix
}

# One number of a follow-me list (FEATURES.md §7.2), rung for `ringSeconds`.
struct FollowMeStep {
  number @0 :Text;
  ringSeconds @1 :UInt32 = 20;
}

# Call forward, follow-me and DND of one extension (FEATURES.md §7.1, §7.2, §9).
# Key: config "fwd/<number>"; absent: nothing set.
struct Forwarding {
  extension @0 :Text;
  dnd @1 :Bool;
  dndStatus @2 :UInt32 = 486;     # what a caller gets while DND is on: 486, 480 or 603
  always @3 :ForwardRule;         # CFU: wins over the others
  busy @4 :ForwardRule;           # CFB
  noAnswer @5 :ForwardRule;       # CFNA
  ringSeconds @6 :UInt32;         # how long the extension rings before CFNA; 0: ring_timeout
  followMe @7 :Bool;
  followMeRingSeconds @8 :UInt32 = 30;  # the extension itself rings this long first
  followMeList @9 :List(FollowMeStep);
  updatedUnix @10 :Int64;
  # Next free number: @11 (append only).
}
