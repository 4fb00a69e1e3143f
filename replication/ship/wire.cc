#include "replication/ship/wire.h"

#include <cstring>
#include <utility>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>

#include "node/core/capnp_codec.h"
#include "replication/schema/ship.capnp.h"
#include "replication/ship/crc32c.h"

namespace pbx::ship {
namespace {

namespace wire = ::pbx::schema::ship;

void PutU16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v & 0xff);
  p[1] = static_cast<char>(v >> 8);
}
void PutU32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint16_t GetU16(const char* p) {
  return static_cast<uint16_t>(static_cast<unsigned char>(p[0]) |
                               (static_cast<unsigned char>(p[1]) << 8));
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

capnp::Data::Reader AsData(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}
capnp::Text::Reader AsText(std::string_view s) { return capnp::Text::Reader(s.data(), s.size()); }
std::string ToString(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}
std::string ToString(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }

// One visitor per message kind, filling the capnp builder.
struct Encoder {
  wire::Message::Builder m;

  void operator()(const Hello& h) {
    auto b = m.initHello();
    b.setClusterId(AsText(h.cluster_id));
    b.setNodeName(AsText(h.node_name));
    b.setLastSeq(h.last_seq);
    b.setWasActive(h.was_active);
    b.setCfMap(AsData(h.cf_map));
  }
  void operator()(const Welcome& w) {
    auto b = m.initWelcome();
    b.setClusterId(AsText(w.cluster_id));
    b.setNodeName(AsText(w.node_name));
    b.setMode(w.mode == Welcome::Mode::kStream ? wire::Welcome::Mode::STREAM
                                               : wire::Welcome::Mode::CHECKPOINT);
    b.setStartSeq(w.start_seq);
    b.setActiveSeq(w.active_seq);
  }
  void operator()(const Refuse& r) {
    auto b = m.initRefuse();
    b.setReason(static_cast<wire::Refuse::Reason>(r.reason));
    b.setDetail(AsText(r.detail));
  }
  void operator()(const Batches& bs) {
    auto b = m.initBatches();
    b.setActiveSeq(bs.active_seq);
    auto list = b.initBatches(static_cast<unsigned>(bs.batches.size()));
    for (unsigned i = 0; i < bs.batches.size(); ++i) {
      const WireBatch& wb = bs.batches[i];
      list[i].setFirstSeq(wb.batch.first_seq);
      list[i].setCount(wb.batch.count);
      list[i].setCrc32c(wb.crc32c);
      list[i].setData(AsData(wb.batch.data));
    }
  }
  void operator()(const CheckpointChunk& c) {
    auto b = m.initCheckpointChunk();
    b.setFile(AsText(c.file));
    b.setOffset(c.offset);
    b.setCrc32c(c.crc32c);
    b.setData(AsData(c.data));
  }
  void operator()(const CheckpointDone& d) {
    auto b = m.initCheckpointDone();
    b.setSeq(d.seq);
    auto files = b.initFiles(static_cast<unsigned>(d.files.size()));
    for (unsigned i = 0; i < d.files.size(); ++i) {
      files[i].setName(AsText(d.files[i].name));
      files[i].setSize(d.files[i].size);
      files[i].setCrc32c(d.files[i].crc32c);
    }
  }
  void operator()(const Ack& a) {
    auto b = m.initAck();
    b.setAppliedSeq(a.applied_seq);
    b.setAckedMsgSeq(a.acked_msg_seq);
  }
  void operator()(const Keepalive& k) { m.initKeepalive().setActiveSeq(k.active_seq); }
};

// Copies a decoded capnp message into our structs. Runs inside the kj::Exception catch.
Result<Message> FromCapnp(wire::Message::Reader m) {
  Message out;
  out.epoch = m.getEpoch();
  out.session = m.getSession();
  out.msg_seq = m.getMsgSeq();
  switch (m.which()) {
    case wire::Message::HELLO: {
      auto r = m.getHello();
      out.body = Hello{ToString(r.getClusterId()), ToString(r.getNodeName()), r.getLastSeq(),
                       r.getWasActive(), ToString(r.getCfMap())};
      break;
    }
    case wire::Message::WELCOME: {
      auto r = m.getWelcome();
      Welcome w;
      w.cluster_id = ToString(r.getClusterId());
      w.node_name = ToString(r.getNodeName());
      switch (r.getMode()) {
        case wire::Welcome::Mode::STREAM:
          w.mode = Welcome::Mode::kStream;
          break;
        case wire::Welcome::Mode::CHECKPOINT:
          w.mode = Welcome::Mode::kCheckpoint;
          break;
        default:
          return Status::Corruption("welcome with unknown mode " +
                                    std::to_string(static_cast<int>(r.getMode())));
      }
      w.start_seq = r.getStartSeq();
      w.active_seq = r.getActiveSeq();
      out.body = std::move(w);
      break;
    }
    case wire::Message::REFUSE: {
      auto r = m.getRefuse();
      const auto reason = static_cast<uint16_t>(r.getReason());
      if (reason > static_cast<uint16_t>(RefuseReason::kResync)) {
        return Status::Corruption("refuse with unknown reason " + std::to_string(reason));
      }
      out.body = Refuse{static_cast<RefuseReason>(reason), ToString(r.getDetail())};
      break;
    }
    case wire::Message::BATCHES: {
      auto r = m.getBatches();
      Batches bs;
      bs.active_seq = r.getActiveSeq();
      for (auto b : r.getBatches()) {
        bs.batches.push_back(WireBatch{
            store::WalBatch{b.getFirstSeq(), b.getCount(), ToString(b.getData())}, b.getCrc32c()});
      }
      out.body = std::move(bs);
      break;
    }
    case wire::Message::CHECKPOINT_CHUNK: {
      auto r = m.getCheckpointChunk();
      out.body = CheckpointChunk{ToString(r.getFile()), r.getOffset(), r.getCrc32c(),
                                 ToString(r.getData())};
      break;
    }
    case wire::Message::CHECKPOINT_DONE: {
      auto r = m.getCheckpointDone();
      CheckpointDone d;
      d.seq = r.getSeq();
      for (auto f : r.getFiles()) {
        d.files.push_back(CheckpointFile{ToString(f.getName()), f.getSize(), f.getCrc32c()});
      }
      out.body = std::move(d);
      break;
    }
    case wire::Message::ACK: {
      auto r = m.getAck();
      out.body = Ack{r.getAppliedSeq(), r.getAckedMsgSeq()};
      break;
    }
    case wire::Message::KEEPALIVE:
      out.body = Keepalive{m.getKeepalive().getActiveSeq()};
      break;
    default:
      return Status::Corruption("unknown message kind " +
                                std::to_string(static_cast<int>(m.which())));
  }
  return out;
}

}  // namespace

