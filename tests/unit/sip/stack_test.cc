#include "sip/stack.h"

#include <atomic>

#include <gtest/gtest.h>

namespace pbx::sip {
namespace {

TEST(StackTest, BindsEphemeralPortsAndRunsPostedWorkOnItsThread) {
  StackOptions o;
  o.listen = "127.0.0.1";
  o.udp_port = o.tcp_port = o.tls_port = 0;
  Result<std::unique_ptr<Stack>> stack = Stack::Start(o);
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

}  // namespace
}  // namespace pbx::sip
