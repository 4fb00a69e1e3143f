# Wire format of the heartbeats between the two nodes of a pair (HeartbeatLink): one
# single-segment Cap'n Proto Heartbeat in one NNG pair1 message, every hb_interval in each
# direction, on its own socket so that a large log message never delays one. The C++ is
# generated at build time (node/cluster/heartbeat.capnp.h in the build tree), never committed.
#
# Evolution rules: field numbers are APPEND ONLY. Never renumber, retype or remove a field
# (rename it "obsoleteX" instead); add fields with the next free number and bump `version`
# only when the meaning of an old field changes. Enumerants are append-only too; a receiver
# drops a heartbeat whose role it does not know. Nodes of different versions must keep
# working together during a rolling upgrade.
@0x94ed7b70c47afb0e;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("pbx::cluster::wire");

# pbx::cluster::Role.
enum NodeRole {
  unknown @0;
  starting @1;
  syncing @2;
  standby @3;
  active @4;
  isolated @5;
  maintenance @6;
}

struct Heartbeat {
  # Protocol version of the sender (1). Zero means "not a heartbeat" and is dropped.
  version @0 :UInt32;
  # Which pair; a heartbeat of another pair is dropped.
  clusterId @1 :Text;
  # The sender; a heartbeat carrying the receiver's own name is dropped.
  nodeName @2 :Text;
  # Random per HeartbeatLink instance: orders heartbeats with sentAtNs across restarts.
  instanceId @3 :UInt64;
  role @4 :NodeRole;
  # The sender's replication epoch and latest sequence number (committed or applied).
  epoch @5 :UInt64;
  lastSeq @6 :UInt64;
  # The sender is active and commits without its standby's acknowledgement.
  degraded @7 :Bool;
  # Switchover: the sender (the old active) hands over at this sequence number; 0 = none.
  takeOverAtSeq @8 :UInt64;
  # The sender's hb_interval * hb_dead: when it declares its peer dead.
  deadAfterMs @9 :UInt32;
  # The sender's monotonic clock when sending, in ns. Meaningless to the receiver except
  # to be echoed back.
  sentAtNs @10 :Int64;
  # sentAtNs of the newest heartbeat the sender had received from the receiver (0: none),
  # and how long the sender had held it before sending this one: the receiver's RTT is
  # now - echoSentAtNs - echoHeldNs, without synchronised clocks.
  echoSentAtNs @11 :Int64;
  echoHeldNs @12 :Int64;
}
