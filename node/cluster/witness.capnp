# Wire format between a node (WitnessClient) and pbx-witness (WitnessServer): one
# LeaseRequest, one LeaseReply, each a single-segment Cap'n Proto message in one NNG req/rep
# message. The C++ is generated at build time (node/cluster/witness.capnp.h in the build
# tree), never committed: generated code is tied to the installed capnp version.
#
# Evolution rules: field numbers are APPEND ONLY. Never renumber, retype or remove a field
# (rename it "obsoleteX" instead); add fields with the next free number and bump `version`
# only when the meaning of an old field changes. A witness and nodes of different versions
# must keep working during a rolling upgrade.
@0x9f1f65448f5d73d1;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("pbx::cluster::wire");

struct LeaseRequest {
  # Protocol version of the sender (1). Zero means "not a witness message" and is refused.
  version @0 :UInt32;
  # Which pair the lease belongs to; one witness serves several pairs independently.
  clusterId @1 :Text;
  # Who asks: the lease is granted to, renewed for or released by this name.
  nodeName @2 :Text;
  # The requester's replication epoch (DESIGN.md §3). Logged by the witness.
  epoch @3 :UInt64;
  # Requested lease length, counted from when the witness receives the request.
  leaseMs @4 :UInt32;
  # True: the holder gives the lease up at once (planned switchover).
  release @5 :Bool;
  # witnessBootId of a lease the requester still holds from an earlier witness process, or 0.
  # Lets the holder keep its lease through a witness restart (see witness_lease.h).
  heldBootId @6 :UInt64;
}

struct LeaseReply {
  version @0 :UInt32;
  # True: the requester now holds the lease for the leaseMs it asked for.
  granted @1 :Bool;
  # The current holder (the requester when granted), or empty if nobody holds it.
  holder @2 :Text;
  # How much longer the current holder's lease runs, rounded up; while the witness is in its
  # start-up hold and nobody holds the lease, how long until the hold ends.
  remainingMs @3 :UInt32;
  # Random per witness process: a change tells a node the witness restarted.
  witnessBootId @4 :UInt64;
  # Non-empty when the request was malformed or out of bounds (then granted is false).
  error @5 :Text;
}
