#include "sip/stack.h"

#include <atomic>
#include <future>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "sip/store_feed.h"

namespace pbx::sip {
namespace {

StackOptions LoopbackEphemeral() {
  StackOptions o;
  o.listen = "127.0.0.1";
  o.udp_port = o.tcp_port = o.tls_port = 0;
  return o;
}

TEST(StackTest, BindsEphemeralPortsAndRunsPostedWorkOnItsThread) {
  Result<std::unique_ptr<Stack>> stack = Stack::Start(LoopbackEphemeral());
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  EXPECT_GT((*stack)->ports().udp, 0);
  EXPECT_GT((*stack)->ports().tcp, 0);
  EXPECT_EQ((*stack)->ports().tls, 0);  // no certificate directory: no TLS
  std::atomic<bool> on_loop{false};
  (*stack)->Run([&] { on_loop = (*stack)->OnLoopThread(); });
  EXPECT_TRUE(on_loop);
  (*stack)->Stop();
  (*stack)->Post([] { FAIL() << "ran after Stop"; });
}

// The virtual IP is not on this host, as on a standby: IP_FREEBIND lets it bind anyway.
TEST(StackTest, BindsAVirtualIpThatIsNotLocalYet) {
  StackOptions o;
  o.listen = "127.0.0.1";
  o.vip = "192.0.2.200";  // TEST-NET-1: never assigned here
  o.udp_port = o.tcp_port = o.tls_port = 0;
  Result<std::unique_ptr<Stack>> stack = Stack::Start(o);
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
}

TEST(StackTest, AnAddressInUseIsAClearError) {
  StackOptions o;
  o.listen = "127.0.0.1";
  o.udp_port = o.tcp_port = 0;
  Result<std::unique_ptr<Stack>> first = Stack::Start(o);
  ASSERT_TRUE(first.ok());
  o.udp_port = (*first)->ports().udp;
  Result<std::unique_ptr<Stack>> second = Stack::Start(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Status::Code::kUnavailable);
}

// The feed runs its callbacks on the signalling thread, in commit order, for its prefix
// only, and stops when told.
TEST(StoreFeedTest, DeliversItsPrefixOnTheLoopUntilStopped) {
  Result<std::unique_ptr<Stack>> stack = Stack::Start(LoopbackEphemeral());
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  std::unique_ptr<store::StateStore> store = store::NewMemStateStore();
  std::vector<std::string> keys;  // signalling thread only
  bool off_loop = false;
  StoreFeed feed(**stack, *store);
  feed.Follow(store::Table::kConfig, "fwd/", [&](const store::Change& c) {
    off_loop |= !(*stack)->OnLoopThread();
    keys.push_back(c.key);
  });
  auto put = [&](const std::string& key) {
    store::WriteSet w;
    w.Put(store::Table::kConfig, key, "v");
    ASSERT_TRUE(store->Commit(w, store::Durability::kAsync).ok());
  };
  put("fwd/2001");
  put("trunk/a");  // another prefix: not delivered
  put("fwd/2002");
  (*stack)->Run([] {});  // what was posted before this has run
  feed.Stop();
  put("fwd/2003");
  (*stack)->Run([] {});
  std::vector<std::string> seen;
  (*stack)->Run([&] { seen = keys; });
  EXPECT_EQ(seen, (std::vector<std::string>{"fwd/2001", "fwd/2002"}));
  EXPECT_FALSE(off_loop);
}

}  // namespace
}  // namespace pbx::sip
