#include "tests/support/sip_test_ua.h"

#include <poll.h>
#include <strings.h>
#include <unistd.h>

#include <random>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "sip/registrar/digest.h"

namespace pbx::test {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// The value of `name` in a challenge: name="value" or name=value.
std::string ChallengeParam(std::string_view challenge, std::string_view name) {
  size_t pos = 0;
  while ((pos = challenge.find(name, pos)) != std::string_view::npos) {
    bool start = pos == 0 || challenge[pos - 1] == ' ' || challenge[pos - 1] == ',';
    size_t eq = pos + name.size();
    if (!start || eq >= challenge.size() || challenge[eq] != '=') {
      pos = eq;
      continue;
    }
    std::string_view v = challenge.substr(eq + 1);
    if (!v.empty() && v.front() == '"') {
      v.remove_prefix(1);
      return std::string(v.substr(0, v.find('"')));
    }
    return std::string(Trim(v.substr(0, v.find(','))));
  }
  return {};
}

}  // namespace

std::vector<std::string> SipResponse::Headers(std::string_view name) const {
  std::vector<std::string> out;
  size_t pos = raw.find("\r\n");
  while (pos != std::string::npos && pos + 2 < raw.size()) {
    size_t end = raw.find("\r\n", pos + 2);
    if (end == std::string::npos || end == pos + 2) break;  // end of headers
    std::string_view line(raw.data() + pos + 2, end - pos - 2);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos && Trim(line.substr(0, colon)).size() == name.size() &&
        strncasecmp(line.data(), name.data(), name.size()) == 0) {
      out.emplace_back(Trim(line.substr(colon + 1)));
    }
    pos = end;
  }
  return out;
}

std::string SipResponse::Header(std::string_view name) const {
  std::vector<std::string> all = Headers(name);
  return all.empty() ? std::string() : all.front();
}

SipTestUa::SipTestUa(std::string local_ip, std::string server_ip, uint16_t server_port)
    : local_ip_(std::move(local_ip)), server_ip_(std::move(server_ip)), server_port_(server_port) {
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, local_ip_.c_str(), &a.sin_addr);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    local_port_ = ntohs(a.sin_port);
  }
  std::random_device rd;
  branch_ = (static_cast<uint64_t>(rd()) << 32) | rd();
}

SipTestUa::~SipTestUa() {
  if (fd_ >= 0) ::close(fd_);
}

std::string SipTestUa::contact(const std::string& user) const {
  return fmt::format("sip:{}@{}:{}", user, local_ip_, local_port_);
}

bool SipTestUa::SendRaw(const std::string& message) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(server_port_);
  inet_pton(AF_INET, server_ip_.c_str(), &to.sin_addr);
  return ::sendto(fd_, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&to),
                  sizeof(to)) == static_cast<ssize_t>(message.size());
}

std::optional<SipResponse> SipTestUa::Receive(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    std::optional<SipResponse> m = ReceiveMessage(left);
    if (!m || m->status != 0) return m;
  }
}

std::optional<SipResponse> SipTestUa::ReceiveMessage(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[65536];
    sockaddr_in from{};
    socklen_t flen = sizeof(from);
    ssize_t n = ::recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &flen);
    if (n <= 0) continue;
    std::string msg(buf, static_cast<size_t>(n));
    if (msg.rfind("SIP/2.0 ", 0) == 0) {
      SipResponse r;
      r.status = std::atoi(msg.c_str() + 8);
      r.raw = std::move(msg);
      return r;
    }
    SipResponse req;
    req.method = msg.substr(0, msg.find(' '));
    req.raw = std::move(msg);
    if (req.method != "OPTIONS") return req;
    Respond(req, 200, "OK");  // keep-alive
    ++options_answered_;
  }
}

