#pragma once

#include <poll.h>
#include <unistd.h>

#include <string>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace pbx::test {

// A phone's UDP socket on 127.0.0.1 (port 0: the kernel chooses), for the relay tests.
class Phone {
 public:
  explicit Phone(uint16_t port = 0) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    bound_ = bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Phone() { close(fd_); }
  bool bound() const { return bound_; }
  uint16_t port() const { return port_; }

  void SendTo(uint16_t port, const std::string& data) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    ASSERT_EQ(sendto(fd_, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)),
              static_cast<ssize_t>(data.size()));
  }

  // The next datagram and the port it came from; "" if none within the timeout.
  std::string Receive(uint16_t* from_port = nullptr, int timeout_ms = 5000) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1) return "";
    char buf[2048];
    sockaddr_in a{};
    socklen_t len = sizeof(a);
    ssize_t n = recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&a), &len);
    if (n < 0) return "";
    if (from_port) *from_port = ntohs(a.sin_port);
    return std::string(buf, n);
  }

 private:
  int fd_ = -1;
  bool bound_ = false;
  uint16_t port_ = 0;
};

}  // namespace pbx::test
