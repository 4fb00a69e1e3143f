// WitnessClient against WitnessServer over real NNG on 127.0.0.1, port 0, in one process.
#include "node/cluster/witness_server.h"

#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "node/cluster/witness_client.h"
#include "node/cluster/witness_lease.h"
#include "tests/support/process.h"

namespace pbx::cluster {
namespace {

using namespace std::chrono_literals;
using Kind = LeaseEvent::Kind;

std::string Url(int port) { return "tcp://127.0.0.1:" + std::to_string(port); }

LeaseRequest Req(std::string node, uint32_t lease_ms = 1000) {
  LeaseRequest r;
  r.cluster_id = "pair1";
  r.node_name = std::move(node);
  r.epoch = 3;
  r.lease_ms = lease_ms;
  return r;
}

// A witness on an ephemeral port that records what it decided, with the witness's own
// lease ends, so tests can compare them with what the clients believe.
class Witness {
 public:
  explicit Witness(std::chrono::milliseconds hold = 0ms, uint64_t boot_id = 0) {
    WitnessServer::Options o;
    o.lease.startup_hold = hold;
    o.boot_id = boot_id;
    o.on_event = [this](const LeaseEvent& ev) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(ev);
    };
    server_ = std::make_unique<WitnessServer>(std::move(o));
  }
  Status Start(int port = 0) { return server_->Start(Url(port)); }
  WitnessServer& server() { return *server_; }
  std::string url() const { return Url(server_->port()); }

  std::vector<LeaseEvent> Events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  // The last event of `kind` for `node`, if any.
  std::optional<LeaseEvent> Last(Kind kind, const std::string& node) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = events_.rbegin(); it != events_.rend(); ++it) {
      if (it->kind == kind && it->node_name == node) return *it;
    }
    return std::nullopt;
  }
  size_t Count(Kind kind) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const LeaseEvent& ev : events_) n += ev.kind == kind;
    return n;
  }

 private:
  std::mutex mu_;
  std::vector<LeaseEvent> events_;
  // Declared last: destroyed (stopped) first, while the event log is still alive.
  std::unique_ptr<WitnessServer> server_;
};

std::unique_ptr<WitnessClient> Client(const std::string& url) {
  Result<std::unique_ptr<WitnessClient>> c = WitnessClient::Connect(url);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(*c) : nullptr;
}

TEST(WitnessServerTest, GrantsAndRefuses) {
  Witness w;
  ASSERT_TRUE(w.Start().ok());
  ASSERT_GT(w.server().port(), 0);
  auto a = Client(w.url());
  auto b = Client(w.url());
  ASSERT_TRUE(a && b);

  auto before = WitnessClock::now();
  Result<LeaseReply> ra = a->Request(Req("a"), 2s);
  auto after = WitnessClock::now();
  ASSERT_TRUE(ra.ok()) << ra.status().ToString();
  EXPECT_TRUE(ra->granted);
  EXPECT_EQ(ra->holder, "a");
  EXPECT_EQ(ra->witness_boot_id, w.server().boot_id());
  EXPECT_GE(ra->lease_valid_until, before + 1000ms);
  EXPECT_LE(ra->lease_valid_until, after + 1000ms);

  Result<LeaseReply> rb = b->Request(Req("b"), 2s);
  ASSERT_TRUE(rb.ok()) << rb.status().ToString();
  EXPECT_FALSE(rb->granted);
  EXPECT_EQ(rb->holder, "a");
  EXPECT_GT(rb->remaining_ms, 0u);
  EXPECT_LE(rb->remaining_ms, 1000u);
  EXPECT_LE(rb->lease_valid_until, WitnessClock::now());
  EXPECT_EQ(w.Count(Kind::kGrant), 1u);
  EXPECT_EQ(w.Count(Kind::kRefuse), 1u);
}

TEST(WitnessServerTest, ClientLeaseEndsNoLaterThanTheWitnessLease) {
  Witness w;
  ASSERT_TRUE(w.Start().ok());
  auto a = Client(w.url());
  ASSERT_TRUE(a);
  for (int i = 0; i < 20; ++i) {
    Result<LeaseReply> r = a->Request(Req("a", 500), 2s);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(r->granted);
    // The reply was sent after the event was recorded, so the event is there.
    std::optional<LeaseEvent> ev = w.Last(i == 0 ? Kind::kGrant : Kind::kRenew, "a");
    ASSERT_TRUE(ev.has_value());
    EXPECT_LE(r->lease_valid_until, ev->lease_end) << "renewal " << i;
  }
}

