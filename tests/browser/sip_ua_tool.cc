// The in-repo test UA (tests/support/sip_test_ua.h) as a small program for the browser test,
// which drives it from JavaScript:
//   pbx_sip_ua_tool register PORT USER PASSWORD   registers from 127.0.0.1, prints
//                                                  "registered", then answers OPTIONS until
//                                                  its stdin closes
//   pbx_sip_ua_tool attack PORT LOCAL_IP USER N    N REGISTERs with a wrong password from
//                                                  LOCAL_IP, prints each final status
// Exit 0 on success, 1 with a message on stderr otherwise.
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

#include "tests/support/sip_test_ua.h"

namespace {

using pbx::test::SipResponse;
using pbx::test::SipTestUa;

int Fail(const std::string& message) {
  std::cerr << "pbx_sip_ua_tool: " << message << "\n";
  return 1;
}

bool StdinClosed() {
  pollfd p{.fd = STDIN_FILENO, .events = POLLIN, .revents = 0};
  if (poll(&p, 1, 0) <= 0) return false;
  char buf[64];
  return read(STDIN_FILENO, buf, sizeof buf) <= 0;
}

int Register(uint16_t port, const std::string& user, const std::string& password) {
  SipTestUa ua("127.0.0.1", "127.0.0.1", port);
  std::optional<SipResponse> r = ua.DoRegister({.user = user, .password = password});
  if (!r) return Fail("no answer to REGISTER");
  if (r->status != 200) return Fail("REGISTER answered " + std::to_string(r->status));
  std::cout << "registered" << std::endl;
  // Receive() answers the registrar's qualify OPTIONS while it waits.
  while (!StdinClosed()) ua.Receive(std::chrono::milliseconds(200));
  return 0;
}

int Attack(uint16_t port, const std::string& local_ip, const std::string& user, int n) {
  SipTestUa ua(local_ip, "127.0.0.1", port);
  for (int i = 0; i < n; ++i) {
    std::optional<SipResponse> r = ua.DoRegister({.user = user, .password = "wrong-password"});
    std::cout << (r ? std::to_string(r->status) : "no answer") << std::endl;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "register" && argc == 5) {
    return Register(static_cast<uint16_t>(std::atoi(argv[2])), argv[3], argv[4]);
  }
  if (cmd == "attack" && argc == 6) {
    return Attack(static_cast<uint16_t>(std::atoi(argv[2])), argv[3], argv[4], std::atoi(argv[5]));
  }
  return Fail("usage: register PORT USER PASSWORD | attack PORT LOCAL_IP USER N");
}
