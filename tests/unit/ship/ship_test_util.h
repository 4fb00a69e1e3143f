#pragma once

#include <poll.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include <gtest/gtest.h>
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>

#include "replication/ship/log_receiver.h"
#include "replication/ship/log_shipper.h"
#include "replication/ship/wire.h"
#include "replication/store/repos.h"
#include "replication/store/wal.h"
#include "tests/support/process.h"

namespace pbx::ship::test {

using pbx::test::TempDir;
using pbx::test::WaitFor;
using store::Durability;
using store::ReplicatedDb;
using store::Table;
using store::WriteSet;

inline constexpr char kCluster[] = "c0ffee";

inline std::unique_ptr<ReplicatedDb> OpenDb(const std::string& dir, uint64_t wal_ttl = 3600,
                                            uint64_t wal_mb = 1024) {
  auto db = store::OpenReplicatedDb(
      store::StoreOptions{.dir = dir, .wal_ttl_seconds = wal_ttl, .wal_size_limit_mb = wal_mb});
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  return db.ok() ? std::move(db).value() : nullptr;
}

// Writes the cluster identity, as pbxd does on a new active.
inline void WriteMeta(ReplicatedDb& db, uint64_t epoch) {
  WriteSet w;
  store::MetaRepo(db).Put(store::ClusterMeta{kCluster, epoch, 1700000000}, w);
  ASSERT_TRUE(db.Commit(w, Durability::kReplicated).ok());
}

// `n` commits of a few ops each over several tables, with deletes.
inline SeqNo WriteSome(ReplicatedDb& db, int n, const std::string& tag,
                       Durability durability = Durability::kAsync) {
  SeqNo last = 0;
  for (int i = 0; i < n; ++i) {
    WriteSet w;
    w.Put(Table::kConfig, "ext/" + tag + std::to_string(i), "name " + std::to_string(i));
    w.Put(Table::kRuntime, "reg/" + tag + std::to_string(i), std::string(100 + i % 50, 'r'));
    if (i % 3 == 0) w.Put(Table::kRecords, "cdr/" + tag + std::to_string(i), "cdr");
    if (i % 5 == 4) w.Delete(Table::kRuntime, "reg/" + tag + std::to_string(i - 1));
    auto seq = db.Commit(w, durability);
    EXPECT_TRUE(seq.ok()) << seq.status().ToString();
    if (seq.ok()) last = *seq;
  }
  return last;
}

// Every table, key by key.
inline std::map<std::pair<int, std::string>, std::string> Dump(const ReplicatedDb& db) {
  std::map<std::pair<int, std::string>, std::string> out;
  for (Table table : store::kAllTables) {
    auto rows = db.Scan(table, "");
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    if (!rows.ok()) continue;
    for (auto& [k, v] : *rows) out[{static_cast<int>(table), k}] = v;
  }
  return out;
}

// Short timers, so that every test takes well under a few seconds.
inline ShipperOptions FastShipper() {
  ShipperOptions o;
  o.listen_url = "tcp://127.0.0.1:0";
  o.cluster_id = kCluster;
  o.node_name = "alpha";
  o.ack_timeout = std::chrono::milliseconds(200);
  o.session_timeout = std::chrono::milliseconds(1500);
  o.send_timeout = std::chrono::milliseconds(500);
  o.goodbye_timeout = std::chrono::milliseconds(150);  // raw test peers never answer
  return o;
}

inline ReceiverOptions FastReceiver(const std::string& url) {
  ReceiverOptions o;
  o.peer_url = url;
  o.cluster_id = kCluster;
  o.node_name = "beta";
  o.hello_retry = std::chrono::milliseconds(300);
  o.refused_retry = std::chrono::milliseconds(300);
  o.session_timeout = std::chrono::milliseconds(1500);
  o.send_timeout = std::chrono::milliseconds(500);
  o.goodbye_timeout = std::chrono::milliseconds(150);
  return o;
}

// A raw pair1 socket that plays the active (Listen) or the standby (Dial) in tests.
// Destroy it only once the component it talks to has stopped: closing an NNG 1.5.2 socket
// while the peer sends can hang (Link's class comment).
class RawPeer {
 public:
  RawPeer() { EXPECT_EQ(nng_pair1_open(&socket_), 0); }
  ~RawPeer() { nng_close(socket_); }
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  // Returns the bound URL.
  std::string Listen() {
    nng_listener l;
    EXPECT_EQ(nng_listen(socket_, "tcp://127.0.0.1:0", &l, 0), 0);
    int port = 0;
    EXPECT_EQ(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
    return "tcp://127.0.0.1:" + std::to_string(port);
  }
  void Dial(const std::string& url) {
    nng_socket_set_ms(socket_, NNG_OPT_RECONNMINT, 20);
    nng_socket_set_ms(socket_, NNG_OPT_RECONNMAXT, 100);
    EXPECT_EQ(nng_dial(socket_, url.c_str(), nullptr, NNG_FLAG_NONBLOCK), 0);
  }

  bool SendBytes(const std::string& bytes) {
    nng_socket_set_ms(socket_, NNG_OPT_SENDTIMEO, 2000);
    return nng_send(socket_, const_cast<char*>(bytes.data()), bytes.size(), 0) == 0;
  }
  bool Send(const Message& m) { return SendBytes(EncodeFrame(m)); }

  // The next message, decoded; skips keepalives unless asked for. nullopt on timeout.
  // Receives the way Link does (poll on NNG_OPT_RECVFD, then a non-blocking receive):
  // blocking receives with NNG_OPT_RECVTIMEO made a later nng_close hang in NNG 1.5.2.
  std::optional<Message> Recv(std::chrono::milliseconds timeout = std::chrono::seconds(5),
                              bool skip_keepalives = true) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int fd = -1;
    EXPECT_EQ(nng_socket_get_int(socket_, NNG_OPT_RECVFD, &fd), 0);
    while (true) {
      nng_msg* msg = nullptr;
      if (nng_recvmsg(socket_, &msg, NNG_FLAG_NONBLOCK) != 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd p{fd, POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(left.count()));
        continue;
      }
      std::string bytes(static_cast<const char*>(nng_msg_body(msg)), nng_msg_len(msg));
      nng_msg_free(msg);
      auto m = DecodeFrame(bytes, 64 << 20);
      EXPECT_TRUE(m.ok()) << m.status().ToString();
      if (!m.ok()) return std::nullopt;
      if (skip_keepalives && std::holds_alternative<Keepalive>(m->body)) continue;
      return std::move(m).value();
    }
  }

  // The next message of kind T (others are skipped); nullopt on timeout.
  template <typename T>
  std::optional<std::pair<Message, T>> RecvKind(
      std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = Recv(std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now()));
      if (!m) return std::nullopt;
      if (const T* body = std::get_if<T>(&m->body)) {
        T copy = *body;
        return std::make_pair(std::move(*m), std::move(copy));
      }
    }
    return std::nullopt;
  }

 private:
  nng_socket socket_ = NNG_SOCKET_INITIALIZER;
};

}  // namespace pbx::ship::test