TEST(WitnessServerTest, HandsOverAfterExpiry) {
  Witness w;
  ASSERT_TRUE(w.Start().ok());
  auto a = Client(w.url());
  auto b = Client(w.url());
  ASSERT_TRUE(a && b);
  Result<LeaseReply> ra = a->Request(Req("a", 100), 2s);
  ASSERT_TRUE(ra.ok() && ra->granted);
  Result<LeaseReply> rb = b->Request(Req("b", 100), 2s);
  ASSERT_TRUE(rb.ok());
  EXPECT_FALSE(rb->granted);

  std::optional<WitnessClock::time_point> b_granted_at;
  ASSERT_TRUE(test::WaitFor(
      [&] {
        Result<LeaseReply> r = b->Request(Req("b", 100), 1s);
        if (r.ok() && r->granted) b_granted_at = WitnessClock::now();
        return b_granted_at.has_value();
      },
      5s));
  // No overlap: b holds the lease only after a's own view of its lease ended.
  EXPECT_GE(*b_granted_at, ra->lease_valid_until);
  std::optional<LeaseEvent> a_grant = w.Last(Kind::kGrant, "a");
  std::optional<LeaseEvent> handover = w.Last(Kind::kHandover, "b");
  ASSERT_TRUE(a_grant && handover);
  EXPECT_EQ(handover->previous_holder, "a");
  // On the witness's clock b's lease started (lease_end - 100 ms) no earlier than a's ended.
  EXPECT_GE(handover->lease_end - 100ms, a_grant->lease_end);
  // a is refused now, and told who holds it.
  Result<LeaseReply> again = a->Request(Req("a", 100), 2s);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->granted);
  EXPECT_EQ(again->holder, "b");
  // The expiry is reported by the serving thread's sweep.
  EXPECT_TRUE(test::WaitFor([&] { return w.Count(Kind::kExpire) >= 1; }, 2s));
}

TEST(WitnessServerTest, ReleaseHandsOverAtOnce) {
  Witness w;
  ASSERT_TRUE(w.Start().ok());
  auto a = Client(w.url());
  auto b = Client(w.url());
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Request(Req("a", 60000), 2s)->granted);
  LeaseRequest release = Req("a");
  release.release = true;
  Result<LeaseReply> r = a->Request(release, 2s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->granted);
  EXPECT_EQ(r->holder, "");
  Result<LeaseReply> rb = b->Request(Req("b"), 2s);
  ASSERT_TRUE(rb.ok());
  EXPECT_TRUE(rb->granted);
}

TEST(WitnessServerTest, BadLeaseLengthIsInvalidArgument) {
  Witness w;
  ASSERT_TRUE(w.Start().ok());
  auto a = Client(w.url());
  ASSERT_TRUE(a);
  Result<LeaseReply> r = a->Request(Req("a", 10), 2s);
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << r.status().ToString();
  EXPECT_EQ(w.Count(Kind::kBadRequest), 1u);
  EXPECT_EQ(a->Request(Req("a"), 0ms).status().code(), Status::Code::kInvalidArgument);
}

TEST(WitnessServerTest, DeadWitnessFailsWithinTheTimeout) {
  int port = 0;
  {
    Witness w;
    ASSERT_TRUE(w.Start().ok());
    port = w.server().port();
  }  // nobody listens on `port` any more
  auto a = Client(Url(port));
  ASSERT_TRUE(a);
  for (int i = 0; i < 2; ++i) {
    auto start = WitnessClock::now();
    Result<LeaseReply> r = a->Request(Req("a"), 300ms);
    auto took = WitnessClock::now() - start;
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().code() == Status::Code::kUnavailable ||
                r.status().code() == Status::Code::kTimeout)
        << r.status().ToString();
    EXPECT_GE(took, 290ms);
    EXPECT_LT(took, 300ms + 200ms);
  }
}

TEST(WitnessServerTest, ClientReconnectsWhenTheWitnessComesUp) {
  int port = 0;
  {
    Witness probe;
    ASSERT_TRUE(probe.Start().ok());
    port = probe.server().port();
  }
  auto a = Client(Url(port));
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->Request(Req("a"), 100ms).ok());
  Witness w;
  ASSERT_TRUE(w.Start(port).ok()) << "port " << port << " was taken meanwhile";
  // Redialled in the background (reconnect max 500 ms).
  Result<LeaseReply> r = a->Request(Req("a"), 3s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->granted);
}

TEST(WitnessServerTest, HolderKeepsItsLeaseThroughAWitnessRestart) {
  auto first = std::make_unique<Witness>(0ms, 0x1111);
  ASSERT_TRUE(first->Start().ok());
  const int port = first->server().port();
  auto a = Client(Url(port));
  auto b = Client(Url(port));
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Request(Req("a", 10000), 2s)->granted);

  first.reset();
  // The restarted witness holds new grants back, but lets a keep the lease it still holds.
  Witness second(30s, 0x2222);
  ASSERT_TRUE(second.Start(port).ok());
  Result<LeaseReply> rb = b->Request(Req("b", 10000), 3s);
  ASSERT_TRUE(rb.ok()) << rb.status().ToString();
  EXPECT_FALSE(rb->granted);
  EXPECT_EQ(rb->holder, "");
  EXPECT_GT(rb->remaining_ms, 25000u);
  Result<LeaseReply> ra = a->Request(Req("a", 10000), 3s);
  ASSERT_TRUE(ra.ok()) << ra.status().ToString();
  EXPECT_TRUE(ra->granted);
  EXPECT_EQ(ra->witness_boot_id, 0x2222u);
  rb = b->Request(Req("b", 10000), 3s);
  ASSERT_TRUE(rb.ok());
  EXPECT_FALSE(rb->granted);
  EXPECT_EQ(rb->holder, "a");
}

