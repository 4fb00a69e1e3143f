# Log-shipping messages between the active (LogShipper) and the standby (LogReceiver).
# replication/ship/FORMAT.md describes the frames around them, the checksums, the handshake
# and the state machines; read it before changing anything here.
#
# Evolution rules as in records.capnp: field numbers and enumerants are APPEND ONLY; new
# fields get the next free number and must be safe to ignore by an older peer. A new kind
# of message (a new union member) or a change of meaning needs a new protocol version in
# the frame header (FORMAT.md, "Versioning").
@0xb477c3b6a061002f;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("pbx::schema::ship");

# The root of every frame.
struct Message {
  epoch @0 :UInt64;    # the sender's epoch (FORMAT.md, "Epochs")
  session @1 :UInt64;  # chosen by the standby in its Hello; every message of the session carries it
  msgSeq @2 :UInt64;   # 1, 2, 3, ... per sender and session: a lost or repeated message is a gap

  union {
    hello @3 :Hello;                      # standby -> active, msgSeq 1
    welcome @4 :Welcome;                  # active -> standby, msgSeq 1
    refuse @5 :Refuse;                    # either way: the sender ends the session
    batches @6 :Batches;                  # active -> standby
    checkpointChunk @7 :CheckpointChunk;  # active -> standby
    checkpointDone @8 :CheckpointDone;    # active -> standby
    ack @9 :Ack;                          # standby -> active
    keepalive @10 :Keepalive;             # active -> standby, when idle
  }
  # Next free number: @11 (append only).
}

struct Hello {
  clusterId @0 :Text;
  nodeName @1 :Text;
  lastSeq @2 :UInt64;    # LatestSeq() of the standby's replicated DB
  wasActive @3 :Bool;    # active since its last full resync: its tail is not to be trusted
  cfMap @4 :Data;        # the standby's meta/cf_map value: column-family ids must agree
  # Next free number: @5 (append only).
}

struct Welcome {
  clusterId @0 :Text;
  nodeName @1 :Text;
  mode @2 :Mode;
  startSeq @3 :UInt64;   # stream: the first seq the next Batches will hold (= lastSeq + 1)
  activeSeq @4 :UInt64;  # LatestSeq() of the active when it answered

  enum Mode {
    stream @0;      # Batches follow, from startSeq
    checkpoint @1;  # CheckpointChunks follow, then CheckpointDone, then (after its Ack) Batches
  }
  # Next free number: @5 (append only).
}

struct Refuse {
  reason @0 :Reason;
  detail @1 :Text;

  enum Reason {
    badMessage @0;       # a frame that did not check out: the peer should start a new session
    clusterMismatch @1;  # different cluster ids: nothing will change until an operator acts
    oldEpoch @2;         # the message came from an older epoch than the receiver's
    staleActive @3;      # the standby has seen a newer epoch than this active: it must step down
    cfMapMismatch @4;    # the column-family maps differ
    shuttingDown @5;     # the sender is leaving; answered by the peer's own, its last message
    resync @6;           # the active cannot go on (WAL gone, batch too large): new session
  }
  # Next free number: @2 (append only).
}

# One RocksDB WriteBatch exactly as it sits in the active's WAL.
struct Batch {
  firstSeq @0 :UInt64;  # the batch holds ops [firstSeq, firstSeq + count - 1]
  count @1 :UInt32;
  crc32c @2 :UInt32;    # CRC-32C of data
  data @3 :Data;        # the WriteBatch representation, unchanged
  # Next free number: @4 (append only).
}

struct Batches {
  batches @0 :List(Batch);  # consecutive: each starts where the previous one ends
  activeSeq @1 :UInt64;     # LatestSeq() of the active when it read them
  # Next free number: @2 (append only).
}

# A piece of one file of the checkpoint. Files are sent one after the other, each from
# offset 0 in order.
struct CheckpointChunk {
  file @0 :Text;      # a plain file name ("000012.sst"), never a path
  offset @1 :UInt64;
  crc32c @2 :UInt32;  # CRC-32C of data
  data @3 :Data;
  # Next free number: @4 (append only).
}

struct CheckpointDone {
  seq @0 :UInt64;  # the checkpoint holds at least every op up to seq
  files @1 :List(FileInfo);

  struct FileInfo {
    name @0 :Text;
    size @1 :UInt64;
    crc32c @2 :UInt32;  # CRC-32C of the whole file
  }
  # Next free number: @2 (append only).
}

struct Ack {
  appliedSeq @0 :UInt64;  # LatestSeq() of the standby's DB: written, synced in the background
  ackedMsgSeq @1 :UInt64; # the active's msgSeq this answers (flow control)
  # Next free number: @2 (append only).
}

struct Keepalive {
  activeSeq @0 :UInt64;
  # Next free number: @1 (append only).
}
