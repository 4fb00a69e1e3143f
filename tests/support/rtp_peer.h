#pragma once

#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

// A phone's RTP socket for call tests: sends voice frames and RFC 4733 telephone-events
// to an address from an SDP, receives what the PBX sends. IPv4 only. Test-only.
namespace pbx::test {

class RtpPeer {
 public:
  struct Packet {
    std::string data;
    uint16_t from_port = 0;
    uint8_t pt() const { return data.size() >= 12 ? static_cast<uint8_t>(data[1]) & 0x7f : 255; }
  };

  // Binds `ip`, port 0 (the kernel's choice).
  explicit RtpPeer(const std::string& ip) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~RtpPeer() { close(fd_); }
  RtpPeer(const RtpPeer&) = delete;
  RtpPeer& operator=(const RtpPeer&) = delete;
  uint16_t port() const { return port_; }

  // One RTP packet to `ip`:`port`, this peer's sequence number and SSRC.
  void Send(const std::string& ip, uint16_t port, uint8_t pt, uint32_t ts,
            const std::string& payload, bool marker = false) {
    std::string p(12, '\0');
    p[0] = static_cast<char>(0x80);
    p[1] = static_cast<char>(pt | (marker ? 0x80 : 0));
    p[2] = static_cast<char>(seq_ >> 8);
    p[3] = static_cast<char>(seq_++);
    for (int i = 0; i < 4; ++i) p[4 + i] = static_cast<char>(ts >> (24 - 8 * i));
    p[8] = 0x5a;
    p += payload;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    a.sin_port = htons(port);
    sendto(fd_, p.data(), p.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  }

  // RFC 4733: each digit as one event (its own timestamp) of a start packet and the end
  // packet three times, as phones send them.
  void SendDigits(const std::string& ip, uint16_t port, const std::string& digits,
                  uint8_t pt = 101) {
    static constexpr char kEvents[] = "0123456789*#ABCD";
    for (char d : digits) {
      uint8_t event = static_cast<uint8_t>(std::string(kEvents).find(d));
      auto payload = [&](bool end, uint16_t duration) {
        return std::string{static_cast<char>(event), static_cast<char>((end ? 0x80 : 0) | 10),
                           static_cast<char>(duration >> 8), static_cast<char>(duration)};
      };
      Send(ip, port, pt, ts_, payload(false, 160), true);
      for (int i = 0; i < 3; ++i) Send(ip, port, pt, ts_, payload(true, 800));
      ts_ += 1600;
    }
  }

  std::optional<Packet> Receive(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buf[2048];
    sockaddr_in a{};
    socklen_t len = sizeof(a);
    ssize_t n = recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&a), &len);
    if (n < 0) return std::nullopt;
    return Packet{std::string(buf, static_cast<size_t>(n)), ntohs(a.sin_port)};
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  uint16_t seq_ = 1;
  uint32_t ts_ = 16000;
};

}  // namespace pbx::test