// A raw req socket, to send what WitnessClient never would.
class RawReq {
 public:
  explicit RawReq(const std::string& url) {
    EXPECT_EQ(nng_req0_open(&s_), 0);
    EXPECT_EQ(nng_socket_set_ms(s_, NNG_OPT_RECVTIMEO, 500), 0);
    EXPECT_EQ(nng_socket_set_ms(s_, NNG_OPT_SENDTIMEO, 500), 0);
    EXPECT_EQ(nng_dial(s_, url.c_str(), nullptr, 0), 0);
  }
  ~RawReq() { nng_close(s_); }
  RawReq(const RawReq&) = delete;
  RawReq& operator=(const RawReq&) = delete;

  // The reply's bytes, or nullopt if none came (dropped message or connection).
  std::optional<std::string> Exchange(const std::string& bytes) {
    if (nng_send(s_, const_cast<char*>(bytes.data()), bytes.size(), 0) != 0) return std::nullopt;
    char* buf = nullptr;
    size_t len = 0;
    if (nng_recv(s_, &buf, &len, NNG_FLAG_ALLOC) != 0) return std::nullopt;
    std::string reply(buf, len);
    nng_free(buf, len);
    return reply;
  }

 private:
  nng_socket s_ = NNG_SOCKET_INITIALIZER;
};

TEST(WitnessServerTest, GarbageGetsAnErrorOrNothingAndServingGoesOn) {
  Witness w;
  ASSERT_TRUE(w.Start().ok());
  auto a = Client(w.url());
  ASSERT_TRUE(a);
  std::string struct_for_text = std::string("\0\0\0\0\x04\0\0\0", 8) +
                                std::string("\0\0\0\0\x01\0\x01\0", 8) +
                                std::string("\x01\0\0\0\0\0\0\0", 8) +
                                std::string("\0\0\0\0\x01\0\0\0", 8) + std::string(8, 'A');
  LeaseRequest absurd = Req("a", 0xffffffff);
  const std::vector<std::pair<std::string, std::string>> garbage = {
      {"empty", ""},
      {"text", "GET / HTTP/1.1\r\n\r\n"},
      {"words of 0xff", std::string(64, '\xff')},
      {"struct where text expected", struct_for_text},
      {"absurd lease", EncodeLeaseRequest(absurd)},
      {"a reply instead of a request", EncodeLeaseReply(LeaseReply{})},
      {"oversized", std::string(16 * 1024, 'x')},
  };
  for (const auto& [name, bytes] : garbage) {
    RawReq raw(w.url());
    std::optional<std::string> reply = raw.Exchange(bytes);
    if (reply.has_value()) {
      Result<LeaseReply> decoded = DecodeLeaseReply(*reply);
      ASSERT_TRUE(decoded.ok()) << name << ": " << decoded.status().ToString();
      EXPECT_FALSE(decoded->granted) << name;
      EXPECT_FALSE(decoded->error.empty()) << name;
      EXPECT_EQ(decoded->witness_boot_id, w.server().boot_id());
    } else {
      // Only what NNG itself drops may go unanswered.
      EXPECT_EQ(name, "oversized");
    }
    Result<LeaseReply> good = a->Request(Req("a"), 2s);
    ASSERT_TRUE(good.ok()) << "after " << name << ": " << good.status().ToString();
    EXPECT_TRUE(good->granted) << name;
  }
  EXPECT_GE(w.Count(Kind::kBadRequest), garbage.size() - 1);
}

TEST(WitnessServerTest, StartFailsCleanly) {
  Witness w;
  ASSERT_TRUE(w.Start().ok());
  WitnessServer other;
  Status s = other.Start(w.url());
  EXPECT_FALSE(s.ok());
  WitnessServer bad;
  EXPECT_EQ(bad.Start("nonsense://x").code(), Status::Code::kInvalidArgument);
  EXPECT_FALSE(WitnessClient::Connect("nonsense://x").ok());
}

TEST(WitnessServerTest, StopIsPromptAndIdempotent) {
  Witness w;
  ASSERT_TRUE(w.Start().ok());
  auto start = WitnessClock::now();
  w.server().Stop();
  EXPECT_LT(WitnessClock::now() - start, 500ms);
  w.server().Stop();
}

}  // namespace
}  // namespace pbx::cluster
