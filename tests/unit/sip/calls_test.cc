// The B2BUA's pure parts: dial-string resolution, and the call records it stores (the
// runtime record of a call in progress, the CDR and its time-range query).
#include <gtest/gtest.h>

#include "replication/store/repos.h"
#include "sip/calls/dial.h"
#include "sip/calls/feature_codes.h"
#include "sip/calls/pin_prompt.h"
#include "sip/calls/trunk_leg.h"
#include "tests/unit/store/store_test_util.h"

namespace pbx::sip {
namespace {

using store::Cdr;
using store::CdrQuery;
using store::CdrRepo;

bool Known(const std::string& n) { return n == "2001" || n == "*97"; }

TEST(DialTest, ExtensionsUnknownNumbersAndGarbage) {
  DialTarget t = ResolveDial("2001", Known);
  EXPECT_EQ(t.kind, DialTarget::Kind::kExtension);
  EXPECT_EQ(t.number, "2001");
  t = ResolveDial("20-01", Known);  // separators are dropped
  EXPECT_EQ(t.kind, DialTarget::Kind::kExtension);
  EXPECT_EQ(t.number, "2001");
  t = ResolveDial("*97", Known);
  EXPECT_EQ(t.kind, DialTarget::Kind::kExtension);
  t = ResolveDial("2999", Known);
  EXPECT_EQ(t.kind, DialTarget::Kind::kNotFound);
  EXPECT_EQ(t.number, "2999");
  EXPECT_EQ(ResolveDial("", Known).kind, DialTarget::Kind::kInvalid);
  EXPECT_EQ(ResolveDial("alice", Known).kind, DialTarget::Kind::kInvalid);
  EXPECT_EQ(ResolveDial("20%01", Known).kind, DialTarget::Kind::kInvalid);
  EXPECT_EQ(ResolveDial(std::string(33, '1'), Known).kind, DialTarget::Kind::kInvalid);
  EXPECT_EQ(ResolveDial(std::string(32, '1'), Known).kind, DialTarget::Kind::kNotFound);
}

FeatureCode Code(std::string_view dialled) {
  Result<std::optional<FeatureCode>> c = ParseFeatureCode(dialled);
  EXPECT_TRUE(c.ok() && c->has_value()) << dialled;
  return c.ok() && c->has_value() ? **c : FeatureCode{};
}

TEST(FeatureCodeTest, TheFixedTable) {
  using K = FeatureCode::Kind;
  EXPECT_EQ(Code("*712002"), (FeatureCode{K::kForwardAlways, true, "2002"}));
  EXPECT_EQ(Code("*712002#"), (FeatureCode{K::kForwardAlways, true, "2002"}));  // '#' = send
  EXPECT_EQ(Code("*071"), (FeatureCode{K::kForwardAlways, false, ""}));
  EXPECT_EQ(Code("*72+4930123"), (FeatureCode{K::kForwardBusy, true, "+4930123"}));
  EXPECT_EQ(Code("*072#"), (FeatureCode{K::kForwardBusy, false, ""}));
  EXPECT_EQ(Code("*73*97"), (FeatureCode{K::kForwardNoAnswer, true, "*97"}));
  EXPECT_EQ(Code("*073"), (FeatureCode{K::kForwardNoAnswer, false, ""}));
  EXPECT_EQ(Code("*74"), (FeatureCode{K::kDnd, true, ""}));
  EXPECT_EQ(Code("*074"), (FeatureCode{K::kDnd, false, ""}));
  // Malformed codes are refused, not taken for a number.
  for (const char* bad : {"*71", "*71#", "*0712002", "*742001", "*0741", "*74##"}) {
    EXPECT_FALSE(ParseFeatureCode(bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseFeatureCode("*71" + std::string(33, '1')).ok());
  EXPECT_TRUE(ParseFeatureCode("*71" + std::string(32, '1')).ok());
  // Anything else is no feature code at all.
  for (const char* other : {"2001", "*97", "*75", "*7", "71", "*0"}) {
    Result<std::optional<FeatureCode>> c = ParseFeatureCode(other);
    EXPECT_TRUE(c.ok() && !c->has_value()) << other;
  }
  EXPECT_TRUE(DialableNumber("+49*1#"));
  EXPECT_FALSE(DialableNumber(""));
  EXPECT_FALSE(DialableNumber("20a1"));
}

TEST(FeatureCodeTest, ApplyChangesOnlyItsOwnSetting) {
  store::Forwarding f;
  f.extension = "2001";
  ASSERT_TRUE(ApplyFeatureCode(Code("*712002"), f).ok());
  EXPECT_TRUE(f.always.active);
  EXPECT_EQ(f.always.number, "2002");
  EXPECT_FALSE(f.busy.active);
  ASSERT_TRUE(ApplyFeatureCode(Code("*071"), f).ok());
  EXPECT_FALSE(f.always.active);
  EXPECT_EQ(f.always.number, "2002");
  ASSERT_TRUE(ApplyFeatureCode(Code("*732003"), f).ok());
  EXPECT_TRUE(f.no_answer.active);
  ASSERT_TRUE(ApplyFeatureCode(Code("*74"), f).ok());
  EXPECT_TRUE(f.dnd);
  ASSERT_TRUE(ApplyFeatureCode(Code("*074"), f).ok());
  EXPECT_FALSE(f.dnd);
  store::Forwarding before = f;
  EXPECT_FALSE(ApplyFeatureCode(Code("*722001"), f).ok());  // to itself
  EXPECT_EQ(f, before);
}

TEST(DialTest, FeatureCodesComeFirst) {
  DialTarget t = ResolveDial("*71-2002", Known);
  EXPECT_EQ(t.kind, DialTarget::Kind::kFeatureCode);
  EXPECT_EQ(t.feature.number, "2002");
  t = ResolveDial("*71", Known);
  EXPECT_EQ(t.kind, DialTarget::Kind::kInvalid);
  EXPECT_FALSE(t.reason.empty());
}

TEST(DialTest, TheDialPlanDecidesWhatIsNotAnExtension) {
  using routing::OutboundDecision;
  OutboundDecision decision;
  auto plan = [&](const std::string&) { return decision; };
  // Extensions first: the dial plan is not asked.
  EXPECT_EQ(ResolveDial("2001", Known, plan).kind, DialTarget::Kind::kExtension);
  decision.kind = OutboundDecision::Kind::kRoute;
  decision.number = "440201";
  DialTarget t = ResolveDial("90201", Known, plan);
  EXPECT_EQ(t.kind, DialTarget::Kind::kOutbound);
  EXPECT_EQ(t.route.number, "440201");
  decision.pin_set = "intl";  // the caller is asked for a PIN of the set first
  t = ResolveDial("90201", Known, plan);
  EXPECT_EQ(t.kind, DialTarget::Kind::kNeedsPin);
  EXPECT_EQ(t.route.pin_set, "intl");
  decision.kind = OutboundDecision::Kind::kClosed;
  EXPECT_EQ(ResolveDial("90201", Known, plan).kind, DialTarget::Kind::kForbidden);
  decision.kind = OutboundDecision::Kind::kForbidden;
  EXPECT_EQ(ResolveDial("90201", Known, plan).kind, DialTarget::Kind::kForbidden);
  decision.kind = OutboundDecision::Kind::kNoRoute;
  EXPECT_EQ(ResolveDial("90201", Known, plan).kind, DialTarget::Kind::kNotFound);
  EXPECT_EQ(ResolveDial("9-0", Known, plan).kind, DialTarget::Kind::kNotFound);
}

TEST(PinEntryTest, HashOrTheLongestPinEndsTheEntry) {
  using media::Tone;
  PinEntry pin(4);
  EXPECT_EQ(pin.Start(0).play, Tone::kPrompt);
  EXPECT_EQ(pin.OnDigit('1', 100).play, Tone::kSilence);  // the prompt stops at a digit
  EXPECT_FALSE(pin.OnDigit('2', 200).check);
  EXPECT_EQ(pin.OnDigit('#', 300).check, "12");
  EXPECT_FALSE(pin.OnDigit('5', 400).check);  // while the PIN is checked: ignored
  PinStep wrong = pin.OnVerdict(false, 500);
  EXPECT_EQ(wrong.play, Tone::kError);
  EXPECT_FALSE(pin.OnTick(500 + PinEntry::kErrorToneMs - 1).play);
  EXPECT_EQ(pin.OnTick(500 + PinEntry::kErrorToneMs).play, Tone::kPrompt);  // again
  for (char d : std::string("123")) EXPECT_FALSE(pin.OnDigit(d, 3000).check);
  EXPECT_EQ(pin.OnDigit('4', 3000).check, "1234");  // four digits: the set's longest
  EXPECT_EQ(pin.OnVerdict(true, 3100).play, Tone::kRingback);
  EXPECT_TRUE(pin.accepted());
  EXPECT_FALSE(pin.active());
}

TEST(PinEntryTest, TimeoutsAndThreeWrongPinsHangUp) {
  PinEntry pin(0);
  pin.Start(0);
  // No digit in 10 s: what was typed (nothing) is checked, and is wrong.
  EXPECT_FALSE(pin.OnTick(PinEntry::kResponseTimeoutMs - 1).check);
  EXPECT_EQ(pin.OnTick(PinEntry::kResponseTimeoutMs).check, "");
  pin.OnVerdict(false, 10000);
  pin.OnTick(20000);  // the prompt again
  pin.OnDigit('7', 20000);
  EXPECT_FALSE(pin.OnTick(20000 + PinEntry::kDigitTimeoutMs - 1).check);
  EXPECT_EQ(pin.OnTick(20000 + PinEntry::kDigitTimeoutMs).check, "7");  // 5 s after a digit
  pin.OnVerdict(false, 26000);
  pin.OnTick(28000);
  EXPECT_EQ(pin.OnDigit('#', 28000).check, "");
  EXPECT_EQ(pin.OnVerdict(false, 28000).play, media::Tone::kError);  // the third: error tone,
  EXPECT_TRUE(pin.active());
  EXPECT_FALSE(pin.OnTick(28000 + PinEntry::kErrorToneMs - 1).hang_up);
  EXPECT_TRUE(pin.OnTick(28000 + PinEntry::kErrorToneMs).hang_up);  // then the hang-up
  EXPECT_FALSE(pin.active());
  EXPECT_EQ(pin.wrong(), 3);
}

TEST(TrunkLegTest, TargetCallerIdAndInboundDid) {
  store::Trunk t;
  t.name = "acme";
  t.host = "192.0.2.7";
  t.port = 5080;
  t.domain = "carrier.example";
  TrunkTarget x = OutboundTarget(t, "0201", "6729", "Alice \"A\"");
  EXPECT_EQ(x.request_uri, "sip:0201@192.0.2.7:5080");
  EXPECT_EQ(x.route, "sip:192.0.2.7:5080;transport=udp");
  EXPECT_EQ(x.from, "\"Alice \\\"A\\\"\" <sip:6729@carrier.example>");
  EXPECT_EQ(x.to, "<sip:0201@carrier.example>");
  t.outbound_proxy = "192.0.2.9:5070";
  t.port = 5060;
  t.host = "2001:db8::1";
  t.domain.clear();
  x = OutboundTarget(t, "0201", "6729", "");
  EXPECT_EQ(x.request_uri, "sip:0201@[2001:db8::1]");
  EXPECT_EQ(x.route, "sip:192.0.2.9:5070;transport=udp");
  EXPECT_EQ(x.from, "<sip:6729@[2001:db8::1]>");

  // Caller ID: the route's, else the trunk's when it says so (or the extension has none),
  // else the extension's CLI, else its number.
  t.outbound_cli = "67293500";
  t.cli_mode = "extension";
  EXPECT_EQ(OutboundCallerId("555", t, "6729", "2001"), "555");
  EXPECT_EQ(OutboundCallerId("", t, "6729", "2001"), "6729");
  EXPECT_EQ(OutboundCallerId("", t, "", "2001"), "67293500");
  t.cli_mode = "trunk";
  EXPECT_EQ(OutboundCallerId("", t, "6729", "2001"), "67293500");
  t.outbound_cli.clear();
  EXPECT_EQ(OutboundCallerId("", t, "", "2001"), "2001");

  // A register trunk is called on its Contact (user = username): the DID is the To user.
  t.mode = "register";
  t.username = "acme";
  EXPECT_EQ(InboundDid(t, "acme", "5551000"), "5551000");
  EXPECT_EQ(InboundDid(t, "5551000", "5551000"), "5551000");
  t.mode = "peer";
  EXPECT_EQ(InboundDid(t, "5551001", "acme"), "5551001");
}

Cdr MakeCdr(uint64_t id, int64_t start_ms, const std::string& caller, const std::string& type) {
  Cdr c;
  c.id = id;
  c.start_unix_ms = start_ms;
  c.answer_unix_ms = start_ms + 2000;
  c.end_unix_ms = start_ms + 62000;
  c.caller = caller;
  c.caller_name = "Alice";
  c.callee = "2002";
  c.final_callee = "2002";
  c.duration_seconds = 62;
  c.billable_seconds = 60;
  c.type = type;
  c.status = "answered";
  c.cause = "caller hung up";
  c.hangup_side = "caller";
  return c;
}

TEST(CdrRepoTest, RoundTripAndTimeRangeQuery) {
  store::MemStoreFactory factory;
  std::unique_ptr<store::StateStore> db = factory.Open();
  store::WriteSet w;
  // Out of order on purpose: the key, not the write order, sorts them.
  CdrRepo::Append(MakeCdr(3, 1'700'000'300'000, "2001", "internal"), w);
  CdrRepo::Append(MakeCdr(1, 1'700'000'100'000, "2001", "internal"), w);
  CdrRepo::Append(MakeCdr(2, 1'700'000'200'000, "2003", "outbound"), w);
  CdrRepo::Append(MakeCdr(4, 1'800'000'000'000, "2001", "internal"), w);
  ASSERT_TRUE(db->Commit(w, store::Durability::kAsync).ok());
  CdrRepo repo(*db);

  CdrQuery all;
  all.limit = 0;
  auto rows = repo.Query(all);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 4u);
  EXPECT_EQ((*rows)[0], MakeCdr(1, 1'700'000'100'000, "2001", "internal"));
  EXPECT_EQ((*rows)[3].id, 4u);

  CdrQuery range;
  range.from_unix_ms = 1'700'000'150'000;
  range.to_unix_ms = 1'700'000'300'000;  // exclusive
  rows = repo.Query(range);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].id, 2u);

