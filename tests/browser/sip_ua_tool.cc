// The in-repo test UA (tests/support/sip_test_ua.h) as a small program for the browser test,
// which drives it from JavaScript:
//   pbx_sip_ua_tool attack PORT LOCAL_IP USER N    N REGISTERs with a wrong password from
//                                                  LOCAL_IP to 127.0.0.1:PORT, answering
//                                                  the MD5 challenge; prints each final status
// Exit 0 on success, 1 with a message on stderr otherwise.
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

#include "tests/support/sip_test_ua.h"

namespace {

using pbx::test::SipResponse;
using pbx::test::SipTestUa;

int Attack(uint16_t port, const std::string& local_ip, const std::string& user, int n) {
  SipTestUa ua(local_ip, "127.0.0.1", port);
  for (int i = 0; i < n; ++i) {
    std::optional<SipResponse> r =
        ua.DoRegister({.user = user, .password = "wrong-password", .algorithm = "MD5"});
    std::cout << (r ? std::to_string(r->status) : "no answer") << std::endl;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "attack" && argc == 6) {
    return Attack(static_cast<uint16_t>(std::atoi(argv[2])), argv[3], argv[4], std::atoi(argv[5]));
  }
  std::cerr << "pbx_sip_ua_tool: usage: attack PORT LOCAL_IP USER N\n";
  return 1;
}
