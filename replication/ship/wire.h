#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "node/core/status.h"
#include "replication/store/wal.h"

// The log-shipping wire format (FORMAT.md) as plain structs, and the frame codec. Internal
// to replication/ship (and its tests, which craft raw frames with it). Cap'n Proto stays
// inside wire.cc: DecodeFrame copies everything out of the message while it still catches
// kj::Exception, so nothing later can throw on a malformed pointer.
namespace pbx::ship {

using store::SeqNo;

// Frame header (16 bytes, little-endian): magic, version, flags (0), body size, CRC-32C of
// the body. The body is one unpacked Cap'n Proto message (schema/ship.capnp, root Message).
inline constexpr uint32_t kFrameMagic = 0x53584250;  // "PBXS"
inline constexpr uint16_t kProtocolVersion = 1;
inline constexpr size_t kFrameHeaderSize = 16;
// Room for the header and the capnp framing around the payload of one frame.
inline constexpr size_t kFrameOverhead = 4096;

struct Hello {
  std::string cluster_id;
  std::string node_name;
  SeqNo last_seq = 0;
  bool was_active = false;
  std::string cf_map;  // the meta/cf_map value of the sender's DB
};

struct Welcome {
  enum class Mode : uint8_t { kStream, kCheckpoint };
  std::string cluster_id;
  std::string node_name;
  Mode mode = Mode::kStream;
  SeqNo start_seq = 0;
  SeqNo active_seq = 0;
};

enum class RefuseReason : uint8_t {
  kBadMessage,
  kClusterMismatch,
  kOldEpoch,
  kStaleActive,
  kCfMapMismatch,
  kShuttingDown,
  kResync,
};
std::string_view RefuseReasonName(RefuseReason reason);

struct Refuse {
  RefuseReason reason = RefuseReason::kBadMessage;
  std::string detail;
};

struct WireBatch {
  store::WalBatch batch;
  uint32_t crc32c = 0;  // of batch.data
};
// `batch` with its checksum.
WireBatch MakeWireBatch(store::WalBatch batch);

struct Batches {
  std::vector<WireBatch> batches;
  SeqNo active_seq = 0;
};

struct CheckpointChunk {
  std::string file;
  uint64_t offset = 0;
  uint32_t crc32c = 0;  // of data
  std::string data;
};

struct CheckpointFile {
  std::string name;
  uint64_t size = 0;
  uint32_t crc32c = 0;  // of the whole file
};

struct CheckpointDone {
  SeqNo seq = 0;
  std::vector<CheckpointFile> files;
};

struct Ack {
  SeqNo applied_seq = 0;
  uint64_t acked_msg_seq = 0;
};

struct Keepalive {
  SeqNo active_seq = 0;
};

using Body =
    std::variant<Hello, Welcome, Refuse, Batches, CheckpointChunk, CheckpointDone, Ack, Keepalive>;

struct Message {
  uint64_t epoch = 0;
  uint64_t session = 0;
  uint64_t msg_seq = 0;
  Body body;
};

// "hello", "batches", ... for log lines.
std::string_view KindName(const Body& body);

// The frame bytes of `message` (header + capnp body).
std::string EncodeFrame(const Message& message);
// The frame bytes with another protocol version in the header (tests of versioning).
std::string EncodeFrameWithVersion(const Message& message, uint16_t version);

// Checks and decodes one frame. Corruption naming the problem for anything else: too short,
// bad magic, another protocol version, truncated or trailing bytes, above
// `max_frame_bytes` (oversized), checksum mismatch, not a Cap'n Proto message, an unknown
// message kind or enumerant. Does not check batch or chunk checksums: the receiver does,
// so that it can name the batch.
Result<Message> DecodeFrame(std::string_view frame, size_t max_frame_bytes);

}  // namespace pbx::ship
