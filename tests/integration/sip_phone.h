#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tests/support/sip_test_ua.h"

// A phone for call tests: one SipTestUa registered as one extension (or playing a carrier),
// able to place and answer one call at a time, with the dialog it is in. Test-only.
namespace pbx::test {

using namespace std::chrono_literals;

inline std::string Sdp(const std::string& ip, int port) {
  return fmt::format(
      "v=0\r\no=- 1 1 IN IP4 {0}\r\ns=-\r\nc=IN IP4 {0}\r\nt=0 0\r\n"
      "m=audio {1} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
      "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n",
      ip, port);
}

// The value of `name`=... in a header value (e.g. the To tag).
inline std::string Param(const std::string& header, const std::string& name) {
  size_t p = header.find(";" + name + "=");
  if (p == std::string::npos) return {};
  std::string v = header.substr(p + name.size() + 2);
  return v.substr(0, v.find_first_of(";>, "));
}

inline std::string Body(const SipResponse& m) {
  size_t p = m.raw.find("\r\n\r\n");
  return p == std::string::npos ? std::string() : m.raw.substr(p + 4);
}

// The SDP's audio port ("m=audio <port> ...").
inline uint16_t AudioPort(const std::string& sdp) {
  size_t p = sdp.find("m=audio ");
  return p == std::string::npos ? 0 : static_cast<uint16_t>(std::stoi(sdp.substr(p + 8)));
}

// A phone: one UA registered as one extension, able to place and answer one call.
struct Phone {
  std::string number;
  std::unique_ptr<SipTestUa> ua;
  std::string server;  // "127.0.0.1:port"
  // The dialog of the call in progress.
  std::string call_id, local_tag, remote_tag, remote_target, invite_branch;
  uint32_t cseq = 1;
  SipResponse invite;  // the INVITE this phone received (callee side)
  uint64_t branch_seq = 1;
  std::string invite_headers;  // extra header lines of our INVITEs (each ending in CRLF)

  // A phone as `number` on `ip`, talking to the server at 127.0.0.1:`server_port`.
  Phone(std::string num, const std::string& ip, uint16_t server_port)
      : number(std::move(num)),
        ua(std::make_unique<SipTestUa>(ip, "127.0.0.1", server_port)),
        server(fmt::format("127.0.0.1:{}", server_port)) {}

  // REGISTER as `number` with `password` (answering one challenge); the final response.
  std::optional<SipResponse> Register(const std::string& password,
                                      const std::string& algorithm = "SHA-256") {
    SipTestUa::Register reg;
    reg.user = number;
    reg.password = password;
    reg.algorithm = algorithm;
    return ua->DoRegister(reg);
  }

  std::string Branch() { return fmt::format("z9hG4bK{}x{}", number, branch_seq++); }

  std::string InviteText(const std::string& to, const std::string& body, const std::string& auth) {
    invite_branch = Branch();
    return fmt::format(
        "INVITE sip:{to}@{srv} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP {ip}:{port};branch={br};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: \"Someone\" <sip:{me}@{srv}>;tag={tag}\r\n"
        "To: <sip:{to}@{srv}>\r\n"
        "Call-ID: {cid}\r\n"
        "CSeq: {cseq} INVITE\r\n"
        "Contact: <sip:{me}@{ip}:{port}>\r\n"
        "{auth}{extra}Content-Type: application/sdp\r\n"
        "Content-Length: {len}\r\n\r\n{body}",
        fmt::arg("to", to), fmt::arg("srv", server), fmt::arg("ip", ua->local_ip()),
        fmt::arg("port", ua->local_port()), fmt::arg("br", invite_branch), fmt::arg("me", number),
        fmt::arg("tag", local_tag), fmt::arg("cid", call_id), fmt::arg("cseq", cseq),
        fmt::arg("auth", auth.empty() ? "" : "Authorization: " + auth + "\r\n"),
        fmt::arg("extra", invite_headers), fmt::arg("len", body.size()), fmt::arg("body", body));
  }