  CdrQuery filtered;
  filtered.caller = "2001";
  filtered.type = "internal";
  filtered.limit = 2;
  rows = repo.Query(filtered);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].id, 1u);
  EXPECT_EQ((*rows)[1].id, 3u);
}

TEST(ActiveCallRepoTest, PutListDelete) {
  store::MemStoreFactory factory;
  std::unique_ptr<store::StateStore> db = factory.Open();
  store::ActiveCall c;
  c.id = 7;
  c.caller = "2001";
  c.callee = "2002";
  c.a = {"a-call",
         "ours",
         "theirs",
         "<sip:2002@pbx>",
         "<sip:2001@pbx>",
         "sip:2001@10.0.0.5",
         "sip:10.0.0.5:5060;transport=udp",
         1,
         3,
         600,
         true,
         {"sip:proxy.example;lr"}};
  c.b.call_id = "b-call";
  c.a_port = 10000;
  c.b_port = 10002;
  c.offer = "v=0\r\n";
  store::WriteSet w;
  store::ActiveCallRepo::Put(c, w);
  ASSERT_TRUE(db->Commit(w, store::Durability::kAsync).ok());
  auto all = store::ActiveCallRepo(*db).List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0], c);
  store::WriteSet d;
  store::ActiveCallRepo::Delete(7, d);
  ASSERT_TRUE(db->Commit(d, store::Durability::kAsync).ok());
  EXPECT_TRUE(store::ActiveCallRepo(*db).List()->empty());
}

}  // namespace
}  // namespace pbx::sip
