// Rebuilding a call from its runtime record (sip/calls/recovery.h): which records are
// refused, and the media restored on exactly the old ports of a real relay on 127.0.0.1.
#include "sip/calls/recovery.h"

#include <gtest/gtest.h>

#include "media/rtp/relay.h"
#include "replication/store/repos.h"
#include "tests/unit/store/store_test_util.h"

namespace pbx::sip {
namespace {

std::string Sdp(uint16_t port, const char* direction = "sendrecv") {
  return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         "m=audio " +
         std::to_string(port) + " RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=" + direction + "\r\n";
}

store::CallDialog Dialog(const std::string& id) {
  store::CallDialog d;
  d.call_id = id;
  d.local_tag = "ours";
  d.remote_tag = "theirs";
  d.local_uri = "<sip:2002@pbx>";
  d.remote_uri = "<sip:2001@pbx>";
  d.target = "sip:2001@127.0.0.1";
  d.route = "sip:127.0.0.1:5060;transport=udp";
  d.local_cseq = 4;
  d.remote_cseq = 7;
  d.session_interval = 1800;
  d.session_pbx_refreshes = true;
  d.route_set = {"sip:proxy.example;lr"};
  return d;
}

store::ActiveCall Record(uint16_t a_port, uint16_t b_port) {
  store::ActiveCall c;
  c.id = 42;
  c.caller = "2001";
  c.callee = "2002";
  c.dialled = "2002";
  c.start_unix_ms = 1'700'000'000'123;
  c.answer_unix_ms = 1'700'000'004'456;
  c.start_unix = c.start_unix_ms / 1000;
  c.type = "outbound";
  c.trunk = "carrier";
  c.max_duration = 600;
  c.pin = "4711";  // a PIN route's, kept for the CDR
  c.answer_unix = c.answer_unix_ms / 1000;
  c.a = Dialog("a-call");
  c.b = Dialog("b-call");
  c.a_port = a_port;
  c.b_port = b_port;
  c.offer = Sdp(30000);
  c.answer = Sdp(30002);
  return c;
}

TEST(RecoveryTest, RefusesRecordsThatCannotBeRebuilt) {
  EXPECT_TRUE(CheckActiveCall(Record(10000, 10002)).ok());
  store::ActiveCall r = Record(10000, 10002);
  r.b.route.clear();
  EXPECT_EQ(CheckActiveCall(r).message(), "callee dialog: no route");
  r = Record(10000, 10002);
  r.a.remote_tag.clear();
  EXPECT_EQ(CheckActiveCall(r).message(), "caller dialog: no remote tag");
  r = Record(0, 10002);
  EXPECT_EQ(CheckActiveCall(r).code(), Status::Code::kInvalidArgument);
  r = Record(10000, 10002);
  r.answer.clear();
  EXPECT_EQ(CheckActiveCall(r).code(), Status::Code::kInvalidArgument);
  r = Record(10000, 10002);
  r.answer_unix = r.answer_unix_ms = 0;
  EXPECT_EQ(CheckActiveCall(r).message(), "not answered");
}

TEST(RecoveryTest, RestoresTheMediaOnTheOldPortsAndKeepsTheRecordFields) {
  media::RelayConfig rc;
  rc.bind_address = "127.0.0.1";
  rc.port_min = 31000;
  rc.port_max = 31100;
  auto relay = media::RtpRelay::Create(rc);
  ASSERT_TRUE(relay.ok()) << relay.status().ToString();
  store::ActiveCall r = Record(31010, 31020);
  auto m = RestoreMedia(**relay, "127.0.0.1", r);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->media.ports().a_port, 31010);
  EXPECT_EQ(m->media.ports().b_port, 31020);
  // What each phone last had from the PBX: anchored on the relay's ports.
  EXPECT_NE(m->sdp_to_a.find("m=audio 31010 "), std::string::npos) << m->sdp_to_a;
  EXPECT_NE(m->sdp_to_b.find("m=audio 31020 "), std::string::npos) << m->sdp_to_b;
  // The same ports again while held: Unavailable, and the first relay is untouched.
  EXPECT_FALSE(RestoreMedia(**relay, "127.0.0.1", r).ok());
  EXPECT_EQ((*relay)->Totals().relays, 1u);
  // A garbled stored answer is refused and frees what it took.
  r.a_port = 31030;
  r.b_port = 31040;
  r.answer = "garbage";
  EXPECT_FALSE(RestoreMedia(**relay, "127.0.0.1", r).ok());
  EXPECT_EQ((*relay)->Totals().relays, 1u);

  // The fields a failover needs survive the store (times in ms, the dialled number, type,
  // trunk, time limit, session timers, route sets).
  store::MemStoreFactory factory;
  std::unique_ptr<store::StateStore> db = factory.Open();
  store::WriteSet w;
  store::ActiveCallRepo::Put(Record(1, 2), w);
  ASSERT_TRUE(db->Commit(w, store::Durability::kAsync).ok());
  auto all = store::ActiveCallRepo(*db).List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0], Record(1, 2));
}

// A ringing call (no answer yet): what the new active needs to go on with both INVITE
// transactions, checked, and kept by the store.
TEST(RecoveryTest, RingingRecordsAreCheckedAndStored) {
  store::ActiveCall r = Record(10000, 10002);
  r.answer_unix = r.answer_unix_ms = 0;
  r.answer.clear();
  EXPECT_EQ(CheckRingingCall(r).message(), "ringing call: no caller INVITE");
  r.caller_invite = "INVITE sip:2002@pbx SIP/2.0\r\n...";
  EXPECT_EQ(CheckRingingCall(r).message(), "ringing call: no INVITE to the callee");
  r.ringing.push_back({"INVITE sip:2002@10.0.0.12 SIP/2.0\r\n...", "sip:2002@10.0.0.12",
                       "sip:10.0.0.12:5060;transport=udp"});
  r.ring_deadline_unix_ms = 1'700'000'030'123;
  r.rung_extension = "2002";
  EXPECT_TRUE(CheckRingingCall(r).ok()) << CheckRingingCall(r).ToString();
  EXPECT_EQ(CheckActiveCall(r).message(), "no offer/answer to replay") << "not an answered call";
  store::ActiveCall no_route = r;
  no_route.ringing[0].route.clear();
  EXPECT_EQ(CheckRingingCall(no_route).code(), Status::Code::kInvalidArgument);
  store::ActiveCall no_tag = r;
  no_tag.a.local_tag.clear();
  EXPECT_EQ(CheckRingingCall(no_tag).message(), "ringing call: no To tag sent to the caller");

  store::MemStoreFactory factory;
  std::unique_ptr<store::StateStore> db = factory.Open();
  store::WriteSet w;
  store::ActiveCallRepo::Put(r, w);
  ASSERT_TRUE(db->Commit(w, store::Durability::kAsync).ok());
  auto all = store::ActiveCallRepo(*db).List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0], r);
}

}  // namespace
}  // namespace pbx::sip