  // ACK of a non-2xx final response: same branch as the INVITE (RFC 3261 17.1.1.3).
  void AckError(const SipResponse& r, const std::string& to) {
    ua->SendRaw(fmt::format(
        "ACK sip:{to}@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{port};branch={br};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:{me}@{srv}>;tag={tag}\r\nTo: {toh}\r\nCall-ID: {cid}\r\n"
        "CSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
        fmt::arg("to", to), fmt::arg("srv", server), fmt::arg("ip", ua->local_ip()),
        fmt::arg("port", ua->local_port()), fmt::arg("br", invite_branch), fmt::arg("me", number),
        fmt::arg("tag", local_tag), fmt::arg("toh", r.Header("To")), fmt::arg("cid", call_id),
        fmt::arg("cseq", cseq)));
  }

  // INVITE with digest authentication; returns the first response after the challenge.
  std::optional<SipResponse> Call(const std::string& to, const std::string& password,
                                  const std::string& body) {
    call_id = fmt::format("call-{}-{}", number, std::random_device{}());
    local_tag = fmt::format("t{}", std::random_device{}());
    cseq = 1;
    ua->SendRaw(InviteText(to, body, ""));
    std::optional<SipResponse> r = ua->Receive();
    if (!r || r->status != 401) return r;
    AckError(*r, to);
    ++cseq;
    std::string uri = fmt::format("sip:{}@{}", to, server);
    std::string auth = SipTestUa::Authorization(*r, number, password, "INVITE", uri, "SHA-256");
    ua->SendRaw(InviteText(to, body, auth));
    return ua->Receive();
  }

  // The next final response to our INVITE (provisional ones skipped, remembered).
  std::optional<SipResponse> Final(std::vector<int>* provisional = nullptr,
                                   std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      std::optional<SipResponse> r = ua->Receive(1s);
      if (!r) continue;
      if (r->status < 200) {
        if (provisional) provisional->push_back(r->status);
        continue;
      }
      return r;
    }
    return std::nullopt;
  }

  void Ack2xx(const SipResponse& ok, const std::string& body = "") {
    remote_tag = Param(ok.Header("To"), "tag");
    std::string contact = ok.Header("Contact");
    remote_target = contact.substr(contact.find('<') + 1);
    remote_target = remote_target.substr(0, remote_target.find('>'));
    ua->SendRaw(InDialog("ACK", cseq, body));
  }

  // An in-dialog request of the caller's dialog (From us, To them).
  std::string InDialog(const std::string& method, uint32_t seq, const std::string& body = "") {
    return fmt::format(
        "{m} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{port};branch={br};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:{me}@{srv}>;tag={lt}\r\nTo: <sip:x@{srv}>;tag={rt}\r\n"
        "Call-ID: {cid}\r\nCSeq: {seq} {m}\r\nContact: <sip:{me}@{ip}:{port}>\r\n{ct}"
        "Content-Length: {len}\r\n\r\n{body}",
        fmt::arg("m", method), fmt::arg("target", remote_target), fmt::arg("ip", ua->local_ip()),
        fmt::arg("port", ua->local_port()), fmt::arg("br", Branch()), fmt::arg("me", number),
        fmt::arg("srv", server), fmt::arg("lt", local_tag), fmt::arg("rt", remote_tag),
        fmt::arg("cid", call_id), fmt::arg("seq", seq),
        fmt::arg("ct", body.empty() ? "" : "Content-Type: application/sdp\r\n"),
        fmt::arg("extra", invite_headers), fmt::arg("len", body.size()), fmt::arg("body", body));
  }

  // Waits for a request of `method` (other requests are answered 200 and skipped).
  std::optional<SipResponse> Expect(const std::string& method, std::chrono::milliseconds t = 5s) {
    auto deadline = std::chrono::steady_clock::now() + t;
    while (std::chrono::steady_clock::now() < deadline) {
      std::optional<SipResponse> m = ua->ReceiveMessage(500ms);
      if (!m || m->status != 0) continue;
      if (m->method == method) return m;
    }
    return std::nullopt;
  }

  // Callee side: remember the INVITE's dialog so that a BYE can be sent from this side.
  void TakeInvite(const SipResponse& inv) {
    invite = inv;
    call_id = inv.Header("Call-ID");
    remote_tag = Param(inv.Header("From"), "tag");
    local_tag = fmt::format("c{}", std::random_device{}());
    std::string contact = inv.Header("Contact");
    remote_target = contact.substr(contact.find('<') + 1);
    remote_target = remote_target.substr(0, remote_target.find('>'));
  }
  std::string ContactHeader() const {
    return fmt::format("Contact: <sip:{}@{}:{}>\r\n", number, ua->local_ip(), ua->local_port());
  }
};

}  // namespace pbx::test