std::string_view RefuseReasonName(RefuseReason reason) {
  switch (reason) {
    case RefuseReason::kBadMessage:
      return "bad message";
    case RefuseReason::kClusterMismatch:
      return "cluster mismatch";
    case RefuseReason::kOldEpoch:
      return "old epoch";
    case RefuseReason::kStaleActive:
      return "stale active";
    case RefuseReason::kCfMapMismatch:
      return "column-family map mismatch";
    case RefuseReason::kShuttingDown:
      return "shutting down";
    case RefuseReason::kResync:
      return "resync";
  }
  return "unknown";
}

WireBatch MakeWireBatch(store::WalBatch batch) {
  const uint32_t crc = Crc32c(batch.data);
  return WireBatch{std::move(batch), crc};
}

std::string_view KindName(const Body& body) {
  static constexpr std::string_view kNames[] = {"hello",   "welcome",          "refuse",
                                                "batches", "checkpoint chunk", "checkpoint done",
                                                "ack",     "keepalive"};
  return kNames[body.index()];
}

std::string EncodeFrameWithVersion(const Message& message, uint16_t version) {
  capnp::MallocMessageBuilder builder;
  auto m = builder.initRoot<wire::Message>();
  m.setEpoch(message.epoch);
  m.setSession(message.session);
  m.setMsgSeq(message.msg_seq);
  std::visit(Encoder{m}, message.body);
  kj::Array<capnp::word> words = capnp::messageToFlatArray(builder);
  kj::ArrayPtr<const kj::byte> body = words.asBytes();

  std::string frame(kFrameHeaderSize + body.size(), '\0');
  PutU32(frame.data(), kFrameMagic);
  PutU16(frame.data() + 4, version);
  PutU16(frame.data() + 6, 0);
  PutU32(frame.data() + 8, static_cast<uint32_t>(body.size()));
  PutU32(frame.data() + 12, Crc32cExtend(0, body.begin(), body.size()));
  std::memcpy(frame.data() + kFrameHeaderSize, body.begin(), body.size());
  return frame;
}

std::string EncodeFrame(const Message& message) {
  return EncodeFrameWithVersion(message, kProtocolVersion);
}

Result<Message> DecodeFrame(std::string_view frame, size_t max_frame_bytes) {
  if (frame.size() > max_frame_bytes) {
    return Status::Corruption("oversized frame: " + std::to_string(frame.size()) +
                              " bytes, limit " + std::to_string(max_frame_bytes));
  }
  if (frame.size() < kFrameHeaderSize) {
    return Status::Corruption("truncated frame: " + std::to_string(frame.size()) +
                              " bytes, shorter than the header");
  }
  if (GetU32(frame.data()) != kFrameMagic) return Status::Corruption("not a frame: bad magic");
  if (const uint16_t version = GetU16(frame.data() + 4); version != kProtocolVersion) {
    return Status::Corruption("unsupported protocol version " + std::to_string(version) +
                              " (this node speaks " + std::to_string(kProtocolVersion) + ")");
  }
  const size_t body_size = GetU32(frame.data() + 8);
  const size_t have = frame.size() - kFrameHeaderSize;
  if (have < body_size) {
    return Status::Corruption("truncated frame: header says " + std::to_string(body_size) +
                              " body bytes, got " + std::to_string(have));
  }
  if (have > body_size) {
    return Status::Corruption("frame has " + std::to_string(have - body_size) +
                              " bytes after its body");
  }
  const char* body = frame.data() + kFrameHeaderSize;
  if (Crc32cExtend(0, body, body_size) != GetU32(frame.data() + 12)) {
    return Status::Corruption("frame checksum mismatch");
  }
  capnp_codec::DecodeLimits limits;
  // Bounded by what this frame can hold (an honest message is read about once).
  limits.traversal_words = body_size / sizeof(capnp::word) * 2 + 1024;
  Result<Message> m =
      capnp_codec::Decode<wire::Message>("frame body", std::string_view(body, body_size), limits,
                                         [](wire::Message::Reader r) { return FromCapnp(r); });
  if (!m.ok()) return Status::Corruption("not a Cap'n Proto message: " + m.status().message());
  return m;
}

}  // namespace pbx::ship