bool SipTestUa::Respond(const SipResponse& req, int status, const std::string& reason,
                        const std::string& to_tag, const std::string& extra_headers,
                        const std::string& body) {
  std::string reply = fmt::format("SIP/2.0 {} {}\r\n", status, reason);
  for (const char* h : {"Via", "From", "To", "Call-ID", "CSeq"}) {
    for (const std::string& v : req.Headers(h)) {
      bool tag =
          std::string_view(h) == "To" && !to_tag.empty() && v.find(";tag=") == std::string::npos;
      reply += fmt::format("{}: {}{}\r\n", h, v, tag ? ";tag=" + to_tag : "");
    }
  }
  reply += extra_headers;
  if (!body.empty()) reply += "Content-Type: application/sdp\r\n";
  reply += fmt::format("Content-Length: {}\r\n\r\n{}", body.size(), body);
  return SendRaw(reply);
}

std::string SipTestUa::BuildRegister(const Register& r, const std::string& authorization) {
  std::string contact_header = r.contact.empty()  ? "<" + contact(r.user) + ">"
                               : r.contact == "*" ? "*"
                                                  : "<" + r.contact + ">";
  std::string call_id =
      r.call_id.empty() ? fmt::format("{}-{}@{}", r.user, local_port_, local_ip_) : r.call_id;
  uint64_t branch = branch_++;
  std::string msg = fmt::format(
      "REGISTER sip:{}:{} SIP/2.0\r\n"
      "Via: SIP/2.0/UDP {}:{};branch=z9hG4bK{:x};rport\r\n"
      "Max-Forwards: 70\r\n"
      "From: <sip:{}@{}>;tag={:x}\r\n"
      "To: <sip:{}@{}>\r\n"
      "Call-ID: {}\r\n"
      "CSeq: {} REGISTER\r\n"
      "Contact: {}\r\n"
      "User-Agent: pbx-test-ua\r\n",
      server_ip_, server_port_, local_ip_, local_port_, branch, r.user, server_ip_, branch * 7,
      r.user, server_ip_, call_id, cseq_++, contact_header);
  if (r.expires) msg += fmt::format("Expires: {}\r\n", *r.expires);
  if (!authorization.empty()) msg += "Authorization: " + authorization + "\r\n";
  msg += "Content-Length: 0\r\n\r\n";
  return msg;
}

std::string SipTestUa::Authorization(const SipResponse& challenge, const std::string& user,
                                     const std::string& password, const std::string& method,
                                     const std::string& uri, const std::string& algorithm) {
  std::string chosen;
  for (const std::string& c : challenge.Headers("WWW-Authenticate")) {
    std::string alg = ChallengeParam(c, "algorithm");
    if (alg.empty()) alg = "MD5";
    if (strcasecmp(alg.c_str(), algorithm.c_str()) == 0) chosen = c;
  }
  if (chosen.empty()) return {};
  auto alg = *sip::ParseDigestAlgorithm(algorithm);
  std::string realm = ChallengeParam(chosen, "realm");
  std::string nonce = ChallengeParam(chosen, "nonce");
  std::string ha1 = sip::DigestHash(alg, user + ":" + realm + ":" + password);
  sip::DigestCredentials c;
  c.nonce = nonce;
  c.uri = uri;
  c.qop = "auth";
  c.nc = "00000001";
  c.cnonce = "0a4f113b";
  std::string response = sip::DigestExpectedResponse(alg, ha1, method, c);
  return fmt::format(
      "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", "
      "algorithm={}, qop=auth, nc=00000001, cnonce=\"0a4f113b\"",
      user, realm, nonce, uri, response, algorithm);
}

std::optional<SipResponse> SipTestUa::RegisterWithChallenge(const Register& r,
                                                            const SipResponse& challenge) {
  std::string uri = fmt::format("sip:{}:{}", server_ip_, server_port_);
  std::string auth = Authorization(challenge, r.user, r.password, "REGISTER", uri, r.algorithm);
  if (auth.empty()) return std::nullopt;
  if (!SendRaw(BuildRegister(r, auth))) return std::nullopt;
  return Receive();
}

std::optional<SipResponse> SipTestUa::DoRegister(const Register& r) {
  if (!SendRaw(BuildRegister(r, ""))) return std::nullopt;
  std::optional<SipResponse> first = Receive();
  if (!first || first->status != 401 || r.password.empty()) return first;
  return RegisterWithChallenge(r, *first);
}

}  // namespace pbx::test
